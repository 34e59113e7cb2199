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
use super::{
    apply, side_letter, Command, HeldUpdate, LinkStatus, QueuedUpdate, SyncConfig, SyncHandle,
};
use crate::meta::{now_ns, FileMeta};
use crate::paths;
use crate::protocol::{AppliedUpdate, InventoryEntry, Message, Role};
use crate::scan::{self, Scan};

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
    Peer {
        id: u64,
        msg: PeerMsg,
    },
    Sent {
        id: u64,
        meta: FileMeta,
        base: Option<FileMeta>,
        outcome: Sent,
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

/// What the peer sent, already checked for path safety by the link.
pub(crate) enum PeerMsg {
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
    tokio::spawn(async move {
        let _watch = watch;
        engine.run(rx, hint_rx, flag).await;
    });
    Ok(handle)
}

/// When a file found missing at start was deleted, as best we can tell:
/// after we last saw it, so after both the last time this server was known
/// to run (`last_alive`, marked every rescan) and the file's last
/// modification (it was seen with that mtime), and before now.
///
/// The mtime bound matters: a file written in the seconds between the last
/// alive mark and a crash, then deleted while the server was down, would
/// otherwise get a tombstone older than its own mtime, lose against the
/// peer's copy of that very version, and come back.
fn deleted_while_down_ns(last_alive: i64, mtime_ns: i64, now: i64) -> i64 {
    last_alive.max(mtime_ns.saturating_add(1)).min(now)
}

/// Which vanished file `new` was renamed from, judged by metadata (size,
/// mtime, mode), if that is unambiguous. Copies with equal metadata cannot
/// be told apart, and a wrong pairing would make the peer move the wrong
/// content under the new name while both journals believe they agree; so
/// among several look-alikes only a unique one with the same file name (a
/// moved folder) counts, and otherwise the file is sent whole.
fn rename_source(new: &FileMeta, vanished: &[FileMeta], new_files: &[FileMeta]) -> Option<usize> {
    let alike =
        |a: &FileMeta| a.size == new.size && a.mtime_ns == new.mtime_ns && a.mode == new.mode;
    let name = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
    let candidates: Vec<usize> = (0..vanished.len())
        .filter(|&i| alike(&vanished[i]))
        .collect();
    let rivals = new_files.iter().filter(|n| alike(n)).count();
    if candidates.len() == 1 && rivals == 1 {
        return Some(candidates[0]);
    }
    let mine = name(&new.path);
    let same_name: Vec<usize> = candidates
        .into_iter()
        .filter(|&i| name(&vanished[i].path) == mine)
        .collect();
    let rivals = new_files
        .iter()
        .filter(|n| alike(n) && name(&n.path) == mine)
        .count();
    (same_name.len() == 1 && rivals == 1).then(|| same_name[0])
}

impl Engine {
    fn i_am_a(&self) -> bool {
        self.cfg.me != Role::ServerB
    }

    fn me(&self) -> &'static str {
        side_letter(self.cfg.me)
    }

    fn other(&self) -> &'static str {
        if self.i_am_a() {
            "B"
        } else {
            "A"
        }
    }

    fn outbound(&self) -> String {
        format!("{}->{}", self.me(), self.other())
    }

    fn inbound(&self) -> String {
        format!("{}->{}", self.other(), self.me())
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
            Event::Peer { id, msg } => {
                if self.link.as_ref().is_some_and(|l| l.id == id) {
                    self.peer(msg);
                }
            }
            Event::Sent {
                id,
                meta,
                base,
                outcome,
            } => {
                if self.link.as_ref().is_some_and(|l| l.id == id) {
                    self.sent(meta, base, outcome);
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

    // ---------------------------------------------------------------- scans

    /// At start: record silently what changed while the server was down.
    fn startup_scan(&mut self) -> anyhow::Result<()> {
        let scan = scan::scan_dir(&self.cfg.root, &self.cfg.ignore)?;
        self.warn_skipped(&scan);
        // Paths the rules ignore now (a rule added since the last run) were
        // not deleted: forget them, so that no delete reaches the peer.
        let ignored: Vec<String> = (self.journal.inventory().iter())
            .map(|e| e.path())
            .filter(|p| self.cfg.ignore.is_ignored_path(p))
            .map(str::to_string)
            .collect();
        for p in ignored {
            self.journal.forget(&p);
        }
        let known = self.journal.present().count();
        if known > 0 && scan.files.is_empty() && !self.cfg.confirm_empty {
            tracing::warn!(
                "{} is empty, but it held {known} files at the last sync; not propagating those deletes \
                 (an unmounted disk?). The peer's copies will come back; to delete them everywhere instead, \
                 restart with --confirm-empty",
                self.cfg.root.display()
            );
            let paths: Vec<String> = self.journal.present().map(|m| m.path.clone()).collect();
            for p in paths {
                self.journal.forget(&p);
            }
        } else {
            let on_disk: HashSet<&str> = scan.files.iter().map(|f| f.path.as_str()).collect();
            for f in &scan.files {
                if !self.journal.local(&f.path).is_some_and(|j| j.same_state(f)) {
                    self.journal.set_present(f, false);
                }
            }
            let now = now_ns();
            let last_alive = self.journal.last_alive_ns().unwrap_or(now);
            let gone: Vec<(String, i64)> = self
                .journal
                .present()
                .filter(|m| !on_disk.contains(m.path.as_str()))
                .map(|m| {
                    (
                        m.path.clone(),
                        deleted_while_down_ns(last_alive, m.mtime_ns, now),
                    )
                })
                .collect();
            for (p, deleted_ns) in gone {
                self.journal.set_deleted(&p, deleted_ns, false);
            }
        }
        self.journal.alive();
        self.journal.flush();
        Ok(())
    }

    fn start_scan(&mut self, reconcile: bool) {
        if !reconcile {
            if self.scanning {
                return;
            }
            self.scanning = true;
        }
        let root = self.cfg.root.clone();
        let ignore = self.cfg.ignore.clone();
        let events = self.handle.events.clone();
        tokio::task::spawn_blocking(move || {
            let scan = scan::scan_dir(&root, &ignore);
            let _ = events.send(Event::Scanned { scan, reconcile });
        });
    }

    fn scanned(&mut self, scan: std::io::Result<Scan>, reconcile: bool) {
        if !reconcile {
            self.scanning = false;
        }
        match scan {
            Ok(scan) => {
                self.warn_skipped(&scan);
                // The scan is only a hint: each differing path is stat'ed again now.
                let on_disk: HashSet<&str> = scan.files.iter().map(|f| f.path.as_str()).collect();
                let mut differ: Vec<String> = scan
                    .files
                    .iter()
                    .filter(|f| !self.journal.local(&f.path).is_some_and(|j| j.same_state(f)))
                    .map(|f| f.path.clone())
                    .collect();
                differ.extend(
                    self.journal
                        .present()
                        .filter(|m| !on_disk.contains(m.path.as_str()))
                        .map(|m| m.path.clone()),
                );
                if !differ.is_empty() {
                    tracing::debug!("rescan found {} changed paths", differ.len());
                    self.process_paths(differ);
                }
            }
            Err(e) => tracing::error!("scanning {}: {e}", self.cfg.root.display()),
        }
        if reconcile {
            self.send_inventory();
        }
    }

    fn warn_skipped(&mut self, scan: &Scan) {
        for (p, why) in &scan.skipped {
            if self.warned.insert(p.clone()) {
                tracing::warn!("skipping {}: {why}", p.display());
            }
        }
    }

    // -------------------------------------------------------- local changes

    fn process_due(&mut self) {
        let now = Instant::now();
        let due = self.pending.take_due(now);
        if !due.is_empty() {
            self.process_paths(due);
        }
        for p in self.wants.take_due(now) {
            let have = self.stat(&p);
            self.send(Outgoing::Msg(Message::Want { path: p, have }));
        }
    }

    /// Looks at `paths` on disk and records (and, with a reconciled link,
    /// sends) whatever differs from the journal.
    fn process_paths(&mut self, paths: Vec<String>) {
        let send = self.link.as_ref().is_some_and(|l| l.reconciled);
        let mut files = BTreeSet::new();
        for p in paths {
            self.expand(p, &mut files);
        }
        let mut changed = Vec::new();
        let mut vanished = Vec::new();
        for p in files {
            let disk = self.stat(&p);
            let known = self.journal.local(&p).cloned();
            match (disk, known) {
                (Some(d), Some(k)) if d.same_state(&k) => {}
                (Some(d), k) => changed.push((d, k)),
                (None, Some(k)) => vanished.push(k),
                (None, None) => {}
            }
        }
        let now = now_ns();
        let new_files: Vec<FileMeta> = changed
            .iter()
            .filter(|(_, k)| k.is_none())
            .map(|(d, _)| d.clone())
            .collect();
        // A new path with the metadata of one that just vanished: a rename.
        let mut renames = Vec::new();
        let mut writes = Vec::new();
        for (d, k) in changed {
            if k.is_none() {
                if let Some(i) = rename_source(&d, &vanished, &new_files) {
                    renames.push((vanished.swap_remove(i), d));
                    continue;
                }
            }
            writes.push((d, k));
        }
        // Deletes go first: a file may be making room for a folder of the
        // same name (or a folder for a file), which the peer can only
        // create once the old one is gone.
        for v in vanished {
            self.journal.set_deleted(&v.path, now, send);
            if send {
                self.announce("deleted", &self.outbound(), &v.path, None, String::new());
                self.send(Outgoing::Msg(Message::Delete {
                    path: v.path.clone(),
                    deleted_ns: now,
                    base: Some(v),
                }));
            }
        }
        for (v, d) in renames {
            self.journal.set_deleted(&v.path, now, send);
            self.journal.set_present(&d, send);
            if send {
                self.announce(
                    "renamed",
                    &self.outbound(),
                    &d.path,
                    Some(d.size),
                    format!("from {}", v.path),
                );
                self.send(Outgoing::Msg(Message::Rename {
                    from: v.path,
                    meta: d,
                    deleted_ns: now,
                }));
            }
        }
        for (d, k) in writes {
            // Synced only once the peer has it (see `sent`).
            self.journal.set_present(&d, false);
            if send {
                let base = self.aborted_base.remove(&d.path).unwrap_or(k);
                self.send_file(d, base);
            }
        }
    }

    /// A hinted path may be a folder (created, moved in, moved away or
    /// deleted): stand in the files below it, on disk and in the journal.
    fn expand(&mut self, p: String, out: &mut BTreeSet<String>) {
        let Ok(full) = paths::resolve(&self.cfg.root, &p) else {
            return;
        };
        match std::fs::symlink_metadata(&full) {
            Ok(md) if md.is_dir() => {
                // A file of that name that became a folder: it vanished.
                if self.journal.local(&p).is_some() {
                    out.insert(p.clone());
                }
                match scan::scan_dir(&full, &self.cfg.ignore.below(&p)) {
                    Ok(scan) => {
                        self.warn_skipped(&scan);
                        out.extend(scan.files.into_iter().map(|f| format!("{p}/{}", f.path)));
                    }
                    Err(e) => tracing::warn!("scanning {}: {e}", full.display()),
                }
                self.expand_known(&p, out);
            }
            Ok(md) if md.file_type().is_symlink() => {
                if self.warned.insert(full.clone()) {
                    tracing::warn!("skipping {}: symbolic link, not followed", full.display());
                }
                out.insert(p);
            }
            _ => {
                // Not known as a file here: it may have been a folder.
                if self.journal.local(&p).is_none() {
                    self.expand_known(&p, out);
                }
                out.insert(p);
            }
        }
    }

    fn expand_known(&self, dir: &str, out: &mut BTreeSet<String>) {
        out.extend(self.journal.paths_under(dir).cloned());
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

    // ----------------------------------------------------------------- link

    fn link_up(&mut self, id: u64, out: mpsc::UnboundedSender<Outgoing>, clock_skew_ns: i64) {
        tracing::info!("link to server {} is up; reconciling", self.other());
        if clock_skew_ns.abs() > 1_000_000_000 {
            tracing::warn!(
                "server {}'s clock differs from ours by {:.1} s; \"most recent wins\" compares their times",
                self.other(),
                clock_skew_ns as f64 / 1e9
            );
        }
        self.link = Some(Link {
            id,
            out,
            reconciled: false,
            inventory_sent: false,
            peer_inventory: None,
            hashes_sent: false,
            peer_hashes: None,
        });
        self.sending = 0;
        self.aborted_base.clear();
        {
            let mut st = self.handle.status.lock().unwrap();
            st.up = true;
            st.since_ns = Some(now_ns());
            st.clock_skew_ns = Some(clock_skew_ns);
            st.sending = 0;
        }
        if self.watching && !self.rescan_flag.is_raised() {
            // The watcher has kept the journal current (and raises the flag
            // if it lost events): look at what it hinted, no full scan.
            let hinted = self
                .pending
                .take_due(Instant::now() + Duration::from_secs(3600));
            if !hinted.is_empty() {
                self.process_paths(hinted);
            }
            self.send_inventory();
        } else {
            self.start_scan(true);
        }
    }

    fn send_inventory(&mut self) {
        let inventory = self.journal.inventory();
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if link.inventory_sent {
            return;
        }
        link.inventory_sent = true;
        let _ = link.out.send(Outgoing::Inventory(inventory));
        if link.peer_inventory.is_some() {
            self.compare_contents();
        }
    }

    /// Both inventories are known. Paths whose two copies have the same
    /// size, mtime and mode, one of them changed since the last sync, and a
    /// content hash unknown on either side may still differ: hash this side's
    /// copies of those (up to [`HASH_LIMIT`] bytes each) and send them. Both
    /// sides always send `hashes` (maybe empty) and plan only once they have
    /// the peer's, so they plan from the same facts. In-sync trees and a
    /// copy into an empty peer hash nothing.
    fn compare_contents(&mut self) {
        let Some(theirs) = self.link.as_ref().and_then(|l| l.peer_inventory.as_ref()) else {
            return;
        };
        let mut look_alikes = Vec::new();
        for t in theirs {
            let InventoryEntry::Present {
                meta: tm,
                dirty: td,
                hash: th,
            } = t
            else {
                continue;
            };
            let Some(rec) = self.journal.get(&tm.path) else {
                continue;
            };
            let Some(mine) = rec.local.as_ref() else {
                continue;
            };
            if mine.same_state(tm)
                && (*td || !rec.synced)
                && !(th.is_some() && rec.hash.is_some())
                && mine.size <= HASH_LIMIT
            {
                look_alikes.push(mine.clone());
            }
        }
        let todo: Vec<FileMeta> = look_alikes
            .iter()
            .filter(|m| self.journal.hash_of(m).is_none())
            .cloned()
            .collect();
        let paths: Vec<String> = look_alikes.into_iter().map(|m| m.path).collect();
        if todo.is_empty() {
            self.send_hashes(paths);
            return;
        }
        let root = self.cfg.root.clone();
        let events = self.handle.events.clone();
        tokio::task::spawn_blocking(move || {
            let hashes = todo
                .into_iter()
                .filter_map(|m| transfer::hash_file(&root, &m).map(|h| (m, h)))
                .collect();
            let _ = events.send(Event::Hashed { hashes, paths });
        });
    }

    fn send_hashes(&mut self, paths: Vec<String>) {
        let hashes: BTreeMap<String, String> = paths
            .into_iter()
            .filter_map(|p| {
                let h = self.journal.get(&p)?.hash.clone()?;
                Some((p, h))
            })
            .collect();
        let Some(link) = self.link.as_mut() else {
            return;
        };
        link.hashes_sent = true;
        let _ = link.out.send(Outgoing::Hashes(hashes));
        self.plan_if_ready();
    }

    /// Runs the plan once the peer's inventory and hashes are in and ours are out.
    fn plan_if_ready(&mut self) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if !(link.inventory_sent && link.hashes_sent && link.peer_hashes.is_some()) {
            return;
        }
        let (Some(mut theirs), Some(hashes)) =
            (link.peer_inventory.take(), link.peer_hashes.take())
        else {
            return;
        };
        for e in &mut theirs {
            if let InventoryEntry::Present { meta, hash, .. } = e {
                if let Some(h) = hashes.get(&meta.path) {
                    *hash = Some(h.clone());
                }
            }
        }
        self.reconcile(theirs);
    }

    /// Both inventories are known: carry out this side's part of the plan.
    fn reconcile(&mut self, theirs: Vec<InventoryEntry>) {
        let theirs: HashMap<String, InventoryEntry> = theirs
            .into_iter()
            .filter(|e| !self.cfg.ignore.is_ignored_path(e.path()))
            .map(|e| (e.path().to_string(), e))
            .collect();
        let mine: HashMap<String, InventoryEntry> = self
            .journal
            .inventory()
            .into_iter()
            .map(|e| (e.path().to_string(), e))
            .collect();
        let all: BTreeSet<&String> = mine.keys().chain(theirs.keys()).collect();
        let (mut pushed, mut deleted, mut agreed) = (0, 0, 0);
        for p in all {
            match decide::plan(mine.get(p), theirs.get(p), self.i_am_a()) {
                Plan::Agree => {
                    agreed += 1;
                    self.journal.set_synced(p);
                }
                Plan::Push { base, tie } => {
                    let Some(meta) = self.journal.local(p).cloned() else {
                        continue;
                    };
                    if tie {
                        self.announce(
                            "conflict",
                            self.me(),
                            p,
                            Some(meta.size),
                            format!("same time, different copies: {}'s wins", self.me()),
                        );
                    }
                    pushed += 1;
                    self.send_file(meta, base);
                }
                Plan::DeleteLocal { deleted_ns } => {
                    deleted += 1;
                    let base = self.journal.local(p).cloned();
                    self.apply_delete(p.clone(), deleted_ns, base);
                }
                Plan::AwaitPeer => {}
            }
        }
        tracing::info!(
            "reconciled with server {}: {agreed} in agreement, {pushed} to send, {deleted} deleted here",
            self.other()
        );
        if let Some(l) = self.link.as_mut() {
            l.reconciled = true;
        }
        self.handle.status.lock().unwrap().last_reconcile_ns = Some(now_ns());
    }

    fn peer(&mut self, msg: PeerMsg) {
        match msg {
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

    // ------------------------------------------------------ peer's changes

    fn held(&self, path: &str) -> bool {
        self.cfg.gate.as_ref().is_some_and(|g| g.holds(path))
    }

    fn hold(&self, update: HeldUpdate) {
        if let Some(g) = &self.cfg.gate {
            let (path, size) = match &update {
                HeldUpdate::Write(r) => (r.meta.path.clone(), Some(r.meta.size)),
                HeldUpdate::Delete { path, .. } => (path.clone(), None),
            };
            let what = if size.is_some() { "write" } else { "delete" };
            g.hold(update);
            self.announce(
                "queued",
                &self.inbound(),
                &path,
                size,
                format!("{what} held by a lock"),
            );
        }
    }

    fn apply_file(&mut self, r: Received) {
        let p = r.meta.path.clone();
        if self.cfg.ignore.is_ignored_path(&p) {
            return;
        }
        if self.held(&p) {
            self.hold(HeldUpdate::Write(r));
            return;
        }
        let local = self.stat(&p);
        let mut clean = match (&local, &r.base) {
            (None, None) => true,
            (Some(l), Some(b)) => l.same_state(b),
            _ => false,
        };
        if let Some(l) = local.as_ref().filter(|l| l.same_state(&r.meta)) {
            let mine = match self.journal.hash_of(l) {
                Some(h) => Some(h.to_string()),
                None => transfer::hash_file(&self.cfg.root, l),
            };
            if mine.is_none() || mine.as_deref() == Some(r.hash.as_str()) {
                self.journal.set_present(&r.meta, true);
                self.journal.set_hash(&r.meta, r.hash);
                return;
            }
            // Same size and time, different content: the peer's copy won the
            // tie (see `decide`); ours is kept, not destroyed.
            if !self.save_conflict(&p, "the peer's copy (same time, other content)") {
                return;
            }
            clean = true;
        } else if clean && local.as_ref().is_some_and(|l| self.unsynced_change(&p, l)) {
            // The peer knew our copy (it is the base) and its own won anyway:
            // a reconciliation after both sides changed the file apart.
            if !self.save_conflict(&p, "the peer's newer copy") {
                return;
            }
        }
        if !clean {
            let mine = self.local_state(&p, local.as_ref());
            let (w, _) = decide::winner(
                mine,
                State::Present {
                    meta: &r.meta,
                    dirty: true,
                    hash: None,
                },
                self.i_am_a(),
            );
            if w != Winner::Theirs {
                self.keep_mine(&p, local, Some(r.meta.clone()));
                return;
            }
            if local.is_some() && !self.save_conflict(&p, "the peer's newer copy") {
                return;
            }
        }
        let size = r.meta.size;
        let action = if local.is_some() {
            "updated"
        } else {
            "created"
        };
        match apply::install(&self.cfg.root, &p, r.temp) {
            Ok(()) => {
                self.journal.set_present(&r.meta, true);
                self.journal.set_hash(&r.meta, r.hash);
                self.announce(action, &self.inbound(), &p, Some(size), String::new());
            }
            Err(e) => {
                self.announce(
                    "error",
                    &self.inbound(),
                    &p,
                    Some(size),
                    format!("cannot write: {e}; will retry"),
                );
                self.wants.set(p, Instant::now() + RETRY_AFTER);
            }
        }
    }

    fn apply_delete(&mut self, path: String, deleted_ns: i64, base: Option<FileMeta>) {
        if self.cfg.ignore.is_ignored_path(&path) {
            return;
        }
        if self.held(&path) {
            self.hold(HeldUpdate::Delete { path, deleted_ns });
            return;
        }
        let Some(local) = self.stat(&path) else {
            self.journal.set_deleted(&path, deleted_ns, true);
            return;
        };
        let clean = base.as_ref().is_some_and(|b| local.same_state(b));
        if clean && self.unsynced_change(&path, &local) {
            // A change the peer never had loses to its later delete: kept.
            if !self.save_conflict(&path, "a later delete") {
                return;
            }
        } else if !clean {
            let (w, _) = decide::winner(
                State::Present {
                    meta: &local,
                    dirty: true,
                    hash: None,
                },
                State::Deleted { deleted_ns },
                self.i_am_a(),
            );
            if w != Winner::Theirs {
                self.keep_mine(&path, Some(local), None);
                return;
            }
            if !self.save_conflict(&path, "a later delete") {
                return;
            }
        }
        match apply::delete(&self.cfg.root, &path) {
            Ok(()) => {
                self.journal.set_deleted(&path, deleted_ns, true);
                self.announce("deleted", &self.inbound(), &path, None, String::new());
            }
            Err(e) => self.announce(
                "error",
                &self.inbound(),
                &path,
                None,
                format!("cannot delete: {e}"),
            ),
        }
    }

    fn apply_rename(&mut self, from: String, meta: FileMeta, deleted_ns: i64) {
        let to = meta.path.clone();
        let from_meta = FileMeta {
            path: from.clone(),
            ..meta.clone()
        };
        let local_from = self.stat(&from);
        let local_to = self.stat(&to);
        let movable = !self.held(&from)
            && !self.held(&to)
            && !self.cfg.ignore.is_ignored_path(&to)
            && local_from.as_ref().is_some_and(|l| l.same_state(&meta))
            && local_to.is_none();
        if movable {
            match apply::rename(&self.cfg.root, &from, &to) {
                Ok(()) => {
                    self.journal.set_deleted(&from, deleted_ns, true);
                    self.journal.set_present(&meta, true);
                    self.announce(
                        "renamed",
                        &self.inbound(),
                        &to,
                        Some(meta.size),
                        format!("from {from}"),
                    );
                    return;
                }
                Err(e) => tracing::warn!("renaming {from} to {to}: {e}; fetching it instead"),
            }
        }
        self.apply_delete(from, deleted_ns, Some(from_meta));
        if !self.cfg.ignore.is_ignored_path(&to) {
            self.send(Outgoing::Msg(Message::Want {
                path: to,
                have: local_to,
            }));
        }
    }

    fn answer_want(&mut self, path: String, have: Option<FileMeta>) {
        match self.stat(&path) {
            Some(meta) => self.send_file(meta, have),
            None => {
                if let Some(deleted_ns) = self.journal.get(&path).and_then(|r| r.deleted_ns) {
                    self.send(Outgoing::Msg(Message::Delete {
                        path,
                        deleted_ns,
                        base: have,
                    }));
                }
            }
        }
    }

    /// Whether our copy of `p` (on disk as `local`) holds a change the peer
    /// never had: the journal records this very state as not yet synced
    /// (made while the link was down, or found at start). A peer's update
    /// whose base is such a copy beat it in reconciliation: a true conflict.
    fn unsynced_change(&self, p: &str, local: &FileMeta) -> bool {
        self.journal
            .get(p)
            .is_some_and(|r| !r.synced && r.local.as_ref().is_some_and(|l| l.same_state(local)))
    }

    /// This side's state of `p` for a conflict: the file, its tombstone, or nothing.
    fn local_state<'a>(&self, p: &str, local: Option<&'a FileMeta>) -> State<'a> {
        match local {
            Some(meta) => State::Present {
                meta,
                dirty: true,
                hash: None,
            },
            None => match self.journal.get(p).and_then(|r| r.deleted_ns) {
                Some(deleted_ns) => State::Deleted { deleted_ns },
                None => State::Absent,
            },
        }
    }

    /// Our copy (or delete) won a conflict: say so and make sure the peer gets it.
    fn keep_mine(&mut self, p: &str, local: Option<FileMeta>, theirs: Option<FileMeta>) {
        self.announce(
            "conflict",
            self.me(),
            p,
            local.as_ref().map(|l| l.size),
            format!("{}'s copy is newer and stays", self.me()),
        );
        match local {
            Some(l) => {
                self.journal.set_present(&l, false);
                self.send_file(l, theirs);
            }
            None => {
                if let Some(deleted_ns) = self.journal.get(p).and_then(|r| r.deleted_ns) {
                    self.send(Outgoing::Msg(Message::Delete {
                        path: p.to_string(),
                        deleted_ns,
                        base: theirs,
                    }));
                }
            }
        }
    }

    /// Moves our losing copy into the state directory; false if that failed
    /// (then nothing is replaced).
    fn save_conflict(&self, p: &str, winner: &str) -> bool {
        match apply::keep_conflict(&self.cfg.root, &self.cfg.state_dir, p) {
            Ok(saved) => {
                self.announce(
                    "conflict",
                    &self.inbound(),
                    p,
                    None,
                    format!(
                        "{winner} wins; this side's copy kept at {}",
                        saved.display()
                    ),
                );
                true
            }
            Err(e) => {
                self.announce(
                    "error",
                    self.me(),
                    p,
                    None,
                    format!("cannot keep the losing copy: {e}; not replaced"),
                );
                false
            }
        }
    }

    // ------------------------------------------------------------- replay

    /// Server A's unlock: the gate lets go of `path`, then its held updates
    /// are applied in order. All in one step, so no update of the peer's
    /// can slip in between.
    fn unlock(&mut self, path: &str) -> anyhow::Result<Vec<AppliedUpdate>> {
        let Some(gate) = self.cfg.gate.clone() else {
            anyhow::bail!("this server holds no locks");
        };
        let updates = gate.begin_unlock(path)?;
        let report = self.replay(updates);
        gate.end_unlock(path);
        Ok(report)
    }

    /// Applies held updates in order; an update older than the current copy
    /// is superseded, not applied.
    fn replay(&mut self, updates: Vec<QueuedUpdate>) -> Vec<AppliedUpdate> {
        let mut report = Vec::new();
        let mut touched = BTreeSet::new();
        for u in updates {
            let (seq, path, mtime_ns, size, action) = match &u {
                QueuedUpdate::Write { seq, meta, .. } => {
                    (*seq, meta.path.clone(), meta.mtime_ns, meta.size, "write")
                }
                QueuedUpdate::Delete {
                    seq,
                    path,
                    deleted_ns,
                } => (*seq, path.clone(), *deleted_ns, 0, "delete"),
            };
            touched.insert(path.clone());
            let local = self.stat(&path);
            let superseded = local.as_ref().is_some_and(|l| l.mtime_ns > mtime_ns);
            let outcome = if superseded {
                if let QueuedUpdate::Write { file, .. } = &u {
                    let _ = std::fs::remove_file(file);
                }
                "superseded"
            } else {
                match self.replay_one(&u) {
                    Ok(()) => "applied",
                    Err(e) => {
                        self.announce(
                            "error",
                            &self.inbound(),
                            &path,
                            Some(size),
                            format!("replay: {e}"),
                        );
                        "failed"
                    }
                }
            };
            let detail = format!("queued {action} #{seq}");
            self.announce(
                outcome,
                &self.inbound(),
                &path,
                (action == "write").then_some(size),
                detail,
            );
            report.push(AppliedUpdate {
                seq,
                action: action.into(),
                size,
                mtime_ns,
                outcome: outcome.into(),
            });
        }
        // Afterwards the file syncs as any other.
        let now = Instant::now();
        for p in touched {
            self.pending.set(p, now);
        }
        report
    }

    fn replay_one(&mut self, u: &QueuedUpdate) -> std::io::Result<()> {
        match u {
            QueuedUpdate::Write { meta, file, .. } => {
                if !file.exists() {
                    // Consumed by a replay that a crash interrupted: already in place.
                    return Ok(());
                }
                crate::meta::set_times_and_mode(file, meta.mtime_ns, meta.mode)?;
                let target =
                    paths::resolve(&self.cfg.root, &meta.path).map_err(std::io::Error::other)?;
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                if std::fs::rename(file, &target).is_err() {
                    // The queue lives on another filesystem: copy to a temp file here, then rename.
                    let tmp = tempfile::Builder::new()
                        .prefix(crate::ignore::TEMP_PREFIX)
                        .tempfile_in(&self.handle.tmp_dir)?;
                    std::fs::copy(file, tmp.path())?;
                    crate::meta::set_times_and_mode(tmp.path(), meta.mtime_ns, meta.mode)?;
                    tmp.persist(&target).map_err(|e| e.error)?;
                    let _ = std::fs::remove_file(file);
                }
                self.journal.set_present(meta, true);
            }
            QueuedUpdate::Delete {
                path, deleted_ns, ..
            } => {
                apply::delete(&self.cfg.root, path)?;
                self.journal.set_deleted(path, *deleted_ns, true);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str, size: u64) -> FileMeta {
        FileMeta {
            path: path.into(),
            size,
            mtime_ns: 7,
            mode: 0o644,
        }
    }

    #[test]
    fn a_delete_found_at_start_is_dated_after_the_files_last_change() {
        // Written after the last alive mark: the delete came later still.
        assert_eq!(deleted_while_down_ns(100, 150, 1000), 151);
        // Written before it: the mark is the better bound.
        assert_eq!(deleted_while_down_ns(100, 50, 1000), 100);
        // An mtime in the future: no later than now.
        assert_eq!(deleted_while_down_ns(100, 5000, 1000), 1000);
        assert_eq!(deleted_while_down_ns(100, i64::MAX, 1000), 1000);
    }

    #[test]
    fn a_rename_is_only_guessed_when_unambiguous() {
        let new = [f("c", 1), f("d", 1)];
        // One look-alike on each side: a rename.
        assert_eq!(rename_source(&new[0], &[f("a", 1)], &new[..1]), Some(0));
        // Two look-alikes with other names: no guess, the file is sent.
        assert_eq!(rename_source(&new[0], &[f("a", 1), f("b", 1)], &new), None);
        assert_eq!(rename_source(&new[0], &[f("a", 1)], &new), None);
        // A moved folder: the same file name decides.
        let moved = [f("y/a", 1), f("y/b", 1)];
        let gone = [f("x/a", 1), f("x/b", 1)];
        assert_eq!(rename_source(&moved[1], &gone, &moved), Some(1));
        // Different metadata is never a rename.
        assert_eq!(rename_source(&f("c", 2), &[f("a", 1)], &[f("c", 2)]), None);
    }
}
