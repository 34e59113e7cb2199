//! The peer's messages: offers, removes and moves to apply or refuse (by
//! [`super::rule::winner`]), the answers to this side's own, and the
//! outcomes of the effects that apply them.

use super::local::{ancestors, is_under};
use super::rule::{self, View, Winner};
use super::{
    Base, Core, Direction, Effect, Entry, Holding, KeepWhy, Kind, OpId, Outcome, PeerMsg, Pending,
    Refusal, Side, Source, Timer, Version,
};

/// Whether `local` is what `base` names.
fn matches(local: Option<&Entry>, base: Option<&Version>, precision_ns: u64) -> bool {
    match (local, base) {
        (None, None) => true,
        (Some(e), Some(b)) => e.version().same_as(b, precision_ns),
        _ => false,
    }
}

impl Core {
    pub(super) fn peer_msg(&mut self, msg: PeerMsg) {
        match msg {
            PeerMsg::Digest(d) => self.digest(d),
            PeerMsg::Inventory { entries, last } => self.inventory(entries, last),
            PeerMsg::Hashes { hashes } => self.their_hashes(hashes),
            PeerMsg::Offer {
                op,
                path,
                base,
                version,
            } => self.incoming(op, path, base, Holding::Present(version)),
            PeerMsg::Remove {
                op,
                path,
                base,
                deleted_ns,
            } => self.incoming(op, path, Some(base), Holding::Absent { deleted_ns }),
            PeerMsg::Move { op, from, to, base } => self.incoming_move(op, from, to, base),
            PeerMsg::Stored { op, path, landed } => self.stored(op, path, landed),
            PeerMsg::Refused {
                op,
                path,
                holds,
                why,
            } => self.refused(op, path, holds, why),
            PeerMsg::Queued { op, path } => {
                self.ops.remove(&op);
                if let Some(st) = self.paths.get_mut(&path) {
                    if let Some(Pending::Offered { op: o, sent, entry }) = &st.pending {
                        if *o == op {
                            st.pending = Some(Pending::Held {
                                sent: sent.clone(),
                                entry: entry.clone(),
                            });
                        }
                    }
                }
            }
        }
    }

    fn reply(&mut self, msg: PeerMsg) {
        self.emit(Effect::Send(msg));
    }

    fn locked(&self, path: &str) -> bool {
        self.cfg.side == Side::A && self.paths.get(path).is_some_and(|s| s.lock.is_some())
    }

    /// The peer offers `theirs` (a version or a delete) at `path`, in place
    /// of `base`.
    fn incoming(&mut self, op: OpId, path: String, base: Option<Version>, theirs: Holding) {
        if self.locked(&path) {
            self.enqueue(op, &path, theirs);
            return;
        }
        let precision = self.precision();
        let side = self.cfg.side;
        let parent_busy = ancestors(&path).any(|a| {
            self.paths
                .get(a)
                .is_some_and(|s| matches!(s.pending, Some(Pending::Applying { .. })))
        });
        let st = self.paths.entry(path.clone()).or_default();
        if parent_busy || matches!(st.pending, Some(Pending::Applying { .. })) {
            let holds = st.holding();
            self.reply(PeerMsg::Refused {
                op,
                path,
                holds,
                why: Refusal::Failed {
                    error: "busy".into(),
                    retry: true,
                },
            });
            return;
        }
        let mine_now = st.holding();
        let changed = st.changed_here() || !matches(st.local.as_ref(), base.as_ref(), precision);
        let local_hash_unknown = st
            .local
            .as_ref()
            .is_some_and(|e| e.hash.is_none() && e.kind == Kind::File);
        // A folder that gained names here is a change made after the delete.
        let grew = theirs.version().is_none()
            && st.local.as_ref().is_some_and(|e| e.kind == Kind::Dir)
            && self.has_local_children(&path);
        let mine = View {
            now: &mine_now,
            changed: changed || grew,
        };
        let their_view = View {
            now: &theirs,
            changed: true,
        };
        // Both changed to look-alikes whose content this side cannot
        // compare (no hash of its own copy): an equal-time conflict.
        let unsure = changed
            && local_hash_unknown
            && matches!((&mine_now, &theirs), (Holding::Present(a), Holding::Present(b)) if a.same_as(b, precision));
        let win = if grew {
            Winner::Mine
        } else if unsure {
            if side == Side::A {
                Winner::Mine
            } else {
                Winner::Theirs
            }
        } else {
            rule::winner(mine, their_view, side, precision)
        };
        match win {
            Winner::Same => {
                let st = self.paths.get_mut(&path).expect("made above");
                match (&st.local, theirs.version()) {
                    (Some(e), Some(v)) => {
                        let mut version = v.clone();
                        version.hash = version.hash.or(e.hash.clone());
                        st.base = Some(Base {
                            version,
                            here: Some(e.clone()),
                        });
                        st.peer = None;
                        st.pending = None;
                        let landed = Some(e.version());
                        self.record(&path);
                        self.reply(PeerMsg::Stored { op, path, landed });
                    }
                    _ => {
                        self.forget(&path);
                        self.reply(PeerMsg::Stored {
                            op,
                            path,
                            landed: None,
                        });
                    }
                }
            }
            Winner::Mine => {
                let st = self.paths.get_mut(&path).expect("made above");
                st.peer = Some(theirs);
                st.pending = None;
                let holds = st.holding();
                let size = st.local.as_ref().map(|e| e.size);
                self.announce(
                    "conflict",
                    Direction::In,
                    &path,
                    size,
                    "both changed; this side's copy wins and goes across".into(),
                );
                self.reply(PeerMsg::Refused {
                    op,
                    path: path.clone(),
                    holds,
                    why: Refusal::Conflict,
                });
                self.consider(&path, false);
            }
            Winner::Theirs => self.apply(op, &path, theirs, changed, Source::Staged),
        }
    }

    /// Puts the peer's `theirs` at `path` (answering the peer's `reply_to`).
    pub(super) fn apply(
        &mut self,
        reply_to: OpId,
        path: &str,
        theirs: Holding,
        conflict: bool,
        source: Source,
    ) {
        let st = &self.paths[path];
        let local = st.local.clone();
        let keep = match &local {
            Some(e)
                if self.cfg.keep_versions
                    && (e.kind == Kind::File || theirs.version().is_some()) =>
            {
                Some(if conflict {
                    KeepWhy::Conflict
                } else if theirs.version().is_some() {
                    KeepWhy::Replaced
                } else {
                    KeepWhy::Deleted
                })
            }
            _ => None,
        };
        let op = self.op(path, None);
        if let Some(of) = self.ops.get_mut(&op) {
            of.keep = keep;
        }
        let st = self.paths.get_mut(path).expect("known");
        st.pending = Some(Pending::Applying {
            op,
            reply_to: Some(reply_to),
            target: theirs.clone(),
        });
        match (theirs, local) {
            (Holding::Present(version), expect) => self.emit(Effect::Install {
                op,
                path: path.to_string(),
                version,
                source,
                expect,
                keep,
            }),
            (Holding::Absent { .. }, Some(expect)) => self.emit(Effect::Remove {
                op,
                path: path.to_string(),
                expect,
                keep,
            }),
            (Holding::Absent { .. }, None) => self.done(
                op,
                Outcome::Applied {
                    landed: None,
                    kept_at: None,
                },
            ),
        }
    }

    fn has_local_children(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        self.paths
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .any(|(_, s)| s.local.is_some())
    }

    fn incoming_move(&mut self, op: OpId, from: String, to: String, base: Version) {
        let precision = self.precision();
        let ok = !self.locked(&from)
            && !self.locked(&to)
            && self.paths.get(&from).is_some_and(|s| {
                s.pending.is_none()
                    && !s.changed_here()
                    && matches(s.local.as_ref(), Some(&base), precision)
            })
            && self
                .paths
                .get(&to)
                .is_none_or(|s| s.local.is_none() && s.pending.is_none());
        if !ok {
            let holds = self
                .paths
                .get(&from)
                .map_or(Holding::Absent { deleted_ns: None }, |s| s.holding());
            self.reply(PeerMsg::Refused {
                op,
                path: to,
                holds,
                why: Refusal::SendWhole,
            });
            return;
        }
        let expect = self.paths[&from].local.clone().expect("checked");
        let mine = self.op(&to, Some(&from));
        let target = Holding::Present(base);
        self.paths.get_mut(&from).expect("checked").pending = Some(Pending::Applying {
            op: mine,
            reply_to: Some(op),
            target: Holding::Absent { deleted_ns: None },
        });
        self.paths.entry(to.clone()).or_default().pending = Some(Pending::Applying {
            op: mine,
            reply_to: Some(op),
            target,
        });
        self.emit(Effect::Rename {
            op: mine,
            from,
            to,
            expect,
        });
    }

    /// Moves the state of everything under folder `from` to `to`.
    fn rekey(&mut self, from: &str, to: &str) {
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
            let old = self.paths.remove(&p).unwrap_or_default();
            self.index_base(&p);
            self.emit(Effect::Record {
                path: p,
                record: None,
            });
            let qs = self.paths.entry(q.clone()).or_default();
            if qs.base.is_none() {
                qs.base = old.base;
            }
            qs.lock = qs.lock.take().or(old.lock);
            let need_local = qs.local.is_none();
            if need_local && local.is_some() {
                self.set_local(&q, local);
                self.emit(Effect::Stat { path: q.clone() });
            }
            self.record(&q);
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

    fn stored(&mut self, op: OpId, path: String, landed: Option<Version>) {
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
                if let Some(parent) = ancestors(&path).next().map(str::to_string) {
                    self.consider(&parent, false);
                }
            }
        }
        self.consider(&path, false);
        if of.is_some_and(|o| o.from.is_some()) {
            self.consider_under(&path);
        }
    }

    fn refused(&mut self, op: OpId, path: String, holds: Holding, why: Refusal) {
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
            if let Some(e) = self.paths.get(&path).and_then(|s| s.local.clone()) {
                self.offer(&path, e);
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
                } else {
                    st.pending = Some(held);
                }
                self.announce("error", Direction::Out, &path, None, error);
            }
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
                if st.lock.as_ref().is_some_and(|l| l.unlocking) {
                    self.replayed(&of.path, target, outcome);
                } else {
                    self.applied(of, reply_to, target, outcome);
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
            Outcome::Mismatch { found } => {
                self.ops.remove(&op);
                self.paths.get_mut(path).expect("known").pending = None;
                self.observed(path.to_string(), found, false);
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
                    let under: Vec<String> = self
                        .paths
                        .range(format!("{path}/")..)
                        .take_while(|(p, _)| is_under(p, &path))
                        .map(|(p, _)| p.clone())
                        .collect();
                    for p in under {
                        self.forget(&p);
                    }
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
                } else {
                    self.forget(&path);
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
                // A user's change slipped in: it is a change of this side.
                if let Some(r) = reply_to {
                    let holds = match &found {
                        Some(e) => Holding::Present(e.version()),
                        None => Holding::Absent { deleted_ns: None },
                    };
                    self.reply(PeerMsg::Refused {
                        op: r,
                        path: path.clone(),
                        holds,
                        why: if from.is_some() {
                            Refusal::SendWhole
                        } else {
                            Refusal::Conflict
                        },
                    });
                }
                let st = self.paths.get_mut(&path).expect("known");
                st.peer = Some(target);
                self.observed(path, found, false);
            }
            Outcome::Failed { error, retry } => {
                let holds = self.paths[&path].holding();
                if let Some(r) = reply_to {
                    self.reply(PeerMsg::Refused {
                        op: r,
                        path: path.clone(),
                        holds,
                        why: if from.is_some() {
                            Refusal::SendWhole
                        } else {
                            Refusal::Failed {
                                error: error.clone(),
                                retry,
                            }
                        },
                    });
                }
                self.announce("error", Direction::In, &path, None, error);
            }
            Outcome::Sent { .. } => {}
        }
    }
}
