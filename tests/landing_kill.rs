//! An install killed between its rename and its new base's journal line
//! (issue 10; CONTRACT.md, "Safety"). Server B has put A's file in place,
//! and its journal says only that the file was landing there. At the
//! restart B must tell the landed file from a look-alike its user saved
//! over it meanwhile (same size and mtime, other bytes), by its content:
//! the landed file is the agreed version, the look-alike a change of B's.
//! (Found by the simulation, plain seed 502825; the executor hashes a
//! landing's file at start, `core::landings_to_hash`.)
//!
//! The window is made wide by the servers' test-only
//! `LAB3_TEST_INSTALL_HOLD=FILE` (an install waits there while FILE exists).

use std::path::Path;

use lab3_tests::*;

/// The contract's 5 seconds, with slack for a loaded machine.
const SECS: u64 = 20;

/// Whether any file under `dir` (a state directory: kept versions,
/// queues) holds exactly `content`.
fn kept_under(dir: &Path, content: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.filter_map(Result::ok).any(|e| {
        let p = e.path();
        if p.is_dir() {
            kept_under(&p, content)
        } else {
            holds(&p, content)
        }
    })
}

/// A pair whose B holds A's new `a.txt` (content `x`) in place, its
/// install stopped before the journal says so; the hold file still there.
fn stopped_after_landing(x: &[u8]) -> (Pair, tempfile::TempDir) {
    let flags = tempfile::tempdir().unwrap();
    let hold = flags.path().join("hold");
    let pair = Pair::start_with_env(
        &[],
        &[],
        &[("LAB3_TEST_INSTALL_HOLD", hold.to_str().unwrap())],
        |_, _| {},
    );
    pair.wait_linked(SECS);
    std::fs::write(&hold, b"").unwrap();
    write_file(&pair.dir_a, "a.txt", x, None);
    pair.wait(SECS, "B's install to stop after its rename", || {
        pair.b.logged(&["install held after its rename"])
    });
    assert!(holds(&pair.dir_b.join("a.txt"), x), "{}", pair.output());
    (pair, flags)
}

#[test]
fn a_look_alike_saved_over_a_landed_file_before_a_kill_is_a_change() {
    let (x, y) = (
        b"from A: the first words".as_slice(),
        b"at B: other, same size!".as_slice(),
    );
    assert_eq!(x.len(), y.len());
    let (mut pair, flags) = stopped_after_landing(x);
    // B's user saves a look-alike over it (same size and mtime, by a
    // rename), and B is killed before it journals the landed version.
    let fb = pair.dir_b.join("a.txt");
    let mtime = mtime_ns(&fb).unwrap();
    let staged = write_file(&pair.dir_b, ".a.txt.save", y, Some(mtime));
    std::fs::rename(&staged, &fb).unwrap();
    pair.b.kill();
    std::fs::remove_file(flags.path().join("hold")).unwrap();
    pair.restart_b();
    pair.wait_linked(SECS);
    // Both sides end with one content, and the other is kept as a version:
    // never "agreed" with A's bytes at A and B's at B.
    pair.wait_same(SECS, "a.txt");
    let now = read(&pair.dir_a.join("a.txt")).unwrap();
    let loser = if now == x { y } else { x };
    assert!(now == x || now == y, "{}", text(&now));
    pair.wait(SECS, "the other content kept as a version", || {
        kept_under(&pair.state_a, loser) || kept_under(&pair.state_b, loser)
    });
}

#[test]
fn a_file_landed_before_a_kill_is_agreed_at_the_restart() {
    let x = b"from A: the first words".as_slice();
    let (mut pair, flags) = stopped_after_landing(x);
    pair.b.kill();
    std::fs::remove_file(flags.path().join("hold")).unwrap();
    // A changes the file while B is down: a change of A's alone, since B
    // holds the version A sent (B must know so, by the landing's hash).
    let x2 = b"from A: the second words, longer".as_slice();
    write_file(&pair.dir_a, "a.txt", x2, None);
    pair.restart_b();
    pair.wait_linked(SECS);
    pair.wait(SECS, "A's second version at B", || {
        holds(&pair.dir_b.join("a.txt"), x2)
    });
    pair.wait_same(SECS, "a.txt");
    // Not a conflict: B kept the version it had landed as replaced (the
    // usual way), never as a conflict's loser.
    let doc: serde_json::Value =
        serde_json::from_str(&assert_ok(&pair.lab3(&["versions", "a.txt", "--json"]))).unwrap();
    let kept = version_summary(&doc);
    assert!(
        kept.iter().all(|(_, why, _)| why != "conflict"),
        "{kept:?}\n{}",
        pair.output()
    );
}
