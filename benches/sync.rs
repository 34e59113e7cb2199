//! `cargo bench --bench sync`: lab3's synchronisation measured side by side
//! with the tools a user would pick instead (`rsync -a`, lsyncd), in one
//! run, trials interleaved, medians and ratios reported.
//!
//! Rows:
//! 1. latency of a 4 KiB in-place edit in a steady tree, A->B and B->A
//!    (peer: lsyncd `delay = 0`, one-way);
//! 2. initial sync of many 4 KiB files into an empty peer (peer: `rsync -a`,
//!    and lab3 itself without TLS, to show what encryption costs);
//! 3. one big file: time and each server's peak RSS (peers: `rsync -a`, and
//!    lab3 without TLS);
//! 4. start-up of two identical trees to "in sync", with and without the
//!    state of a previous run (peer: a no-op `rsync -a`);
//! 5. CPU of an idle pair, and what the periodic rescan costs.
//!
//! `bench/setup.sh` installs rsync and lsyncd; without them the peer
//! columns say so and lab3's figures are still measured.
//! `LAB3_BENCH_QUICK=1` runs a small version for CI (well under a minute);
//! only a full run writes the "Sync" section of `bench/RESULTS.md`.
//! `LAB3_BENCH_ROWS=2` runs only the rows listed, `LAB3_BENCH_TRIALS=5`
//! sets the trials of rows 2-4 (for working on one row; nothing is written).
//! `LAB3_BENCH_OLD_BINS=DIR` adds another build's servers (the folder that
//! holds its `server_a` and `server_b`, e.g. the old engine's
//! `target/dist`) as a contender in rows 2, 3 and 4, interleaved with the rest;
//! `LAB3_BENCH_OLD_ENV="K=V"` sets variables for that contender's servers
//! only (with this build's own folder as `LAB3_BENCH_OLD_BINS`: a variant of
//! this build, e.g. `LAB3_BENCH_FLUSH_EACH=1` or `LAB3_BENCH_NO_FSYNC=1`).
//! `LAB3_BENCH_RSYNC_ARGS="--fsync"` adds arguments to the rsync peer.
//!
//! # Layout
//! - this file: the plan and the five rows;
//! - `sync/measure.rs`: statistics, trees, polls, `/proc` readings;
//! - `sync/peers.rs`: running rsync and lsyncd;
//! - `sync/report.rs`: the table and `bench/RESULTS.md`.

// The modules live in benches/sync/ so that cargo does not take them for benches.
#[path = "sync/measure.rs"]
mod measure;
#[path = "sync/peers.rs"]
mod peers;
#[path = "sync/report.rs"]
mod report;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lab3_tests::{start_a, start_a_from, start_b, start_b_from, Pair, Server};
use measure::{median, percentile, secs};
use report::Row;

/// Sizes and counts of one run.
struct Plan {
    quick: bool,
    /// Files in the steady trees of rows 1 and 5.
    steady_files: usize,
    /// Edits per direction in row 1.
    latency_trials: usize,
    /// Files in rows 2 and 4.
    bulk_files: usize,
    /// Bytes of row 3's file.
    big: u64,
    /// Trials of rows 2, 3 and 4, per tool.
    trials: usize,
    /// Row 5's window.
    idle: Duration,
    /// `LAB3_BENCH_ROWS=2,3`: only these rows (and bench/RESULTS.md is
    /// left as it is); all when unset.
    rows: Option<Vec<u8>>,
}

impl Plan {
    fn runs(&self, row: u8) -> bool {
        self.rows.as_ref().is_none_or(|r| r.contains(&row))
    }
}

impl Plan {
    fn from_env() -> Plan {
        let quick = std::env::var("LAB3_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let rows = std::env::var("LAB3_BENCH_ROWS").ok().map(|v| {
            v.split(',')
                .map(|r| {
                    r.trim()
                        .parse()
                        .expect("LAB3_BENCH_ROWS: row numbers, like 2,3")
                })
                .collect()
        });
        let trials = std::env::var("LAB3_BENCH_TRIALS")
            .ok()
            .map(|t| t.parse().expect("LAB3_BENCH_TRIALS: a number"));
        let mut plan = Plan::sized(quick);
        plan.rows = rows;
        plan.trials = trials.unwrap_or(plan.trials);
        plan
    }

    fn sized(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                steady_files: 200,
                latency_trials: 5,
                bulk_files: 200,
                big: 64 << 20,
                trials: 1,
                idle: Duration::from_secs(2),
                rows: None,
            }
        } else {
            Plan {
                quick,
                steady_files: 1_000,
                latency_trials: 30,
                bulk_files: 10_000,
                big: 1 << 30,
                trials: 3,
                idle: Duration::from_secs(10),
                rows: None,
            }
        }
    }
}

/// Which peers can run here (their `--version` lines).
struct Peers {
    rsync: Option<String>,
    lsyncd: Option<String>,
    /// Another build's servers (`LAB3_BENCH_OLD_BINS`), for rows 2, 3 and 4.
    old: Option<PathBuf>,
}

/// How long one latency trial may take before it counts as lost.
const EDIT_LIMIT: Duration = Duration::from_secs(10);
/// What PEERS.md measured for lsyncd, cited when it cannot run here.
const LSYNCD_REFERENCE: &str =
    "lsyncd delay=0: 10.6 ms (p95 12 ms) per PEERS.md, NOT measured in this run";
const NO_RSYNC: &str = "skipped: rsync not installed (run bench/setup.sh)";

fn main() {
    let plan = Plan::from_env();
    let peers = Peers {
        rsync: peers::version("rsync"),
        lsyncd: peers::version("lsyncd"),
        old: std::env::var_os("LAB3_BENCH_OLD_BINS").map(PathBuf::from),
    };
    if peers.rsync.is_none() {
        eprintln!(
            "sync bench: rsync is not installed; its rows are skipped (bench/setup.sh installs it)"
        );
    }
    if peers.lsyncd.is_none() {
        eprintln!("sync bench: lsyncd is not installed; row 1 cites PEERS.md instead (bench/setup.sh installs it)");
    }
    eprintln!("sync bench: building the binaries...");
    let bins = lab3_tests::bin_dir();
    eprintln!(
        "sync bench: {} mode, binaries in {}",
        if plan.quick { "quick" } else { "full" },
        bins.display()
    );
    let work = tempfile::tempdir().expect("temp dir");
    let mut notes: Vec<(u8, String)> = Vec::new();
    let mut rows = Vec::new();

    // Pairs done with, their servers stopped; their folders are removed
    // only at the end (see `keep`).
    let mut kept = Vec::new();
    notes.push((
        0,
        "Method: every lab3 trial starts fresh processes and is interleaved with the peer's trial in the same run, \
         who goes first alternating; `sync` runs before the trials of rows 2-4; nothing is deleted between \
         trials (on this machine's ext4, which has no journal, creating files soon after many were deleted is \
         slowed by the inode allocator, which skips recently freed inodes one by one: whichever tool creates \
         files next pays, lab3 or rsync)."
            .into(),
    ));
    let (latency_rows, idle_rows) = if plan.runs(1) || plan.runs(5) {
        latency_and_idle(&plan, &peers, work.path(), &mut notes, &mut kept)
    } else {
        (Vec::new(), Vec::new())
    };
    rows.extend(latency_rows);
    if plan.runs(2) {
        rows.extend(initial_sync(&plan, &peers, work.path(), &mut notes));
    }
    if plan.runs(3) {
        rows.extend(big_file(&plan, &peers, work.path(), &mut notes));
    }
    if plan.runs(4) {
        rows.extend(startup(&plan, &peers, work.path(), &mut notes));
    }
    rows.extend(idle_rows);

    let table = report::table(&rows);
    notes.sort_by_key(|(row, _)| *row);
    let notes: String = notes.iter().map(|(_, n)| format!("- {n}\n")).collect();
    println!("\n{table}\n{notes}");
    let failed = rows.iter().filter(|r| r.pass == Some(false)).count();
    println!("sync bench: {failed} target(s) missed");

    if !plan.quick && plan.rows.is_none() {
        let body = format!(
            "Run on {} with `cargo bench --bench sync` (dist binaries, fat LTO; {} cores shared with other builds; \
             peers: {}, {}). Medians of trials interleaved in one run: {} trials per tool for rows 2-4, \
             {} edits per direction for row 1. The ratio is lab3's median over the peer's (below 1: lab3 is faster).\n\n{table}\n{notes}",
            report::today(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            peers.rsync.as_deref().unwrap_or("rsync not installed"),
            peers.lsyncd.as_deref().map_or("lsyncd not installed".into(), |v| format!("lsyncd {}", v.trim_start_matches("Version: "))),
            plan.trials,
            plan.latency_trials,
        );
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/RESULTS.md");
        match report::write_section(&path, &body) {
            Ok(()) => eprintln!("sync bench: wrote {}", path.display()),
            Err(e) => eprintln!("sync bench: cannot write {}: {e}", path.display()),
        }
    }
}

/// Fills a row's lab3 and rsync columns from the trials' medians; with a
/// `limit`, the row passes when lab3/rsync is at most that.
fn against_rsync(row: &mut Row, lab: &[f64], rsync: Option<&[f64]>, limit: Option<f64>) {
    row.lab3 = secs(median(lab));
    match rsync {
        Some(rs) => {
            let m = median(rs);
            row.peer = format!("rsync -a: {}", secs(m));
            row.ratio = ratio(median(lab), m);
            if let Some(limit) = limit {
                row.pass = row.ratio.map(|r| r <= limit);
            }
        }
        None => row.peer = NO_RSYNC.into(),
    }
}

fn ratio(lab3: f64, peer: f64) -> Option<f64> {
    (peer > 0.0 && lab3.is_finite() && peer.is_finite()).then(|| lab3 / peer)
}

/// `n` with thousands separators: `10,000`.
fn count(n: usize) -> String {
    common::console::thousands(n as u64)
}

/// Whether a server's console line announces a file created at this side
/// by the peer (`HH:MM:SS.mmm  A->B  created  path  size`).
fn received_created(line: &str, direction: &str) -> bool {
    let mut f = line.split_whitespace().skip(1);
    f.next() == Some(direction) && f.next() == Some("created")
}

/// Actions that moved data, counted over both servers' consoles.
fn transfers(servers: &[&Server]) -> usize {
    servers
        .iter()
        .map(|s| {
            s.stdout
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(" created ") || l.contains(" updated "))
                .count()
        })
        .sum()
}

// ------------------------------------------------------------ rows 1 and 5

/// Rewrites `name` in `from` with `content` and polls `to` every 1 ms until
/// it holds those bytes; the seconds from the write, or `None` on timeout.
fn edit(from: &Path, to: &Path, name: &str, content: &[u8]) -> Option<f64> {
    let t0 = Instant::now();
    std::fs::write(from.join(name), content).expect("rewrite in place");
    let target = to.join(name);
    measure::poll(EDIT_LIMIT, Duration::from_millis(1), || {
        std::fs::read(&target).is_ok_and(|b| b == content)
    })
    .map(|_| t0.elapsed().as_secs_f64())
}

/// Stops a pair's servers but keeps its folders until the run ends: on
/// ext4 without a journal, creating files soon after deleting many makes
/// the inode allocator skip the "recently deleted" inodes one by one, so a
/// cleanup between trials would slow whichever trial comes next. Nothing
/// is deleted between trials for that reason.
fn keep(mut pair: Pair, kept: &mut Vec<Pair>) {
    pair.a.kill();
    pair.b.kill();
    kept.push(pair);
}

/// Starts a pair over a steady tree of `n` files (A holds them, B receives
/// them) and waits until both hold them all and things are quiet.
fn steady_pair(n: usize, extra: &[&str]) -> Pair {
    let pair = Pair::start_with_args(extra, |a, _| measure::make_tree(a, n, 4096, 1, None));
    let synced = measure::poll(Duration::from_secs(300), Duration::from_millis(20), || {
        measure::count_files(&pair.dir_b) >= n
    });
    assert!(
        synced.is_some(),
        "the steady tree never reached B\n{}",
        pair.output()
    );
    std::thread::sleep(Duration::from_millis(1500));
    measure::same_tree(&pair.dir_a, &pair.dir_b, n)
        .unwrap_or_else(|e| panic!("{e}\n{}", pair.output()));
    pair
}

fn latency_and_idle(
    plan: &Plan,
    peers: &Peers,
    work: &Path,
    notes: &mut Vec<(u8, String)>,
    kept: &mut Vec<Pair>,
) -> (Vec<Row>, Vec<Row>) {
    let n = plan.steady_files;
    eprintln!("row 1: steady pair over {n} files...");
    let pair = steady_pair(n, &[]);
    let lsyncd = peers.lsyncd.as_ref().and_then(|_| {
        let root = work.join("lsyncd");
        let src = root.join("src");
        measure::make_tree(&src, n, 4096, 1, None);
        match peers::Lsyncd::start(&root, &src, &root.join("dst"), n) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("row 1: {e}");
                notes.push((
                    1,
                    "lsyncd is installed but did not start; row 1 cites PEERS.md".into(),
                ));
                None
            }
        }
    });

    let mut rng = measure::Rng::new(42);
    let mut rows = Vec::new();
    let directions = [
        ("A->B", &pair.dir_a, &pair.dir_b),
        ("B->A", &pair.dir_b, &pair.dir_a),
    ];
    for (d, (label, from, to)) in directions.into_iter().enumerate() {
        let (mut lab, mut peer, mut lost, mut peer_lost) = (Vec::new(), Vec::new(), 0, 0);
        for i in 0..plan.latency_trials {
            let name = measure::name((i * 37 + d * 500 + 11) % n);
            let mine = rng.bytes(4096);
            let theirs = rng.bytes(4096);
            let mut run_lab3 = || match edit(from, to, &name, &mine) {
                Some(s) => lab.push(s),
                None => {
                    lost += 1;
                    lab.push(EDIT_LIMIT.as_secs_f64());
                }
            };
            let mut run_peer = |l: &peers::Lsyncd| match edit(&l.src, &l.dst, &name, &theirs) {
                Some(s) => peer.push(s),
                None => {
                    peer_lost += 1;
                    peer.push(EDIT_LIMIT.as_secs_f64());
                }
            };
            // Alternate who goes first, so neither always runs right after the other.
            match (&lsyncd, i % 2) {
                (Some(l), 0) => {
                    run_lab3();
                    run_peer(l);
                }
                (Some(l), _) => {
                    run_peer(l);
                    run_lab3();
                }
                (None, _) => run_lab3(),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let (m, p95) = (median(&lab), percentile(&lab, 95.0));
        eprintln!(
            "row 1 {label}: lab3 {:?}",
            lab.iter().map(|s| secs(*s)).collect::<Vec<_>>()
        );
        let mut row = Row::new(
            1,
            format!(
                "4 KiB edit reaches the other side, {label}, {} files, {} edits",
                count(n),
                lab.len()
            ),
        );
        row.lab3 = format!("{} (p95 {})", secs(m), secs(p95));
        if lost > 0 {
            row.lab3
                .push_str(&format!(", {lost} lost after {EDIT_LIMIT:?}"));
        }
        if lsyncd.is_some() {
            eprintln!(
                "row 1 {label}: lsyncd {:?}",
                peer.iter().map(|s| secs(*s)).collect::<Vec<_>>()
            );
            let pm = median(&peer);
            row.peer = format!(
                "lsyncd delay=0 (one-way, src->dst): {} (p95 {})",
                secs(pm),
                secs(percentile(&peer, 95.0))
            );
            if peer_lost > 0 {
                row.peer
                    .push_str(&format!(", {peer_lost} lost after {EDIT_LIMIT:?}"));
            }
            row.ratio = ratio(m, pm);
        } else {
            row.peer = LSYNCD_REFERENCE.into();
        }
        row.target = "median < 100 ms, p95 < 300 ms".into();
        row.pass = Some(m < 0.100 && p95 < 0.300 && lost == 0);
        rows.push(row);
    }
    notes.push((1, String::from(
        "Row 1: each edit rewrites a different file in place (truncate + write 4 KiB of new bytes); the clock starts \
         before the write and stops when the other side's file holds the new bytes, polled every 1 ms. lsyncd runs \
         `sync{default.rsync, delay=0}` over its own copy of the tree, one way only, and its edits are interleaved \
         with lab3's (who goes first alternates)."
    )));

    let idle = idle(plan, &pair, lsyncd.as_ref(), notes, kept);
    keep(pair, kept);
    (rows, idle)
}

/// CPU one process used over a window: utime+stime (ticks) and the
/// schedstat run time of its threads (nanoseconds).
#[derive(Clone, Copy)]
struct Cpu {
    ticks: f64,
    precise: f64,
}

/// The CPU each process uses while `window` passes.
fn cpu_over(pids: &[u32], window: Duration) -> Vec<Cpu> {
    let read = |p: &u32| Cpu {
        ticks: measure::cpu_secs(*p).unwrap_or(f64::NAN),
        precise: measure::cpu_secs_precise(*p).unwrap_or(f64::NAN),
    };
    let before: Vec<Cpu> = pids.iter().map(read).collect();
    std::thread::sleep(window);
    pids.iter()
        .zip(before)
        .map(|(p, b)| {
            let a = read(p);
            Cpu {
                ticks: a.ticks - b.ticks,
                precise: (a.precise - b.precise).max(0.0),
            }
        })
        .collect()
}

fn idle(
    plan: &Plan,
    pair: &Pair,
    lsyncd: Option<&peers::Lsyncd>,
    notes: &mut Vec<(u8, String)>,
    kept: &mut Vec<Pair>,
) -> Vec<Row> {
    let n = plan.steady_files;
    let w = plan.idle;
    let per10 = 10.0 / w.as_secs_f64();
    // Per 10 s, as ticks and to the nanosecond.
    let show = |c: Cpu| {
        format!(
            "{:.0} ms ({:.2} ms to the ns)",
            c.ticks * per10 * 1e3,
            c.precise * per10 * 1e3
        )
    };
    eprintln!("row 5: idle pair for {w:?}...");
    std::thread::sleep(Duration::from_secs(1));
    let mut pids = vec![pair.a.pid().unwrap(), pair.b.pid().unwrap()];
    pids.extend(lsyncd.map(|l| l.pid()));
    let used = cpu_over(&pids, w);
    // utime+stime counts 10 ms ticks: "measurable" is a tick per 10 s on
    // average, judged on the precise figure so that one tick more or less
    // does not flip the result.
    let tick = 1.0 / measure::clk_tck() as f64;
    let limit = tick / per10;
    let mut rows = Vec::new();
    for (i, side) in ["A", "B"].into_iter().enumerate() {
        let mut row = Row::new(
            5,
            format!(
                "idle CPU per 10 s of server {side}, {} files, default rescan interval (30 s on a local filesystem; window {w:?})",
                count(n)
            ),
        );
        row.lab3 = show(used[i]);
        row.peer = match lsyncd {
            Some(_) => format!("lsyncd, same window: {}", show(used[2])),
            None => "lsyncd not installed".into(),
        };
        row.target = format!(
            "no measurable CPU: < {:.0} ms per 10 s (one tick)",
            tick * 1e3
        );
        row.pass = Some(used[i].precise < limit);
        rows.push(row);
    }

    // What the rescan costs: the same idle pair with rescans off, and with
    // a rescan every 0.1 s to make one rescan's cost stand out.
    eprintln!("row 5: rescan cost (pairs with --rescan-secs 3600 and 0.1)...");
    let off = steady_pair(n, &["--rescan-secs", "3600"]);
    let fast = steady_pair(n, &["--rescan-secs", "0.1"]);
    std::thread::sleep(Duration::from_secs(1));
    let pids = [
        off.a.pid().unwrap(),
        off.b.pid().unwrap(),
        fast.a.pid().unwrap(),
        fast.b.pid().unwrap(),
    ];
    let used2 = cpu_over(&pids, w);
    keep(off, kept);
    keep(fast, kept);
    let rescans = w.as_secs_f64() / 0.1;
    let each = ((used2[2].precise - used2[0].precise) + (used2[3].precise - used2[1].precise))
        / 2.0
        / rescans;
    let mut row = Row::new(
        5,
        format!(
            "idle CPU per 10 s with rescans off (--rescan-secs 3600), A / B, {} files",
            count(n)
        ),
    );
    row.lab3 = format!("{} / {}", show(used2[0]), show(used2[1]));
    row.target = format!(
        "no measurable CPU: < {:.0} ms per 10 s (one tick)",
        tick * 1e3
    );
    row.pass = Some(used2[0].precise < limit && used2[1].precise < limit);
    rows.push(row);
    let mut row = Row::new(
        5,
        format!(
            "one rescan of {} files (pairs rescanning every 0.1 s, minus rescans off)",
            count(n)
        ),
    );
    row.lab3 = format!(
        "{:.2} ms CPU per server per rescan = {:.1} ms per 10 s at 3 s",
        each * 1e3,
        each * 1e3 * 10.0 / 3.0
    );
    rows.push(row);
    notes.push((5, format!(
        "Row 5: CPU before and after the window, as utime+stime from /proc/PID/stat (all threads, {:.0} ms ticks) \
         and as the schedstat run time of the live threads (to the nanosecond; the pass/fail uses this one), scaled \
         to 10 s. The rescan cost comes from two more pairs idling side by side over one window: rescans off used \
         A {} / B {}; rescanning every 0.1 s ({:.0} rescans) used A {} / B {}.",
        1e3 / measure::clk_tck() as f64,
        show(used2[0]),
        show(used2[1]),
        rescans,
        show(used2[2]),
        show(used2[3]),
    )));
    rows
}

// ------------------------------------------------------------------- row 2

/// Runs `trials` trials of each of `kinds` contenders (`runs(kind)`: can
/// it run here), rotating who goes first: on this machine whoever creates
/// files first after a burst of deletes pays the inode allocator's toll.
/// `trial(kind, t)` runs one; returns each kind's times.
fn interleaved(
    trials: usize,
    kinds: usize,
    runs: impl Fn(usize) -> bool,
    mut trial: impl FnMut(usize, usize) -> f64,
) -> Vec<Vec<f64>> {
    let mut times = vec![Vec::new(); kinds];
    for t in 0..trials {
        for j in 0..kinds {
            let kind = (t + j) % kinds;
            if runs(kind) {
                times[kind].push(trial(kind, t));
            }
        }
    }
    times
}

/// Rows 2 and 3's contenders (lab3, lab3 without TLS, rsync, the old
/// engine), `trials` times each through [`interleaved`], those missing
/// here skipped; `trial(kind, t)` runs one. Each kind's times, in that order.
fn contenders(plan: &Plan, peers: &Peers, trial: impl FnMut(usize, usize) -> f64) -> [Vec<f64>; 4] {
    let runs = |kind| match kind {
        RSYNC => peers.rsync.is_some(),
        OLD => peers.old.is_some(),
        _ => true,
    };
    let times = interleaved(plan.trials, 4, runs, trial);
    times.try_into().expect("four kinds")
}

/// `rsync -a` of `src` into an empty `rsync_dst` in trial `t`'s folder of
/// `what`, once the disk settled: that folder and the run.
fn rsync_trial_into(work: &Path, what: &str, t: usize, src: &Path) -> (PathBuf, peers::RsyncRun) {
    let dst = trial_dir(work, what, t).join("rsync_dst");
    std::fs::create_dir_all(&dst).unwrap();
    measure::settle_disk();
    let r = peers::rsync(src, &dst);
    (dst, r)
}

/// Times as the notes list them, `none` when there are none.
fn list(v: &[f64]) -> String {
    if v.is_empty() {
        "none".to_string()
    } else {
        v.iter().map(|s| secs(*s)).collect::<Vec<_>>().join(", ")
    }
}

/// The contenders of rows 2 and 3, as `interleaved`'s kinds (0 is lab3).
const LAB3_PLAIN: usize = 1;
const RSYNC: usize = 2;
/// Rows 2 and 3: the servers of `LAB3_BENCH_OLD_BINS`.
const OLD: usize = 3;

/// The row that compares this build with the one in `LAB3_BENCH_OLD_BINS`.
fn old_row(n: u8, what: String, new: &[f64], old: &[f64]) -> Row {
    ratio_row(
        n,
        what,
        new,
        ("old engine", old),
        1.10,
        "≤ 1.10x the old engine",
    )
}

/// A row of lab3's median `times` against the median of `other`'s (a
/// name and times), passing at a ratio up to `limit`.
fn ratio_row(
    n: u8,
    what: String,
    times: &[f64],
    (name, other): (&str, &[f64]),
    limit: f64,
    target: &str,
) -> Row {
    let mut row = Row::new(n, what);
    row.lab3 = secs(median(times));
    row.peer = format!("{name}: {}", secs(median(other)));
    row.ratio = ratio(median(times), median(other));
    row.target = target.into();
    row.pass = row.ratio.map(|r| r <= limit);
    row
}

/// The servers' extra flags for `kind`: the plaintext baseline switches
/// TLS off on the A-B link (a hidden, loopback-only, bench-only flag).
fn flags(kind: usize) -> &'static [&'static str] {
    if kind == LAB3_PLAIN {
        &["--bench-plaintext"]
    } else {
        &[]
    }
}

/// The row that compares lab3 over TLS with the plaintext baseline.
fn tls_row(n: u8, what: String, tls: &[f64], plain: &[f64]) -> Row {
    let other = ("lab3 without TLS", plain);
    ratio_row(n, what, tls, other, 1.15, "TLS ≤ 1.15x plaintext")
}

/// The folder of trial `t` of `what` (created if needed).
fn trial_dir(work: &Path, what: &str, t: usize) -> PathBuf {
    let d = work.join(format!("{what}_{t}"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// One lab3 trial's pair, started fresh: B over an empty `dst` in the
/// trial's folder, then A over `src`, neither with state; with the moment B
/// was spawned (after the disk settled).
fn fresh_pair(
    work: &Path,
    what: &str,
    t: usize,
    src: &Path,
    flags: &[&str],
    old: Option<&Path>,
) -> (PathBuf, Instant, Server, Server) {
    let trial = trial_dir(work, what, t);
    let dst = trial.join(match (old, flags.is_empty()) {
        (Some(_), _) => "old_dst",
        (None, true) => "dst",
        (None, false) => "plain_dst",
    });
    std::fs::create_dir_all(&dst).unwrap();
    measure::settle_disk();
    let extra: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    let old_tag = if old.is_some() { "_old" } else { "" };
    let state = |side: &str| trial.join(format!("state_{side}{}{old_tag}", extra.len()));
    let t0 = Instant::now();
    // (`_from` only for the other build: it also sets that build's
    // `LAB3_BENCH_OLD_ENV`.)
    let (a, b) = match old {
        Some(bins) => {
            let b = start_b_from(bins, &dst, &state("b"), "127.0.0.1:0", &extra);
            (start_a_from(bins, src, &state("a"), &b.addr, &extra), b)
        }
        None => {
            let b = start_b(&dst, &state("b"), "127.0.0.1:0", &extra);
            (start_a(src, &state("a"), &b.addr, &extra), b)
        }
    };
    (dst, t0, a, b)
}

fn initial_sync(
    plan: &Plan,
    peers: &Peers,
    work: &Path,
    notes: &mut Vec<(u8, String)>,
) -> Vec<Row> {
    let n = plan.bulk_files;
    let (lab, plain, rs, old) = bulk_trials(plan, peers, work, "disk");
    let mut row = Row::new(
        2,
        format!(
            "initial sync of {} files of 4 KiB into an empty peer",
            count(n)
        ),
    );
    row.target = "no slower than rsync (≤ 1.00x)".into();
    against_rsync(
        &mut row,
        &lab,
        peers.rsync.is_some().then_some(&rs[..]),
        Some(1.0),
    );
    let tls = tls_row(
        2,
        format!("the same {} files: TLS against plaintext", count(n)),
        &lab,
        &plain,
    );
    let mut rows = vec![row, tls];
    if peers.old.is_some() {
        rows.push(old_row(
            2,
            format!("the same {} files: against the old engine", count(n)),
            &lab,
            &old,
        ));
    }
    let mut note = format!(
        "Row 2: lab3 is timed from spawning server B (empty folder, no state) and then A (full folder, no state) to \
         B's console announcing the {}th received file. lab3 trials: {}; lab3 without TLS \
         (`--bench-plaintext`): {}; rsync: {}; the old engine: {}.",
        count(n),
        list(&lab),
        list(&plain),
        list(&rs),
        list(&old),
    );
    // The same in memory: what lab3 itself costs, without the disk's noise.
    match tempfile::tempdir_in("/dev/shm") {
        Ok(shm) => {
            let (lab, plain, rs, old) = bulk_trials(plan, peers, shm.path(), "tmpfs");
            let mut row = Row::new(
                2,
                format!(
                    "the same {} files on tmpfs (/dev/shm): no disk, CPU-bound; for reference",
                    count(n)
                ),
            );
            against_rsync(
                &mut row,
                &lab,
                peers.rsync.is_some().then_some(&rs[..]),
                None,
            );
            rows.push(row);
            rows.push(tls_row(
                2,
                format!(
                    "the same {} files on tmpfs: TLS against plaintext",
                    count(n)
                ),
                &lab,
                &plain,
            ));
            if peers.old.is_some() {
                rows.push(old_row(
                    2,
                    format!(
                        "the same {} files on tmpfs: against the old engine",
                        count(n)
                    ),
                    &lab,
                    &old,
                ));
            }
            note.push_str(&format!(
                " On tmpfs: lab3 {}; without TLS {}; rsync {}; the old engine {}.",
                list(&lab),
                list(&plain),
                list(&rs),
                list(&old)
            ));
        }
        Err(e) => eprintln!("row 2: no tmpfs reference ({e})"),
    }
    notes.push((2, note));
    rows
}

/// Row 2's trials in `root`: lab3's, lab3's without TLS, rsync's and the
/// old engine's times.
fn bulk_trials(
    plan: &Plan,
    peers: &Peers,
    root: &Path,
    place: &str,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let n = plan.bulk_files;
    eprintln!("row 2 ({place}): writing {n} files...");
    let src = root.join("bulk_src");
    measure::make_tree(&src, n, 4096, 2, None);
    let lab3_trial = |t: usize, flags: &[&str], old: Option<&Path>| {
        let (dst, t0, a, b) = fresh_pair(root, "bulk", t, &src, flags, old);
        let (mut seen, mut got) = (0, 0);
        let done = measure::poll(Duration::from_secs(600), Duration::from_millis(2), || {
            got += measure::count_new(&b.stdout, &mut seen, |l| received_created(l, "A->B"));
            got >= n
        });
        let s = t0.elapsed().as_secs_f64();
        assert!(
            done.is_some(),
            "B never announced {n} files\n{}\n{}",
            a.output(),
            b.output()
        );
        let (ca, cb) = cpu_of(&a, &b);
        drop((a, b));
        measure::same_tree(&src, &dst, n).unwrap_or_else(|e| panic!("lab3: {e}"));
        eprintln!(
            "row 2 ({place}) trial {}: lab3{}{} {} (CPU A {}, B {})",
            t + 1,
            if old.is_some() { " (old engine)" } else { "" },
            if flags.is_empty() { "" } else { " without TLS" },
            secs(s),
            secs(ca),
            secs(cb)
        );
        s
    };
    let rsync_trial = |t: usize| {
        let (dst, r) = rsync_trial_into(root, "bulk", t, &src);
        measure::same_tree(&src, &dst, n).unwrap_or_else(|e| panic!("rsync: {e}"));
        eprintln!("row 2 ({place}) trial {}: rsync {}", t + 1, secs(r.secs));
        r.secs
    };
    let [lab, plain, rs, old] = contenders(plan, peers, |kind, t| match kind {
        RSYNC => rsync_trial(t),
        OLD => lab3_trial(t, &[], peers.old.as_deref()),
        kind => lab3_trial(t, flags(kind), None),
    });
    (lab, plain, rs, old)
}

// ------------------------------------------------------------------- row 3

fn big_file(plan: &Plan, peers: &Peers, work: &Path, notes: &mut Vec<(u8, String)>) -> Vec<Row> {
    let size = plan.big;
    let label = if size >= 1 << 30 {
        format!("{} GiB", size >> 30)
    } else {
        format!("{} MiB", size >> 20)
    };
    eprintln!("row 3: writing a {label} file...");
    let src = work.join("big_src");
    std::fs::create_dir_all(&src).unwrap();
    measure::make_big(&src.join("big.bin"), size, 3);
    let (mut rss_a, mut rss_b, mut rss_rsync) = (0u64, 0u64, 0u64);
    // Each lab3 kind's CPU seconds per trial, (server A, server B).
    let mut cpu: Vec<Vec<(f64, f64)>> = vec![Vec::new(); 4];
    let mut lab3_trial = |t: usize, kind: usize| {
        let old = (kind == OLD).then_some(peers.old.as_deref()).flatten();
        let flags = flags(kind);
        let (dst, t0, a, b) = fresh_pair(work, "big", t, &src, flags, old);
        let target = dst.join("big.bin");
        let done = measure::poll(Duration::from_secs(600), Duration::from_millis(2), || {
            std::fs::metadata(&target).is_ok_and(|m| m.len() == size)
        });
        let s = t0.elapsed().as_secs_f64();
        assert!(
            done.is_some(),
            "the big file never reached B\n{}\n{}",
            a.output(),
            b.output()
        );
        let (ra, rb) = (
            measure::vm_hwm_kib(a.pid().unwrap()).unwrap_or(0),
            measure::vm_hwm_kib(b.pid().unwrap()).unwrap_or(0),
        );
        let (ca, cb) = (
            measure::cpu_secs(a.pid().unwrap()).unwrap_or(f64::NAN),
            measure::cpu_secs(b.pid().unwrap()).unwrap_or(f64::NAN),
        );
        cpu[kind].push((ca, cb));
        if kind == 0 {
            rss_a = rss_a.max(ra);
            rss_b = rss_b.max(rb);
        }
        drop((a, b));
        assert!(
            measure::same_file(&src.join("big.bin"), &target),
            "lab3: the big file differs"
        );
        eprintln!(
            "row 3 trial {}: lab3{} {} (CPU A {}, B {}; peak RSS A {}, B {})",
            t + 1,
            match kind {
                LAB3_PLAIN => " without TLS",
                OLD => " (old build)",
                _ => "",
            },
            secs(s),
            secs(ca),
            secs(cb),
            measure::mib(ra),
            measure::mib(rb)
        );
        // One file: removing it costs the next trial nothing.
        let _ = std::fs::remove_file(&target);
        s
    };
    let mut rsync_trial = |t: usize| {
        let (dst, r) = rsync_trial_into(work, "big", t, &src);
        assert!(
            measure::same_file(&src.join("big.bin"), &dst.join("big.bin")),
            "rsync: the big file differs"
        );
        eprintln!(
            "row 3 trial {}: rsync {} (peak RSS {})",
            t + 1,
            secs(r.secs),
            measure::mib(r.peak_rss_kib)
        );
        rss_rsync = rss_rsync.max(r.peak_rss_kib);
        let _ = std::fs::remove_file(dst.join("big.bin"));
        r.secs
    };
    let [lab, plain, rs, old] = contenders(plan, peers, |kind, t| match kind {
        RSYNC => rsync_trial(t),
        kind => lab3_trial(t, kind),
    });
    let _ = std::fs::remove_dir_all(&src);
    let mut rows = Vec::new();
    let mut row = Row::new(3, format!("one {label} file reaches B complete"));
    row.target = "≤ 1.5x rsync".into();
    against_rsync(
        &mut row,
        &lab,
        peers.rsync.is_some().then_some(&rs[..]),
        Some(1.5),
    );
    rows.push(row);
    rows.push(tls_row(
        3,
        format!("the same {label} file: TLS against plaintext"),
        &lab,
        &plain,
    ));
    let side = |k: usize, b: bool| -> Vec<f64> {
        cpu[k].iter().map(|c| if b { c.1 } else { c.0 }).collect()
    };
    for (name, b) in [("A (sender)", false), ("B (receiver)", true)] {
        rows.push(tls_row(
            3,
            format!("CPU of server {name} for the same {label} file: TLS against plaintext"),
            &side(0, b),
            &side(LAB3_PLAIN, b),
        ));
    }
    if peers.old.is_some() {
        rows.push(old_row(
            3,
            format!("the same {label} file: against the old build"),
            &lab,
            &old,
        ));
        for (name, b) in [("A", false), ("B", true)] {
            rows.push(old_row(
                3,
                format!("CPU of server {name} for the same {label} file: against the old build"),
                &side(0, b),
                &side(OLD, b),
            ));
        }
    }
    for (side, kib) in [("A (sender)", rss_a), ("B (receiver)", rss_b)] {
        let mut row = Row::new(
            3,
            format!("peak RSS of server {side} during the {label} sync"),
        );
        row.lab3 = measure::mib(kib);
        row.peer = if peers.rsync.is_some() {
            format!(
                "rsync -a, largest of its processes: {}",
                measure::mib(rss_rsync)
            )
        } else {
            NO_RSYNC.into()
        };
        row.ratio = (rss_rsync > 0).then(|| kib as f64 / rss_rsync as f64);
        row.target = "< 64 MiB".into();
        row.pass = Some(kib < 64 * 1024);
        rows.push(row);
    }
    notes.push((3, format!(
        "Row 3: lab3 is timed from spawning both servers to the file on B having the full size (it appears only \
         whole, renamed into place); the bytes are compared after the clock stops. Peak RSS is VmHWM from \
         /proc/PID/status, read while the servers still run; rsync's is sampled every 5 ms from its processes \
         (the largest of the three), for the TLS trials. CPU is each server's utime+stime from /proc/PID/stat \
         (all threads, ticks) when the file is complete. lab3 trials: {}; without TLS: {}; the old build: {}; \
         rsync: {}.",
        list(&lab),
        list(&plain),
        list(&old),
        list(&rs),
    )));
    rows
}

// ------------------------------------------------------------------- row 4

/// Each server's CPU seconds so far (user + system): what a trial cost
/// the machine, which the load of other programs changes far less than
/// wall time.
fn cpu_of(a: &Server, b: &Server) -> (f64, f64) {
    let cpu = |s: &Server| s.pid().and_then(measure::cpu_secs).unwrap_or(f64::NAN);
    (cpu(a), cpu(b))
}

/// Spawns B then A over `dir_a`/`dir_b` with state in `state`, and returns
/// the seconds until A logs that it reconciled with B (and the servers).
fn start_to_in_sync(
    dir_a: &Path,
    dir_b: &Path,
    state: &Path,
    old: Option<&Path>,
) -> (f64, Server, Server) {
    let t0 = Instant::now();
    let (b, a);
    match old {
        Some(bins) => {
            b = start_b_from(bins, dir_b, &state.join("b_old"), "127.0.0.1:0", &[]);
            a = start_a_from(bins, dir_a, &state.join("a_old"), &b.addr, &[]);
        }
        None => {
            b = start_b(dir_b, &state.join("b"), "127.0.0.1:0", &[]);
            a = start_a(dir_a, &state.join("a"), &b.addr, &[]);
        }
    }
    let done = measure::poll(Duration::from_secs(120), Duration::from_millis(1), || {
        a.logged(&["reconciled with server B"])
    });
    let s = t0.elapsed().as_secs_f64();
    assert!(
        done.is_some(),
        "A never reconciled\n{}\n{}",
        a.output(),
        b.output()
    );
    (s, a, b)
}

fn startup(plan: &Plan, peers: &Peers, work: &Path, notes: &mut Vec<(u8, String)>) -> Vec<Row> {
    let n = plan.bulk_files;
    eprintln!("row 4: writing two identical trees of {n} files...");
    let dir_a = work.join("same_a");
    let dir_b = work.join("same_b");
    let mtime = Some(1_700_000_000_000_000_000);
    measure::make_tree(&dir_a, n, 4096, 4, mtime);
    measure::make_tree(&dir_b, n, 4096, 4, mtime);
    if peers.rsync.is_some() {
        // Align the folders' own times once, so every timed run is a true no-op.
        peers::rsync(&dir_a, &dir_b);
    }
    let (mut first, mut again, mut rs, mut moved) = (Vec::new(), Vec::new(), Vec::new(), 0);
    let (mut old_first, mut old_again) = (Vec::new(), Vec::new());
    // One engine's first start and restart over the trial's state.
    let mut run = |state: &Path, old: Option<&Path>| {
        measure::settle_disk();
        let (s, a, b) = start_to_in_sync(&dir_a, &dir_b, state, old);
        let (ca, cb) = cpu_of(&a, &b);
        // Let B finish its side and both journals reach the disk before the kill.
        measure::poll(Duration::from_secs(60), Duration::from_millis(5), || {
            b.logged(&["reconciled with server A"])
        });
        std::thread::sleep(Duration::from_millis(500));
        moved += transfers(&[&a, &b]);
        drop((a, b));
        measure::settle_disk();
        let (s2, a, b) = start_to_in_sync(&dir_a, &dir_b, state, old);
        let (ca2, cb2) = cpu_of(&a, &b);
        std::thread::sleep(Duration::from_millis(200));
        moved += transfers(&[&a, &b]);
        drop((a, b));
        eprintln!(
            "row 4: CPU when A reconciled: first start A {}, B {}; restart A {}, B {}",
            secs(ca),
            secs(cb),
            secs(ca2),
            secs(cb2)
        );
        (s, s2)
    };
    for t in 0..plan.trials {
        let state = trial_dir(work, "start_state", t);
        // Who goes first alternates.
        let order: &[bool] = if t % 2 == 0 {
            &[false, true]
        } else {
            &[true, false]
        };
        for &is_old in order {
            match (is_old, peers.old.as_deref()) {
                (false, _) => {
                    let (s, s2) = run(&state, None);
                    first.push(s);
                    again.push(s2);
                    eprintln!(
                        "row 4 trial {}: lab3 first start {}, restart {}",
                        t + 1,
                        secs(s),
                        secs(s2)
                    );
                }
                (true, Some(bins)) => {
                    let (s, s2) = run(&state, Some(bins));
                    old_first.push(s);
                    old_again.push(s2);
                    eprintln!(
                        "row 4 trial {}: old engine first start {}, restart {}",
                        t + 1,
                        secs(s),
                        secs(s2)
                    );
                }
                (true, None) => {}
            }
        }
        if peers.rsync.is_some() {
            let r = peers::rsync(&dir_a, &dir_b);
            eprintln!("row 4 trial {}: rsync no-op {}", t + 1, secs(r.secs));
            rs.push(r.secs);
        }
    }
    let peer = (!rs.is_empty()).then(|| median(&rs));
    let mut rows = Vec::new();
    for (what, v, target) in [
        ("restart with the state of a previous run", &again, true),
        ("first-ever start (no journal)", &first, false),
    ] {
        let mut row = Row::new(
            4,
            format!(
                "two identical {}-file trees, start to in sync: {what}",
                count(n)
            ),
        );
        let m = median(v);
        row.lab3 = secs(m);
        row.peer = match peer {
            Some(p) => format!("rsync -a no-op: {}", secs(p)),
            None => NO_RSYNC.into(),
        };
        row.ratio = peer.and_then(|p| ratio(m, p));
        row.target = if target {
            "< 1 s".into()
        } else {
            "— (reported; < 1 s wanted)".into()
        };
        row.pass = target.then_some(m < 1.0);
        rows.push(row);
    }
    if peers.old.is_some() {
        rows.push(old_row(
            4,
            format!(
                "the same {}-file trees, restart: against the old engine",
                count(n)
            ),
            &again,
            &old_again,
        ));
        rows.push(old_row(
            4,
            format!(
                "the same {}-file trees, first start: against the old engine",
                count(n)
            ),
            &first,
            &old_first,
        ));
    }
    notes.push((4, format!(
        "Row 4: timed from spawning B, then A, to A's stderr saying 'reconciled with server B'. Files moved during \
         these runs (should be 0): {moved}. lab3 first starts: {}; restarts: {}; rsync no-ops: {}{}.",
        list(&first),
        list(&again),
        list(&rs),
        if old_first.is_empty() {
            String::new()
        } else {
            format!("; the old engine's first starts: {}; restarts: {}", list(&old_first), list(&old_again))
        },
    )));
    rows
}
