//! The simulated world: two sides (a fake file system, a core or none
//! while crashed, its inbox of inputs, the effects it asked for and not yet
//! done, its timers, the watcher's pending hints, its durable state), the
//! link between them, and one clock. Each method is one step a schedule
//! can take; nothing happens unless a step makes it happen.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};

use common::sync::core::{
    landings_to_hash, Config, Core, Effect, FsTraits, Input, KeepWhy, PeerMsg, Queued, Record,
    Side, Timer,
};

use crate::durability::{Batch, Volatile};
use crate::fake_fs::{FakeFs, Knobs};
use crate::invariants::{LockPhase, Tracker};

/// A run's settings, all drawn from its seed.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub fs_a: Knobs,
    pub fs_b: Knobs,
    /// B's clock minus A's.
    pub skew_b_ns: i64,
    /// Also check what known, unfixed bugs break (off: they pass).
    pub strict: bool,
    /// Users also pick names with NFC and NFD look-alikes
    /// ([`crate::user::NFD_NAMES`]; off: the schedules of every seed and
    /// fixed-step test stay as they were).
    pub nfd_names: bool,
}

pub struct SideSim {
    pub fs: FakeFs,
    pub cfg: Config,
    /// `None` while crashed.
    pub core: Option<Core>,
    /// Inputs waiting for the core, with the link epoch of a `LinkUp`, or
    /// for an answer the executor fed back, the batch of the effect it
    /// answers (0: none; see [`crate::durability`]).
    pub inbox: VecDeque<(Input, u64)>,
    /// Effects the core asked for, not yet carried out, with the link
    /// epoch the core was on when it asked and the batch that asked.
    pub effects: VecDeque<(Effect, u64, Batch)>,
    pub timers: BTreeMap<Timer, i64>,
    /// Paths the watcher will report (`true`: a writer closed it).
    pub dirty: BTreeMap<String, bool>,
    /// The link epoch the core last came up on (0: down).
    pub epoch: u64,
    /// Received content waiting to be installed, by hash (the hash is the
    /// content itself: every content in a run is unique), with how many
    /// offers brought it: each install or queue snapshot takes one, as
    /// sync/disk.rs keeps one file per offer (seed 96900).
    pub staged: HashMap<String, usize>,
    // Durable: survives a crash.
    /// The core's records, a locked path's without its queue (kept below,
    /// as the real executor keeps it, one entry at a time).
    pub journal: BTreeMap<String, Record>,
    /// Each lock queue entry's snapshot (a version's content, by hash).
    pub queue: BTreeMap<(String, u64), String>,
    /// Each lock queue entry's description.
    pub queued: BTreeMap<(String, u64), Queued>,
    pub kept: Vec<(String, KeepWhy, String)>,
    /// What was set and not flushed yet: a power cut drops it.
    pub vol: Volatile,
    pub skew_ns: i64,
}

impl SideSim {
    fn new(who: Side, knobs: Knobs, skew_ns: i64) -> SideSim {
        let mut cfg = Config::new(who);
        cfg.fs = FsTraits {
            precision_ns: knobs.precision_ns,
            has_modes: knobs.has_modes,
            case_insensitive: knobs.case_insensitive,
            normalization_insensitive: knobs.normalization_insensitive,
            windows_names: knobs.refuses_odd_names,
        };
        SideSim {
            fs: FakeFs::new(knobs),
            cfg,
            core: None,
            inbox: VecDeque::new(),
            effects: VecDeque::new(),
            timers: BTreeMap::new(),
            dirty: BTreeMap::new(),
            epoch: 0,
            staged: HashMap::new(),
            journal: BTreeMap::new(),
            queue: BTreeMap::new(),
            queued: BTreeMap::new(),
            kept: Vec::new(),
            vol: Volatile::default(),
            skew_ns,
        }
    }

    /// Takes one staged copy of content `hash`; false if none is left.
    pub fn take_staged(&mut self, hash: &str) -> bool {
        match self.staged.get_mut(hash) {
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                self.staged.remove(hash);
            }
            None => return false,
        }
        true
    }

    pub fn alive(&self) -> bool {
        self.core.is_some()
    }

    /// A hint for the watcher (only while the server runs).
    pub fn touch(&mut self, path: &str, closed: bool) {
        if self.alive() {
            // The last event says whether a writer has it closed now.
            self.dirty.insert(path.to_string(), closed);
        }
    }
}

/// Splits the effects the core just asked for into the landing lines
/// that go to the journal at once and the rest, queued in order behind
/// `queued` (the effects not carried out yet), as sync/exec.rs `Exec::hold`
/// does: an install and everything after it wait for the burst's end,
/// while the landing line of each later install (the record just before
/// it) is set at once, unless a waiting effect names its path. Here the
/// queue stands for what the real executor holds when it starts with an
/// install (other effects it would have carried out already: nothing goes
/// ahead of those), or when empty, the install asked for earlier in the
/// same answer.
fn landings_ahead(
    queued: &VecDeque<(Effect, u64, Batch)>,
    effects: Vec<Effect>,
) -> (Vec<Effect>, Vec<Effect>) {
    let front_install = matches!(queued.front(), Some((Effect::Install { .. }, ..)));
    let mut ahead = Vec::new();
    let mut rest: Vec<Effect> = Vec::new();
    let mut effects = effects.into_iter().peekable();
    while let Some(e) = effects.next() {
        let pair = match (&e, effects.peek()) {
            (
                Effect::Record {
                    path,
                    record: Some(r),
                },
                Some(Effect::Install { path: to, .. }),
            ) => r.landing.is_some() && path == to,
            _ => false,
        };
        let path = match &e {
            Effect::Record { path, .. } => path.as_str(),
            _ => "",
        };
        let free =
            || !queued.iter().any(|(q, ..)| q.names(path)) && !rest.iter().any(|q| q.names(path));
        let holding = front_install
            || (queued.is_empty() && rest.iter().any(|q| matches!(q, Effect::Install { .. })));
        if pair && holding && free() {
            ahead.push(e);
        } else {
            rest.push(e);
        }
    }
    (ahead, rest)
}

/// A message in flight, with the file's bytes for an offer of a file.
pub type Frame = (PeerMsg, Option<String>);

#[derive(Default)]
pub struct Link {
    pub up: bool,
    /// Counts connections; a message sent on an older one is lost.
    pub epoch: u64,
    pub to_a: VecDeque<Frame>,
    pub to_b: VecDeque<Frame>,
}

pub struct World {
    pub a: SideSim,
    pub b: SideSim,
    pub link: Link,
    /// A's clock (B's is skewed from it).
    pub now: i64,
    pub t: Tracker,
    /// A core panicked: the run ends here.
    pub fatal: Option<String>,
    /// Print every input and effect (a replay).
    pub trace: bool,
    /// See [`Setup::strict`].
    pub strict: bool,
    /// The names users pick from (see [`Setup::nfd_names`]).
    pub names: &'static [&'static str],
}

pub const START_NS: i64 = 1_700_000_000_000_000_000;

impl World {
    pub fn new(setup: &Setup) -> World {
        let mut w = World {
            a: SideSim::new(Side::A, setup.fs_a, 0),
            b: SideSim::new(Side::B, setup.fs_b, setup.skew_b_ns),
            link: Link::default(),
            now: START_NS,
            t: Tracker::default(),
            fatal: None,
            trace: false,
            strict: setup.strict,
            names: if setup.nfd_names {
                crate::user::NFD_NAMES
            } else {
                crate::user::NAMES
            },
        };
        w.restart(Side::A);
        w.restart(Side::B);
        w
    }

    pub fn side(&mut self, s: Side) -> &mut SideSim {
        match s {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// The folder of `s` and the invariants' tracker, both mutable.
    pub fn fs_and_tracker(&mut self, s: Side) -> (&mut crate::fake_fs::FakeFs, &mut Tracker) {
        match s {
            Side::A => (&mut self.a.fs, &mut self.t),
            Side::B => (&mut self.b.fs, &mut self.t),
        }
    }

    pub fn side_ref(&self, s: Side) -> &SideSim {
        match s {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    /// `s`'s clock.
    pub fn clock(&self, s: Side) -> i64 {
        self.now + self.side_ref(s).skew_ns
    }

    /// The core of `s` takes the next input from its inbox.
    pub fn handle(&mut self, s: Side) -> bool {
        let now = self.clock(s);
        let me = self.side(s);
        let Some((input, epoch)) = me.inbox.pop_front() else {
            return false;
        };
        let mut answer_of = Some(epoch).filter(|b| *b != 0);
        match &input {
            Input::LinkUp { .. } => {
                me.epoch = epoch;
                answer_of = None;
            }
            Input::LinkDown => me.epoch = 0,
            _ => {}
        }
        let link_change = matches!(input, Input::LinkUp { .. } | Input::LinkDown);
        let batch = me.begin(answer_of, link_change);
        if self.trace {
            println!("  {s:?} <- {input:?} @{} ms", (now - START_NS) / 1_000_000);
        }
        let me = self.side(s);
        let core = me
            .core
            .as_mut()
            .expect("inputs wait only for a running core");
        let out = catch_unwind(AssertUnwindSafe(|| core.handle(now, input.clone())));
        match out {
            Ok(effects) => {
                let epoch = me.epoch;
                let (ahead, queued) = landings_ahead(&me.effects, effects);
                me.open(batch, queued.len());
                me.effects
                    .extend(queued.into_iter().map(|e| (e, epoch, batch)));
                for e in ahead {
                    if self.trace {
                        println!("  {s:?} -> {e:?} (ahead of the install held)");
                    }
                    crate::executor::run(self, s, e, epoch, batch);
                }
                let me = self.side(s);
                if answer_of.is_some() {
                    me.close(batch, 1);
                }
            }
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                self.fatal = Some(format!("core {s:?} panicked on {input:?}: {msg}"));
                return true;
            }
        }
        // (A lock counts once it is reported, its announcement after its
        // journal record; an unlock once its journal record says so: see
        // `executor::run`, in the order the core asked for them.)
        true
    }

    /// The executor of `s` carries out the next effect.
    pub fn exec(&mut self, s: Side) -> bool {
        let Some((effect, epoch, batch)) = self.side(s).effects.pop_front() else {
            return false;
        };
        if self.trace {
            println!("  {s:?} -> {effect:?}");
        }
        // What the real executor answers at once joins the batch (a sent
        // file's answer comes later, in a batch of its own).
        let answers = matches!(
            effect,
            Effect::Install { .. }
                | Effect::Remove { .. }
                | Effect::Rename { .. }
                | Effect::Stat { .. }
                | Effect::Hash { .. }
        );
        let before = self.side(s).inbox.len();
        crate::executor::run(self, s, effect, epoch, batch);
        let me = self.side(s);
        let mut n = 0;
        if answers {
            for (_, tag) in me.inbox.iter_mut().skip(before) {
                *tag = batch;
                n += 1;
            }
        }
        me.open(batch, n);
        me.close(batch, 1);
        true
    }

    /// The link hands the next message to `to`.
    pub fn deliver(&mut self, to: Side) -> bool {
        let q = match to {
            Side::A => &mut self.link.to_a,
            Side::B => &mut self.link.to_b,
        };
        let Some((msg, bytes)) = q.pop_front() else {
            return false;
        };
        let me = self.side(to);
        if let Some(b) = bytes {
            *me.staged.entry(b).or_default() += 1;
        }
        me.inbox.push_back((Input::Peer(msg), 0));
        true
    }

    /// `from` is about to send on link `epoch`: if that link is still up,
    /// what batch `batch` set is flushed first (see [`crate::durability`]).
    pub fn told(&mut self, from: Side, epoch: u64, batch: Batch) {
        if self.link.up && epoch == self.link.epoch {
            self.side(from).told(batch);
        }
    }

    /// Puts `msg` on the link from `from`, if the link it was meant for is
    /// still the one up.
    pub fn send(&mut self, from: Side, epoch: u64, msg: PeerMsg, bytes: Option<String>) {
        self.t.sends += 1;
        self.t.recent.push_back(msg.clone());
        if self.t.recent.len() > 60 {
            self.t.recent.pop_front();
        }
        if !self.link.up || epoch != self.link.epoch {
            return;
        }
        let q = match from {
            Side::A => &mut self.link.to_b,
            Side::B => &mut self.link.to_a,
        };
        q.push_back((msg, bytes));
    }

    /// The watcher of `s` reports one of its pending paths (the `pick`th).
    pub fn watch(&mut self, s: Side, pick: u64) -> bool {
        let me = self.side(s);
        if me.dirty.is_empty() {
            return false;
        }
        let i = (pick % me.dirty.len() as u64) as usize;
        let path = me.dirty.keys().nth(i).expect("in range").clone();
        let closed = me.dirty.remove(&path).expect("listed");
        let mut entry = me.fs.stat_exact(&path);
        // An event whose stat the core already knows: hashed, as the real
        // executor does (the content is its hash here).
        if let (Some(e), Some(core)) = (entry.as_mut(), me.core.as_ref()) {
            let known = core.path(&path).and_then(|s| s.local.as_ref());
            if e.needs_hash_on_event(known, me.cfg.fs.precision_ns) {
                e.hash = me.fs.read(&path).map(Into::into);
            }
        }
        me.inbox.push_back((
            Input::Observed {
                path,
                entry,
                closed,
            },
            0,
        ));
        true
    }

    /// Timers of `s` that are due fire.
    pub fn fire(&mut self, s: Side) -> bool {
        let now = self.clock(s);
        let me = self.side(s);
        let due: Vec<Timer> = me
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(t, _)| t.clone())
            .collect();
        for t in &due {
            me.timers.remove(t);
            me.inbox.push_back((Input::Timer(t.clone()), 0));
        }
        !due.is_empty()
    }

    /// The safety-net rescan of `s`.
    pub fn rescan(&mut self, s: Side) {
        let me = self.side(s);
        if me.alive() {
            let entries = me.fs.scan();
            me.inbox.push_back((Input::Scanned { entries }, 0));
        }
    }

    /// `kill -9` of `s`: its core, inbox, pending effects, timers, hints
    /// and staged transfers are gone; the disk and durable state stay.
    pub fn crash(&mut self, s: Side) {
        if !self.side_ref(s).alive() {
            return;
        }
        self.drop_link();
        let me = self.side(s);
        me.killed();
        me.core = None;
        me.inbox.clear();
        me.effects.clear();
        me.timers.clear();
        me.dirty.clear();
        me.staged.clear();
        me.epoch = 0;
        if s == Side::A {
            // The locks are what the journal kept.
            self.t.locks = self
                .a
                .journal
                .iter()
                .filter_map(|(p, r)| {
                    let l = r.lock.as_ref()?;
                    let phase = if l.unlocking {
                        LockPhase::Unlocking
                    } else {
                        LockPhase::Locked
                    };
                    Some((p.clone(), phase))
                })
                .collect();
        }
    }

    /// A power cut at `s`: a crash that also loses what was not flushed
    /// (see [`crate::durability`]).
    pub fn power_cut(&mut self, s: Side) {
        if !self.side_ref(s).alive() {
            return;
        }
        for (path, seq) in self.side(s).cut() {
            // Never acknowledged: the peer offers it again.
            self.t.unqueued(&path, seq);
        }
        self.crash(s);
    }

    /// `s` starts from its journal and scans its folder.
    pub fn restart(&mut self, s: Side) {
        let me = self.side(s);
        if me.alive() {
            return;
        }
        // The locks' queues come back from their entries, as the real
        // executor restores them (sync/exec.rs).
        let mut journal = me.journal.clone();
        for (p, r) in journal.iter_mut() {
            if let Some(lock) = r.lock.as_mut() {
                lock.queue = me
                    .queued
                    .range((p.clone(), 0)..=(p.clone(), u64::MAX))
                    .map(|(_, q)| q.clone())
                    .collect();
                let last = lock.queue.last().map_or(0, |q| q.seq);
                lock.next_seq = lock.next_seq.max(last);
            }
        }
        // A landing's file is hashed for the first scan, as the real
        // executor does (sync/exec.rs `prepare`): the content is its hash.
        let mut entries = me.fs.scan();
        let landed = landings_to_hash(
            (journal.iter()).filter_map(|(p, r)| r.landing.as_deref().map(|v| (p.as_str(), v))),
            &entries,
        );
        for i in landed {
            let hash = me.fs.read(&entries[i].0);
            entries[i].1.hash = hash.map(Into::into);
        }
        me.core = Some(Core::new(me.cfg.clone(), journal));
        // The run's number, counted durably as the real executor does
        // (sync/records.rs `next_run`): the next start numbers its
        // operations apart from this one's.
        me.cfg.run += 1;
        me.inbox.push_back((Input::Scanned { entries }, 0));
    }

    pub fn drop_link(&mut self) {
        if !self.link.up {
            return;
        }
        self.link.up = false;
        self.link.to_a.clear();
        self.link.to_b.clear();
        for s in [Side::A, Side::B] {
            let me = self.side(s);
            if me.alive() {
                me.inbox.push_back((Input::LinkDown, 0));
            }
        }
    }

    pub fn connect(&mut self) -> bool {
        if self.link.up || !self.a.alive() || !self.b.alive() {
            return false;
        }
        self.link.up = true;
        self.link.epoch += 1;
        let e = self.link.epoch;
        let (fa, fb) = (self.a.cfg.fs, self.b.cfg.fs);
        self.a.inbox.push_back((Input::LinkUp { peer: fb }, e));
        self.b.inbox.push_back((Input::LinkUp { peer: fa }, e));
        true
    }

    /// (Server A) `lab3 lock` / `lab3 unlock`.
    pub fn lock(&mut self, path: &str, lock: bool) {
        if !self.a.alive() {
            return;
        }
        let input = if lock {
            Input::Lock {
                path: path.to_string(),
            }
        } else {
            Input::Unlock {
                path: path.to_string(),
            }
        };
        self.a.inbox.push_back((input, 0));
    }

    /// The earliest timer of a running side, in A's clock.
    pub fn next_timer(&self) -> Option<i64> {
        [&self.a, &self.b]
            .iter()
            .filter(|s| s.alive())
            .flat_map(|s| s.timers.values().map(move |t| t - s.skew_ns))
            .min()
    }
}
