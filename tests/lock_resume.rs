//! An unlock interrupted by kill -9, and a lock queue found incomplete at
//! start (issue 12; CONTRACT.md, "Locks and the FIFO queue": each queued
//! update applied exactly once, an applied one never reported as
//! superseded; "Safety": damaged state set aside and reported): a
//! missing snapshot, a damaged description.

use std::time::Duration;

use lab3_tests::*;

const SECS: u64 = 20;
/// `f.txt`'s first version, on both sides before the lock.
const V0_NS: i64 = 1_700_000_000_000_000_000;

/// A synced pair holding `f.txt` on both sides, locked at A.
fn locked_pair() -> Pair {
    let pair = Pair::start_with(|a, _| {
        write_file(a, "f.txt", b"v0", Some(V0_NS));
    });
    pair.wait(SECS, "the first sync", || {
        read(&pair.dir_b.join("f.txt")).as_deref() == Some(b"v0")
    });
    pair.wait_journaled(SECS);
    let out = pair.lab3(&["lock", "f.txt"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    pair
}

/// The sequence numbers `server` announced with `action` for `f.txt`
/// (`… applied f.txt … queued write #7`), in order.
fn seqs(server: &Server, action: &str) -> Vec<u64> {
    let word = format!(" {action} ");
    server
        .stdout
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(&word) && l.contains("f.txt"))
        .filter_map(|l| {
            l.rsplit('#')
                .next()?
                .trim()
                .trim_end_matches(')')
                .parse()
                .ok()
        })
        .collect()
}

/// `f.txt`'s queue length in A's listing.
fn queued(pair: &Pair) -> u64 {
    row(&pair.listing(), "f.txt")["queued"].as_u64().unwrap()
}

/// The mtime of B's update `i`: older than update `i - 1`, newer than v0.
fn update_mtime(i: i64) -> i64 {
    V0_NS + (1000 - i) * 1_000_000_000
}

/// Server B writes `n` versions of `f.txt`, each with an mtime older than
/// the last (a restored backup, say) but newer than A's copy, each queued
/// at A before the next.
fn queue_updates_from_b(pair: &Pair, n: usize) -> Vec<u8> {
    let mut last = Vec::new();
    for i in 1..=n {
        last = format!("update {i} from B").into_bytes();
        let mtime = update_mtime(i as i64);
        let before = pair.a.said_count(&[" queued ", "f.txt"]);
        write_file(&pair.dir_b, "f.txt", &last, Some(mtime));
        pair.wait(SECS, "the update to be queued", || {
            pair.a.said_count(&[" queued ", "f.txt"]) > before
        });
    }
    last
}

/// kill -9 of Server A in the middle of replaying a queue on unlock: after
/// the restart the replay resumes after the last update it finished. Every
/// update is applied once (the one in flight at the kill may be reported
/// by both), none is lost or reported superseded (each is older than the
/// one before: only an edit at A supersedes), and A ends with B's last.
#[test]
fn an_unlock_killed_midway_applies_each_update_exactly_once() {
    let mut pair = locked_pair();
    let last = queue_updates_from_b(&pair, 60);
    // Each write may be queued twice (as written, then with its mtime set).
    let total = queued(&pair);
    assert!(total >= 60, "{total} queued");
    assert_eq!(read(&pair.dir_a.join("f.txt")).unwrap(), b"v0");

    let _unlock = Running::lab3(&pair.a.addr, &["-unlock", "-0"]);
    let midway = wait_until(Duration::from_secs(SECS), || {
        !seqs(&pair.a, "applied").is_empty()
    });
    assert!(midway, "the replay did not start\n{}", pair.output());
    pair.a.kill();
    let before = seqs(&pair.a, "applied");
    let mut superseded = seqs(&pair.a, "superseded");
    assert!(
        (before.len() as u64) < total,
        "the kill came after the whole replay ({} of {total}); nothing to resume",
        before.len()
    );

    pair.restart_a();
    pair.wait(SECS, "the resumed unlock to finish", || {
        pair.a.said(&[" unlocked ", "f.txt"])
    });
    let after = seqs(&pair.a, "applied");
    superseded.extend(seqs(&pair.a, "superseded"));
    assert!(
        superseded.is_empty(),
        "applied updates reported as superseded: {superseded:?}\n{}",
        pair.output()
    );
    assert_eq!(read(&pair.dir_a.join("f.txt")).unwrap(), last);
    // The resumed replay goes on after the last update finished, in order;
    // only the one in flight at the kill may be reported by both (a line
    // printed just before the kill may also be lost with it).
    assert!(
        after.windows(2).all(|w| w[0] < w[1]),
        "the resumed replay is not in order: {after:?}"
    );
    let twice: Vec<u64> = after
        .iter()
        .filter(|s| before.contains(s))
        .copied()
        .collect();
    assert!(
        twice.len() <= 1 && twice.iter().all(|s| Some(s) == before.last()),
        "updates reported applied again after the restart: {twice:?} (before: {before:?})"
    );
    assert_eq!(
        after.last(),
        Some(&total),
        "before: {before:?}, after: {after:?}"
    );
    // What each update replaced is kept as a version at A: v0 and every
    // update but the last, each exactly once (one applied twice would keep
    // its own content a second time; one lost would leave one fewer).
    let out = pair.lab3(&["versions", "f.txt", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kept: Vec<(String, u64)> = doc["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["side"] == "a")
        .map(|v| {
            let modified = v["modified"].as_str().unwrap().to_string();
            (modified, v["size"].as_u64().unwrap())
        })
        .collect();
    let distinct: std::collections::BTreeSet<_> = kept.iter().collect();
    assert_eq!(distinct.len(), kept.len(), "a version kept twice: {kept:?}");
    assert_eq!(kept.len() as u64, total, "{kept:?}\n{}", pair.output());
    assert!(
        distinct.contains(&(common::meta::rfc3339_utc(V0_NS), 2)),
        "v0 is not kept: {kept:?}"
    );
    pair.wait_same(SECS, "f.txt");
    assert_eq!(queued(&pair), 0);
}

/// A queue entry whose snapshot is missing when Server A starts (a disk
/// that lost it) is set aside under a name that says so, reported on the
/// console and in `lab3 status`, and skipped: the others replay in order.
#[test]
fn a_queue_entry_without_its_snapshot_is_reported_and_skipped() {
    let mut pair = locked_pair();
    let last = queue_updates_from_b(&pair, 3);
    assert_eq!(queued(&pair), 3);
    pair.a.kill();
    let snapshots: Vec<_> = walk(&pair.state_a.join("queue"))
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "2"))
        .collect();
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    std::fs::remove_file(&snapshots[0]).unwrap();

    pair.restart_a();
    pair.wait(SECS, "the missing snapshot to be reported", || {
        pair.a
            .said(&[" error ", "f.txt", "#2", "snapshot is missing"])
    });
    let at = set_aside_at(&pair);
    assert!(at.exists(), "{} is not there", at.display());
    let shown = text(&pair.lab3(&["status"]).stdout);
    assert!(
        shown.contains("Set aside at start") && shown.contains("snapshot is missing"),
        "{shown}"
    );
    // The engine loads the queue as it starts; the server may answer first.
    unlock_applies_the_first_and_third(&pair, &last);
}

/// A queue entry whose description is damaged when Server A starts (a bad
/// sector, a bad edit) is set aside under a name that says so and
/// reported, never dropped in silence: the others replay in order.
#[test]
fn a_queue_entry_with_a_damaged_description_is_reported_and_skipped() {
    let mut pair = locked_pair();
    let last = queue_updates_from_b(&pair, 3);
    assert_eq!(queued(&pair), 3);
    pair.a.kill();
    let descriptions: Vec<_> = walk(&pair.state_a.join("queue"))
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "2.json"))
        .collect();
    assert_eq!(descriptions.len(), 1, "{descriptions:?}");
    let full = std::fs::read(&descriptions[0]).unwrap();
    std::fs::write(&descriptions[0], &full[..full.len() / 2]).unwrap();

    pair.restart_a();
    pair.wait(SECS, "the damaged entry to be reported", || {
        pair.a
            .said(&[" error ", "f.txt", "#2", "description is damaged"])
    });
    let at = set_aside_at(&pair);
    assert_eq!(
        std::fs::read(&at).ok().as_deref(),
        Some(&full[..full.len() / 2])
    );
    unlock_applies_the_first_and_third(&pair, &last);
}

/// Where `lab3 status --json` says f.txt's damaged entry was set aside.
fn set_aside_at(pair: &Pair) -> std::path::PathBuf {
    let out = pair.lab3(&["status", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let aside = &doc["set_aside"][0];
    assert_eq!(aside["path"], "f.txt", "{doc}");
    std::path::PathBuf::from(aside["at"].as_str().unwrap())
}

/// `lab3 -unlock -0` of f.txt, its entry #2 set aside: #1 and #3 applied,
/// in order, and the last version (`last`) in place.
fn unlock_applies_the_first_and_third(pair: &Pair, last: &[u8]) {
    pair.wait(SECS, "the two entries left to be queued", || {
        queued(pair) == 2
    });
    let out = pair.lab3(&["--json", "-unlock", "-0"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let applied: Vec<u64> = doc["updates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["outcome"] == "applied")
        .map(|u| u["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(applied, [1, 3], "{doc}");
    assert_eq!(read(&pair.dir_a.join("f.txt")).unwrap(), last);
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
