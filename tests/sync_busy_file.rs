//! A file being written without pause while the other server restarts
//! (issue 10; CONTRACT.md, "Synchronisation": a file still being written is
//! sent once it is quiet, also at start and at reconnect; nobody ever sees
//! a half-written file).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lab3_tests::*;

/// The contract's 5 seconds, with slack for a loaded machine and a debug build.
const SECS: u64 = 10;
/// Reconnecting after a restart: A's backoff reaches 5 s.
const RECONNECT_SECS: u64 = 20;
const CHUNK: usize = 64 * 1024;
/// The writer's pace: one chunk every 50 ms, never quiet for the 300 ms a
/// file must rest before it is sent.
const PACE: Duration = Duration::from_millis(50);
/// How long the writer goes on after the link is back.
const WRITING_AFTER_LINK_UP: Duration = Duration::from_millis(2000);

/// Chunk `i` of the file: bytes that say which chunk they are.
fn chunk(i: usize) -> Vec<u8> {
    format!("chunk {i:06} ")
        .bytes()
        .cycle()
        .take(CHUNK)
        .collect()
}

/// What the other side's copy of the file looks like right now, if it is
/// neither of `allowed` (a short description of the state seen).
fn unexpected(p: &std::path::Path, allowed: &[&[u8]]) -> Option<String> {
    let Some(seen) = read(p) else {
        return Some("missing".into());
    };
    if allowed.contains(&seen.as_slice()) {
        None
    } else {
        Some(format!("{} bytes", seen.len()))
    }
}

/// `at` keeps appending to `busy.bin` while the other server is killed and
/// started again: the other side shows the last quiet version until the
/// writer stops, then the final one, and nothing in between.
fn a_busy_file_is_not_sent_until_quiet(at: Side) {
    let mut pair = Pair::start_linked();
    let name = "busy.bin";
    let quiet_version = chunk(0);
    write_file(pair.dir(at), name, &quiet_version, None);
    pair.wait_same(SECS, name);

    pair.kill(at.other());
    let stop = AtomicBool::new(false);
    let seen = Mutex::new(Vec::<String>::new());
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(pair.dir(at).join(name))
        .unwrap();
    let written = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut i = 1;
            while !stop.load(Ordering::Relaxed) {
                file.write_all(&chunk(i)).unwrap();
                i += 1;
                std::thread::sleep(PACE);
            }
            i
        });
        let _stop_on_panic = SetOnDrop(&stop);
        // Writing for a while before the other side comes back.
        let here = pair.dir(at).join(name);
        let growing = wait_until(Duration::from_secs(SECS), || {
            std::fs::metadata(&here).is_ok_and(|m| m.len() >= 10 * CHUNK as u64)
        });
        assert!(growing, "the writer did not get going");
        pair.restart(at.other());
        let there = pair.dir(at.other()).join(name);
        let restarted = pair.server(at.other());
        let start = Instant::now();
        let watch = |until: &mut dyn FnMut() -> bool, limit: Duration| {
            let deadline = Instant::now() + limit;
            while Instant::now() < deadline && !until() {
                if let Some(state) = unexpected(&there, &[&quiet_version]) {
                    seen.lock()
                        .unwrap()
                        .push(format!("{state} after {:?}", start.elapsed()));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        let linked = std::cell::Cell::new(false);
        watch(
            &mut || {
                linked.set(restarted.logged(&["reconciled with server"]));
                linked.get()
            },
            Duration::from_secs(RECONNECT_SECS),
        );
        watch(&mut || false, WRITING_AFTER_LINK_UP);
        stop.store(true, Ordering::Relaxed);
        let chunks = writer.join().unwrap();
        assert!(
            linked.get(),
            "the restarted server did not reconcile while the file was written\n{}",
            pair.output()
        );
        chunks
    });
    drop(file);
    let final_version: Vec<u8> = (0..written).flat_map(chunk).collect();
    assert_eq!(read(&pair.dir(at).join(name)).unwrap(), final_version);
    let there = pair.dir(at.other()).join(name);
    let start = Instant::now();
    let arrived = wait_until(Duration::from_secs(SECS), || {
        if let Some(state) = unexpected(&there, &[&quiet_version, &final_version]) {
            seen.lock().unwrap().push(format!(
                "{state} {:?} after the writer stopped",
                start.elapsed()
            ));
        }
        same_file(&pair.dir(at).join(name), &there)
    });
    let seen = seen.into_inner().unwrap();
    assert!(
        seen.is_empty(),
        "the other side showed a version that was never quiet ({} looks), e.g. {:?}\n{}",
        seen.len(),
        &seen[..seen.len().min(10)],
        pair.output()
    );
    assert!(
        arrived,
        "the final version did not arrive once the writer stopped\n{}",
        pair.output()
    );
}

#[test]
fn a_file_written_without_pause_at_a_never_shows_partly_at_b_restarting() {
    a_busy_file_is_not_sent_until_quiet(Side::A);
}

#[test]
fn a_file_written_without_pause_at_b_never_shows_partly_at_a_restarting() {
    a_busy_file_is_not_sent_until_quiet(Side::B);
}
