//! The link's phases. At link-up each side sends a digest of what it
//! agreed with the peer; two equal digests from clean sides end it there.
//! Otherwise each sends its inventory (what it holds, and whether that
//! changed since the two last agreed); once it has the peer's, it
//! applies [`super::rule::winner`] to every path. Both get the same answer: paths that agree get a new base, the winner of each
//! other path offers its version (once quiet), the loser waits for it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::local::same_state;
use super::model::coarse;
use super::rule::{self, View, Winner};
use super::state::Sent;
use super::{
    Base, Core, Digest, Effect, FsTraits, Holding, InvEntry, Kind, LinkPhase, PeerMsg, Pending,
};

/// Paths per inventory message.
const CHUNK: usize = 2_000;

impl Core {
    pub(super) fn link_up(&mut self, peer: FsTraits) {
        self.end_waits();
        let precision = peer.precision_ns.max(self.cfg.fs.precision_ns);
        let mine = self.digest_of(precision);
        self.link = LinkPhase::Reconciling {
            peer,
            mine: mine.clone(),
            theirs: BTreeMap::new(),
            listed: false,
            hashes_sent: false,
            their_hashes: None,
            sent: BTreeMap::new(),
        };
        self.emit(Effect::Send(PeerMsg::Digest(mine)));
    }

    /// This side's digest: its agreed paths, and whether it is clean.
    fn digest_of(&self, precision: u64) -> Digest {
        let mut h = blake3::Hasher::new();
        let mut entries = 0u64;
        let mut clean = true;
        // One buffer for every path's line (a big tree's digest made
        // no string per path).
        let mut line = String::new();
        for (p, st) in &self.paths {
            clean &= !st.changed_here() && st.pending.is_none() && st.lock.is_none() && !st.offered;
            if let Some(b) = &st.base {
                entries += u64::from(b.version.kind == Kind::File);
                let v = &b.version;
                let kind = match v.kind {
                    Kind::File => "f",
                    Kind::Dir => "d",
                };
                let (size, t) = match v.kind {
                    Kind::File => (v.size, coarse(v.mtime_ns, precision)),
                    Kind::Dir => (0, 0),
                };
                line.clear();
                let _ = writeln!(line, "{p}\0{kind}\0{size}\0{t}");
                h.update(line.as_bytes());
            }
        }
        Digest {
            digest: h.finalize().to_hex().to_string(),
            entries,
            clean,
        }
    }

    pub(super) fn digest(&mut self, theirs: Digest) {
        let LinkPhase::Reconciling { peer, mine, .. } = &self.link else {
            return;
        };
        if mine.clean && theirs.clean && mine.digest == theirs.digest {
            let agreed = mine.entries as usize;
            self.link = LinkPhase::Live { peer: *peer };
            self.emit(Effect::Reconciled {
                agreed,
                to_send: 0,
                by_digest: true,
            });
            self.consider_all();
            return;
        }
        let mut entries: Vec<InvEntry> = self
            .paths
            .iter()
            .filter(|(_, s)| s.local.is_some() || s.base.is_some())
            .map(|(p, s)| {
                let changed = s.changed_here();
                InvEntry {
                    path: p.clone(),
                    now: s.holding(),
                    changed,
                    base: s
                        .base
                        .as_ref()
                        .filter(|_| changed)
                        .map(|b| b.version.clone()),
                    offered: s.offered && s.base.is_none(),
                }
            })
            .collect();
        // A new name this side offered, whose answer the link's drop
        // lost, and that is gone here since: the peer may have stored it
        // and taken it as agreed, so it is a delete made here (seed 1235:
        // reported as nothing, the peer's copy came back, resurrecting
        // what the user had deleted).
        let mut gone: Vec<InvEntry> = self
            .ops
            .values()
            .filter(|o| o.from.is_none() && o.lost.is_some())
            .filter(|o| {
                self.paths
                    .get(&o.path)
                    .is_none_or(|s| s.local.is_none() && s.base.is_none())
            })
            .map(|o| InvEntry {
                path: o.path.clone(),
                now: Holding::Absent { deleted_ns: None },
                changed: true,
                base: None,
                offered: false,
            })
            .collect();
        // The same after a restart: its offer was journalled.
        gone.extend(
            self.paths
                .iter()
                .filter(|(_, s)| s.offered && s.local.is_none() && s.base.is_none())
                .map(|(p, _)| InvEntry {
                    path: p.clone(),
                    now: Holding::Absent { deleted_ns: None },
                    changed: true,
                    base: None,
                    offered: false,
                }),
        );
        gone.sort_by(|a, b| a.path.cmp(&b.path));
        gone.dedup_by(|a, b| a.path == b.path);
        if !gone.is_empty() {
            entries.extend(gone);
            entries.sort_by(|a, b| a.path.cmp(&b.path));
        }
        let snapshot: BTreeMap<String, Sent> = entries
            .iter()
            .map(|e| {
                let local = self.paths.get(&e.path).and_then(|s| s.local.clone());
                let sent = Sent {
                    local,
                    now: e.now.clone(),
                    changed: e.changed,
                    base: e.base.clone(),
                    offered: e.offered,
                };
                (e.path.clone(), sent)
            })
            .collect();
        if let LinkPhase::Reconciling { sent, .. } = &mut self.link {
            *sent = snapshot;
        }
        let n = entries.len().div_ceil(CHUNK).max(1);
        // Moved into the messages, not copied: a big tree's inventory is
        // in memory once.
        let mut entries = entries.into_iter();
        for i in 0..n {
            let entries: Vec<InvEntry> = entries.by_ref().take(CHUNK).collect();
            self.emit(Effect::Send(PeerMsg::Inventory {
                entries,
                last: i + 1 == n,
            }));
        }
        // A side with nothing changed, pending, offered or locked has no
        // look-alike to hash, whatever the peer's inventory holds (see
        // `hash_look_alikes`), and nothing to answer before the decision
        // (the hashes close what counts in it: see `LinkPhase::answered`;
        // regression seed 38421, a lock's replay answered while
        // reconciling): its (empty) hashes go with its inventory. The peer
        // then decides as soon as it has both, instead of waiting until
        // this side has read its whole inventory (row 2, an empty B: A's
        // first offer waited for B to parse A's 10,000 entries, a serial
        // step of the start).
        let quiet = self.locked.is_empty()
            && self.paths.values().all(|s| {
                !s.changed_here() && s.pending.is_none() && s.lock.is_none() && !s.offered
            });
        if quiet {
            self.hashed(Vec::new());
        }
    }

    pub(super) fn link_down(&mut self) {
        self.link = LinkPhase::Down;
        self.end_waits();
    }

    /// A new link, or none: what the peer said and what this side waits
    /// for start over (the next reconciliation decides again). What each
    /// offer sent is kept with its operation, for an answer that comes
    /// all the same (see [`Core::stored`]).
    fn end_waits(&mut self) {
        // (Considered again once live.)
        self.waiting.clear();
        for st in self.paths.values_mut() {
            st.peer = None;
            match st.pending.take().map(|p| *p) {
                Some(Pending::Offered { op, sent, entry }) => {
                    if let Some(of) = self.ops.get_mut(&op) {
                        of.lost = Some(Box::new((sent, entry)));
                    }
                }
                Some(Pending::Held { .. }) => {}
                other => st.pending = other.map(Box::new),
            }
        }
    }

    pub(super) fn inventory(&mut self, entries: Vec<InvEntry>, last: bool) {
        let LinkPhase::Reconciling {
            theirs,
            listed,
            hashes_sent,
            ..
        } = &mut self.link
        else {
            return;
        };
        for e in entries {
            theirs.insert(e.path.clone(), e);
        }
        if last {
            *listed = true;
            if *hashes_sent {
                // Sent with the inventory (see `digest`).
                self.reconcile_if_ready();
            } else {
                self.hash_look_alikes();
            }
        }
    }

    /// With both inventories: the files both sides changed into look-alikes
    /// (same size, time and mode) whose content is not known to be equal
    /// are hashed here, and the hashes go to the peer before anything is
    /// decided. Trees in sync, and copies into an empty folder, hash nothing.
    fn hash_look_alikes(&mut self) {
        let LinkPhase::Reconciling { theirs, .. } = &self.link else {
            return;
        };
        let precision = self.precision();
        let files: Vec<(String, super::Entry)> = theirs
            .values()
            .filter(|t| t.changed)
            .filter_map(|t| {
                let st = self.paths.get(&t.path)?;
                let e = st.local.as_ref()?;
                let v = t.now.version()?;
                let look_alike = may_look_alike(st)
                    && e.version().same_as(v, precision)
                    && !(e.hash.is_some() && v.hash.is_some());
                look_alike.then(|| (t.path.clone(), e.clone()))
            })
            .collect();
        if files.is_empty() {
            self.hashed(Vec::new());
        } else {
            self.emit(Effect::Hash { files });
        }
    }

    /// This side's hashes of look-alikes are known: they go to the peer.
    pub(super) fn hashed(&mut self, hashes: Vec<(String, Option<String>)>) {
        let mut sent = Vec::new();
        for (path, hash) in hashes {
            let Some(hash) = hash else { continue };
            let shared = super::Hash::from(hash.as_str());
            if let Some(e) = self.paths.get_mut(&path).and_then(|s| s.local.as_mut()) {
                e.hash = Some(shared.clone());
            }
            if let LinkPhase::Reconciling { sent, .. } = &mut self.link {
                if let Some(s) = sent.get_mut(&path) {
                    if let Some(l) = s.local.as_mut() {
                        l.hash = Some(shared.clone());
                    }
                    if let Holding::Present(v) = &mut s.now {
                        v.hash = Some(shared);
                    }
                }
            }
            sent.push((path, hash));
        }
        let LinkPhase::Reconciling { hashes_sent, .. } = &mut self.link else {
            return;
        };
        *hashes_sent = true;
        self.emit(Effect::Send(PeerMsg::Hashes { hashes: sent }));
        self.reconcile_if_ready();
    }

    pub(super) fn their_hashes(&mut self, hashes: Vec<(String, String)>) {
        let LinkPhase::Reconciling { their_hashes, .. } = &mut self.link else {
            return;
        };
        *their_hashes = Some(hashes.into_iter().collect());
        self.reconcile_if_ready();
    }

    fn reconcile_if_ready(&mut self) {
        if let LinkPhase::Reconciling {
            listed: true,
            hashes_sent: true,
            their_hashes: Some(_),
            ..
        } = &self.link
        {
            self.reconcile();
        }
    }

    fn reconcile(&mut self) {
        let LinkPhase::Reconciling {
            peer,
            mut theirs,
            their_hashes,
            sent,
            ..
        } = std::mem::take(&mut self.link)
        else {
            return;
        };
        for (path, hash) in their_hashes.unwrap_or_default() {
            if let Some(Holding::Present(v)) = theirs.get_mut(&path).map(|e| &mut e.now) {
                v.hash = Some(hash.into());
            }
        }
        self.link = LinkPhase::Live { peer };
        let precision = self.precision();
        let side = self.cfg.side;
        let paths: BTreeSet<String> = self.paths.keys().chain(theirs.keys()).cloned().collect();
        let nothing = Holding::Absent { deleted_ns: None };
        let (mut agreed, mut to_send) = (0, 0);
        for path in paths {
            let st = self.paths.entry(path.clone()).or_default();
            // This side as its inventory said (see `LinkPhase::Reconciling`).
            let (snap_local, mine_now, my_changed, my_base, my_offer) = match sent.get(&path) {
                Some(s) => (
                    s.local.clone(),
                    s.now.clone(),
                    s.changed,
                    s.base.clone(),
                    s.offered,
                ),
                None => (None, nothing.clone(), false, None, false),
            };
            let (their_now, their_changed, their_base, their_offer) = match theirs.get(&path) {
                Some(e) => (&e.now, e.changed, e.base.as_ref(), e.offered),
                None => (&nothing, false, None, false),
            };
            let mine = View {
                now: &mine_now,
                changed: my_changed && !stored_unheard(&mine_now, my_offer, their_base, precision),
            };
            let their_view = View {
                now: their_now,
                changed: their_changed
                    && !stored_unheard(their_now, their_offer, my_base.as_ref(), precision),
            };
            match rule::winner(mine, their_view, side, precision) {
                Winner::Same => match (&snap_local, their_now.version()) {
                    (Some(e), Some(v)) => {
                        agreed += usize::from(e.kind == Kind::File);
                        let mut version = e.version();
                        version.hash = version.hash.or(v.hash.clone());
                        st.base = Some(Base {
                            version,
                            here: Some(e.clone()),
                        });
                        st.deleted_ns = None;
                        self.record(&path);
                    }
                    _ => {
                        if st.local.is_some() {
                            // Made here after the inventory went: nothing
                            // agreed, a new name that goes across as such.
                            st.base = None;
                            st.deleted_ns = None;
                            self.record(&path);
                        } else if st.base.is_some() {
                            self.forget(&path);
                        } else if st.lock.is_none() && st.pending.is_none() {
                            self.drop_state(&path);
                        }
                    }
                },
                Winner::Mine => {
                    to_send +=
                        usize::from(snap_local.as_ref().is_some_and(|e| e.kind == Kind::File));
                    st.peer = Some(Box::new(their_now.clone()));
                }
                Winner::Theirs => {
                    st.peer = Some(Box::new(their_now.clone()));
                    if st.pending.is_none() {
                        // Held while this side holds what its inventory
                        // said: a change made after it went goes across
                        // (seed 7525: a file saved at `e` after the
                        // inventory, while the peer's folder `e` that won
                        // moved away: held for good); the peer's copy,
                        // installed meanwhile (agreed, no change here),
                        // does not.
                        let since = !same_state(&st.local, &snap_local) && st.changed_here();
                        let entry = if since { snap_local } else { st.local.clone() };
                        st.pending = Some(Box::new(Pending::Held {
                            sent: mine_now.clone(),
                            entry,
                        }));
                    }
                }
            }
        }
        self.emit(Effect::Reconciled {
            agreed,
            to_send,
            by_digest: false,
        });
        self.consider_all();
    }
}

/// Whether `st` may be a look-alike of the peer's entry: a file changed
/// here (see `Core::hash_look_alikes`).
fn may_look_alike(st: &super::PathState) -> bool {
    st.changed_here() && st.local.as_ref().is_some_and(|e| e.kind == Kind::File)
}

/// A new name one side offered, that the other stored and took as agreed,
/// the answer lost with the link: what the first holds is the other's
/// base, no change of its own (else the other's delete or edit since lost
/// to it, and a deleted file came back). Both sides see both entries, so
/// both decide the same.
fn stored_unheard(
    now: &Holding,
    offered: bool,
    other_base: Option<&super::Version>,
    precision: u64,
) -> bool {
    match (now.version(), other_base) {
        (Some(v), Some(b)) => offered && v.same_as(b, precision),
        _ => false,
    }
}
