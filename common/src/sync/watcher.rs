//! Change detection: notify's events, turned into hints about paths.
//!
//! Events are only hints (see notify's "Known Problems"): the engine stats
//! each hinted path once it has settled and decides from what is on disk.
//! A closed write is acted on at once; other events wait a moment for
//! their burst to settle, and a file still being written waits until it is
//! quiet. A dropped event, a notify error or an overflowed kernel queue
//! sets the rescan flag; the periodic rescan catches anything else.
//!
//! The inotify watch limit (`fs.inotify.max_user_watches`, one watch per
//! folder, shared by every program of the user) may be too low for a big
//! tree: the folders watched so far stay watched, the limit is reported
//! once with the command that raises it ([`WatchLimit`]), and the engine
//! rescans every 3 s meanwhile, which covers the folders beyond it.
//!
//! On Linux the folders are watched one by one, by the engine, from the
//! folders its own scans find ([`Watcher::add`]): a recursive watch made
//! notify walk the whole tree a second time (every folder read again) before
//! the start-up scan, about 0.5 s of a restart over 200,000 files (issue 15).
//! Each folder's watch is added before the folder is listed, so a file made
//! in it is either listed or raises an event. A folder made or moved in
//! later is watched when the engine looks at it, and then scanned (what was
//! made in it before its watch raised no event). macOS and Windows watch a
//! whole tree in one call: the root is watched recursively there.

#[cfg(target_os = "linux")]
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[cfg(target_os = "linux")]
use notify::event::RenameMode;
use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind};
#[cfg(not(target_os = "linux"))]
use notify::RecursiveMode;
use notify::Watcher as _;
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

/// The watch limit, once hit: what to tell the user (console, `lab3 status`).
#[derive(Debug, Default)]
pub struct WatchLimit {
    message: Mutex<Option<String>>,
}

impl WatchLimit {
    /// Whether some folders get no events (covered by rescans instead).
    pub fn is_hit(&self) -> bool {
        self.message.lock().unwrap().is_some()
    }

    /// The advice, once the limit was hit.
    pub fn message(&self) -> Option<String> {
        self.message.lock().unwrap().clone()
    }

    /// Records that adding a watch under `root` failed for the limit, and
    /// says so on the console the first time.
    fn hit(&self, root: &Path) {
        let mut m = self.message.lock().unwrap();
        if m.is_none() {
            let advice = limit_advice(root);
            tracing::error!("{advice}");
            *m = Some(advice);
        }
    }
}

/// What to tell the user about the watch limit: the limit now, the folders
/// to watch, and the command that raises it (to twice what is needed, at
/// least 524,288, the value most distributions now ship).
fn limit_advice(root: &Path) -> String {
    let current: Option<u64> = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let folders = walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_dir())
        .count() as u64;
    let want = (current.unwrap_or(8192).max(folders) * 2)
        .next_power_of_two()
        .max(524_288);
    let now = current.map_or(String::new(), |c| format!(" = {c}"));
    format!(
        "cannot watch every folder of {}: the inotify watch limit (fs.inotify.max_user_watches{now}) is reached \
         ({folders} folders here; other programs' watches count too); the folders beyond it are covered by a rescan \
         every 3 s meanwhile. To raise it: sudo sysctl fs.inotify.max_user_watches={want} (and add \
         fs.inotify.max_user_watches={want} to /etc/sysctl.d/ to keep it)",
        root.display()
    )
}

/// Whether `e` is the kernel refusing one more watch.
fn is_limit(e: &notify::Error) -> bool {
    match &e.kind {
        notify::ErrorKind::MaxFilesWatch => true,
        notify::ErrorKind::Io(io) => io.raw_os_error() == Some(28),
        _ => false,
    }
}

/// For tests only: `LAB3_TEST_MAX_WATCHES=N` makes the server watch at
/// most N folders, one by one, and then fail as the kernel does at its
/// limit (the real limit is per user and machine-wide: a test must not
/// lower it under other programs' feet).
fn test_cap() -> Option<usize> {
    std::env::var("LAB3_TEST_MAX_WATCHES").ok()?.parse().ok()
}

#[cfg(not(target_os = "linux"))]
/// Watches at most `cap` folders of `root`, each on its own; then fails
/// with the kernel's "too many watches".
fn watch_capped(w: &mut notify::RecommendedWatcher, root: &Path, cap: usize) -> notify::Result<()> {
    let dirs = walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_dir());
    for (i, dir) in dirs.enumerate() {
        if i >= cap {
            return Err(notify::Error::new(notify::ErrorKind::MaxFilesWatch));
        }
        w.watch(dir.path(), RecursiveMode::NonRecursive)?;
    }
    Ok(())
}

/// The folders watched one by one (Linux), by their paths relative to the
/// root ("" is the root), as far as this side knows: a path is put in
/// before its watch is asked for, and taken out (with everything below it)
/// by the event handler as soon as notify reports the folder deleted or
/// moved away, which is when notify drops its watches. Wrong the other way
/// (a watched folder not in the set) costs a look at a folder's contents
/// again; a folder in the set without a watch would go unwatched, so every
/// doubt (lost events) empties the set.
#[cfg(target_os = "linux")]
#[derive(Debug, Default)]
struct Watched {
    set: Mutex<BTreeSet<String>>,
}

#[cfg(target_os = "linux")]
impl Watched {
    /// `rel` and every folder below it are no longer watched.
    fn forget(&self, rel: &str) {
        let mut set = self.set.lock().unwrap();
        set.remove(rel);
        // The paths below `rel` are those from "rel/" up to "rel0" ('0'
        // follows '/').
        let below: Vec<String> = (set.range(format!("{rel}/")..format!("{rel}0")))
            .cloned()
            .collect();
        for p in below {
            set.remove(&p);
        }
    }
}

/// Keeps the OS watch alive; dropping it stops watching.
pub struct Watcher {
    inner: notify::RecommendedWatcher,
    #[cfg(target_os = "linux")]
    root: PathBuf,
    #[cfg(target_os = "linux")]
    watched: Arc<Watched>,
    #[cfg(target_os = "linux")]
    limit: Arc<WatchLimit>,
    #[cfg(target_os = "linux")]
    rescan: Arc<RescanFlag>,
    /// `LAB3_TEST_MAX_WATCHES`.
    #[cfg(target_os = "linux")]
    cap: Option<usize>,
}

impl Watcher {
    /// Whether folder `rel` is known to be watched (always, where the root
    /// is watched recursively).
    pub fn is_watched(&self, rel: &str) -> bool {
        #[cfg(target_os = "linux")]
        return self.watched.set.lock().unwrap().contains(rel);
        #[cfg(not(target_os = "linux"))]
        {
            let _ = rel;
            true
        }
    }

    /// Watches the folders `dirs` (relative to the root; "" is the root)
    /// not watched yet, each on its own, in one request to notify's
    /// thread. Called before each folder is listed (see [`crate::sync::disk::scan_with`]).
    /// A folder gone meanwhile is skipped (its parent's event says so);
    /// the watch limit is noted in the [`WatchLimit`] and ends the request.
    /// Nothing to do where the root is watched recursively.
    pub fn add(&mut self, dirs: &[String]) {
        #[cfg(target_os = "linux")]
        self.add_each(dirs);
        #[cfg(not(target_os = "linux"))]
        let _ = (dirs, &self.inner);
    }

    #[cfg(target_os = "linux")]
    fn add_each(&mut self, dirs: &[String]) {
        let mut todo = Vec::new();
        let mut capped = false;
        {
            let mut set = self.watched.set.lock().unwrap();
            for d in dirs {
                if set.contains(d) {
                    continue;
                }
                if self.cap.is_some_and(|cap| set.len() >= cap) {
                    capped = true;
                    break;
                }
                // In the set before the watch is asked for: the handler's
                // `forget` of a deletion seen after the watch then finds it.
                set.insert(d.clone());
                todo.push(d.clone());
            }
        }
        let mut ops: Vec<notify::PathOp> = (todo.iter())
            .map(|d| notify::PathOp::watch_non_recursive(self.root.join(d)))
            .collect();
        while !ops.is_empty() {
            let Err(e) = self.inner.update_paths(ops) else {
                break;
            };
            let failed = e.origin.as_ref().map(|op| op.as_path().to_path_buf());
            let rest: Vec<PathBuf> = (e.remaining.iter())
                .map(|op| op.as_path().to_path_buf())
                .collect();
            let undo = |paths: &mut dyn Iterator<Item = &PathBuf>| {
                let mut set = self.watched.set.lock().unwrap();
                for p in paths {
                    if let Some(rel) = paths::relative(&self.root, p)
                        .or_else(|| (p == &self.root).then(String::new))
                    {
                        set.remove(&rel);
                    }
                }
            };
            undo(&mut failed.iter());
            // The folders beyond the limit are rescanned every 3 s (see
            // `Exec::rescan_interval`); a new one is listed after this.
            if is_limit(&e.source) {
                undo(&mut rest.iter());
                self.limit.hit(&self.root);
                return;
            }
            match (&e.source.kind, &failed) {
                // Gone since it was listed: its parent's watch reports it.
                (notify::ErrorKind::PathNotFound, Some(_)) => {}
                (notify::ErrorKind::Io(io), Some(_))
                    if io.kind() == std::io::ErrorKind::NotFound
                        || io.raw_os_error() == Some(libc::ENOTDIR) => {}
                (_, Some(p)) => {
                    let why = explain(e.source);
                    tracing::warn!("watcher: cannot watch {}: {why}; rescanning", p.display());
                    self.rescan.raise();
                }
                // The request itself failed: nothing known to be watched.
                (_, None) => {
                    let why = explain(e.source);
                    undo(
                        &mut todo
                            .iter()
                            .map(|d| self.root.join(d))
                            .collect::<Vec<_>>()
                            .iter(),
                    );
                    tracing::warn!("watcher: {why}; rescanning");
                    self.rescan.raise();
                    return;
                }
            }
            ops = e.remaining;
        }
        if capped {
            self.limit.hit(&self.root);
        }
    }
}

/// Watches `root`, sending hints to `tx`: recursively on macOS and
/// Windows; on Linux the watcher is made here and each folder is watched
/// by [`Watcher::add`] as the engine lists it. Hitting the watch limit,
/// at start or later (a new folder), is noted in `limit` and is no error:
/// what is watched stays watched.
pub fn watch(
    root: &Path,
    ignore: Ignore,
    tx: mpsc::Sender<Hint>,
    rescan: Arc<RescanFlag>,
    limit: Arc<WatchLimit>,
) -> notify::Result<Watcher> {
    let root_owned: PathBuf = root.to_path_buf();
    let limit_in_handler = limit.clone();
    #[cfg(target_os = "linux")]
    let watched = Arc::new(Watched::default());
    #[cfg(target_os = "linux")]
    let watched_in_handler = watched.clone();
    let rescan_in_handler = rescan.clone();
    let handler = move |res: notify::Result<notify::Event>| {
        let rescan = &rescan_in_handler;
        let event = match res {
            Ok(e) => e,
            Err(e) if is_limit(&e) => {
                limit_in_handler.hit(&root_owned);
                rescan.raise();
                return;
            }
            Err(e) => {
                tracing::warn!("watcher: {e}; rescanning");
                rescan.raise();
                return;
            }
        };
        if event.need_rescan() {
            tracing::warn!("watcher: events were lost; rescanning");
            // Which folders were deleted or moved away is unknown now.
            #[cfg(target_os = "linux")]
            watched_in_handler.set.lock().unwrap().clear();
            rescan.raise();
            return;
        }
        // A folder deleted or moved away: notify drops its watches (and
        // those below it) once this batch of events is handled.
        #[cfg(target_os = "linux")]
        let gone = matches!(
            event.kind,
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From))
        );
        let urgency = match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => Urgency::Now,
            EventKind::Access(_) => return,
            // A folder is not written to: looked at soon (watched then, on
            // Linux, and listed).
            EventKind::Create(CreateKind::Folder) => Urgency::Soon,
            EventKind::Modify(ModifyKind::Data(_)) | EventKind::Create(_) => Urgency::Quiet,
            _ => Urgency::Soon,
        };
        for p in &event.paths {
            let Some(rel) = paths::relative(&root_owned, p) else {
                continue;
            };
            #[cfg(target_os = "linux")]
            if gone {
                watched_in_handler.forget(&rel);
            }
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
    let w = notify::RecommendedWatcher::new(handler, config)?;
    // Linux: the folders are watched as the scans list them (`Watcher::add`).
    #[cfg(target_os = "linux")]
    return Ok(Watcher {
        inner: w,
        root: root.to_path_buf(),
        watched,
        limit,
        rescan,
        cap: test_cap(),
    });
    #[cfg(not(target_os = "linux"))]
    {
        let mut w = w;
        let added = match test_cap() {
            Some(cap) => watch_capped(&mut w, root, cap),
            None => w.watch(root, RecursiveMode::Recursive),
        };
        match added {
            Ok(()) => {}
            Err(e) if is_limit(&e) => limit.hit(root),
            Err(e) => return Err(explain(e)),
        }
        Ok(Watcher { inner: w })
    }
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
