//! The core's index of agreed identities (`Core::based`, with each
//! state's `based_id`) against the states it indexes, after moves of
//! files and folders, removals and restarts.

use std::collections::BTreeSet;

use super::sim_fs::World;
use super::*;

/// Every agreed path with an identity here is listed under it, and
/// nothing else is (no path left behind by a move or a removal).
fn assert_based_in_step(core: &Core, side: &str) {
    let listed: BTreeSet<(FileId, String)> = (core.based.iter())
        .flat_map(|(id, set)| set.iter().map(move |p| (*id, p.clone())))
        .collect();
    let agreed: BTreeSet<(FileId, String)> = (core.paths.iter())
        .filter_map(|(p, st)| {
            let id = st.base.as_ref()?.here.as_ref()?.id;
            assert_eq!(st.based_id, Some(id), "{side} {p}");
            Some((id, p.clone()))
        })
        .collect();
    assert_eq!(listed, agreed, "{side}");
}

#[test]
fn the_index_of_agreed_identities_follows_moves_removals_and_restarts() {
    let mut w = World::new(1, 1);
    w.connect();
    w.settle();
    for i in 0..4 {
        w.write(true, &format!("d/f{i}"), &format!("file {i}"));
    }
    w.write(false, "e/g", "g");
    w.settle();
    w.mv(true, "d", "moved");
    w.settle();
    w.mv(false, "moved/f1", "e/f1");
    w.rm(true, "moved/f2");
    w.settle();
    w.assert_same();
    for (core, side) in [(&w.a.core, "A"), (&w.b.core, "B")] {
        assert_based_in_step(core, side);
        assert!(core.based.len() >= 4, "{side}: {:?}", core.based);
    }
    w.disconnect();
    w.restart(true);
    w.restart(false);
    w.settle();
    w.mv(true, "e", "e2");
    w.connect();
    w.settle();
    w.assert_same();
    for (core, side) in [(&w.a.core, "A"), (&w.b.core, "B")] {
        assert_based_in_step(core, side);
    }
}
