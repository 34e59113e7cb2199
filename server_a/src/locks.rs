//! Server A's lock table: which paths are locked, in
//! `<state>/locks/table.json` (written atomically), so that a lock lasts
//! across restarts and `--no-sync`. The queues of Server B's updates are
//! the sync core's (journalled with each path's state, snapshots under
//! `<state>/queue/`); the engine gives their lengths.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// A path's lock state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockState {
    Locked,
    /// Unlocked, its queue being replayed (resumed after a crash).
    Unlocking,
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

impl QueuedInfo {
    /// What the sync core's queue entry says.
    pub fn of(q: &common::sync::core::Queued) -> QueuedInfo {
        match &q.update {
            common::sync::core::Holding::Present(v) => QueuedInfo {
                seq: q.seq,
                kind: "write",
                size: Some(v.size),
                time_ns: v.mtime_ns,
            },
            common::sync::core::Holding::Absent { deleted_ns } => QueuedInfo {
                seq: q.seq,
                kind: "delete",
                size: None,
                time_ns: deleted_ns.unwrap_or_default(),
            },
        }
    }
}

/// The lock table.
pub struct Locks {
    dir: PathBuf,
    inner: Mutex<BTreeMap<String, LockState>>,
    /// The table on disk could not be read at start (see [`Locks::recover`]).
    damaged: bool,
}

impl Locks {
    /// Loads the table from `<state_dir>/locks`.
    pub fn open(state_dir: &Path) -> anyhow::Result<Locks> {
        let dir = state_dir.join("locks");
        std::fs::create_dir_all(&dir)?;
        let table = dir.join("table.json");
        let mut damaged = false;
        let map = match std::fs::read(&table) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(map) => map,
                Err(e) => {
                    // Set aside, never taken as "no locks" in silence: the
                    // engine's journal knows the locks too (see `recover`).
                    let stamp = common::durable::stamp();
                    let aside = dir.join(format!("table.damaged-{stamp}.json"));
                    std::fs::rename(&table, &aside)?;
                    tracing::error!(
                        "the lock table {} is damaged ({e}); set aside as {}; the locks are taken \
                         from the sync journal",
                        table.display(),
                        aside.display()
                    );
                    damaged = true;
                    BTreeMap::new()
                }
            },
            Err(_) => BTreeMap::new(),
        };
        let locks = Locks {
            dir,
            inner: Mutex::new(map),
            damaged,
        };
        locks.save(&locks.inner.lock().unwrap())?;
        Ok(locks)
    }

    /// The table was damaged at open: its locks come from the sync
    /// engine's journal ([`Locks::recover`]).
    pub fn needs_recovery(&self) -> bool {
        self.damaged
    }

    /// After a damaged table: the paths the sync engine holds locked (its
    /// journal has them) are locked again here.
    pub fn recover(&self, engine_locked: Vec<String>) -> anyhow::Result<()> {
        if !self.damaged {
            return Ok(());
        }
        let mut map = self.inner.lock().unwrap();
        for p in engine_locked {
            tracing::warn!("lock of {p} recovered from the sync journal");
            map.insert(p, LockState::Locked);
        }
        self.save(&map)
    }

    /// Locks `path`; an error names why not (already locked).
    pub fn lock(&self, path: &str) -> anyhow::Result<()> {
        let mut map = self.inner.lock().unwrap();
        match map.get(path) {
            Some(LockState::Locked) => anyhow::bail!("{path} is already locked"),
            Some(LockState::Unlocking) => anyhow::bail!("{path} is being unlocked; try again"),
            None => map.insert(path.to_string(), LockState::Locked),
        };
        self.save(&map)
    }

    /// Whether `path` is locked now.
    pub fn is_locked(&self, path: &str) -> bool {
        self.inner.lock().unwrap().get(path) == Some(&LockState::Locked)
    }

    /// Every locked path.
    pub fn locked(&self) -> Vec<String> {
        let map = self.inner.lock().unwrap();
        map.iter()
            .filter(|(_, s)| **s == LockState::Locked)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Paths whose unlock was interrupted (by a crash) and must be resumed.
    pub fn interrupted(&self) -> Vec<String> {
        let map = self.inner.lock().unwrap();
        map.iter()
            .filter(|(_, s)| **s == LockState::Unlocking)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Marks `path` as being unlocked (its queue replaying).
    pub fn begin_unlock(&self, path: &str) -> anyhow::Result<()> {
        let mut map = self.inner.lock().unwrap();
        if !map.contains_key(path) {
            anyhow::bail!("{path} is not locked");
        }
        map.insert(path.to_string(), LockState::Unlocking);
        self.save(&map)
    }

    /// The unlock of `path` is complete.
    pub fn end_unlock(&self, path: &str) {
        let mut map = self.inner.lock().unwrap();
        map.remove(path);
        if let Err(e) = self.save(&map) {
            tracing::error!("saving the lock table: {e:#}");
        }
    }

    fn save(&self, map: &BTreeMap<String, LockState>) -> anyhow::Result<()> {
        common::durable::write(
            &self.dir.join("table.json"),
            &serde_json::to_vec_pretty(map)?,
        )?;
        Ok(())
    }
}
