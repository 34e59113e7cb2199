//! `lab3 versions` and `lab3 restore` (issue 12; CONTRACT.md, "Versions"):
//! what sync replaces or deletes at a side is kept there, listed for both
//! sides, and put back as a new change that syncs; at Server B through
//! Server A; bad paths and IDs fail with one line.

use lab3_tests::*;

/// The contract's 5 seconds, with slack for a loaded machine and a debug build.
const SECS: u64 = 10;

/// `lab3 versions PATH --json` at `server`, parsed.
fn versions(server: &str, path: &str) -> serde_json::Value {
    let out = lab3(server, &["versions", path, "--json"]);
    serde_json::from_str(&assert_ok(&out)).expect("versions --json prints JSON")
}

#[test]
fn an_update_and_a_delete_from_the_peer_are_kept_listed_and_restored_on_both_sides() {
    let pair = Pair::start_linked();
    let (fa, fb) = (pair.dir_a.join("notes.txt"), pair.dir_b.join("notes.txt"));
    write_file(&pair.dir_a, "notes.txt", b"first", None);
    pair.wait_same(SECS, "notes.txt");
    assert_eq!(
        version_summary(&versions(&pair.a.addr, "notes.txt")),
        vec![]
    );

    // An update from B replaces A's copy: A keeps what it held.
    write_file(&pair.dir_b, "notes.txt", b"second, longer", None);
    pair.wait(SECS, "B's update at A", || holds(&fa, b"second, longer"));
    let doc = versions(&pair.a.addr, "notes.txt");
    assert_eq!(
        version_summary(&doc),
        vec![("a".into(), "replaced".into(), 5)],
        "{doc}"
    );
    assert_eq!(doc["peer"], "connected");
    let first_id = doc["versions"][0]["id"].as_str().unwrap().to_string();
    assert!(
        first_id.starts_with("a-") && first_id.len() == 10,
        "{first_id}"
    );
    let v = &doc["versions"][0];
    assert_eq!(v["path"], "notes.txt");
    for field in ["kept", "modified"] {
        let t = v[field].as_str().unwrap();
        assert!(t.ends_with('Z') && t.contains('T'), "{field}: {t}");
    }
    assert!(v["mode"].as_str().is_some_and(|m| m.len() == 4), "{v}");

    // A delete from A removes B's copy: B keeps it.
    std::fs::remove_file(&fa).unwrap();
    pair.wait(SECS, "the delete at B", || !fb.exists());
    let doc = versions(&pair.a.addr, "notes.txt");
    assert_eq!(
        version_summary(&doc),
        vec![
            ("b".into(), "deleted".into(), 14),
            ("a".into(), "replaced".into(), 5)
        ],
        "{doc}"
    );
    // The ID is stable: the same version, the same ID.
    assert_eq!(doc["versions"][1]["id"], first_id.as_str());

    // The table, for people.
    let table = assert_ok(&pair.lab3(&["versions", "notes.txt"]));
    assert!(
        table.contains(&first_id) && table.contains("deleted") && table.contains("replaced"),
        "{table}"
    );

    // Restore with no ID: the newest, B's, put back at B; it syncs to A.
    let out = pair.lab3(&["restore", "notes.txt", "--json"]);
    let done: serde_json::Value = serde_json::from_str(&assert_ok(&out)).unwrap();
    assert_eq!(done["restored"], "notes.txt");
    assert_eq!(done["version"]["side"], "b");
    pair.wait(SECS, "the restore to reach both sides", || {
        holds(&fa, b"second, longer") && holds(&fb, b"second, longer")
    });
    pair.wait_same(SECS, "notes.txt");

    // Restore A's older version by its ID: what it replaces is kept in turn.
    let out = pair.lab3(&["restore", "notes.txt", "--version", &first_id]);
    let said = assert_ok(&out);
    assert!(
        said.contains("restored notes.txt") && said.contains(&first_id),
        "{said}"
    );
    pair.wait(SECS, "the older version on both sides", || {
        holds(&fa, b"first") && holds(&fb, b"first")
    });
    pair.wait(SECS, "the replaced copies kept at both sides", || {
        let s = version_summary(&versions(&pair.a.addr, "notes.txt"));
        let a = s.iter().filter(|v| v.0 == "a" && v.2 == 14).count();
        let b = s.iter().filter(|v| v.0 == "b" && v.2 == 14).count();
        a >= 1 && b >= 2
    });
    assert!(pair.a.said(&["restored", "notes.txt"]), "{}", pair.output());
    assert!(pair.b.said(&["restored", "notes.txt"]), "{}", pair.output());
}

#[test]
fn server_b_answers_versions_itself_when_a_is_down_and_restores_its_own() {
    // Server A on a port chosen before B starts, so that B knows where A
    // answers clients (`--server-a`).
    let root = tempfile::tempdir().unwrap();
    let dirs = ["a", "a-state", "b", "b-state"].map(|n| root.path().join(n));
    let a_addr = dead_addr();
    let start_a_at = |dirs: &[std::path::PathBuf; 4], b: &str| {
        let p = |i: usize| dirs[i].display().to_string();
        let args = [
            "--dir",
            &p(0),
            "--state-dir",
            &p(1),
            "--listen",
            &a_addr,
            "--peer",
            b,
        ];
        Server::start("server_a", args.iter().map(|s| s.to_string()).collect())
    };
    let b = start_b(
        &dirs[2],
        &dirs[3],
        "127.0.0.1:0",
        &["--server-a".into(), a_addr.clone()],
    );
    let a = start_a_at(&dirs, &b.addr);
    let mut pair = Pair::from_parts(root, dirs.clone(), a, b);
    pair.wait_linked(20);
    let fb = pair.dir_b.join("data.csv");
    write_file(&pair.dir_b, "data.csv", b"b's first", None);
    pair.wait_same(SECS, "data.csv");
    write_file(&pair.dir_a, "data.csv", b"a's update", None);
    pair.wait(SECS, "A's update at B", || holds(&fb, b"a's update"));

    // Through B while A is up: A's answer, both sides.
    let doc = versions(&pair.b.addr, "data.csv");
    assert_eq!(doc["answered_by"], "b", "{doc}");
    assert_eq!(doc["peer"], "connected", "{doc}");
    assert_eq!(
        version_summary(&doc),
        vec![("b".into(), "replaced".into(), 9)]
    );

    pair.a.kill();
    let doc = versions(&pair.b.addr, "data.csv");
    assert_eq!(doc["answered_by"], "b", "{doc}");
    assert_eq!(doc["peer"], "unreachable");
    assert_eq!(
        version_summary(&doc),
        vec![("b".into(), "replaced".into(), 9)]
    );
    let id = doc["versions"][0]["id"].as_str().unwrap().to_string();
    assert_ok(&lab3(
        &pair.b.addr,
        &["restore", "data.csv", "--version", &id],
    ));
    assert!(holds(&fb, b"b's first"), "{}", pair.output());
    // A's side cannot be restored through B while A is down: one line.
    let out = lab3(
        &pair.b.addr,
        &["restore", "data.csv", "--version", "a-00000000"],
    );
    let line = assert_one_line_error(&out);
    assert!(line.contains("server A"), "{line}");

    // A back up: B's restore reaches it.
    pair.a = start_a_at(&dirs, &pair.b.addr);
    pair.wait(20, "B's restore at A", || {
        holds(&pair.dir_a.join("data.csv"), b"b's first")
    });
}

#[test]
fn a_bad_path_or_version_gives_one_line_and_a_failure() {
    let pair = Pair::start_linked();
    write_file(&pair.dir_a, "kept.txt", b"one", None);
    pair.wait_same(SECS, "kept.txt");
    write_file(&pair.dir_b, "kept.txt", b"two", None);
    pair.wait(SECS, "B's update at A", || {
        version_summary(&versions(&pair.a.addr, "kept.txt")).len() == 1
    });
    let cases: [&[&str]; 8] = [
        &["versions", "../outside"],
        &["versions", "/etc/passwd"],
        // (A server takes an empty path for every file's versions: the
        // web page's view; lab3 wants a file.)
        &["versions", ""],
        &["restore", ""],
        &["restore", "kept.txt", "--version", "a-00000000"],
        &["restore", "kept.txt", "--version", "nonsense"],
        &["restore", "never-kept.txt"],
        &["restore"],
    ];
    for args in cases {
        let out = pair.lab3(args);
        let line = assert_one_line_error(&out);
        assert!(line.len() > 10, "{args:?}: {line}");
        // README, "Exit codes": 2 for a malformed command (no path), 1
        // for an operation that failed.
        let code = if args.len() == 1 { 2 } else { 1 };
        assert_eq!(out.status.code(), Some(code), "{args:?}: {line}");
    }
    let line = assert_one_line_error(&pair.lab3(&["restore", "never-kept.txt"]));
    assert!(line.contains("no kept versions"), "{line}");
    // Nothing changed.
    assert!(holds(&pair.dir_a.join("kept.txt"), b"two"));
    assert_ok(&pair.lab3(&["versions", "never-kept.txt"]));
}

/// `n` bytes, all `c`.
fn bytes(n: usize, c: u8) -> Vec<u8> {
    vec![c; n]
}

#[test]
fn versions_expire_by_age_at_start_and_by_the_cap_oldest_first_and_status_counts_them() {
    let mut ancient = None;
    let pair = Pair::start_with_args(&["--versions-cap", "1000"], |dir_a, _| {
        // A version kept in 2020: past the 30 days, gone at start.
        let at = dir_a
            .parent()
            .unwrap()
            .join("state_a/versions/20200101T000000.000000000Z");
        write_file(&at, "ancient.txt", b"from long ago", None);
        ancient = Some(at);
    });
    pair.wait_linked(20);
    let ancient = ancient.unwrap();
    pair.wait(SECS, "the old version to expire", || !ancient.exists());

    // Each update from B keeps A's copy (300 bytes and a sidecar); the cap
    // holds two such, so the oldest go.
    let fa = pair.dir_a.join("big.txt");
    write_file(&pair.dir_a, "big.txt", &bytes(300, b'0'), None);
    pair.wait_same(SECS, "big.txt");
    for i in 1..=4u8 {
        let content = bytes(300 + usize::from(i), b'0' + i);
        write_file(&pair.dir_b, "big.txt", &content, None);
        pair.wait(SECS, "B's update at A", || holds(&fa, &content));
    }
    let kept: Vec<u64> = version_summary(&versions(&pair.a.addr, "big.txt"))
        .into_iter()
        .filter(|v| v.0 == "a")
        .map(|v| v.2)
        .collect();
    assert_eq!(kept, vec![303, 302], "the two newest stay, newest first");

    let status: serde_json::Value =
        serde_json::from_str(&assert_ok(&pair.lab3(&["status", "--json"]))).unwrap();
    let usage = status["versions"].as_array().expect("versions in status");
    assert_eq!(usage.len(), 2, "{status}");
    assert_eq!(usage[0]["side"], "a");
    assert_eq!(usage[0]["count"], 2);
    assert!(usage[0]["bytes"].as_u64().unwrap() >= 605, "{status}");
    assert_eq!(usage[1]["side"], "b");
    let table = assert_ok(&pair.lab3(&["status"]));
    assert!(
        table.contains("Versions kept") && table.contains("A: 2"),
        "{table}"
    );
}

#[test]
fn keep_versions_0_keeps_none() {
    let pair = Pair::start_with_args(&["--keep-versions", "0"], |_, _| {});
    pair.wait_linked(20);
    let fa = pair.dir_a.join("x.txt");
    write_file(&pair.dir_a, "x.txt", b"one", None);
    pair.wait_same(SECS, "x.txt");
    write_file(&pair.dir_b, "x.txt", b"two!", None);
    pair.wait(SECS, "B's update at A", || holds(&fa, b"two!"));
    std::fs::remove_file(pair.dir_b.join("x.txt")).unwrap();
    pair.wait(SECS, "B's delete at A", || !fa.exists());
    assert_eq!(version_summary(&versions(&pair.a.addr, "x.txt")), vec![]);
    assert!(
        !pair.state_a.join("versions").exists()
            || files_in(&pair.state_a.join("versions")).is_empty()
    );
}

#[test]
fn a_conflict_loser_is_listed_and_restored() {
    let mut pair = Pair::start_linked();
    let (fa, fb) = (pair.dir_a.join("c.txt"), pair.dir_b.join("c.txt"));
    write_file(&pair.dir_a, "c.txt", b"base", None);
    pair.wait_same(SECS, "c.txt");
    pair.wait_journaled(SECS);
    // Both sides edit while apart: B's later edit wins, A's is kept.
    pair.b.kill();
    let t = now_ns();
    write_file(
        &pair.dir_a,
        "c.txt",
        b"A's edit, older",
        Some(t - 60_000_000_000),
    );
    write_file(&pair.dir_b, "c.txt", b"B's edit, newer!", Some(t));
    pair.restart_b();
    pair.wait(30, "B's edit at A", || holds(&fa, b"B's edit, newer!"));
    let doc = versions(&pair.a.addr, "c.txt");
    let loser = doc["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["why"] == "conflict" && v["side"] == "a" && v["size"] == 15)
        .unwrap_or_else(|| panic!("no conflict version of A's edit: {doc}"));
    let id = loser["id"].as_str().unwrap().to_string();
    assert_ok(&pair.lab3(&["restore", "c.txt", "--version", &id]));
    pair.wait(SECS, "A's edit back on both sides", || {
        holds(&fa, b"A's edit, older") && holds(&fb, b"A's edit, older")
    });
}
