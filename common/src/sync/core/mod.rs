//! The sync core: every sync decision, as a state machine that does no
//! I/O, reads no clock and draws no random numbers. `handle(now, input)`
//! returns effects; an executor per server (watcher, scanner, link, file
//! system) carries them out and feeds back what it saw. The same core runs
//! in the deterministic simulation against an in-memory file system, link
//! and clock.
//!
//! # Model
//! One [`PathState`] per path: `local` (this side's disk), `base` (the
//! version both sides last acknowledged, with this side's own stat of it),
//! `peer`, `pending`, `lock`. A path changed here when `local` differs from
//! `base.here` (identity included). A change goes across as an `Offer`
//! (`Remove`, `Move`) carrying the base it replaces; the receiver answers
//! with what landed on its disk (`Stored`), and only that answer moves the
//! base. One side changed: its version wins, whatever its mtime. Both
//! changed: the later mtime wins (compared at the coarser side's
//! precision), equal times go to Server A, and the loser is kept as a
//! version where it is replaced ([`rule`]).
//!
//! # Layout
//! - [`model`]: entries, versions, identities.
//! - [`wire`]: the messages between two cores.
//! - [`io`]: inputs, effects, outcomes.
//! - [`state`]: per-path state, journal records, the link phase.
//! - [`rule`]: who wins, as one pure function.
//! - [`names`]: names the other side's folder cannot hold.
//! - `local`, `peer`, `answers`, `reconcile`, `lock`: the handlers.

mod answers;
pub mod failing;
pub mod io;
mod local;
mod lock;
pub mod model;
pub mod names;
mod path_set;
mod peer;
mod reconcile;
pub mod rule;
mod scan_walk;
pub mod state;
mod tombstones;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use path_set::PathSet;
use rustc_hash::FxHashMap;

pub use failing::Failing;
pub use io::{Announcement, Direction, Effect, Input, KeepWhy, Outcome, Replayed, Source, Timer};
pub use local::landings_to_hash;
pub use model::{Entry, FileId, Hash, Holding, Kind, Version};
pub use state::{Base, LinkPhase, LockState, PathState, Pending, Queued, Record};
pub use wire::{Digest, FsTraits, InvEntry, OpId, PeerMsg, Refusal};

/// Which server a core runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    A,
    B,
}

use serde::{Deserialize, Serialize};

/// The core's settings: this side's file system and its timings, as plain
/// data (a simulation sets any of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub side: Side,
    /// This side's folder, as probed at start (told to the peer in the handshake).
    pub fs: FsTraits,
    /// A change is sent once the path has been quiet this long since its
    /// last write (its mtime; the time it was seen, for a vanished path or
    /// a future mtime), unless a writer was seen closing it. Also how long a vanished path waits
    /// for its identity to reappear elsewhere (a move) before it is a delete.
    pub quiet_ns: i64,
    /// How long before a failed operation is tried again the first time;
    /// the delay doubles with each failure in a row, up to `retry_max_ns`.
    pub retry_ns: i64,
    pub retry_max_ns: i64,
    /// Replaced and deleted versions are kept (`--keep-versions 0`: not).
    pub keep_versions: bool,
    /// How long a delete is remembered while the peer is away
    /// (`--keep-deletes DAYS`; see `tombstones`).
    pub keep_deletes_ns: i64,
    /// This run's number: the executor counts this side's starts, kept
    /// durably before the core starts (0 where nothing restarts, as in a
    /// unit test). Operation numbers carry it ([`op_of_run`]), so that a
    /// peer's late answer to an operation of an earlier run (an offer sent
    /// before a kill -9, answered once the new run is connected) never
    /// names one of this run's: numbered from 1 again at each start, such
    /// an answer was taken for the answer to the new run's operation of
    /// the same number.
    pub run: u64,
}

/// The bits of an operation number that count within a run: the run's
/// number is above them (see [`Config::run`]). On the wire an operation
/// number is still a plain `u64`, which a peer only echoes back: a peer
/// of an earlier build reads and answers these as it did the small ones.
pub const OP_RUN_SHIFT: u32 = 40;

/// The first operation number of run `run` (run numbers wrap after 2^24
/// starts).
pub fn op_of_run(run: u64) -> OpId {
    ((run & ((1 << (64 - OP_RUN_SHIFT)) - 1)) << OP_RUN_SHIFT) + 1
}

/// Days a delete is remembered by default: about 15 months, as Syncthing.
pub const KEEP_DELETES_DAYS: u32 = 456;

impl Config {
    pub fn new(side: Side) -> Config {
        Config {
            side,
            fs: FsTraits::default(),
            quiet_ns: 300_000_000,
            retry_ns: 1_000_000_000,
            retry_max_ns: 60_000_000_000,
            keep_versions: true,
            keep_deletes_ns: i64::from(KEEP_DELETES_DAYS) * 86_400_000_000_000,
            run: 0,
        }
    }
}

/// Every known path's state, in path order (see [`Core`]'s `paths`).
pub type States = BTreeMap<String, Box<PathState>>;

/// The states a core starts from, with the indexes made of them: the
/// identities of the agreed bases here and the locked paths. At a start
/// the executor makes it on the journal's thread, beside the folder's
/// scan (the index of a big tree's bases was a serial step between the
/// two: issue 15). What may change a state before the core is made goes
/// through here, so that the indexes stay those of the states.
pub struct Indexed {
    paths: States,
    based: FxHashMap<FileId, PathSet>,
    locked: BTreeSet<String>,
}

impl Indexed {
    /// The indexes of `paths`, in one pass (no lookup, no copy of a path
    /// but the indexes' own).
    pub fn new(mut paths: States) -> Indexed {
        let mut based = FxHashMap::default();
        let mut locked = BTreeSet::new();
        for (p, st) in paths.iter_mut() {
            st.based_id = here_id(st);
            if let Some(id) = st.based_id {
                index_path(&mut based, id, p);
            }
            if st.lock.is_some() {
                locked.insert(p.clone());
            }
        }
        Indexed {
            paths,
            based,
            locked,
        }
    }

    /// The states.
    pub fn states(&self) -> &States {
        &self.paths
    }

    /// Forgets every path's agreed base and delete (a folder found empty
    /// that held files: nothing counts as deleted).
    pub fn forget_history(&mut self) {
        for st in self.paths.values_mut() {
            st.base = None;
            st.deleted_ns = None;
            st.based_id = None;
        }
        self.based.clear();
    }

    /// The lock of each locked path, to be brought up to date with what
    /// is on disk (its queue).
    pub fn locks_mut(&mut self) -> impl Iterator<Item = (&String, &mut LockState)> {
        (self.paths.iter_mut()).filter_map(|(p, st)| st.lock.as_deref_mut().map(|l| (p, l)))
    }
}

/// The path (and, for a move, the source) an operation is about.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OpFor {
    path: String,
    from: Option<String>,
    /// Why the replaced version is kept, for an install's announcement.
    keep: Option<KeepWhy>,
    /// An offer whose wait the link's drop (or a new link) ended: what
    /// it sent and read from. The peer may still answer it (it stored
    /// it while the link went down), and that answer moves the base.
    /// Boxed: rare, and an operation of every file in flight is kept.
    lost: Option<Box<(Holding, Option<Entry>)>>,
}

/// The sync core of one side.
#[derive(Debug, Clone)]
pub struct Core {
    cfg: Config,
    /// Every known path's state, boxed: a B-tree keeps its values inline
    /// in nodes of eleven, so a `PathState` of several hundred bytes
    /// unboxed made each node kilobytes, a partly filled node wasted
    /// hundreds of bytes a path, and building the map at start (from the
    /// journal, sorted through a `Vec` of every entry) held every state
    /// twice. Boxed, a node holds pointers and a state is moved as one.
    paths: States,
    /// Which paths hold each identity (an index over `local`, for moves
    /// and hard links).
    ids: FxHashMap<FileId, PathSet>,
    /// Which paths' agreed base was each identity here (an index over
    /// `base.here`, kept by [`Core::record`], for moves; each state
    /// knows its own entry, `PathState::based_id`).
    based: FxHashMap<FileId, PathSet>,
    link: LinkPhase,
    next_op: OpId,
    /// What each of this side's operations is about.
    ops: FxHashMap<OpId, OpFor>,
    /// Names whose change waits for a folder above them to move (it
    /// carries them along): considered again whenever that folder is
    /// (its outcome, its timer, a change under or over it), so a change
    /// never waits for the next rescan (seeds 1702, 2710).
    waiting: BTreeSet<String>,
    /// The start-up scan was taken.
    scanned_once: bool,
    /// What each running unlock replayed so far.
    replays: HashMap<String, Vec<Replayed>>,
    /// Held names by their folded form, on a folder that folds names
    /// (see [`names`]).
    folds: HashMap<String, BTreeSet<String>>,
    /// Locked names (Server A), for a folder that folds names: a lock
    /// also holds back the peer's other spellings of its file.
    locked: BTreeSet<String>,
    /// This side's names that the peer refused to store.
    unsent: BTreeMap<String, names::Unsent>,
    unsent_changes: u64,
    /// The peer's names this side refused, with why (said once).
    refused_here: BTreeMap<String, String>,
    /// Paths observed while an effect of this side's ran on them: the
    /// effect's re-stat may be older than that observation, so the path
    /// is looked at again once it reports.
    seen_while_applying: BTreeSet<String>,
    /// Paths that cannot be read or replaced right now.
    failing: BTreeMap<String, failing::Failing>,
    now_ns: i64,
    out: Vec<Effect>,
}

impl Core {
    /// A core with what the journal kept. The executor then feeds the
    /// start-up scan ([`Input::Scanned`]) before anything else.
    pub fn new(cfg: Config, journal: impl IntoIterator<Item = (String, Record)>) -> Core {
        let paths = journal
            .into_iter()
            .map(|(p, r)| (p, Box::new(PathState::from(r))))
            .collect();
        Core::from_states(cfg, paths)
    }

    /// [`Core::new`] from the states of what the journal kept, made
    /// already (see [`PathState::from`]).
    pub fn from_states(cfg: Config, paths: States) -> Core {
        Core::from_indexed(cfg, Indexed::new(paths))
    }

    /// [`Core::from_states`] with the states' indexes made already (at a
    /// start, on the journal's thread while the folder is scanned).
    pub fn from_indexed(cfg: Config, indexed: Indexed) -> Core {
        let Indexed {
            paths,
            based,
            locked,
        } = indexed;
        Core {
            next_op: op_of_run(cfg.run),
            cfg,
            paths,
            ids: FxHashMap::default(),
            based,
            link: LinkPhase::Down,
            ops: FxHashMap::default(),
            waiting: BTreeSet::new(),
            scanned_once: false,
            replays: HashMap::new(),
            folds: HashMap::new(),
            locked,
            unsent: BTreeMap::new(),
            unsent_changes: 0,
            refused_here: BTreeMap::new(),
            seen_while_applying: BTreeSet::new(),
            failing: BTreeMap::new(),
            now_ns: 0,
            out: Vec::new(),
        }
    }

    /// Takes one input at time `now_ns` (the executor's clock, nanoseconds
    /// since the epoch) and returns what must be done, in order.
    pub fn handle(&mut self, now_ns: i64, input: Input) -> Vec<Effect> {
        self.now_ns = now_ns;
        let ended = self.ended_paths(&input);
        match input {
            Input::Observed {
                path,
                entry,
                closed,
            } => self.observed(path, entry, closed),
            Input::Scanned { entries } => self.scanned(entries),
            Input::LinkUp { peer } => self.link_up(peer),
            Input::LinkDown => self.link_down(),
            Input::Peer(msg) => self.peer_msg(msg),
            Input::Timer(t) => self.timer(t),
            Input::Lock { path } => self.lock(path),
            Input::Unlock { path } => self.unlock(path),
            Input::Done { op, outcome } => self.done(op, outcome),
            Input::Hashed { hashes } => self.hashed(hashes),
        }
        let settled = !ended.is_empty();
        for p in ended {
            self.wake_under(&p);
        }
        if settled && !self.locked.is_empty() {
            // A replay may have waited for what just settled.
            self.resume_unlocks();
        }
        std::mem::take(&mut self.out)
    }

    /// The paths (and a move's source) of the operation that `input`
    /// ends, if it ends one, or that the peer's change settles: what
    /// waited under them goes again (seed 36540 of the strict run: a
    /// folder renamed at B, its offer queued behind a lock at A, was
    /// agreed by A's offer after the unlock; the file inside, waiting for
    /// the folder's move, waited for the next rescan).
    fn ended_paths(&self, input: &Input) -> Vec<String> {
        let (op, path) = match input {
            Input::Peer(PeerMsg::Offer { path, .. } | PeerMsg::Remove { path, .. }) => {
                return vec![path.clone()]
            }
            Input::Peer(PeerMsg::Move { from, to, .. }) => return vec![from.clone(), to.clone()],
            Input::Done { op, .. } => (*op, None),
            Input::Peer(
                PeerMsg::Stored { op, path, .. }
                | PeerMsg::Refused { op, path, .. }
                | PeerMsg::Queued { op, path },
            ) => (*op, Some(path.clone())),
            _ => return Vec::new(),
        };
        let of = self.ops.get(&op);
        path.into_iter()
            .chain(of.map(|o| o.path.clone()))
            .chain(of.and_then(|o| o.from.clone()))
            .collect()
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The state of `path`, if the core knows it.
    pub fn path(&self, path: &str) -> Option<&PathState> {
        self.paths.get(path).map(|s| &**s)
    }

    /// Every known path and its state, in path order.
    pub fn paths(&self) -> impl Iterator<Item = (&String, &PathState)> {
        self.paths.iter().map(|(p, s)| (p, &**s))
    }

    pub fn link(&self) -> &LinkPhase {
        &self.link
    }

    /// The precision both sides keep (the coarser), while the link is up.
    fn precision(&self) -> u64 {
        let mine = self.cfg.fs.precision_ns;
        self.link.peer().map_or(mine, |p| p.precision_ns.max(mine))
    }

    /// `op` was numbered by an earlier run of this side (see
    /// [`Config::run`]): nothing of this run waits for its answer.
    fn of_earlier_run(&self, op: OpId) -> bool {
        op >> OP_RUN_SHIFT != op_of_run(self.cfg.run) >> OP_RUN_SHIFT
    }

    fn op(&mut self, path: &str, from: Option<&str>) -> OpId {
        let op = self.next_op;
        self.next_op += 1;
        self.ops.insert(
            op,
            OpFor {
                path: path.to_string(),
                from: from.map(str::to_string),
                keep: None,
                lost: None,
            },
        );
        op
    }

    fn emit(&mut self, e: Effect) {
        self.out.push(e);
    }

    fn announce(
        &mut self,
        action: &'static str,
        direction: Direction,
        path: &str,
        size: Option<u64>,
        detail: String,
    ) {
        self.emit(Effect::Announce(Announcement {
            action,
            direction,
            path: path.to_string(),
            size,
            detail,
        }));
    }

    /// Forgets `path`'s state, its place in the `based` index, and its
    /// journal line if it had one as a new name's offer (see
    /// [`PathState::offered`]).
    fn drop_state(&mut self, path: &str) -> Option<Box<PathState>> {
        let mut st = self.paths.remove(path)?;
        if let Some(old) = st.based_id.take() {
            unindex_path(&mut self.based, old, path);
        }
        if st.offered {
            self.emit(Effect::Record {
                path: path.to_string(),
                record: None,
            });
        }
        Some(st)
    }

    /// Writes `path`'s record to the journal (every change of a base goes
    /// through here), and keeps the `based` index in step with the base (a
    /// path whose state is dropped leaves it in [`Core::drop_state`]). One
    /// lookup of the path: a burst of received files comes here twice a file.
    fn record(&mut self, path: &str) {
        let record = self.paths.get_mut(path).and_then(|st| {
            let (old, id) = (st.based_id, here_id(st));
            if old != id {
                st.based_id = id;
                if let Some(old) = old {
                    unindex_path(&mut self.based, old, path);
                }
                if let Some(id) = id {
                    index_path(&mut self.based, id, path);
                }
            }
            if st.base.is_some() {
                st.offered = false;
            }
            st.record()
        });
        self.emit(Effect::Record {
            path: path.to_string(),
            record,
        });
    }

    /// Sets `path`'s local entry, keeping the identity index in step.
    fn set_local(&mut self, path: &str, entry: Option<Entry>) {
        // A known path is looked up without making its name again (every
        // path of a start-up scan comes through here).
        if !self.paths.contains_key(path) {
            self.paths.insert(path.to_string(), Box::default());
        }
        let st = self.paths.get_mut(path).expect("just made");
        if let Some(old) = &st.local {
            unindex_path(&mut self.ids, old.id, path);
        }
        if let Some(new) = &entry {
            index_path(&mut self.ids, new.id, path);
        }
        let (was, is) = (st.local.is_some(), entry.is_some());
        st.local = entry;
        if was != is {
            self.index_folded(path, is);
        }
    }
}

/// The identity of `st`'s agreed base here, if any.
fn here_id(st: &PathState) -> Option<FileId> {
    st.base.as_ref().and_then(|b| b.here.as_ref()).map(|h| h.id)
}

/// Takes `path` out of the paths of identity `id` in `index`.
fn unindex_path(index: &mut FxHashMap<FileId, PathSet>, id: FileId, path: &str) {
    if let Some(set) = index.get_mut(&id) {
        set.remove(path);
        if set.is_empty() {
            index.remove(&id);
        }
    }
}

/// Adds `path` to the paths of identity `id` in `index`.
fn index_path(index: &mut FxHashMap<FileId, PathSet>, id: FileId, path: &str) {
    match index.get_mut(&id) {
        Some(set) => {
            set.insert(path.to_string());
        }
        None => {
            index.insert(id, PathSet::new(path.to_string()));
        }
    }
}

#[cfg(test)]
mod index_tests;
#[cfg(test)]
mod names_tests;
#[cfg(test)]
mod sim_fs;
#[cfg(test)]
mod tests;
