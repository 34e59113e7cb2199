//! This side's changes: observations and scans, waiting for quiet, and
//! sending what changed, with moves paired by file identity.

use super::model::coarse;
use super::scan_walk::held;
use super::{
    Base, Core, Effect, Entry, Holding, Kind, LinkPhase, PathState, PeerMsg, Pending, Timer,
    Version,
};

/// Whether `path` lies strictly under folder `dir`.
pub(super) fn is_under(path: &str, dir: &str) -> bool {
    path.len() > dir.len() + 1 && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/'
}

/// The folders that hold `path`, nearest first.
pub(super) fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').rev().map(move |(i, _)| &path[..i])
}

impl PathState {
    /// What this side holds, as the peer sees it.
    pub fn holding(&self) -> Holding {
        match &self.local {
            Some(e) => Holding::Present(e.version()),
            None => Holding::Absent {
                deleted_ns: self.deleted_ns,
            },
        }
    }

    /// The agreed content's hash, where known.
    pub fn agreed_hash(&self) -> Option<super::Hash> {
        let b = self.base.as_ref()?;
        b.here
            .as_ref()
            .and_then(|h| h.hash.clone())
            .or_else(|| b.version.hash.clone())
    }

    /// Changed here since the two last agreed (identity included: a
    /// look-alike swapped in is a change; a folder is the same folder while
    /// its identity stands, whatever happens inside it).
    pub fn changed_here(&self) -> bool {
        match (&self.local, &self.base) {
            (None, None) => false,
            (Some(_), None) | (None, Some(_)) => true,
            (Some(e), Some(b)) => match &b.here {
                Some(h) if e.kind == Kind::Dir => h.kind != Kind::Dir || h.id != e.id,
                // (An edit that kept the stat, seen by its hash.)
                Some(h) => {
                    let edited =
                        matches!((&e.hash, self.agreed_hash()), (Some(x), Some(y)) if *x != y);
                    !h.same_here(e) || edited
                }
                None => e.kind != b.version.kind,
            },
        }
    }
}

/// Which of a start-up scan's `entries` the executor hashes before it
/// feeds them (see [`Input::Scanned`]): the files at the `landings` of the
/// journal's states (path and version) that have the landing's size. A
/// landing is one burst's installs at most, so this is a few files.
pub fn landings_to_hash<'a>(
    landings: impl IntoIterator<Item = (&'a str, &'a Version)>,
    entries: &[(String, Entry)],
) -> Vec<usize> {
    let landings: std::collections::HashMap<&str, &Version> = landings.into_iter().collect();
    if landings.is_empty() {
        return Vec::new();
    }
    (entries.iter().enumerate())
        .filter(|(_, (p, e))| {
            landings
                .get(p.as_str())
                .is_some_and(|v| e.kind == Kind::File && v.kind == Kind::File && e.size == v.size)
        })
        .map(|(i, _)| i)
        .collect()
}

impl Core {
    pub(super) fn observed(&mut self, path: String, entry: Option<Entry>, closed: bool) {
        let applying = self
            .paths
            .get(&path)
            .is_some_and(|s| matches!(s.pending.as_deref(), Some(Pending::Applying { .. })));
        if applying {
            self.seen_while_applying.insert(path.clone());
        }
        let old = self.paths.get(&path).and_then(|s| s.local.clone());
        let same = match (&old, &entry) {
            // A watcher's event with the content hashed (see
            // `Entry::needs_hash_on_event`): the same only if it is
            // known to hold that content.
            (Some(a), Some(b)) if b.hash.is_some() && a.same_here(b) => {
                let st = &self.paths[&path];
                let known = a.hash.clone().or_else(|| {
                    let agreed = st.base.as_ref().and_then(|b| b.here.as_ref());
                    agreed
                        .filter(|h| h.same_here(a))
                        .and_then(|_| st.agreed_hash())
                });
                known == b.hash
            }
            (Some(a), Some(b)) => a.same_here(b),
            (None, None) => true,
            _ => false,
        };
        if same {
            if let (Some(e), Some(h)) = (&entry, entry.as_ref().and_then(|e| e.hash.clone())) {
                let _ = e;
                if let Some(l) = self.paths.get_mut(&path).and_then(|s| s.local.as_mut()) {
                    l.hash = Some(h);
                }
            }
            if closed {
                self.quiet_now(&path);
            }
            self.consider(&path, false);
            return;
        }
        if entry.is_none() && old.is_none() && !self.paths.contains_key(&path) {
            return;
        }
        // Hard links: every other name of this identity changed too.
        // A new name for a known identity may be a move: look at the old.
        if let Some(e) = &entry {
            let others: Vec<String> = self
                .ids
                .get(&e.id)
                .map(|s| s.iter().filter(|p| **p != path).cloned().collect())
                .unwrap_or_default();
            for p in others {
                self.emit(Effect::Stat { path: p });
            }
        }
        // A path waiting to retry a failure goes at once when it changes
        // (made readable, closed by the program that held it).
        if let Some(st) = self.paths.get_mut(&path) {
            if st.pending.as_deref() == Some(&Pending::Retrying) {
                st.pending = None;
            }
        }
        let gone = entry.is_none();
        self.changed(&path, entry, closed, false);
        self.consider(&path, false);
        if gone {
            self.consider_under(&path);
        }
    }

    /// Records a new local entry for `path`, changed at `now`.
    ///
    /// A file is quiet once its last write (its mtime) is `quiet_ns` old,
    /// the same rule at start, at reconnect and live; but a name that
    /// appears while running (or gets another identity) waits the whole
    /// window from now, so that a chain of renames settles before it is
    /// paired. `scan`: found by a full scan.
    pub(super) fn changed(&mut self, path: &str, entry: Option<Entry>, closed: bool, scan: bool) {
        let gone = entry.is_none();
        let was_dir = self
            .paths
            .get(path)
            .and_then(|s| s.local.as_ref())
            .is_some_and(|e| e.kind == Kind::Dir);
        if was_dir && !entry.as_ref().is_some_and(|e| e.kind == Kind::Dir) {
            // What a vanished folder held has vanished with it.
            let under: Vec<String> = self
                .paths
                .range(format!("{path}/")..)
                .take_while(|(p, _)| is_under(p, path))
                .filter(|(_, s)| s.local.is_some())
                .map(|(p, _)| p.clone())
                .collect();
            for p in under {
                self.set_local(&p, None);
                let now = self.now_ns;
                let st = self.paths.get_mut(&p).expect("listed");
                st.changed_ns = now;
                if st.base.is_some() {
                    st.deleted_ns = Some(now);
                }
            }
        }
        let dir = entry.as_ref().is_some_and(|e| e.kind == Kind::Dir);
        let appeared = match (self.paths.get(path).and_then(|s| s.local.as_ref()), &entry) {
            (Some(old), Some(new)) => old.id != new.id,
            (None, Some(_)) => true,
            _ => false,
        };
        // The mtime as this folder keeps it may be up to one step of its
        // precision before the write (whole seconds: 999 ms): the latest
        // the write can have been.
        let step = self.cfg.fs.precision_ns.max(1) as i64;
        let written = entry
            .as_ref()
            .map(|e| e.mtime_ns + (step - 1))
            .filter(|_| scan || !appeared);
        self.set_local(path, entry);
        let now = self.now_ns;
        let quiet = self.cfg.quiet_ns;
        let precision = self.cfg.fs.precision_ns;
        let st = self.paths.get_mut(path).expect("set_local made it");
        // The agreed file, its time only rounded by this folder since
        // this side stat'ed it (CI, FAT over FUSE: the time B set, read to
        // the nanosecond, came back whole seconds later and was taken for
        // B's edit, a conflict with A's rename): the same file. Its stat
        // as the folder now reports it is the one to compare with.
        if let (Some(b), Some(e)) = (st.base.as_mut(), st.local.as_ref()) {
            let rounded = b
                .here
                .as_ref()
                .is_some_and(|h| h.mtime_ns != e.mtime_ns && h.same_rounded(e, precision));
            if rounded {
                let hash = b.here.as_ref().and_then(|h| h.hash.clone());
                b.here = Some(Entry {
                    hash: e.hash.clone().or(hash),
                    ..e.clone()
                });
                self.record(path);
            }
        }
        let st = self.paths.get_mut(path).expect("set_local made it");
        // A folder agreed before this side saw it (see `agree_parents`)
        // is the one seen first.
        if let (Some(b), Some(e)) = (st.base.as_mut(), st.local.as_ref()) {
            if b.here.is_none() && b.version.kind == Kind::Dir && e.kind == Kind::Dir {
                b.here = Some(e.clone());
                self.record(path);
            }
        }
        let st = self.paths.get_mut(path).expect("set_local made it");
        st.changed_ns = written.map_or(now, |t| t.min(now));
        // A tombstone's age starts at its first sighting, journalled at
        // once so that restarts do not make it young again (see
        // `tombstones`).
        let aged = if gone {
            if st.base.is_some() && st.deleted_ns.is_none() {
                st.deleted_ns = Some(now);
            }
            let first_sighting = st.base.is_some() && st.gone_ns.is_none();
            if first_sighting {
                st.gone_ns = Some(now);
            }
            first_sighting
        } else {
            st.deleted_ns = None;
            if closed || dir {
                st.changed_ns = now - quiet;
            }
            st.gone_ns.take().is_some()
        };
        if aged {
            self.record(path);
        }
    }

    fn quiet_now(&mut self, path: &str) {
        let q = self.cfg.quiet_ns;
        let now = self.now_ns;
        if let Some(st) = self.paths.get_mut(path) {
            st.changed_ns = st.changed_ns.min(now - q);
        }
    }

    pub(super) fn scanned(&mut self, mut entries: Vec<(String, Entry)>) {
        let first = !self.scanned_once;
        self.scanned_once = true;
        if first {
            self.settle_landings(&mut entries);
        }
        // One walk of the scan beside the known paths (see `scan_walk`).
        let walked = self.walk_scan(entries, first);
        for (path, e) in walked.changed {
            self.changed(&path, Some(e), false, true);
        }
        let gone: Vec<String> = (walked.missing.into_iter())
            .filter(|p| self.paths.get(p).is_some_and(|s| held(s, first)))
            .collect();
        for p in gone {
            self.changed(&p, None, false, true);
            if first {
                // Deleted while this server was not running: when is not
                // known, so it never beats a change made on the other side.
                if let Some(st) = self.paths.get_mut(&p) {
                    st.deleted_ns = None;
                }
            }
        }
        if first {
            self.resume_unlocks();
        }
        self.forget_old_deletes();
        self.consider_all();
    }

    /// Installs that a restart interrupted (see [`PathState::landing`]): a
    /// file on disk that is the version being put in place (size, mtime at
    /// this side's precision as the install set it, and content: the
    /// executor hashed it for the scan) landed, and is the agreed base; the
    /// peer, which never heard so, still counts its own later changes as
    /// changes. Any other landing did not happen: a look-alike a user saved
    /// over the landed file (same size and mtime, other bytes) is a change
    /// made here. A file of the landing's size that comes without a hash
    /// (an executor that did not look) is not taken as landed either.
    fn settle_landings(&mut self, entries: &mut [(String, Entry)]) {
        let landings: Vec<String> = self
            .paths
            .iter()
            .filter(|(_, s)| s.landing.is_some())
            .map(|(p, _)| p.clone())
            .collect();
        if landings.is_empty() {
            return;
        }
        let precision = self.cfg.fs.precision_ns;
        let mut found: std::collections::HashMap<&str, &mut Entry> =
            entries.iter_mut().map(|(p, e)| (p.as_str(), e)).collect();
        for path in landings {
            let st = self.paths.get_mut(&path).expect("listed");
            let v = st.landing.take().expect("listed");
            if let Some(e) = found.get_mut(path.as_str()) {
                let landed = e.kind == v.kind
                    && e.kind == Kind::File
                    && e.size == v.size
                    && coarse(e.mtime_ns, precision) == coarse(v.mtime_ns, precision)
                    && e.hash.is_some()
                    && e.hash == v.hash;
                if landed {
                    st.base = Some(Base {
                        version: *v,
                        here: Some((**e).clone()),
                    });
                    st.deleted_ns = None;
                }
            }
            self.record(&path);
        }
    }

    /// Considers everything under folder `dir` (names that waited for it).
    pub(super) fn consider_under(&mut self, dir: &str) {
        let under: Vec<String> = self
            .paths
            .range(format!("{dir}/")..)
            .take_while(|(p, _)| is_under(p, dir))
            .map(|(p, _)| p.clone())
            .collect();
        for p in under {
            self.consider(&p, false);
        }
    }

    pub(super) fn consider_all(&mut self) {
        // Nothing is considered before the link is live (see `consider`):
        // a start-up over a big tree need not copy every path for that.
        if !matches!(self.link, LinkPhase::Live { .. }) {
            return;
        }
        // Nothing waits and nothing needs a look (the usual restart over
        // trees in sync): then every `consider` would do nothing, and a
        // big tree need not copy every path to find so.
        let idle = |st: &PathState| {
            st.pending.is_none()
                && !self.needs_send(st)
                && (st.local.is_some() || st.base.is_some() || st.lock.is_some())
        };
        if self.waiting.is_empty() && self.unsent.is_empty() && self.paths.values().all(|s| idle(s))
        {
            return;
        }
        let paths: Vec<String> = self.paths.keys().cloned().collect();
        for p in paths {
            self.consider(&p, false);
        }
    }

    pub(super) fn timer(&mut self, t: Timer) {
        match t {
            Timer::Quiet(path) => self.consider(&path, true),
            Timer::Retry(path) => {
                if let Some(st) = self.paths.get_mut(&path) {
                    if st.pending.as_deref() == Some(&Pending::Retrying) {
                        st.pending = None;
                    }
                }
                self.consider(&path, false);
            }
        }
    }

    /// Whether this side must send something for `st`: it changed here, or
    /// the peer holds something else and this side's copy stands.
    fn needs_send(&self, st: &PathState) -> bool {
        if st.changed_here() {
            return true;
        }
        match st.peer.as_deref() {
            None => false,
            Some(h) => !holdings_agree(h, &st.holding(), self.precision()),
        }
    }

    /// Sends `path`'s change if the link is live, nothing is in flight and
    /// it has been quiet long enough; otherwise arms a timer. `timer`: the
    /// quiet timer fired (a file is then stat'ed once more before it goes).
    pub(super) fn consider(&mut self, path: &str, timer: bool) {
        self.consider_now(path, timer);
        self.wake_under(path);
    }

    /// Considers again the names under `path` that waited for a folder
    /// above them to move (see [`Core::waiting`]): whatever that folder's
    /// fate (moved, sent whole, refused, gone), they go now or wait again.
    /// Only downwards, so it ends.
    pub(super) fn wake_under(&mut self, path: &str) {
        if self.waiting.is_empty() {
            return;
        }
        let under: Vec<String> = self
            .waiting
            .range(format!("{path}/")..)
            .take_while(|p| is_under(p, path))
            .cloned()
            .collect();
        for p in under {
            self.waiting.remove(&p);
            self.consider(&p, false);
        }
    }

    fn consider_now(&mut self, path: &str, timer: bool) {
        if !matches!(self.link, LinkPhase::Live { .. }) {
            return;
        }
        // A name the peer cannot store goes again only once it changed.
        if self.still_refused(path) {
            return;
        }
        let Some(st) = self.paths.get(path) else {
            return;
        };
        match st.pending.as_deref() {
            None => {}
            Some(Pending::Held { entry, .. }) if !same_state(entry, &st.local) => {}
            Some(_) => return,
        }
        if !self.needs_send(st) {
            // (A refused offer held back, of a name gone since, counts as
            // nothing pending: its entry differs, seen above. Strict seed
            // 159 of the case and NFD setups: B's folder `é`, refused by A
            // for A's NFD file, then moved away: A never heard it was free.)
            let idle = matches!(st.pending.as_deref(), None | Some(Pending::Held { .. }));
            if st.local.is_none() && st.base.is_none() && st.lock.is_none() && idle {
                if self.frees_refused(path) {
                    // Never at the peer, so no delete of it would go: a
                    // remove against nothing tells the peer the name its
                    // refused names clashed with is free (seed 41421).
                    let nothing = super::Version {
                        kind: Kind::Dir,
                        size: 0,
                        mtime_ns: 0,
                        mode: None,
                        hash: None,
                    };
                    let base = Base {
                        version: nothing,
                        here: None,
                    };
                    self.send_remove(path, base);
                    return;
                }
                if self.paths.get(path).is_some_and(|s| s.pending.is_some()) {
                    return;
                }
                self.drop_state(path);
            }
            return;
        }
        // A name inside a folder that is itself moving goes with it (seen
        // after the move went: a new name here until the answer, too).
        if self.moving_ancestor(path) {
            self.mark_offered(path);
            self.waiting.insert(path.to_string());
            return;
        }
        // A new folder with the peer's change landing inside: most likely
        // made for it (its outcome decides, see `agree_parents`).
        if st.base.is_none()
            && st.local.as_ref().is_some_and(|e| e.kind == Kind::Dir)
            && self.applying_under(path)
        {
            return;
        }
        let due = st.changed_ns + self.cfg.quiet_ns;
        if self.now_ns < due {
            self.emit(Effect::Arm {
                timer: Timer::Quiet(path.to_string()),
                at_ns: due,
            });
            return;
        }
        match st.local.clone() {
            Some(e) => {
                // A new name of an identity that an agreed path held: a
                // move, sent from the old path's side once it is gone.
                if let Some(from) = self.move_source(path, &e) {
                    let from_gone = self.paths.get(&from).is_some_and(|s| s.local.is_none());
                    if from_gone {
                        self.send_move(&from, path);
                    } else if timer {
                        self.emit(Effect::Stat { path: from });
                        self.offer(path, e);
                    } else {
                        self.emit(Effect::Stat { path: from });
                        self.emit(Effect::Arm {
                            timer: Timer::Quiet(path.to_string()),
                            at_ns: self.now_ns + self.cfg.quiet_ns,
                        });
                    }
                    return;
                }
                if timer && e.kind == Kind::File {
                    // Quiet by the clock: one more look before it goes.
                    self.emit(Effect::Stat {
                        path: path.to_string(),
                    });
                    return;
                }
                self.offer(path, e);
            }
            None => {
                let st = &self.paths[path];
                // Nothing here and nothing agreed, while the peer holds a
                // copy this side was to replace (reconciliation gave the
                // path to this side, whose copy then went; the peer stored
                // what this side has since lost): a delete goes across,
                // against the peer's copy (seed 26).
                let peers = match st.peer.as_deref() {
                    Some(Holding::Present(v)) if st.base.is_none() => Some(v.clone()),
                    _ => None,
                };
                if let Some(v) = peers {
                    self.send_remove(
                        path,
                        Base {
                            version: v,
                            here: None,
                        },
                    );
                    return;
                }
                let Some(base) = st.base.clone() else {
                    return;
                };
                if let Some(to) = base.here.as_ref().and_then(|h| self.move_target(path, h)) {
                    self.send_move(path, &to);
                    return;
                }
                // A folder goes once everything it held has gone.
                if base.version.kind == Kind::Dir && self.has_children(path) {
                    return;
                }
                self.send_remove(path, base);
            }
        }
    }

    /// The agreed path that held `e`'s identity and is no longer there
    /// with it (`path` is then where it moved).
    fn move_source(&self, path: &str, e: &Entry) -> Option<String> {
        let st = &self.paths[path];
        if st
            .base
            .as_ref()
            .and_then(|b| b.here.as_ref())
            .is_some_and(|h| h.id == e.id)
        {
            return None;
        }
        let candidates = self.based.get(&e.id)?;
        candidates
            .iter()
            .find(|p| {
                p.as_str() != path
                    && self.paths.get(p.as_str()).is_some_and(|s| {
                        s.base
                            .as_ref()
                            .and_then(|b| b.here.as_ref())
                            .is_some_and(|h| h.id == e.id && h.kind == e.kind)
                            && s.local.as_ref().is_none_or(|l| l.id == e.id)
                            && s.pending.is_none()
                    })
            })
            .cloned()
    }

    /// Where the identity that `path` held (`here`) is now, under a name
    /// that did not hold it before.
    fn move_target(&self, path: &str, here: &Entry) -> Option<String> {
        let names = self.ids.get(&here.id)?;
        names
            .iter()
            .find(|p| {
                p.as_str() != path
                    && self.paths.get(*p).is_some_and(|s| {
                        s.local.as_ref().is_some_and(|l| l.kind == here.kind)
                            && s.base
                                .as_ref()
                                .and_then(|b| b.here.as_ref())
                                .is_none_or(|h| h.id != here.id)
                            && s.pending.is_none()
                    })
            })
            .cloned()
    }

    /// Whether a folder above `path` is part of a move (it will carry
    /// `path` along).
    fn moving_ancestor(&self, path: &str) -> bool {
        ancestors(path).any(|a| {
            let Some(st) = self.paths.get(a) else {
                return false;
            };
            // A folder the peer refused to store, the same since, goes
            // nowhere until it changes: it carries nothing (strict seed
            // 30975: `e` renamed `d/z.`, refused by B; `e`'s delete went
            // instead of a move, and `d/z./a` waited for the next rescan).
            let refused = (self.unsent.get(a))
                .is_some_and(|u| same_state(&u.entry, &st.local) && st.local.is_some());
            if refused {
                return false;
            }
            if let Some(Pending::Offered { op, .. }) = st.pending.as_deref() {
                if self.ops.get(op).is_some_and(|o| o.from.is_some()) {
                    return true;
                }
            }
            match (&st.local, &st.base) {
                (None, Some(b)) => b
                    .here
                    .as_ref()
                    .is_some_and(|h| self.move_target(a, h).is_some()),
                (Some(e), _) if st.changed_here() => self.move_source(a, e).is_some(),
                _ => false,
            }
        })
    }

    /// Whether a change of the peer is being applied under folder `dir`.
    fn applying_under(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        self.paths
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .any(|(_, s)| matches!(s.pending.as_deref(), Some(Pending::Applying { .. })))
    }

    pub(super) fn has_children(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        self.paths
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .any(|(_, s)| s.base.is_some() || s.local.is_some())
    }

    /// The base the offer names: what the peer is known to hold, else what
    /// the two last agreed.
    fn offer_base(&self, st: &PathState) -> Option<super::Version> {
        match st.peer.as_deref() {
            Some(h) => h.version().cloned(),
            None => st.base.as_ref().map(|b| b.version.clone()),
        }
    }

    pub(super) fn offer(&mut self, path: &str, e: Entry) {
        let st = &self.paths[path];
        let base = self.offer_base(st);
        let version = e.version();
        let op = self.op(path, None);
        let offer = PeerMsg::Offer {
            op,
            path: path.to_string(),
            base,
            version: version.clone(),
        };
        let st = self.paths.get_mut(path).expect("known");
        st.pending = Some(Box::new(Pending::Offered {
            op,
            sent: Holding::Present(version),
            entry: Some(e.clone()),
        }));
        // A new name: journalled before it goes (see `PathState::offered`).
        if st.base.is_none() && !st.offered {
            st.offered = true;
            self.record(path);
        }
        if e.kind == Kind::File {
            self.emit(Effect::SendFile {
                op,
                path: path.to_string(),
                expect: e,
                offer,
            });
        } else {
            self.emit(Effect::Send(offer));
        }
    }

    pub(super) fn send_remove(&mut self, path: &str, base: Base) {
        let st = &self.paths[path];
        let base_v = self.offer_base(st).unwrap_or(base.version);
        let deleted_ns = st.deleted_ns;
        let sent = st.holding();
        let op = self.op(path, None);
        self.paths.get_mut(path).expect("known").pending = Some(Box::new(Pending::Offered {
            op,
            sent,
            entry: None,
        }));
        self.emit(Effect::Send(PeerMsg::Remove {
            op,
            path: path.to_string(),
            base: base_v,
            deleted_ns,
        }));
    }

    /// A name here that the peer may store and take as agreed, the answer
    /// not heard yet (a new file's offer, a move's target and what it
    /// holds): see [`PathState::offered`]. Journalled at once.
    fn mark_offered(&mut self, path: &str) {
        let Some(st) = self.paths.get_mut(path) else {
            return;
        };
        if st.base.is_none() && st.local.is_some() && !st.offered {
            st.offered = true;
            self.record(path);
        }
    }

    fn send_move(&mut self, from: &str, to: &str) {
        let Some(base) = self.paths[from].base.clone() else {
            return;
        };
        if self.paths[to].local.is_none() {
            return;
        }
        // What moved is the agreed version: `to` is acknowledged as holding
        // it (the stat it had at `from`), so a write made to it after the
        // rename is still a change here and follows the move as an offer.
        let e = base.here.clone();
        let op = self.op(to, Some(from));
        let sent_from = self.paths[from].holding();
        self.paths.get_mut(from).expect("known").pending = Some(Box::new(Pending::Offered {
            op,
            sent: sent_from,
            entry: None,
        }));
        self.paths.get_mut(to).expect("known").pending = Some(Box::new(Pending::Offered {
            op,
            sent: Holding::Present(base.version.clone()),
            entry: e,
        }));
        // The target, and what a folder holds, are new names here until
        // the peer answers: journalled before the move goes, as a new
        // file's offer is (the soak's seed 1796116140923294949: killed
        // before the answer, the target deleted while down, unknown at
        // restart; the peer's moved copy, unchanged since agreed there,
        // came back).
        let under: Vec<String> = self
            .paths
            .range(format!("{to}/")..)
            .take_while(|(p, _)| is_under(p, to))
            .map(|(p, _)| p.clone())
            .collect();
        for p in std::iter::once(to.to_string()).chain(under) {
            self.mark_offered(&p);
        }
        self.emit(Effect::Send(PeerMsg::Move {
            op,
            from: from.to_string(),
            to: to.to_string(),
            base: base.version,
        }));
    }
}

/// The same state of a path on this side's disk (see
/// [`Entry::same_here`]), with the same content where both hashes are
/// known: a hash learnt since is no change.
pub(super) fn same_state(a: &Option<Entry>, b: &Option<Entry>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => {
            x.same_here(y)
                && match (&x.hash, &y.hash) {
                    (Some(h), Some(k)) => h == k,
                    _ => true,
                }
        }
        (None, None) => true,
        _ => false,
    }
}

/// Two holdings agree at `precision_ns`.
pub(super) fn holdings_agree(a: &Holding, b: &Holding, precision_ns: u64) -> bool {
    match (a, b) {
        (Holding::Present(x), Holding::Present(y)) => x.same_as(y, precision_ns),
        (Holding::Absent { .. }, Holding::Absent { .. }) => true,
        _ => false,
    }
}
