//! The listing benchmark: `lab3 --json` end to end against `ls -l A B`,
//! over the same two folders, in one run, trials alternating.
//!
//! `cargo bench --bench listing` makes 10,000 files on each side (the same
//! names, as in a synchronised tree), starts both servers in listing-only
//! mode (`--no-sync`) and, after warm-up, times 15 trials of each command as
//! a spawned process whose output is read to the end. It prints the medians
//! and their ratio as a markdown table; the target is lab3 within 3x of ls.
//!
//! `LAB3_BENCH_QUICK=1` (or `-- --quick`) is the CI smoke run: 1,000 files,
//! 3 trials. `LAB3_BENCH_FILES` and `LAB3_BENCH_TRIALS` override the sizes.
//! `LAB3_BENCH_MAX_RATIO=R` makes the run fail when the ratio is above R.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lab3_tests::*;

/// What lab3 should achieve, as a multiple of `ls -l`'s median.
const TARGET_RATIO: f64 = 3.0;

fn env_num(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn main() {
    let quick = std::env::var_os("LAB3_BENCH_QUICK").is_some_and(|v| v != "0")
        || std::env::args().any(|a| a == "--quick");
    let files = env_num("LAB3_BENCH_FILES").unwrap_or(if quick { 1_000 } else { 10_000 });
    let trials = env_num("LAB3_BENCH_TRIALS").unwrap_or(if quick { 3 } else { 15 });
    let warmup = if quick { 1 } else { 3 };

    let t = Instant::now();
    let pair = listing_pair(|a, b| {
        make_files(a, files);
        make_files(b, files);
    });
    eprintln!(
        "bench: {files} files on each side made and servers started in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // Check once that both commands see every file, so that we time real work.
    let doc = pair.listing();
    assert_eq!(doc["peer"], "connected");
    assert_eq!(doc["files"].as_array().unwrap().len(), files);
    let ls_lines = run(ls(&pair)).1.iter().filter(|&&b| b == b'\n').count();
    assert!(ls_lines >= 2 * files, "ls -l printed {ls_lines} lines");

    let mut lab3_times = Vec::new();
    let mut ls_times = Vec::new();
    for i in 0..warmup + trials {
        let (t_lab3, out) = run(lab3_cmd(&pair));
        assert!(out.len() > files * 50, "lab3 --json printed too little");
        let (t_ls, _) = run(ls(&pair));
        if i >= warmup {
            lab3_times.push(t_lab3);
            ls_times.push(t_ls);
        }
    }
    let lab3_med = median(&mut lab3_times);
    let ls_med = median(&mut ls_times);
    let ratio = lab3_med.as_secs_f64() / ls_med.as_secs_f64();

    println!("Listing, {files} files on each side, {trials} trials each after {warmup} warm-up, alternating:\n");
    println!("| command | median | min | max |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, times) in [("`lab3 --json`", &lab3_times), ("`ls -l A B`", &ls_times)] {
        println!(
            "| {name} | {} | {} | {} |",
            ms(median(&mut times.clone())),
            ms(*times.iter().min().unwrap()),
            ms(*times.iter().max().unwrap())
        );
    }
    let verdict = if ratio <= TARGET_RATIO {
        "met"
    } else {
        "NOT met"
    };
    println!("\nratio lab3 / ls: {ratio:.2}x (target: at most {TARGET_RATIO}x, {verdict})");

    if let Some(max) = std::env::var("LAB3_BENCH_MAX_RATIO")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
    {
        if ratio > max {
            eprintln!("bench: ratio {ratio:.2} is above LAB3_BENCH_MAX_RATIO={max}");
            std::process::exit(1);
        }
    }
}

/// `count` small files, `file-00000.txt`...
fn make_files(dir: &Path, count: usize) {
    for i in 0..count {
        std::fs::write(dir.join(format!("file-{i:05}.txt")), format!("file {i}\n")).unwrap();
    }
}

fn lab3_cmd(pair: &Pair) -> Command {
    let mut c = Command::new(bin("lab3"));
    c.args(["--server", &pair.a.addr, "--json"])
        .env("NO_COLOR", "1")
        .env_remove("LAB3_TOKEN");
    c
}

fn ls(pair: &Pair) -> Command {
    let mut c = Command::new("ls");
    c.arg("-l")
        .arg(&pair.dir_a)
        .arg(&pair.dir_b)
        .env("LC_ALL", "C");
    c
}

/// Runs `cmd` to completion with stdout piped and read to the end; returns
/// the wall time and the output.
fn run(mut cmd: Command) -> (Duration, Vec<u8>) {
    let t = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("spawn");
    let took = t.elapsed();
    assert!(out.status.success(), "{cmd:?} failed");
    (took, out.stdout)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}
