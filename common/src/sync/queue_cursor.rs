//! How far an unlock's replay of a lock queue got, kept on disk (Server A).
//!
//! The replay installs each queued update, then says so here, durably,
//! before the entry's files are removed: after a crash (kill -9, a power
//! cut) the replay resumes after the last entry it finished, so no update
//! is applied twice and none is lost, and what the replay itself installed
//! is known, so an update older than it is never taken for one that A's own
//! later edit superseded. A queue entry whose snapshot is missing at start
//! is set aside under a name that says so, and reported.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::core::{Entry, Holding, Kind, Queued};

/// The cursor of one path's queue: `<queue dir>/cursor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Every entry up to this sequence number is done with (applied,
    /// superseded or failed).
    pub done_through: u64,
    /// What the path held once that entry was done.
    pub here: Option<Entry>,
}

/// A queue entry set aside at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    pub seq: u64,
    pub size: Option<u64>,
    pub at: PathBuf,
    /// What was wrong with it, for the console and `lab3 status`.
    pub what: String,
}

fn cursor_file(queue_dir: &Path) -> PathBuf {
    queue_dir.join("cursor")
}

/// The cursor of the queue in `queue_dir`, if a replay left one.
pub fn read(queue_dir: &Path) -> Option<Cursor> {
    let bytes = std::fs::read(cursor_file(queue_dir)).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!(
                "the unlock cursor in {} is damaged ({e}); the queue is replayed from its first entry",
                queue_dir.display()
            );
            None
        }
    }
}

/// Says, durably, that the entries up to `cursor.done_through` are done.
pub fn write(queue_dir: &Path, cursor: &Cursor) -> io::Result<()> {
    let bytes = serde_json::to_vec(cursor).map_err(io::Error::other)?;
    crate::durable::write(&cursor_file(queue_dir), &bytes)
}

/// Forgets the cursor (the unlock is over, or a new lock starts).
pub fn clear(queue_dir: &Path) {
    let _ = std::fs::remove_file(cursor_file(queue_dir));
}

/// Whether entry `q` still waits: past the cursor. The files of one that
/// does not (done before a crash, not yet removed) are removed.
pub fn waits(queue_dir: &Path, cursor: Option<&Cursor>, q: &Queued) -> bool {
    if cursor.is_none_or(|c| q.seq > c.done_through) {
        return true;
    }
    let file = queue_dir.join(q.seq.to_string());
    let _ = std::fs::remove_file(file.with_extension("json"));
    let _ = std::fs::remove_file(file);
    false
}

/// Sets aside, at start, the queued writes whose snapshot is missing,
/// unless the path already holds that write (its snapshot was moved into
/// place just before a crash: the replay finds it applied). Returns what
/// it set aside; the rest stays in `queue`.
pub fn set_aside_missing(
    queue_dir: &Path,
    queue: &mut Vec<Queued>,
    here: Option<&Entry>,
    precision_ns: u64,
) -> Vec<SetAside> {
    let mut aside = Vec::new();
    queue.retain(|q| {
        let Holding::Present(v) = &q.update else {
            return true;
        };
        let snapshot = queue_dir.join(q.seq.to_string());
        if v.kind != Kind::File || snapshot.exists() {
            return true;
        }
        if here.is_some_and(|h| h.version().same_as(v, precision_ns)) {
            return true;
        }
        let at = queue_dir.join(format!("{}.snapshot-missing", q.seq));
        if let Err(e) = std::fs::rename(snapshot.with_extension("json"), &at) {
            tracing::error!("cannot set aside {}: {e}", at.display());
        }
        aside.push(SetAside {
            seq: q.seq,
            size: Some(v.size),
            at,
            what: format!("queued write #{}: its snapshot is missing", q.seq),
        });
        false
    });
    aside
}

/// Sets aside, at start, the queue entries whose description does not
/// parse (a damaged disk, a bad edit): renamed `<seq>.json.damaged`, so
/// that they are reported rather than dropped in silence. Returns them.
pub fn set_aside_damaged(queue_dir: &Path) -> Vec<SetAside> {
    let mut aside = Vec::new();
    for f in std::fs::read_dir(queue_dir).into_iter().flatten().flatten() {
        let path = f.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let parses = std::fs::read(&path)
            .ok()
            .is_some_and(|b| serde_json::from_slice::<Queued>(&b).is_ok());
        if parses {
            continue;
        }
        let seq = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".damaged");
        let at = path.with_file_name(name);
        if let Err(e) = std::fs::rename(&path, &at) {
            tracing::error!("cannot set aside {}: {e}", path.display());
            continue;
        }
        aside.push(SetAside {
            seq,
            size: None,
            at,
            what: format!("queued update #{seq}: its description is damaged"),
        });
    }
    aside.sort_by_key(|a| a.seq);
    aside
}
