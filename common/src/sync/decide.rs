//! Who wins when the two sides disagree about a path: one pure rule that
//! both servers apply, so that they reach the same answer independently.
//!
//! - Two files: the later modification time wins. On equal times, a side
//!   whose copy changed since the last sync wins over one whose copy did
//!   not; otherwise Server A's copy wins. Either way it is reported.
//! - A file against a delete: the delete wins only if it happened after the
//!   file's last modification (no resurrection, and no delete ever wins
//!   over a later change).
//! - A file against nothing: the file is copied across.

use crate::meta::FileMeta;
use crate::protocol::InventoryEntry;

/// One side's state of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State<'a> {
    Present {
        meta: &'a FileMeta,
        dirty: bool,
        /// Content hash, when known.
        hash: Option<&'a str>,
    },
    Deleted {
        deleted_ns: i64,
    },
    Absent,
}

impl<'a> State<'a> {
    pub fn of(e: Option<&'a InventoryEntry>) -> State<'a> {
        match e {
            Some(InventoryEntry::Present { meta, dirty, hash }) => State::Present {
                meta,
                dirty: *dirty,
                hash: hash.as_deref(),
            },
            Some(InventoryEntry::Deleted { deleted_ns, .. }) => State::Deleted {
                deleted_ns: *deleted_ns,
            },
            None => State::Absent,
        }
    }
}

/// Which side's state stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Winner {
    /// Both hold the same file (or neither holds it).
    Same,
    Mine,
    Theirs,
}

/// Decides between `mine` and `theirs`; `i_am_a` breaks exact ties.
/// Also says whether it was a tie that needed breaking (to report it).
pub fn winner(mine: State, theirs: State, i_am_a: bool) -> (Winner, bool) {
    use State::*;
    match (mine, theirs) {
        (
            Present {
                meta: m,
                dirty: md,
                hash: mh,
            },
            Present {
                meta: t,
                dirty: td,
                hash: th,
            },
        ) => {
            // Same size, mtime and mode is the same file (the rsync quick
            // check), unless both hashes are known and differ.
            let differ = matches!((mh, th), (Some(a), Some(b)) if a != b);
            if m.same_state(t) && !differ {
                return (Winner::Same, false);
            }
            match m.mtime_ns.cmp(&t.mtime_ns) {
                std::cmp::Ordering::Greater => (Winner::Mine, false),
                std::cmp::Ordering::Less => (Winner::Theirs, false),
                std::cmp::Ordering::Equal => match (md, td) {
                    (true, false) => (Winner::Mine, true),
                    (false, true) => (Winner::Theirs, true),
                    _ if i_am_a => (Winner::Mine, true),
                    _ => (Winner::Theirs, true),
                },
            }
        }
        (Present { meta, .. }, Deleted { deleted_ns }) => {
            if deleted_ns > meta.mtime_ns {
                (Winner::Theirs, false)
            } else {
                (Winner::Mine, false)
            }
        }
        (Deleted { deleted_ns }, Present { meta, .. }) => {
            if deleted_ns > meta.mtime_ns {
                (Winner::Mine, false)
            } else {
                (Winner::Theirs, false)
            }
        }
        (Present { .. }, Absent) => (Winner::Mine, false),
        (Absent, Present { .. }) => (Winner::Theirs, false),
        _ => (Winner::Same, false),
    }
}

/// What reconciliation asks of this side for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to do; both agree (mark the path synced).
    Agree,
    /// Send my file; the peer's state is `base`.
    Push { base: Option<FileMeta>, tie: bool },
    /// Delete my copy; the peer deleted it at `deleted_ns`.
    DeleteLocal { deleted_ns: i64 },
    /// The peer will act (push to me, or delete its copy).
    AwaitPeer,
}

/// The reconciliation plan for one path, given both inventories' entries.
pub fn plan(mine: Option<&InventoryEntry>, theirs: Option<&InventoryEntry>, i_am_a: bool) -> Plan {
    let (m, t) = (State::of(mine), State::of(theirs));
    match winner(m, t, i_am_a) {
        (Winner::Same, _) => Plan::Agree,
        (Winner::Mine, tie) => match m {
            State::Present { .. } => Plan::Push {
                base: match t {
                    State::Present { meta, .. } => Some(meta.clone()),
                    _ => None,
                },
                tie,
            },
            // My delete wins: the peer deletes its copy.
            _ => Plan::AwaitPeer,
        },
        (Winner::Theirs, _) => match (m, t) {
            (State::Present { .. }, State::Deleted { deleted_ns }) => {
                Plan::DeleteLocal { deleted_ns }
            }
            _ => Plan::AwaitPeer,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(mtime_ns: i64, size: u64) -> FileMeta {
        FileMeta {
            path: "x".into(),
            size,
            mtime_ns,
            mode: 0o644,
        }
    }
    fn present(m: FileMeta, dirty: bool) -> InventoryEntry {
        InventoryEntry::Present {
            meta: m,
            dirty,
            hash: None,
        }
    }
    fn deleted(ns: i64) -> InventoryEntry {
        InventoryEntry::Deleted {
            path: "x".into(),
            deleted_ns: ns,
        }
    }

    /// Both sides must reach mirror-image plans.
    fn both(a: Option<&InventoryEntry>, b: Option<&InventoryEntry>) -> (Plan, Plan) {
        (plan(a, b, true), plan(b, a, false))
    }

    #[test]
    fn later_mtime_wins_both_ways() {
        let (old, new) = (present(f(1, 1), false), present(f(2, 1), false));
        let (pa, pb) = both(Some(&old), Some(&new));
        assert_eq!(pa, Plan::AwaitPeer);
        assert_eq!(
            pb,
            Plan::Push {
                base: Some(f(1, 1)),
                tie: false
            }
        );
    }

    #[test]
    fn equal_mtime_tie_is_broken_the_same_way() {
        let (a, b) = (present(f(5, 1), false), present(f(5, 2), false));
        let (pa, pb) = both(Some(&a), Some(&b));
        assert!(matches!(pa, Plan::Push { tie: true, .. }));
        assert_eq!(pb, Plan::AwaitPeer);
        // A dirty B copy beats a clean A copy on a tie.
        let b_dirty = present(f(5, 2), true);
        let (pa, pb) = both(Some(&a), Some(&b_dirty));
        assert_eq!(pa, Plan::AwaitPeer);
        assert!(matches!(pb, Plan::Push { tie: true, .. }));
    }

    #[test]
    fn same_metadata_with_different_hashes_is_a_tie_broken_the_same_way() {
        let with = |h: &str| InventoryEntry::Present {
            meta: f(5, 1),
            dirty: true,
            hash: Some(h.into()),
        };
        let (pa, pb) = both(Some(&with("aa")), Some(&with("bb")));
        assert!(matches!(pa, Plan::Push { tie: true, .. }));
        assert_eq!(pb, Plan::AwaitPeer);
        assert_eq!(
            plan(Some(&with("aa")), Some(&with("aa")), true),
            Plan::Agree
        );
        // One hash unknown: the quick check stands.
        assert_eq!(
            plan(Some(&with("aa")), Some(&present(f(5, 1), false)), true),
            Plan::Agree
        );
    }

    #[test]
    fn delete_after_modification_wins_but_not_before() {
        let file = present(f(100, 1), false);
        let (pa, pb) = both(Some(&file), Some(&deleted(200)));
        assert_eq!(pa, Plan::DeleteLocal { deleted_ns: 200 });
        assert_eq!(pb, Plan::AwaitPeer);
        let (pa, pb) = both(Some(&file), Some(&deleted(50)));
        assert_eq!(
            pa,
            Plan::Push {
                base: None,
                tie: false
            }
        );
        assert_eq!(pb, Plan::AwaitPeer);
    }

    #[test]
    fn one_sided_files_are_copied_and_equal_ones_agree() {
        let file = present(f(1, 1), false);
        assert_eq!(
            plan(Some(&file), None, false),
            Plan::Push {
                base: None,
                tie: false
            }
        );
        assert_eq!(plan(None, Some(&file), true), Plan::AwaitPeer);
        assert_eq!(plan(Some(&file), Some(&file), true), Plan::Agree);
        assert_eq!(plan(Some(&deleted(1)), None, true), Plan::Agree);
    }
}
