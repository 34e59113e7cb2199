//! A restore killed in its most delicate moment (issue 12; CONTRACT.md,
//! "Safety": a kill -9 at any moment loses no data): once what the path
//! held is kept as a version and before the restored copy is renamed over
//! it. The path must hold its old content there (never only the versions),
//! and after the restart every version is still kept, none twice.
//!
//! The window is made wide by the servers' test-only
//! `LAB3_TEST_RESTORE_HOLD=FILE` (a restore waits there while FILE exists).

use lab3_tests::*;

/// The contract's 5 seconds, with slack for a loaded machine and a debug build.
const SECS: u64 = 10;

/// The (id, size) of each of Server A's own versions of `path`, newest first.
fn versions_at_a(pair: &Pair, path: &str) -> Vec<(String, u64)> {
    let doc: serde_json::Value =
        serde_json::from_str(&assert_ok(&pair.lab3(&["versions", path, "--json"]))).unwrap();
    doc["versions"]
        .as_array()
        .expect("a versions array")
        .iter()
        .filter(|v| v["side"] == "a")
        .map(|v| {
            (
                v["id"].as_str().unwrap().to_string(),
                v["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_restore_killed_before_its_rename_leaves_the_file_in_place_and_every_version_kept() {
    let flags = tempfile::tempdir().unwrap();
    let hold = flags.path().join("hold");
    let hold_env = hold.to_str().unwrap();
    let mut pair =
        Pair::start_with_env(&[], &[("LAB3_TEST_RESTORE_HOLD", hold_env)], &[], |_, _| {});
    let (fa, fb) = (pair.dir_a.join("notes.txt"), pair.dir_b.join("notes.txt"));
    pair.wait_linked(20);
    write_file(&pair.dir_a, "notes.txt", b"first", None);
    pair.wait_same(SECS, "notes.txt");
    // B's update replaces A's copy: A keeps "first".
    write_file(&pair.dir_b, "notes.txt", b"second, longer", None);
    pair.wait(SECS, "B's update at A", || holds(&fa, b"second, longer"));
    pair.wait_journaled(SECS);
    let before = versions_at_a(&pair, "notes.txt");
    assert_eq!(before.len(), 1, "{before:?}");
    let (first_id, _) = before[0].clone();

    // The restore of "first" stops after keeping "second, longer", before
    // its rename; Server A is killed there.
    std::fs::write(&hold, b"").unwrap();
    let mut restore = Running::lab3(
        &pair.a.addr,
        &["restore", "notes.txt", "--version", &first_id],
    );
    pair.wait(SECS, "the restore to reach its window", || {
        pair.a.logged(&["restore held before its rename"])
    });
    assert!(holds(&fa, b"second, longer"), "the path is never empty");
    pair.a.kill();
    std::fs::remove_file(&hold).unwrap();
    let status = restore.wait_exit(std::time::Duration::from_secs(SECS));
    assert!(
        status.is_some_and(|s| !s.success()),
        "lab3 saw the kill: {status:?}\n{}",
        restore.output()
    );
    assert!(
        holds(&fa, b"second, longer"),
        "the path still holds its content after the kill"
    );

    // After the restart: the file is there, both versions are kept (the
    // restored one, and what the restore had kept), and B never changed.
    pair.restart_a();
    pair.wait_linked(20);
    assert!(holds(&fa, b"second, longer"), "{}", pair.output());
    let after = versions_at_a(&pair, "notes.txt");
    let sizes: Vec<u64> = after.iter().map(|v| v.1).collect();
    assert_eq!(sizes, vec![14, 5], "{after:?}");
    assert_eq!(
        after[1].0, first_id,
        "the restored version is kept, under its ID"
    );
    assert!(holds(&fb, b"second, longer"), "{}", pair.output());
    let temps: Vec<String> = files_in(&pair.dir_a)
        .into_iter()
        .filter(|n| n.contains(".lab3-"))
        .collect();
    assert!(temps.is_empty(), "temporaries in the folder: {temps:?}");

    // The restore, done again, completes: what it replaces is kept once
    // (the link the first try made is found, not kept a second time).
    let out = pair.lab3(&["restore", "notes.txt", "--version", &first_id]);
    assert!(assert_ok(&out).contains("restored notes.txt"));
    pair.wait(SECS, "the restored version on both sides", || {
        holds(&fa, b"first") && holds(&fb, b"first")
    });
    let last = versions_at_a(&pair, "notes.txt");
    let sizes: Vec<u64> = last.iter().map(|v| v.1).collect();
    assert_eq!(sizes, vec![14, 5], "{last:?}");
}

/// An ordinary restore over a file replaces it in one step: the new
/// content lands under a new inode, and the old file is kept as the very
/// file it was (a hard link made before the rename, not a copy).
#[cfg(unix)]
#[test]
fn a_restore_keeps_the_file_it_replaces_as_itself() {
    let pair = Pair::start_linked();
    let fa = pair.dir_a.join("r.txt");
    write_file(&pair.dir_a, "r.txt", b"one", None);
    pair.wait_same(SECS, "r.txt");
    write_file(&pair.dir_b, "r.txt", b"two!", None);
    pair.wait(SECS, "B's update at A", || holds(&fa, b"two!"));
    pair.wait_journaled(SECS);
    let replaced = inode(&fa).unwrap();
    let id = versions_at_a(&pair, "r.txt")[0].0.clone();
    assert_ok(&pair.lab3(&["restore", "r.txt", "--version", &id]));
    assert!(holds(&fa, b"one"));
    assert_ne!(inode(&fa), Some(replaced));
    let kept = state_holds(&pair.state_a, b"two!").expect("the replaced file is kept");
    assert_eq!(
        inode(&kept),
        Some(replaced),
        "kept as itself: {}",
        kept.display()
    );
    pair.wait(SECS, "the restore at B", || {
        holds(&pair.dir_b.join("r.txt"), b"one")
    });
}
