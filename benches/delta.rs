//! `cargo bench --bench delta`: a big file that changes a little (issue 15),
//! lab3's block transfer beside `rsync -a --no-whole-file` between two
//! folders, in one run, trials interleaved (who goes first rotating),
//! medians; and beside the same rsync with `--fsync`, which flushes the
//! file it wrote before it exits, as lab3 does before its rename (like for
//! like: plain rsync leaves its copy to the kernel's write-back).
//!
//! Rows: 1 MiB rewritten in the middle of a 1 GiB file, in place (a
//! database page, a VM image); and the same file grown by 10 MiB at its
//! end (a log). For each, the file bytes that crossed (lab3: Server A's
//! own counter, `lab3 status --json`'s `link.sent_bytes`; rsync: the
//! "Literal data" of its `--stats`) and the time (lab3: from the end of
//! the write at A until Server B announces the update, the file renamed
//! into place; rsync: its whole run). Targets: under 2% of the file sent
//! for the first, the tail alone (plus at most one block) for the second,
//! and faster than (plain) rsync for both. The `--fsync` rows have no
//! target of their own: they say how much of the gap is the flush.
//!
//! `bench/setup.sh` installs rsync. `LAB3_BENCH_QUICK=1`: a 64 MiB file,
//! one trial (CI's smoke run); `LAB3_BENCH_TRIALS=N`.
//! `LAB3_BENCH_OLD_BINS=DIR` adds another build's servers (the folder that
//! holds its `server_a` and `server_b`, e.g. main's `target/dist`) as a
//! third contender, a pair of its own, interleaved with the others (before
//! and after a change, side by side in one run); `LAB3_BENCH_OLD_ENV="K=V"`
//! sets variables for its servers only. Only a full run without another
//! build writes the "Block transfer" section of `bench/RESULTS.md`.
//! Every folder is made under the temporary folder (`TMPDIR`): point it
//! at another file system to measure there (e.g. XFS with reflinks:
//! `bench/xfs.sh up`, as root).

#[allow(dead_code)]
#[path = "sync/measure.rs"]
mod measure;
#[allow(dead_code)]
#[path = "sync/report.rs"]
mod report;

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::sync::blocks::block_size;
use lab3_tests::{start_a_from, start_b_from, Pair};
use measure::{median, secs};
use report::Row;

const MIB: u64 = 1 << 20;
/// How much of the file the first change rewrites, and the second appends.
const CHANGED: u64 = MIB;
const GROWN: u64 = 10 * MIB;

#[derive(Clone, Copy, PartialEq)]
enum Change {
    Middle,
    Grow,
}

/// Trial `t`'s change, made the same way to `path` for both tools: 1 MiB
/// of new bytes at an unaligned offset in the middle, or 10 MiB appended.
fn apply(path: &Path, change: Change, t: usize) {
    let len = std::fs::metadata(path).unwrap().len();
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let (at, n) = match change {
        Change::Middle => (len / 2 + 12_345 + t as u64 * 3 * MIB, CHANGED),
        Change::Grow => (len, GROWN),
    };
    let mut bytes = vec![0u8; n as usize];
    measure::Rng::new(1000 + t as u64 + n).fill(&mut bytes);
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&bytes).unwrap();
}

/// One `rsync -a --no-whole-file --ignore-times --stats SRC/ DST/`, with
/// `--fsync` if `fsync`: (seconds, literal data bytes, total bytes sent).
/// `--ignore-times`: an edit that keeps the size and lands within the
/// second of the last copy (the quick run's 64 MiB file) looks unchanged
/// to rsync's quick check, which then compared lab3 with a no-op (0 bytes
/// in 55 ms).
fn rsync(src: &Path, dst: &Path, fsync: bool) -> (f64, u64, u64) {
    let t0 = Instant::now();
    let out = Command::new("rsync")
        .args(["-a", "--no-whole-file", "--ignore-times", "--stats"])
        .args(fsync.then_some("--fsync"))
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", dst.display()))
        .stderr(Stdio::inherit())
        .output()
        .expect("run rsync");
    let s = t0.elapsed().as_secs_f64();
    assert!(out.status.success(), "rsync failed: {}", out.status);
    let stats = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> u64 {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| {
                v.split_whitespace()
                    .next()
                    .unwrap_or("0")
                    .replace(',', "")
                    .parse()
                    .unwrap_or(0)
            })
            .unwrap_or_else(|| panic!("no {name:?} in rsync's stats:\n{stats}"))
    };
    (s, field("Literal data:"), field("Total bytes sent:"))
}

/// Server A's `link.sent_bytes`.
fn sent_bytes(pair: &Pair) -> u64 {
    let out = pair.lab3(&["status", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    doc["link"]["sent_bytes"].as_u64().expect("link.sent_bytes")
}

/// A pair of the build in `bins` (`LAB3_BENCH_OLD_BINS`) over a copy of
/// `file`, already at both sides (B's copy first, so A has nothing to send).
fn old_pair(bins: &Path, file: &Path) -> Pair {
    let root = tempfile::tempdir().expect("temp dir");
    let dirs: [PathBuf; 4] =
        ["directory_a", "state_a", "directory_b", "state_b"].map(|d| root.path().join(d));
    for d in &dirs {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::copy(file, dirs[2].join("big.bin")).unwrap();
    std::fs::copy(file, dirs[0].join("big.bin")).unwrap();
    let mtime = std::fs::metadata(file).unwrap().modified().unwrap();
    for d in [&dirs[0], &dirs[2]] {
        let f = std::fs::File::options()
            .write(true)
            .open(d.join("big.bin"))
            .unwrap();
        f.set_modified(mtime).unwrap();
    }
    let b = start_b_from(bins, &dirs[2], &dirs[3], "127.0.0.1:0", &[]);
    let a = start_a_from(bins, &dirs[0], &dirs[1], &b.addr, &[]);
    let pair = Pair::from_parts(root, dirs, a, b);
    pair.wait_linked(120);
    pair
}

/// The load average now (the first figure of `/proc/loadavg`).
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "?".into())
}

/// The lab3 trial: the change at A until B announces it; (seconds, bytes sent).
fn lab3_trial(pair: &Pair, change: Change, t: usize) -> (f64, u64) {
    let before = sent_bytes(pair);
    let seen = pair.b.said_count(&["A->B", "updated", "big.bin"]);
    apply(&pair.dir_a.join("big.bin"), change, t);
    let t0 = Instant::now();
    let done = measure::poll(Duration::from_secs(300), Duration::from_millis(2), || {
        pair.b.said_count(&["A->B", "updated", "big.bin"]) > seen
    });
    let s = t0.elapsed().as_secs_f64();
    assert!(done.is_some(), "B never took the change\n{}", pair.output());
    let mut sent = before;
    measure::poll(Duration::from_secs(10), Duration::from_millis(5), || {
        sent = sent_bytes(pair);
        sent > before
    });
    assert!(
        measure::same_file(&pair.dir_a.join("big.bin"), &pair.dir_b.join("big.bin")),
        "lab3: the files differ after the update"
    );
    (s, sent - before)
}

fn main() {
    let quick = std::env::var("LAB3_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let size: u64 = if quick { 64 * MIB } else { 1 << 30 };
    let trials: usize = std::env::var("LAB3_BENCH_TRIALS")
        .ok()
        .map(|t| t.parse().expect("LAB3_BENCH_TRIALS: a number"))
        .unwrap_or(if quick { 1 } else { 3 });
    let rsync_version = std::process::Command::new("rsync")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(String::from)
        });
    if rsync_version.is_none() {
        eprintln!("delta bench: rsync is not installed; its columns are skipped (bench/setup.sh)");
    }
    eprintln!("delta bench: building the binaries...");
    lab3_tests::bin_dir();
    let label = if size >= 1 << 30 {
        format!("{} GiB", size >> 30)
    } else {
        format!("{} MiB", size >> 20)
    };
    eprintln!("delta bench: a {label} file at A, sent whole to B first...");
    let pair = Pair::start_with(|a, _| measure::make_big(&a.join("big.bin"), size, 15));
    let (file_a, file_b) = (pair.dir_a.join("big.bin"), pair.dir_b.join("big.bin"));
    let first = measure::poll(Duration::from_secs(600), Duration::from_millis(20), || {
        std::fs::metadata(&file_b).is_ok_and(|m| m.len() == size)
    });
    assert!(
        first.is_some(),
        "the file never reached B\n{}",
        pair.output()
    );
    assert!(
        measure::same_file(&file_a, &file_b),
        "B's first copy differs"
    );
    let old_bins = std::env::var_os("LAB3_BENCH_OLD_BINS").map(PathBuf::from);
    let old = old_bins.as_deref().map(|bins| {
        eprintln!(
            "delta bench: the other build's pair ({})...",
            bins.display()
        );
        old_pair(bins, &file_a)
    });
    let load_before = load();
    let work = tempfile::tempdir().expect("temp dir");
    // Plain rsync's folders, and `rsync --fsync`'s.
    let (src, dst) = (work.path().join("src"), work.path().join("dst"));
    let (src_f, dst_f) = (work.path().join("src_f"), work.path().join("dst_f"));
    if rsync_version.is_some() {
        for d in [&src, &dst, &src_f, &dst_f] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::copy(&file_a, d.join("big.bin")).unwrap();
        }
        // The same mtime on both sides, as after a sync.
        rsync(&src, &dst, false);
        rsync(&src_f, &dst_f, true);
    }

    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut versus_fsync = Vec::new();
    for (n, change) in [(1u8, Change::Middle), (2, Change::Grow)] {
        let (mut lab, mut lab_bytes, mut rs, mut rs_bytes, mut rs_total) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut olds, mut rs_f) = (Vec::new(), Vec::new());
        for t in 0..trials {
            // Who goes first rotates: lab3, rsync, rsync --fsync, the
            // other build.
            let n_turns = if old.is_some() { 4 } else { 3 };
            for turn in (0..n_turns).map(|k| (k + t) % n_turns) {
                if turn == 3 {
                    let pair = old.as_ref().expect("an old pair");
                    let (s, b) = lab3_trial(pair, change, t);
                    eprintln!(
                        "row {n} trial {}: old build {} , {b} bytes sent",
                        t + 1,
                        secs(s)
                    );
                    olds.push(s);
                } else if turn == 0 {
                    let (s, b) = lab3_trial(&pair, change, t);
                    eprintln!("row {n} trial {}: lab3 {} , {b} bytes sent", t + 1, secs(s));
                    lab.push(s);
                    lab_bytes.push(b as f64);
                } else if turn == 1 && rsync_version.is_some() {
                    apply(&src.join("big.bin"), change, t);
                    let (s, lit, total) = rsync(&src, &dst, false);
                    eprintln!(
                        "row {n} trial {}: rsync {} , {lit} literal bytes",
                        t + 1,
                        secs(s)
                    );
                    rs.push(s);
                    rs_bytes.push(lit as f64);
                    rs_total.push(total as f64);
                } else if turn == 2 && rsync_version.is_some() {
                    apply(&src_f.join("big.bin"), change, t);
                    let (s, lit, _) = rsync(&src_f, &dst_f, true);
                    eprintln!(
                        "row {n} trial {}: rsync --fsync {} , {lit} literal bytes",
                        t + 1,
                        secs(s)
                    );
                    rs_f.push(s);
                }
            }
        }
        let file_len = std::fs::metadata(&file_a).unwrap().len();
        let (what, target, pass) = match change {
            Change::Middle => (
                format!("1 MiB rewritten in the middle of a {label} file"),
                "< 2% of the file".to_string(),
                median(&lab_bytes) < 0.02 * size as f64,
            ),
            Change::Grow => {
                let most = GROWN + block_size(file_len);
                (
                    format!("the {label} file grown by 10 MiB"),
                    format!(
                        "the tail: ≤ 10 MiB + one block ({} KiB)",
                        block_size(file_len) >> 10
                    ),
                    median(&lab_bytes) <= most as f64,
                )
            }
        };
        let mut row = Row::new(n, format!("{what}: file bytes sent"));
        row.lab3 = format!(
            "{} ({:.2}% of the file)",
            measure::mib(median(&lab_bytes) as u64 / 1024),
            100.0 * median(&lab_bytes) / file_len as f64
        );
        if rsync_version.is_some() {
            row.peer = format!(
                "rsync --no-whole-file: {} literal ({} sent in all)",
                measure::mib(median(&rs_bytes) as u64 / 1024),
                measure::mib(median(&rs_total) as u64 / 1024)
            );
            row.ratio = (median(&rs_bytes) > 0.0).then(|| median(&lab_bytes) / median(&rs_bytes));
        }
        row.target = target;
        row.pass = Some(pass);
        rows.push(row);
        let mut row = Row::new(n, format!("{what}: time"));
        row.lab3 = secs(median(&lab));
        row.target = "faster than rsync".into();
        if rsync_version.is_some() {
            row.peer = format!("rsync --no-whole-file: {}", secs(median(&rs)));
            row.ratio = Some(median(&lab) / median(&rs));
            row.pass = Some(median(&lab) < median(&rs));
        }
        rows.push(row);
        if !rs_f.is_empty() {
            // Like for like (both flush what they wrote): no target of its
            // own, the target above stays against plain rsync.
            let mut row = Row::new(n, format!("{what}: time, beside rsync --fsync"));
            row.lab3 = secs(median(&lab));
            row.peer = format!("rsync --no-whole-file --fsync: {}", secs(median(&rs_f)));
            row.ratio = Some(median(&lab) / median(&rs_f));
            row.target = "— (like for like; the target is the row above)".into();
            versus_fsync.push(format!(
                "row {n} {:.2}x rsync --fsync",
                median(&lab) / median(&rs_f)
            ));
            rows.push(row);
        }
        let list = |v: &[f64]| v.iter().map(|s| secs(*s)).collect::<Vec<_>>().join(", ");
        let or_not_run = |v: &[f64]| {
            if v.is_empty() {
                "not run".to_string()
            } else {
                list(v)
            }
        };
        notes.push(format!(
            "Row {n}: lab3 {}; rsync {}; rsync --fsync {}.",
            list(&lab),
            or_not_run(&rs),
            or_not_run(&rs_f)
        ));
        if !olds.is_empty() {
            notes.push(format!(
                "Row {n}: the other build (LAB3_BENCH_OLD_BINS) {}: median {} (this build/other {:.2}x).",
                list(&olds),
                secs(median(&olds)),
                median(&lab) / median(&olds)
            ));
        }
    }
    notes.push(format!(
        "Load average (1 min) at the first trial {load_before}, at the end {}.",
        load()
    ));
    drop(pair);
    drop(old);
    let table = report::table(&rows);
    let notes: String = notes.iter().map(|n| format!("- {n}\n")).collect();
    println!("\n{table}\n{notes}");
    let failed = rows.iter().filter(|r| r.pass == Some(false)).count();
    println!(
        "delta bench: {failed} target(s) missed (time targets against plain rsync, which does not flush){}",
        if versus_fsync.is_empty() {
            String::new()
        } else {
            format!("; like for like: {}", versus_fsync.join(", "))
        }
    );
    if !quick && std::env::var("LAB3_BENCH_TRIALS").is_err() && old_bins.is_none() {
        let body = format!(
            "Run on {} with `cargo bench --bench delta` (dist binaries; {} cores shared with other builds; {}). \
             Medians of {trials} trials per tool, interleaved in one run, who goes first rotating. \
             lab3's bytes are Server A's own count of file bytes it sent over the link (the block list B sends \
             first, about 80 bytes per block, is not counted; nor are rsync's checksums in its literal data); \
             rsync's are the literal data of its `--stats`, and in brackets all it sent. lab3's time runs from \
             the end of the write at A until Server B announces the update (the file renamed into place); \
             rsync's is its whole run over the two folders (a local copy: no network for either). \
             The time targets are against plain rsync, which leaves its copy to the kernel's write-back; \
             lab3 flushes the new file before its rename (a power cut leaves the old file or the new, \
             whole); `rsync --fsync` flushes too (before it exits), and is shown beside it, like for \
             like, without a target of its own.\n\n{table}\n{notes}",
            report::today(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            rsync_version.as_deref().unwrap_or("rsync not installed"),
        );
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/RESULTS.md");
        match report::write_named_section(&path, "Block transfer", &body) {
            Ok(()) => eprintln!("delta bench: wrote {}", path.display()),
            Err(e) => eprintln!("delta bench: cannot write {}: {e}", path.display()),
        }
    }
}
