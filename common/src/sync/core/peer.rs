//! The peer's changes: offers, removes and moves to apply or refuse (by
//! [`super::rule::winner`]); how they end is in `answers`.

use super::local::{ancestors, is_under};
use super::rule::{self, View, Winner};
use super::{
    Base, Core, Direction, Effect, Entry, Holding, KeepWhy, Kind, LinkPhase, OpId, Outcome,
    PeerMsg, Pending, Refusal, Side, Source, Version,
};

/// Whether `local` is what `base` names.
pub(super) fn matches(local: Option<&Entry>, base: Option<&Version>, precision_ns: u64) -> bool {
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
                    if let Some(Pending::Offered { op: o, sent, entry }) = st.pending.as_deref() {
                        if *o == op {
                            // The peer applies what it queued before
                            // anything this side sends after it (in order,
                            // at the unlock): that is the base of this
                            // side's next change (plain seeds 1054401,
                            // 1417540: B's file queued at A, then chmodded
                            // at B; B's next offer named no base, and A,
                            // which had replayed the first one by then,
                            // took the chmod for a conflict, won on the
                            // equal time and sent B's file back without
                            // it).
                            st.peer = Some(Box::new(sent.clone()));
                            st.pending = Some(Box::new(Pending::Held {
                                sent: sent.clone(),
                                entry: entry.clone(),
                            }));
                            // An edit seen while the offer was in flight
                            // waited for this answer: it goes now.
                            self.consider(&path, false);
                        }
                    }
                }
            }
        }
    }

    /// Sends the peer an answer; a `Stored` sent while reconciling may
    /// count in the decision to come (see `LinkPhase::answered`).
    pub(super) fn reply(&mut self, msg: PeerMsg) {
        // (Only a reconciliation in progress keeps what was answered.)
        let reconciling = matches!(self.link, LinkPhase::Reconciling { .. });
        if let (PeerMsg::Stored { path, landed, .. }, true) = (&msg, reconciling) {
            let local = self.paths.get(path).and_then(|s| s.local.clone());
            let now = super::answers::landed_holding(landed);
            self.link
                .answered(super::state::Answered::Here { local }, path, now);
        }
        self.emit(Effect::Send(msg));
    }

    fn locked(&self, path: &str) -> bool {
        self.cfg.side == Side::A && self.paths.get(path).is_some_and(|s| s.lock.is_some())
    }

    /// Whether `path` or a path under it is locked (a folder move would
    /// carry a locked path away, or onto a locked name).
    fn locked_within(&self, path: &str) -> bool {
        self.cfg.side == Side::A
            && self
                .paths
                .range(path.to_string()..)
                .take_while(|(p, _)| *p == path || p.starts_with(path))
                .any(|(p, s)| s.lock.is_some() && (p == path || is_under(p, path)))
    }

    /// The peer offers `theirs` (a version or a delete) at `path`, in place
    /// of `base`.
    fn incoming(&mut self, op: OpId, path: String, base: Option<Version>, theirs: Holding) {
        // A name this folder cannot hold: refused for good, never written
        // over another file (see `names`).
        if theirs.version().is_some() {
            if let Some(why) = self.cannot_store(&path, None) {
                let holds = self.paths.get(&path).map_or(
                    Holding::Absent { deleted_ns: None },
                    super::state::holding_of,
                );
                self.refuse_name(&path, &why);
                self.reply(PeerMsg::Refused {
                    op,
                    path,
                    holds,
                    why: Refusal::Failed {
                        error: why,
                        retry: false,
                    },
                });
                return;
            }
        }
        self.peer_names(&path);
        if self.locked(&path) {
            // (A queued remove frees the clashing names at its replay:
            // `finish_entry`.)
            self.enqueue(op, &path, theirs);
            return;
        }
        // A locked path inside (a folder replaced or removed) or above (a
        // locked name that this would make a folder): not now; the peer
        // offers it again after the unlock.
        if self.locked_within(&path)
            || ancestors(&path).any(|a| self.locked(a))
            || self.locked_as_another(&path, false)
        {
            let holds = self.paths.get(&path).map_or(
                Holding::Absent { deleted_ns: None },
                super::state::holding_of,
            );
            self.refuse_for_now(op, path, holds, "held by a lock");
            return;
        }
        let precision = self.precision();
        let side = self.cfg.side;
        // A folder above being changed by an install or a remove: not now.
        // Except a folder being made where there is none, or is one: an
        // install under it comes after it in the executor's order (and
        // makes a missing folder itself). Refused, a new tree's files
        // waited for the retry, a second or more each, whenever the
        // executor held the folder's install to the end of its burst
        // (sync/exec.rs `Exec::hold`): the initial sync of 10,000 files
        // in 100 folders took twice as long.
        let parent_busy = ancestors(&path).any(|a| {
            self.paths
                .get(a)
                .is_some_and(|s| match s.pending.as_deref() {
                    Some(Pending::Applying {
                        target: Holding::Present(v),
                        ..
                    }) if v.kind == Kind::Dir => {
                        s.local.as_ref().is_some_and(|e| e.kind != Kind::Dir)
                    }
                    Some(Pending::Applying { .. }) => true,
                    _ => false,
                })
        });
        // A name this side neither holds nor agreed on (new here, or
        // one whose copy here moved away with its folder: the peer's
        // offer names it as its base, strict seeds 79764, 85719), under
        // a folder the two agreed on and that is gone from this side's
        // disk (moved or deleted by a user), that change not gone across
        // yet: installed now, it would make the folder anew here, while
        // the peer's copy stays in the old folder, which this side's
        // move then carries away at the peer (strict seed 15161: A's `d`
        // moved to `a`, B's new `d/b` landed in a new `d` at A, and went
        // back to B, an echo). Refused for now: this side's change goes
        // first, then the peer offers its copy again where it is (under
        // the folder's new name, or in a folder the peer kept for it
        // when this side's delete of it is refused).
        let unknown_here = self.paths.get(&path).is_none_or(|s| {
            s.base.is_none()
                && s.local.is_none()
                && matches!(s.pending.as_deref(), None | Some(Pending::Held { .. }))
        });
        if unknown_here && theirs.version().is_some() && self.folder_gone_here_unsent(&path) {
            let holds = Holding::Absent { deleted_ns: None };
            self.refuse_for_now(op, path, holds, "its folder changed here; offered again");
            return;
        }
        if theirs.version().is_some() && self.file_above(&path) {
            let holds = self.paths.get(&path).map_or(
                Holding::Absent { deleted_ns: None },
                super::state::holding_of,
            );
            self.refuse_for_now(op, path, holds, "a file here above it; offered again");
            return;
        }
        // The peer's delete of a folder this side holds no entry for,
        // but names under it that it does hold (a folder made here by a
        // user, its names seen before it: plain seed 1087408, B's `e/b`
        // made by a rename into a new `e`, B's core not yet aware of `e`
        // itself): not "both absent", the folder is on this side's disk.
        // Answered as the same, the peer forgot what it holds under it,
        // took the copy it had installed of this side's name for a new
        // one of its own and sent it back. Refused for now: once this
        // side sees the folder, the peer's delete meets it as it is.
        if theirs.version().is_none()
            && self.paths.get(&path).is_none_or(|s| s.local.is_none())
            && self.has_local_children(&path)
        {
            let holds = self.paths.get(&path).map_or(
                Holding::Absent { deleted_ns: None },
                super::state::holding_of,
            );
            self.refuse_for_now(op, path, holds, "a folder here not seen yet; offered again");
            return;
        }
        let st = self.paths.entry(path.clone()).or_default();
        if parent_busy || matches!(st.pending.as_deref(), Some(Pending::Applying { .. })) {
            let holds = st.holding();
            self.refuse_for_now(op, path, holds, "busy");
            return;
        }
        // An offer of a file of this side's in flight, the file moved or
        // deleted by a user since (which, not known yet): the peer's copy
        // landing in the emptied name, the peer (which takes this side's
        // offer) would send this side's file back, undoing the move
        // (seeds 19643, 58666). Refused for now; once this side's change
        // has gone across, the peer offers its copy again if it still
        // holds it. (Not for a folder: seed 10568 then never settled.)
        // The same for a file made a folder since, or another file put in
        // its place (plain seed 316912: B's `e` offered, then made a
        // folder; A's new folder `e`, crossing it, was agreed at B as the
        // same, while A installed B's file over its own and sent it back
        // to B once B's answer came; plain seed 526638: B's `d/z.`
        // offered, then swapped with another file, which lost to A's
        // crossing copy at B, while A took B's offer).
        let offered_file_gone = st.file_in_flight().is_some_and(|entry| {
            st.local
                .as_ref()
                .is_none_or(|e| e.kind != Kind::File || entry.is_some_and(|o| o.id != e.id))
        });
        if offered_file_gone {
            let holds = st.holding();
            self.refuse_for_now(op, path, holds, "changed here meanwhile; offered again");
            return;
        }
        let mut mine_now = st.holding();
        // Unchanged here since the two agreed: the agreed content, whose
        // hash is known even where the stat has none (a copy a lock's
        // replay installed, found again after a restart, offered back by
        // the peer that sent it: the same, not a look-alike to install).
        if let (Holding::Present(v), Some(b)) = (&mut mine_now, &st.base) {
            if v.hash.is_none() && v.kind == Kind::File && !st.changed_here() {
                v.hash = b.version.hash.clone();
            }
        }
        // A new name this side offered on an earlier link, that the peer
        // stored as agreed, the answer lost with that link: this side's
        // file is the base the peer names, not a change made here (else a
        // delete or an edit the peer's user made since lost to it, and a
        // deleted file came back). The reconciliation decided so, and
        // holds the path for the peer's change; an offer crossing one of
        // this side's on a live link is no such thing (seed 46).
        let stored_unheard = st.base.is_none()
            && st.offered
            && matches!(st.pending.as_deref(), Some(Pending::Held { .. }))
            && base.is_some();
        let changed = (st.changed_here() && !stored_unheard)
            || !matches(st.local.as_ref(), base.as_ref(), precision);
        let local_hash_unknown =
            matches!(&mine_now, Holding::Present(v) if v.hash.is_none() && v.kind == Kind::File);
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
                        self.agree_parents(&path);
                        self.reply(PeerMsg::Stored { op, path, landed });
                    }
                    _ => {
                        self.forget(&path);
                        // (Nothing at the peer: names refused there for
                        // clashing with it may fit now, seed 41421.)
                        if theirs.version().is_none() {
                            self.name_freed(&path);
                        }
                        let parent = ancestors(&path).next().map(str::to_string);
                        self.reply(PeerMsg::Stored {
                            op,
                            path,
                            landed: None,
                        });
                        // Both removed it: a folder above that waited for
                        // it may go now (seed 27226: not until a rescan).
                        if let Some(parent) = parent.filter(|_| theirs.version().is_none()) {
                            self.consider(&parent, false);
                        }
                    }
                }
            }
            Winner::Mine => {
                let st = self.paths.get_mut(&path).expect("made above");
                st.peer = Some(Box::new(theirs));
                // An offer of ours in flight crossed theirs: the peer judges
                // it by the same rule and takes it. Offering again would
                // land the same version twice there.
                if !matches!(st.pending.as_deref(), Some(Pending::Offered { .. })) {
                    st.pending = None;
                }
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
        st.pending = Some(Box::new(Pending::Applying {
            op,
            reply_to: Some(reply_to),
            target: theirs.clone(),
        }));
        match (theirs, local) {
            (Holding::Present(version), expect) => {
                self.paths.get_mut(path).expect("known").landing = Some(Box::new(version.clone()));
                self.record(path);
                self.emit(Effect::Install {
                    op,
                    path: path.to_string(),
                    version,
                    source,
                    expect,
                    keep,
                })
            }
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

    /// Refuses the peer's `op` at `path` for a retry (`error` says why):
    /// the peer offers it again later.
    fn refuse_for_now(&mut self, op: OpId, path: String, holds: Holding, error: &str) {
        self.reply(PeerMsg::Refused {
            op,
            path,
            holds,
            why: Refusal::Failed {
                error: error.into(),
                retry: true,
            },
        });
    }

    /// Whether a folder above `path` is agreed and gone from this side's
    /// disk, and this side's change of it (a move or a delete) has not
    /// gone across yet: not sent, or sent and not answered. Not once the
    /// peer refused this side's delete of a folder above (held back for
    /// the peer's copy: its folder grew, seed 3475): the peer keeps that
    /// folder, and what it holds lands here. (A folder above held back
    /// for another reason, such as a reconciliation that gave the name
    /// to the peer, is no such answer: seed 15971.)
    fn folder_gone_here_unsent(&self, path: &str) -> bool {
        let state = |a: &str| self.paths.get(a);
        let gone = |a: &str| {
            state(a).is_some_and(|s| {
                s.local.is_none()
                    && s.base.as_ref().is_some_and(|b| b.version.kind == Kind::Dir)
                    && matches!(s.pending.as_deref(), None | Some(Pending::Offered { .. }))
            })
        };
        let held = |a: &str| {
            state(a).is_some_and(|s| {
                s.local.is_none()
                    && s.base.is_some()
                    && matches!(
                        s.pending.as_deref(),
                        Some(Pending::Held {
                            sent: Holding::Absent { .. },
                            ..
                        })
                    )
            })
        };
        // (Nor once the peer refused it for good, "folder not empty":
        // this side's change of it goes no more, plain seeds 147774,
        // 149571, 154197.)
        let refused = |a: &str| self.unsent.contains_key(a);
        ancestors(path).any(gone) && !ancestors(path).any(|a| held(a) || refused(a))
    }

    /// Whether a name above `path` is, as this side knows it, a file: one
    /// on its disk, or one of its own in flight to the peer (deleted
    /// here since). The peer's name under it, installed now, would make
    /// that folder anew here while the peer takes this side's file, whose
    /// answer then forgets what is under it (a file both hold) and the
    /// installed copy, found again, goes back as a new name of this
    /// side's (NFD seed 93082: A's file `d` won over B's folder `d`, A's
    /// user deleted it, A installed B's `d/é`, and sent it back to B).
    /// Refused for now, as the executor refuses an install over a file:
    /// the file's change goes first, then the peer offers its name again
    /// if it still holds it.
    fn file_above(&self, path: &str) -> bool {
        ancestors(path).any(|a| {
            self.paths.get(a).is_some_and(|s| match &s.local {
                Some(e) => e.kind == Kind::File,
                None => s.file_in_flight().is_some(),
            })
        })
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
        let ok = !self.locked_within(&from)
            && !self.locked_within(&to)
            && !ancestors(&to).any(|a| self.locked(a))
            && !self.locked_as_another(&from, false)
            && !self.locked_as_another(&to, false)
            && self.paths.get(&from).is_some_and(|s| {
                s.pending.is_none()
                    && !s.changed_here()
                    && matches(s.local.as_ref(), Some(&base), precision)
            })
            && self
                .paths
                .get(&to)
                .is_none_or(|s| s.local.is_none() && s.pending.is_none())
            // (A name this folder cannot hold is refused with the offer.)
            && self.cannot_store(&to, Some(&from)).is_none();
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
        self.paths.get_mut(&from).expect("checked").pending = Some(Box::new(Pending::Applying {
            op: mine,
            reply_to: Some(op),
            target: Holding::Absent { deleted_ns: None },
        }));
        self.paths.entry(to.clone()).or_default().pending = Some(Box::new(Pending::Applying {
            op: mine,
            reply_to: Some(op),
            target,
        }));
        self.emit(Effect::Rename {
            op: mine,
            from,
            to,
            expect,
        });
    }
}
