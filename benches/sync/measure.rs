//! The measuring tools the rows share: statistics, test trees made of
//! reproducible bytes, polls with deadlines, and readings from `/proc`
//! (peak RSS, CPU time).

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

/// The median of `v` (mean of the middle two for an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => s[n / 2],
        _ => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// The `p`-th percentile of `v` by nearest rank (p95 of 30 samples is the 29th).
pub fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

/// Seconds as people read them: `850 µs`, `12.3 ms`, `2.41 s`.
pub fn secs(x: f64) -> String {
    if x.is_nan() {
        "n/a".into()
    } else if x < 1e-3 {
        format!("{:.0} µs", x * 1e6)
    } else if x < 1.0 {
        format!("{:.1} ms", x * 1e3)
    } else {
        format!("{x:.2} s")
    }
}

/// KiB as MiB, for RSS.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// splitmix64: fast, reproducible bytes that do not compress or repeat.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let x = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&x[..chunk.len()]);
        }
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        self.fill(&mut v);
        v
    }
}

/// The name of file `i` of a test tree.
pub fn name(i: usize) -> String {
    format!("f{i:05}.dat")
}

/// Writes `n` files of `size` random bytes into `dir`; with `mtime_ns`,
/// every file gets that mtime (plus its index, so they differ), which makes
/// two trees written with the same seed identical to the nanosecond.
pub fn make_tree(dir: &Path, n: usize, size: usize, seed: u64, mtime_ns: Option<i64>) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; size];
    for i in 0..n {
        rng.fill(&mut buf);
        let p = dir.join(name(i));
        std::fs::write(&p, &buf).unwrap();
        if let Some(ns) = mtime_ns {
            lab3_tests::set_mtime_ns(&p, ns + i as i64);
        }
    }
}

/// Writes one file of `size` random bytes, 1 MiB at a time.
pub fn make_big(path: &Path, size: u64, seed: u64) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    f.into_inner().unwrap().sync_all().unwrap();
}

/// Entries directly in `dir` (the trees here are flat): a cheap count.
pub fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|r| r.count()).unwrap_or(0)
}

/// Whether two files hold the same bytes: sizes first, then the content.
pub fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return false;
    };
    if ma.len() != mb.len() {
        return false;
    }
    let (Ok(mut fa), Ok(mut fb)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    loop {
        let n = match fa.read(&mut ba) {
            Ok(n) => n,
            Err(_) => return false,
        };
        if n == 0 {
            return true;
        }
        if fb.read_exact(&mut bb[..n]).is_err() || ba[..n] != bb[..n] {
            return false;
        }
    }
}

/// Checks that `dst` holds the same `n` files as `src`, byte for byte.
pub fn same_tree(src: &Path, dst: &Path, n: usize) -> Result<(), String> {
    let count = count_files(dst);
    if count != n {
        return Err(format!("{} holds {count} files, not {n}", dst.display()));
    }
    for i in 0..n {
        let f = name(i);
        if !same_file(&src.join(&f), &dst.join(&f)) {
            return Err(format!("{f} differs in {}", dst.display()));
        }
    }
    Ok(())
}

/// Polls `cond` every `every` until it holds (the time it took) or `limit` passes.
pub fn poll(limit: Duration, every: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    loop {
        if cond() {
            return Some(t0.elapsed());
        }
        if t0.elapsed() > limit {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Peak resident set size of a process (`VmHWM`), in KiB.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time a process has used (utime + stime, all its threads), in seconds.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clk_tck() as f64)
}

/// CPU time of a process's threads that are alive now, in seconds to the
/// nanosecond (the run times in `/proc/PID/task/*/schedstat`). A thread
/// that exits takes its time with it; [`cpu_secs`] keeps it, in ticks.
pub fn cpu_secs_precise(pid: u32) -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(task) = task else { continue };
        if let Ok(s) = std::fs::read_to_string(task.path().join("schedstat")) {
            ns += s
                .split_whitespace()
                .next()
                .and_then(|x| x.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Some(ns as f64 / 1e9)
}

/// Clock ticks per second, the unit of utime and stime.
pub fn clk_tck() -> u64 {
    static TCK: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}

/// The process and all its descendants, as listed by `/proc` now.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")) {
            all.extend(s.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
        i += 1;
    }
    all
}

/// Writes dirty pages out, so one trial's writeback does not slow the next.
pub fn settle_disk() {
    let _ = std::process::Command::new("sync").status();
}

/// Lines of a server's output from `*seen` on that satisfy `pred`; advances `*seen`.
pub fn count_new(
    lines: &lab3_tests::Lines,
    seen: &mut usize,
    pred: impl Fn(&str) -> bool,
) -> usize {
    let l = lines.lock().unwrap();
    let n = l[*seen..].iter().filter(|s| pred(s)).count();
    *seen = l.len();
    n
}
