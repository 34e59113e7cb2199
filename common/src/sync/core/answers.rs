//! How this side's operations end: the peer's answers to its offers
//! (`stored`, `refused`), the outcomes of the effects that apply the
//! peer's changes here, and the state moves they bring (a folder's names
//! re-keyed, a path forgotten).

use super::local::{ancestors, is_under};
use super::peer::matches;
use super::{
    Base, Core, Direction, Effect, Entry, Holding, KeepWhy, Kind, OpId, Outcome, PeerMsg, Pending,
    Refusal, Timer, Version,
};

impl Core {
    /// Moves the state of everything under folder `from` to `to`.
    pub(super) fn rekey(&mut self, from: &str, to: &str) {
        let under: Vec<String> = self
            .paths
            .range(format!("{from}/")..)
            .take_while(|(p, _)| is_under(p, from))
            .map(|(p, _)| p.clone())
            .collect();
        for p in under {
            let q = format!("{to}{}", &p[from.len()..]);
            let local = self.paths.get(&p).and_then(|s| s.local.clone());
            self.set_local(&p, None);
            let mut old = self.paths.remove(&p).unwrap_or_default();
            self.index_base(&p);
            // A lock names a path: it stays where it was taken.
            match old.lock.take() {
                Some(lock) => {
                    self.paths.insert(
                        p.clone(),
                        super::PathState {
                            lock: Some(lock),
                            ..Default::default()
                        },
                    );
                    self.record(&p);
                }
                None => self.emit(Effect::Record {
                    path: p,
                    record: None,
                }),
            }
            let qs = self.paths.entry(q.clone()).or_default();
            if qs.base.is_none() {
                qs.base = old.base;
            }
            let need_local = qs.local.is_none();
            if need_local && local.is_some() {
                self.set_local(&q, local);
                self.emit(Effect::Stat { path: q.clone() });
            }
            self.record(&q);
        }
    }

    /// Forgets everything under folder `dir` (replaced by a file: what it
    /// held was kept as a version, and is gone).
    pub(super) fn forget_under(&mut self, dir: &str) {
        // (Not a path whose own effect is under way, such as a locked
        // path being replayed: its outcome settles it.)
        let under: Vec<String> = self
            .paths
            .range(format!("{dir}/")..)
            .take_while(|(p, _)| is_under(p, dir))
            .filter(|(_, s)| !matches!(s.pending, Some(Pending::Applying { .. })))
            .map(|(p, _)| p.clone())
            .collect();
        for p in under {
            self.forget(&p);
        }
    }

    /// Announces a folder move's names one by one (`direction`), after its
    /// state moved from `from` to `to`.
    fn announce_moved(&mut self, from: &str, to: &str, direction: Direction) {
        let under: Vec<(String, Option<u64>)> = self
            .paths
            .range(format!("{to}/")..)
            .take_while(|(p, _)| is_under(p, to))
            .filter(|(_, s)| s.local.as_ref().is_some_and(|e| e.kind == Kind::File))
            .map(|(p, s)| (p.clone(), s.local.as_ref().map(|e| e.size)))
            .collect();
        for (p, size) in under {
            let old = format!("{from}{}", &p[to.len()..]);
            self.announce("renamed", direction, &p, size, format!("from {old}"));
        }
    }

    /// Forgets `path` (and, for the journal, says so).
    pub(super) fn forget(&mut self, path: &str) {
        self.set_local(path, None);
        if let Some(st) = self.paths.get_mut(path) {
            st.base = None;
            st.deleted_ns = None;
            st.peer = None;
            st.pending = None;
            if st.lock.is_none() {
                self.paths.remove(path);
            }
        }
        self.record(path);
    }

    pub(super) fn stored(&mut self, op: OpId, path: String, landed: Option<Version>) {
        let of = self.ops.remove(&op);
        let Some(st) = self.paths.get(&path) else {
            return;
        };
        let (sent, entry) = match &st.pending {
            Some(Pending::Offered { op: o, sent, entry }) if *o == op => {
                (sent.clone(), entry.clone())
            }
            // A queued update replayed at the peer's unlock.
            Some(Pending::Held { sent, entry })
                if matches(entry.as_ref(), landed.as_ref(), self.precision()) =>
            {
                (sent.clone(), entry.clone())
            }
            _ => return,
        };
        let was_new = st.base.is_none();
        let size = landed.as_ref().map(|v| v.size);
        // The peer took this side's change: what it queued here before
        // is older than that (a move's source too).
        self.supersede_queue(&path);
        if let Some(from) = of.as_ref().and_then(|o| o.from.as_deref()) {
            self.supersede_queue(from);
        }
        if self.unsent.remove(&path).is_some() {
            self.unsent_changes += 1;
        }
        if let Some(from) = of.as_ref().and_then(|o| o.from.clone()) {
            self.rekey(&from, &path);
            self.forget(&from);
            self.announce(
                "renamed",
                Direction::Out,
                &path,
                size,
                format!("from {from}"),
            );
        }
        let st = self.paths.get_mut(&path).expect("checked");
        st.pending = None;
        st.peer = None;
        match (landed, sent) {
            (Some(v), sent) => {
                let mut version = sent.version().cloned().unwrap_or(v.clone());
                version.hash = version.hash.or(v.hash);
                st.base = Some(Base {
                    version,
                    here: entry,
                });
                st.deleted_ns = None;
                self.record(&path);
                if of.as_ref().is_none_or(|o| o.from.is_none()) {
                    let action = if was_new { "created" } else { "updated" };
                    self.announce(action, Direction::Out, &path, size, String::new());
                }
            }
            (None, _) => {
                let present = st.local.is_some();
                if present {
                    st.base = None;
                }
                self.announce("deleted", Direction::Out, &path, None, String::new());
                if present {
                    self.record(&path);
                } else {
                    self.forget(&path);
                }
                self.name_freed(&path);
                if let Some(parent) = ancestors(&path).next().map(str::to_string) {
                    self.consider(&parent, false);
                }
            }
        }
        self.consider(&path, false);
        if let Some(from) = of.and_then(|o| o.from) {
            self.consider_under(&path);
            self.name_freed(&from);
        }
    }

    pub(super) fn refused(&mut self, op: OpId, path: String, holds: Holding, why: Refusal) {
        let of = self.ops.remove(&op);
        if let Some(from) = of.and_then(|o| o.from) {
            // A move the peer cannot take as one: a remove and an offer.
            for p in [&from, &path] {
                if let Some(st) = self.paths.get_mut(p.as_str()) {
                    if matches!(&st.pending, Some(Pending::Offered { op: o, .. }) if *o == op) {
                        st.pending = None;
                    }
                }
            }
            if let Some(base) = self.paths.get(&from).and_then(|s| s.base.clone()) {
                if self.paths[&from].local.is_none() {
                    self.send_remove(&from, base);
                }
            }
            // Offered as a change only if it still is one (the peer's own
            // copy may have landed there meanwhile).
            let changed = self.paths.get(&path).is_some_and(|s| s.changed_here());
            if let Some(e) = self.paths.get(&path).and_then(|s| s.local.clone()) {
                if changed {
                    self.offer(&path, e);
                } else {
                    self.consider(&path, false);
                }
            }
            return;
        }
        let retry_ns = self.cfg.retry_ns;
        let now = self.now_ns;
        let Some(st) = self.paths.get_mut(&path) else {
            return;
        };
        let Some(Pending::Offered { op: o, sent, entry }) = &st.pending else {
            return;
        };
        if *o != op {
            return;
        }
        let held = Pending::Held {
            sent: sent.clone(),
            entry: entry.clone(),
        };
        let offered = entry.clone();
        match why {
            Refusal::Conflict | Refusal::SendWhole => {
                // The peer's copy wins; it offers it.
                st.peer = Some(holds);
                st.pending = Some(held);
            }
            Refusal::Failed { error, retry } => {
                st.peer = Some(holds);
                if retry {
                    st.pending = Some(Pending::Retrying);
                    self.emit(Effect::Arm {
                        timer: Timer::Retry(path.clone()),
                        at_ns: now + retry_ns,
                    });
                    self.announce("error", Direction::Out, &path, None, error);
                } else {
                    st.pending = Some(held);
                    self.peer_refused_name(&path, offered, error);
                }
            }
        }
    }

    /// Answers the peer's `reply_to` (if any) that its change did not
    /// land at `path`: `why`, or for a move ("send it whole") always
    /// [`Refusal::SendWhole`].
    fn refuse_applied(
        &mut self,
        reply_to: Option<OpId>,
        path: &str,
        holds: Holding,
        moved: bool,
        why: Refusal,
    ) {
        if let Some(op) = reply_to {
            self.reply(PeerMsg::Refused {
                op,
                path: path.to_string(),
                holds,
                why: if moved { Refusal::SendWhole } else { why },
            });
        }
    }

    pub(super) fn done(&mut self, op: OpId, outcome: Outcome) {
        let Some(of) = self.ops.get(&op).cloned() else {
            return;
        };
        let Some(st) = self.paths.get(&of.path) else {
            self.ops.remove(&op);
            return;
        };
        match st.pending.clone() {
            Some(Pending::Offered { op: o, sent, entry }) if o == op => {
                self.sent(op, &of.path, sent, entry, outcome)
            }
            Some(Pending::Applying {
                op: o,
                reply_to,
                target,
            }) if o == op => {
                self.ops.remove(&op);
                let landing = st.landing.is_some();
                let applied = matches!(outcome, Outcome::Applied { .. });
                let path = of.path.clone();
                self.paths.get_mut(&path).expect("known").landing = None;
                if self.paths[&path].lock.as_ref().is_some_and(|l| l.unlocking) {
                    self.replayed(&path, target, outcome);
                } else {
                    self.applied(of, reply_to, target, outcome);
                }
                // An applied install journals its new base; anything else
                // must still take the landing out of the journal.
                if landing && !applied && self.paths.contains_key(&path) {
                    self.record(&path);
                }
            }
            _ => {}
        }
    }

    /// A `SendFile` finished reading.
    fn sent(
        &mut self,
        op: OpId,
        path: &str,
        sent: Holding,
        entry: Option<Entry>,
        outcome: Outcome,
    ) {
        match outcome {
            Outcome::Sent { hash } => {
                let st = self.paths.get_mut(path).expect("known");
                let mut sent = sent;
                if let Holding::Present(v) = &mut sent {
                    v.hash = Some(hash.clone());
                }
                if let (Some(l), Some(e)) = (st.local.as_mut(), &entry) {
                    if l.same_here(e) {
                        l.hash = Some(hash.clone());
                    }
                }
                let entry = entry.map(|mut e| {
                    e.hash = Some(hash);
                    e
                });
                st.pending = Some(Pending::Offered { op, sent, entry });
            }
            Outcome::Mismatch { .. } => {
                // The file changed (or went) while it was read: look again.
                // (The reader cannot tell which, so its `found` is not
                // taken for a delete.)
                self.ops.remove(&op);
                self.paths.get_mut(path).expect("known").pending = None;
                self.emit(Effect::Stat {
                    path: path.to_string(),
                });
            }
            Outcome::Failed { error, .. } => {
                self.ops.remove(&op);
                let st = self.paths.get_mut(path).expect("known");
                st.pending = Some(Pending::Retrying);
                self.emit(Effect::Arm {
                    timer: Timer::Retry(path.to_string()),
                    at_ns: self.now_ns + self.cfg.retry_ns,
                });
                self.announce("error", Direction::Out, path, None, error);
            }
            Outcome::Applied { .. } => {}
        }
    }

    /// An install, remove or rename for the peer finished.
    fn applied(
        &mut self,
        of: super::OpFor,
        reply_to: Option<OpId>,
        target: Holding,
        outcome: Outcome,
    ) {
        let path = of.path.clone();
        let from = of.from.clone();
        if let Some(f) = &from {
            if let Some(st) = self.paths.get_mut(f) {
                st.pending = None;
            }
        }
        let st = self.paths.get_mut(&path).expect("known");
        st.pending = None;
        match outcome {
            Outcome::Applied { landed, kept_at } => {
                let was_new = st.base.is_none() && st.local.is_none();
                let old_kind = st.local.as_ref().map(|e| e.kind);
                let size = landed.as_ref().map(|e| e.size);
                if let Some(f) = &from {
                    self.rekey(f, &path);
                    self.forget(f);
                    self.announce_moved(f, &path, Direction::In);
                }
                // A folder replaced by a file: what it held is kept, gone.
                if old_kind == Some(Kind::Dir)
                    && !matches!(target.version(), Some(v) if v.kind == Kind::Dir)
                {
                    self.forget_under(&path);
                }
                self.set_local(&path, landed.clone());
                let st = self.paths.get_mut(&path).expect("known");
                st.peer = None;
                st.deleted_ns = None;
                let landed_v = match (&landed, target.version()) {
                    (Some(e), Some(v)) => {
                        let mut version = v.clone();
                        version.hash = version.hash.or(e.hash.clone());
                        st.base = Some(Base {
                            version: version.clone(),
                            here: Some(e.clone()),
                        });
                        let mut lv = e.version();
                        lv.hash = version.hash;
                        Some(lv)
                    }
                    _ => None,
                };
                if landed_v.is_some() {
                    self.record(&path);
                    self.refused_here.remove(&path);
                } else {
                    self.forget(&path);
                    self.name_freed(&path);
                }
                if let Some(f) = &from {
                    self.name_freed(f);
                }
                if let Some(r) = reply_to {
                    self.reply(PeerMsg::Stored {
                        op: r,
                        path: path.clone(),
                        landed: landed_v.clone(),
                    });
                }
                let (action, detail) = match (&from, &landed_v) {
                    (Some(f), _) => ("renamed", format!("from {f}")),
                    (None, None) => ("deleted", String::new()),
                    (None, Some(_)) if was_new => ("created", String::new()),
                    (None, Some(_)) => ("updated", String::new()),
                };
                self.announce(action, Direction::In, &path, size, detail);
                if of.keep == Some(KeepWhy::Conflict) {
                    let detail = match &kept_at {
                        Some(at) => format!("the peer's copy wins; this side's kept at {at}"),
                        None => "the peer's copy wins".to_string(),
                    };
                    self.announce("conflict", Direction::In, &path, size, detail);
                }
                if landed_v.is_none() {
                    if let Some(parent) = ancestors(&path).next().map(str::to_string) {
                        self.consider(&parent, false);
                    }
                }
            }
            Outcome::Mismatch { found } => {
                // A user's change slipped in: it is a change of this side,
                // which goes across (the peer waits for it). Unless it
                // leaves nothing to send (a name never agreed, gone
                // again): then the peer offers its copy again.
                let holds = match &found {
                    Some(e) => Holding::Present(e.version()),
                    None => Holding::Absent { deleted_ns: None },
                };
                let mut probe = self.paths[&path].clone();
                probe.local = found.clone();
                let why = if probe.changed_here() {
                    Refusal::Conflict
                } else {
                    Refusal::Failed {
                        error: "changed while it was applied; offered again".into(),
                        retry: true,
                    }
                };
                self.refuse_applied(reply_to, &path, holds, from.is_some(), why);
                let st = self.paths.get_mut(&path).expect("known");
                st.peer = Some(target);
                self.observed(path, found, false);
            }
            Outcome::Failed { error, retry } => {
                let holds = self.paths[&path].holding();
                let why = Refusal::Failed {
                    error: error.clone(),
                    retry,
                };
                self.refuse_applied(reply_to, &path, holds, from.is_some(), why);
                self.announce("error", Direction::In, &path, None, error);
            }
            Outcome::Sent { .. } => {}
        }
    }
}
