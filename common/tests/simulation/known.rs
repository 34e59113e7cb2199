//! Known bugs of the core that the simulation found and that are not
//! fixed yet: how to recognise each one's end state, so that the seeded
//! runs keep looking for new bugs meanwhile. Each has an ignored test in
//! `main.rs` (`regressions`) that fails until it is fixed;
//! `LAB3_SIM_STRICT=1` turns every excuse here off.

use common::sync::core::{Core, Holding, Pending};

/// Bug `held_for_a_winner_that_vanished`: reconciliation gave a path to
/// one side, the other holds its own copy back (`Pending::Held`) waiting
/// for the winner's offer, but the winner's copy is gone before it was
/// sent (never agreed, so there is no delete to send either): the held
/// copy never travels and the folders differ for good.
pub fn held_for_a_winner_that_vanished(holder: &Core, winner: &Core, path: &str) -> bool {
    let held = holder
        .path(path)
        .is_some_and(|s| matches!(s.pending, Some(Pending::Held { .. })));
    let vanished = winner.path(path).is_some_and(|s| {
        s.local.is_none() && s.base.is_none() && matches!(s.peer, Some(Holding::Present(_)))
    });
    held && vanished
}
