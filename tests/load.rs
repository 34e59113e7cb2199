//! Load: 50 `lab3 --json` clients at once while 2,000 files sync from A to
//! B. Every listing must succeed (exit 0, a JSON document, Server B
//! connected); the latencies are printed (p50, p95, max), not asserted.
//! `cargo test --release --test load -- --nocapture` gives the numbers in
//! bench/RESULTS.md.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use lab3_tests::*;

const CLIENTS: usize = 50;
const FILES: usize = 2000;
/// Listings per client at most (each client lists until the sync is done).
const MAX_ROUNDS: usize = 10;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[test]
fn fifty_clients_at_once_during_a_2000_file_sync_all_get_their_listing() {
    let pair = Pair::start_linked();
    let addr = pair.a.addr.clone();
    let synced = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(CLIENTS + 1));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (addr, synced, start) = (addr.clone(), synced.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut got = Vec::new();
                for round in 0..MAX_ROUNDS {
                    if round > 0 && synced.load(Ordering::SeqCst) {
                        break;
                    }
                    let t = Instant::now();
                    let out = lab3(&addr, &["--json"]);
                    let took = t.elapsed();
                    let during = !synced.load(Ordering::SeqCst);
                    got.push((took, during, out));
                }
                got
            })
        })
        .collect();

    // The clients start as the files are written; they list until the
    // sync is done.
    start.wait();
    let began = Instant::now();
    for i in 0..FILES {
        let rel = format!("load/d{:02}/f{i:04}.txt", i % 20);
        write_file(&pair.dir_a, &rel, rel.as_bytes(), None);
    }
    pair.wait(60, "2000 files at B", || {
        files_in(&pair.dir_b).len() == FILES
    });
    synced.store(true, Ordering::SeqCst);
    let sync_took = began.elapsed();

    let mut latencies = Vec::new();
    let mut during = 0;
    for c in clients {
        for (took, while_syncing, out) in c.join().unwrap() {
            let stdout = assert_ok(&out);
            let doc: serde_json::Value = serde_json::from_str(&stdout)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
            assert_eq!(doc["peer"], "connected", "{}", text(&out.stderr));
            assert!(doc["files"].as_array().is_some_and(|f| f.len() <= FILES));
            latencies.push(took);
            during += usize::from(while_syncing);
        }
    }
    pair.wait_same_tree(10);
    latencies.sort();
    println!(
        "{} listings by {CLIENTS} concurrent clients ({during} while the {FILES}-file sync ran, \
         which took {sync_took:.2?}): p50 {:.1?}, p95 {:.1?}, max {:.1?}",
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.95),
        latencies.last().unwrap(),
    );
}
