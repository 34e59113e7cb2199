//! Known bugs of the core that the simulation found and that are not
//! fixed yet: how to recognise each one's end state, so that the seeded
//! runs keep looking for new bugs meanwhile. Each has an ignored test in
//! `main.rs` (`regressions`) that fails until it is fixed;
//! `LAB3_SIM_STRICT=1` turns every excuse here off.

use std::collections::VecDeque;

use common::sync::core::{Core, Kind, PeerMsg, Pending};

use crate::fake_fs::FakeFs;

/// A path held back forever: one side holds its copy back
/// (`Pending::Held`) for the peer's offer, and the peer has nothing in
/// flight for it and will send nothing, so the folders differ for good.
/// Two causes found so far (each with its ignored test):
/// - `held_for_a_winner_that_vanished` (seed 26): reconciliation gave the
///   path to the peer, whose copy then vanished before it was sent (never
///   agreed, so there is no delete to send either).
/// - `reconciled_on_a_stale_inventory` (seed 42): the peer's inventory went
///   out, then its copy went (a folder moved away); the peer reconciles on
///   what it holds now, this side on the inventory, and the two answers
///   differ: this side thinks they agree, the peer holds back for an offer.
pub fn held_forever(holder: &Core, peer: &Core, path: &str) -> bool {
    let held = holder
        .path(path)
        .is_some_and(|s| matches!(s.pending, Some(Pending::Held { .. })));
    // (Both held back, each for the other's offer, is the same bug: seed 619.)
    let idle = peer
        .path(path)
        .is_none_or(|s| matches!(s.pending, None | Some(Pending::Held { .. })));
    held && idle
}

/// Bug `a_replayed_update_is_taken_as_agreed` (seed 49): an update B sent
/// while `path` was locked is replayed at unlock, and A records it as the
/// version both agree on, though B has since moved on (here B took A's
/// folder in a conflict): A's copy never travels and the two differ.
pub fn replay_taken_as_agreed(a: &Core, b_fs: &FakeFs, replayed: bool, path: &str) -> bool {
    let differs = a
        .path(path)
        .and_then(|s| s.base.as_ref())
        .is_some_and(|base| {
            b_fs.stat(path)
                .is_none_or(|e| e.kind != base.version.kind || e.size != base.version.size)
        });
    replayed && differs
}

/// Bug `folder_delete_ping_pong` (seed 61): B removes a folder that A
/// holds with something new inside. A refuses the remove (its folder
/// "grew", a change after the delete) and offers the folder; B decides
/// by time (its delete is later) and refuses the offer, sending the
/// remove again: the two go back and forth for ever. Recognised by the
/// last messages: all about one path, removes and offers of a folder.
pub fn folder_delete_ping_pong(recent: &VecDeque<PeerMsg>) -> bool {
    let path = |m: &PeerMsg| match m {
        PeerMsg::Offer { path, .. }
        | PeerMsg::Remove { path, .. }
        | PeerMsg::Refused { path, .. } => Some(path.clone()),
        _ => None,
    };
    let Some(first) = recent.front().and_then(path) else {
        return false;
    };
    let one_path = recent.iter().all(|m| path(m).as_ref() == Some(&first));
    let removes = recent.iter().any(|m| matches!(m, PeerMsg::Remove { .. }));
    let folder_offers = recent
        .iter()
        .any(|m| matches!(m, PeerMsg::Offer { version, .. } if version.kind == Kind::Dir));
    recent.len() >= 40 && one_path && removes && folder_offers
}

/// Bug `crossing_offers_agree_on_one_side` (seed 465): both sides offer a
/// new folder at once; A takes B's offer as agreement (`Stored`, base
/// recorded) while B, whose copy had meanwhile gone, drops that answer
/// (its pending op changed). B then holds nothing and no base, knows A
/// holds a copy, and does nothing; A thinks they agree. (The winner side
/// of `held_for_a_winner_that_vanished` ends the same way.) Recognised
/// on the side without a copy.
pub fn nothing_here_and_idle(side: &Core, path: &str) -> bool {
    side.path(path).is_some_and(|s| {
        s.local.is_none()
            && s.base.is_none()
            && s.pending.is_none()
            && matches!(s.peer, Some(common::sync::core::Holding::Present(_)))
    })
}

/// Bug `an_edit_that_keeps_size_and_mtime_is_unseen` (seed 1152): on a
/// folder with a coarse clock (2 s), a file written in place within the
/// same tick and to the same size stats exactly as before (same inode,
/// size, mtime, mode); the watcher says a writer closed it, but the core
/// compares the stat alone and takes it as unchanged, so the edit never
/// travels. (The executor could hash a closed file whose stat did not
/// change.) Recognised where the disk stats as the agreed base but holds
/// other content than the base's hash.
pub fn edit_unseen(core: &Core, fs: &FakeFs, path: &str) -> bool {
    let Some(base) = core.path(path).and_then(|s| s.base.as_ref()) else {
        return false;
    };
    let (Some(here), Some(now)) = (&base.here, fs.stat(path)) else {
        return false;
    };
    here.same_here(&now) && base.version.hash.is_some() && base.version.hash != fs.read(path)
}

/// Bug `resurrected_after_a_lost_answer` (seed 1235): B offers a new file,
/// A installs it and records it as agreed, but the link drops before B
/// hears `Stored`, so B has no base; B's user deletes the file (no
/// tombstone, it was never agreed). At reconnect A reports it unchanged
/// since agreed, B reports nothing, and the rule treats that as a first
/// meeting: A's copy goes back to B, resurrecting a deleted file.
/// (Seed 385 ends the same way when A crashes between installing and
/// recording: A then takes the file for its own new one.) Recognised
/// when a side sends a file back to a peer that holds no copy and no
/// record of it.
pub fn resent_after_a_lost_answer(receiver: Option<&Core>, path: &str) -> bool {
    receiver.is_some_and(|c| {
        c.path(path)
            .is_none_or(|s| s.local.is_none() && s.base.is_none())
    })
}

/// Bug `a_stale_folder_record_is_removed_late` (seed 4151): B's folder
/// `d` becomes a file while `d/e` was agreed; the two folders converge,
/// but B's core keeps a record of `d/e`, and a rescan a minute later sends
/// its remove (harmless, but traffic after quiescence). Recognised by the
/// late messages: removes (and their answers) of paths neither side has.
pub fn stale_removes(late: &[&PeerMsg], absent: impl Fn(&str) -> bool) -> bool {
    late.iter().all(|m| match m {
        PeerMsg::Remove { path, .. } => absent(path),
        PeerMsg::Stored { path, landed, .. } => landed.is_none() && absent(path),
        _ => false,
    })
}

/// Late messages that all concern names one side refuses (an offer of
/// a name under a refused folder, learnt by a rescan, and its refusal):
/// the `a_change_waits_for_a_rescan` bug where the comparison cannot see
/// it (refused names are left out of it).
pub fn about_refused_names(late: &[&PeerMsg], refused: impl Fn(&str) -> bool) -> bool {
    late.iter().all(|m| match m {
        PeerMsg::Offer { path, .. }
        | PeerMsg::Refused { path, .. }
        | PeerMsg::Remove { path, .. }
        | PeerMsg::Stored { path, .. } => refused(path),
        _ => false,
    })
}

// Bug `a_change_waits_for_a_rescan` (seeds 1702, 2710): a change (a
// folder gone at A, a file moved into a folder) is not sent until the
// next rescan: what it waited for settled without looking at it again.
// Both sides are quiet while the folders still differ, and a rescan a
// minute later sends it (the real rescan comes every 30 s, past the 5 s
// bound). Recognised in the runner: messages after quiescence while the
// folders differed before the last rescan (an echo flows between
// folders that already agree).

/// The same bug as `nothing_here_and_idle`, another ending (seed 5966):
/// B's new file and A's new folder cross; A's user deletes the folder
/// before B's offer lands, so A takes B's file (a one-sided change) while
/// B takes A's folder (the later one): each records a different base as
/// agreed, both go idle, and the two differ for good.
pub fn bases_disagree(a: &Core, b: &Core, path: &str) -> bool {
    let base = |c: &Core| {
        c.path(path)
            .filter(|s| s.pending.is_none())
            .and_then(|s| s.base.as_ref())
            .map(|b| b.version.clone())
    };
    match (base(a), base(b)) {
        (Some(x), Some(y)) => x.kind != y.kind || x.size != y.size || x.hash != y.hash,
        _ => false,
    }
}
