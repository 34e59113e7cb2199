//! A file its server cannot read (issue 12, and issue 11's "busy and
//! unreadable files"; CONTRACT.md, "Synchronisation": reported by name on
//! the console and in `lab3 status`, retried with backoff, synced as soon
//! as it can be, and a failed send never counts as sent).
//!
//! The tests run as root, and root reads any file whatever its mode. So
//! the server that must fail to read runs as root without the two
//! capabilities that let root ignore file modes (`setpriv` drops
//! `CAP_DAC_OVERRIDE` and `CAP_DAC_READ_SEARCH` from its bounding set):
//! a file of mode 000 is then as unreadable to it as to anyone. Run as
//! another user, the tests use the mode alone. `setpriv` is util-linux's,
//! installed by `scripts/test-deps.sh`.
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lab3_tests::*;

const SECS: u64 = 10;
const NAME: &str = "private.txt";

/// `program` run so that it cannot read a file of mode 000: as root,
/// without the capabilities that override file modes.
fn without_override(program: impl AsRef<std::ffi::OsStr>) -> Command {
    if !mounts::is_root() {
        return Command::new(program);
    }
    let mut cmd = Command::new("setpriv");
    cmd.arg("--bounding-set=-dac_override,-dac_read_search")
        .arg("--")
        .arg(program);
    cmd
}

/// Checks that `file` really cannot be read by a program started as the
/// unprivileged server is: otherwise the test would show nothing.
fn assert_unreadable_for_server(file: &Path) {
    let out = without_override("cat")
        .arg(file)
        .output()
        .expect("setpriv (util-linux) runs; scripts/test-deps.sh installs it");
    assert!(
        !out.status.success(),
        "{} is readable without CAP_DAC_OVERRIDE: the test cannot show anything here",
        file.display()
    );
}

/// The usual arguments of the server at `side`.
fn args(dirs: &[PathBuf; 4], side: Side, b_addr: &str) -> Vec<String> {
    let [dir_a, state_a, dir_b, state_b] = dirs;
    let (dir, state) = match side {
        Side::A => (dir_a, state_a),
        Side::B => (dir_b, state_b),
    };
    let mut v = vec![
        "--dir".to_string(),
        dir.display().to_string(),
        "--state-dir".into(),
        state.display().to_string(),
    ];
    match side {
        Side::A => v.extend([
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--peer".into(),
            b_addr.into(),
        ]),
        Side::B => v.extend(["--listen".into(), b_addr.into()]),
    }
    v
}

fn server_name(side: Side) -> &'static str {
    match side {
        Side::A => "server_a",
        Side::B => "server_b",
    }
}

/// A linked pair whose server at `at` cannot read files of mode 000.
fn pair_unprivileged_at(at: Side) -> Pair {
    let root = tempfile::tempdir().unwrap();
    let dirs = ["directory_a", "state_a", "directory_b", "state_b"].map(|d| root.path().join(d));
    for d in &dirs {
        std::fs::create_dir_all(d).unwrap();
    }
    let start = |side: Side, b_addr: &str| {
        let cmd = if side == at {
            without_override(bin(server_name(side)))
        } else {
            Command::new(bin(server_name(side)))
        };
        Server::start_cmd(server_name(side), cmd, args(&dirs, side, b_addr))
    };
    let b = start(Side::B, "127.0.0.1:0");
    let a = start(Side::A, &b.addr.clone());
    let pair = Pair::from_parts(root, dirs, a, b);
    pair.wait_linked(20);
    pair
}

/// Kills the server at `at` and starts it again as before (unprivileged),
/// then waits until the two have reconciled.
fn restart_unprivileged(pair: &mut Pair, at: Side) {
    let dirs = [
        pair.dir_a.clone(),
        pair.state_a.clone(),
        pair.dir_b.clone(),
        pair.state_b.clone(),
    ];
    pair.kill(at);
    let b_addr = pair.b.addr.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    let server = loop {
        // Server B's port may linger for a moment.
        let started = std::panic::catch_unwind(|| {
            Server::start_cmd(
                server_name(at),
                without_override(bin(server_name(at))),
                args(&dirs, at, &b_addr),
            )
        });
        match started {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => std::panic::resume_unwind(e),
        }
    };
    match at {
        Side::A => pair.a = server,
        Side::B => pair.b = server,
    }
    let peer = match at {
        Side::A => "reconciled with server B",
        Side::B => "reconciled with server A",
    };
    pair.wait(20, "the restarted server to reconcile", || {
        pair.server(at).logged(&[peer])
    });
}

/// `lab3 status --json`'s entry for `path` at `side`, if it is failing.
fn failing_entry(pair: &Pair, side: Side, path: &str) -> Option<serde_json::Value> {
    let out = pair.lab3(&["status", "--json"]);
    assert!(out.status.success(), "lab3 status: {}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let letter = match side {
        Side::A => "a",
        Side::B => "b",
    };
    doc["failing"]
        .as_array()?
        .iter()
        .find(|f| f["side"] == letter && f["path"] == path)
        .cloned()
}

/// Writes `content` as `rel` with mode 000 in one step (a temporary file
/// renamed into place), so that it is never readable for a moment.
fn put_unreadable(dir: &Path, rel: &str, content: &[u8]) -> PathBuf {
    let tmp = dir.join(format!(".{rel}.writing"));
    std::fs::write(&tmp, content).unwrap();
    set_mode(&tmp, 0o000);
    let dest = dir.join(rel);
    std::fs::rename(&tmp, &dest).unwrap();
    dest
}

/// The console lines of `server` that report an error for `path`.
fn error_lines(server: &Server, path: &str) -> usize {
    server.said_count(&[" error ", path])
}

/// A file `at` cannot read: reported once by name on the console and in
/// `lab3 status` (JSON and text) with a growing count of attempts, while
/// the peer keeps the last version it had; a restart of the server does
/// not make the failed sends count; once readable it arrives without
/// waiting for the next retry, and `recovered` is said.
fn an_unreadable_file_is_reported_retried_and_sent_once_readable(at: Side) {
    let mut pair = pair_unprivileged_at(at);
    let here = pair.dir(at).to_path_buf();
    let there = pair.dir(at.other()).to_path_buf();

    // Version 1 syncs as usual.
    write_file(&here, NAME, b"version 1, readable", None);
    pair.wait_same(SECS, NAME);
    pair.wait_journaled(SECS);

    // Version 2 is unreadable: the peer keeps version 1, the console says
    // it once, and the status shows it with more and more attempts.
    let file = put_unreadable(&here, NAME, b"version 2, unreadable for now");
    assert_unreadable_for_server(&file);
    write_file(&here, "other.txt", b"a readable file goes on syncing", None);
    pair.wait_same(SECS, "other.txt");
    pair.wait(SECS, "the error to be reported on the console", || {
        error_lines(pair.server(at), NAME) > 0
    });
    let mut entry = None;
    pair.wait(SECS + 10, "three failed attempts in lab3 status", || {
        entry = failing_entry(&pair, at, NAME);
        entry
            .as_ref()
            .is_some_and(|e| e["attempts"].as_u64() >= Some(3))
    });
    let entry = entry.unwrap();
    assert!(
        entry["error"]
            .as_str()
            .unwrap()
            .contains("ermission denied"),
        "{entry}"
    );
    assert_eq!(
        error_lines(pair.server(at), NAME),
        1,
        "one console line for three failed attempts\n{}",
        pair.output()
    );
    assert_eq!(read(&there.join(NAME)).unwrap(), b"version 1, readable");
    let status = pair.lab3(&["status"]);
    let shown = text(&status.stdout);
    assert!(
        shown.contains("Cannot sync now")
            && shown.contains(NAME)
            && shown.contains("ermission denied"),
        "lab3 status does not show {NAME}:\n{shown}"
    );

    // Killed and started again while it is unreadable: the failed sends
    // were never acknowledged, so the change is still a change.
    restart_unprivileged(&mut pair, at);
    pair.wait(
        SECS,
        "the error to be reported again after the restart",
        || error_lines(pair.server(at), NAME) > 0,
    );
    assert_eq!(read(&there.join(NAME)).unwrap(), b"version 1, readable");

    // Made readable once the next retry is seconds away (the fifth waits
    // 16 s): the watcher's event sends it, and `recovered` counts only
    // the failures seen before.
    let mut attempts = 0;
    pair.wait(SECS + 10, "four failed attempts since the restart", || {
        attempts = failing_entry(&pair, at, NAME)
            .and_then(|e| e["attempts"].as_u64())
            .unwrap_or(0);
        attempts >= 4
    });
    set_mode(&file, 0o644);
    pair.wait(SECS, "version 2 at the other side", || {
        read(&there.join(NAME)).as_deref() == Some(b"version 2, unreadable for now".as_slice())
    });
    pair.wait_same(SECS, NAME);
    pair.wait(SECS, "`recovered` on the console", || {
        pair.server(at).said(&[" recovered ", NAME])
    });
    let recovered = format!("after {attempts} failed attempts");
    assert!(
        pair.server(at).said(&[" recovered ", NAME, &recovered]),
        "sent by a retry, not as soon as it was readable\n{}",
        pair.output()
    );
    pair.wait(SECS, "the status to show nothing failing", || {
        failing_entry(&pair, at, NAME).is_none()
    });
}

#[test]
fn a_file_a_cannot_read_is_reported_retried_and_sent_once_readable() {
    an_unreadable_file_is_reported_retried_and_sent_once_readable(Side::A);
}

#[test]
fn a_file_b_cannot_read_is_reported_retried_and_sent_once_readable() {
    an_unreadable_file_is_reported_retried_and_sent_once_readable(Side::B);
}
