//! The sync engine both servers run: it keeps one directory equal to the
//! peer's, in both directions, over the one link that Server A dials.
//!
//! # Layout
//! - `engine`: the actor that owns the state and decides, on a thread of
//!   its own; everything else sends it events (a burst of received files
//!   arrives as one event). `engine/local.rs` handles this side's changes,
//!   `engine/incoming.rs` the peer's, `engine/reconcile.rs` the digest
//!   and inventory exchange on (re)connection, `engine/scans.rs` the scan
//!   at start and the safety-net rescans, `engine/replay.rs` Server A's
//!   unlock.
//! - [`watcher`]: OS events turned into hints about paths.
//! - [`journal`]: what this side last saw of each path, tombstones included.
//! - [`decide`]: the one rule for who wins a disagreement.
//! - `due`: paths waiting to be looked at, ordered by deadline.
//! - [`transfer`]: file bytes over the link, into verified temporary files.
//! - [`apply`]: the only code that changes the synced directory.
//! - [`link`]: the reader and writer tasks of a connected link.
//!
//! # How a change travels
//! The watcher hints a path; once it settles the engine stats it and
//! compares it with the journal. A difference is recorded and, when the
//! link is up, sent: a file as `FileBegin` + data + `FileEnd`, a vanished
//! file as `Delete`, a vanished file reappearing under another name as
//! `Rename`. Each carries the sender's previous state (its *base*). The
//! receiver applies it at once if its own copy is that base; otherwise both
//! sides hold different changes and [`decide::winner`] settles it the same
//! way on both. A peer's change is recorded in the journal as it is
//! applied, so the watcher event it causes compares equal and is not sent
//! back. On every (re)connection both sides exchange inventories and
//! [`decide::plan`] says who pushes what.

pub mod apply;
pub mod core;
pub mod decide;
pub mod disk;
mod due;
mod engine;
pub mod journal;
mod link;
pub mod transfer;
pub mod watcher;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::connection::Connection;
use crate::handshake::PeerInfo;
use crate::ignore::Ignore;
use crate::meta::FileMeta;
use crate::protocol::{Action, AppliedUpdate, Role};

pub use engine::start;

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
    /// Server A's lock table: holds back updates of locked paths.
    pub gate: Option<Arc<dyn Gate>>,
}

/// An update from the peer that a [`Gate`] holds back.
#[derive(Debug)]
pub enum HeldUpdate {
    /// New content, already verified, in a temporary file the gate now owns.
    Write(transfer::Received),
    /// The peer deleted (or renamed away) the path at `deleted_ns`.
    Delete { path: String, deleted_ns: i64 },
}

impl HeldUpdate {
    pub fn path(&self) -> &str {
        match self {
            HeldUpdate::Write(r) => &r.meta.path,
            HeldUpdate::Delete { path, .. } => path,
        }
    }
}

/// Decides whether the peer's updates of a path are applied now or held
/// (Server A's lock table). The engine calls it from its own task only, so
/// an unlock and the peer's updates can never interleave.
pub trait Gate: Send + Sync {
    /// Whether updates of `path` from the peer are held back.
    fn holds(&self, path: &str) -> bool;
    /// Takes one held update (in arrival order).
    fn hold(&self, update: HeldUpdate);
    /// Stops holding `path` and hands back its queue, oldest first. The
    /// queue's files stay until [`Gate::end_unlock`], so a crash during
    /// replay resumes it.
    fn begin_unlock(&self, path: &str) -> anyhow::Result<Vec<QueuedUpdate>>;
    /// The replay of `path`'s queue finished: forget the queue.
    fn end_unlock(&self, path: &str);
}

/// A held update handed back for replay, with its content (if any) in a
/// file of the state directory that replay consumes.
#[derive(Debug, Clone)]
pub enum QueuedUpdate {
    Write {
        seq: u64,
        meta: FileMeta,
        file: PathBuf,
    },
    Delete {
        seq: u64,
        path: String,
        deleted_ns: i64,
    },
}

/// The link's state, for `lab3 status`.
pub use crate::protocol::LinkStatus;

/// Commands from the server that embeds the engine.
pub(crate) enum Command {
    Unlock {
        path: String,
        reply: oneshot::Sender<anyhow::Result<Vec<AppliedUpdate>>>,
    },
}

/// The embedding server's handle on a running engine.
#[derive(Clone)]
pub struct SyncHandle {
    events: mpsc::UnboundedSender<engine::Event>,
    cfg: Arc<SyncConfig>,
    tmp_dir: PathBuf,
    actions: broadcast::Sender<Action>,
    /// How many [`Subscription`]s are alive (Server A asks B to relay its
    /// actions only while there are any).
    watchers: Arc<watch::Sender<usize>>,
    status: Arc<Mutex<LinkStatus>>,
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

    /// Releases `path` from the gate and applies its held updates in
    /// order, in one step of the engine; reports each outcome.
    pub async fn unlock(&self, path: &str) -> anyhow::Result<Vec<AppliedUpdate>> {
        let (reply, rx) = oneshot::channel();
        let path = path.to_string();
        self.events
            .send(engine::Event::Command(Command::Unlock { path, reply }))
            .map_err(|_| anyhow::anyhow!("sync engine stopped"))?;
        rx.await?
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

    /// The link's state now.
    pub fn status(&self) -> LinkStatus {
        self.status.lock().unwrap().clone()
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

/// `A` or `B`.
pub fn side_letter(r: Role) -> &'static str {
    match r {
        Role::ServerB => "B",
        _ => "A",
    }
}
