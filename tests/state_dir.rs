//! The state directory and the folder at start (issue 12; CONTRACT.md,
//! "Safety"): a second server on a state directory another running server
//! holds is refused with one line; Server B, like Server A, does not
//! recreate a missing folder that held files at the last sync.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use lab3_tests::*;

const SECS: u64 = 10;

/// Runs a server that is expected to refuse to start, to its end; one
/// still running after `SECS` (it did not refuse) is killed and fails the
/// test, rather than hanging it.
fn run_to_end(name: &str, dir: &Path, state: &Path, extra: &[&str]) -> Output {
    let mut cmd = Command::new(bin(name));
    cmd.args(["--dir", &dir.display().to_string()])
        .args(["--state-dir", &state.display().to_string()])
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .env("NO_COLOR", "1")
        .env_remove("LAB3_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if name == "server_a" {
        cmd.args(["--http", "off", "--peer", &dead_addr()]);
    }
    let mut child = cmd.spawn().expect("run the server");
    let read_all = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().unwrap()));
    let stderr = read_all(Box::new(child.stderr.take().unwrap()));
    let mut status = None;
    wait_until(Duration::from_secs(SECS), || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let status = status.unwrap_or_else(|| {
        panic!(
            "{name} still ran after {SECS} s: it did not refuse to start\n--- stdout ---\n{}\n--- stderr ---\n{}",
            text(&stdout),
            text(&stderr)
        )
    });
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Exit status 1 (README, "Exit codes": could not start), nothing
/// listening, and exactly one line on stderr containing
/// every one of `words`.
fn assert_refused(out: &Output, words: &[&str]) {
    let err = lines(&out.stderr);
    assert!(
        out.status.code() == Some(1)
            && !text(&out.stdout).contains("listening on")
            && err.len() == 1
            && words.iter().all(|w| err[0].contains(w)),
        "expected one line with {words:?} and a failure; got {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn a_second_server_on_the_same_state_directory_is_refused_with_one_line() {
    let pair = Pair::start_linked();
    write_file(&pair.dir_a, "x.txt", b"x", None);
    pair.wait_same(SECS, "x.txt");
    // The same server started twice (its folder and state directory), and
    // another folder on that state directory.
    let other = pair.root.path().join("other");
    for (name, dir, state) in [
        ("server_b", &pair.dir_b, &pair.state_b),
        ("server_a", &pair.dir_a, &pair.state_a),
        ("server_b", &other, &pair.state_b),
        ("server_a", &other, &pair.state_a),
    ] {
        let out = run_to_end(name, dir, state, &[]);
        assert_refused(&out, &["in use by another running server", "--state-dir"]);
    }
    // The first servers run on, untouched.
    write_file(&pair.dir_b, "y.txt", b"y", None);
    pair.wait_same(SECS, "y.txt");
}

#[test]
fn server_b_does_not_recreate_a_missing_folder_that_held_files() {
    let mut pair = Pair::start_linked();
    write_file(&pair.dir_a, "keep.txt", b"precious", None);
    pair.wait_same(SECS, "keep.txt");
    pair.wait_journaled(SECS);
    pair.b.kill();
    // The disk at B is unmounted: its folder is gone.
    let away = pair.root.path().join("unmounted");
    std::fs::rename(&pair.dir_b, &away).unwrap();
    let out = run_to_end("server_b", &pair.dir_b, &pair.state_b, &[]);
    assert_refused(&out, &["missing", "--confirm-empty"]);
    assert!(
        !pair.dir_b.exists(),
        "server B recreated its missing folder"
    );
    // Nothing reached A either.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        read(&pair.dir_a.join("keep.txt")).as_deref(),
        Some(&b"precious"[..])
    );
    // The disk is back: B starts and both still hold the file.
    std::fs::rename(&away, &pair.dir_b).unwrap();
    pair.restart_b();
    pair.wait_linked(30);
    pair.wait_same(SECS, "keep.txt");
}

#[test]
fn a_brand_new_missing_folder_is_made_on_first_run() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("new/directory_b");
    let b = start_b(&dir, &root.path().join("state"), "127.0.0.1:0", &[]);
    assert!(
        wait_until(Duration::from_secs(SECS), || dir.is_dir()),
        "{}",
        b.output()
    );
}

#[test]
fn a_damaged_journal_line_is_set_aside_and_nothing_counts_as_deleted() {
    let mut pair = Pair::start_linked();
    for n in ["a.txt", "b.txt", "c.txt"] {
        write_file(&pair.dir_a, n, n.as_bytes(), None);
    }
    pair.wait_same_tree(SECS);
    pair.wait(SECS, "B to acknowledge the three files", || {
        ["a.txt", "b.txt", "c.txt"]
            .iter()
            .all(|n| pair.a.said(&["A->B", "created", n]))
    });
    pair.a.kill();
    // A's journal line about b.txt is damaged (a bad sector, a bad edit),
    // and b.txt is edited at A while A is down.
    let journal = pair.state_a.join("core-journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let damaged: String = text
        .lines()
        .map(|l| {
            if l.contains("\"b.txt\"") {
                format!("{}\u{fffd}#garbage\n", &l[..l.len() / 2])
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_ne!(damaged, text, "no line about b.txt in {text}");
    std::fs::write(&journal, damaged).unwrap();
    write_file(&pair.dir_a, "b.txt", b"A's edit while down", None);
    pair.restart_a();
    pair.wait(SECS, "A to report the damage", || {
        pair.a.logged(&["damaged line", "set aside", "b.txt"])
    });
    let aside = std::fs::read_dir(&pair.state_a)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("core-journal.damaged-")
        })
        .count();
    assert_eq!(aside, 1, "the damaged line kept aside");
    // b.txt's history is unknown: the copies differ, the later one wins
    // and the other is kept; nothing is deleted anywhere.
    pair.wait(SECS, "A's edit at B", || {
        read(&pair.dir_b.join("b.txt")).as_deref() == Some(&b"A's edit while down"[..])
    });
    pair.wait_same_tree(SECS);
    assert_eq!(files_in(&pair.dir_a).len(), 3, "{}", pair.output());
    assert!(!pair.a.said(&["deleted"]) && !pair.b.said(&["deleted"]));
    let kept = lab3(&pair.a.addr, &["versions", "b.txt", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&kept.stdout).unwrap();
    assert_eq!(doc["versions"].as_array().map(Vec::len), Some(1), "{doc}");
}

#[test]
fn a_torn_lock_table_is_set_aside_and_the_locks_come_back_from_the_journal() {
    let mut pair = Pair::start_linked();
    write_file(&pair.dir_a, "held.txt", b"A's", None);
    pair.wait_same(SECS, "held.txt");
    assert_ok(&pair.lab3(&["lock", "held.txt"]));
    pair.a.kill();
    let table = pair.state_a.join("locks/table.json");
    let full = std::fs::read(&table).unwrap();
    std::fs::write(&table, &full[..full.len() / 2]).unwrap();
    pair.restart_a();
    pair.wait(SECS, "A to report the torn table", || {
        pair.a.logged(&["lock table", "damaged", "set aside"])
    });
    let locks = assert_ok(&pair.lab3(&["locks", "--json"]));
    assert!(locks.contains("held.txt"), "{locks}");
    // Still locked: B's update is queued, not applied.
    write_file(&pair.dir_b, "held.txt", b"B's update", None);
    pair.wait(SECS, "B's update to be queued", || {
        pair.a.said(&["queued", "held.txt"])
    });
    assert_eq!(
        read(&pair.dir_a.join("held.txt")).as_deref(),
        Some(&b"A's"[..])
    );
}
