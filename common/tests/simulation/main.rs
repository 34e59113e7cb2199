//! The deterministic simulation of the sync core (issue 10): two cores,
//! A and B, against fake file systems and a fake link, driven by a seeded
//! schedule; after each run, quiet, the invariants are checked.
//!
//! - `cargo test -p common --test simulation` runs a few thousand seeds
//!   (`LAB3_SIM_SEEDS`, `LAB3_SIM_FIRST` change which), and a third as
//!   many again with folders that may fold letter case, and a tenth with
//!   names that differ only in Unicode normalization.
//! - `LAB3_SIM_SEED=N cargo test -p common --test simulation -- replay --nocapture`
//!   replays seed N with a trace of every step (`LAB3_SIM_SHRINK=1`: of
//!   its shrunk schedule).
//! - `scripts/simulate.sh N` runs N seeds on a release build.
//! - `LAB3_SIM_CASE=1`: setups where folders may fold letter case;
//!   `LAB3_SIM_NFD=1`: users also pick NFC and NFD look-alike names, and
//!   folders may take them for one (as on macOS). Both may be on; each
//!   names other setups (and for NFD other schedules) for the same seeds.
//!
//! # Layout
//! - `prng`: the seeded generator.
//! - `fake_fs`: an in-memory folder with the knobs file systems differ in.
//! - `world`: two sides, the link, the clock; one method per step.
//! - `executor`: the core's effects carried out against the fake folder.
//! - `durability`: what the executor has flushed, what a power cut drops.
//! - `user`: what users do to a folder.
//! - `schedule`: the steps a seed draws.
//! - `invariants`: what must hold.
//! - `known`: known core bugs, recognised so that runs go on meanwhile.
//! - `runner`: one seed, quiescence, shrinking, the failure report.
//! - `regressions`: a replaying test per bug found.

mod durability;
mod executor;
mod fake_fs;
mod invariants;
mod known;
mod prng;
#[cfg(test)]
mod regressions;
mod runner;
mod schedule;
mod user;
mod world;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use runner::{report, run_steps, schedule_for, setup_drawn};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn case_knob() -> bool {
    std::env::var("LAB3_SIM_CASE").is_ok_and(|v| v == "1")
}

fn nfd_knob() -> bool {
    std::env::var("LAB3_SIM_NFD").is_ok_and(|v| v == "1")
}

/// What a batch of seeds came to.
struct Batch {
    ran: u64,
    /// Every failing seed and what it broke, in seed order.
    failures: Vec<(u64, Vec<String>)>,
}

/// Which setups a batch draws: folders that may fold letter case, names
/// with NFC and NFD look-alikes.
#[derive(Debug, Clone, Copy)]
struct Kinds {
    case: bool,
    nfd: bool,
}

/// Runs seeds `first..first + n` on `threads` threads, of the setups
/// `kinds` says; `keep_going`: past the first failure (else the batch
/// stops there).
fn run_many(first: u64, n: u64, threads: u64, kinds: Kinds, keep_going: bool) -> Batch {
    let next = AtomicU64::new(first);
    let done = AtomicU64::new(0);
    let failed: Mutex<Vec<(u64, Vec<String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= first + n || (!keep_going && !failed.lock().unwrap().is_empty()) {
                    return;
                }
                let setup = setup_drawn(seed, kinds.case, kinds.nfd);
                let v = run_steps(&setup, &schedule_for(seed), false);
                done.fetch_add(1, Ordering::Relaxed);
                if !v.is_empty() {
                    failed.lock().unwrap().push((seed, v));
                }
            });
        }
    });
    let mut failures = failed.into_inner().unwrap();
    failures.sort();
    Batch {
        ran: done.load(Ordering::Relaxed),
        failures,
    }
}

/// One line per kind of failure (its first violation up to a colon):
/// how many seeds, and the first few.
fn summary(failures: &[(u64, Vec<String>)]) -> String {
    let mut kinds: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for (seed, v) in failures {
        let k = v.first().map_or("", |s| s.split(':').next().unwrap_or(""));
        kinds.entry(k.to_string()).or_default().push(*seed);
    }
    kinds
        .iter()
        .map(|(k, seeds)| {
            let some: Vec<String> = seeds.iter().take(40).map(u64::to_string).collect();
            format!("  {} seeds: {k} (e.g. {})\n", seeds.len(), some.join(", "))
        })
        .collect()
}

/// Silences the core's panic messages (each one is reported with its seed).
fn quiet_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}

/// The quick run: `LAB3_SIM_SEEDS` seeds (3,000) with case-sensitive
/// folders, then a third as many again where either folder may fold
/// letter case (as on macOS and Windows), and a tenth with NFC and NFD
/// look-alike names where folders may fold both (as on macOS), unless
/// `LAB3_SIM_CASE` or `LAB3_SIM_NFD` says which alone (`1`: those setups
/// only, both `1`: the two together; `LAB3_SIM_CASE=0`: the plain ones).
#[test]
fn ci_seeds() {
    let first = env_u64("LAB3_SIM_FIRST", 0);
    let n = env_u64("LAB3_SIM_SEEDS", 3000);
    let on = |v: &str| std::env::var(v).ok();
    let kinds = |case, nfd| Kinds { case, nfd };
    let runs: Vec<(Kinds, u64)> = match (on("LAB3_SIM_CASE").as_deref(), nfd_knob()) {
        (case, true) => vec![(kinds(case == Some("1"), true), n)],
        (Some("1"), false) => vec![(kinds(true, false), n)],
        (Some("0"), false) => vec![(kinds(false, false), n)],
        _ => vec![
            (kinds(false, false), n),
            (kinds(true, false), n.div_ceil(3)),
            (kinds(true, true), n.div_ceil(10)),
        ],
    };
    quiet_panics();
    for (kinds, n) in runs {
        let start = Instant::now();
        let batch = run_many(first, n, 2, kinds, false);
        println!(
            "simulation: {} seeds{}{} in {:.1} s",
            batch.ran,
            if kinds.case {
                " (folders may fold case)"
            } else {
                ""
            },
            if kinds.nfd {
                " (NFC and NFD names)"
            } else {
                ""
            },
            start.elapsed().as_secs_f64()
        );
        if let Some((seed, v)) = batch.failures.first() {
            let _ = std::panic::take_hook();
            panic!("{}", report(*seed, kinds.case, kinds.nfd, v));
        }
    }
    let _ = std::panic::take_hook();
}

/// `scripts/simulate.sh N`: N seeds from `LAB3_SIM_FIRST`, on both cores.
#[test]
#[ignore = "long: run through scripts/simulate.sh"]
fn many() {
    let first = env_u64("LAB3_SIM_FIRST", 0);
    let n = env_u64("LAB3_SIM_SEEDS", 100_000);
    let threads = env_u64("LAB3_SIM_THREADS", 2);
    quiet_panics();
    let start = Instant::now();
    let kinds = Kinds {
        case: case_knob(),
        nfd: nfd_knob(),
    };
    let batch = run_many(first, n, threads, kinds, true);
    let _ = std::panic::take_hook();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "simulation: {} seeds ({first}..{}) in {secs:.1} s, {:.0} seeds/s; {} failed",
        batch.ran,
        first + n,
        batch.ran as f64 / secs,
        batch.failures.len()
    );
    let [cuts, dropping, lines, entries] = durability::cut_counts();
    println!(
        "power cuts: {cuts}, {dropping} of them dropping unflushed journal lines \
         ({lines} lines, {entries} queue entries)"
    );
    if let Some((seed, v)) = batch.failures.first() {
        print!("{}", summary(&batch.failures));
        panic!("{}", report(*seed, kinds.case, kinds.nfd, v));
    }
}

/// Replays `LAB3_SIM_SEED` with a trace (nothing to do without it).
#[test]
fn replay() {
    let Ok(seed) = std::env::var("LAB3_SIM_SEED") else {
        return;
    };
    let seed: u64 = seed.parse().expect("LAB3_SIM_SEED is a number");
    let setup = setup_drawn(seed, case_knob(), nfd_knob());
    println!("seed {seed}: {setup:?}");
    let mut steps = schedule_for(seed);
    if std::env::var("LAB3_SIM_SHRINK").is_ok_and(|v| v == "1") {
        steps = runner::shrink(&setup, &steps, 300);
    }
    let v = run_steps(&setup, &steps, true);
    assert!(v.is_empty(), "seed {seed}: {v:#?}");
}
