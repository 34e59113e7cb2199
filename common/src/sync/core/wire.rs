//! The messages one core sends the other over the sync link. Plain data:
//! the link carries them as JSON frames (file bodies follow an `Offer` as
//! data frames), a simulation hands them across in memory.

use serde::{Deserialize, Serialize};

use super::model::{Holding, Version};
use super::state::is_false;

/// What a side's file system keeps, said in the handshake. Comparisons
/// between the two sides use the coarser precision; modes count only where
/// both sides have them; names are refused where the receiving folder
/// cannot hold them (see `names`). Fields added later read as the default
/// from an older peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FsTraits {
    /// The mtime step this side's folder keeps: 1 (ext4, APFS), 100 (NTFS),
    /// 1e9 (HFS+, ext4 with 128-byte inodes), 2e9 (FAT).
    pub precision_ns: u64,
    /// Permission bits exist (false on Windows).
    pub has_modes: bool,
    /// Names differing only in letter case are one file.
    pub case_insensitive: bool,
    /// Names differing only in Unicode normalization (NFC, NFD) are one
    /// file (APFS, HFS+, ext4 with casefold).
    pub normalization_insensitive: bool,
    /// Windows' rules for names hold (`< > : " \ | ? *`, reserved device
    /// names, a trailing dot or space): Windows, or a FAT folder.
    pub windows_names: bool,
}

impl Default for FsTraits {
    fn default() -> FsTraits {
        FsTraits {
            precision_ns: 1,
            has_modes: true,
            case_insensitive: false,
            normalization_insensitive: false,
            windows_names: false,
        }
    }
}

/// An operation's number, unique among the sender's operations; answers
/// name it.
pub type OpId = u64;

/// One path of a side's inventory, sent at (re)connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvEntry {
    pub path: String,
    /// What the side holds now (or when it deleted it).
    pub now: Holding,
    /// Whether it changed since the two sides last agreed on it. Decided by
    /// the side itself (identity included), so a look-alike swapped in
    /// through a temp name counts as changed.
    pub changed: bool,
    /// The version the two last agreed on, as this side has it, where it
    /// changed since (else `now` is it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<Version>,
    /// A new name this side offered and has had no answer for (the link
    /// dropped): if the peer's base is what it holds, the peer stored it,
    /// and it is no change of this side's.
    #[serde(default, skip_serializing_if = "is_false")]
    pub offered: bool,
}

/// Why a side did not take what the peer offered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Refusal {
    /// Both changed and the refusing side's copy wins; it offers it.
    Conflict,
    /// It could not be stored (disk full, permissions, a name this file
    /// system refuses); `retry`: worth offering again later.
    Failed { error: String, retry: bool },
    /// (A `Move`) the receiver's `from` or `to` is not as the sender
    /// thinks: send it as a remove and an offer instead.
    SendWhole,
}

/// A summary of one side's agreed state, sent first at (re)connection:
/// equal digests from two clean sides mean the trees agree, and no
/// inventory is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// BLAKE3 over every agreed path and its base (kind, size, mtime at the
    /// coarser precision).
    pub digest: String,
    /// How many agreed files it covers.
    pub entries: u64,
    /// Nothing changed here since the last agreement, nothing in flight.
    pub clean: bool,
}

/// A core-to-core message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum PeerMsg {
    /// Reconciliation starts: the sender's digest.
    Digest(Digest),
    /// Reconciliation: one chunk of the sender's inventory (every path it
    /// holds or has a tombstone of); `last` ends it.
    Inventory { entries: Vec<InvEntry>, last: bool },
    /// Reconciliation, after the inventories: the content hashes of the
    /// sender's copies of look-alike paths both sides changed (possibly
    /// none; always sent).
    Hashes { hashes: Vec<(String, String)> },
    /// A new version of `path` (a file, whose bytes follow, or a folder)
    /// replacing `base`, what the two last agreed on (`None`: nothing).
    Offer {
        op: OpId,
        path: String,
        base: Option<Version>,
        version: Version,
    },
    /// The sender removed `path`, which held `base`, at `deleted_ns`
    /// (`None`: not known, it went while the sender was not running).
    Remove {
        op: OpId,
        path: String,
        base: Version,
        deleted_ns: Option<i64>,
    },
    /// The sender renamed `from` to `to`: a file, or a folder with all it
    /// holds (one rename). `base` is what both agreed `from` held.
    Move {
        op: OpId,
        from: String,
        to: String,
        base: Version,
    },
    /// The answer to `op`: what landed on the receiver's disk at `path`,
    /// re-stat'ed after it acted (`None`: nothing, after a remove).
    Stored {
        op: OpId,
        path: String,
        landed: Option<Version>,
    },
    /// The answer to `op`: not taken; `holds` is what the receiver has.
    Refused {
        op: OpId,
        path: String,
        holds: Holding,
        why: Refusal,
    },
    /// The answer to `op` (from Server A): held by a lock, queued.
    Queued { op: OpId, path: String },
}
