//! A lock against a stream of updates from Server B (issue 10; CONTRACT.md,
//! "Locks": a lock takes effect before `lab3` reports it, so an update from
//! B that arrives after the lock command returned is queued, never applied).
//!
//! Each round, B saves the file (1 MiB) every 50 ms while `lab3 lock`
//! runs; from the moment it returns, A's copy must not change until the
//! unlock, and the updates must wait in the queue.

#![cfg(unix)] // inode numbers

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lab3_tests::*;

/// The contract's 5 seconds, with slack for a loaded machine and a debug build.
const SECS: u64 = 10;
const ROUNDS: usize = 20;
/// How long A's copy is watched after each lock, while B goes on saving.
const WATCH: Duration = Duration::from_millis(400);
/// B's pace of saves, and their size: big enough that each takes a while
/// to cross the link, so that a lock often lands while one is on its way
/// (an engine that checked the lock when a transfer starts, not when it
/// lands, would let it through), and slow enough that each arrives.
const PACE: Duration = Duration::from_millis(50);
const SAVE_SIZE: usize = 1024 * 1024;
/// A tenth of the pace (about; B's saves take a while too): the steps by
/// which each round's lock is shifted.
const PHASE: Duration = Duration::from_millis(6);

/// The queue length of `name` in the listing.
fn queued(pair: &Pair, name: &str) -> u64 {
    row(&pair.listing(), name)["queued"].as_u64().unwrap_or(0)
}

/// The first words of a save, which say which one it is.
fn head(content: &[u8]) -> String {
    text(&content[..content.len().min(24)])
}

/// A's copy of a file: content, mtime and inode.
fn snapshot(p: &std::path::Path) -> (Option<Vec<u8>>, Option<i64>, Option<u64>) {
    (read(p), mtime_ns(p), inode(p))
}

#[test]
fn once_lock_returns_no_update_from_b_reaches_directory_a() {
    let pair = Pair::start_with(|a, _| {
        write_file(a, "f.txt", b"v0", Some(1_700_000_000_000_000_000));
    });
    pair.wait_same(20, "f.txt");
    let at_a = pair.dir_a.join("f.txt");
    let mut problems = Vec::new();
    for round in 0..ROUNDS {
        let prefix = format!("round {round} save ");
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let tag = format!("{prefix}{i} ");
                    let content: Vec<u8> = tag.bytes().cycle().take(SAVE_SIZE).collect();
                    pair.put(&pair.dir_b, "f.txt", &content, now_ns());
                    i += 1;
                    std::thread::sleep(PACE);
                }
            });
            let _stop_on_panic = SetOnDrop(&stop);
            // B's saves are reaching A before the lock.
            let flowing = wait_until(Duration::from_secs(SECS), || {
                read(&at_a).is_some_and(|c| c.starts_with(prefix.as_bytes()))
            });
            if !flowing {
                panic!(
                    "round {round}: B's saves did not reach A\n{}",
                    pair.output()
                );
            }
            // The lock at a different moment of B's 50 ms cycle each round.
            std::thread::sleep(PHASE * (round as u32 * 7 % 10));
            let out = pair.lab3(&["lock", "f.txt"]);
            let locked_at = snapshot(&at_a);
            let untouched =
                out.status.success() && holds_for(WATCH, || snapshot(&at_a) == locked_at);
            // Stopped before any assertion, or the scope would wait for it forever.
            stop.store(true, Ordering::Relaxed);
            assert_ok(&out);
            if !untouched {
                problems.push(format!(
                    "round {round}: A's copy changed after 'lab3 lock' returned: {:?} then {:?}",
                    locked_at.0.as_deref().map(head),
                    read(&at_a).as_deref().map(head)
                ));
            }
        });
        pair.wait(SECS, "B's saves to be queued", || {
            queued(&pair, "f.txt") > 0
        });
        assert_ok(&pair.lab3(&["unlock", "f.txt"]));
        pair.wait_same(SECS, "f.txt");
    }
    assert!(
        problems.is_empty(),
        "{} of {ROUNDS} rounds let an update through the lock:\n{}\n{}",
        problems.len(),
        problems.join("\n"),
        pair.output()
    );
}
