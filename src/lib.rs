//! The harness for lab3's workspace integration tests (`tests/*.rs`) and
//! benchmarks: it builds the real binaries once, starts servers on port 0
//! in temporary folders, runs `lab3`, and waits on conditions with deadlines.
//!
//! Every child is killed when its handle drops, and a failed wait prints
//! what the servers said.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use tempfile::TempDir;

/// The folder the workspace's binaries are built into (`target/debug` or `target/release`).
pub fn bin_dir() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("test executable path");
            // target/<profile>/deps/<test> or target/<profile>/<bench>
            let mut dir = exe.parent().expect("exe dir").to_path_buf();
            if dir.ends_with("deps") {
                dir.pop();
            }
            let release = dir.ends_with("release");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "--quiet", "--workspace", "--bins"])
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            if release {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("run cargo build");
            assert!(status.success(), "cargo build of the binaries failed");
            dir
        })
        .clone()
}

/// The path of one of the workspace's binaries (`server_a`, `server_b`, `lab3`).
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// Lines a child printed, collected as they come.
pub type Lines = Arc<Mutex<Vec<String>>>;

/// A running server; killed on drop.
pub struct Server {
    pub name: &'static str,
    child: Option<Child>,
    /// The bound address from `listening on ADDR`.
    pub addr: String,
    pub stdout: Lines,
    pub stderr: Lines,
    /// How it was started, to start it again.
    args: Vec<String>,
}

impl Server {
    /// Starts `name` (a binary) with `args` and waits for `listening on ADDR`.
    pub fn start(name: &'static str, args: Vec<String>) -> Server {
        Server::start_env(name, args, &[])
    }

    /// Like [`Server::start`], with extra environment variables (e.g. `LAB3_TOKEN`).
    pub fn start_env(name: &'static str, args: Vec<String>, env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(bin(name))
            .args(&args)
            .env("NO_COLOR", "1")
            .env_remove("LAB3_TOKEN")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let stdout: Lines = Arc::default();
        let stderr: Lines = Arc::default();
        collect(child.stderr.take().unwrap(), stderr.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        let sink = stdout.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr.to_string());
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "{name} did not print 'listening on'; stderr: {:?}",
                    stderr.lock().unwrap()
                );
            }
        };
        Server {
            name,
            child: Some(child),
            addr,
            stdout,
            stderr,
            args,
        }
    }

    /// Everything printed so far on stdout and stderr, for failure messages.
    pub fn output(&self) -> String {
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
            self.name,
            self.stdout.lock().unwrap().join("\n"),
            self.name,
            self.stderr.lock().unwrap().join("\n")
        )
    }

    /// Whether any stdout line contains all of `words`.
    pub fn said(&self, words: &[&str]) -> bool {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .any(|l| words.iter().all(|w| l.contains(w)))
    }

    /// Whether any stderr line contains all of `words`.
    pub fn logged(&self, words: &[&str]) -> bool {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| words.iter().all(|w| l.contains(w)))
    }

    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The process id, if running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The arguments it was started with.
    pub fn args(&self) -> &[String] {
        &self.args
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn collect(r: impl std::io::Read + Send + 'static, sink: Lines) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
}

/// A pair of servers over two temporary folders, as most tests want them.
pub struct Pair {
    pub root: TempDir,
    pub dir_a: PathBuf,
    pub dir_b: PathBuf,
    pub state_a: PathBuf,
    pub state_b: PathBuf,
    pub b: Server,
    pub a: Server,
    extra: Vec<String>,
}

impl Pair {
    /// Creates empty folders, lets `setup` fill them, then starts B and A.
    pub fn start_with(setup: impl FnOnce(&Path, &Path)) -> Pair {
        Pair::start_with_args(&[], setup)
    }

    /// Like [`Pair::start_with`], with extra flags for both servers.
    pub fn start_with_args(extra: &[&str], setup: impl FnOnce(&Path, &Path)) -> Pair {
        let root = tempfile::tempdir().expect("tempdir");
        let dir_a = root.path().join("directory_a");
        let dir_b = root.path().join("directory_b");
        std::fs::create_dir_all(&dir_a).unwrap();
        std::fs::create_dir_all(&dir_b).unwrap();
        setup(&dir_a, &dir_b);
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let state_a = root.path().join("state_a");
        let state_b = root.path().join("state_b");
        let b = start_b(&dir_b, &state_b, "127.0.0.1:0", &extra);
        let a = start_a(&dir_a, &state_a, &b.addr, &extra);
        Pair {
            root,
            dir_a,
            dir_b,
            state_a,
            state_b,
            b,
            a,
            extra,
        }
    }

    /// Empty folders on both sides.
    pub fn start() -> Pair {
        Pair::start_with(|_, _| {})
    }

    /// Runs `lab3 --server <A> args...`.
    pub fn lab3(&self, args: &[&str]) -> Output {
        lab3(&self.a.addr, args)
    }

    /// `lab3 --json` parsed.
    pub fn listing(&self) -> serde_json::Value {
        let out = self.lab3(&["--json"]);
        assert!(
            out.status.success(),
            "lab3 --json failed: {}\n{}",
            text(&out.stderr),
            self.output()
        );
        serde_json::from_slice(&out.stdout).expect("lab3 --json prints JSON")
    }

    /// Restarts Server B (after a kill) on the same port, so A can find it again.
    pub fn restart_b(&mut self) {
        self.b.kill();
        let addr = self.b.addr.clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // The port may linger briefly; retry until it binds.
            let s = std::panic::catch_unwind(|| {
                start_b(&self.dir_b, &self.state_b, &addr, &self.extra)
            });
            match s {
                Ok(s) => {
                    self.b = s;
                    return;
                }
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => std::panic::resume_unwind(e),
            }
        }
    }

    /// Restarts Server A (after a kill) on a new port.
    pub fn restart_a(&mut self) {
        self.a.kill();
        self.a = start_a(&self.dir_a, &self.state_a, &self.b.addr, &self.extra);
    }

    /// Both servers' output, for failure messages.
    pub fn output(&self) -> String {
        format!("{}\n{}", self.a.output(), self.b.output())
    }

    /// Waits until `cond` holds, or panics after `secs` with both servers' output.
    pub fn wait(&self, secs: u64, what: &str, cond: impl FnMut() -> bool) {
        if !wait_until(Duration::from_secs(secs), cond) {
            panic!(
                "timed out after {secs}s waiting for {what}\n{}",
                self.output()
            );
        }
    }
}

/// Starts Server B on `listen` over `dir`.
pub fn start_b(dir: &Path, state: &Path, listen: &str, extra: &[String]) -> Server {
    let mut args = vec![
        "--dir".into(),
        dir.display().to_string(),
        "--state-dir".into(),
        state.display().to_string(),
        "--listen".into(),
        listen.into(),
    ];
    args.extend(extra.iter().cloned());
    Server::start("server_b", args)
}

/// Starts Server A on port 0 over `dir`, dialling B at `peer`.
pub fn start_a(dir: &Path, state: &Path, peer: &str, extra: &[String]) -> Server {
    let mut args = vec![
        "--dir".into(),
        dir.display().to_string(),
        "--state-dir".into(),
        state.display().to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--peer".into(),
        peer.into(),
    ];
    args.extend(extra.iter().cloned());
    Server::start("server_a", args)
}

/// Runs `lab3 --server <server> args...` to completion.
pub fn lab3(server: &str, args: &[&str]) -> Output {
    Command::new(bin("lab3"))
        .arg("--server")
        .arg(server)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("LAB3_TOKEN")
        .env_remove("LAB3_SERVER")
        .output()
        .expect("run lab3")
}

/// Like [`lab3`], with extra environment variables (e.g. `LAB3_TOKEN`).
pub fn lab3_env(server: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin("lab3"))
        .arg("--server")
        .arg(server)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("LAB3_TOKEN")
        .env_remove("LAB3_SERVER")
        .envs(env.iter().copied())
        .output()
        .expect("run lab3")
}

/// Polls `cond` every 20 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Bytes as text, for messages.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Writes `content` to `dir/rel` (creating parents) and sets its mtime.
pub fn write_file(dir: &Path, rel: &str, content: &[u8], mtime_ns: Option<i64>) -> PathBuf {
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, content).unwrap();
    if let Some(ns) = mtime_ns {
        set_mtime_ns(&p, ns);
    }
    p
}

/// Sets a file's mtime to the nanosecond.
pub fn set_mtime_ns(p: &Path, ns: i64) {
    let ft = filetime::FileTime::from_unix_time(
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u32,
    );
    filetime::set_file_mtime(p, ft).unwrap();
}

/// A file's mtime in nanoseconds, or `None` if it does not exist.
pub fn mtime_ns(p: &Path) -> Option<i64> {
    let md = std::fs::metadata(p).ok()?;
    let ft = filetime::FileTime::from_last_modification_time(&md);
    Some(ft.unix_seconds() * 1_000_000_000 + i64::from(ft.nanoseconds()))
}

/// A file's content, or `None` if it does not exist.
pub fn read(p: &Path) -> Option<Vec<u8>> {
    std::fs::read(p).ok()
}
