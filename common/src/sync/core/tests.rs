//! The core driven directly, one case per bug the redesign is for.

use super::sim_fs::World;
use super::*;

const NS: u64 = 1;
const SEC: u64 = 1_000_000_000;

fn live(pa: u64, pb: u64) -> World {
    let mut w = World::new(pa, pb);
    w.connect();
    w.settle();
    w
}

fn offers(msgs: &[PeerMsg]) -> usize {
    msgs.iter()
        .filter(|m| matches!(m, PeerMsg::Offer { version, .. } if version.kind == Kind::File))
        .count()
}

#[test]
fn a_write_travels_and_is_acknowledged() {
    let mut w = live(NS, NS);
    w.write(true, "f.txt", "hello");
    w.settle();
    w.assert_same();
    let st = w.a.core.path("f.txt").unwrap();
    assert!(st.base.is_some() && !st.changed_here() && st.pending.is_none());
    assert!(
        w.a.log.iter().any(|l| l == "created f.txt"),
        "{:?}",
        w.a.log
    );
    assert!(
        w.b.log.iter().any(|l| l == "created f.txt"),
        "{:?}",
        w.b.log
    );
    // Nothing echoes back.
    assert_eq!(offers(&w.b.sent), 0);
}

#[test]
fn a_restored_older_backup_wins_connected_or_not() {
    for connected in [true, false] {
        let mut w = live(NS, NS);
        w.write(true, "r.txt", "new");
        w.settle();
        if !connected {
            w.disconnect();
        }
        w.write_at(true, "r.txt", "old backup", Some(5));
        w.settle();
        if !connected {
            w.connect();
            w.settle();
        }
        assert_eq!(
            w.b.disk.read("r.txt").as_deref(),
            Some("old backup"),
            "connected: {connected}"
        );
        w.assert_same();
        // B's replaced version was kept.
        assert!(w
            .b
            .disk
            .kept
            .iter()
            .any(|(p, why, c)| p == "r.txt" && *why == KeepWhy::Replaced && c == "new"));
    }
}

#[test]
fn both_changed_the_later_wins_and_the_loser_is_kept() {
    let mut w = live(NS, NS);
    w.write(true, "c.txt", "base");
    w.settle();
    let t = w.now;
    // Both write before either hears of the other's.
    w.write_at(true, "c.txt", "from A", Some(t + 10));
    w.write_at(false, "c.txt", "from B, later", Some(t + 20));
    w.settle();
    w.assert_same();
    assert_eq!(w.a.disk.read("c.txt").as_deref(), Some("from B, later"));
    assert!(w
        .a
        .disk
        .kept
        .iter()
        .any(|(p, why, c)| p == "c.txt" && *why == KeepWhy::Conflict && c == "from A"));
    assert!(
        w.a.log
            .iter()
            .any(|l| l.starts_with("conflict c.txt") && l.contains("kept at")),
        "{:?}",
        w.a.log
    );
}

#[test]
fn equal_times_go_to_a_on_both_sides() {
    for _ in 0..3 {
        let mut w = live(NS, NS);
        w.write(true, "t.txt", "base");
        w.settle();
        let t = w.now + 7;
        w.write_at(false, "t.txt", "B's", Some(t));
        w.write_at(true, "t.txt", "A's", Some(t));
        w.settle();
        w.assert_same();
        assert_eq!(w.b.disk.read("t.txt").as_deref(), Some("A's"));
        assert!(w
            .b
            .disk
            .kept
            .iter()
            .any(|(_, why, c)| *why == KeepWhy::Conflict && c == "B's"));
    }
}

#[test]
fn look_alikes_swapped_through_a_temp_name_land_exactly() {
    let mut w = live(NS, NS);
    let t = Some(w.now - 5 * SEC as i64);
    w.write_at(true, "c.dat", "cccc", t);
    w.write_at(true, "d.dat", "dddd", t);
    w.settle();
    w.mv(true, "c.dat", "t.tmp");
    w.mv(true, "d.dat", "c.dat");
    w.mv(true, "t.tmp", "d.dat");
    w.settle();
    w.assert_same();
    assert_eq!(w.b.disk.read("c.dat").as_deref(), Some("dddd"));
    // And a restart of both changes nothing.
    w.disconnect();
    w.restart(true);
    w.restart(false);
    w.connect();
    w.settle();
    w.assert_same();
    assert_eq!(w.b.disk.read("d.dat").as_deref(), Some("cccc"));
}

#[test]
fn a_folder_moved_into_a_folder_made_a_moment_before_is_one_rename() {
    let mut w = live(NS, NS);
    for i in 0..5 {
        w.write(true, &format!("photos/{i}.jpg"), &format!("photo {i}"));
    }
    w.settle();
    w.a.sent.clear();
    w.mkdir(true, "n/sub");
    w.mv(true, "photos", "n/sub/photos");
    w.settle();
    w.assert_same();
    assert_eq!(offers(&w.a.sent), 0, "no photo resent: {:?}", w.a.sent);
    let moves =
        w.a.sent
            .iter()
            .filter(|m| matches!(m, PeerMsg::Move { .. }))
            .count();
    assert_eq!(moves, 1, "{:?}", w.a.sent);
    assert_eq!(
        w.b.disk.read("n/sub/photos/3.jpg").as_deref(),
        Some("photo 3")
    );
}

#[test]
fn empty_folders_are_made_and_removed() {
    let mut w = live(NS, NS);
    w.mkdir(false, "New Folder");
    w.settle();
    assert_eq!(w.a.disk.read("New Folder").as_deref(), Some("<dir>"));
    w.rm(false, "New Folder");
    w.settle();
    w.assert_same();
    assert!(w.a.disk.entries.is_empty());
}

#[test]
fn a_removed_folder_goes_with_what_it_held() {
    let mut w = live(NS, NS);
    w.write(true, "d/x", "x");
    w.write(true, "d/e/y", "y");
    w.settle();
    w.rm(true, "d");
    w.settle();
    w.assert_same();
    assert!(w.b.disk.entries.is_empty(), "{:?}", w.b.disk.entries.keys());
}

#[test]
fn a_write_through_one_hard_link_reaches_every_name() {
    let mut w = live(NS, NS);
    w.write(true, "one", "v1");
    w.settle();
    w.link(true, "one", "two");
    w.settle();
    w.write(true, "one", "version 2");
    w.settle();
    assert_eq!(w.b.disk.read("two").as_deref(), Some("version 2"));
    w.assert_same();
}

#[test]
fn whole_second_precision_neither_echoes_nor_rewrites() {
    let mut w = live(NS, SEC);
    w.write_at(true, "p.txt", "precise", Some(1_700_000_000_123_456_789));
    w.settle();
    w.assert_same();
    assert_eq!(
        w.b.disk.entries["p.txt"].mtime_ns,
        1_700_000_000_000_000_000
    );
    // A kept its digits and its file.
    assert_eq!(
        w.a.disk.entries["p.txt"].mtime_ns,
        1_700_000_000_123_456_789
    );
    assert_eq!(offers(&w.b.sent), 0);
    // Nor after a reconnect.
    w.disconnect();
    w.connect();
    w.settle();
    assert_eq!(offers(&w.b.sent) + offers(&w.a.sent), 1);
}

/// CI (tests/sync_names.rs, FAT over FUSE): the time B set on a file it
/// installed reads back to the nanosecond until the attribute cache
/// expires, then rounded to the folder's 2 s. That is the same file, not
/// an edit of B's: B sends nothing back and A's copy stays as it is.
#[test]
fn a_time_the_folder_rounds_after_an_install_is_no_edit() {
    let mut w = live(NS, 2 * SEC);
    // The cache: what B set, to the nanosecond.
    w.b.disk.precision = NS;
    let t = 1_700_000_001_234_567_891;
    w.write_at(true, "f.txt", "from a", Some(t));
    w.settle();
    w.assert_same();
    assert_eq!(w.b.disk.entries["f.txt"].mtime_ns, t);
    let sent = offers(&w.b.sent);
    // The cache expired: the folder's own 2 s.
    w.b.disk.precision = 2 * SEC;
    let e = w.b.disk.entries.get_mut("f.txt").unwrap();
    e.mtime_ns = model::coarse(t, 2 * SEC);
    w.observe(false, "f.txt", false);
    w.settle();
    assert_eq!(offers(&w.b.sent), sent, "B: {:?}", w.b.log);
    assert!(
        !w.b.log.iter().any(|l| l.contains("conflict")),
        "{:?}",
        w.b.log
    );
    assert_eq!(w.a.disk.read("f.txt").as_deref(), Some("from a"));
    assert_eq!(w.a.disk.entries["f.txt"].mtime_ns, t);
    // Nor after B's restart (the journal kept the stat) and a reconnect.
    w.disconnect();
    w.restart(false);
    w.connect();
    w.settle();
    assert_eq!(offers(&w.b.sent), sent, "B: {:?}", w.b.log);
}

#[test]
fn a_file_still_being_written_at_reconnect_waits_for_quiet() {
    let mut w = live(NS, NS);
    w.disconnect();
    w.settle();
    w.write_at(true, "grow.log", "part", None);
    // Not closed: still being written when the link comes up.
    w.a.core.handle(
        w.now,
        Input::Observed {
            path: "grow.log".into(),
            entry: w.a.disk.entries.get("grow.log").cloned(),
            closed: false,
        },
    );
    let now = w.now;
    let fx = w.a.core.handle(
        now,
        Input::LinkUp {
            peer: FsTraits::default(),
        },
    );
    assert!(!fx.iter().any(|e| matches!(e, Effect::SendFile { .. })));
    let fx = w.a.core.handle(
        now,
        Input::Peer(PeerMsg::Inventory {
            entries: vec![],
            last: true,
        }),
    );
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::SendFile { .. })),
        "{fx:?}"
    );
    let fx =
        w.a.core
            .handle(now, Input::Peer(PeerMsg::Hashes { hashes: vec![] }));
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::SendFile { .. })),
        "{fx:?}"
    );
    assert!(fx.iter().any(|e| matches!(e, Effect::Arm { .. })), "{fx:?}");
}

#[test]
fn a_file_against_a_folder_converges_and_keeps_the_loser() {
    let mut w = World::new(NS, NS);
    let t = w.now;
    w.write_at(true, "w", "a file", Some(t - 10));
    w.mkdir(false, "w");
    w.write_at(false, "w/inside", "in the folder", Some(t - 20));
    w.settle();
    w.connect();
    w.settle();
    w.assert_same();
    let kept = w.a.disk.kept.len() + w.b.disk.kept.len();
    assert!(kept >= 1, "the loser is kept");
}

#[test]
fn a_delete_propagates_but_never_beats_a_later_change() {
    let mut w = live(NS, NS);
    w.write(true, "x", "1");
    w.write(true, "y", "1");
    w.settle();
    w.rm(true, "x");
    w.settle();
    assert!(!w.b.disk.entries.contains_key("x"));
    assert!(w
        .b
        .disk
        .kept
        .iter()
        .any(|(p, why, _)| p == "x" && *why == KeepWhy::Deleted));
    w.disconnect();
    w.rm(true, "y");
    w.now += SEC as i64;
    w.write(false, "y", "changed after the delete");
    w.settle();
    w.connect();
    w.settle();
    w.assert_same();
    assert_eq!(
        w.a.disk.read("y").as_deref(),
        Some("changed after the delete")
    );
}

#[test]
fn no_resurrection_after_a_restart() {
    let mut w = live(NS, NS);
    w.write(true, "gone", "1");
    w.settle();
    w.disconnect();
    w.rm(false, "gone");
    w.settle();
    w.restart(false);
    w.settle();
    w.connect();
    w.settle();
    w.assert_same();
    assert!(w.a.disk.entries.is_empty());
}

#[test]
fn a_kill_between_an_install_and_its_journal_line_resurrects_nothing() {
    // Seen in the kill -9 soak: B took A's new version, was killed before
    // it journaled the new base, and on restart offered it back as its own
    // change; A had deleted the file meanwhile, so the file came back.
    let mut w = live(NS, NS);
    w.write(true, "f", "1");
    w.settle();
    w.b.crash_after_install = true;
    w.write(true, "f", "2");
    w.settle();
    assert!(!w.b.crash_after_install, "B was killed mid-install");
    assert_eq!(w.b.disk.read("f").as_deref(), Some("2"));
    w.rm(true, "f");
    w.settle();
    w.connect();
    w.settle();
    w.assert_same();
    assert!(w.a.disk.entries.is_empty(), "{:?}", w.a.disk.entries);
}

#[test]
fn a_kill_between_an_install_and_its_journal_line_sends_nothing_back() {
    let mut w = live(NS, NS);
    w.write(true, "f", "1");
    w.settle();
    w.b.crash_after_install = true;
    w.write(true, "f", "2");
    w.settle();
    w.b.sent.clear();
    w.connect();
    w.settle();
    w.assert_same();
    assert_eq!(w.a.disk.read("f").as_deref(), Some("2"));
    // B kept version 1 when version 2 replaced it, and nothing since.
    assert!(w.a.disk.kept.is_empty(), "{:?}", w.a.disk.kept);
    assert_eq!(
        w.b.disk.kept,
        vec![("f".to_string(), KeepWhy::Replaced, "1".to_string())]
    );
    assert_eq!(offers(&w.b.sent), 0, "B sends A's own version back");
}

#[test]
fn a_locked_path_queues_updates_and_replays_them_in_order() {
    let mut w = live(NS, NS);
    w.write(true, "l.txt", "v0");
    w.settle();
    w.lock("l.txt");
    w.settle();
    w.write(false, "l.txt", "v1");
    w.settle();
    w.write(false, "l.txt", "v2, longer");
    w.settle();
    assert_eq!(w.a.disk.read("l.txt").as_deref(), Some("v0"));
    assert_eq!(
        w.a.log.iter().filter(|l| l.starts_with("queued")).count(),
        2,
        "{:?}",
        w.a.log
    );
    w.unlock("l.txt");
    w.settle();
    assert_eq!(w.a.disk.read("l.txt").as_deref(), Some("v2, longer"));
    let outcomes: Vec<_> = w.a.unlocked[0].iter().map(|r| (r.seq, r.outcome)).collect();
    assert_eq!(outcomes, vec![(1, "applied"), (2, "applied")]);
    w.assert_same();
    // Afterwards the path syncs as any other, with nothing left over.
    w.write(false, "l.txt", "v3");
    w.settle();
    assert_eq!(w.a.disk.read("l.txt").as_deref(), Some("v3"));
}

/// CI (`tests/locks.rs`, one run in ten): B's next edit of a locked
/// file, seen while its offer of the last one was still on the way to A,
/// waited for A's answer; "queued" did not send it, so it sat at B until
/// the next rescan.
#[test]
fn an_edit_made_while_the_last_was_being_queued_is_queued_too() {
    let mut w = live(NS, NS);
    w.write(true, "l.txt", "v0");
    w.settle();
    w.lock("l.txt");
    w.settle();
    w.write(false, "l.txt", "v1");
    w.run_side(false); // v1 offered; A has not answered yet
    w.write(false, "l.txt", "v2, longer");
    w.run_side(false); // seen while v1's offer is in flight
    w.settle();
    assert_eq!(
        w.a.log.iter().filter(|l| l.starts_with("queued")).count(),
        2,
        "{:?}",
        w.a.log
    );
    w.unlock("l.txt");
    w.settle();
    assert_eq!(w.a.disk.read("l.txt").as_deref(), Some("v2, longer"));
    w.assert_same();
}

/// Simulation seeds 172824 and 28728: `d/e` locked with B's update
/// queued, then `d` locked too: unlocking `d/e` replayed B's file there
/// and made the locked name `d` a folder. The replay now waits for the
/// lock above it.
#[test]
fn a_replay_waits_for_a_lock_on_the_folder_above() {
    let mut w = live(NS, NS);
    w.lock("d/e");
    w.lock("d");
    w.settle();
    w.write(false, "d/e", "from B");
    w.settle();
    w.unlock("d/e");
    w.settle();
    assert!(w.a.disk.entries.is_empty(), "{:?}", w.a.disk.entries);
    assert!(w.a.unlocked.is_empty());
    w.unlock("d");
    w.settle();
    assert_eq!(w.a.disk.read("d/e").as_deref(), Some("from B"));
    assert_eq!(w.a.unlocked.len(), 2);
    w.assert_same();
}

#[test]
fn an_edit_at_a_after_the_update_arrived_supersedes_it() {
    let mut w = live(NS, NS);
    w.write(true, "s.txt", "v0");
    w.settle();
    w.lock("s.txt");
    w.write(false, "s.txt", "from B");
    w.settle();
    w.now += SEC as i64;
    w.write(true, "s.txt", "A's later edit");
    w.settle();
    w.unlock("s.txt");
    w.settle();
    assert_eq!(w.a.unlocked[0][0].outcome, "superseded");
    assert_eq!(w.a.disk.read("s.txt").as_deref(), Some("A's later edit"));
    w.assert_same();
}

/// Simulation seed 23160: a restored older backup at B queued at A was
/// reported superseded at unlock because A's copy was later, though A had
/// not edited it; A then sent its copy back over B's restore. Only an
/// edit made at A after the update arrived (A no longer holds what it
/// held then) supersedes it.
#[test]
fn an_older_backup_queued_at_a_lock_is_applied_at_unlock() {
    let mut w = live(NS, NS);
    w.write(true, "r.txt", "new");
    w.settle();
    w.lock("r.txt");
    w.settle();
    w.write_at(false, "r.txt", "old backup", Some(5));
    w.settle();
    assert_eq!(w.a.disk.read("r.txt").as_deref(), Some("new"));
    w.unlock("r.txt");
    w.settle();
    assert_eq!(w.a.unlocked[0][0].outcome, "applied");
    assert_eq!(w.a.disk.read("r.txt").as_deref(), Some("old backup"));
    assert_eq!(w.b.disk.read("r.txt").as_deref(), Some("old backup"));
    w.assert_same();
}

#[test]
fn a_renamed_file_is_moved_not_resent() {
    let mut w = live(NS, NS);
    w.write(false, "todo.txt", "list");
    w.settle();
    w.b.sent.clear();
    w.mv(false, "todo.txt", "done.txt");
    w.settle();
    w.assert_same();
    assert_eq!(offers(&w.b.sent), 0, "{:?}", w.b.sent);
    assert!(
        w.a.log
            .iter()
            .any(|l| l == "renamed done.txt from todo.txt"),
        "{:?}",
        w.a.log
    );
}

#[test]
fn a_file_edited_in_place_right_after_a_rename_arrives_edited() {
    // The soak's lost edit (seed 1796043644937801266): `mv b-3 b-7`, then
    // b-7 written in place (same inode) before the move went out. The move
    // carries the old content; the edit must follow it as a change.
    let mut w = live(NS, NS);
    w.write(false, "b-3.txt", "first");
    w.settle();
    w.mv(false, "b-3.txt", "b-7.txt");
    w.write(false, "b-7.txt", "second, longer");
    w.settle();
    w.assert_same();
    assert_eq!(w.a.disk.read("b-7.txt").as_deref(), Some("second, longer"));
    assert_eq!(w.a.disk.read("b-3.txt"), None);
}

#[test]
fn a_file_turned_folder_whose_file_is_seen_first_sends_both() {
    // The watcher reports a closed write at once and the new folder 25 ms
    // later: the file inside is observed while its parent is still a file.
    let mut w = live(NS, NS);
    w.write(true, "notes", "a plain file");
    w.settle();
    let now = w.now;
    {
        let s = w.side(true);
        s.disk.entries.remove("notes");
        s.disk.make_parents("notes/monday.txt", now);
        let id = s.disk.ino();
        s.disk.content.insert(id, "now a folder".into());
        s.disk.entries.insert(
            "notes/monday.txt".into(),
            Entry {
                kind: Kind::File,
                size: 12,
                mtime_ns: now,
                mode: Some(0o644),
                id,
                hash: None,
            },
        );
    }
    w.observe(true, "notes/monday.txt", true);
    w.observe(true, "notes", false);
    w.settle();
    w.assert_same();
    assert_eq!(
        w.b.disk.read("notes/monday.txt").as_deref(),
        Some("now a folder")
    );
}

#[test]
fn first_meeting_of_look_alikes_goes_to_a_and_keeps_bs() {
    let mut w = World::new(NS, NS);
    let t = Some(w.now - 100);
    w.write_at(true, "tie", "AAAA", t);
    w.write_at(false, "tie", "BBBB", t);
    w.settle();
    w.connect();
    w.settle();
    w.assert_same();
    assert_eq!(w.b.disk.read("tie").as_deref(), Some("AAAA"));
    assert!(w
        .b
        .disk
        .kept
        .iter()
        .any(|(_, why, c)| *why == KeepWhy::Conflict && c == "BBBB"));
    assert!(w.a.core.path("tie").unwrap().base.is_some());
}

#[test]
fn first_meeting_of_equal_trees_agrees_by_hashes_without_transfers() {
    let mut w = World::new(NS, NS);
    let t = Some(w.now - 100);
    w.write_at(true, "same", "same bytes", t);
    w.write_at(false, "same", "same bytes", t);
    w.settle();
    w.connect();
    w.settle();
    assert_eq!(offers(&w.a.sent) + offers(&w.b.sent), 0);
    assert!(w.a.core.path("same").unwrap().base.is_some());
    assert!(w.a.disk.kept.is_empty() && w.b.disk.kept.is_empty());
}

/// Simulation seed 102675 (and the old `folder_delete_ping_pong`, seed
/// 61): a folder grown at one side against a later delete at the other
/// went back and forth for ever (the grown side kept its folder, the
/// other decided by time). Both changed, the folder stands, on both sides.
#[test]
fn a_changed_folder_stands_against_a_later_delete() {
    use rule::{winner, View, Winner};
    let folder = Holding::Present(Version {
        kind: Kind::Dir,
        size: 0,
        mtime_ns: 5,
        mode: None,
        hash: None,
    });
    let gone = Holding::Absent {
        deleted_ns: Some(9),
    };
    let (f, g) = (
        View {
            now: &folder,
            changed: true,
        },
        View {
            now: &gone,
            changed: true,
        },
    );
    assert_eq!(winner(f, g, Side::B, 1), Winner::Mine);
    assert_eq!(winner(g, f, Side::A, 1), Winner::Theirs);
}

#[test]
fn rule_is_mirror_symmetric() {
    use rule::{winner, View, Winner};
    let v = |t: i64, s: u64| {
        Holding::Present(Version {
            kind: Kind::File,
            size: s,
            mtime_ns: t,
            mode: Some(0o644),
            hash: None,
        })
    };
    let gone = |t: Option<i64>| Holding::Absent { deleted_ns: t };
    let dir = |t: i64| {
        Holding::Present(Version {
            kind: Kind::Dir,
            size: 0,
            mtime_ns: t,
            mode: Some(0o755),
            hash: None,
        })
    };
    let cases = [
        (dir(5), gone(Some(6))),
        (dir(5), gone(Some(4))),
        (v(1, 1), v(2, 2)),
        (v(5, 1), v(5, 2)),
        (v(5, 1), gone(Some(6))),
        (v(5, 1), gone(Some(4))),
        (v(5, 1), gone(None)),
        (v(5, 1), gone(Some(5))),
    ];
    for (x, y) in &cases {
        for (cx, cy) in [(true, true), (false, false), (true, false), (false, true)] {
            let at_a = winner(
                View {
                    now: x,
                    changed: cx,
                },
                View {
                    now: y,
                    changed: cy,
                },
                Side::A,
                1,
            );
            let at_b = winner(
                View {
                    now: y,
                    changed: cy,
                },
                View {
                    now: x,
                    changed: cx,
                },
                Side::B,
                1,
            );
            let mirrored = match at_b {
                Winner::Mine => Winner::Theirs,
                Winner::Theirs => Winner::Mine,
                Winner::Same => Winner::Same,
            };
            assert_eq!(at_a, mirrored, "{x:?} {y:?} {cx} {cy}");
        }
    }
}

#[test]
fn a_restart_over_trees_in_sync_agrees_by_digest_alone() {
    let mut w = live(NS, SEC);
    for i in 0..5 {
        w.write(true, &format!("d/f{i}"), &format!("file {i}"));
    }
    w.settle();
    w.disconnect();
    w.restart(true);
    w.settle();
    w.a.sent.clear();
    w.connect();
    w.settle();
    let inventories =
        w.a.sent
            .iter()
            .filter(|m| matches!(m, PeerMsg::Inventory { .. }))
            .count();
    assert_eq!(inventories, 0, "{:?}", w.a.sent);
    assert!(matches!(w.a.core.link(), LinkPhase::Live { .. }));
    // An edit while down: the digests differ and the edit travels.
    w.disconnect();
    w.write(true, "d/f1", "edited while down");
    w.settle();
    w.connect();
    w.settle();
    assert_eq!(w.b.disk.read("d/f1").as_deref(), Some("edited while down"));
    w.assert_same();
}

/// CI, once under load (`tests/sync.rs`,
/// `folders_are_created_renamed_and_deleted_on_the_other_side`): A's user
/// makes `d1/d2/deep.txt` and `d1/top.txt`; A's watcher reports the files
/// before their folders, the files reach B, which makes `d1` and `d1/d2`
/// to hold them, and A's user moves `d1` to `d3` before A's core has seen
/// `d1`. B offered the two folders it had made as new ones of its own,
/// and A, which knew nothing of them, made them again: the moved folder
/// came back on both sides. Now a folder above a path both sides stored
/// is agreed on both (A's, gone, is then a delete that goes across), and
/// a new folder with the peer's change landing inside waits for it.
/// Both orders of B's watcher: the folders seen before the install
/// reports, and after.
#[test]
fn folders_made_for_the_peers_files_are_not_sent_back() {
    for late in [false, true] {
        let mut w = live(NS, NS);
        w.b.parents_seen_late = late;
        let now = w.now;
        w.a.disk.make_parents("d1/d2/deep.txt", now);
        w.write(true, "d1/d2/deep.txt", "deep");
        w.write(true, "d1/top.txt", "top!");
        // A offers both files; its user moves the folder; B takes the files.
        w.run_side(true);
        w.mv(true, "d1", "d3");
        w.run_side(false);
        w.settle();
        w.assert_same();
        assert_eq!(w.b.disk.read("d3/top.txt").as_deref(), Some("top!"));
        assert_eq!(w.b.disk.read("d3/d2/deep.txt").as_deref(), Some("deep"));
        assert!(
            !w.b.disk.entries.contains_key("d1"),
            "late: {late}: {:?} / A: {:?} B: {:?}",
            w.b.disk.entries.keys(),
            w.a.log,
            w.b.log
        );
        for log in [&w.a.log, &w.b.log] {
            assert!(
                !log.iter()
                    .any(|l| l == "created d1" || l == "created d1/d2"),
                "late: {late}: {log:?}"
            );
        }
        // Nothing sent twice: the files moved.
        assert_eq!(offers(&w.a.sent), 2, "late: {late}: {:?}", w.a.sent);
    }
}

/// A delete made while the peer is away is remembered for
/// `keep_deletes_ns` (its age kept across a restart), so the peer's
/// unchanged copy does not come back; once older, it is forgotten and the
/// peer's copy comes back as a new file (the risk the README states).
#[test]
fn a_delete_is_remembered_for_keep_deletes_then_forgotten() {
    const KEEP: i64 = 3600 * SEC as i64;
    for (away, back) in [(KEEP - 60 * SEC as i64, false), (KEEP + SEC as i64, true)] {
        let mut w = live(NS, NS);
        let mut cfg = w.a.core.config().clone();
        cfg.keep_deletes_ns = KEEP;
        w.a.core = Core::new(cfg, Vec::new());
        w.disconnect();
        w.restart(true);
        w.settle();
        w.connect();
        w.settle();
        w.write(true, "gone", "1");
        w.settle();
        assert_eq!(w.b.disk.read("gone").as_deref(), Some("1"));
        w.disconnect();
        w.rm(true, "gone");
        w.settle();
        w.now += away;
        w.restart(true);
        w.settle();
        let remembered = w.a.core.path("gone").is_some();
        assert_eq!(remembered, !back, "away {away} ns");
        w.connect();
        w.settle();
        w.assert_same();
        assert_eq!(w.a.disk.read("gone").is_some(), back, "away {away} ns");
        let said = w.a.log.iter().any(|l| l.starts_with("forgotten gone"));
        assert_eq!(said, back, "{:?}", w.a.log);
    }
}

/// A chmod (or an edit) at the receiver between an install's rename and
/// its re-stat is a change of that side, not the agreed version: it goes
/// back (CI, tests/sync.rs `permission_bits_travel_both_ways`: B's chmod
/// right after A's mode landed was taken as agreed and never sent).
#[test]
fn a_change_slipping_in_after_an_install_goes_back() {
    let mut w = live(NS, NS);
    w.write(true, "s.sh", "#!/bin/sh");
    w.settle();
    w.b.chmod_after_install = Some(0o755);
    w.write(true, "s.sh", "#!/bin/sh\necho");
    w.settle();
    assert_eq!(w.b.chmod_after_install, None, "B installed");
    let mode = |s: &super::sim_fs::SideSim| s.disk.entries["s.sh"].mode;
    assert_eq!(mode(&w.b), Some(0o755));
    assert_eq!(mode(&w.a), Some(0o755), "{:?}\n{:?}", w.a.log, w.b.log);
    assert_eq!(w.a.disk.read("s.sh").as_deref(), Some("#!/bin/sh\necho"));
    w.assert_same();
}

/// A delete right after an install's rename, seen before the install
/// reports, is not taken back by the install's older re-stat: the path is
/// looked at again, and the delete goes (CI, tests/web_versions.rs: A's
/// delete right after B's update landed waited for the rescan).
#[test]
fn a_delete_seen_before_the_install_reports_goes() {
    let mut w = live(NS, NS);
    w.write(true, "notes.txt", "first");
    w.settle();
    w.b.rm_before_install_reports = true;
    w.write(true, "notes.txt", "second, longer");
    w.settle();
    assert!(!w.b.rm_before_install_reports, "B installed");
    assert_eq!(
        w.a.disk.read("notes.txt"),
        None,
        "{:?}\n{:?}",
        w.a.log,
        w.b.log
    );
    w.assert_same();
}

#[test]
fn a_delete_made_after_an_answer_was_lost_wins() {
    // Seen in CI (tests/sync_restart.rs): B stored A's new file and
    // journalled it as agreed; the link dropped before A heard so. B's
    // user deleted it; at reconnect A, for which the file was still a new
    // name, sent it again and B took it back.
    let mut w = live(NS, NS);
    w.write(true, "keep", "k");
    w.settle();
    w.b.answer_lost = true;
    w.write(true, "gone", "1");
    w.settle();
    assert!(!w.b.answer_lost, "B answered");
    assert!(!w.up);
    assert_eq!(w.b.disk.read("gone").as_deref(), Some("1"));
    assert!(w.a.core.path("gone").unwrap().base.is_none());
    w.rm(false, "gone");
    w.settle();
    w.restart(false);
    w.settle();
    w.connect();
    w.settle();
    w.assert_same();
    assert_eq!(w.a.disk.read("gone"), None, "{:?}", w.a.log);
    // Nothing was lost: A keeps what the delete took.
    assert_eq!(
        w.a.disk
            .kept
            .iter()
            .map(|k| k.0.as_str())
            .collect::<Vec<_>>(),
        ["gone"]
    );
}

#[test]
fn a_file_renamed_then_deleted_after_the_moves_answer_was_lost_stays_deleted() {
    // The soak's resurrection (seed 1796116140923294949, debug build under
    // load): A renamed docs/old/a-57.txt to a-90.txt, B moved its copy and
    // journalled a-90.txt as agreed, and A was killed before it heard so.
    // A's user deleted a-90.txt while A was down; at restart A had no
    // record of the new name (a move's target was not journalled as
    // offered, as a new file's offer is), B's copy counted as unchanged
    // since agreed, and it came back to A.
    let mut w = live(NS, NS);
    w.write(true, "old.txt", "v1");
    w.settle();
    w.assert_same();
    w.b.answer_lost = true;
    w.mv(true, "old.txt", "new.txt");
    w.settle();
    assert!(!w.b.answer_lost, "B answered");
    assert!(!w.up);
    assert_eq!(w.b.disk.read("new.txt").as_deref(), Some("v1"));
    assert!(w.a.core.path("new.txt").unwrap().base.is_none());
    // Killed before it heard; its user deletes the new name meanwhile.
    w.restart(true);
    w.rm(true, "new.txt");
    w.settle();
    w.connect();
    w.settle();
    w.assert_same();
    assert_eq!(w.a.disk.read("new.txt"), None, "{:?}", w.a.log);
    assert_eq!(w.b.disk.read("new.txt"), None, "{:?}", w.b.log);
    assert_eq!(w.a.disk.read("old.txt"), None);
    // Nothing was lost: B keeps what the delete took.
    assert_eq!(
        w.b.disk
            .kept
            .iter()
            .map(|k| k.0.as_str())
            .collect::<Vec<_>>(),
        ["new.txt"]
    );
}

#[test]
fn a_folder_renamed_then_deleted_after_the_moves_answer_was_lost_stays_deleted() {
    // The folder form of the test above: what the moved folder holds is
    // new names here too until the answer comes.
    let mut w = live(NS, NS);
    w.write(true, "d/f.txt", "v1");
    w.settle();
    w.assert_same();
    w.b.answer_lost = true;
    w.mv(true, "d", "e");
    w.settle();
    assert!(!w.b.answer_lost, "B answered");
    assert_eq!(w.b.disk.read("e/f.txt").as_deref(), Some("v1"));
    w.restart(true);
    w.rm(true, "e");
    w.settle();
    w.connect();
    w.settle();
    w.assert_same();
    assert_eq!(w.a.disk.read("e/f.txt"), None, "{:?}", w.a.log);
    assert_eq!(w.b.disk.read("e/f.txt"), None, "{:?}", w.b.log);
}

/// Issue 10: operation numbers started at 1 again at each start. A's
/// offer of `x` was stored at B and its answer lost with the link; A,
/// restarted, offered its edit of `x` since as its new run's first
/// operation, of the same number as the first run's. The first run's
/// answer, coming late, was taken for the new offer's: A took its edit
/// as agreed while B held the first version. Operation numbers now
/// carry the run (`Config::run`): the late answer names no operation of
/// this run, and the new offer still waits for its own.
#[test]
fn a_late_answer_to_an_earlier_runs_operation_is_not_a_new_ones() {
    let mut w = live(NS, NS);
    w.b.answer_lost = true;
    w.write(true, "x", "one");
    w.settle();
    assert!(!w.b.answer_lost && !w.up, "B's answer was lost");
    let first = (w.a.sent.iter())
        .find_map(|m| match m {
            PeerMsg::Offer { op, path, .. } if path == "x" => Some(*op),
            _ => None,
        })
        .expect("A offered x");
    let stored = w.b.core.path("x").and_then(|s| s.base.clone());
    let landed = stored.expect("B stored x").version;
    w.restart(true);
    w.write(true, "x", "two");
    w.settle();
    w.connect();
    let offered = |w: &World| match w.a.core.path("x").and_then(|s| s.pending.as_deref()) {
        Some(Pending::Offered { op, .. }) => Some(*op),
        _ => None,
    };
    let mut new = None;
    for _ in 0..100 {
        w.run_side(true);
        new = offered(&w);
        if new.is_some() {
            break;
        }
        w.run_side(false);
    }
    let new = new.expect("A offered its edit of x again");
    // The case of the bug: the same number within its run (numbered from
    // 1 at each start, the late answer would name the new offer).
    let within = |op: OpId| op & ((1 << OP_RUN_SHIFT) - 1);
    assert_eq!(within(first), within(new), "{first} {new}");
    assert_ne!(first, new);
    w.hand(
        true,
        PeerMsg::Stored {
            op: first,
            path: "x".into(),
            landed: Some(landed),
        },
    );
    w.run_side(true);
    assert_eq!(
        offered(&w),
        Some(new),
        "the late answer ended the new offer"
    );
    w.settle();
    w.assert_same();
    assert_eq!(w.b.disk.read("x").as_deref(), Some("two"));
}

/// Row 2 of the sync bench (10,000 files into an empty B): B has no file
/// changed of its own, so no look-alike to hash, whatever A's inventory
/// holds; its (empty) hashes go with its inventory, and A offers once it
/// has both, without waiting for B to read A's whole inventory first (a
/// serial step of the start).
#[test]
fn a_side_with_nothing_changed_sends_its_hashes_with_its_inventory() {
    let mut w = World::new(NS, NS);
    for i in 0..3 {
        w.write(true, &format!("d/f{i}"), &format!("file {i}"));
    }
    w.settle();
    let now = w.now;
    let up = || Input::LinkUp {
        peer: FsTraits::default(),
    };
    let sends = |fx: Vec<Effect>| -> Vec<PeerMsg> {
        fx.into_iter()
            .filter_map(|e| match e {
                Effect::Send(m) => Some(m),
                _ => None,
            })
            .collect()
    };
    let da = sends(w.a.core.handle(now, up()));
    let db = sends(w.b.core.handle(now, up()));
    let to_a = sends(w.b.core.handle(now, Input::Peer(da[0].clone())));
    assert!(
        matches!(to_a.last(), Some(PeerMsg::Hashes { hashes }) if hashes.is_empty()),
        "{to_a:?}"
    );
    // A has files changed here: its hashes wait for B's inventory.
    let to_b = sends(w.a.core.handle(now, Input::Peer(db[0].clone())));
    assert!(
        !to_b.iter().any(|m| matches!(m, PeerMsg::Hashes { .. })),
        "{to_b:?}"
    );
    let mut fx = Vec::new();
    for m in to_a {
        fx.extend(w.a.core.handle(now, Input::Peer(m)));
    }
    assert_eq!(
        fx.iter()
            .filter(|e| matches!(e, Effect::SendFile { .. }))
            .count(),
        3,
        "{fx:?}"
    );
}
