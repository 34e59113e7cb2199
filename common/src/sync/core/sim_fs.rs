//! A tiny in-memory executor for the core's unit tests: two cores, a file
//! system map per side, a link that delivers in order, a clock that jumps
//! to the next timer. (The full seeded simulation lives elsewhere; this is
//! just enough to drive the core through each case by hand.)

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::model::coarse;
use super::*;

/// One side's disk.
#[derive(Default)]
pub struct Disk {
    pub entries: BTreeMap<String, Entry>,
    /// Content per identity (hard links share it).
    pub content: HashMap<FileId, String>,
    pub precision: u64,
    next_ino: u64,
    pub staged: HashMap<String, String>,
    pub queue: HashMap<(String, u64), String>,
    /// (path, why, content) of every kept version.
    pub kept: Vec<(String, KeepWhy, String)>,
    pub journal: BTreeMap<String, Record>,
}

impl Disk {
    pub fn ino(&mut self) -> FileId {
        self.next_ino += 1;
        FileId {
            dev: 1,
            ino: self.next_ino,
        }
    }

    pub fn read(&self, path: &str) -> Option<String> {
        let e = self.entries.get(path)?;
        match e.kind {
            Kind::File => self.content.get(&e.id).cloned(),
            Kind::Dir => Some("<dir>".into()),
        }
    }

    fn stat(&self, path: &str) -> Option<Entry> {
        self.entries.get(path).cloned()
    }

    /// Makes the missing folders above `path`; says which it made.
    pub fn make_parents(&mut self, path: &str, now: i64) -> Vec<String> {
        let parents: Vec<String> = super::local::ancestors(path).map(str::to_string).collect();
        let mut made = Vec::new();
        for p in parents.into_iter().rev() {
            if !self.entries.contains_key(&p) {
                let id = self.ino();
                let e = dir_entry(id, coarse(now, self.precision));
                self.entries.insert(p.clone(), e);
                made.push(p);
            }
        }
        made
    }

    fn subtree(&self, path: &str) -> Vec<String> {
        self.entries
            .keys()
            .filter(|p| *p == path || super::local::is_under(p, path))
            .cloned()
            .collect()
    }

    fn keep(&mut self, path: &str, why: KeepWhy) -> String {
        for p in self.subtree(path) {
            let c = self.read(&p).unwrap_or_default();
            self.kept.push((p, why, c));
        }
        format!("versions/{path}")
    }
}

fn dir_entry(id: FileId, mtime_ns: i64) -> Entry {
    Entry {
        kind: Kind::Dir,
        size: 0,
        mtime_ns,
        mode: Some(0o755),
        id,
        hash: None,
    }
}

pub struct SideSim {
    pub core: Core,
    pub disk: Disk,
    inputs: VecDeque<Input>,
    pub timers: Vec<(i64, Timer)>,
    pub log: Vec<String>,
    pub sent: Vec<PeerMsg>,
    pub unlocked: Vec<Vec<Replayed>>,
    /// Killed (kill -9) right after its next install's rename, before the
    /// core hears it landed: the link drops and the side restarts.
    pub crash_after_install: bool,
    /// A user's chmod to this mode slips in right after the next install's
    /// rename, before its re-stat: the core hears that it landed so.
    pub chmod_after_install: Option<u32>,
    /// A user deletes the file right after the next install's rename, and
    /// the watcher's look at it reaches the core before the install's
    /// report, whose re-stat (made before the delete) is older.
    pub rm_before_install_reports: bool,
    /// The link drops with this side's next answer (`Stored`) in flight:
    /// the peer never hears that its offer landed.
    pub answer_lost: bool,
    /// The folders an install or a rename makes above its path are seen
    /// after the core hears it landed (a watcher's hint settles later),
    /// not before.
    pub parents_seen_late: bool,
}

impl SideSim {
    /// See [`SideSim::chmod_after_install`]: the file at `path` and the
    /// re-stat the install's `Done` carries get the mode.
    /// See [`SideSim::rm_before_install_reports`].
    fn rm_slips_in(&mut self, path: &str) {
        if !std::mem::take(&mut self.rm_before_install_reports) {
            return;
        }
        self.disk.entries.remove(path);
        let seen = Input::Observed {
            path: path.to_string(),
            entry: None,
            closed: false,
        };
        let at = self.inputs.len().saturating_sub(1);
        self.inputs.insert(at, seen);
    }

    fn chmod_slips_in(&mut self, path: &str) {
        let Some(mode) = self.chmod_after_install.take() else {
            return;
        };
        if let Some(e) = self.disk.entries.get_mut(path) {
            e.mode = Some(mode);
        }
        if let Some(Input::Done {
            outcome: Outcome::Applied {
                landed: Some(e), ..
            },
            ..
        }) = self.inputs.back_mut()
        {
            e.mode = Some(mode);
        }
    }

    /// The watcher reports the folders `made` for an install.
    fn observe_made(&mut self, made: &[String]) {
        for p in made {
            let entry = self.disk.stat(p);
            self.inputs.push_back(Input::Observed {
                path: p.clone(),
                entry,
                closed: false,
            });
        }
    }
}

pub struct World {
    pub a: SideSim,
    pub b: SideSim,
    pub now: i64,
    pub up: bool,
}

fn side(s: Side, precision: u64) -> SideSim {
    let mut cfg = Config::new(s);
    cfg.fs.precision_ns = precision;
    SideSim {
        core: Core::new(cfg, Vec::new()),
        disk: Disk {
            precision,
            ..Disk::default()
        },
        inputs: VecDeque::new(),
        timers: Vec::new(),
        log: Vec::new(),
        sent: Vec::new(),
        unlocked: Vec::new(),
        crash_after_install: false,
        chmod_after_install: None,
        rm_before_install_reports: false,
        answer_lost: false,
        parents_seen_late: false,
    }
}

impl World {
    pub fn new(precision_a: u64, precision_b: u64) -> World {
        let mut w = World {
            a: side(Side::A, precision_a),
            b: side(Side::B, precision_b),
            now: 1_000_000_000_000,
            up: false,
        };
        w.a.inputs.push_back(Input::Scanned { entries: vec![] });
        w.b.inputs.push_back(Input::Scanned { entries: vec![] });
        w.settle();
        w
    }

    /// Two sides whose folders keep `fa` and `fb` (the in-memory disks
    /// stay exact and case-sensitive: what a folder refuses is the
    /// core's decision, which is what these tests look at).
    pub fn with_traits(fa: FsTraits, fb: FsTraits) -> World {
        let mut w = World::new(fa.precision_ns, fb.precision_ns);
        for (s, fs) in [(&mut w.a, fa), (&mut w.b, fb)] {
            let mut cfg = s.core.config().clone();
            cfg.fs = fs;
            s.core = Core::new(cfg, Vec::new());
            s.inputs.push_back(Input::Scanned { entries: vec![] });
        }
        w.settle();
        w
    }

    pub fn side(&mut self, a: bool) -> &mut SideSim {
        if a {
            &mut self.a
        } else {
            &mut self.b
        }
    }

    pub fn connect(&mut self) {
        self.up = true;
        let (fa, fb) = (self.a.core.config().fs, self.b.core.config().fs);
        self.a.inputs.push_back(Input::LinkUp { peer: fb });
        self.b.inputs.push_back(Input::LinkUp { peer: fa });
    }

    pub fn disconnect(&mut self) {
        self.up = false;
        self.a.inputs.push_back(Input::LinkDown);
        self.b.inputs.push_back(Input::LinkDown);
    }

    /// Restarts a side from its journal, then it scans its disk.
    pub fn restart(&mut self, a: bool) {
        let s = self.side(a);
        let mut cfg = s.core.config().clone();
        // A new run numbers its operations apart from the last one's.
        cfg.run += 1;
        let journal: Vec<(String, Record)> = s
            .disk
            .journal
            .iter()
            .map(|(p, r)| (p.clone(), r.clone()))
            .collect();
        let mut entries: Vec<(String, Entry)> = s
            .disk
            .entries
            .iter()
            .map(|(p, e)| (p.clone(), e.clone()))
            .collect();
        // A landing's file is hashed for the first scan (the content is
        // its hash), as the real executor does.
        let landings =
            (journal.iter()).filter_map(|(p, r)| r.landing.as_deref().map(|v| (p.as_str(), v)));
        for i in super::landings_to_hash(landings, &entries) {
            entries[i].1.hash = s.disk.read(&entries[i].0).map(Into::into);
        }
        s.core = Core::new(cfg, journal);
        s.timers.clear();
        s.inputs.clear();
        s.inputs.push_back(Input::Scanned { entries });
    }

    /// A message from the peer that the link did not carry (a late
    /// answer, made by hand), handed to side `a` next.
    pub fn hand(&mut self, a: bool, msg: PeerMsg) {
        self.side(a).inputs.push_back(Input::Peer(msg));
    }

    pub fn observe(&mut self, a: bool, path: &str, closed: bool) {
        let s = self.side(a);
        let entry = s.disk.stat(path);
        s.inputs.push_back(Input::Observed {
            path: path.to_string(),
            entry,
            closed,
        });
    }

    /// A user writes `content` at `path` with mtime `mtime_ns` (`None`: now).
    pub fn write_at(&mut self, a: bool, path: &str, content: &str, mtime_ns: Option<i64>) {
        // Time passes between two writes.
        self.now += 1_000;
        let now = self.now;
        let s = self.side(a);
        for p in s.disk.make_parents(path, now) {
            self.observe(a, &p, false);
        }
        let s = self.side(a);
        let t = coarse(mtime_ns.unwrap_or(now), s.disk.precision);
        let id = match s.disk.entries.get(path) {
            Some(e) if e.kind == Kind::File => e.id,
            _ => s.disk.ino(),
        };
        s.disk.content.insert(id, content.to_string());
        let e = Entry {
            kind: Kind::File,
            size: content.len() as u64,
            mtime_ns: t,
            mode: Some(0o644),
            id,
            hash: None,
        };
        for other in s.disk.entries.values_mut().filter(|o| o.id == id) {
            *other = e.clone();
        }
        s.disk.entries.insert(path.to_string(), e);
        self.observe(a, path, true);
    }

    pub fn write(&mut self, a: bool, path: &str, content: &str) {
        self.write_at(a, path, content, None);
    }

    pub fn mkdir(&mut self, a: bool, path: &str) {
        let now = self.now;
        let s = self.side(a);
        s.disk.make_parents(path, now);
        let id = s.disk.ino();
        let e = dir_entry(id, coarse(now, s.disk.precision));
        s.disk.entries.insert(path.to_string(), e);
        for p in super::local::ancestors(path)
            .map(str::to_string)
            .collect::<Vec<_>>()
        {
            self.observe(a, &p, false);
        }
        self.observe(a, path, false);
    }

    pub fn link(&mut self, a: bool, from: &str, to: &str) {
        let s = self.side(a);
        let e = s.disk.entries[from].clone();
        s.disk.entries.insert(to.to_string(), e);
        self.observe(a, to, false);
    }

    /// `mv from to` (a file or a folder with all it holds).
    pub fn mv(&mut self, a: bool, from: &str, to: &str) {
        let now = self.now;
        let s = self.side(a);
        let made = s.disk.make_parents(to, now);
        let moved = s.disk.subtree(from);
        for p in &moved {
            let e = s.disk.entries.remove(p).expect("listed");
            let q = format!("{to}{}", &p[from.len()..]);
            s.disk.entries.insert(q, e);
        }
        for p in made {
            self.observe(a, &p, false);
        }
        self.observe(a, from, false);
        self.observe(a, to, false);
        // The executor scans a folder moved in.
        for p in &moved {
            let q = format!("{to}{}", &p[from.len()..]);
            if q != to {
                self.observe(a, &q, false);
            }
        }
    }

    pub fn rm(&mut self, a: bool, path: &str) {
        let s = self.side(a);
        for p in s.disk.subtree(path) {
            s.disk.entries.remove(&p);
        }
        self.observe(a, path, false);
    }

    pub fn lock(&mut self, path: &str) {
        self.a.inputs.push_back(Input::Lock { path: path.into() });
    }

    pub fn unlock(&mut self, path: &str) {
        self.a.inputs.push_back(Input::Unlock { path: path.into() });
    }

    /// Runs both sides until nothing is left to do (timers included).
    pub fn settle(&mut self) {
        for _ in 0..10_000 {
            if self.step() {
                continue;
            }
            // Jump to the next timer.
            let next = self
                .a
                .timers
                .iter()
                .chain(self.b.timers.iter())
                .map(|(t, _)| *t)
                .min();
            let Some(t) = next else {
                return;
            };
            self.now = self.now.max(t);
            for a in [true, false] {
                let now = self.now;
                let s = self.side(a);
                let (due, later): (Vec<_>, Vec<_>) =
                    s.timers.drain(..).partition(|(t, _)| *t <= now);
                s.timers = later;
                for (_, timer) in due {
                    s.inputs.push_back(Input::Timer(timer));
                }
            }
        }
        panic!("no quiet after 10,000 steps");
    }

    /// Side `a` alone handles its inputs until it has none (no timers):
    /// the other side's wait, as on a link that is slow one way.
    pub fn run_side(&mut self, a: bool) {
        for _ in 0..10_000 {
            let now = self.now;
            let Some(input) = self.side(a).inputs.pop_front() else {
                return;
            };
            let effects = self.side(a).core.handle(now, input);
            for e in effects {
                self.execute(a, e);
            }
        }
        panic!("side still busy after 10,000 inputs");
    }

    /// Handles one input on either side; false when both are idle.
    fn step(&mut self) -> bool {
        for a in [true, false] {
            let now = self.now;
            let s = self.side(a);
            let Some(input) = s.inputs.pop_front() else {
                continue;
            };
            let effects = s.core.handle(now, input);
            for e in effects {
                let install = matches!(e, Effect::Install { .. });
                let installed = match &e {
                    Effect::Install { path, .. } => Some(path.clone()),
                    _ => None,
                };
                self.execute(a, e);
                if let Some(path) = installed {
                    self.side(a).chmod_slips_in(&path);
                    self.side(a).rm_slips_in(&path);
                }
                if install && self.side(a).crash_after_install {
                    self.side(a).crash_after_install = false;
                    self.disconnect();
                    self.restart(a);
                    return true;
                }
            }
            return true;
        }
        false
    }

    fn deliver(&mut self, to_a: bool, msg: PeerMsg) {
        if self.up
            && matches!(msg, PeerMsg::Stored { .. })
            && std::mem::take(&mut self.side(!to_a).answer_lost)
        {
            self.disconnect();
            return;
        }
        if self.up {
            self.side(!to_a).sent.push(msg.clone());
            self.side(to_a).inputs.push_back(Input::Peer(msg));
        }
    }

    fn execute(&mut self, a: bool, e: Effect) {
        let now = self.now;
        match e {
            Effect::Send(msg) => self.deliver(!a, msg),
            Effect::SendFile {
                op,
                path,
                expect,
                mut offer,
            } => {
                let s = self.side(a);
                let ok = s.disk.stat(&path).is_some_and(|e| e.same_here(&expect));
                if !ok {
                    let found = s.disk.stat(&path);
                    s.inputs.push_back(Input::Done {
                        op,
                        outcome: Outcome::Mismatch { found },
                    });
                    return;
                }
                let content = s.disk.read(&path).unwrap_or_default();
                if let PeerMsg::Offer { version, .. } = &mut offer {
                    version.hash = Some(content.as_str().into());
                }
                s.inputs.push_back(Input::Done {
                    op,
                    outcome: Outcome::Sent {
                        hash: content.clone(),
                    },
                });
                if self.up {
                    self.side(!a).disk.staged.insert(content.clone(), content);
                }
                self.deliver(!a, offer);
            }
            Effect::Stat { path } => self.observe(a, &path, false),
            Effect::Hash { files } => {
                let s = self.side(a);
                let hashes = files
                    .into_iter()
                    .map(|(p, e)| {
                        let same = s.disk.stat(&p).is_some_and(|f| f.same_here(&e));
                        let hash = if same { s.disk.read(&p) } else { None };
                        (p, hash)
                    })
                    .collect();
                s.inputs.push_back(Input::Hashed { hashes });
            }
            Effect::Install {
                op,
                path,
                version,
                source,
                expect,
                keep,
            } => {
                let s = self.side(a);
                let found = s.disk.stat(&path);
                let ok = match (&found, &expect) {
                    (Some(f), Some(x)) => f.same_here(x),
                    (None, None) => true,
                    _ => false,
                };
                if !ok {
                    s.inputs.push_back(Input::Done {
                        op,
                        outcome: Outcome::Mismatch { found },
                    });
                    return;
                }
                let parent_is_file = super::local::ancestors(&path)
                    .any(|p| s.disk.entries.get(p).is_some_and(|e| e.kind == Kind::File));
                if parent_is_file {
                    s.inputs.push_back(Input::Done {
                        op,
                        outcome: Outcome::Failed {
                            error: "not a directory".into(),
                            retry: true,
                        },
                    });
                    return;
                }
                let kept_at = match (keep, &found) {
                    (Some(why), Some(_)) => Some(s.disk.keep(&path, why)),
                    _ => None,
                };
                if found.as_ref().is_some_and(|f| f.kind != version.kind)
                    || version.kind == Kind::File
                {
                    for p in s.disk.subtree(&path) {
                        s.disk.entries.remove(&p);
                    }
                }
                let made = s.disk.make_parents(&path, now);
                let late = s.parents_seen_late;
                if !late {
                    s.observe_made(&made);
                }
                let id = s.disk.ino();
                let t = coarse(version.mtime_ns, s.disk.precision);
                let e = match version.kind {
                    Kind::Dir => match s.disk.stat(&path) {
                        Some(d) => d,
                        None => dir_entry(id, t),
                    },
                    Kind::File => {
                        let content = match source {
                            Source::Staged => {
                                s.disk.staged[version.hash.as_deref().unwrap()].clone()
                            }
                            Source::Queued { seq } => s.disk.queue[&(path.clone(), seq)].clone(),
                        };
                        s.disk.content.insert(id, content.clone());
                        Entry {
                            kind: Kind::File,
                            size: content.len() as u64,
                            mtime_ns: t,
                            mode: version.mode,
                            id,
                            hash: None,
                        }
                    }
                };
                s.disk.entries.insert(path.clone(), e.clone());
                s.inputs.push_back(Input::Done {
                    op,
                    outcome: Outcome::Applied {
                        landed: Some(e),
                        kept_at,
                    },
                });
                if late {
                    s.observe_made(&made);
                }
            }
            Effect::Remove {
                op,
                path,
                expect,
                keep,
            } => {
                let s = self.side(a);
                let found = s.disk.stat(&path);
                if !found.as_ref().is_some_and(|f| f.same_here(&expect)) {
                    s.inputs.push_back(Input::Done {
                        op,
                        outcome: Outcome::Mismatch { found },
                    });
                    return;
                }
                if expect.kind == Kind::Dir && s.disk.subtree(&path).len() > 1 {
                    s.inputs.push_back(Input::Done {
                        op,
                        outcome: Outcome::Failed {
                            error: "folder not empty".into(),
                            retry: false,
                        },
                    });
                    return;
                }
                let kept_at = keep.map(|why| s.disk.keep(&path, why));
                s.disk.entries.remove(&path);
                s.inputs.push_back(Input::Done {
                    op,
                    outcome: Outcome::Applied {
                        landed: None,
                        kept_at,
                    },
                });
            }
            Effect::Rename {
                op,
                from,
                to,
                expect,
            } => {
                let s = self.side(a);
                let found = s.disk.stat(&from);
                if !found.as_ref().is_some_and(|f| f.same_here(&expect))
                    || s.disk.entries.contains_key(&to)
                {
                    s.inputs.push_back(Input::Done {
                        op,
                        outcome: Outcome::Mismatch { found },
                    });
                    return;
                }
                let made = s.disk.make_parents(&to, now);
                let late = s.parents_seen_late;
                if !late {
                    s.observe_made(&made);
                }
                for p in s.disk.subtree(&from) {
                    let e = s.disk.entries.remove(&p).expect("listed");
                    s.disk
                        .entries
                        .insert(format!("{to}{}", &p[from.len()..]), e);
                }
                let landed = s.disk.stat(&to);
                s.inputs.push_back(Input::Done {
                    op,
                    outcome: Outcome::Applied {
                        landed,
                        kept_at: None,
                    },
                });
                if late {
                    s.observe_made(&made);
                }
            }
            Effect::Queue {
                path, seq, update, ..
            } => {
                let s = self.side(a);
                if let Some(h) = update.version().and_then(|v| v.hash.clone()) {
                    let c = s.disk.staged[h.as_str()].clone();
                    s.disk.queue.insert((path, seq), c);
                }
            }
            Effect::Dequeue { path, seq } => {
                self.side(a).disk.queue.remove(&(path, seq));
            }
            Effect::Record { path, record } => {
                let j = &mut self.side(a).disk.journal;
                match record {
                    Some(r) => j.insert(path, r),
                    None => j.remove(&path),
                };
            }
            Effect::Announce(an) => {
                let line = format!("{} {} {}", an.action, an.path, an.detail);
                self.side(a).log.push(line.trim_end().to_string());
            }
            Effect::Arm { timer, at_ns } => self.side(a).timers.push((at_ns, timer)),
            Effect::Unlocked { replayed, .. } => self.side(a).unlocked.push(replayed),
            Effect::Reconciled { .. } => {}
        }
    }

    /// Both disks hold the same paths with the same content.
    pub fn assert_same(&self) {
        let view = |d: &Disk| -> BTreeMap<String, String> {
            d.entries
                .keys()
                .map(|p| (p.clone(), d.read(p).unwrap_or_default()))
                .collect()
        };
        assert_eq!(
            view(&self.a.disk),
            view(&self.b.disk),
            "the two folders differ"
        );
    }
}
