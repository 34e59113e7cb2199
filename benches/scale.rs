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
//!
//! With the servers of scenario 2 up (trees in sync), `lab3 --json`
//! through Server A against `ls -lR` of both folders, each timed as a
//! spawned process to the end of its output; the listing must be complete
//! (one row per file, Server B connected). Target: within 1.5x of `ls`.
//!
//! `LAB3_BENCH_TRIALS=N` (default 1) repeats scenario 2 and the rsync
//! no-op N times, interleaved, and prints each trial and the medians.
//! `LAB3_BENCH_OLD_BINS=DIR` adds another build's servers (the folder
//! holding its `server_a` and `server_b`, e.g. a copy of main's
//! target/dist) to scenarios 1 and 2, over the same trees with state
//! folders of their own, interleaved with this build's and rsync's
//! trials in the same run: before and after side by side.

use std::path::{Path, PathBuf};
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
    start_with(&bin_dir(), "", root, moved)
}

/// [`start`] with the servers in `bins`, their state folders named with
/// `prefix` (one build's journals are not another's).
fn start_with(
    bins: &Path,
    prefix: &str,
    root: &Path,
    moved: (usize, usize),
) -> (Run, Duration, Option<Duration>) {
    let dirs = [
        root.join("directory_a"),
        root.join(format!("{prefix}state_a")),
        root.join("directory_b"),
        root.join(format!("{prefix}state_b")),
    ];
    let t0 = Instant::now();
    let b = start_b_from(bins, &dirs[2], &dirs[3], "127.0.0.1:0", &[]);
    let a = start_a_from(bins, &dirs[0], &dirs[1], &b.addr, &[]);
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

    /// `reconciled`, and A's and B's peak RSS now (MiB).
    fn peaks(&self, reconciled: Duration) -> (Duration, f64, f64) {
        let (a, b) = self.pair.as_ref().unwrap();
        (reconciled, peak_rss_mib(a), peak_rss_mib(b))
    }

    fn stop(&mut self) {
        self.pair = None;
    }
}

/// `lab3 --json` through Server A of `run`, then `ls -lR` of both
/// folders, each timed to the end of its output. The listing must hold all
/// `n` files with Server B connected.
fn listing_vs_ls(run: &Run, root: &Path, n: usize) -> (Duration, Duration) {
    let (a, _) = run.pair.as_ref().unwrap();
    let t0 = Instant::now();
    let out = lab3(&a.addr, &["--json"]);
    let listed = t0.elapsed();
    assert!(
        out.status.success(),
        "lab3 --json failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("lab3's JSON");
    assert_eq!(doc["peer"], "connected", "Server B was not asked");
    let rows = doc["files"].as_array().map_or(0, Vec::len);
    assert_eq!(rows, n, "the listing is not complete");
    let t0 = Instant::now();
    let ls = std::process::Command::new("ls")
        .arg("-lR")
        .arg(root.join("directory_a"))
        .arg(root.join("directory_b"))
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run ls");
    let took = t0.elapsed();
    assert!(ls.status.success(), "ls -lR failed");
    (listed, took)
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
    let old = std::env::var_os("LAB3_BENCH_OLD_BINS").map(PathBuf::from);
    let trials: usize = std::env::var("LAB3_BENCH_TRIALS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1)
        .max(1);
    if let Some(old) = &old {
        let (mut run, rec, _) = start_with(old, "old_", root, (0, 0));
        run.report("1. first start, identical (old build)", n, rec, None);
        run.stop();
    }
    let (mut run, rec, _) = start(root, (0, 0));
    run.report("1. first start, identical", n, rec, None);
    run.stop();
    if wanted(2) {
        // Per contender: reconcile times, A's and B's peak RSS (MiB).
        let mut old_runs: Vec<(Duration, f64, f64)> = Vec::new();
        let mut new_runs: Vec<(Duration, f64, f64)> = Vec::new();
        let mut rsyncs: Vec<Duration> = Vec::new();
        // `lab3 --json` and `ls -lR`, one pair per trial.
        let mut listings: Vec<(Duration, Duration)> = Vec::new();
        for trial in 0..trials {
            // Who goes first alternates with each trial.
            let mut order: Vec<u8> = vec![0, 1, 2];
            order.rotate_left(trial % 3);
            for who in order {
                match who {
                    0 => {
                        let Some(old) = &old else { continue };
                        let (mut run, rec, _) = start_with(old, "old_", root, (0, 0));
                        run.report("2. restart, identical (old build)", n, rec, None);
                        old_runs.push(run.peaks(rec));
                        run.stop();
                    }
                    1 => {
                        let (mut run, rec, _) = start(root, (0, 0));
                        run.report("2. restart, identical", n, rec, None);
                        new_runs.push(run.peaks(rec));
                        let (l, ls) = listing_vs_ls(&run, root, n);
                        println!(
                            "listing of {n} files a side: lab3 --json {:.2} s, ls -lR A B {:.2} s ({:.2}x)",
                            l.as_secs_f64(),
                            ls.as_secs_f64(),
                            l.as_secs_f64() / ls.as_secs_f64()
                        );
                        listings.push((l, ls));
                        run.stop();
                    }
                    _ => {
                        if let Some(t) = rsync_noop(root) {
                            println!(
                                "| rsync -a, same trees (no-op) | {n} | {:.2} s | - | - | - |",
                                t.as_secs_f64()
                            );
                            rsyncs.push(t);
                        }
                    }
                }
            }
        }
        if trials > 1 {
            println!("medians of {trials} trials:");
            let show = |name: &str, runs: &mut Vec<(Duration, f64, f64)>| {
                if runs.is_empty() {
                    return;
                }
                let mid = runs.len() / 2;
                runs.sort_by_key(|r| r.0);
                let t = runs[mid].0;
                let mut a: Vec<f64> = runs.iter().map(|r| r.1).collect();
                let mut b: Vec<f64> = runs.iter().map(|r| r.2).collect();
                a.sort_by(f64::total_cmp);
                b.sort_by(f64::total_cmp);
                println!(
                    "| {name} | {n} | {:.2} s | - | {:.0} MiB | {:.0} MiB |",
                    t.as_secs_f64(),
                    a[mid],
                    b[mid]
                );
            };
            show("2. restart, identical (old build)", &mut old_runs);
            show("2. restart, identical", &mut new_runs);
            let mut l: Vec<Duration> = listings.iter().map(|x| x.0).collect();
            let mut ls: Vec<Duration> = listings.iter().map(|x| x.1).collect();
            l.sort();
            ls.sort();
            let (l, ls) = (l[l.len() / 2], ls[ls.len() / 2]);
            println!(
                "listing of {n} files a side, medians: lab3 --json {:.2} s, ls -lR A B {:.2} s ({:.2}x)",
                l.as_secs_f64(),
                ls.as_secs_f64(),
                l.as_secs_f64() / ls.as_secs_f64()
            );
            if !rsyncs.is_empty() {
                rsyncs.sort();
                println!(
                    "| rsync -a, same trees (no-op) | {n} | {:.2} s | - | - | - |",
                    rsyncs[rsyncs.len() / 2].as_secs_f64()
                );
            }
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
