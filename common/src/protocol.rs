//! The messages lab3 programs exchange, as plain data.
//!
//! Every message is one JSON frame (see [`crate::connection`] for framing);
//! file bodies never travel inside JSON but as raw data frames that follow a
//! message announcing them. `docs/PROTOCOL.md` describes the conversation.

use serde::{Deserialize, Serialize};

use crate::meta::FileMeta;

/// Bumped whenever a message changes shape or meaning.
/// (2: TLS underneath, token proofs instead of the token.)
pub const PROTOCOL_VERSION: u32 = 2;

/// Largest frame (JSON or data) any lab3 program accepts, checked before allocating.
pub const MAX_FRAME_LEN: usize = 8 * 1024 * 1024;

/// Largest number of entries put in one listing or inventory chunk, so that
/// even 100,000-file trees stay far below [`MAX_FRAME_LEN`] per frame.
pub const ENTRIES_PER_CHUNK: usize = 2_000;

/// On a `lab3 watch` connection, each end sends a `Ping` after this long
/// without sending anything, so that the other end can tell a quiet watch
/// from a vanished one (Server A closes a client silent for 30 s).
pub const WATCH_PING_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Who is on the other end of a connection, as told in the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A `lab3` command-line client.
    Client,
    /// Server A (dials Server B).
    ServerA,
    /// Server B.
    ServerB,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Client => "client",
            Role::ServerA => "server A",
            Role::ServerB => "server B",
        })
    }
}

/// One row of the composite listing as Server A sends it to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingRow {
    pub index: usize,
    pub name: String,
    pub size: u64,
    pub mtime_ns: i64,
    /// `"a"`, `"b"` or `"both"`.
    #[serde(rename = "where")]
    pub location: String,
    pub locked: bool,
    pub queued: usize,
}

/// Whether Server A could reach Server B for this answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerState {
    Connected,
    Unreachable,
}

/// What a lock or unlock did to one queued update, reported to the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedUpdate {
    /// Position in the FIFO queue, from 1.
    pub seq: u64,
    /// `"write"` or `"delete"`.
    pub action: String,
    pub size: u64,
    pub mtime_ns: i64,
    /// `"applied"` or `"superseded"`.
    pub outcome: String,
}

/// One kept version of a file at one side (`lab3 versions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// `"a"` or `"b"`: the side that keeps it.
    pub side: String,
    /// Short and stable: the side's letter, a dash, 8 hex digits.
    pub id: String,
    /// The path it was kept from, relative to the folder.
    pub path: String,
    /// `"replaced"`, `"deleted"` or `"conflict"`.
    pub why: String,
    /// When it was kept (ns since the epoch).
    pub kept_ns: i64,
    pub size: u64,
    pub mtime_ns: i64,
    /// Permission bits, where the side has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// How many versions a side keeps, and their bytes (`lab3 status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionUsage {
    /// `"a"` or `"b"`.
    pub side: String,
    pub count: usize,
    pub bytes: u64,
}

/// A path one side cannot read or replace right now (permissions, a file
/// held open on Windows), for `lab3 status`: the core's record of it, and
/// which side it is at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailingPath {
    /// `"a"` or `"b"`.
    pub side: String,
    #[serde(flatten)]
    pub failing: crate::sync::core::Failing,
}

/// State a side found damaged or incomplete at start and set aside (a
/// lock queue's entry whose snapshot is missing), for `lab3 status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAsideInfo {
    /// `"a"` or `"b"`.
    pub side: String,
    /// The synced path it was about.
    pub path: String,
    /// What was set aside, and why.
    pub what: String,
    /// Where it lies now.
    pub at: String,
    pub time_ns: i64,
}

/// One entry of a lock listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub name: String,
    pub queued: usize,
}

/// A path's state as one side reports it in an inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum InventoryEntry {
    /// The file exists with this metadata; `dirty` says it changed since this
    /// side last agreed with the peer about it.
    Present {
        #[serde(flatten)]
        meta: FileMeta,
        dirty: bool,
        /// BLAKE3 of the content, when already known (from a transfer or an
        /// earlier comparison); look-alike paths are compared with `hashes`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hash: Option<String>,
    },
    /// The file was deleted at `deleted_ns` (a tombstone of the journal).
    Deleted { path: String, deleted_ns: i64 },
}

impl InventoryEntry {
    pub fn path(&self) -> &str {
        match self {
            InventoryEntry::Present { meta, .. } => &meta.path,
            InventoryEntry::Deleted { path, .. } => path,
        }
    }
}

/// Every message of the protocol. Tagged as `{"type": ..., "body": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "body", rename_all = "snake_case")]
pub enum Message {
    // ---- handshake (every connection) ----
    /// First frame of every connection (inside TLS), from the side that dialled.
    Hello {
        version: u32,
        role: Role,
        /// With a token set: the proof that the dialler holds it, bound to
        /// this TLS session (see `crate::proof`). The token itself is never sent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        proof: Option<String>,
        /// Sender's wall clock, nanoseconds since the Unix epoch (skew check).
        time_ns: i64,
    },
    /// The answer to an accepted `Hello`.
    Welcome {
        version: u32,
        role: Role,
        /// With a token set: the acceptor's proof that it holds it too.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        proof: Option<String>,
        time_ns: i64,
    },
    /// A refusal or failure; the sender closes the connection after a fatal one.
    Error { message: String },

    // ---- client -> Server A ----
    /// Ask for the composite listing.
    ListRequest,
    /// Lock the file at this index of the current listing, or by name.
    Lock { target: Target },
    /// Unlock it and replay its queue.
    Unlock { target: Target },
    /// List the locks and their queue lengths.
    LocksRequest,
    /// Stream every action of both servers on this connection until the
    /// client closes it (`lab3 watch`).
    WatchRequest,
    /// Server A's state: the link to Server B, transfers, locks (`lab3 status`).
    StatusRequest,
    /// The kept versions of a path at both sides (`lab3 versions`); from
    /// Server A to B: B's side only.
    VersionsRequest { path: String },
    /// Put a kept version back as a new change (`lab3 restore`); `version`
    /// `None`: the newest of both sides.
    RestoreRequest {
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
    },

    // ---- Server A -> client ----
    /// A chunk of the composite listing; the last chunk has `done: true`.
    ListingChunk {
        peer: PeerState,
        rows: Vec<ListingRow>,
        done: bool,
    },
    /// A lock was taken.
    Locked { name: String },
    /// A lock was released; what its queue replay did, in order.
    Unlocked {
        name: String,
        updates: Vec<AppliedUpdate>,
    },
    /// The current locks.
    Locks { locks: Vec<LockInfo> },
    /// The answer to `VersionsRequest`, newest first; `peer` says whether
    /// the other side's versions are in.
    Versions {
        peer: PeerState,
        versions: Vec<VersionInfo>,
    },
    /// The answer to `RestoreRequest`: the version put back.
    Restored { version: VersionInfo },
    /// The answer to `WatchRequest`: subscribed; `Action`s follow, one per
    /// frame. `link_up` says whether Server B's actions reach A now.
    Watching { link_up: bool },
    /// The answer to `StatusRequest`.
    Status {
        /// Server A's clock when it answered (durations are measured on it).
        time_ns: i64,
        /// Server B's address, as Server A dials it.
        peer: String,
        /// Whether Server A synchronises (false with `--no-sync`).
        sync: bool,
        link: LinkStatus,
        locks: Vec<LockInfo>,
        /// Server A's certificate fingerprint (`sha256:…`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fingerprint: Option<String>,
        /// Server B's, as Server A's last link to it saw it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer_fingerprint: Option<String>,
        /// The versions each side keeps (a side that did not answer is
        /// missing).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        versions: Vec<VersionUsage>,
        /// Paths either side cannot read or replace right now (a side that
        /// did not answer is missing).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        failing: Vec<FailingPath>,
        /// State set aside at start, since the server started.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        set_aside: Vec<SetAsideInfo>,
    },

    // ---- Server A -> Server B, one-shot listing connection ----
    /// Ask for a fresh listing of B's directory.
    InventoryRequest,
    /// A chunk of inventory; the last has `done: true`.
    InventoryChunk {
        entries: Vec<InventoryEntry>,
        done: bool,
    },

    // ---- sync link, both directions ----
    /// Opens the sync link (from A, after the handshake).
    SyncStart,
    /// The end of a file's data frames, with the BLAKE3 hash of the bytes.
    FileEnd { hash: String },
    /// The sender gave up on the file it was sending (it changed meanwhile).
    FileAbort,
    /// The sync link's first frame from each side: what its folder's file
    /// system keeps (mtime precision, permission bits, letter case).
    SyncHello { fs: crate::sync::core::FsTraits },
    /// A message of the sync core (see `common::sync::core::wire`). An
    /// `offer` of a file is followed by its data frames and `file_end`
    /// (or `file_abort`, when the file changed while it was read).
    Sync(crate::sync::core::PeerMsg),
    /// Before offering a big file (see `common::sync::blocks`): list the
    /// blocks of your copy of `path`, of `block_size` bytes.
    BlockHashesRequest { path: String, block_size: u64 },
    /// The answer: the blocks of the receiver's copy (none when it has no
    /// regular file there).
    BlockHashes {
        path: String,
        #[serde(flatten)]
        blocks: crate::sync::blocks::BlockList,
    },
    /// Inside a file transfer, between data frames: the next `len` bytes
    /// are those at `offset` of the receiver's own copy of the file.
    BlockCopy { offset: u64, len: u64 },
    /// Keeps an idle link alive; ignored by the receiver.
    Ping,
    /// From Server A to B: relay your actions (`on`: A has `lab3 watch`
    /// clients), or stop. B relays none until asked, so a link nobody
    /// watches carries no action lines.
    RelayActions { on: bool },
    /// One announced action: from Server B to A over the sync link (relayed
    /// for `lab3 watch`, not printed at A), and from A to a watching client.
    Action(Action),
}

/// The sync link's state, as Server A reports it in `Status`. Fields may
/// be added; missing ones read as their defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LinkStatus {
    pub up: bool,
    /// When the link last went up or down (ns since the epoch).
    pub since_ns: Option<i64>,
    /// The peer's clock minus ours, measured at the handshake.
    pub clock_skew_ns: Option<i64>,
    /// When the last reconciliation finished.
    pub last_reconcile_ns: Option<i64>,
    /// Files queued to send or being sent.
    pub sending: usize,
    /// Files being received.
    pub receiving: usize,
    /// Names this side holds that the other side's folder refused to
    /// store (a case clash, a name Windows cannot hold), offered again
    /// only once they change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<UnsyncedName>,
    /// File bytes sent over the link since the server started (a big file
    /// sent block by block counts only the blocks that went).
    pub sent_bytes: u64,
    /// File bytes received over the link since the server started.
    pub received_bytes: u64,
    /// File bytes the receiver took from its own copies instead (block
    /// transfers into this side).
    pub reused_bytes: u64,
    /// Set when the inotify watch limit left some folders without events
    /// (they are rescanned every 3 s): what to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch_limit: Option<String>,
    /// While this side's engine is starting: the files and folders its
    /// start-up scan found so far (`None` once it runs). (32 bits keep
    /// `Message::Status` small; a folder of 4 billion entries shows as that.)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scanning: Option<u32>,
    /// The peer's `scanning`, as Server A merges in Server B's report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_scanning: Option<u32>,
}

/// A name one side holds that the other cannot store (`lab3 status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsyncedName {
    pub path: String,
    /// The side that holds it: `"A"` or `"B"`.
    pub side: String,
    /// Why the other side refused it.
    pub why: String,
}

/// How a client names a file: its index in the listing or its path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Index(usize),
    Name(String),
}

/// One line of a server's console: a sync action as it happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub time_ns: i64,
    /// The server that printed it: `"A"` or `"B"`.
    pub side: String,
    /// `A->B`, `B->A`, or the side's letter for local-only actions.
    pub direction: String,
    /// created, updated, deleted, renamed, conflict, queued, applied,
    /// superseded, locked, unlocked, sending, receiving, refused (a name
    /// the receiving side cannot store), error.
    pub action: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Extra words (the other name of a rename, who won a conflict).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}
