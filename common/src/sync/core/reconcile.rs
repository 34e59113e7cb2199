//! The link's phases. At link-up each side sends a digest of what it
//! agreed with the peer; two equal digests from clean sides end it there.
//! Otherwise each sends its inventory (what it holds, and whether that
//! changed since the two last agreed); once it has the peer's, it
//! applies [`super::rule::winner`] to every path. Both get the same answer: paths that agree get a new base, the winner of each
//! other path offers its version (once quiet), the loser waits for it.

use std::collections::{BTreeMap, BTreeSet};

use super::model::coarse;
use super::rule::{self, View, Winner};
use super::{
    Base, Core, Digest, Effect, FsTraits, Holding, InvEntry, Kind, LinkPhase, PeerMsg, Pending,
};

/// Paths per inventory message.
const CHUNK: usize = 2_000;

impl Core {
    pub(super) fn link_up(&mut self, peer: FsTraits) {
        for st in self.paths.values_mut() {
            st.peer = None;
            if matches!(
                st.pending,
                Some(Pending::Offered { .. } | Pending::Held { .. })
            ) {
                st.pending = None;
            }
        }
        let precision = peer.precision_ns.max(self.cfg.fs.precision_ns);
        let mine = self.digest_of(precision);
        self.link = LinkPhase::Reconciling {
            peer,
            mine: mine.clone(),
            theirs: BTreeMap::new(),
        };
        self.emit(Effect::Send(PeerMsg::Digest(mine)));
    }

    /// This side's digest: its agreed paths, and whether it is clean.
    fn digest_of(&self, precision: u64) -> Digest {
        let mut h = blake3::Hasher::new();
        let mut entries = 0u64;
        let mut clean = true;
        for (p, st) in &self.paths {
            clean &= !st.changed_here() && st.pending.is_none() && st.lock.is_none();
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
                h.update(format!("{p}\0{kind}\0{size}\0{t}\n").as_bytes());
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
        let entries: Vec<InvEntry> = self
            .paths
            .iter()
            .filter(|(_, s)| s.local.is_some() || s.base.is_some())
            .map(|(p, s)| InvEntry {
                path: p.clone(),
                now: s.holding(),
                changed: s.changed_here(),
            })
            .collect();
        let n = entries.len().div_ceil(CHUNK).max(1);
        let mut chunks = entries.chunks(CHUNK);
        for i in 0..n {
            let entries = chunks.next().map(<[_]>::to_vec).unwrap_or_default();
            self.emit(Effect::Send(PeerMsg::Inventory {
                entries,
                last: i + 1 == n,
            }));
        }
    }

    pub(super) fn link_down(&mut self) {
        self.link = LinkPhase::Down;
        for st in self.paths.values_mut() {
            st.peer = None;
            if matches!(
                st.pending,
                Some(Pending::Offered { .. } | Pending::Held { .. })
            ) {
                st.pending = None;
            }
        }
    }

    pub(super) fn inventory(&mut self, entries: Vec<InvEntry>, last: bool) {
        let LinkPhase::Reconciling { theirs, .. } = &mut self.link else {
            return;
        };
        for e in entries {
            theirs.insert(e.path.clone(), e);
        }
        if last {
            self.reconcile();
        }
    }

    fn reconcile(&mut self) {
        let LinkPhase::Reconciling { peer, theirs, .. } = std::mem::take(&mut self.link) else {
            return;
        };
        self.link = LinkPhase::Live { peer };
        let precision = self.precision();
        let side = self.cfg.side;
        let paths: BTreeSet<String> = self.paths.keys().chain(theirs.keys()).cloned().collect();
        let nothing = Holding::Absent { deleted_ns: None };
        let (mut agreed, mut to_send) = (0, 0);
        for path in paths {
            let st = self.paths.entry(path.clone()).or_default();
            let mine_now = st.holding();
            let mine = View {
                now: &mine_now,
                changed: st.changed_here(),
            };
            let (their_now, their_changed) = match theirs.get(&path) {
                Some(e) => (&e.now, e.changed),
                None => (&nothing, false),
            };
            let their_view = View {
                now: their_now,
                changed: their_changed,
            };
            match rule::winner(mine, their_view, side, precision) {
                Winner::Same => match (&st.local, their_now.version()) {
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
                        if st.base.is_some() || st.local.is_some() {
                            self.forget(&path);
                        } else if st.lock.is_none() && st.pending.is_none() {
                            self.paths.remove(&path);
                        }
                    }
                },
                Winner::Mine => {
                    to_send += usize::from(st.local.as_ref().is_some_and(|e| e.kind == Kind::File));
                    st.peer = Some(their_now.clone());
                }
                Winner::Theirs => {
                    st.peer = Some(their_now.clone());
                    if st.pending.is_none() {
                        st.pending = Some(Pending::Held {
                            sent: mine_now.clone(),
                            entry: st.local.clone(),
                        });
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
