//! The inotify watch limit (issue 15): a server that cannot watch every
//! folder says so once, with the command that raises the limit, on its
//! console and in `lab3 status`, and the folders beyond it still sync
//! (rescanned every 3 s).
//!
//! The real limit (`fs.inotify.max_user_watches`) is per user and
//! machine-wide, so lowering it would break every other program and test
//! running meanwhile: the failure is injected instead, with the servers'
//! test-only `LAB3_TEST_MAX_WATCHES=N` (watch at most N folders, then fail
//! as the kernel does at its limit).

use lab3_tests::*;

/// The contract's 5 seconds, with slack for a loaded machine.
const SECS: u64 = 15;

#[test]
fn the_watch_limit_is_reported_once_and_folders_beyond_it_still_sync() {
    // Five folders at A: the root and d1 are watched, d2 and below not.
    let pair = Pair::start_with_env(&[], &[("LAB3_TEST_MAX_WATCHES", "2")], &[], |dir_a, _| {
        std::fs::create_dir_all(dir_a.join("d1/d2/d3/d4")).unwrap();
    });
    let (a, dir_a, dir_b) = (&pair.a, &pair.dir_a, &pair.dir_b);
    let output = || pair.output();
    let advice = [
        "inotify watch limit",
        "sudo sysctl fs.inotify.max_user_watches=",
    ];
    assert!(
        wait_until(std::time::Duration::from_secs(SECS), || a.logged(&advice)),
        "A never said it hit the watch limit\n{}",
        output()
    );
    assert!(wait_until(std::time::Duration::from_secs(SECS), || {
        a.logged(&["reconciled with server B"])
    }));

    // A file made deep below the limit, and one in a new folder, reach B.
    write_file(dir_a, "d1/d2/d3/d4/deep.txt", b"deep", None);
    write_file(dir_a, "fresh/new.txt", b"new", None);
    for rel in ["d1/d2/d3/d4/deep.txt", "fresh/new.txt"] {
        assert!(
            wait_until(std::time::Duration::from_secs(SECS), || same_file(
                &dir_a.join(rel),
                &dir_b.join(rel)
            )),
            "{rel} never reached B\n{}",
            output()
        );
    }

    // lab3 status says it, with the command, and whose limit it is.
    let out = assert_ok(&lab3(&a.addr, &["status", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let said = doc["link"]["watch_limit"].as_str().unwrap_or_default();
    assert!(
        said.starts_with("server A: ") && advice.iter().all(|w| said.contains(w)),
        "{doc}"
    );
    let table = assert_ok(&lab3(&a.addr, &["status"]));
    assert!(
        table.contains("Watching") && table.contains("sysctl"),
        "{table}"
    );

    // Said once, however many folders it could not watch.
    let times = a
        .stderr
        .lock()
        .unwrap()
        .iter()
        .filter(|l| advice.iter().all(|w| l.contains(w)))
        .count();
    assert_eq!(times, 1, "{}", output());
}

#[test]
fn a_pair_within_the_limit_says_every_folder_is_watched() {
    let pair = Pair::start_linked();
    let table = assert_ok(&pair.lab3(&["status"]));
    assert!(table.contains("every folder"), "{table}");
    let out = assert_ok(&pair.lab3(&["status", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(doc["link"]["watch_limit"].is_null(), "{doc}");
}
