//! The executor around the sync core: one thread owns the [`Core`], the
//! journal and the [`Disk`], and turns everything that happens (watcher
//! hints, rescans, the link's messages and finished transfers, lock
//! commands, timers) into core inputs, and the core's effects into I/O.
//! It decides nothing itself: every "what now" is the core's.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

use super::core::{
    self, Core, Direction, Effect, Entry, FsTraits, Holding, Input, OpId, Outcome, PeerMsg,
    Replayed, Side, Timer,
};
use super::disk::{self, Disk};
use super::queue_cursor;
use super::records::Records;
use super::retention::Retention;
use super::watcher::{self, Hint, RescanFlag, Urgency};
use super::{transfer, Command, LinkStatus, SyncConfig, SyncHandle};
use crate::meta::now_ns;
use crate::protocol::{AppliedUpdate, Message, Role};

/// Everything that reaches the executor.
pub(crate) enum Event {
    LinkUp {
        id: u64,
        out: mpsc::UnboundedSender<Outgoing>,
        peer: FsTraits,
        clock_skew_ns: i64,
    },
    LinkDown {
        id: u64,
    },
    /// What the peer sent, in order (a burst comes as one event).
    Peer {
        id: u64,
        msgs: Vec<Incoming>,
    },
    /// Files the link finished reading: the hash sent, or why not (it
    /// changed while it was read, or could not be read; the peer was told
    /// to drop it).
    Sent {
        id: u64,
        files: Vec<(OpId, transfer::Sent)>,
    },
    Scanned {
        found: std::io::Result<disk::Found>,
    },
    Command(Command),
}

/// One message from the peer, with the verified content of a file offer.
pub(crate) struct Incoming {
    pub msg: PeerMsg,
    /// The staged key, the temporary file, and whether it is on disk
    /// already (see `transfer::Received::flushed`).
    pub staged: Option<(String, tempfile::TempPath, bool)>,
    /// The link's count of received files not yet taken (see
    /// `link::IN_FLIGHT`), released once the core has it.
    pub permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// What the link's writer sends.
pub(crate) enum Outgoing {
    Msg(Message),
    /// An offer of a file, then the file's bytes (checked against `expect`).
    File {
        op: OpId,
        expect: Entry,
        offer: PeerMsg,
    },
}

/// Events taken at once from the queue before the journal is written and
/// the answers go out.
const BURST: usize = 256;

/// The safety-net rescan where events may be missing (no watcher, a
/// network file system, folders beyond the watch limit).
const LIMITED_RESCAN: Duration = Duration::from_secs(3);

struct Link {
    id: u64,
    out: mpsc::UnboundedSender<Outgoing>,
}

struct Exec {
    cfg: Arc<SyncConfig>,
    handle: SyncHandle,
    core: Core,
    disk: Disk,
    journal: Records,
    link: Option<Link>,
    /// Messages for the peer from the effects of one input, sent once the
    /// journal holds what they acknowledge (see [`Exec::feed`]).
    outbox: Vec<Outgoing>,
    /// The core's effects held back behind an install, in the order asked
    /// for, until the burst's end (see [`Exec::hold`]).
    held: VecDeque<Effect>,
    /// Folders an effect found new, to be scanned once it is fed back.
    new_folders: Vec<String>,
    /// Paths hinted by the watcher: when to look, and whether a writer
    /// closed them; `due_order` keeps them by deadline.
    due: HashMap<String, (Instant, bool)>,
    due_order: BTreeSet<(Instant, String)>,
    /// The core's timers, by when (ns since the epoch).
    timers: BTreeMap<i64, Vec<Timer>>,
    /// Unlock commands waiting for the core's `Unlocked`.
    unlocks: HashMap<String, Vec<oneshot::Sender<anyhow::Result<Vec<AppliedUpdate>>>>>,
    /// Files handed to the link to send, not yet read.
    sending: usize,
    scanning: bool,
    /// The folder's watch (none where it could not be made); on Linux the
    /// engine adds each folder's watch as it lists the folder.
    watch: Option<watcher::Watcher>,
    /// Set once the watch limit left folders without events.
    watch_limit: Arc<watcher::WatchLimit>,
    /// Skipped paths already warned about.
    warned: HashSet<PathBuf>,
    /// The core's `unsent_changes` last published to the status.
    unsent_seen: u64,
}

/// What [`look_at_folder`] found out: the folder's watch and the start-up
/// scan.
struct Folder {
    watch: Option<watcher::Watcher>,
    hint_rx: mpsc::Receiver<Hint>,
    flag: Arc<RescanFlag>,
    found: Vec<(String, Entry)>,
    skipped: Vec<(PathBuf, String)>,
}

/// Starts the engine over `cfg.root`: checks the folder, probes its file
/// system, and hands the rest (the journal, the watch, the start-up scan)
/// to the engine's thread, so that the server answers while a big folder
/// is scanned ([`SyncHandle::ready`] says when the engine runs).
pub fn start(cfg: SyncConfig) -> anyhow::Result<SyncHandle> {
    let mut cfg = cfg;
    let opened = if cfg.root.exists() {
        None
    } else {
        let journal = Records::open(&cfg.state_dir)?;
        super::check_folder(&cfg.root, journal.agreed(), cfg.confirm_empty)?;
        std::fs::create_dir_all(&cfg.root)?;
        Some(journal)
    };
    cfg.root = std::fs::canonicalize(&cfg.root)?;
    // Made before the journal and the folder are read side by side (the
    // temporary folder's place depends on where the state directory is).
    std::fs::create_dir_all(&cfg.state_dir)?;
    let tmp_dir = transfer::temp_dir_for(&cfg.root, &cfg.state_dir)?;
    // The run is counted here, before the server accepts a connection:
    // counted on the engine's thread, its flushes (core-run and the state
    // folder) ran while the link's TLS handshake went out, and
    // tests/power_cut.rs holds a server to flushing what it renames into
    // its state folder before it writes to a socket.
    let run = super::records::next_run(&cfg.state_dir)?;
    let fs = disk::probe(&cfg.root);
    log_traits(&cfg, fs);
    let (events, rx) = mpsc::unbounded_channel();
    let (actions, _) = broadcast::channel(1024);
    let handle = SyncHandle {
        events,
        cfg: Arc::new(cfg),
        tmp_dir,
        actions,
        watchers: Arc::new(tokio::sync::watch::Sender::new(0)),
        status: Arc::new(Mutex::new(LinkStatus::default())),
        queues: Arc::default(),
        fs,
        watch_limit: Arc::default(),
        failing: Arc::default(),
        set_aside: Arc::default(),
        startup: Arc::default(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let engine = handle.clone();
    std::thread::Builder::new()
        .name("sync engine".into())
        .spawn(move || match prepare(engine.clone(), opened, run) {
            Ok((exec, hint_rx, flag)) => {
                engine.startup.finish(Ok(()));
                rt.block_on(exec.run(rx, hint_rx, flag));
            }
            Err(e) => {
                tracing::error!("the sync engine could not start: {e:#}");
                engine.startup.finish(Err(format!("{e:#}")));
            }
        })?;
    Ok(handle)
}

/// The engine's start on its own thread: the journal read while the folder
/// is watched and scanned, then the core made from both.
fn prepare(
    handle: SyncHandle,
    opened: Option<Records>,
    run: u64,
) -> anyhow::Result<(Exec, mpsc::Receiver<Hint>, Arc<RescanFlag>)> {
    let cfg = handle.cfg.clone();
    let fs = handle.fs;
    let t0 = std::time::Instant::now();
    // The journal is read (parsing: CPU) while the folder is watched and
    // scanned (system calls): on a restart over a big tree these two are
    // most of the start-up, and need not wait for each other.
    // The journal's thread also makes the core's states of what it read,
    // and their indexes: neither needs the scan, and each was a serial
    // step after it (issue 15). (The run was counted in `start`, before
    // the server took a connection.) The states are made there for memory
    // too: the records it frees are then memory its own
    // allocator arena gives to the states (made on the engine's thread,
    // a big tree's journal was held twice at the peak, once in each
    // thread's arena).
    let (journal, folder) = std::thread::scope(|s| {
        let reading = s.spawn(|| {
            let journal = match opened {
                Some(journal) => journal,
                None => Records::open(&cfg.state_dir)?,
            };
            let read = with_states(journal, &cfg.ignore);
            tracing::debug!("start-up: journal read in {:?}", t0.elapsed());
            Ok::<_, std::io::Error>(read)
        });
        let folder = look_at_folder(&cfg, &handle);
        tracing::debug!("start-up: folder watched and scanned in {:?}", t0.elapsed());
        let journal = (reading.join()).unwrap_or_else(|p| std::panic::resume_unwind(p));
        (journal, folder)
    });
    let ((journal, mut records, agreed), folder) = (journal?, folder?);
    let Folder {
        watch,
        hint_rx,
        flag,
        mut found,
        skipped,
    } = folder;
    if agreed > 0 && found.is_empty() && !cfg.confirm_empty {
        tracing::warn!(
            "{} is empty, but it held {agreed} files at the last sync; not propagating those deletes \
             (an unmounted disk?). The peer's copies will come back; to delete them everywhere instead, \
             restart with --confirm-empty",
            cfg.root.display()
        );
        records.forget_history();
    }
    let mut disk = Disk::new(cfg.root.clone(), cfg.state_dir.clone());
    disk.set_traits(fs);
    let days = cfg.keep_versions_days;
    let mut retention = Retention::load(&cfg.state_dir, days, cfg.versions_cap);
    retention.set_folder_bytes(folder_bytes(&found));
    disk.set_retention(retention);
    let mut set_aside = Vec::new();
    for (p, lock) in records.locks_mut() {
        // An interrupted unlock resumes after its cursor; an entry
        // whose description is damaged, or without its snapshot, is
        // set aside and reported, not replayed.
        let dir = disk.queue_dir(p);
        for a in queue_cursor::set_aside_damaged(&dir) {
            set_aside.push((p.clone(), a));
        }
        lock.queue = disk.queued(p);
        let here = found.iter().find(|(f, _)| f == p).map(|(_, e)| e);
        for a in queue_cursor::set_aside_missing(&dir, &mut lock.queue, here, fs.precision_ns) {
            set_aside.push((p.clone(), a));
        }
        if let Some(c) = queue_cursor::read(&dir) {
            lock.replayed_here = c.here;
        }
        let last = lock.queue.last().map_or(0, |q| q.seq);
        lock.next_seq = lock.next_seq.max(last);
    }
    // A landing's file is hashed before the core settles it (see
    // `core::Input::Scanned`): a look-alike saved over it is not it.
    let landed = core::landings_to_hash(
        (records.states().iter())
            .filter_map(|(p, r)| r.landing.as_deref().map(|v| (p.as_str(), v))),
        &found,
    );
    let to_hash: Vec<(String, Entry)> = landed.iter().map(|&i| found[i].clone()).collect();
    // (`hash_all` answers in the order it was asked.)
    for (i, (_, hash)) in landed.into_iter().zip(disk.hash_all(&to_hash)) {
        found[i].1.hash = hash.map(|h| core::Hash::from(h.as_str()));
    }
    let side = if cfg.me == Role::ServerB {
        Side::B
    } else {
        Side::A
    };
    let mut core_cfg = core::Config::new(side);
    core_cfg.fs = fs;
    core_cfg.keep_versions = days > 0;
    core_cfg.keep_deletes_ns = i64::from(cfg.keep_deletes_days) * 86_400_000_000_000;
    core_cfg.run = run;
    *handle.queues.lock().unwrap() = (records.states().iter())
        .filter_map(|(p, r)| r.lock.as_ref().map(|l| (p.clone(), l.queue.clone())))
        .collect();
    tracing::debug!("start-up: states ready at {:?}", t0.elapsed());
    let core = Core::from_indexed(core_cfg, records);
    tracing::debug!("start-up: core made at {:?}", t0.elapsed());
    for (path, a) in set_aside {
        let what = a.what;
        let at = a.at.display().to_string();
        let detail = format!("{what}; skipped, set aside as {at}");
        handle.announce("error", handle.side(), &path, a.size, detail);
        handle
            .set_aside
            .lock()
            .unwrap()
            .push(crate::protocol::SetAsideInfo {
                side: handle.side().to_lowercase(),
                path,
                what,
                at,
                time_ns: now_ns(),
            });
    }
    let watch_limit = handle.watch_limit.clone();
    let mut exec = Exec {
        disk,
        cfg,
        handle,
        core,
        journal,
        link: None,
        outbox: Vec::new(),
        held: VecDeque::new(),
        new_folders: Vec::new(),
        due: HashMap::new(),
        due_order: BTreeSet::new(),
        timers: BTreeMap::new(),
        unlocks: HashMap::new(),
        sending: 0,
        scanning: false,
        watch,
        watch_limit,
        warned: HashSet::new(),
        unsent_seen: 0,
    };
    exec.warn_skipped(&skipped);
    exec.feed(Input::Scanned { entries: found });
    tracing::debug!("start-up: scan taken at {:?}", t0.elapsed());
    Ok((exec, hint_rx, flag))
}

/// The journal, the core's state of every path it kept (taken out of
/// it) with their indexes, and how many of those had an agreed base.
/// Paths the rules ignore now (a rule added since the last run) were not
/// deleted: they are forgotten, so that no delete reaches the peer.
/// (Filtered in place: a copy of a big tree's journal into a `Vec` was a
/// large share of a restart's peak memory. The map is built again in one
/// pass: made line by line, its nodes are about half full.)
fn with_states(
    mut journal: Records,
    ignore: &crate::ignore::Ignore,
) -> (Records, core::Indexed, usize) {
    let agreed = journal.agreed();
    let mut states: core::States = journal.take().into_iter().collect();
    states.retain(|p, _| !ignore.is_ignored_path(p));
    (journal, core::Indexed::new(states), agreed)
}

/// Says what the folder's file system keeps, where it is not the usual.
fn log_traits(cfg: &SyncConfig, fs: FsTraits) {
    if fs == FsTraits::default() {
        return;
    }
    tracing::info!(
        "{}: mtimes to {} ns, {}, {}{}{}",
        cfg.root.display(),
        fs.precision_ns,
        if fs.has_modes {
            "permission bits"
        } else {
            "no permission bits"
        },
        if fs.case_insensitive {
            "case-insensitive"
        } else {
            "case-sensitive"
        },
        if fs.normalization_insensitive {
            ", one file per Unicode form"
        } else {
            ""
        },
        if fs.windows_names {
            ", Windows' rules for names"
        } else {
            ""
        },
    );
}

/// The folder's side of a start: the watch, then the start-up scan (its
/// progress told to `handle`'s [`StartUp`](super::startup::StartUp)).
fn look_at_folder(cfg: &SyncConfig, handle: &SyncHandle) -> anyhow::Result<Folder> {
    // Each folder is watched before the start-up scan lists it (on Linux
    // the scan adds the watches itself, folder by folder: one walk of the
    // tree, not notify's recursive walk and then the scan; elsewhere the
    // root is watched recursively here): a file made in a folder before
    // its watch is listed, one made after raises an event, never neither.
    let (hint_tx, hint_rx) = mpsc::channel(16 * 1024);
    let flag = Arc::new(RescanFlag::default());
    let mut watch = match watcher::watch(
        &cfg.root,
        cfg.ignore.clone(),
        hint_tx,
        flag.clone(),
        handle.watch_limit.clone(),
    ) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::error!(
                "cannot watch {}: {e}; falling back to rescans every {:?}",
                cfg.root.display(),
                cfg.rescan_every.unwrap_or(Duration::from_secs(3))
            );
            None
        }
    };
    tracing::debug!("start-up: watcher made");
    let delay = super::startup::test_delay_per_folder();
    let mut progress = |n: usize| {
        handle.startup.found(n);
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
    };
    let mut watch_folders = |dirs: &[String]| {
        if let Some(w) = watch.as_mut() {
            w.add(dirs);
        }
    };
    let (found, skipped) = disk::scan_with(
        &cfg.root,
        "",
        &cfg.ignore,
        handle.fs,
        &mut progress,
        &mut watch_folders,
    )?;
    Ok(Folder {
        watch,
        hint_rx,
        flag,
        found,
        skipped,
    })
}

impl Exec {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Event>,
        mut hints: mpsc::Receiver<Hint>,
        flag: Arc<RescanFlag>,
    ) {
        let mut every = self.rescan_interval();
        tracing::debug!("safety-net rescan every {every:?}");
        let mut rescan = tokio::time::interval(every);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        rescan.tick().await;
        // What the start-up scan asked for (an interrupted unlock's
        // replays) is carried out now, not at the first event.
        self.flush_out();
        loop {
            // The watch limit hit since (a new folder): rescans cover the
            // folders beyond it from now on.
            if self.watch_limit.is_hit()
                && every > LIMITED_RESCAN
                && self.cfg.rescan_every.is_none()
            {
                every = self.rescan_interval();
                rescan = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            }
            let next = self.next_wake();
            tokio::select! {
                Some(h) = hints.recv() => {
                    self.hint(h);
                    while let Ok(h) = hints.try_recv() {
                        self.hint(h);
                    }
                    self.wake();
                }
                ev = rx.recv() => match ev {
                    Some(ev) => {
                        // What else is waiting goes in the same batch: one
                        // journal write and one send for all of it.
                        let mut burst = vec![ev];
                        while burst.len() <= BURST {
                            match rx.try_recv() {
                                Ok(ev) => burst.push(ev),
                                Err(_) => break,
                            }
                        }
                        self.stage_ahead(&mut burst);
                        for ev in burst {
                            self.event(ev);
                        }
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))), if next.is_some() => self.wake(),
                _ = rescan.tick() => self.start_scan(),
                _ = flag.wake.notified() => {
                    if flag.take() {
                        self.start_scan();
                    }
                }
            }
            self.flush_out();
        }
    }

    /// See the README: 3 s where events may be missing, 30 s otherwise.
    fn rescan_interval(&self) -> Duration {
        if let Some(every) = self.cfg.rescan_every {
            return every;
        }
        if self.watch.is_some()
            && !self.watch_limit.is_hit()
            && !crate::scan::events_may_be_missing(&self.cfg.root)
        {
            Duration::from_secs(30)
        } else {
            LIMITED_RESCAN
        }
    }

    fn hint(&mut self, h: Hint) {
        let at = Instant::now() + h.urgency.delay();
        let closed = h.urgency == Urgency::Now;
        let (at, closed) = match (self.due.get(&h.path), h.urgency) {
            // Still being written: wait for it to be quiet.
            (_, Urgency::Quiet) | (None, _) => (at, closed),
            (Some(&(old, was_closed)), _) => (old.min(at), was_closed || closed),
        };
        if let Some((old, _)) = self.due.insert(h.path.clone(), (at, closed)) {
            self.due_order.remove(&(old, h.path.clone()));
        }
        self.due_order.insert((at, h.path));
    }

    fn next_wake(&self) -> Option<Instant> {
        let hint = self.due_order.first().map(|(t, _)| *t);
        let timer = self.timers.keys().next().map(|&at| {
            let wait = (at - now_ns()).max(0) as u64;
            Instant::now() + Duration::from_nanos(wait)
        });
        match (hint, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Looks at the hinted paths that are due and fires due timers.
    fn wake(&mut self) {
        let now = Instant::now();
        while let Some((t, _)) = self.due_order.first() {
            if *t > now {
                break;
            }
            let (_, path) = self.due_order.pop_first().expect("just seen");
            let closed = self.due.remove(&path).is_some_and(|(_, c)| c);
            self.look(path, closed);
        }
        let now_ns = now_ns();
        let later = self.timers.split_off(&(now_ns + 1));
        let fired = std::mem::replace(&mut self.timers, later);
        for t in fired.into_values().flatten() {
            self.feed(Input::Timer(t));
        }
    }

    /// Stats `path` for the core; a folder new to the core brings what it
    /// holds (a folder moved in raises no events for its contents, and
    /// files made in a new folder before its watch was added raise none).
    /// A file replaced by a folder is a new folder even where the folder
    /// got the file's inode number back. A folder not watched yet (made or
    /// moved in since the start, here or by an install) is watched, and
    /// then what it holds is looked at, whether new to the core or not:
    /// the watch is added before the folder is listed (see
    /// [`Exec::folder_contents`]), so a file made in it before the watch
    /// is listed and one made after raises an event. (notify's recursive
    /// watch did the same for a new folder: watched it and its folders,
    /// and left what was made in them before to the engine's look.)
    fn look(&mut self, path: String, closed: bool) {
        let mut entry = match self.disk.stat(&path) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("cannot stat {path}: {e}");
                return;
            }
        };
        // An event on a file whose stat the core already knows, on a
        // folder with coarse mtimes: its content may have changed all the
        // same (see `Entry::needs_hash_on_event`).
        if let Some(e) = entry.as_mut() {
            let known = self.core.path(&path).and_then(|s| s.local.as_ref());
            if e.needs_hash_on_event(known, self.core.config().fs.precision_ns) {
                e.hash = self.disk.hash(&path, e).map(core::Hash::from);
            }
        }
        if entry.is_none() {
            if let Some(link) = self.disk.symlink(&path) {
                self.warn_skipped(&[(link, "symbolic link, not followed".into())]);
            }
        }
        let new_dir = entry.as_ref().is_some_and(|e| {
            e.kind == core::Kind::Dir
                && self
                    .core
                    .path(&path)
                    .and_then(|s| s.local.as_ref())
                    .is_none_or(|l| l.id != e.id || l.kind != core::Kind::Dir)
        });
        let unwatched = entry.as_ref().is_some_and(|e| {
            e.kind == core::Kind::Dir && self.watch.as_ref().is_some_and(|w| !w.is_watched(&path))
        });
        self.feed(Input::Observed {
            path: path.clone(),
            entry,
            closed,
        });
        if new_dir || unwatched {
            for input in self.folder_contents(&path) {
                self.feed(input);
            }
        }
    }

    /// What folder `path` holds, as observations for the core; each folder
    /// in it not watched yet is watched before it is listed.
    fn folder_contents(&mut self, path: &str) -> Vec<Input> {
        let watch = &mut self.watch;
        let mut watch_folders = |dirs: &[String]| {
            if let Some(w) = watch.as_mut() {
                w.add(dirs);
            }
        };
        let scanned = disk::scan_with(
            &self.cfg.root,
            path,
            &self.cfg.ignore,
            self.handle.fs,
            &mut |_| {},
            &mut watch_folders,
        );
        match scanned {
            Ok((found, skipped)) => {
                self.warn_skipped(&skipped);
                found
                    .into_iter()
                    .map(|(p, e)| Input::Observed {
                        path: p,
                        entry: Some(e),
                        closed: false,
                    })
                    .collect()
            }
            Err(e) => {
                tracing::warn!("scanning {path}: {e}");
                Vec::new()
            }
        }
    }

    fn start_scan(&mut self) {
        if self.scanning {
            return;
        }
        self.scanning = true;
        let (root, ignore) = (self.cfg.root.clone(), self.cfg.ignore.clone());
        let (events, fs) = (self.handle.events.clone(), self.handle.fs);
        tokio::task::spawn_blocking(move || {
            let found = disk::scan(&root, "", &ignore, fs);
            let _ = events.send(Event::Scanned { found });
        });
    }

    fn warn_skipped(&mut self, skipped: &[(PathBuf, String)]) {
        for (p, why) in skipped {
            if self.warned.insert(p.clone()) {
                tracing::warn!("skipping {}: {why}", p.display());
            }
        }
    }

    /// Stages every file received in `burst` (up to a change of link)
    /// before the first event is handled: the first install's one flush to
    /// disk (`syncfs` on Linux) then covers all of them. The link hands
    /// files over a few at a time as they arrive, so staging each event's
    /// files as it is handled cost one `syncfs` every four files or so
    /// (2,403 for 10,000 small files), each waiting for the disk.
    fn stage_ahead(&mut self, burst: &mut [Event]) {
        let Some(link) = self.link.as_ref().map(|l| l.id) else {
            return;
        };
        for ev in burst.iter_mut() {
            match ev {
                Event::Peer { id, msgs } if *id == link => {
                    for m in msgs.iter_mut() {
                        if let Some((hash, temp, flushed)) = m.staged.take() {
                            self.disk.stage(hash, temp, flushed);
                        }
                    }
                }
                Event::LinkUp { .. } | Event::LinkDown { .. } => return,
                _ => {}
            }
        }
    }

    fn event(&mut self, ev: Event) {
        match ev {
            Event::LinkUp {
                id,
                out,
                peer,
                clock_skew_ns,
            } => {
                tracing::info!(
                    "link to server {} is up; reconciling",
                    self.handle.peer_side()
                );
                // Nothing said on the old link goes out on the new one
                // (`flush_out` empties the outbox, sent or not).
                self.flush_out();
                self.link = Some(Link { id, out });
                self.sending = 0;
                {
                    let mut st = self.handle.status.lock().unwrap();
                    st.up = true;
                    st.since_ns = Some(now_ns());
                    st.clock_skew_ns = Some(clock_skew_ns);
                    st.sending = 0;
                }
                self.feed(Input::LinkUp { peer });
                tracing::debug!("link up: digest sent");
            }
            Event::LinkDown { id } => {
                if self.link.as_ref().is_some_and(|l| l.id == id) {
                    self.flush_out();
                    self.link = None;
                    self.sending = 0;
                    tracing::info!("link to server {} is down", self.handle.peer_side());
                    let mut st = self.handle.status.lock().unwrap();
                    st.up = false;
                    st.since_ns = Some(now_ns());
                    st.sending = 0;
                    drop(st);
                    self.feed(Input::LinkDown);
                }
            }
            Event::Peer { id, mut msgs } => {
                if self.link.as_ref().is_none_or(|l| l.id != id) {
                    return;
                }
                // Every received file of the batch is staged before the
                // first is installed: the install's one flush to disk
                // (`syncfs` on Linux) then covers them all, not one each.
                for m in msgs.iter_mut() {
                    if let Some((hash, temp, flushed)) = m.staged.take() {
                        self.disk.stage(hash, temp, flushed);
                    }
                }
                for m in msgs {
                    if self.link.as_ref().is_some_and(|l| l.id == id) {
                        let step = matches!(m.msg, PeerMsg::Digest(_) | PeerMsg::Inventory { .. });
                        self.feed(Input::Peer(m.msg));
                        drop(m.permit);
                        // A reconciliation's step (this side's inventory,
                        // its hashes) goes at once, not with the rest of
                        // the burst: the peer reads it while this side goes
                        // on. (Row 2: A's inventory waited for A's whole
                        // reconciliation, B's peer's digest, inventory and
                        // hashes arriving in one burst, and B read it only
                        // then, before its first install.)
                        if step && !self.outbox.is_empty() {
                            self.flush_out();
                        }
                    }
                }
            }
            Event::Sent { id, files } => {
                if self.link.as_ref().is_some_and(|l| l.id == id) {
                    for (op, hash) in files {
                        self.sending = self.sending.saturating_sub(1);
                        let outcome = match hash {
                            transfer::Sent::Done { hash, .. } => Outcome::Sent { hash },
                            transfer::Sent::Changed => Outcome::Mismatch { found: None },
                            transfer::Sent::Unreadable { error } => {
                                Outcome::Failed { error, retry: true }
                            }
                        };
                        self.feed(Input::Done { op, outcome });
                    }
                    self.handle.status.lock().unwrap().sending = self.sending;
                }
            }
            Event::Scanned { found } => {
                self.scanning = false;
                match found {
                    Ok((entries, skipped)) => {
                        self.warn_skipped(&skipped);
                        // The safety-net rescan also ages out old versions.
                        self.disk.set_folder_bytes(folder_bytes(&entries));
                        self.disk.expire();
                        self.feed(Input::Scanned { entries });
                    }
                    Err(e) => tracing::error!("scanning {}: {e}", self.cfg.root.display()),
                }
            }
            Event::Command(Command::Lock { path, reply }) => {
                self.feed(Input::Lock { path });
                // Locked once it is in the journal.
                self.flush_out();
                let _ = reply.send(());
            }
            Event::Command(Command::Restore { path, id, reply }) => {
                let side = self.handle.side().to_lowercase();
                let done = super::versions::restore(&mut self.disk, &path, id.as_deref(), &side);
                if let Ok(v) = &done {
                    let detail = format!("version {} ({})", v.id, v.why);
                    let here = self.handle.side().to_string();
                    self.handle
                        .announce("restored", &here, &path, Some(v.size), detail);
                    // A local change like any other, sent once looked at.
                    self.look(path, true);
                }
                let _ = reply.send(done);
            }
            Event::Command(Command::Unlock { path, reply }) => {
                self.unlocks.entry(path.clone()).or_default().push(reply);
                self.feed(Input::Unlock { path });
            }
        }
    }

    /// Hands `input` to the core and carries out the effects, feeding back
    /// what they report, until nothing is left but what is held behind an
    /// install until the burst's end (see [`Exec::hold`]).
    fn feed(&mut self, input: Input) {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            tracing::trace!("core <- {input:?}");
            let effects = self.core.handle(now_ns(), input);
            let mut effects = effects.into_iter().peekable();
            while let Some(e) = effects.next() {
                tracing::trace!("core -> {e:?}");
                let Some(e) = self.hold(e, &mut effects) else {
                    continue;
                };
                if let Some(back) = self.effect(e) {
                    inputs.push_back(back);
                }
            }
            for dir in std::mem::take(&mut self.new_folders) {
                inputs.extend(self.folder_contents(&dir));
            }
        }
        if self.core.unsent_changes() != self.unsent_seen {
            self.unsent_seen = self.core.unsent_changes();
            let side = self.handle.side().to_string();
            let names = self
                .core
                .unsent()
                .map(|(path, u)| crate::protocol::UnsyncedName {
                    path: path.clone(),
                    side: side.clone(),
                    why: u.why.clone(),
                })
                .collect();
            self.handle.status.lock().unwrap().names = names;
        }
    }

    /// Effect `e` back if it is carried out now, or `None`: it waits
    /// behind an install (`rest`: what follows it in the core's answer to
    /// the same input; a landing line takes its install along).
    ///
    /// Why (plain seed 343571 of the simulation): an install renames the
    /// peer's file into place after its landing line
    /// ([`core::PathState::landing`]) is set, and a restart that finds the
    /// file the line names takes it as agreed. The line used to reach the
    /// disk with the burst's journal flush, after the renames: a power
    /// cut could keep a rename (the file system writes metadata back on
    /// its own, and the folders are flushed before the journal) and lose
    /// the line. The restarted side then held the peer's file with no
    /// record of where it came from, a new name of its own, and sent it
    /// back (an echo, where the peer had put another content of the same
    /// time and size there meanwhile). Now a landing line is on disk before
    /// its install's rename: the journal is flushed first (with the folders
    /// before it, as at a burst's end) whenever a landing line was set
    /// since its last flush ([`Records::landing_unsynced`]).
    ///
    /// That is one flush per burst, not per file: an install waits, with
    /// everything the core asks for after it (in order), until the burst's
    /// end ([`Exec::flush_out`]), while the landing line of each later
    /// install, which the core sets just before asking for it, goes to the
    /// journal at once, unless something held names the same path (its
    /// lines keep their order). The first install's flush then takes every
    /// landing line of the burst to disk; the rest find nothing to flush.
    /// The simulation keeps the same order (its `world.rs`, `handle`) and
    /// flushes the same way (`durability.rs`).
    ///
    /// (The other way considered: the peer's inventory would say what it
    /// had offered, so that the restarted side could tell the peer's
    /// version from a file of its own. It covers only offers a peer still
    /// knows of (not a lock queue's replays, nor an offer of a change to a
    /// file both had), needs the offered version journalled by the sender
    /// and sent at every reconciliation, and guesses by size and time where
    /// the landing line knows; this keeps the guarantee where it was made.)
    fn hold(
        &mut self,
        e: Effect,
        rest: &mut std::iter::Peekable<std::vec::IntoIter<Effect>>,
    ) -> Option<Effect> {
        if let (
            Effect::Record {
                path,
                record: Some(r),
            },
            Some(Effect::Install { path: to, .. }),
        ) = (&e, rest.peek())
        {
            if r.landing.is_some() && path == to && !self.held.iter().any(|h| h.names(path)) {
                if let Effect::Record { path, record } = e {
                    self.record(path, record);
                }
                let install = rest.next().expect("the install looked at");
                tracing::trace!("core -> {install:?}");
                self.held.push_back(install);
                return None;
            }
        }
        if self.held.is_empty() && !matches!(e, Effect::Install { .. }) {
            return Some(e);
        }
        self.held.push_back(e);
        None
    }

    /// Carries out what [`Exec::hold`] held, in order (the first install
    /// flushes the burst's landing lines), and feeds back what that
    /// reports, until nothing is held.
    fn release(&mut self) {
        while !self.held.is_empty() {
            let mut back = Vec::new();
            while let Some(e) = self.held.pop_front() {
                back.extend(self.effect(e));
            }
            for dir in std::mem::take(&mut self.new_folders) {
                back.extend(self.folder_contents(&dir));
            }
            for input in back {
                self.feed(input);
            }
        }
    }

    /// Writes the journal, then hands the peer what the effects since the
    /// last call said: a peer must never hold an answer (and journal a
    /// base) that this side would forget if killed now. What was held
    /// behind an install is carried out first.
    fn flush_out(&mut self) {
        self.release();
        self.persist();
        self.note_failing();
        if let Some(l) = &self.link {
            for m in self.outbox.drain(..) {
                let _ = l.out.send(m);
            }
        }
        self.outbox.clear();
    }

    fn effect(&mut self, e: Effect) -> Option<Input> {
        match e {
            Effect::Send(msg) => {
                if self.link.is_some() {
                    self.outbox.push(Outgoing::Msg(Message::Sync(msg)));
                }
                None
            }
            Effect::SendFile {
                op, expect, offer, ..
            } => {
                self.link.as_ref()?;
                self.sending += 1;
                self.handle.status.lock().unwrap().sending = self.sending;
                self.outbox.push(Outgoing::File { op, expect, offer });
                None
            }
            Effect::Record { path, record } => {
                self.record(path, record);
                None
            }
            Effect::Announce(a) => {
                let direction = match a.direction {
                    Direction::Out => self.handle.outbound(),
                    Direction::In => self.handle.inbound(),
                    Direction::Here => self.handle.side().to_string(),
                };
                self.handle
                    .announce(a.action, &direction, &a.path, a.size, a.detail);
                None
            }
            Effect::Arm { timer, at_ns } => {
                self.timers.entry(at_ns).or_default().push(timer);
                None
            }
            Effect::Reconciled {
                agreed,
                to_send,
                by_digest,
            } => {
                let how = if by_digest { " (digests agree)" } else { "" };
                tracing::info!(
                    "reconciled with server {}{how}: {agreed} in agreement, {to_send} to send",
                    self.handle.peer_side()
                );
                self.handle.status.lock().unwrap().last_reconcile_ns = Some(now_ns());
                None
            }
            Effect::Unlocked { path, replayed } => {
                self.persist();
                // The journal says the lock is gone: the cursor may go.
                self.disk.end_queue(&path);
                let updates: Vec<AppliedUpdate> = replayed.iter().map(applied_update).collect();
                for reply in self.unlocks.remove(&path).unwrap_or_default() {
                    let _ = reply.send(Ok(updates.clone()));
                }
                None
            }
            other => {
                if matches!(other, Effect::Install { .. }) {
                    if self.journal.landing_unsynced() {
                        // Its landing line reaches the disk before the
                        // file (see `Exec::hold`).
                        self.persist();
                    } else {
                        self.journal.write_out();
                    }
                }
                let back = self.disk.run(&other);
                if let (
                    Effect::Install { .. },
                    Some(Input::Done {
                        outcome: Outcome::Applied { .. },
                        ..
                    }),
                ) = (&other, &back)
                {
                    // Between an install's rename and its new base's
                    // journal line: tests/landing_kill.rs kills it here.
                    super::hold_for_tests(
                        "LAB3_TEST_INSTALL_HOLD",
                        "install held after its rename",
                    );
                }
                // A folder found where the core expected something else
                // (made here while a change for that name was arriving) is
                // new to the core: what it holds raised no events yet.
                if let (
                    Effect::Install { path, .. } | Effect::Remove { path, .. },
                    Some(Input::Done {
                        outcome:
                            Outcome::Mismatch {
                                found: Some(found), ..
                            },
                        ..
                    }),
                ) = (&other, &back)
                {
                    if found.kind == core::Kind::Dir {
                        self.new_folders.push(path.clone());
                    }
                }
                back
            }
        }
    }

    /// Takes the journal to disk, the folders' renames first: a line
    /// never outlives a power cut that the rename it names did not.
    fn persist(&mut self) {
        self.disk.sync_dirs();
        self.journal.flush();
    }

    /// Sets `path`'s journal line.
    fn record(&mut self, path: String, mut record: Option<core::Record>) {
        self.note_queue(&path, record.as_ref());
        // The queue's entries are kept by the disk, one file each
        // (see `Effect::Queue`): the journal line stays small.
        if let Some(lock) = record.as_mut().and_then(|r| r.lock.as_mut()) {
            lock.queue.clear();
        }
        self.journal.set(path, record);
    }

    /// Keeps the handle's list of failing paths (for `lab3 status`) in step.
    fn note_failing(&self) {
        let mut shown = self.handle.failing.lock().unwrap();
        if !shown.iter().eq(self.core.failing()) {
            *shown = self.core.failing().cloned().collect();
        }
    }

    /// Keeps the handle's view of lock queues (for the listing) in step.
    fn note_queue(&self, path: &str, record: Option<&core::Record>) {
        let mut q = self.handle.queues.lock().unwrap();
        match record.and_then(|r| r.lock.as_ref()) {
            Some(l) => {
                q.insert(path.to_string(), l.queue.clone());
            }
            None => {
                q.remove(path);
            }
        }
    }
}

/// A replayed queue entry as `lab3 unlock` reports it.
fn applied_update(r: &Replayed) -> AppliedUpdate {
    let (action, size, mtime_ns) = match &r.update {
        Holding::Present(v) => ("write", v.size, v.mtime_ns),
        Holding::Absent { deleted_ns } => ("delete", 0, deleted_ns.unwrap_or(0)),
    };
    AppliedUpdate {
        seq: r.seq,
        action: action.to_string(),
        size,
        mtime_ns,
        outcome: r.outcome.to_string(),
    }
}

/// The bytes of the files a scan found (the default versions cap is a
/// share of it).
fn folder_bytes(found: &[(String, Entry)]) -> u64 {
    found.iter().map(|(_, e)| e.size).sum()
}
