//! Locks at Server A and the FIFO queues of Server B's updates, end to end.

use std::path::Path;

use lab3_tests::*;

/// A synced pair holding `f.txt` (and `other.txt`) on both sides.
fn synced_pair() -> Pair {
    let pair = Pair::start_with(|a, _| {
        write_file(a, "f.txt", b"v0", Some(1_700_000_000_000_000_000));
        write_file(a, "other.txt", b"o0", Some(1_700_000_000_000_000_000));
    });
    pair.wait(20, "initial sync", || {
        read(&pair.dir_b.join("f.txt")).as_deref() == Some(b"v0")
            && pair.dir_b.join("other.txt").exists()
    });
    pair
}

fn queued(pair: &Pair, name: &str) -> u64 {
    let doc = pair.listing();
    doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .map_or(0, |f| f["queued"].as_u64().unwrap())
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "lab3 failed: {}", text(&out.stderr));
    text(&out.stdout)
}

fn edit_on_b(pair: &Pair, content: &[u8], mtime_ns: i64, expect_queued: u64) {
    // Staged and renamed into place: B never sees the new content with the
    // write's own mtime before set_mtime (a version that would be queued too).
    pair.put(&pair.dir_b, "f.txt", content, mtime_ns);
    pair.wait(20, "the update to be queued", || {
        queued(pair, "f.txt") == expect_queued
    });
}

#[test]
fn three_updates_wait_in_order_and_apply_on_unlock() {
    let pair = synced_pair();
    assert_eq!(ok(&pair.lab3(&["-lock", "-0"])).trim(), "locked f.txt");
    edit_on_b(&pair, b"v1", 1_700_000_001_000_000_000, 1);
    edit_on_b(&pair, b"v2", 1_700_000_002_000_000_000, 2);
    edit_on_b(&pair, b"v3!", 1_700_000_003_000_000_007, 3);
    // Meanwhile A's copy is untouched, and other files still sync.
    assert_eq!(read(&pair.dir_a.join("f.txt")).unwrap(), b"v0");
    write_file(&pair.dir_b, "other.txt", b"o1", None);
    pair.wait(20, "an unlocked file to sync", || {
        read(&pair.dir_a.join("other.txt")).as_deref() == Some(b"o1")
    });
    let doc = pair.listing();
    let row = &doc["files"][0];
    assert_eq!(
        (row["locked"].as_bool(), row["queued"].as_u64()),
        (Some(true), Some(3))
    );

    let out: serde_json::Value =
        serde_json::from_str(&ok(&pair.lab3(&["--json", "-unlock", "-0"]))).unwrap();
    assert_eq!(out["unlocked"], "f.txt");
    let seqs: Vec<_> = out["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert!(out["updates"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["outcome"] == "applied"));
    assert_eq!(read(&pair.dir_a.join("f.txt")).unwrap(), b"v3!");
    assert_eq!(
        mtime_ns(&pair.dir_a.join("f.txt")),
        Some(1_700_000_003_000_000_007)
    );
    let applied = || -> Vec<String> {
        let out = pair.a.stdout.lock().unwrap();
        (out.iter())
            .filter(|l| l.contains("applied") && l.contains("f.txt"))
            .cloned()
            .collect()
    };
    // The console is written a moment later than the reply.
    pair.wait(5, "three 'applied' lines on A's console", || {
        applied().len() >= 3
    });
    let applied = applied();
    assert_eq!(applied.len(), 3, "{applied:?}");
    assert!(applied[0].contains("#1") && applied[2].contains("#3"));
    // Afterwards the file syncs as any other.
    write_file(&pair.dir_b, "f.txt", b"v4", None);
    pair.wait(20, "sync after unlock", || {
        read(&pair.dir_a.join("f.txt")).as_deref() == Some(b"v4")
    });
}

#[test]
fn a_queued_delete_applies_on_unlock() {
    let pair = synced_pair();
    ok(&pair.lab3(&["lock", "f.txt"]));
    std::fs::remove_file(pair.dir_b.join("f.txt")).unwrap();
    pair.wait(20, "the delete to be queued", || {
        pair.a.said(&["queued", "f.txt"])
    });
    assert!(pair.dir_a.join("f.txt").exists());
    let out = ok(&pair.lab3(&["unlock", "f.txt"]));
    assert!(out.contains("delete") && out.contains("applied"), "{out}");
    assert!(!pair.dir_a.join("f.txt").exists());
}

#[test]
fn an_update_older_than_a_later_edit_at_a_is_superseded() {
    let pair = synced_pair();
    ok(&pair.lab3(&["-lock", "-0"]));
    edit_on_b(&pair, b"from b", 1_700_000_001_000_000_000, 1);
    // A edits its copy afterwards (a later mtime); that edit still travels to B.
    write_file(
        &pair.dir_a,
        "f.txt",
        b"from a",
        Some(1_700_000_005_000_000_000),
    );
    pair.wait(20, "A's edit to reach B", || {
        read(&pair.dir_b.join("f.txt")).as_deref() == Some(b"from a")
    });
    let out = ok(&pair.lab3(&["-unlock", "-0"]));
    assert!(out.contains("superseded"), "{out}");
    assert_eq!(read(&pair.dir_a.join("f.txt")).unwrap(), b"from a");
}

#[test]
fn a_lock_and_its_queue_survive_kill_9_of_either_server() {
    let mut pair = synced_pair();
    ok(&pair.lab3(&["-lock", "-0"]));
    edit_on_b(&pair, b"v1", 1_700_000_001_000_000_000, 1);
    pair.restart_a();
    pair.restart_b();
    edit_on_b(&pair, b"v2", 1_700_000_002_000_000_000, 2);
    assert_eq!(read(&pair.dir_a.join("f.txt")).unwrap(), b"v0");
    let out = ok(&pair.lab3(&["locks"]));
    assert!(out.contains("f.txt") && out.contains("2 queued"), "{out}");
    ok(&pair.lab3(&["-unlock", "-0"]));
    assert_eq!(read(&pair.dir_a.join("f.txt")).unwrap(), b"v2");
}

#[test]
fn a_lock_on_a_file_only_at_b_holds_it_back() {
    let pair = synced_pair();
    ok(&pair.lab3(&["lock", "--new", "new.txt"]));
    write_file(&pair.dir_b, "new.txt", b"hello", None);
    pair.wait(20, "the create to be queued", || {
        pair.a.said(&["queued", "new.txt"])
    });
    assert!(!pair.dir_a.join("new.txt").exists());
    ok(&pair.lab3(&["unlock", "new.txt"]));
    assert_eq!(read(&pair.dir_a.join("new.txt")).unwrap(), b"hello");
}

#[test]
fn bad_index_and_double_lock_or_unlock_are_clear_errors() {
    let pair = synced_pair();
    let fail = |args: &[&str], words: &[&str]| {
        let out = pair.lab3(args);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(out.stdout.is_empty());
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("lab3: ") && words.iter().all(|w| err.contains(w)),
            "{err}"
        );
    };
    fail(&["-lock", "-7"], &["7", "0 to 1"]);
    fail(&["-unlock", "-0"], &["f.txt", "not locked"]);
    ok(&pair.lab3(&["-lock", "-1"]));
    fail(&["-lock", "-1"], &["other.txt", "already locked"]);
    fail(&["lock", "--new", "../escape"], &["refused"]);
    fail(&["-lock"], &[]);
}

#[test]
fn lock_state_is_kept_in_the_state_directory_only() {
    let pair = synced_pair();
    ok(&pair.lab3(&["-lock", "-0"]));
    assert!(Path::new(&pair.state_a).join("locks/table.json").exists());
    let names: Vec<_> = std::fs::read_dir(&pair.dir_a)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}
