//! The core's inputs and effects: everything that goes in and out of
//! [`super::Core::handle`]. The executor turns effects into I/O and feeds
//! back what it saw as inputs; a simulation does the same in memory.

use serde::{Deserialize, Serialize};

use super::model::{Entry, Holding, Version};
use super::state::Record;
use super::wire::{FsTraits, OpId, PeerMsg};

/// Something the core must take into account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The executor stat'ed `path` (a watcher hint settled, a
    /// [`Effect::Stat`] asked): what it holds now, `None` for nothing.
    /// `closed`: a writer just closed it (no need to wait for it to be quiet).
    Observed {
        path: String,
        entry: Option<Entry>,
        closed: bool,
    },
    /// A full scan of the folder (start-up, safety-net rescan): every entry
    /// under the root; known paths missing from it are gone. In the first
    /// scan of a run, a file whose state holds a landing
    /// ([`super::PathState::landing`]) and has the landing's size carries
    /// its content's `hash` (see [`super::landings_to_hash`]): only that
    /// tells the landed file from a look-alike saved over it.
    Scanned {
        entries: Vec<(String, Entry)>,
    },
    /// The link is up and the handshake done; the peer's file system.
    LinkUp {
        peer: FsTraits,
    },
    LinkDown,
    Peer(PeerMsg),
    /// A timer armed by [`Effect::Arm`] is due.
    Timer(Timer),
    /// (Server A) `lab3 lock`: from this input on, no update of `path`
    /// from the peer reaches the folder.
    Lock {
        path: String,
    },
    /// (Server A) `lab3 unlock`: replay the queue, then sync as usual.
    Unlock {
        path: String,
    },
    /// An effect with an `op` finished.
    Done {
        op: OpId,
        outcome: Outcome,
    },
    /// [`Effect::Hash`] done: each path's content hash, `None` where the
    /// file no longer matched what was asked.
    Hashed {
        hashes: Vec<(String, Option<String>)>,
    },
}

/// How an effect went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done; `landed` is a re-stat of the path afterwards, `kept_at` where
    /// the replaced version was kept (if one was).
    Applied {
        landed: Option<Entry>,
        kept_at: Option<String>,
    },
    /// [`Effect::SendFile`]: the bytes went out, with this hash.
    Sent { hash: String },
    /// The disk did not hold what `expect` said (a user's edit slipped
    /// in): nothing was done; `found` is what is there.
    Mismatch { found: Option<Entry> },
    /// It failed; `retry`: worth trying again later (disk full, a file
    /// held open), otherwise not (a name this file system refuses).
    Failed { error: String, retry: bool },
}

/// A timer the core armed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// Look at `path` again: send it once it has been quiet long enough,
    /// or send a delete once no move explains it.
    Quiet(String),
    /// Try a failed operation on `path` again.
    Retry(String),
}

/// Where [`Effect::Install`] finds the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Received from the peer and verified; the executor staged it under
    /// the version's hash.
    Staged,
    /// Server A's lock queue entry `seq` of this path.
    Queued { seq: u64 },
}

/// Why a version is kept (see the contract's Versions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepWhy {
    Replaced,
    Deleted,
    Conflict,
}

/// Which way an announced action went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// This side to the peer (`A->B` at A).
    Out,
    /// The peer to this side.
    In,
    /// Something local (a lock).
    Here,
}

/// One console line (the executor adds the time and side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// `created`, `updated`, `deleted`, `renamed`, `conflict`, `queued`,
    /// `applied`, `superseded`, `failed`, `locked`, `unlocked`, `error`.
    pub action: &'static str,
    pub direction: Direction,
    pub path: String,
    pub size: Option<u64>,
    pub detail: String,
}

/// What one replayed queue entry came to, for the unlock's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    pub seq: u64,
    /// The queued update: a version, or a delete.
    pub update: Holding,
    /// `applied`, `superseded` or `failed`.
    pub outcome: &'static str,
}

/// Something the executor must do. Effects are carried out in the order
/// given: a `Record` before the `Send` that follows it, so a peer is never
/// told what this side's journal could lose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Send(PeerMsg),
    /// Send `offer` (a [`PeerMsg::Offer`] of a file) followed by the bytes
    /// of `path`, checking after reading that it still matches `expect`.
    /// Reports `Sent` or `Mismatch` (it changed: the peer is told to drop it).
    SendFile {
        op: OpId,
        path: String,
        expect: Entry,
        offer: PeerMsg,
    },
    /// Look at `path` and report [`Input::Observed`].
    Stat {
        path: String,
    },
    /// Hash these files (each if it still matches its entry) and report
    /// [`Input::Hashed`]: look-alikes both sides changed, compared at
    /// reconciliation.
    Hash {
        files: Vec<(String, Entry)>,
    },
    /// Put `version` at `path` (a file from `source`, or a folder), if the
    /// disk still holds `expect` (`None`: nothing). What is there is first
    /// kept as a version when `keep` says why (a folder in the way is kept
    /// with all it holds). Missing parent folders are made. Reports
    /// `Applied` with a re-stat, `Mismatch` or `Failed`.
    Install {
        op: OpId,
        path: String,
        version: Version,
        source: Source,
        expect: Option<Entry>,
        keep: Option<KeepWhy>,
    },
    /// Remove `path` (a file, or an empty folder) if it still holds
    /// `expect`, keeping it first when `keep` says why.
    Remove {
        op: OpId,
        path: String,
        expect: Entry,
        keep: Option<KeepWhy>,
    },
    /// Rename `from` (holding `expect`) to `to`, which must be free;
    /// missing parent folders are made. Reports `Applied` with a re-stat
    /// of `to`.
    Rename {
        op: OpId,
        from: String,
        to: String,
        expect: Entry,
    },
    /// (Server A) Append the peer's update of `path` (its operation
    /// `peer_op`) to its lock queue as entry `seq`, with a snapshot of its
    /// staged content (a version) or as a delete. Durable before the next
    /// effect. The executor keeps the queue (a [`super::Queued`] per entry)
    /// and gives it back in the path's [`super::Record`] at start; the
    /// journal's records need not carry it.
    Queue {
        path: String,
        seq: u64,
        update: Holding,
        peer_op: OpId,
        /// See [`super::Queued::held`].
        held: Option<Holding>,
    },
    /// (Server A) Forget queue entry `seq` of `path` and its snapshot.
    Dequeue {
        path: String,
        seq: u64,
    },
    /// Write `path`'s record to the journal (`None`: forget the path).
    /// Durable before the next effect.
    Record {
        path: String,
        record: Option<Record>,
    },
    Announce(Announcement),
    /// Feed [`Input::Timer`] back at `at_ns` (or later).
    Arm {
        timer: Timer,
        at_ns: i64,
    },
    /// Reconciliation ended: `agreed` files in agreement, `to_send` files
    /// this side sends; `by_digest`: the digests agreed, no inventory was sent.
    Reconciled {
        agreed: usize,
        to_send: usize,
        by_digest: bool,
    },
    /// (Server A) The answer to [`Input::Unlock`] of `path`, once its
    /// queue is replayed.
    Unlocked {
        path: String,
        replayed: Vec<Replayed>,
    },
}

impl Effect {
    /// Whether this effect concerns `path` (the executors let a landing
    /// line go ahead of held effects only where none does).
    pub fn names(&self, path: &str) -> bool {
        match self {
            Effect::Record { path: p, .. }
            | Effect::Install { path: p, .. }
            | Effect::Remove { path: p, .. }
            | Effect::Stat { path: p }
            | Effect::SendFile { path: p, .. }
            | Effect::Queue { path: p, .. }
            | Effect::Dequeue { path: p, .. }
            | Effect::Unlocked { path: p, .. } => p == path,
            Effect::Announce(a) => a.path == path,
            Effect::Rename { from, to, .. } => from == path || to == path,
            Effect::Hash { files } => files.iter().any(|(p, _)| p == path),
            Effect::Send(_) | Effect::Arm { .. } | Effect::Reconciled { .. } => false,
        }
    }
}
