//! The engine actor: one task owns the journal and the link's sending side
//! and makes every decision, so no two decisions about a path can race.
//! File bytes move in the link's tasks; the engine only stats, renames and
//! records.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::decide::{self, Plan, State, Winner};
use super::due::DueSet;
use super::journal::Journal;
use super::transfer::{self, Received, Sent};
use super::watcher::{self, Hint, RescanFlag, Urgency};
use super::{apply, Command, HeldUpdate, LinkStatus, QueuedUpdate, SyncConfig, SyncHandle};
use crate::meta::{now_ns, FileMeta};
use crate::paths;
use crate::protocol::{AppliedUpdate, InventoryEntry, Message, Role};
use crate::scan::{self, Scan};

mod incoming;
mod local;
mod reconcile;
mod replay;
mod scans;

/// Everything that reaches the engine.
pub(crate) enum Event {
    LinkUp {
        id: u64,
        out: mpsc::UnboundedSender<Outgoing>,
        clock_skew_ns: i64,
    },
    LinkDown {
        id: u64,
    },
    /// What the peer sent, in order (a burst of received files comes as one).
    Peer {
        id: u64,
        msgs: Vec<PeerMsg>,
    },
    /// Files the link finished sending (or gave up on), in order.
    Sent {
        id: u64,
        files: Vec<SentFile>,
    },
    Scanned {
        scan: std::io::Result<Scan>,
        reconcile: bool,
    },
    /// Content hashes of look-alike files, computed for reconciliation;
    /// `paths` are all the look-alikes whose hashes go to the peer.
    Hashed {
        hashes: Vec<(FileMeta, String)>,
        paths: Vec<String>,
    },
    Command(Command),
}

/// A summary of one side's inventory (see `Message::InventoryDigest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Digest {
    pub digest: String,
    pub entries: u64,
    pub synced: bool,
}

/// What the peer sent, already checked for path safety by the link.
pub(crate) enum PeerMsg {
    Digest(Digest),
    Inventory(Vec<InventoryEntry>),
    /// Content hashes of look-alike paths (see `compare_contents`).
    Hashes(HashMap<String, String>),
    File(Received),
    Delete {
        path: String,
        deleted_ns: i64,
        base: Option<FileMeta>,
    },
    Rename {
        from: String,
        meta: FileMeta,
        deleted_ns: i64,
    },
    Want {
        path: String,
        have: Option<FileMeta>,
    },
    /// A file from the peer could not be stored here (disk full,
    /// permissions): ask again later.
    StoreFailed {
        path: String,
    },
}

/// One file the link's writer sent: what it was asked to send, and how it went.
pub(crate) struct SentFile {
    pub meta: FileMeta,
    pub base: Option<FileMeta>,
    pub outcome: Sent,
}

/// What the link's writer sends.
pub(crate) enum Outgoing {
    Msg(Message),
    Inventory(Vec<InventoryEntry>),
    Hashes(BTreeMap<String, String>),
    File {
        meta: FileMeta,
        base: Option<FileMeta>,
    },
}

/// Changed files up to this size are hashed for reconciliation; bigger ones
/// rely on size and mtime alone (equal to the nanosecond on both sides with
/// different content is not a thing that happens by accident to big files).
const HASH_LIMIT: u64 = 16 * 1024 * 1024;

/// How long to wait before asking again for a file that could not be stored.
const RETRY_AFTER: Duration = Duration::from_secs(3);

struct Link {
    id: u64,
    out: mpsc::UnboundedSender<Outgoing>,
    /// This side's digest as sent, with the inventory it was made from and
    /// the journal's generation then.
    my_digest: Option<(Digest, Vec<InventoryEntry>, u64)>,
    /// The peer's digest, once received.
    peer_digest: Option<Digest>,
    /// Inventories exchanged and the plan carried out: changes are sent as they happen.
    reconciled: bool,
    inventory_sent: bool,
    /// The peer's inventory, until the plan is made.
    peer_inventory: Option<Vec<InventoryEntry>>,
    /// This side sent its `hashes` for the look-alike paths.
    hashes_sent: bool,
    /// The peer's `hashes`, once received.
    peer_hashes: Option<HashMap<String, String>>,
}

struct Engine {
    cfg: Arc<SyncConfig>,
    handle: SyncHandle,
    journal: Journal,
    /// Paths hinted by the watcher or a rescan, and when to look at them.
    pending: DueSet,
    /// Paths to ask the peer for again, and when.
    wants: DueSet,
    link: Option<Link>,
    /// The base of a send that was aborted, for the next send of that path.
    aborted_base: HashMap<String, Option<FileMeta>>,
    /// Files being sent (for status).
    sending: usize,
    /// A periodic rescan is running.
    scanning: bool,
    /// Skipped paths already warned about.
    warned: HashSet<PathBuf>,
    /// The OS watcher is running (otherwise only rescans find changes).
    watching: bool,
    /// Raised when events were lost.
    rescan_flag: Arc<RescanFlag>,
}

/// Starts the engine over `cfg.root`: opens the journal, records what
/// changed while the server was not running, starts watching.
pub fn start(cfg: SyncConfig) -> anyhow::Result<SyncHandle> {
    let mut cfg = cfg;
    let journal = Journal::open(&cfg.state_dir)?;
    if !cfg.root.exists() {
        let known = journal.present().count();
        if known > 0 && !cfg.confirm_empty {
            anyhow::bail!(
                "{} is missing, but it held {known} files at the last sync (an unmounted disk? a wrong path?); \
                 restore it, or pass --confirm-empty to treat its files as deleted",
                cfg.root.display()
            );
        }
        std::fs::create_dir_all(&cfg.root)?;
    }
    cfg.root = std::fs::canonicalize(&cfg.root)?;
    let tmp_dir = transfer::temp_dir_for(&cfg.root, &cfg.state_dir)?;
    let (events, rx) = mpsc::unbounded_channel();
    let (actions, _) = broadcast::channel(1024);
    let cfg = Arc::new(cfg);
    let handle = SyncHandle {
        events,
        cfg: cfg.clone(),
        tmp_dir,
        actions,
        watchers: Arc::new(tokio::sync::watch::Sender::new(0)),
        status: Arc::new(Mutex::new(LinkStatus::default())),
    };
    let (hint_tx, hint_rx) = mpsc::channel(16 * 1024);
    let flag = Arc::new(RescanFlag::default());
    let watch = match watcher::watch(&cfg.root, cfg.ignore.clone(), hint_tx, flag.clone()) {
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
    let mut engine = Engine {
        cfg,
        handle: handle.clone(),
        journal,
        pending: DueSet::default(),
        wants: DueSet::default(),
        link: None,
        aborted_base: HashMap::new(),
        sending: 0,
        scanning: false,
        warned: HashSet::new(),
        watching: watch.is_some(),
        rescan_flag: flag.clone(),
    };
    engine.startup_scan()?;
    // The engine gets a thread of its own: it works in parallel with the
    // link's tasks (which receive into temporary files while it installs
    // the files before), and a burst reaches it in batches rather than
    // one wake-up per file.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("sync engine".into())
        .spawn(move || {
            let _watch = watch;
            rt.block_on(engine.run(rx, hint_rx, flag));
        })?;
    Ok(handle)
}

impl Engine {
    fn i_am_a(&self) -> bool {
        self.cfg.me != Role::ServerB
    }

    fn me(&self) -> &'static str {
        self.handle.side()
    }

    fn other(&self) -> &'static str {
        self.handle.peer_side()
    }

    fn outbound(&self) -> String {
        self.handle.outbound()
    }

    fn inbound(&self) -> String {
        self.handle.inbound()
    }

    fn announce(
        &self,
        action: &str,
        direction: &str,
        path: &str,
        size: Option<u64>,
        detail: String,
    ) {
        self.handle.announce(action, direction, path, size, detail);
    }

    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Event>,
        mut hints: mpsc::Receiver<Hint>,
        flag: Arc<RescanFlag>,
    ) {
        let every = self.rescan_interval();
        tracing::debug!("safety-net rescan every {every:?}");
        let mut rescan = tokio::time::interval(every);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        rescan.tick().await;
        loop {
            let next = match (self.pending.next(), self.wants.next()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                Some(h) = hints.recv() => {
                    let mut now = self.hint(h);
                    while let Ok(h) = hints.try_recv() {
                        now |= self.hint(h);
                    }
                    // A closed write is due at once: act on it here rather
                    // than through the timer, whose millisecond ticks add
                    // up to a millisecond to every edit.
                    if now {
                        self.process_due();
                    }
                }
                ev = rx.recv() => match ev {
                    // One event may be a burst of received files (the
                    // link batches them): the journal is written once for
                    // all of them, right after.
                    Some(ev) => self.event(ev),
                    None => break,
                },
                _ = tokio::time::sleep_until(next.unwrap_or(far)), if next.is_some() => self.process_due(),
                _ = rescan.tick() => {
                    self.journal.alive();
                    self.start_scan(false);
                }
                _ = flag.wake.notified() => {
                    if flag.take() {
                        self.start_scan(false);
                    }
                }
            }
            // After every step, not later: a journal that lags the folder
            // when the server is killed makes the next start take a synced
            // copy for an unsynced edit (a needless conflict copy).
            self.journal.flush();
        }
    }

    /// How often the safety-net rescan runs: as asked, or else every 3 s
    /// where events may be missing (no watcher, a network or FUSE
    /// filesystem, whose remote changes raise no events here) and every 30 s
    /// where the watcher sees every change (a lost event raises the rescan
    /// flag, which rescans at once). Rescans are the only idle work.
    fn rescan_interval(&self) -> Duration {
        if let Some(every) = self.cfg.rescan_every {
            return every;
        }
        if self.watching && !crate::scan::events_may_be_missing(&self.cfg.root) {
            Duration::from_secs(30)
        } else {
            Duration::from_secs(3)
        }
    }

    /// Notes a hinted path; true if it asks to be looked at now.
    fn hint(&mut self, h: Hint) -> bool {
        let now = h.urgency == Urgency::Now;
        let due = Instant::now() + h.urgency.delay();
        let when = match (self.pending.get(&h.path), h.urgency) {
            (Some(old), Urgency::Now | Urgency::Soon) => old.min(due),
            _ => due,
        };
        self.pending.set(h.path, when);
        now
    }

    fn event(&mut self, ev: Event) {
        match ev {
            Event::LinkUp {
                id,
                out,
                clock_skew_ns,
            } => self.link_up(id, out, clock_skew_ns),
            Event::LinkDown { id } => {
                if self.link.as_ref().is_some_and(|l| l.id == id) {
                    self.link = None;
                    self.sending = 0;
                    tracing::info!("link to server {} is down", self.other());
                    let mut st = self.handle.status.lock().unwrap();
                    st.up = false;
                    st.since_ns = Some(now_ns());
                    st.sending = 0;
                }
            }
            Event::Peer { id, msgs } => {
                for msg in msgs {
                    // Checked per message: one may bring the link down.
                    if self.link.as_ref().is_some_and(|l| l.id == id) {
                        self.peer(msg);
                    }
                }
            }
            Event::Sent { id, files } => {
                for f in files {
                    if self.link.as_ref().is_some_and(|l| l.id == id) {
                        self.sent(f.meta, f.base, f.outcome);
                    }
                }
            }
            Event::Scanned { scan, reconcile } => self.scanned(scan, reconcile),
            Event::Hashed { hashes, paths } => {
                for (meta, hash) in hashes {
                    self.journal.set_hash(&meta, hash);
                }
                self.send_hashes(paths);
            }
            Event::Command(Command::Unlock { path, reply }) => {
                let _ = reply.send(self.unlock(&path));
            }
        }
    }

    fn stat(&self, rel: &str) -> Option<FileMeta> {
        match scan::stat_file(&self.cfg.root, rel) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("cannot stat {rel}: {e}");
                None
            }
        }
    }

    fn send(&self, item: Outgoing) {
        if let Some(l) = &self.link {
            let _ = l.out.send(item);
        }
    }

    fn send_file(&mut self, meta: FileMeta, base: Option<FileMeta>) {
        if self.link.is_some() {
            self.sending += 1;
            self.handle.status.lock().unwrap().sending = self.sending;
            self.send(Outgoing::File { meta, base });
        }
    }

    fn sent(&mut self, meta: FileMeta, base: Option<FileMeta>, outcome: Sent) {
        self.sending = self.sending.saturating_sub(1);
        self.handle.status.lock().unwrap().sending = self.sending;
        match outcome {
            Sent::Done { hash } => {
                self.journal.set_hash(&meta, hash);
                if self
                    .journal
                    .local(&meta.path)
                    .is_some_and(|l| l.same_state(&meta))
                {
                    self.journal.set_synced(&meta.path);
                }
                let action = if base.is_none() { "created" } else { "updated" };
                self.announce(
                    action,
                    &self.outbound(),
                    &meta.path,
                    Some(meta.size),
                    String::new(),
                );
            }
            Sent::Changed => {
                // Changed under us: look again once it is quiet, from the same base.
                self.aborted_base.insert(meta.path.clone(), base);
                self.pending
                    .set(meta.path, Instant::now() + Urgency::Quiet.delay());
            }
        }
    }

    fn peer(&mut self, msg: PeerMsg) {
        match msg {
            PeerMsg::Digest(d) => {
                if let Some(link) = self.link.as_mut() {
                    link.peer_digest = Some(d);
                }
                self.compare_digests();
            }
            PeerMsg::Inventory(theirs) => {
                let Some(link) = self.link.as_mut() else {
                    return;
                };
                link.peer_inventory = Some(theirs);
                if link.inventory_sent {
                    self.compare_contents();
                }
            }
            PeerMsg::Hashes(hashes) => {
                if let Some(link) = self.link.as_mut() {
                    link.peer_hashes = Some(hashes);
                }
                self.plan_if_ready();
            }
            PeerMsg::File(r) => self.apply_file(r),
            PeerMsg::Delete {
                path,
                deleted_ns,
                base,
            } => self.apply_delete(path, deleted_ns, base),
            PeerMsg::Rename {
                from,
                meta,
                deleted_ns,
            } => self.apply_rename(from, meta, deleted_ns),
            PeerMsg::Want { path, have } => self.answer_want(path, have),
            PeerMsg::StoreFailed { path } => {
                self.wants.set(path, Instant::now() + RETRY_AFTER);
            }
        }
    }
}
