//! Who wins when the two sides hold different things at a path: one pure
//! function that both sides apply to the same two views, so they reach the
//! same answer on their own.

use super::model::{coarse, Holding, Kind};
use super::Side;

/// One side's view of a path.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub now: &'a Holding,
    /// Changed since the two last agreed.
    pub changed: bool,
}

/// Which view stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Winner {
    /// They hold the same (or both nothing).
    Same,
    Mine,
    Theirs,
}

/// Decides between this side's view and the peer's. `precision_ns` is the
/// coarser side's; `me` breaks equal times (Server A's view wins).
///
/// - The same version on both sides (or nothing on both): `Same`, unless
///   the content is not known to be equal and one side changed (a
///   look-alike swapped in: the changed side's) or both did (an equal-time
///   conflict, below).
/// - Exactly one side changed: that side's, whatever its mtime (a
///   restored older backup wins; so does a delete of an unchanged file).
/// - Both changed, a folder against a delete: the folder.
/// - Both changed, or neither (a first meeting): the later time wins (a
///   delete's time is when it happened; a file beats "never had it");
///   equal times: Server A's, except that a delete never beats a change
///   made at the same time.
pub fn winner(mine: View, theirs: View, me: Side, precision_ns: u64) -> Winner {
    use Holding::*;
    let same = match (mine.now, theirs.now) {
        (Absent { .. }, Absent { .. }) => return Winner::Same,
        (Present(a), Present(b)) => a.same_as(b, precision_ns),
        _ => false,
    };
    if same {
        let known_equal = match (mine.now, theirs.now) {
            (Present(a), Present(b)) => {
                a.kind == Kind::Dir || (a.hash.is_some() && a.hash == b.hash)
            }
            _ => true,
        };
        match (mine.changed, theirs.changed) {
            (true, false) if !known_equal => return Winner::Mine,
            (false, true) if !known_equal => return Winner::Theirs,
            // Both changed to look-alikes of unknown content: settled as
            // an equal-time conflict below (A's copy goes across).
            (true, true) if !known_equal => {}
            _ => return Winner::Same,
        }
    }
    match (mine.changed, theirs.changed) {
        (true, false) => return Winner::Mine,
        (false, true) => return Winner::Theirs,
        _ => {}
    }
    // Both changed, a folder against a delete: the folder stands,
    // whatever the times (what it holds is decided name by name; a
    // folder changed or grown on one side is not taken by the other's
    // delete). Without this, a side that saw its folder grow kept it
    // while the other, deciding by time, sent its delete again: seed
    // 102675 went back and forth for ever.
    match (mine.now, theirs.now) {
        (Present(v), Absent { .. }) if v.kind == Kind::Dir => return Winner::Mine,
        (Absent { .. }, Present(v)) if v.kind == Kind::Dir => return Winner::Theirs,
        _ => {}
    }
    let time = |h: &Holding| match h {
        Present(v) => Some(coarse(v.mtime_ns, precision_ns)),
        Absent { deleted_ns } => deleted_ns.map(|t| coarse(t, precision_ns)),
    };
    match (time(mine.now), time(theirs.now)) {
        (Some(m), Some(t)) if m != t => {
            if m > t {
                Winner::Mine
            } else {
                Winner::Theirs
            }
        }
        (Some(_), None) => Winner::Mine,
        (None, Some(_)) => Winner::Theirs,
        _ => match (mine.now, theirs.now) {
            // Equal times: a change stands against a delete.
            (Present(_), Absent { .. }) => Winner::Mine,
            (Absent { .. }, Present(_)) => Winner::Theirs,
            _ if me == Side::A => Winner::Mine,
            _ => Winner::Theirs,
        },
    }
}
