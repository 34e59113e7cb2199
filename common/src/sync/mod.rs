//! The sync engine both servers run: it keeps one directory equal to the
//! peer's, in both directions, over the one link that Server A dials.
//!
//! # Layout
//! - [`core`]: every decision, as a state machine without I/O (one state
//!   per path, versions both sides acknowledged, identities, locks).
//! - `exec`: the executor that runs the core on a thread of its own and
//!   turns its effects into I/O; [`disk`] does the file-system part,
//!   `records` keeps the core's journal, `link` the socket's.
//! - [`watcher`]: OS events turned into hints about paths.
//! - [`versions`]: what sync kept (replaced, deleted, conflict losers):
//!   listing, restoring; [`retention`]: expiring them by age and size.
//! - [`transfer`]: file bytes over the link, into verified temporary files;
//!   [`blocks`]: only the blocks the receiver lacks, for big files; `sink`:
//!   a big file's BLAKE3 on a second thread, its write-back started early.
//!
//! # How a change travels
//! The watcher hints a path; once it settles the executor stats it (with
//! its identity) and tells the core, which compares it with the version
//! both sides last agreed on. A change is offered once quiet, carrying the
//! base it replaces (a file's bytes follow the offer); a vanished path
//! whose identity turns up elsewhere is a move, sent as one rename. The
//! receiver's core applies it if its copy is that base (keeping what it
//! replaces as a version), or settles a conflict by the one rule; the
//! executor installs only where the disk still holds what the core
//! expected, re-stats, and the answer (`Stored`, what landed) is what
//! moves both sides' base. On every (re)connection digests, and if they
//! differ inventories, are compared by the same rule.

pub mod blocks;
pub mod core;
pub mod disk;
mod exec;
mod identity;
mod kernel_copy;
mod link;
pub mod queue_cursor;
mod records;
pub mod retention;
mod sink;
pub mod startup;
pub mod transfer;
pub mod versions;
pub mod watcher;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::connection::Connection;
use crate::handshake::PeerInfo;
use crate::ignore::Ignore;
use crate::protocol::{Action, AppliedUpdate, Role, VersionInfo};

pub use exec::start;

/// What the engine needs to know.
#[derive(Clone)]
pub struct SyncConfig {
    /// The synced directory.
    pub root: PathBuf,
    pub state_dir: PathBuf,
    pub ignore: Ignore,
    /// Which server this is (breaks exact ties: Server A's copy wins).
    pub me: Role,
    /// Interval of the safety-net rescan; `None`: 3 s where events may be
    /// missing (no watcher, a network filesystem), 30 s otherwise.
    pub rescan_every: Option<Duration>,
    /// The user confirmed that an emptied directory means "delete everything".
    pub confirm_empty: bool,
    /// Days a kept version stays (`--keep-versions`; 0 keeps none).
    pub keep_versions_days: u32,
    /// Days a delete is remembered while the peer is away (`--keep-deletes`).
    pub keep_deletes_days: u32,
    /// The room kept versions may take (`--versions-cap`).
    pub versions_cap: retention::Cap,
}

/// The missing-folder guard, for both servers: a folder that held files
/// at the last sync (`agreed` of them) and is missing now is an unmounted
/// disk or a wrong path, not "everything was deleted": refused, unless the
/// user confirmed. Checked before a server listens, and again when the
/// engine starts.
pub fn check_folder(
    root: &std::path::Path,
    agreed: usize,
    confirm_empty: bool,
) -> anyhow::Result<()> {
    if agreed > 0 && !confirm_empty && !root.exists() {
        anyhow::bail!(
            "{} is missing, but it held {agreed} files at the last sync (an unmounted disk? a wrong path?); \
             restore it, or pass --confirm-empty to treat its files as deleted",
            root.display()
        );
    }
    Ok(())
}

/// [`check_folder`] before the engine starts, from the journal in `state_dir`.
pub fn check_folder_at_start(
    root: &std::path::Path,
    state_dir: &std::path::Path,
    confirm_empty: bool,
) -> anyhow::Result<()> {
    if root.exists() || confirm_empty {
        return Ok(());
    }
    let agreed = records::Records::open(state_dir)?.agreed();
    check_folder(root, agreed, confirm_empty)
}

/// The link's state, for `lab3 status`.
pub use crate::protocol::LinkStatus;

/// Commands from the server that embeds the engine (Server A's locks).
/// For tests only: while the file named by the environment variable `var`
/// (a `LAB3_TEST_..._HOLD`) exists, waits (saying `what` on stderr first),
/// so that a test can kill the server in a window that is otherwise too
/// short to hit. Unset, nothing waits. The environment is read once: an
/// install asks on every file.
pub(crate) fn hold_for_tests(var: &str, what: &str) {
    static HOLDS: std::sync::OnceLock<Vec<(String, std::path::PathBuf)>> =
        std::sync::OnceLock::new();
    let holds = HOLDS.get_or_init(|| {
        std::env::vars_os()
            .filter_map(|(k, v)| {
                let k = k.into_string().ok()?;
                (k.starts_with("LAB3_TEST_") && k.ends_with("_HOLD")).then(|| (k, v.into()))
            })
            .collect()
    });
    let Some((_, flag)) = holds.iter().find(|(k, _)| k == var) else {
        return;
    };
    if flag.exists() {
        tracing::warn!("{what} ({var})");
    }
    while flag.exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

pub(crate) enum Command {
    Lock {
        path: String,
        reply: oneshot::Sender<()>,
    },
    Unlock {
        path: String,
        reply: oneshot::Sender<anyhow::Result<Vec<AppliedUpdate>>>,
    },
    /// `lab3 restore` at this side: done on the engine's thread, between
    /// two of its disk effects, then looked at as a local change.
    Restore {
        path: String,
        id: Option<String>,
        reply: oneshot::Sender<anyhow::Result<VersionInfo>>,
    },
}

/// The embedding server's handle on a running engine.
#[derive(Clone)]
pub struct SyncHandle {
    events: mpsc::UnboundedSender<exec::Event>,
    cfg: Arc<SyncConfig>,
    tmp_dir: PathBuf,
    actions: broadcast::Sender<Action>,
    /// How many [`Subscription`]s are alive (Server A asks B to relay its
    /// actions only while there are any).
    watchers: Arc<watch::Sender<usize>>,
    status: Arc<Mutex<LinkStatus>>,
    /// Each locked path's queue (Server A), for the listing and the page.
    queues: Arc<Mutex<BTreeMap<String, Vec<core::Queued>>>>,
    /// This side's file system, told to the peer when the link comes up.
    fs: core::FsTraits,
    /// The inotify watch limit, if it left folders without events.
    watch_limit: Arc<watcher::WatchLimit>,
    /// Paths this side cannot read or replace right now (from the core).
    failing: Arc<Mutex<Vec<core::Failing>>>,
    /// State set aside at start (a queue entry without its snapshot).
    set_aside: Arc<Mutex<Vec<crate::protocol::SetAsideInfo>>>,
    /// How far the engine's start-up is (its scan, for `lab3 status`).
    startup: Arc<startup::StartUp>,
}

/// A live feed of the actions this side announces (and, at Server A,
/// Server B's). While one exists, Server A asks B to relay its actions.
pub struct Subscription {
    rx: broadcast::Receiver<Action>,
    watchers: Arc<watch::Sender<usize>>,
}

impl Subscription {
    /// The next action; `Lagged` when this subscriber fell behind.
    pub async fn recv(&mut self) -> Result<Action, broadcast::error::RecvError> {
        self.rx.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.watchers.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl SyncHandle {
    /// Runs the sync link over `conn` until it breaks. One link at a time:
    /// a new one replaces the old.
    pub async fn run_link(&self, conn: Connection, peer: PeerInfo) -> anyhow::Result<()> {
        link::run(self, conn, peer).await
    }

    /// Locks `path` (Server A): once this returns, no update of it from
    /// the peer reaches the folder; they are queued.
    /// The command is in the engine's queue once this is called (before
    /// it is awaited): commands take effect in the order they were made.
    pub fn lock(&self, path: &str) -> impl std::future::Future<Output = anyhow::Result<()>> {
        let (reply, rx) = oneshot::channel();
        let path = path.to_string();
        let sent = self
            .events
            .send(exec::Event::Command(Command::Lock { path, reply }))
            .map_err(|_| anyhow::anyhow!("sync engine stopped"));
        async move {
            sent?;
            Ok(rx.await?)
        }
    }

    /// Unlocks `path` and applies its queued updates in order, the path
    /// held until the last; reports each outcome.
    pub async fn unlock(&self, path: &str) -> anyhow::Result<Vec<AppliedUpdate>> {
        let (reply, rx) = oneshot::channel();
        let path = path.to_string();
        self.events
            .send(exec::Event::Command(Command::Unlock { path, reply }))
            .map_err(|_| anyhow::anyhow!("sync engine stopped"))?;
        rx.await?
    }

    /// Puts version `id` of `path` (default: the newest) back at this side
    /// as a new change, which then syncs.
    pub async fn restore(&self, path: &str, id: Option<String>) -> anyhow::Result<VersionInfo> {
        let (reply, rx) = oneshot::channel();
        let path = path.to_string();
        self.events
            .send(exec::Event::Command(Command::Restore { path, id, reply }))
            .map_err(|_| anyhow::anyhow!("sync engine stopped"))?;
        rx.await?
    }

    /// Waits until the engine runs (its journal read, its start-up scan
    /// taken); an error says why it could not start.
    pub async fn ready(&self) -> anyhow::Result<()> {
        self.startup.ready().await
    }

    /// The paths the engine holds locked (from its journal at start; none
    /// before [`SyncHandle::ready`]).
    pub fn locked(&self) -> Vec<String> {
        self.queues.lock().unwrap().keys().cloned().collect()
    }

    /// How many of the peer's updates of `path` wait in its lock queue.
    pub fn queued(&self, path: &str) -> usize {
        self.queues.lock().unwrap().get(path).map_or(0, Vec::len)
    }

    /// The peer's updates of `path` waiting in its lock queue, oldest first.
    pub fn queue(&self, path: &str) -> Vec<core::Queued> {
        self.queues
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    /// Every action this side announces, as it happens.
    pub fn subscribe(&self) -> Subscription {
        let rx = self.actions.subscribe();
        self.watchers.send_modify(|n| *n += 1);
        Subscription {
            rx,
            watchers: self.watchers.clone(),
        }
    }

    /// The paths this side cannot read or replace right now, as `lab3
    /// status` shows them.
    pub fn failing(&self) -> Vec<crate::protocol::FailingPath> {
        let side = self.side().to_lowercase();
        self.failing
            .lock()
            .unwrap()
            .iter()
            .map(|f| crate::protocol::FailingPath {
                side: side.clone(),
                failing: f.clone(),
            })
            .collect()
    }

    /// What this side set aside at start, for `lab3 status`.
    pub fn set_aside(&self) -> Vec<crate::protocol::SetAsideInfo> {
        self.set_aside.lock().unwrap().clone()
    }

    /// The link's state now.
    pub fn status(&self) -> LinkStatus {
        let mut st = self.status.lock().unwrap().clone();
        st.watch_limit = self.watch_limit.message();
        st.scanning = self.startup.scanning();
        st
    }

    /// Announces an action on the console and to subscribers (also used by
    /// the embedding server, e.g. for lock queue events).
    pub fn announce(
        &self,
        action: &str,
        direction: &str,
        path: &str,
        size: Option<u64>,
        detail: String,
    ) {
        let a = Action {
            time_ns: crate::meta::now_ns(),
            side: side_letter(self.cfg.me).to_string(),
            direction: direction.to_string(),
            action: action.to_string(),
            path: path.to_string(),
            size,
            detail,
        };
        crate::console::announce(&a);
        let _ = self.actions.send(a);
    }

    /// Passes on an action the peer announced (Server B's, relayed over the
    /// sync link) to this side's subscribers, marked with the peer's letter.
    /// Not printed: the peer's console has it.
    pub fn relay(&self, mut action: Action) {
        if self.cfg.me == Role::ServerB {
            return; // only Server A takes relayed actions: no echo
        }
        action.side = self.peer_side().to_string();
        let _ = self.actions.send(action);
    }

    /// Tells this side's subscribers (`lab3 watch`) about the link going up
    /// or down; not printed, as the log already says it.
    pub(crate) fn tell_link(&self, up: bool, detail: String) {
        if self.cfg.me == Role::ServerB {
            return; // nobody watches at B
        }
        let a = Action {
            time_ns: crate::meta::now_ns(),
            side: self.side().to_string(),
            direction: self.side().to_string(),
            action: if up { "link up" } else { "link down" }.to_string(),
            path: format!("server {}", self.peer_side()),
            size: None,
            detail,
        };
        let _ = self.actions.send(a);
    }

    /// This side's letter.
    pub fn side(&self) -> &'static str {
        side_letter(self.cfg.me)
    }

    /// The peer's letter.
    pub fn peer_side(&self) -> &'static str {
        match self.cfg.me {
            Role::ServerB => "A",
            _ => "B",
        }
    }
}

impl SyncHandle {
    /// The direction of what this side sends: `A->B` at A.
    pub fn outbound(&self) -> String {
        format!("{}->{}", self.side(), self.peer_side())
    }

    /// The direction of what this side receives: `B->A` at A.
    pub fn inbound(&self) -> String {
        format!("{}->{}", self.peer_side(), self.side())
    }
}

/// Completes when `shutdown` does, or when the engine of `sync` fails to
/// start (its start-up runs while the server serves clients; `why` then
/// holds its error, for the server to stop with).
pub async fn until_stopped(
    sync: Option<SyncHandle>,
    shutdown: impl std::future::Future<Output = ()>,
    why: Arc<Mutex<Option<anyhow::Error>>>,
) {
    let failed = async {
        match sync {
            Some(s) => match s.ready().await {
                Err(e) => *why.lock().unwrap() = Some(e),
                Ok(()) => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = shutdown => {}
        () = failed => {}
    }
}

/// `A` or `B`.
pub fn side_letter(r: Role) -> &'static str {
    match r {
        Role::ServerB => "B",
        _ => "A",
    }
}
