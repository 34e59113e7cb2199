//! Scale benchmark: 100,000 small files on each side. For each scenario it
//! reports the start-up reconciliation time (from starting Server B until
//! both servers have logged "reconciled with server"), the time until both
//! folders are equal where files have to move, and each server's peak RSS
//! (VmHWM) at the end.
//!
//! 1. First start, identical trees (no journals yet: every file is hashed).
//! 2. Restart, identical trees (journals in place).
//! 3. Restart after half of the files changed while both servers were
//!    down: a quarter edited at A, an eighth new at A, an eighth new at B.
//! 4. First start, half-different trees: half identical, a quarter newer
//!    at A than at B, an eighth only at A, an eighth only at B (B's older
//!    copies have no history, so each is kept as a conflict copy).
//!
//! After scenario 2, `rsync -a` over the same two trees (a no-op: they are
//! equal), timed the same way, as the peer a restart is measured against
//! (skipped where rsync is not installed; `bench/setup.sh` installs it).
//!
//! `cargo bench --bench scale`; `LAB3_BENCH_QUICK=1` for 10,000 files;
//! `LAB3_BENCH_FILES=N` for another count; `LAB3_BENCH_ROWS=1,2` for some
//! scenarios only (3 needs 2 before it, 2 needs 1). Results:
//! bench/RESULTS.md.

use std::path::Path;
use std::time::{Duration, Instant};

use lab3_tests::*;

const OLD: i64 = 1_700_000_000_000_000_000;
const SEC: i64 = 1_000_000_000;
/// How long any one phase may take before the benchmark gives up.
const LIMIT: Duration = Duration::from_secs(900);

fn peak_rss_mib(s: &Server) -> f64 {
    let pid = s.pid().expect("running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn rel(i: usize) -> String {
    format!("d{:03}/f{i:06}.txt", i / 1000)
}

/// Writes file `i` under `dir` with a version tag and an mtime.
fn put(dir: &Path, i: usize, tag: &str, mtime_ns: i64) {
    let body = format!("file {i} {tag}\n");
    write_file(dir, &rel(i), body.as_bytes(), Some(mtime_ns));
}

struct Run {
    pair: Option<(Server, Server)>,
}

/// Starts B then A over the folders of `root`, waits for both
/// reconciliations, and then for `moved` inbound actions at A and B.
fn start(root: &Path, moved: (usize, usize)) -> (Run, Duration, Option<Duration>) {
    let dirs = [
        root.join("directory_a"),
        root.join("state_a"),
        root.join("directory_b"),
        root.join("state_b"),
    ];
    let t0 = Instant::now();
    let b = start_b(&dirs[2], &dirs[3], "127.0.0.1:0", &[]);
    let a = start_a(&dirs[0], &dirs[1], &b.addr, &[]);
    let ok = wait_until(LIMIT, || {
        a.logged(&["reconciled with server B"]) && b.logged(&["reconciled with server A"])
    });
    assert!(
        ok,
        "no reconciliation in {LIMIT:?}\n{}\n{}",
        a.output(),
        b.output()
    );
    let reconciled = t0.elapsed();
    let converged = (moved != (0, 0)).then(|| {
        let ok = wait_until(LIMIT, || {
            a.said_count(&["B->A"]) >= moved.0 && b.said_count(&["A->B"]) >= moved.1
        });
        assert!(ok, "no convergence in {LIMIT:?}");
        t0.elapsed()
    });
    (Run { pair: Some((a, b)) }, reconciled, converged)
}

impl Run {
    fn report(&self, name: &str, n: usize, reconciled: Duration, converged: Option<Duration>) {
        let (a, b) = self.pair.as_ref().unwrap();
        let conv = converged.map_or("-".to_string(), |c| format!("{:.1} s", c.as_secs_f64()));
        println!(
            "| {name} | {n} | {:.1} s | {conv} | {:.0} MiB | {:.0} MiB |",
            reconciled.as_secs_f64(),
            peak_rss_mib(a),
            peak_rss_mib(b),
        );
    }

    fn stop(&mut self) {
        self.pair = None;
    }
}

fn check_same(root: &Path) {
    let (a, b) = (root.join("directory_a"), root.join("directory_b"));
    assert!(
        wait_until(Duration::from_secs(60), || same_tree(&a, &b)),
        "the folders differ"
    );
}

/// `rsync -a` from `directory_a` into `directory_b` of `root`, timed.
fn rsync_noop(root: &Path) -> Option<Duration> {
    let (a, b) = (root.join("directory_a/"), root.join("directory_b/"));
    let t0 = Instant::now();
    let ran = std::process::Command::new("rsync")
        .arg("-a")
        .arg(&a)
        .arg(&b)
        .status()
        .ok()?;
    assert!(ran.success(), "rsync -a failed");
    Some(t0.elapsed())
}

/// Whether scenario `n` runs (`LAB3_BENCH_ROWS`, default all).
fn wanted(n: usize) -> bool {
    std::env::var("LAB3_BENCH_ROWS").map_or(true, |rows| {
        rows.split(',').any(|r| r.trim() == n.to_string())
    })
}

fn main() {
    let quick = std::env::var_os("LAB3_BENCH_QUICK").is_some();
    let n: usize = std::env::var("LAB3_BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 10_000 } else { 100_000 });
    let _ = bin_dir();
    println!("scale: {n} files on each side");
    println!(
        "| scenario | files per side | reconciled after | equal after | A peak RSS | B peak RSS |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");

    // 1 and 2: identical trees, first start, then a restart.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for i in 0..n {
        put(&root.join("directory_a"), i, "v1", OLD + i as i64);
        put(&root.join("directory_b"), i, "v1", OLD + i as i64);
    }
    let (mut run, rec, _) = start(root, (0, 0));
    run.report("1. first start, identical", n, rec, None);
    run.stop();
    if wanted(2) {
        let (mut run, rec, _) = start(root, (0, 0));
        run.report("2. restart, identical", n, rec, None);
        run.stop();
        if let Some(t) = rsync_noop(root) {
            println!(
                "| rsync -a, same trees (no-op) | {n} | {:.1} s | - | - | - |",
                t.as_secs_f64()
            );
        }
    }

    if wanted(3) {
        // 3. Half of it changed while both were down.
        let (mut at_a, mut at_b) = (0, 0);
        for i in 0..n {
            match i % 8 {
                0 | 1 => {
                    put(&root.join("directory_a"), i, "v2", OLD + i as i64 + SEC);
                    at_b += 1;
                }
                2 => {
                    put(&root.join("directory_a"), n + i, "new at A", OLD + SEC);
                    at_b += 1;
                }
                3 => {
                    put(&root.join("directory_b"), n + i, "new at B", OLD + SEC);
                    at_a += 1;
                }
                _ => {}
            }
        }
        let (mut run, rec, conv) = start(root, (at_a, at_b));
        run.report("3. restart, half changed while down", n, rec, conv);
        check_same(root);
        run.stop();
    }
    drop(tmp);
    if !wanted(4) {
        return;
    }

    // 4. First start over half-different trees.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (mut at_a, mut at_b) = (0, 0);
    for i in 0..n {
        let (a, b) = (root.join("directory_a"), root.join("directory_b"));
        match i % 8 {
            0..=3 => {
                put(&a, i, "v1", OLD + i as i64);
                put(&b, i, "v1", OLD + i as i64);
            }
            4 | 5 => {
                put(&a, i, "v2 at A", OLD + i as i64 + SEC);
                put(&b, i, "v1", OLD + i as i64);
                at_b += 1;
            }
            6 => {
                put(&a, i, "only at A", OLD + i as i64);
                at_b += 1;
            }
            _ => {
                put(&b, i, "only at B", OLD + i as i64);
                at_a += 1;
            }
        }
    }
    let (mut run, rec, conv) = start(root, (at_a, at_b));
    run.report("4. first start, half different", n, rec, conv);
    check_same(root);
    if let Some((a, b)) = &run.pair {
        println!(
            "scenario 4: 'conflict' lines: {} at A, {} at B (B's older copies kept)",
            a.said_count(&["conflict"]),
            b.said_count(&["conflict"])
        );
    }
    run.stop();
}
