//! Server A's locks as core inputs. From the `Lock` input on, the peer's
//! updates of the path are queued (each once, in arrival order), never
//! applied; `Unlock` replays the queue one entry at a time, the path still
//! gated, then lets it sync as any other.

use super::local::{ancestors, is_under};
use super::model::coarse;
use super::{
    Core, Direction, Effect, Holding, LockState, OpId, Outcome, PeerMsg, Queued, Replayed, Source,
};

impl Core {
    pub(super) fn lock(&mut self, path: String) {
        let st = self.paths.entry(path.clone()).or_default();
        if st.lock.is_none() {
            // (Numbered on from the path's last lock: see
            // `PathState::queued_through`.)
            st.lock = Some(Box::new(LockState {
                next_seq: u64::from(st.queued_through),
                ..LockState::default()
            }));
            self.locked.insert(path.clone());
            self.record(&path);
            self.announce("locked", Direction::Here, &path, None, String::new());
        }
    }

    pub(super) fn unlock(&mut self, path: String) {
        let Some(lock) = self.paths.get_mut(&path).and_then(|s| s.lock.as_mut()) else {
            self.emit(Effect::Unlocked {
                path,
                replayed: Vec::new(),
            });
            return;
        };
        if !lock.unlocking {
            lock.unlocking = true;
            self.record(&path);
            self.replay_next(&path);
            // This path no longer holds back replays above or below it.
            self.resume_unlocks();
        }
    }

    /// Whether `path` is locked and not being unlocked: no update from
    /// the peer may reach it, not even a replay of another path's queue.
    pub(super) fn held(&self, path: &str) -> bool {
        self.paths
            .get(path)
            .and_then(|s| s.lock.as_ref())
            .is_some_and(|l| !l.unlocking)
    }

    /// Whether replaying an update at `path` would reach a held path: a
    /// folder above it (made or replaced on the way) or a path under it
    /// (carried away with a folder it replaces).
    fn replay_blocked(&self, path: &str) -> bool {
        self.locked_as_another(path, true)
            || ancestors(path).any(|a| self.held(a))
            || self
                .paths
                .range(format!("{path}/")..)
                .take_while(|(p, _)| is_under(p, path))
                .any(|(p, _)| self.held(p))
    }

    /// Whether replaying `update` at `path` would make anew a folder above
    /// it that both sides agreed on and that this side's user moved
    /// since, before that move reached the peer (strict seed
    /// 1411: B's new file `e/b`, queued at A's lock; A's user renamed
    /// `e` to `A`; the unlock's replay made `e` again, the rename then
    /// carried B's copy to `A/b`, and A sent `e/b` back). The replay waits
    /// for the peer's answer: the move carries the queued update along
    /// (it is superseded, the peer's copy now under the new name). (Not a
    /// folder deleted here: the peer's new file outlives the delete and
    /// makes it again, seeds 569, 77770; nor a move held back for the
    /// peer's change or waiting to be retried.)
    fn folder_leaving(&self, path: &str, update: &Holding) -> bool {
        update.version().is_some()
            && ancestors(path).any(|a| {
                self.paths.get(a).is_some_and(|s| {
                    s.local.is_none()
                        && s.based_id.is_some_and(|id| self.moving_to(id))
                        && !matches!(
                            s.pending.as_deref(),
                            Some(super::Pending::Held { .. } | super::Pending::Retrying)
                        )
                })
            })
    }

    /// Whether the folder that was agreed as `id` here is at another name
    /// now that is not agreed as it yet: a move not yet settled. (Once
    /// the new name is agreed, the old one's record is stale, and waiting
    /// for it would wait for good: case seed 4622.)
    fn moving_to(&self, id: super::FileId) -> bool {
        self.ids.get(&id).is_some_and(|set| {
            set.iter()
                .any(|p| self.paths.get(p).is_some_and(|s| s.based_id != Some(id)))
        })
    }

    /// Unlocks that wait go on: at start (a crash interrupted them), and
    /// whenever a lock that held a replay back is released or starts
    /// unlocking. (Not a path whose replay is under way: its outcome goes
    /// on with it.)
    pub(super) fn resume_unlocks(&mut self) {
        let waiting = |s: &super::PathState| {
            s.lock.as_ref().is_some_and(|l| l.unlocking)
                && !matches!(s.pending.as_deref(), Some(super::Pending::Applying { .. }))
        };
        let paths: Vec<String> = (self.locked.iter())
            .filter(|p| self.paths.get(*p).is_some_and(|s| waiting(s)))
            .cloned()
            .collect();
        for p in paths {
            // (One finished meanwhile may have let this one go already.)
            if self.paths.get(&p).is_some_and(|s| waiting(s)) {
                self.replay_next(&p);
            }
        }
    }

    /// The peer's update of locked `path` (its operation `op`) joins the queue.
    pub(super) fn enqueue(&mut self, op: OpId, path: &str, update: Holding) {
        let precision = self.precision();
        let st = self.paths.get_mut(path).expect("locked paths are known");
        let held = st.holding();
        let lock = st.lock.as_mut().expect("locked");
        let again = lock
            .queue
            .last()
            .is_some_and(|q| super::local::holdings_agree(&q.update, &update, precision));
        if !again {
            let seq = lock.next_seq + 1;
            lock.next_seq = seq;
            lock.queue.push(Queued {
                seq,
                update: update.clone(),
                peer_op: op,
                held: Some(held.clone()),
            });
            let size = update.version().map(|v| v.size);
            self.emit(Effect::Queue {
                path: path.to_string(),
                seq,
                update: update.clone(),
                peer_op: op,
                held: Some(held),
            });
            self.record(path);
            let what = if update.version().is_some() {
                "write"
            } else {
                "delete"
            };
            self.announce(
                "queued",
                Direction::In,
                path,
                size,
                format!("{what} held by a lock"),
            );
        }
        self.emit(Effect::Send(PeerMsg::Queued {
            op,
            path: path.to_string(),
        }));
    }

    /// The peer acknowledged a change of `path` made here: every update
    /// it queued so far for `path`, or for a path under it (a folder moved
    /// away or replaced carries them along), is older than that change
    /// (see [`super::LockState::superseded_through`]). `under`: the paths
    /// under it too; not for a folder that stays where it is (seed 180: a
    /// folder `e` made at A, which B already held, superseded B's new file
    /// `e/a` queued at A's lock; both sides then held `e/a` back for the
    /// other's offer, for good).
    pub(super) fn supersede_queue(&mut self, path: &str, under: bool) {
        let locked: Vec<String> = self
            .paths
            .range(path.to_string()..)
            .take_while(|(p, _)| p.as_str() == path || p.starts_with(path))
            .filter(|(p, s)| s.lock.is_some() && (p.as_str() == path || under && is_under(p, path)))
            .map(|(p, _)| p.clone())
            .collect();
        for p in locked {
            let Some(lock) = self.paths.get_mut(&p).and_then(|s| s.lock.as_mut()) else {
                continue;
            };
            if lock.superseded_through < lock.next_seq {
                lock.superseded_through = lock.next_seq;
                self.record(&p);
            }
        }
    }

    /// Replays the next queued update of `path`, or ends the unlock.
    fn replay_next(&mut self, path: &str) {
        let precision = self.precision();
        loop {
            let st = &self.paths[path];
            let lock = st.lock.as_ref().expect("unlocking");
            let Some(q) = lock.queue.first().cloned() else {
                break;
            };
            let local = st.local.clone();
            // Superseded by a change here after the update arrived: one the
            // peer acknowledged since (it moved on past its update), or an
            // edit not yet acknowledged (this side holds neither what it
            // held then nor what the unlock replayed last, also across a
            // crash: `replayed_here`) that is later than the update. A copy
            // A merely held loses to the peer's change, whatever its time,
            // as anywhere else.
            let acknowledged_since = q.seq <= lock.superseded_through;
            let now = st.holding();
            let agree = |h: &Holding| super::local::holdings_agree(h, &now, precision);
            let last_applied = self
                .replays
                .get(path)
                .and_then(|r| r.iter().rev().find(|x| x.outcome == "applied"));
            let replayed = local
                .as_ref()
                .zip(lock.replayed_here.as_ref())
                .is_some_and(|(l, r)| l.same_here(r));
            let edited = !replayed
                && !q.held.as_ref().is_some_and(agree)
                && !last_applied.is_some_and(|x| agree(&x.update));
            let local_t = local
                .as_ref()
                .filter(|_| edited)
                .map(|e| coarse(e.mtime_ns, precision));
            // What the path holds, with the agreed content's hash where
            // the stat has none (seed 2540: a look-alike queued after the
            // update the replay had just installed was taken for it).
            let mut here_v = local.as_ref().map(|l| l.version());
            if let (Some(v), Some(b)) = (here_v.as_mut(), st.base.as_ref()) {
                let agreed = b.here.as_ref().zip(local.as_ref());
                if v.hash.is_none() && agreed.is_some_and(|(h, l)| h.same_here(l)) {
                    v.hash = st.agreed_hash();
                }
            }
            let (already, later_here) = match (&q.update, &local) {
                (Holding::Present(v), Some(_)) => (
                    here_v.as_ref().is_some_and(|h| h.same_as(v, precision)),
                    local_t > Some(coarse(v.mtime_ns, precision)),
                ),
                // Gone here after it arrived (deleted, moved away): the
                // later change, unless the delete's time says otherwise.
                (Holding::Present(v), None) => (
                    false,
                    edited && q.held.is_some() && st.deleted_ns.is_none_or(|t| t > v.mtime_ns),
                ),
                (Holding::Absent { .. }, None) => (true, false),
                (Holding::Absent { deleted_ns }, Some(_)) => (
                    false,
                    deleted_ns.is_some_and(|t| local_t > Some(coarse(t, precision))),
                ),
            };
            let superseded = !already && (acknowledged_since || later_here);
            if already || superseded {
                if already && local.is_some() {
                    // Installed before a crash, its cursor not yet written:
                    // what the path holds is the replay's own doing.
                    let lock = self.paths.get_mut(path).and_then(|s| s.lock.as_mut());
                    if let Some(lock) = lock {
                        lock.replayed_here = local;
                    }
                }
                if superseded && !acknowledged_since {
                    // The peer holds this update (it waits for the answer,
                    // its copy held back): this side's copy, or its
                    // delete, goes across against it (seed 22314: A's own
                    // new file deleted after B's update of it arrived;
                    // B's copy stayed held for good). What this side held
                    // back for the peer's offer, that offer was (seed
                    // 30968): no longer held.
                    let st = self.paths.get_mut(path).expect("unlocking");
                    st.peer = Some(Box::new(q.update.clone()));
                    if matches!(st.pending.as_deref(), Some(super::Pending::Held { .. })) {
                        st.pending = None;
                    }
                }
                let outcome = if already { "applied" } else { "superseded" };
                self.finish_entry(path, &q, outcome);
                continue;
            }
            if self.replay_blocked(path) || self.folder_leaving(path, &q.update) {
                // Held back by a lock above or below: goes on when that
                // lock is released (`resume_unlocks`); or by a folder
                // above, moved here and not yet agreed at its new name:
                // goes on once the peer answers the move.
                return;
            }
            let source = Source::Queued { seq: q.seq };
            self.apply(q.peer_op, path, q.update.clone(), false, source);
            return;
        }
        let side = self.cfg.side;
        let st = self.paths.get_mut(path).expect("unlocking");
        if let Some(lock) = st.lock.take() {
            let through = u32::try_from(lock.next_seq).unwrap_or(u32::MAX);
            st.queued_through = st.queued_through.max(through);
        }
        self.locked.remove(path);
        // Whatever this side held back while the lock queued the peer's
        // updates is decided again now: a superseded update leaves this
        // side's copy to go across. (Not a copy held back for the peer's
        // change that wins by the rule, as reconciliation decided it:
        // the peer sends that one, and offering ours would echo.)
        if matches!(st.pending.as_deref(), Some(super::Pending::Held { .. }))
            && !peer_wins(st, side, precision)
        {
            st.pending = None;
        }
        self.record(path);
        let replayed = self.replays.remove(path).unwrap_or_default();
        self.announce(
            "unlocked",
            Direction::Here,
            path,
            None,
            match replayed.len() {
                1 => "1 queued update replayed".to_string(),
                n => format!("{n} queued updates replayed"),
            },
        );
        self.emit(Effect::Unlocked {
            path: path.to_string(),
            replayed,
        });
        self.consider(path, false);
        self.resume_unlocks();
    }

    /// Queue entry `q` is done with: forget it, say how it went.
    fn finish_entry(&mut self, path: &str, q: &Queued, outcome: &'static str) {
        if let Some(lock) = self.paths.get_mut(path).and_then(|s| s.lock.as_mut()) {
            lock.queue.retain(|e| e.seq != q.seq);
        }
        self.emit(Effect::Dequeue {
            path: path.to_string(),
            seq: q.seq,
        });
        self.record(path);
        let size = q.update.version().map(|v| v.size);
        let what = if q.update.version().is_some() {
            "write"
        } else {
            "delete"
        };
        self.announce(
            outcome,
            Direction::In,
            path,
            size,
            format!("queued {what} #{}", q.seq),
        );
        self.replays
            .entry(path.to_string())
            .or_default()
            .push(Replayed {
                seq: q.seq,
                update: q.update.clone(),
                outcome,
            });
        // A queued delete is done with: the peer holds nothing there, so
        // this side's names it refused for clashing with that one may fit
        // now, as when a delete is taken unlocked (strict case/NFD seed
        // 10589: B's `é` moved away, its "remove against nothing" queued
        // by A's lock on `é`; A's NFD folder, refused for B's `é`, stayed
        // unsent for good).
        if q.update.version().is_none() {
            self.name_freed(path);
        }
    }

    /// The effect replaying the head of `path`'s queue finished.
    pub(super) fn replayed(&mut self, path: &str, target: Holding, outcome: Outcome) {
        let Some(q) = self
            .paths
            .get(path)
            .and_then(|s| s.lock.as_ref())
            .and_then(|l| l.queue.first().cloned())
        else {
            return;
        };
        match outcome {
            Outcome::Applied { landed, .. } => {
                let was_dir = self
                    .paths
                    .get(path)
                    .and_then(|s| s.local.as_ref())
                    .is_some_and(|e| e.kind == super::Kind::Dir);
                if was_dir && !landed.as_ref().is_some_and(|e| e.kind == super::Kind::Dir) {
                    self.forget_under(path);
                }
                self.set_local(path, landed.clone());
                let st = self.paths.get_mut(path).expect("known");
                st.pending = None;
                // What the peer held before is stale now: the replayed
                // update is the newest it sent (else the copy goes back).
                st.peer = None;
                let landed_v = match (&landed, target.version()) {
                    (Some(e), Some(v)) => {
                        st.base = Some(super::Base {
                            version: v.clone(),
                            here: Some(e.clone()),
                        });
                        Some(e.version())
                    }
                    _ => {
                        st.base = None;
                        None
                    }
                };
                st.deleted_ns = None;
                if let Some(lock) = st.lock.as_mut() {
                    lock.replayed_here = landed.clone();
                }
                self.finish_entry(path, &q, "applied");
                if self.link.peer().is_some() {
                    let stored = landed_v.is_some();
                    // (Through `reply`, as every `Stored`: sent while
                    // reconciling, before this side's hashes, the peer
                    // decides on it and so does this side. NFD seed 38421:
                    // A's inventory went without `A`, then A replayed B's
                    // queued `A` and answered; B, which had moved its `A`
                    // away, sent a delete, while A took its copy for a new
                    // name and sent it back to B, an echo.)
                    self.reply(PeerMsg::Stored {
                        op: q.peer_op,
                        path: path.to_string(),
                        landed: landed_v,
                    });
                    if stored {
                        self.offer_folders_held_above(path);
                    }
                }
            }
            Outcome::Mismatch { found } => {
                self.paths.get_mut(path).expect("known").pending = None;
                // A change of its own, seen now: it waits to be quiet
                // (seed 161466 sent a file A was still writing).
                self.changed(path, found, false, false);
            }
            Outcome::Failed { error, .. } => {
                let st = self.paths.get_mut(path).expect("known");
                st.pending = None;
                let holds = st.holding();
                self.announce("error", Direction::In, path, None, error.clone());
                self.finish_entry(path, &q, "failed");
                // The peer holds its change back for this answer (it was
                // queued): told it did not land, it offers it again
                // (seed 1966: a queued file under a name that was a file
                // here, which the peer's folder then replaced; the file
                // stayed held at the peer for good).
                if self.link.peer().is_some() {
                    self.reply(PeerMsg::Refused {
                        op: q.peer_op,
                        path: path.to_string(),
                        holds,
                        why: super::Refusal::Failed { error, retry: true },
                    });
                }
            }
            Outcome::Sent { .. } => {}
        }
        self.replay_next(path);
    }
}

impl Core {
    /// The replay at `path` was answered `Stored`: the peer, on hearing
    /// it, agrees every folder above that it holds (`agree_parents`), and
    /// offers none of them. A folder above that this side holds back for
    /// the peer's offer of a folder would wait for good (NFD seed 96876:
    /// both made `é`; A refused B's winning offer of it while `é/b` was
    /// locked, and held its own back; B's `é/b`, queued, was replayed and
    /// B took `é` as agreed: A's went across only with the rescan a
    /// minute later). It is offered now, against the peer's folder: the
    /// peer takes it as the same folder, and its answer agrees it here.
    /// (Not agreed here at once: were the `Stored` lost with the link,
    /// this side alone would take the folder as agreed, plain seed 152730.)
    fn offer_folders_held_above(&mut self, path: &str) {
        let is_dir = |h: Option<&Holding>| matches!(h, Some(Holding::Present(v)) if v.kind == super::Kind::Dir);
        let held: Vec<String> = ancestors(path)
            .filter(|a| {
                self.paths.get(*a).is_some_and(|s| {
                    s.base.is_none()
                        && s.local.as_ref().is_some_and(|e| e.kind == super::Kind::Dir)
                        // (Or let go already by another replay under it,
                        // whose install was then still under way: plain
                        // seed 71555.)
                        && matches!(s.pending.as_deref(), None | Some(super::Pending::Held { .. }))
                        && is_dir(s.peer.as_deref())
                })
            })
            .map(str::to_string)
            .collect();
        for a in held {
            if let Some(st) = self.paths.get_mut(&a) {
                st.pending = None;
            }
            self.consider(&a, false);
        }
    }
}

/// Whether the peer's copy of `st` (as it last said) wins against this
/// side's by [`super::rule::winner`].
fn peer_wins(st: &super::PathState, side: super::Side, precision: u64) -> bool {
    use super::rule::{winner, View, Winner};
    let Some(theirs) = &st.peer else {
        return false;
    };
    let base = st.base.as_ref().map(|b| &b.version);
    let their_changed = match (theirs.version(), base) {
        (Some(t), Some(b)) => !t.same_as(b, precision),
        (None, None) => false,
        _ => true,
    };
    let mine_now = st.holding();
    let mine = View {
        now: &mine_now,
        changed: st.changed_here(),
    };
    let theirs = View {
        now: theirs,
        changed: their_changed,
    };
    winner(mine, theirs, side, precision) == Winner::Theirs
}
