//! Lock queue benchmark: 1,000 queued updates of a 64 KiB file, replayed on
//! unlock. Reports the replay time and Server A's peak RSS (the queue lives
//! on disk, so RSS should not grow with it).
//!
//! `cargo bench --bench locks`; `LAB3_BENCH_QUICK=1` for a short run (100 updates).

use std::time::Instant;

use lab3_tests::*;

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn queued_lines(s: &Server) -> usize {
    s.stdout
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("queued"))
        .count()
}

fn main() {
    let quick = std::env::var_os("LAB3_BENCH_QUICK").is_some();
    let n: usize = if quick { 100 } else { 1_000 };
    let size = 64 * 1024;
    let pair = Pair::start_with(|a, _| {
        write_file(
            a,
            "big.bin",
            &vec![0u8; size],
            Some(1_600_000_000_000_000_000),
        );
    });
    pair.wait(30, "initial sync", || pair.dir_b.join("big.bin").exists());
    let out = pair.lab3(&["-lock", "-0"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rss_before = peak_rss_kib(pair.a.pid().unwrap());
    let fill = Instant::now();
    for i in 0..n {
        let mut body = vec![(i % 251) as u8; size];
        body[..8].copy_from_slice(&(i as u64).to_le_bytes());
        // Editor-style: a finished file with its mtime, renamed over the target.
        pair.put(
            &pair.dir_b,
            "big.bin",
            &body,
            1_700_000_000_000_000_000 + i as i64 * 1_000,
        );
        pair.wait(30, "the update to be queued", || queued_lines(&pair.a) > i);
    }
    let fill = fill.elapsed();
    let start = Instant::now();
    let out = pair.lab3(&["--json", "-unlock", "-0"]);
    let replay = start.elapsed();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let applied = doc["updates"].as_array().map_or(0, |u| u.len());
    let rss_after = peak_rss_kib(pair.a.pid().unwrap());
    let last = read(&pair.dir_a.join("big.bin")).unwrap();
    if std::env::var_os("LAB3_BENCH_DEBUG").is_some() {
        eprintln!("{}", text(&out.stdout));
        eprintln!("{}", pair.a.output());
        eprintln!("{}", pair.b.output());
    }
    assert_eq!(
        &last[..8],
        &((n - 1) as u64).to_le_bytes(),
        "the last version is in place"
    );
    println!("| lock queue ({n} x 64 KiB) | value |");
    println!("| --- | --- |");
    println!("| updates queued, then replayed | {applied} |");
    println!(
        "| time to queue them (write at B, wait for A's 'queued') | {:.2} s |",
        fill.as_secs_f64()
    );
    println!(
        "| replay on unlock (lab3 -unlock, end to end) | {:.0} ms |",
        replay.as_secs_f64() * 1e3
    );
    println!(
        "| per update | {:.2} ms |",
        replay.as_secs_f64() * 1e3 / n as f64
    );
    println!(
        "| Server A peak RSS before queueing / after replay | {} / {} MiB |",
        rss_before / 1024,
        rss_after / 1024
    );
}
