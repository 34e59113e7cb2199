//! The tools lab3 is compared with, run here the way PEERS.md ran them:
//! `rsync -a` between two local folders, and lsyncd with
//! `sync{default.rsync, delay = 0}` (one-way). `bench/setup.sh` installs
//! both from Debian's packages; a missing one only skips its columns.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::measure;

/// The first line of `tool --version`, or `None` if it cannot run.
pub fn version(tool: &str) -> Option<String> {
    let out = Command::new(tool).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
}

/// One `rsync -a SRC/ DST/` run: how long it took and the largest peak RSS
/// among its processes (sampled from `/proc` every 5 ms while it runs).
pub struct RsyncRun {
    pub secs: f64,
    pub peak_rss_kib: u64,
}

/// `LAB3_BENCH_RSYNC_ARGS="--fsync"`: more arguments for every `rsync -a`
/// run as a peer (`--fsync` makes it flush each file, as lab3 does).
fn rsync_extra() -> Vec<String> {
    let v = std::env::var("LAB3_BENCH_RSYNC_ARGS").unwrap_or_default();
    v.split_whitespace().map(str::to_string).collect()
}

pub fn rsync(src: &Path, dst: &Path) -> RsyncRun {
    let mut cmd = Command::new("rsync");
    cmd.arg("-a")
        .args(rsync_extra())
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", dst.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let t0 = Instant::now();
    let mut child = cmd.spawn().expect("run rsync");
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(Ordering::Relaxed) {
                for p in measure::process_tree(pid) {
                    peak = peak.max(measure::vm_hwm_kib(p).unwrap_or(0));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    let status = child.wait().expect("wait for rsync");
    let secs = t0.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let peak_rss_kib = sampler.join().unwrap_or(0);
    assert!(status.success(), "rsync -a failed: {status}");
    RsyncRun { secs, peak_rss_kib }
}

/// A running lsyncd mirroring `src` into `dst`; killed on drop.
pub struct Lsyncd {
    child: Child,
    pub src: PathBuf,
    pub dst: PathBuf,
}

impl Lsyncd {
    /// Starts lsyncd over `src` (already filled) into an empty `dst`, with
    /// its config and log in `work`, and waits until its log says that the
    /// start-up rsync finished and `dst` holds all `n` files.
    pub fn start(work: &Path, src: &Path, dst: &Path, n: usize) -> Result<Lsyncd, String> {
        std::fs::create_dir_all(dst).map_err(|e| e.to_string())?;
        let conf = work.join("lsyncd.lua");
        let text = format!(
            "settings {{\n  logfile = \"{log}\",\n  statusFile = \"{status}\",\n  nodaemon = true,\n}}\n\
             sync {{\n  default.rsync,\n  source = \"{src}\",\n  target = \"{dst}\",\n  delay = 0,\n}}\n",
            log = work.join("lsyncd.log").display(),
            status = work.join("lsyncd.status").display(),
            src = src.display(),
            dst = dst.display(),
        );
        std::fs::write(&conf, text).map_err(|e| e.to_string())?;
        let child = Command::new("lsyncd")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start lsyncd: {e}"))?;
        let mut l = Lsyncd {
            child,
            src: src.to_path_buf(),
            dst: dst.to_path_buf(),
        };
        let log = work.join("lsyncd.log");
        let ready = measure::poll(Duration::from_secs(120), Duration::from_millis(20), || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("finished"))
                && measure::count_files(dst) >= n
        });
        if ready.is_none() || !matches!(l.child.try_wait(), Ok(None)) {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("lsyncd did not mirror the tree; its log:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(500));
        Ok(l)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Lsyncd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
