//! A scan (the start-up scan, and each safety-net rescan) set against the
//! known paths in one walk of both, in path order. A restart over a big
//! tree in sync looked each scanned path up in the map of states about
//! eight times (`Core::changed` and what it calls) and once more to tell
//! what is gone: a fifth of a restart's CPU went to comparing path
//! strings (issue 15). The walk finds each state once, takes the paths
//! the scan found as they were (and, after a restart, the agreed paths
//! found as agreed) in place, and leaves everything else to
//! `Core::changed`, in the scan's order, as before.

use super::path_set::PathSet;
use super::{Core, Entry, Kind, PathState};

/// What one walk left to do.
pub(super) struct Walked {
    /// Scanned paths for [`Core::changed`], in path order: new ones, and
    /// known ones that changed otherwise than the walk takes in place.
    pub changed: Vec<(String, Entry)>,
    /// Known paths the scan did not find that hold something here (or, at
    /// the first scan, have a base): gone, once [`held`] still says so
    /// after the changes.
    pub missing: Vec<String>,
}

/// Whether a known path the scan did not find is gone: it was here, or
/// (at the first scan after a start) it was agreed.
pub(super) fn held(st: &PathState, first: bool) -> bool {
    st.local.is_some() || (first && st.base.is_some())
}

impl Core {
    /// Walks `entries` (sorted by path here: the scan's own order already,
    /// for which a stable sort is one pass) beside the known paths.
    pub(super) fn walk_scan(&mut self, mut entries: Vec<(String, Entry)>, first: bool) -> Walked {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        // On a folder that folds names, a path seen anew also goes into
        // the index of folded names (`Core::index_folded`): `changed`.
        let in_place = !self.cfg.fs.folds() && !path_by_path();
        let step = self.cfg.fs.precision_ns.max(1) as i64;
        let now = self.now_ns;
        let Core { paths, ids, .. } = self;
        let mut walked = Walked {
            changed: Vec::new(),
            missing: Vec::new(),
        };
        let mut known = paths.iter_mut().peekable();
        for (path, e) in entries {
            let mut found = None;
            while let Some((p, st)) = known.next_if(|(p, _)| p.as_str() <= path.as_str()) {
                if *p == path {
                    found = Some(st);
                    break;
                }
                if held(st, first) {
                    walked.missing.push(p.clone());
                }
            }
            match found {
                // As it was: nothing to do.
                Some(st) if st.local.as_ref().is_some_and(|l| l.same_here(&e)) => {}
                Some(st) if in_place && agreed_and_unseen(st, &e) => {
                    // What `changed` does for it: seen (`set_local`), and
                    // quiet since its last write (`written`).
                    st.changed_ns = (e.mtime_ns + (step - 1)).min(now);
                    match ids.get_mut(&e.id) {
                        Some(set) => {
                            set.insert(path);
                        }
                        None => {
                            ids.insert(e.id, PathSet::new(path));
                        }
                    }
                    st.local = Some(e);
                }
                _ => walked.changed.push((path, e)),
            }
        }
        for (p, st) in known {
            if held(st, first) {
                walked.missing.push(p.clone());
            }
        }
        walked
    }
}

/// A file the journal kept as agreed, not seen yet since the start (its
/// state as the journal made it, see `PathState::from`: nothing in it
/// but the base), found on disk as this side's stat of the agreed
/// version: unchanged since the two agreed. `Core::changed` would only
/// set what it holds and when it was written (no record, no index but
/// the identities). A state with anything more (a tombstone, a lock, a
/// landing) goes through `changed`; a field added to [`PathState`] must
/// be named here (the pattern lists them all) and decided.
fn agreed_and_unseen(st: &PathState, e: &Entry) -> bool {
    let PathState {
        local,
        changed_ns: _,
        deleted_ns,
        gone_ns,
        base,
        peer,
        pending,
        lock,
        landing,
        based_id: _,
        offered,
        // (A counter for the next lock: nothing a scan changes.)
        queued_through: _,
    } = st;
    let bare = local.is_none()
        && deleted_ns.is_none()
        && gone_ns.is_none()
        && peer.is_none()
        && pending.is_none()
        && lock.is_none()
        && landing.is_none()
        && !offered;
    bare && e.kind == Kind::File
        && (base.as_ref())
            .and_then(|b| b.here.as_ref())
            .is_some_and(|h| h.same_here(e))
}

#[cfg(test)]
thread_local! {
    /// Tests: every scanned path through `Core::changed`, to compare.
    pub(super) static PATH_BY_PATH: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn path_by_path() -> bool {
    #[cfg(test)]
    return PATH_BY_PATH.with(|c| c.get());
    #[cfg(not(test))]
    false
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::PATH_BY_PATH;
    use std::collections::BTreeMap;

    const SEC: i64 = 1_000_000_000;

    fn file(ino: u64, size: u64, mtime_ns: i64) -> Entry {
        Entry {
            kind: Kind::File,
            size,
            mtime_ns,
            mode: Some(0o644),
            id: FileId { dev: 1, ino },
            hash: None,
        }
    }

    fn dir(ino: u64) -> Entry {
        Entry {
            kind: Kind::Dir,
            size: 0,
            mtime_ns: 0,
            mode: Some(0o755),
            id: FileId { dev: 1, ino },
            hash: None,
        }
    }

    fn agreed(here: Option<Entry>, kind: Kind) -> Record {
        let version = Version {
            kind,
            size: here.as_ref().map_or(0, |e| e.size),
            mtime_ns: here.as_ref().map_or(0, |e| e.mtime_ns),
            mode: None,
            hash: Some("h".into()),
        };
        Record {
            base: Some(Base { version, here }),
            deleted_ns: None,
            gone_ns: None,
            lock: None,
            landing: None,
            offered: false,
            queued_through: 0,
        }
    }

    /// The states, the identity index and the effects a core is left
    /// with after `scans`, from `journal`.
    fn after(
        journal: &[(&str, Record)],
        scans: &[Vec<(&str, Entry)>],
        by_path: bool,
    ) -> (Vec<String>, BTreeMap<FileId, Vec<String>>, Vec<String>) {
        PATH_BY_PATH.with(|c| c.set(by_path));
        let mut cfg = Config::new(Side::B);
        cfg.fs.precision_ns = SEC as u64;
        let journal = journal.iter().map(|(p, r)| (p.to_string(), r.clone()));
        let mut core = Core::new(cfg, journal);
        let mut effects = Vec::new();
        for (i, scan) in scans.iter().enumerate() {
            let entries = scan.iter().map(|(p, e)| (p.to_string(), e.clone()));
            let input = Input::Scanned {
                entries: entries.collect(),
            };
            effects.extend(core.handle(100 * SEC + i as i64, input));
        }
        PATH_BY_PATH.with(|c| c.set(false));
        let states = core.paths().map(|(p, s)| format!("{p}: {s:?}")).collect();
        let ids = (core.ids.iter())
            .map(|(id, set)| (*id, set.iter().cloned().collect()))
            .collect();
        let effects = effects.iter().map(|e| format!("{e:?}")).collect();
        (states, ids, effects)
    }

    /// Every shape of path a scan meets, in place and through
    /// `Core::changed`: the same states, identities and effects.
    #[test]
    fn the_walk_leaves_what_changed_path_by_path_leaves() {
        let tombstone = Record {
            deleted_ns: Some(5 * SEC),
            ..agreed(Some(file(4, 4, 40 * SEC)), Kind::File)
        };
        let locked = Record {
            lock: Some(Box::default()),
            ..agreed(Some(file(6, 6, 60 * SEC)), Kind::File)
        };
        let landing = Record {
            landing: Some(Box::new(file(7, 7, 70 * SEC).version())),
            ..agreed(Some(file(7, 1, 10 * SEC)), Kind::File)
        };
        let journal = [
            ("a/agreed", agreed(Some(file(1, 1, 10 * SEC)), Kind::File)),
            ("a/edited", agreed(Some(file(2, 2, 20 * SEC)), Kind::File)),
            (
                "a/rounded",
                agreed(Some(file(3, 3, 30 * SEC + 5)), Kind::File),
            ),
            ("a/tombstone", tombstone),
            ("a/gone", agreed(Some(file(5, 5, 50 * SEC)), Kind::File)),
            ("a/locked", locked),
            ("a/landing", landing),
            ("c", agreed(None, Kind::Dir)),
            ("c/x", agreed(Some(file(9, 9, 90 * SEC)), Kind::File)),
            ("z/last-gone", agreed(Some(file(10, 1, SEC)), Kind::File)),
        ];
        let first = vec![
            ("a/agreed", file(1, 1, 10 * SEC)),
            ("a/edited", file(2, 22, 21 * SEC)),
            ("a/rounded", file(3, 3, 30 * SEC)),
            ("a/tombstone", file(4, 4, 40 * SEC)),
            ("a/landing", file(7, 7, 70 * SEC)),
            ("a/locked", file(6, 6, 60 * SEC)),
            ("a/new", file(8, 8, 80 * SEC)),
            ("b", dir(11)),
            ("c", dir(12)),
            ("c/x", file(9, 9, 90 * SEC)),
        ];
        // A rescan: one path edited, one gone, the folder now a file.
        let mut second = first.clone();
        second[0].1 = file(1, 2, 99 * SEC);
        second.retain(|(p, _)| *p != "a/new" && *p != "c/x");
        second.retain(|(p, _)| *p != "c");
        second.push(("c", file(13, 1, 99 * SEC)));
        for scans in [vec![first.clone()], vec![first, second]] {
            let walked = after(&journal, &scans, false);
            let by_path = after(&journal, &scans, true);
            assert_eq!(walked, by_path);
        }
    }
}
