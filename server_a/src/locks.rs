//! Server A's lock table and per-file FIFO queues of Server B's updates.
//!
//! Everything lives in `<state>/locks/` so that it survives a crash:
//! `table.json` (written atomically) names each locked path and whether it
//! is being unlocked; `queue/<id>/<seq>.json` describes one held update and
//! `<seq>.data` holds its content snapshot. Only counts are kept in memory,
//! so a long queue costs disk, not RAM. The sync engine consults the table
//! through [`common::sync::Gate`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use common::meta::FileMeta;
use common::protocol::LockInfo;
use common::sync::{Gate, HeldUpdate, QueuedUpdate};
use serde::{Deserialize, Serialize};

/// A path's lock state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockState {
    Locked,
    /// Unlocked, its queue being replayed (resumed after a crash).
    Unlocking,
}

/// One held update as described on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    seq: u64,
    path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    meta: Option<FileMeta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deleted_ns: Option<i64>,
}

#[derive(Debug, Default)]
struct PathLock {
    state: Option<LockState>,
    /// Held updates, oldest first (descriptions only; content stays on disk).
    queue: Vec<Entry>,
}

/// One held update as the web page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct QueuedInfo {
    /// Position in the FIFO queue, from 1.
    pub seq: u64,
    /// `"write"` or `"delete"`.
    pub kind: &'static str,
    /// The content's size (a write only).
    pub size: Option<u64>,
    /// A write's modification time, or a delete's time (ns since the epoch).
    pub time_ns: i64,
}

/// The lock table.
pub struct Locks {
    dir: PathBuf,
    inner: Mutex<BTreeMap<String, PathLock>>,
}

impl Locks {
    /// Loads the table and queues from `<state_dir>/locks`.
    pub fn open(state_dir: &Path) -> anyhow::Result<Locks> {
        let dir = state_dir.join("locks");
        std::fs::create_dir_all(dir.join("queue"))?;
        let mut map: BTreeMap<String, PathLock> = BTreeMap::new();
        if let Ok(bytes) = std::fs::read(dir.join("table.json")) {
            let table: BTreeMap<String, LockState> = serde_json::from_slice(&bytes)?;
            for (p, st) in table {
                map.entry(p).or_default().state = Some(st);
            }
        }
        for qdir in std::fs::read_dir(dir.join("queue"))? {
            let qdir = qdir?.path();
            let mut entries: Vec<Entry> = Vec::new();
            for f in std::fs::read_dir(&qdir)? {
                let f = f?.path();
                if f.extension().is_some_and(|e| e == "json") {
                    match std::fs::read(&f).map(|b| serde_json::from_slice::<Entry>(&b)) {
                        Ok(Ok(e)) => entries.push(e),
                        _ => tracing::warn!("ignoring unreadable queue entry {}", f.display()),
                    }
                }
            }
            entries.sort_by_key(|e| e.seq);
            if let Some(first) = entries.first() {
                let path = first.path.clone();
                map.entry(path).or_default().queue = entries;
            } else {
                let _ = std::fs::remove_dir_all(&qdir);
            }
        }
        Ok(Locks {
            dir,
            inner: Mutex::new(map),
        })
    }

    /// Locks `path`; an error names why not (already locked).
    pub fn lock(&self, path: &str) -> anyhow::Result<()> {
        let mut map = self.inner.lock().unwrap();
        let entry = map.entry(path.to_string()).or_default();
        match entry.state {
            Some(LockState::Locked) => anyhow::bail!("{path} is already locked"),
            Some(LockState::Unlocking) => anyhow::bail!("{path} is being unlocked; try again"),
            None => entry.state = Some(LockState::Locked),
        }
        self.save(&map)
    }

    /// Whether `path` is locked now.
    pub fn is_locked(&self, path: &str) -> bool {
        let map = self.inner.lock().unwrap();
        map.get(path).and_then(|l| l.state) == Some(LockState::Locked)
    }

    /// `(locked, queued)` for a path, for the listing.
    pub fn state_of(&self, path: &str) -> (bool, usize) {
        let map = self.inner.lock().unwrap();
        match map.get(path) {
            Some(l) => (l.state == Some(LockState::Locked), l.queue.len()),
            None => (false, 0),
        }
    }

    /// Every locked path with its queue length.
    pub fn list(&self) -> Vec<LockInfo> {
        let map = self.inner.lock().unwrap();
        map.iter()
            .filter(|(_, l)| l.state == Some(LockState::Locked))
            .map(|(p, l)| LockInfo {
                name: p.clone(),
                queued: l.queue.len(),
            })
            .collect()
    }

    /// The updates held for `path`, oldest first, for the web page: what
    /// each is (a write or a delete), its size and its time (the write's
    /// modification time, or when the delete was made at Server B).
    pub fn queue_of(&self, path: &str) -> Vec<QueuedInfo> {
        let map = self.inner.lock().unwrap();
        let Some(lock) = map.get(path) else {
            return Vec::new();
        };
        lock.queue
            .iter()
            .map(|e| match (&e.meta, e.deleted_ns) {
                (Some(m), _) => QueuedInfo {
                    seq: e.seq,
                    kind: "write",
                    size: Some(m.size),
                    time_ns: m.mtime_ns,
                },
                (None, deleted) => QueuedInfo {
                    seq: e.seq,
                    kind: "delete",
                    size: None,
                    time_ns: deleted.unwrap_or_default(),
                },
            })
            .collect()
    }

    /// Paths whose unlock was interrupted (by a crash) and must be resumed.
    pub fn interrupted(&self) -> Vec<String> {
        let map = self.inner.lock().unwrap();
        map.iter()
            .filter(|(_, l)| l.state == Some(LockState::Unlocking))
            .map(|(p, _)| p.clone())
            .collect()
    }

    fn save(&self, map: &BTreeMap<String, PathLock>) -> anyhow::Result<()> {
        let table: BTreeMap<&String, LockState> = map
            .iter()
            .filter_map(|(p, l)| l.state.map(|s| (p, s)))
            .collect();
        write_atomic(
            &self.dir.join("table.json"),
            &serde_json::to_vec_pretty(&table)?,
        )?;
        Ok(())
    }

    fn queue_dir(&self, path: &str) -> PathBuf {
        let id = blake3::hash(path.as_bytes()).to_hex();
        self.dir.join("queue").join(&id.as_str()[..32])
    }

    fn enqueue(&self, update: HeldUpdate) -> anyhow::Result<()> {
        let mut map = self.inner.lock().unwrap();
        let path = update.path().to_string();
        let qdir = self.queue_dir(&path);
        let lock = map.entry(path.clone()).or_default();
        // The same version again (a reconnect's reconciliation re-sends it): keep one.
        if let (HeldUpdate::Write(r), Some(last)) = (&update, lock.queue.last()) {
            if last.meta.as_ref().is_some_and(|m| m.same_state(&r.meta)) {
                return Ok(());
            }
        }
        let seq = lock.queue.last().map_or(1, |e| e.seq + 1);
        std::fs::create_dir_all(&qdir)?;
        let entry = match update {
            HeldUpdate::Write(r) => {
                let data = qdir.join(format!("{seq:08}.data"));
                if let Err(e) = r.temp.persist(&data) {
                    // Another filesystem: copy the snapshot.
                    std::fs::copy(&e.path, &data)?;
                }
                Entry {
                    seq,
                    path: path.clone(),
                    meta: Some(r.meta),
                    deleted_ns: None,
                }
            }
            HeldUpdate::Delete { deleted_ns, .. } => Entry {
                seq,
                path: path.clone(),
                meta: None,
                deleted_ns: Some(deleted_ns),
            },
        };
        // The description is written last: a crash before it leaves only an orphan snapshot.
        write_atomic(
            &qdir.join(format!("{seq:08}.json")),
            &serde_json::to_vec(&entry)?,
        )?;
        lock.queue.push(entry);
        Ok(())
    }
}

impl Gate for Locks {
    fn holds(&self, path: &str) -> bool {
        self.is_locked(path)
    }

    fn hold(&self, update: HeldUpdate) {
        let path = update.path().to_string();
        if let Err(e) = self.enqueue(update) {
            tracing::error!("cannot queue an update of {path}: {e:#}");
        }
    }

    fn begin_unlock(&self, path: &str) -> anyhow::Result<Vec<QueuedUpdate>> {
        let mut map = self.inner.lock().unwrap();
        let qdir = self.queue_dir(path);
        let Some(lock) = map.get_mut(path).filter(|l| l.state.is_some()) else {
            anyhow::bail!("{path} is not locked");
        };
        lock.state = Some(LockState::Unlocking);
        let updates = lock
            .queue
            .iter()
            .map(|e| match (&e.meta, e.deleted_ns) {
                (Some(meta), _) => QueuedUpdate::Write {
                    seq: e.seq,
                    meta: meta.clone(),
                    file: qdir.join(format!("{:08}.data", e.seq)),
                },
                (None, deleted_ns) => QueuedUpdate::Delete {
                    seq: e.seq,
                    path: path.to_string(),
                    deleted_ns: deleted_ns.unwrap_or(0),
                },
            })
            .collect();
        self.save(&map)?;
        Ok(updates)
    }

    fn end_unlock(&self, path: &str) {
        let mut map = self.inner.lock().unwrap();
        map.remove(path);
        let _ = std::fs::remove_dir_all(self.queue_dir(path));
        if let Err(e) = self.save(&map) {
            tracing::error!("saving the lock table: {e:#}");
        }
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
