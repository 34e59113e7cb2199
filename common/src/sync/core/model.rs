//! What the core knows of a path's content: the entry a side observes on
//! its own disk, and the version both sides can compare. Plain data, so a
//! simulation can make them up and a test can write them inline.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A file's identity on its own side: device and inode on unix, volume
/// serial and file index on Windows. Two paths with one identity are hard
/// links; a path gone and another appearing with its identity is a move.
/// Identities never cross the link: each side's are its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// A content hash (BLAKE3, lowercase hex). The core never hashes: hashes
/// come from transfers and from the executor, and a simulation may use any
/// string that names the content.
///
/// Shared, not copied: an agreed path holds its hash in the version and
/// in this side's stat of it (and often in `local` too), and each was a
/// `String` of its own, 64 bytes and an allocation apiece (issue 15). A
/// clone is one more count on the same text; it is written and read as
/// the plain string it always was (journal and wire unchanged).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, std::hash::Hash)]
pub struct Hash(Arc<str>);

impl Hash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Hash {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Hash {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Hash {
    fn from(s: &str) -> Hash {
        Hash(Arc::from(s))
    }
}

impl From<String> for Hash {
    fn from(s: String) -> Hash {
        Hash(Arc::from(s))
    }
}

impl PartialEq<str> for Hash {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<String> for Hash {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Hash {
    /// From the text as the parser holds it (no `String` in between).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Hash;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a content hash")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Hash, E> {
                Ok(Hash::from(v))
            }
        }
        d.deserialize_str(Text)
    }
}

/// File or folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    File,
    Dir,
}

/// What a path holds on this side's disk, as the executor stat'ed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: Kind,
    /// Bytes (0 for a folder).
    pub size: u64,
    /// As this file system keeps it (see [`super::Config::precision_ns`]).
    pub mtime_ns: i64,
    /// Permission bits, `None` where the file system has none (Windows).
    pub mode: Option<u32>,
    pub id: FileId,
    /// The content's hash, when the executor knows it (after a transfer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<Hash>,
}

impl Entry {
    /// The version this entry holds, as it travels.
    pub fn version(&self) -> Version {
        Version {
            kind: self.kind,
            size: self.size,
            mtime_ns: self.mtime_ns,
            mode: self.mode,
            hash: self.hash.clone(),
        }
    }

    /// The same state on this side's disk: same identity, kind, size, mtime
    /// and mode. (A look-alike swapped in through a temp name differs in
    /// identity, so it is a change.) A folder is the same folder while its
    /// identity and mode stand: its mtime moves with what it holds.
    pub fn same_here(&self, other: &Entry) -> bool {
        if self.kind == Kind::Dir && other.kind == Kind::Dir {
            return self.id == other.id && self.mode == other.mode;
        }
        self.id == other.id
            && self.kind == other.kind
            && self.size == other.size
            && self.mtime_ns == other.mtime_ns
            && self.mode == other.mode
    }

    /// Whether a watcher event on this file, whose stat is the one the
    /// core knows (`known`), needs the file hashed to tell whether it was
    /// edited: on a folder whose mtimes are coarse (whole seconds: FAT,
    /// HFS+, ext4 with 128-byte inodes), a write in place within the same
    /// step keeps size and mtime (seed 158956: an append that replaced
    /// what an earlier one had written went unseen and was sent half
    /// written). A plain stat never hashes; on a fine folder an edit moves
    /// the mtime (one that sets it back by hand, keeping the size, is not
    /// seen: rsync's quick check has the same blind spot).
    pub fn needs_hash_on_event(&self, known: Option<&Entry>, precision_ns: u64) -> bool {
        self.kind == Kind::File
            && precision_ns >= COARSE_NS
            && known.is_some_and(|k| k.same_here(self))
    }

    /// The same file as `other` on a folder that keeps mtimes to
    /// `precision_ns`: equal but for mtimes less than one step apart. A
    /// file system may report the time this side set to the nanosecond
    /// until its attribute cache expires, and rounded after (FAT over
    /// FUSE; an ext4 inode read back from disk): the same file, no edit.
    pub fn same_rounded(&self, other: &Entry, precision_ns: u64) -> bool {
        self.kind == Kind::File
            && other.kind == Kind::File
            && self.id == other.id
            && self.size == other.size
            && self.mode == other.mode
            && self.mtime_ns.abs_diff(other.mtime_ns) < precision_ns.max(1)
    }
}

/// The mtime step from which a write can go unseen by its stat (see
/// [`Entry::needs_hash_on_event`]): a millisecond (NTFS keeps 100 ns).
pub const COARSE_NS: u64 = 1_000_000;

/// A version of a path as both sides compare it: no identity, content by
/// hash when known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub kind: Kind,
    pub size: u64,
    pub mtime_ns: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<Hash>,
}

impl Version {
    /// The same version as far as both sides can tell: kind, size, the
    /// mtime at precision `precision_ns` (the coarser side's), the mode
    /// where both have one, the hash where both know it. Folders compare by
    /// kind alone (their times and sizes are the file system's business).
    pub fn same_as(&self, other: &Version, precision_ns: u64) -> bool {
        if self.kind != other.kind {
            return false;
        }
        if self.kind == Kind::Dir {
            return true;
        }
        let modes_agree = match (self.mode, other.mode) {
            (Some(a), Some(b)) => a & 0o777 == b & 0o777,
            _ => true,
        };
        let hashes_agree = match (&self.hash, &other.hash) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        self.size == other.size
            && coarse(self.mtime_ns, precision_ns) == coarse(other.mtime_ns, precision_ns)
            && modes_agree
            && hashes_agree
    }
}

/// `ns` truncated to a multiple of `precision_ns` (at least 1).
pub fn coarse(ns: i64, precision_ns: u64) -> i64 {
    let p = precision_ns.max(1) as i64;
    ns.div_euclid(p) * p
}

/// One side's state of a path in a comparison: a version, or nothing (with
/// when it was deleted, if this side deleted it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Holding {
    Present(Version),
    Absent {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deleted_ns: Option<i64>,
    },
}

impl Holding {
    pub fn version(&self) -> Option<&Version> {
        match self {
            Holding::Present(v) => Some(v),
            Holding::Absent { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hash travels and is journalled as the string it always was; a
    /// copy of it is the same text, not another (issue 15).
    #[test]
    fn a_hash_is_its_string_on_the_wire_and_shared_in_memory() {
        let text = "ab".repeat(32);
        let h = Hash::from(text.as_str());
        assert_eq!(serde_json::to_string(&h).unwrap(), format!("\"{text}\""));
        let back: Hash = serde_json::from_str(&format!("\"{text}\"")).unwrap();
        assert_eq!(back, h);
        assert_eq!(h, text);
        assert!(std::ptr::eq(h.clone().as_ptr(), h.as_ptr()));
        assert_eq!(std::mem::size_of::<Option<Hash>>(), 16);
    }
}
