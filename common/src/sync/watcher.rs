//! Change detection: notify's events, turned into hints about paths.
//!
//! Events are only hints (see notify's "Known Problems"): the engine stats
//! each hinted path once it has settled and decides from what is on disk.
//! A closed write is acted on at once; other events wait a moment for
//! their burst to settle, and a file still being written waits until it is
//! quiet. A dropped event, a notify error or an overflowed kernel queue
//! sets the rescan flag; the periodic rescan catches anything else.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher as _};
use tokio::sync::{mpsc, Notify};

use crate::ignore::Ignore;
use crate::paths;

/// How long after an event its path is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// A write was closed: look now.
    Now,
    /// A create, delete, rename or metadata change: let the burst settle.
    Soon,
    /// Data is being written: wait until the file is quiet.
    Quiet,
}

impl Urgency {
    pub fn delay(self) -> Duration {
        match self {
            Urgency::Now => Duration::ZERO,
            Urgency::Soon => Duration::from_millis(25),
            Urgency::Quiet => Duration::from_millis(300),
        }
    }
}

/// A path that may have changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub path: String,
    pub urgency: Urgency,
}

/// Set when events were lost and a full rescan is due; `wake` is notified.
#[derive(Debug, Default)]
pub struct RescanFlag {
    needed: AtomicBool,
    pub wake: Notify,
}

impl RescanFlag {
    pub fn raise(&self) {
        self.needed.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Whether a rescan is requested (without clearing it).
    pub fn is_raised(&self) -> bool {
        self.needed.load(Ordering::SeqCst)
    }

    /// Whether a rescan was requested since the last call.
    pub fn take(&self) -> bool {
        self.needed.swap(false, Ordering::SeqCst)
    }
}

/// Keeps the OS watch alive; dropping it stops watching.
pub struct Watcher {
    _inner: notify::RecommendedWatcher,
}

/// Watches `root` recursively, sending hints to `tx`.
pub fn watch(
    root: &Path,
    ignore: Ignore,
    tx: mpsc::Sender<Hint>,
    rescan: Arc<RescanFlag>,
) -> notify::Result<Watcher> {
    let root_owned: PathBuf = root.to_path_buf();
    let handler = move |res: notify::Result<notify::Event>| {
        let event = match res {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("watcher: {e}; rescanning");
                rescan.raise();
                return;
            }
        };
        if event.need_rescan() {
            tracing::warn!("watcher: events were lost; rescanning");
            rescan.raise();
            return;
        }
        let urgency = match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => Urgency::Now,
            EventKind::Access(_) => return,
            EventKind::Modify(ModifyKind::Data(_)) | EventKind::Create(_) => Urgency::Quiet,
            _ => Urgency::Soon,
        };
        for p in &event.paths {
            let Some(rel) = paths::relative(&root_owned, p) else {
                continue;
            };
            if ignore.is_ignored_path(&rel) {
                continue;
            }
            if tx.try_send(Hint { path: rel, urgency }).is_err() {
                // Full (or closed): never drop silently; rescan instead.
                rescan.raise();
            }
        }
    };
    // Opens and read-only closes are not asked for: sending a file opens
    // it, and each open would wake the watcher for nothing.
    let kinds = notify::event::EventKindMask::CORE | notify::event::EventKindMask::ACCESS_CLOSE;
    let config = notify::Config::default().with_event_kinds(kinds);
    let mut w = notify::RecommendedWatcher::new(handler, config)?;
    w.watch(root, RecursiveMode::Recursive).map_err(explain)?;
    Ok(Watcher { _inner: w })
}

/// Turns the two errors users hit into advice.
fn explain(e: notify::Error) -> notify::Error {
    let advice = match &e.kind {
        notify::ErrorKind::MaxFilesWatch => {
            Some("too many watches: raise fs.inotify.max_user_watches")
        }
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(28) => {
            Some("too many watches (errno 28): raise fs.inotify.max_user_watches")
        }
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(24) => {
            Some("too many open files (errno 24): raise the open-file limit (ulimit -n)")
        }
        _ => None,
    };
    match advice {
        Some(a) => notify::Error::generic(&format!("{e}: {a}")),
        None => e,
    }
}
