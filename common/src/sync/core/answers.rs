//! How this side's operations end: the peer's answers to its offers
//! (`stored`, `refused`), the outcomes of the effects that apply the
//! peer's changes here, and the state moves they bring (a folder's names
//! re-keyed, a path forgotten).

use super::local::{ancestors, holdings_agree, is_under};
use super::model::coarse;
use super::peer::matches;
use super::rule::{self, View, Winner};
use super::{
    Base, Core, Direction, Effect, Entry, Holding, KeepWhy, Kind, OpFor, OpId, Outcome, PeerMsg,
    Pending, Refusal, Version,
};

/// What `of`, an offer of this side's at `path` (not a move) whose wait a
/// link change ended, sent.
fn lost_offer(of: &OpFor, path: &str) -> Option<(Holding, Option<Entry>)> {
    (of.path == path && of.from.is_none())
        .then(|| of.lost.as_deref().cloned())
        .flatten()
}

/// The answer to an offer of `st`'s new name that an earlier run of this
/// side sent (its operation numbered by that run; the name journalled as
/// `offered`, see [`super::PathState::offered`]): the peer holds `landed`
/// and took it as agreed, so this side does too; what it holds now, where
/// it differs, is its change since, which goes across against it
/// (NFD seed 98719: B offered `b`, was killed, its user chmodded `b`; A
/// stored the offer and answered only once B was back, after A's
/// inventory had gone without `b`. B took the answer for a copy of A's
/// and offered its `b` as new; A, which held it agreed, took that for a
/// conflict, won on the equal time and sent B's own file back over the
/// chmod.) Returns what was sent and, as the base's stat here, the
/// landed version on this side's file.
fn offered_before_a_restart(
    st: &super::PathState,
    earlier_run: bool,
    landed: &Option<Version>,
    precision: u64,
) -> Option<(Holding, Option<Entry>)> {
    let ours = earlier_run && st.offered && st.base.is_none() && st.pending.is_none();
    let v = landed.as_ref().filter(|_| ours)?;
    // Gone here since (moved or deleted before a restart): the delete is
    // the change made since, and goes against the copy the peer stored
    // (strict seed 61891: A's new `x:y` offered, renamed to `c`, a power
    // cut at A; B stored the offer after the reconnect, and A, taking
    // the answer for a copy of B's, reported nothing there, so B offered
    // A's file back as new, an echo).
    let Some(local) = &st.local else {
        return Some((Holding::Present(v.clone()), None));
    };
    if local.kind != v.kind {
        return None;
    }
    // (Only a copy changed since: one that looks the same may be another
    // file swapped in, which only the peer's rule can tell, case seed
    // 2540: a look-alike taken for the answer's copy never went.)
    if local.version().same_as(v, precision) {
        return None;
    }
    let here = Entry {
        size: v.size,
        mtime_ns: v.mtime_ns,
        mode: v.mode.or(local.mode),
        hash: v.hash.clone(),
        ..local.clone()
    };
    Some((Holding::Present(v.clone()), Some(here)))
}

pub(super) fn landed_holding(landed: &Option<Version>) -> Holding {
    match landed {
        Some(v) => Holding::Present(v.clone()),
        None => Holding::Absent { deleted_ns: None },
    }
}

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
            // What this side's disk held there is taken for what moved,
            // but a name may have landed under the old name since (plain
            // seed 204674: B moved `d/e` to `A` while A's move of `e` to
            // `d/e/a` crossed it; B applied A's move, making `d/e/a/a`
            // anew, and B's own move's answer then carried that state
            // away, so `d/e/a/a` waited for the next rescan): looked at.
            if local.is_some() {
                self.emit(Effect::Stat { path: p.clone() });
            }
            let mut old = self.drop_state(&p).unwrap_or_default();
            // A move of this side's away from `p`, not answered yet, goes
            // on from `q`: the answer (a refusal sends a remove of the
            // source) finds the source where its state is now (seed 8698
            // of the strict run: B moved `d/e` away while A's move of `d`
            // to `c` crossed it; A refused B's move, and B's remove of
            // `c/e` waited for the next rescan).
            let free = self.paths.get(&q).is_none_or(|s| s.pending.is_none());
            let moving_away = match old.pending.as_deref() {
                Some(Pending::Offered { op, .. }) if free => self
                    .ops
                    .get_mut(op)
                    .filter(|o| o.from.as_deref() == Some(p.as_str()))
                    .map(|o| o.from = Some(q.clone()))
                    .is_some(),
                _ => false,
            };
            // A lock names a path: it stays where it was taken.
            match old.lock.take() {
                Some(lock) => {
                    self.paths.insert(
                        p.clone(),
                        Box::new(super::PathState {
                            lock: Some(lock),
                            queued_through: old.queued_through,
                            ..Default::default()
                        }),
                    );
                    self.record(&p);
                }
                None => self.emit(Effect::Record {
                    path: p,
                    record: None,
                }),
            }
            let qs = self.paths.entry(q.clone()).or_default();
            // (Not the old name's tombstone: the names under a folder this
            // side moved are seen gone there, and are here, plain seed
            // 509767: taken along, they went across as deletes.)
            if qs.base.is_none() {
                qs.base = old.base;
            }
            let based = qs.base.is_some();
            if moving_away {
                qs.pending = old.pending;
            }
            // What the peer holds there moved with the folder too (seed
            // 22949: the peer's copy of a name this side had lost since,
            // never agreed here, was to get a delete; dropped here, the
            // peer kept it alone for good under the folder's new name).
            // And only that: the move landed where the peer had nothing,
            // so what this side heard of the new name before is gone
            // there (plain seed 637367: A's inventory listed a file
            // `A/e/a`, then A moved `d/e` to `A/e`; kept at B, that stale
            // file made B offer the moved folder `A/e/a` back as a change
            // of it, crossing A's delete of it, and the two swapped the
            // folder and its absence for good).
            let peer_only = old.peer.is_some();
            qs.peer = old.peer;
            let need_local = qs.local.is_none();
            if need_local && local.is_some() {
                self.set_local(&q, local);
                self.emit(Effect::Stat { path: q.clone() });
            } else if (peer_only || based) && need_local {
                // (Looked at again: a delete may be due there, this side's
                // own too: plain seed 329512, B's user deleted `d/e` and
                // A's move of `d` to `A` came before B's delete went; its
                // wait for quiet ended at `d/e`, and `A/e`'s delete
                // waited for the next rescan.)
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
            .filter(|(_, s)| !matches!(s.pending.as_deref(), Some(Pending::Applying { .. })))
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

    /// Both sides hold `path` now (the peer stored this side's change
    /// there, or this side stored the peer's), so both hold the folders
    /// above it: each such folder without an agreed base gets one, on
    /// both sides alike. A folder made here only to hold the peer's files
    /// is then no change of this side (offered back, it brought back a
    /// folder the peer had moved away meanwhile: CI's
    /// `folders_are_created_renamed_and_deleted_on_the_other_side`), and a
    /// folder this side no longer holds is a delete that goes across. Its
    /// identity, when not seen yet, is taken when it is (see `changed`).
    pub(super) fn agree_parents(&mut self, path: &str) {
        let parents: Vec<String> = ancestors(path).map(str::to_string).collect();
        for p in parents {
            let st = self.paths.entry(p.clone()).or_default();
            if st.base.is_some() {
                continue;
            }
            let here = st.local.clone().filter(|e| e.kind == Kind::Dir);
            let version = here.as_ref().map_or(
                Version {
                    kind: Kind::Dir,
                    size: 0,
                    mtime_ns: 0,
                    mode: None,
                    hash: None,
                },
                Entry::version,
            );
            let unseen = st.local.is_none();
            st.base = Some(Base { version, here });
            // The two agree on a folder here now: what the peer said it
            // held before, and a copy held back for its offer, are out of
            // date (seed 74552: reconciliation gave `e` to B's file, which
            // B's user then deleted; B made `e` a folder for A's `e/a`, so
            // B had nothing to offer, and A's delete of `e` was held back
            // for good).
            st.peer = None;
            let held = matches!(st.pending.as_deref(), Some(Pending::Held { .. }));
            if held {
                st.pending = None;
            }
            self.record(&p);
            if unseen {
                // (Made by the install just now, or gone: look.)
                self.emit(Effect::Stat { path: p });
            } else if held {
                self.consider(&p, false);
            }
        }
    }

    /// The peer stored at `path` what this side no longer offers, and
    /// takes it as agreed: an update it queued long ago and replayed at an
    /// unlock after this side moved on (seed 7954: a folder B deleted while
    /// its creation sat in A's lock queue), an offer this side lost track
    /// of when its copy changed shape (seed 9109), or an offer that crossed
    /// the peer's, each side having applied the other's (seed 93134). Unless
    /// this side holds what landed, the two decide by the rule on what each
    /// holds now: the peer changed since the two last agreed only if this
    /// side's base says otherwise (then the peer, told the same by this
    /// side's `Stored`, decides the same way), else this side's copy (or
    /// its delete) goes across.
    fn stored_elsewhere(&mut self, path: &str, landed: Option<Version>) {
        let precision = self.precision();
        let side = self.cfg.side;
        let theirs = match landed {
            Some(v) => Holding::Present(v),
            None => Holding::Absent { deleted_ns: None },
        };
        let st = self.paths.entry(path.to_string()).or_default();
        let mine = st.holding();
        let based = st
            .base
            .as_ref()
            .map(|b| Holding::Present(b.version.clone()));
        let agreed = holdings_agree(
            based
                .as_ref()
                .unwrap_or(&Holding::Absent { deleted_ns: None }),
            &theirs,
            precision,
        );
        if agreed || holdings_agree(&mine, &theirs, precision) {
            if st.local.is_none() && st.base.is_none() && st.lock.is_none() && st.pending.is_none()
            {
                self.drop_state(path);
            }
            return;
        }
        let their_view = View {
            now: &theirs,
            changed: based.is_some(),
        };
        // The peer holds nothing there now (this side's delete landed),
        // while this side holds the base it agreed since, unchanged: a
        // copy of the peer's that this side applied after its delete
        // went, the peer having sent it before it took the delete. The
        // peer decides: its copy's answer finds that copy gone there, and
        // its delete (or what it holds now) comes across. Taken for a
        // change here, it went back while the peer's delete came (plain
        // seeds 897392, 778158: B's delete of `d/b` crossed A's new folder
        // `d/b`, or A's delete crossed B's copy that A replayed at an
        // unlock; each side applied the other's, and the folder and its
        // absence swapped sides for good). Where both hold something, each
        // applied the other's copy, and the rule decides alike on both
        // sides, both taken as changed (strict seed 10568: a file and a
        // folder swapped; each waiting for the other, neither went).
        let yields = matches!(theirs, Holding::Absent { .. }) && !st.changed_here();
        let my_view = View {
            now: &mine,
            changed: st.base.is_none() || !yields,
        };
        let win = rule::winner(my_view, their_view, side, precision);
        // What this side agreed under a folder the peer no longer holds
        // is not there either (seeds 39884, 42354: a replay at the peer's
        // unlock put a file over its folder): offered again, as new.
        if !matches!(&theirs, Holding::Present(v) if v.kind == Kind::Dir) {
            self.unagree_under(path);
        }
        let st = self.paths.get_mut(path).expect("made above");
        st.peer = Some(Box::new(theirs));
        match win {
            Winner::Theirs => {
                // The peer offers its copy (it decides the same).
                if st.pending.is_none() {
                    st.pending = Some(Box::new(Pending::Held {
                        sent: mine,
                        entry: st.local.clone(),
                    }));
                }
            }
            _ => {
                if matches!(st.pending.as_deref(), Some(Pending::Held { .. })) {
                    st.pending = None;
                }
                self.consider(path, false);
                self.consider_under(path);
            }
        }
    }

    /// Takes back every agreement under folder `dir`: what is still here
    /// becomes a new name to offer, what is not is forgotten.
    fn unagree_under(&mut self, dir: &str) {
        let under: Vec<String> = self
            .paths
            .range(format!("{dir}/")..)
            .take_while(|(p, _)| is_under(p, dir))
            .filter(|(_, s)| s.base.is_some() && s.pending.is_none())
            .map(|(p, _)| p.clone())
            .collect();
        for p in under {
            let st = self.paths.get_mut(&p).expect("listed");
            if st.local.is_some() {
                st.base = None;
                st.deleted_ns = None;
                self.record(&p);
            } else {
                self.forget(&p);
            }
        }
    }

    /// Forgets `path` (and, for the journal, says so).
    pub(super) fn forget(&mut self, path: &str) {
        self.waiting.remove(path);
        self.set_local(path, None);
        if let Some(st) = self.paths.get_mut(path) {
            st.base = None;
            st.deleted_ns = None;
            st.peer = None;
            st.pending = None;
            st.offered = false;
            if st.lock.is_none() {
                self.drop_state(path);
            }
        }
        self.record(path);
    }

    pub(super) fn stored(&mut self, op: OpId, path: String, landed: Option<Version>) {
        let of = self.ops.remove(&op);
        // The peer holds what landed, agreed, whatever this side makes of
        // the answer: a reconciliation may decide on that (its inventory,
        // sent before, said "nothing there": an offer made on that would
        // carry no base, and the peer would take it for a conflict).
        self.link.answered(
            super::state::Answered::ByPeer,
            &path,
            landed_holding(&landed),
        );
        let Some(st) = self.paths.get(&path) else {
            return self.stored_elsewhere(&path, landed);
        };
        let (sent, entry) = match st.pending.as_deref() {
            Some(Pending::Offered { op: o, sent, entry }) if *o == op => {
                (sent.clone(), entry.clone())
            }
            // A queued update replayed at the peer's unlock.
            Some(Pending::Held { sent, entry })
                if matches(entry.as_ref(), landed.as_ref(), self.precision()) =>
            {
                (sent.clone(), entry.clone())
            }
            // An offer of this side's whose wait a link's drop ended, and
            // that the peer stored all the same (seeds 158280, 62488: the
            // answer crossed the inventories at reconnect). The peer holds
            // what this side sent and took it as agreed: so does this
            // side. (Without it, this side's next change, a restore of an
            // older backup, went across as new, and the peer took it for
            // a conflict with its own copy and undid it.)
            None | Some(Pending::Held { .. }) => {
                match of.as_ref().and_then(|o| lost_offer(o, &path)) {
                    Some((sent, entry))
                        if holdings_agree(&sent, &landed_holding(&landed), self.precision()) =>
                    {
                        (sent, entry)
                    }
                    _ => match offered_before_a_restart(
                        st,
                        self.of_earlier_run(op),
                        &landed,
                        self.precision(),
                    ) {
                        Some(known) => known,
                        None => return self.stored_elsewhere(&path, landed),
                    },
                }
            }
            _ => return,
        };
        let was_new = st.base.is_none();
        let size = landed.as_ref().map(|v| v.size);
        // The peer took this side's change: what it queued here before
        // is older than that (a move's source too, and what it held).
        let moved = of.as_ref().and_then(|o| o.from.as_deref());
        let stays_a_folder = moved.is_none()
            && landed.as_ref().is_some_and(|v| v.kind == Kind::Dir)
            && entry.as_ref().is_some_and(|e| e.kind == Kind::Dir);
        self.supersede_queue(&path, !stays_a_folder);
        if let Some(from) = moved {
            self.supersede_queue(from, true);
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
        self.succeeded(&path, Direction::Out);
        let st = self.paths.get_mut(&path).expect("checked");
        st.pending = None;
        st.peer = None;
        match (landed, sent) {
            (Some(v), sent) => {
                let mut version = sent.version().cloned().unwrap_or(v.clone());
                version.hash = version.hash.or(v.hash.clone());
                st.base = Some(Base {
                    version,
                    here: entry,
                });
                // Gone here since it was offered: a delete, from when it
                // was seen gone (a peer's copy offered on an inventory
                // that crossed this answer is older: seed 42354).
                st.deleted_ns = st.local.is_none().then_some(st.changed_ns);
                // (Unless this side's disk holds a folder there again:
                // what is under it is this side's, to offer once the
                // folder went across; seed 5865: a lost offer's answer,
                // taken after the file had become a folder, forgot a new
                // file inside, which waited for the next rescan.)
                let a_file =
                    v.kind == Kind::File && !st.local.as_ref().is_some_and(|e| e.kind == Kind::Dir);
                self.record(&path);
                self.agree_parents(&path);
                if a_file {
                    // Both sides hold a file here now: nothing under it is
                    // left on either side, so what this side still knew of
                    // (a delete not yet taken, seed 4151) is done with.
                    self.forget_under(&path);
                    self.failing.retain(|p, _| !is_under(p, &path));
                }
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
            // A folder gone here that waited for what it held to go.
            if let Some(parent) = ancestors(&from).next().map(str::to_string) {
                self.consider(&parent, false);
            }
        }
    }

    pub(super) fn refused(&mut self, op: OpId, path: String, holds: Holding, why: Refusal) {
        let of = self.ops.remove(&op);
        if let Some(from) = of.as_ref().and_then(|o| o.from.clone()) {
            // A move the peer cannot take as one: a remove and an offer.
            for p in [&from, &path] {
                if let Some(st) = self.paths.get_mut(p.as_str()) {
                    if matches!(st.pending.as_deref(), Some(Pending::Offered { op: o, .. }) if *o == op)
                    {
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
            // copy may have landed there meanwhile), and once quiet, as
            // any change: a move goes at once (no content travels), but
            // its file may be written to since (plain seed 2271438: B's
            // file renamed, then written; the move refused, the file went
            // 297 ms after its last write, still open).
            if self.paths.get(&path).is_some_and(|s| s.local.is_some()) {
                self.consider(&path, false);
            }
            return;
        }
        let Some(st) = self.paths.get_mut(&path) else {
            return;
        };
        // A queued update (its operation ended with `Queued`) that the
        // peer's unlock could not apply: offered again after a while.
        let queued_failed = of.is_none()
            && matches!(st.pending.as_deref(), Some(Pending::Held { .. }))
            && matches!(why, Refusal::Failed { retry: true, .. });
        if queued_failed {
            let Refusal::Failed { error, .. } = why else {
                unreachable!("matched above")
            };
            st.peer = Some(Box::new(holds));
            st.pending = Some(Box::new(Pending::Retrying));
            self.failed(&path, Direction::Out, error, true);
            return;
        }
        let Some(Pending::Offered { op: o, sent, entry }) = st.pending.as_deref() else {
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
                st.peer = Some(Box::new(holds));
                st.pending = Some(Box::new(held));
            }
            Refusal::Failed { error, retry } => {
                st.peer = Some(Box::new(holds));
                if retry {
                    st.pending = Some(Box::new(Pending::Retrying));
                    self.failed(&path, Direction::Out, error, true);
                } else {
                    st.pending = Some(Box::new(held));
                    self.peer_refused_name(&path, offered, error);
                    // What waited for this folder to go (names a move
                    // of it carried) goes now, to be refused in turn,
                    // each said once (seed 4336).
                    self.consider_under(&path);
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
        match st.pending.as_deref().cloned() {
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
                let hash = super::Hash::from(hash);
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
                st.pending = Some(Box::new(Pending::Offered { op, sent, entry }));
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
                // Nothing (or an aborted transfer) reached the peer: the
                // base stays, and the file is offered again once the
                // delay is over or it changes.
                self.ops.remove(&op);
                let st = self.paths.get_mut(path).expect("known");
                st.pending = Some(Box::new(Pending::Retrying));
                self.failed(path, Direction::Out, error, true);
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
        let parents: Vec<String> = ancestors(&path).map(str::to_string).collect();
        if let Some(f) = &from {
            if let Some(st) = self.paths.get_mut(f) {
                st.pending = None;
            }
        }
        let seen_meanwhile = self.seen_while_applying.remove(&path);
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
                // `landed` is a re-stat after the rename: a user's edit or
                // chmod between the two shows as another version. The
                // install made `version`; the difference is a change of
                // this side, which goes across (CI: a chmod at B right
                // after A's mode arrived was taken as agreed and never sent).
                let precision = self.cfg.fs.precision_ns;
                let mut slipped_in = false;
                let landed_v = match (&landed, target.version()) {
                    (Some(e), Some(v)) => {
                        let mut version = v.clone();
                        version.hash = version.hash.or(e.hash.clone());
                        let here =
                            if e.kind == Kind::Dir || e.version().same_as(&version, precision) {
                                e.clone()
                            } else {
                                slipped_in = true;
                                Entry {
                                    size: version.size,
                                    mtime_ns: coarse(version.mtime_ns, precision),
                                    mode: version.mode.or(e.mode),
                                    hash: version.hash.clone(),
                                    ..e.clone()
                                }
                            };
                        let mut lv = here.version();
                        lv.hash = version.hash.clone();
                        st.base = Some(Base {
                            version,
                            here: Some(here),
                        });
                        Some(lv)
                    }
                    _ => None,
                };
                if landed_v.is_some() {
                    self.record(&path);
                    self.agree_parents(&path);
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
                self.succeeded(&path, Direction::In);
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
                if slipped_in {
                    self.consider(&path, false);
                }
                // Seen while the install ran (CI: a user's delete right
                // after the rename, looked at before the install reported,
                // was then taken back by the install's older re-stat).
                if seen_meanwhile {
                    self.emit(Effect::Stat { path: path.clone() });
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
                let changed = probe.changed_here();
                let why = if changed {
                    Refusal::Conflict
                } else {
                    Refusal::Failed {
                        error: "changed while it was applied; offered again".into(),
                        retry: true,
                    }
                };
                self.refuse_applied(reply_to, &path, holds, from.is_some(), why);
                // What the peer holds is what this side's change goes
                // against; without a change here, the peer offers its
                // own again and this side has nothing to send (NFD seed
                // 58715: B, told to take A's delete of the agreed folder
                // `d`, found it there unchanged and asked for the delete
                // again, but took A's "nothing" for the peer's copy and
                // offered its folder as well. The two crossed: each side
                // applied the other's, and took the other's answer for a
                // change to undo, for ever.)
                let st = self.paths.get_mut(&path).expect("known");
                st.peer = changed.then(|| Box::new(target));
                self.observed(path, found, false);
            }
            Outcome::Failed { error, retry } => {
                // The peer offers it again while it still holds it (what
                // it held before is no news: seed 56 kept an old copy as
                // the peer's and sent a delete against it once the peer
                // had dropped it).
                let st = self.paths.get_mut(&path).expect("known");
                st.peer = None;
                let holds = st.holding();
                let why = Refusal::Failed {
                    error: error.clone(),
                    retry,
                };
                self.refuse_applied(reply_to, &path, holds, from.is_some(), why);
                self.failed(&path, Direction::In, error, false);
            }
            Outcome::Sent { .. } => {}
        }
        // A new folder above waited for this (see `Core::applying_under`).
        for p in parents {
            self.consider(&p, false);
        }
    }
}
