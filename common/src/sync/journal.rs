//! The state journal: what this side last saw of every path, and the
//! tombstones of deleted ones, kept in the state directory.
//!
//! On disk it is an append-only file of JSON lines, compacted on open. A
//! torn last line (a kill -9 mid-write) is ignored. Without the journal a
//! restart could not tell "deleted while I was away" from "new on the peer",
//! nor "changed while I was away" from "unchanged".

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::meta::{now_ns, FileMeta};
use crate::protocol::InventoryEntry;

/// What the journal knows of one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The file as last seen here, or `None` once deleted.
    pub local: Option<FileMeta>,
    /// When it was deleted (a tombstone), if `local` is `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_ns: Option<i64>,
    /// Whether the peer is believed to hold this same state.
    #[serde(default)]
    pub synced: bool,
    /// BLAKE3 of `local`'s content, when known (from a transfer or a check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

/// One line of the journal file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Path { p: String, r: Record },
    Alive { alive_ns: i64 },
}

/// One line as read back: either field set. (Reading through `Line`,
/// untagged, would buffer every line to try each variant in turn.)
#[derive(Deserialize)]
struct ReadLine {
    p: Option<String>,
    r: Option<Record>,
    alive_ns: Option<i64>,
}

/// The journal: an in-memory map, mirrored to an append-only file.
pub struct Journal {
    path: PathBuf,
    records: BTreeMap<String, Record>,
    out: BufWriter<File>,
    /// The last time this server was known to be running (see [`Journal::alive`]).
    last_alive_ns: Option<i64>,
    /// Lines written since the last compaction.
    appended: usize,
    /// Lines written since it was opened (see [`Journal::generation`]).
    generation: u64,
}

impl Journal {
    /// Opens (or creates) the journal in `state_dir`. It is compacted when
    /// its tail is torn (a crash mid-line) or most of its lines are
    /// superseded; otherwise appending goes on where it ended.
    pub fn open(state_dir: &Path) -> std::io::Result<Journal> {
        std::fs::create_dir_all(state_dir)?;
        let path = state_dir.join("journal.jsonl");
        let mut records = BTreeMap::new();
        let mut last_alive_ns = None;
        let (mut lines, mut torn) = (0usize, false);
        if let Ok(f) = File::open(&path) {
            for line in BufReader::new(f).lines() {
                let Ok(line) = line else {
                    torn = true;
                    break;
                };
                match serde_json::from_str::<ReadLine>(&line) {
                    Ok(ReadLine {
                        p: Some(p),
                        r: Some(r),
                        ..
                    }) => {
                        records.insert(p, r);
                    }
                    Ok(ReadLine {
                        alive_ns: Some(alive_ns),
                        ..
                    }) => last_alive_ns = Some(alive_ns),
                    // A torn tail: everything before it stands.
                    _ => {
                        torn = true;
                        break;
                    }
                }
                lines += 1;
            }
        }
        let (out, appended) = if torn || lines > 2 * records.len() + 1_000 {
            (Self::rewrite(&path, &records, last_alive_ns)?, 0)
        } else {
            (Self::append_to(&path)?, lines)
        };
        Ok(Journal {
            path,
            records,
            out,
            last_alive_ns,
            appended,
            generation: 0,
        })
    }

    fn append_to(path: &Path) -> std::io::Result<BufWriter<File>> {
        let file = OpenOptions::new().append(true).create(true).open(path)?;
        Ok(BufWriter::with_capacity(64 * 1024, file))
    }

    /// Writes a compact copy atomically and opens it for appending.
    fn rewrite(
        path: &Path,
        records: &BTreeMap<String, Record>,
        alive: Option<i64>,
    ) -> std::io::Result<BufWriter<File>> {
        let tmp = path.with_extension("jsonl.tmp");
        {
            let mut w = BufWriter::new(File::create(&tmp)?);
            if let Some(alive_ns) = alive {
                serde_json::to_writer(&mut w, &Line::Alive { alive_ns })?;
                w.write_all(b"\n")?;
            }
            for (p, r) in records {
                serde_json::to_writer(
                    &mut w,
                    &Line::Path {
                        p: p.clone(),
                        r: r.clone(),
                    },
                )?;
                w.write_all(b"\n")?;
            }
            w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        Self::append_to(path)
    }

    pub fn get(&self, path: &str) -> Option<&Record> {
        self.records.get(path)
    }

    /// The file as last seen here, if present.
    pub fn local(&self, path: &str) -> Option<&FileMeta> {
        self.records.get(path).and_then(|r| r.local.as_ref())
    }

    /// Records that `meta.path` is present with `meta`.
    /// A hash already known for the same state is kept.
    pub fn set_present(&mut self, meta: &FileMeta, synced: bool) {
        let hash = self.hash_of(meta).map(str::to_string);
        let r = Record {
            local: Some(meta.clone()),
            deleted_ns: None,
            synced,
            hash,
        };
        self.put(meta.path.clone(), r);
    }

    /// Records the content hash of `meta`, if that is still the state here.
    pub fn set_hash(&mut self, meta: &FileMeta, hash: String) {
        if let Some(r) = self.records.get(&meta.path) {
            if r.local.as_ref().is_some_and(|l| l.same_state(meta))
                && r.hash.as_deref() != Some(&hash)
            {
                let mut r = r.clone();
                r.hash = Some(hash);
                self.put(meta.path.clone(), r);
            }
        }
    }

    /// The known content hash of `meta` (only if `meta` is the state recorded).
    pub fn hash_of(&self, meta: &FileMeta) -> Option<&str> {
        let r = self.records.get(&meta.path)?;
        r.local.as_ref().filter(|l| l.same_state(meta))?;
        r.hash.as_deref()
    }

    /// Records that `path` was deleted at `deleted_ns`.
    pub fn set_deleted(&mut self, path: &str, deleted_ns: i64, synced: bool) {
        let r = Record {
            local: None,
            deleted_ns: Some(deleted_ns),
            synced,
            hash: None,
        };
        self.put(path.to_string(), r);
    }

    /// Marks the current state of `path` as held by the peer too.
    pub fn set_synced(&mut self, path: &str) {
        if let Some(r) = self.records.get(path) {
            if !r.synced {
                let mut r = r.clone();
                r.synced = true;
                self.put(path.to_string(), r);
            }
        }
    }

    /// Forgets `path` entirely (no tombstone).
    pub fn forget(&mut self, path: &str) {
        if self.records.remove(path).is_some() {
            self.append(&Line::Path {
                p: path.to_string(),
                r: Record {
                    local: None,
                    deleted_ns: None,
                    synced: false,
                    hash: None,
                },
            });
        }
    }

    fn put(&mut self, p: String, r: Record) {
        if self.records.get(&p) == Some(&r) {
            return;
        }
        self.append(&Line::Path {
            p: p.clone(),
            r: r.clone(),
        });
        self.records.insert(p, r);
    }

    fn append(&mut self, line: &Line) {
        let res = serde_json::to_writer(&mut self.out, line)
            .map_err(std::io::Error::from)
            .and_then(|_| self.out.write_all(b"\n"));
        if let Err(e) = res {
            tracing::error!("journal {}: {e}", self.path.display());
        }
        self.appended += 1;
        self.generation += 1;
    }

    /// A number that changes whenever anything is recorded.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Notes that this server is running now (used to date deletes made while it was not).
    pub fn alive(&mut self) {
        let alive_ns = now_ns();
        self.last_alive_ns = Some(alive_ns);
        self.append(&Line::Alive { alive_ns });
    }

    /// The last time this server was known to run, before this start.
    pub fn last_alive_ns(&self) -> Option<i64> {
        self.last_alive_ns
    }

    /// Pushes buffered lines to the file, compacting it when it has grown
    /// to several times the live records.
    pub fn flush(&mut self) {
        if self.appended > 10_000 && self.appended > 4 * self.records.len() {
            match Self::rewrite(&self.path, &self.records, self.last_alive_ns) {
                Ok(out) => {
                    self.out = out;
                    self.appended = 0;
                }
                Err(e) => tracing::error!("compacting journal {}: {e}", self.path.display()),
            }
        }
        if let Err(e) = self.out.flush() {
            tracing::error!("journal {}: {e}", self.path.display());
        }
    }

    /// Whether the peer is believed to hold every path's state, tombstones
    /// included.
    pub fn all_synced(&self) -> bool {
        (self.records.values())
            .filter(|r| r.local.is_some() || r.deleted_ns.is_some())
            .all(|r| r.synced)
    }

    /// Paths of files believed present.
    pub fn present(&self) -> impl Iterator<Item = &FileMeta> {
        self.records.values().filter_map(|r| r.local.as_ref())
    }

    /// Every path the journal knows below folder `dir`, present or deleted.
    pub fn paths_under(&self, dir: &str) -> impl Iterator<Item = &String> {
        let prefix = format!("{dir}/");
        self.records
            .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .map(|(k, _)| k)
            .take_while(move |k| k.starts_with(&prefix))
    }

    /// Present files changed since the last sync whose content hash is unknown.
    pub fn unhashed_dirty(&self) -> Vec<FileMeta> {
        self.records
            .values()
            .filter(|r| !r.synced && r.hash.is_none())
            .filter_map(|r| r.local.clone())
            .collect()
    }

    /// This side's inventory for reconciliation.
    pub fn inventory(&self) -> Vec<InventoryEntry> {
        self.records
            .iter()
            .filter_map(|(p, r)| match (&r.local, r.deleted_ns) {
                (Some(meta), _) => Some(InventoryEntry::Present {
                    meta: meta.clone(),
                    dirty: !r.synced,
                    hash: r.hash.clone(),
                }),
                (None, Some(deleted_ns)) => Some(InventoryEntry::Deleted {
                    path: p.clone(),
                    deleted_ns,
                }),
                (None, None) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(p: &str, size: u64) -> FileMeta {
        FileMeta {
            path: p.into(),
            size,
            mtime_ns: 5,
            mode: 0o644,
        }
    }

    #[test]
    fn survives_reopen_and_a_torn_tail() {
        let d = tempfile::tempdir().unwrap();
        {
            let mut j = Journal::open(d.path()).unwrap();
            j.set_present(&meta("a", 1), true);
            j.set_present(&meta("b", 2), false);
            j.set_deleted("b", 99, true);
            j.alive();
            j.flush();
        }
        let mut f = OpenOptions::new()
            .append(true)
            .open(d.path().join("journal.jsonl"))
            .unwrap();
        f.write_all(b"{\"p\":\"c\",\"r\":{\"loc").unwrap();
        drop(f);
        let j = Journal::open(d.path()).unwrap();
        assert_eq!(j.local("a"), Some(&meta("a", 1)));
        assert_eq!(j.get("b").unwrap().deleted_ns, Some(99));
        assert!(j.get("c").is_none());
        assert!(j.last_alive_ns().is_some());
        let inv = j.inventory();
        assert_eq!(inv.len(), 2);
    }

    #[test]
    fn lines_written_after_a_torn_tail_survive_the_next_open() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("journal.jsonl");
        std::fs::write(&file, "{\"alive_ns\":7}\n{\"p\":\"a\",\"r\":{\"loc").unwrap();
        {
            let mut j = Journal::open(d.path()).unwrap();
            j.set_present(&meta("b", 2), true);
            j.flush();
        }
        let j = Journal::open(d.path()).unwrap();
        assert_eq!(j.local("b"), Some(&meta("b", 2)));
        assert_eq!(j.last_alive_ns(), Some(7));
    }

    #[test]
    fn a_clean_journal_is_appended_to_not_rewritten() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("journal.jsonl");
        {
            let mut j = Journal::open(d.path()).unwrap();
            j.set_present(&meta("a", 1), true);
            j.flush();
        }
        let inode = std::fs::metadata(&file).unwrap().ino();
        {
            let mut j = Journal::open(d.path()).unwrap();
            j.set_present(&meta("b", 2), false);
            j.flush();
        }
        assert_eq!(std::fs::metadata(&file).unwrap().ino(), inode);
        let j = Journal::open(d.path()).unwrap();
        assert_eq!(j.local("a"), Some(&meta("a", 1)));
        assert_eq!(j.local("b"), Some(&meta("b", 2)));
    }
}
