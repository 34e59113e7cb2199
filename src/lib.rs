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

pub use common::testing::noise;
pub use tempfile::TempDir;

mod browser;
#[cfg(target_os = "linux")]
pub mod mounts;
mod relay;
mod web;
mod wine;
mod wire;
pub use browser::{block_on, browser, browser_at, browser_with, Browser};
pub use relay::{Mitm, MitmMode, Recorder};
pub use web::web_pair;
pub use wine::{windows_path, wine, wine_or_skip, Wine, WINDOWS_TARGET};
pub use wire::*;

/// The folder the workspace's binaries are built into: `target/debug` for
/// tests, `target/dist` for benchmarks (which run in `target/release`: the
/// servers they measure are the distribution build, linked whole).
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
            let optimised = dir.ends_with("release");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "--quiet", "--workspace", "--bins"])
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            // Cargo gives this test process the package's variables
            // (CARGO_PKG_NAME, CARGO_MANIFEST_DIR, ...). Build scripts such
            // as ring's rerun when those change, so passing them on made
            // every `cargo test` rebuild ring, rustls and all the binaries.
            for (key, _) in std::env::vars_os() {
                let key = key.to_string_lossy();
                let from_cargo_for_this_crate = ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_BIN_"]
                    .iter()
                    .any(|p| key.starts_with(p))
                    || [
                        "CARGO_CRATE_NAME",
                        "CARGO_PRIMARY_PACKAGE",
                        "CARGO_TARGET_TMPDIR",
                    ]
                    .contains(&key.as_ref());
                if from_cargo_for_this_crate {
                    cmd.env_remove(key.as_ref());
                }
            }
            if optimised {
                cmd.args(["--profile", "dist"]);
                dir.set_file_name("dist");
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

/// Whether any of `lines` contains all of `words`.
pub fn any_line(lines: &Lines, words: &[&str]) -> bool {
    lines
        .lock()
        .unwrap()
        .iter()
        .any(|l| words.iter().all(|w| l.contains(w)))
}

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
        let mut cmd = Command::new(bin(name));
        cmd.env_remove("LAB3_TOKEN").envs(env.iter().copied());
        Server::start_cmd(name, cmd, args)
    }

    /// Starts a server from a prepared command: `cmd` is the binary itself
    /// (perhaps with a different user set), or a wrapper that runs it (e.g.
    /// `ip netns exec NS <bin>`, see [`bin`]); `args` are appended.
    ///
    /// Server A's web page is off unless `args` ask for it (`--http
    /// 127.0.0.1:0`; see [`Server::web_url`]), so that no test takes the
    /// default port 6080.
    pub fn start_cmd(name: &'static str, mut cmd: Command, args: Vec<String>) -> Server {
        if name == "server_a" && !args.iter().any(|a| a == "--http") {
            cmd.args(["--http", "off"]);
        }
        let mut child = cmd
            .args(&args)
            .env("NO_COLOR", "1")
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

    /// Server A's web page, `http://ADDR/`, from its `web page at` line
    /// (waited for up to 10 s).
    pub fn web_url(&self) -> String {
        self.printed("web page at ")
    }

    /// The rest of the first stdout line that starts with `prefix`, waited
    /// for up to 10 s; panics, showing the output, when none comes.
    fn printed(&self, prefix: &str) -> String {
        let mut found = None;
        wait_until(Duration::from_secs(10), || {
            found = self
                .stdout
                .lock()
                .unwrap()
                .iter()
                .find_map(|l| l.strip_prefix(prefix).map(str::to_string));
            found.is_some()
        });
        found.unwrap_or_else(|| {
            panic!(
                "{} printed no '{}' line\n{}",
                self.name,
                prefix.trim_end(),
                self.output()
            )
        })
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

    /// The certificate fingerprint it printed at start (`sha256:…`).
    pub fn fingerprint(&self) -> String {
        self.printed("certificate ")
    }

    /// Whether any stdout line contains all of `words`.
    pub fn said(&self, words: &[&str]) -> bool {
        any_line(&self.stdout, words)
    }

    /// Whether any stderr line contains all of `words`.
    pub fn logged(&self, words: &[&str]) -> bool {
        any_line(&self.stderr, words)
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
    /// Each server's extra environment (test-only knobs), kept on restarts.
    env_a: Vec<(String, String)>,
    env_b: Vec<(String, String)>,
}

impl Pair {
    /// Creates empty folders, lets `setup` fill them, then starts B and A.
    pub fn start_with(setup: impl FnOnce(&Path, &Path)) -> Pair {
        Pair::start_with_args(&[], setup)
    }

    /// Like [`Pair::start_with`], with extra flags for both servers.
    pub fn start_with_args(extra: &[&str], setup: impl FnOnce(&Path, &Path)) -> Pair {
        Pair::start_with_env(extra, &[], &[], setup)
    }

    /// Like [`Pair::start_with_args`], with environment variables for
    /// Server A (`env_a`) and Server B (`env_b`): the servers' test-only
    /// knobs, such as `LAB3_TEST_MAX_WATCHES`. Restarts keep them.
    pub fn start_with_env(
        extra: &[&str],
        env_a: &[(&str, &str)],
        env_b: &[(&str, &str)],
        setup: impl FnOnce(&Path, &Path),
    ) -> Pair {
        let root = tempfile::tempdir().expect("tempdir");
        let dir_a = root.path().join("directory_a");
        let dir_b = root.path().join("directory_b");
        std::fs::create_dir_all(&dir_a).unwrap();
        std::fs::create_dir_all(&dir_b).unwrap();
        setup(&dir_a, &dir_b);
        let state_a = root.path().join("state_a");
        let state_b = root.path().join("state_b");
        Pair::start_at_env(root, [dir_a, state_a, dir_b, state_b], extra, env_a, env_b)
    }

    /// A pair over folders and state directories of the caller's choosing
    /// (e.g. on a small filesystem mounted for the test), created if
    /// missing; `root` stays the pair's scratch space.
    pub fn start_at(
        root: TempDir,
        [dir_a, state_a, dir_b, state_b]: [PathBuf; 4],
        extra: &[&str],
    ) -> Pair {
        Pair::start_at_env(root, [dir_a, state_a, dir_b, state_b], extra, &[], &[])
    }

    /// [`Pair::start_at`] with each server's environment (see
    /// [`Pair::start_with_env`]).
    fn start_at_env(
        root: TempDir,
        [dir_a, state_a, dir_b, state_b]: [PathBuf; 4],
        extra: &[&str],
        env_a: &[(&str, &str)],
        env_b: &[(&str, &str)],
    ) -> Pair {
        std::fs::create_dir_all(&dir_a).unwrap();
        std::fs::create_dir_all(&dir_b).unwrap();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let owned = |env: &[(&str, &str)]| -> Vec<(String, String)> {
            env.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let (env_a, env_b) = (owned(env_a), owned(env_b));
        let b = launch_b(&bin_dir(), &dir_b, &state_b, "127.0.0.1:0", &extra, &env_b);
        let a = launch_a(&bin_dir(), &dir_a, &state_a, &b.addr, &extra, &env_a);
        Pair {
            extra,
            env_a,
            env_b,
            ..Pair::from_parts(root, [dir_a, state_a, dir_b, state_b], a, b)
        }
    }

    /// A pair of servers the caller started itself (e.g. Server B as
    /// another user), over the folders they were given.
    pub fn from_parts(
        root: TempDir,
        [dir_a, state_a, dir_b, state_b]: [PathBuf; 4],
        a: Server,
        b: Server,
    ) -> Pair {
        Pair {
            root,
            dir_a,
            dir_b,
            state_a,
            state_b,
            b,
            a,
            extra: Vec::new(),
            env_a: Vec::new(),
            env_b: Vec::new(),
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
                launch_b(
                    &bin_dir(),
                    &self.dir_b,
                    &self.state_b,
                    &addr,
                    &self.extra,
                    &self.env_b,
                )
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
        self.a = launch_a(
            &bin_dir(),
            &self.dir_a,
            &self.state_a,
            &self.b.addr,
            &self.extra,
            &self.env_a,
        );
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
    launch_b(&bin_dir(), dir, state, listen, extra, &[])
}

/// [`start_b`] with the `server_b` of another build (`bins`: its folder;
/// the benchmarks' old-build contender), with [`OTHER_BUILD_ENV`] set.
pub fn start_b_from(
    bins: &Path,
    dir: &Path,
    state: &Path,
    listen: &str,
    extra: &[String],
) -> Server {
    launch_b(bins, dir, state, listen, extra, &other_build_env())
}

/// Starts Server A on port 0 over `dir`, dialling B at `peer`.
pub fn start_a(dir: &Path, state: &Path, peer: &str, extra: &[String]) -> Server {
    launch_a(&bin_dir(), dir, state, peer, extra, &[])
}

/// [`start_a`] with the `server_a` of another build (see [`start_b_from`]).
pub fn start_a_from(bins: &Path, dir: &Path, state: &Path, peer: &str, extra: &[String]) -> Server {
    launch_a(bins, dir, state, peer, extra, &other_build_env())
}

/// Benchmarks: `LAB3_BENCH_OLD_ENV="K=V K2=V2"` sets these variables for
/// the other build's servers only. With `LAB3_BENCH_OLD_BINS` naming this
/// build's own folder, it makes a variant of this build the contender
/// (e.g. `LAB3_BENCH_FLUSH_EACH=1`, to compare two ways of flushing in one
/// run).
pub const OTHER_BUILD_ENV: &str = "LAB3_BENCH_OLD_ENV";

fn other_build_env() -> Vec<(String, String)> {
    let v = std::env::var(OTHER_BUILD_ENV).unwrap_or_default();
    v.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Server B of the build in `bins` on `listen`, with `env` set.
fn launch_b(
    bins: &Path,
    dir: &Path,
    state: &Path,
    listen: &str,
    extra: &[String],
    env: &[(String, String)],
) -> Server {
    let args = server_args(path_arg(dir), path_arg(state), listen, None, extra);
    launch(bins, "server_b", args, env)
}

/// Server A of the build in `bins` on port 0, dialling B at `peer`, with
/// `env` set.
fn launch_a(
    bins: &Path,
    dir: &Path,
    state: &Path,
    peer: &str,
    extra: &[String],
    env: &[(String, String)],
) -> Server {
    let args = server_args(
        path_arg(dir),
        path_arg(state),
        "127.0.0.1:0",
        Some(peer),
        extra,
    );
    launch(bins, "server_a", args, env)
}

/// Runs server `name` of the build in `bins` with `args` and `env` (and
/// without the test's own `LAB3_TOKEN`).
fn launch(bins: &Path, name: &'static str, args: Vec<String>, env: &[(String, String)]) -> Server {
    let mut cmd = Command::new(bins.join(format!("{name}{}", std::env::consts::EXE_SUFFIX)));
    cmd.env_remove("LAB3_TOKEN")
        .envs(env.iter().map(|(k, v)| (k, v)));
    Server::start_cmd(name, cmd, args)
}

/// A server's arguments: its folder and state directory (as the server
/// will read them), where it listens, Server B's address for Server A,
/// then `extra`.
pub(crate) fn server_args(
    dir: String,
    state: String,
    listen: &str,
    peer: Option<&str>,
    extra: &[String],
) -> Vec<String> {
    let mut args = vec![
        "--dir".into(),
        dir,
        "--state-dir".into(),
        state,
        "--listen".into(),
        listen.into(),
    ];
    if let Some(peer) = peer {
        args.extend(["--peer".into(), peer.into()]);
    }
    args.extend(extra.iter().cloned());
    args
}

/// A path as a native server reads it on its command line.
fn path_arg(p: &Path) -> String {
    p.display().to_string()
}

/// Runs `lab3 --server <server> args...` to completion.
pub fn lab3(server: &str, args: &[&str]) -> Output {
    lab3_env(server, args, &[])
}

/// `lab3 --server <server> args...`, without colour and without the
/// token or server this environment may have set.
fn lab3_command(server: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin("lab3"));
    cmd.arg("--server")
        .arg(server)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("LAB3_TOKEN")
        .env_remove("LAB3_SERVER");
    cmd
}

/// Like [`lab3`], with extra environment variables (e.g. `LAB3_TOKEN`).
pub fn lab3_env(server: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    lab3_command(server, args)
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

/// Whether the file at `p` holds exactly `content`.
pub fn holds(p: &Path, content: &[u8]) -> bool {
    read(p).as_deref() == Some(content)
}

/// The (side, why, size) of each version in a versions answer (`lab3
/// versions --json`, the page's `/api/versions`), in its order.
pub fn version_summary(doc: &serde_json::Value) -> Vec<(String, String, u64)> {
    doc["versions"]
        .as_array()
        .unwrap_or_else(|| panic!("a versions array: {doc}"))
        .iter()
        .map(|v| {
            (
                v["side"].as_str().unwrap().to_string(),
                v["why"].as_str().unwrap().to_string(),
                v["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Starts a pair in listing-only mode (`--no-sync`), so that no file moves
/// under a listing test.
pub fn listing_pair(setup: impl FnOnce(&Path, &Path)) -> Pair {
    Pair::start_with_args(&["--no-sync"], setup)
}

/// An address on which nothing listens: a port that was bound, then released.
pub fn dead_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    addr
}

/// The lines of some output bytes.
pub fn lines(b: &[u8]) -> Vec<String> {
    text(b).lines().map(str::to_string).collect()
}

/// Asserts that a command failed the way the contract says: non-zero exit,
/// nothing on stdout, exactly one stderr line, starting with `lab3:`.
/// Returns that line.
pub fn assert_one_line_error(out: &Output) -> String {
    let err = lines(&out.stderr);
    assert!(
        !out.status.success()
            && out.stdout.is_empty()
            && err.len() == 1
            && err[0].starts_with("lab3:"),
        "expected a failure with one 'lab3:' line on stderr and nothing on stdout; got {}\n\
         --- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    err.into_iter().next().unwrap()
}

/// Asserts that a command succeeded, and returns its stdout as text.
pub fn assert_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "expected success; got {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The `name` of every row of a `lab3 --json` document.
pub fn names(doc: &serde_json::Value) -> Vec<String> {
    doc["files"]
        .as_array()
        .expect("a files array")
        .iter()
        .map(|f| f["name"].as_str().expect("a name").to_string())
        .collect()
}

/// The row named `name` of a `lab3 --json` document.
pub fn row<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["files"]
        .as_array()
        .expect("a files array")
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no row {name:?} in {doc}"))
}

// ------------------------------------------------------------------ sync tests

/// Now, in nanoseconds since the Unix epoch.
pub fn now_ns() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    d.as_nanos() as i64
}

/// A file's permission bits, or `None` if it does not exist.
#[cfg(unix)]
pub fn mode(p: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    Some(std::fs::metadata(p).ok()?.permissions().mode() & 0o7777)
}

/// Sets a file's permission bits.
#[cfg(unix)]
pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Where there are no permission bits (Windows): what they mean there, the
/// read-only attribute when no write bit is set.
#[cfg(not(unix))]
pub fn set_mode(p: &Path, mode: u32) {
    let mut perms = std::fs::metadata(p).unwrap().permissions();
    perms.set_readonly(mode & 0o222 == 0);
    std::fs::set_permissions(p, perms).unwrap();
}

/// A file's inode number, or `None` if it does not exist (to tell a
/// rewritten file from an untouched one).
#[cfg(unix)]
pub fn inode(p: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    Some(std::fs::symlink_metadata(p).ok()?.ino())
}

/// On Windows, where std has no stable file index: the creation time,
/// which a rename keeps and a file written anew and renamed into place
/// does not (the same use as the inode number elsewhere).
#[cfg(windows)]
pub fn inode(p: &Path) -> Option<u64> {
    use std::os::windows::fs::MetadataExt;
    Some(std::fs::symlink_metadata(p).ok()?.creation_time())
}

/// Whether `a` and `b` both exist with the same content, mtime (to the
/// nanosecond) and permission bits.
pub fn same_file(a: &Path, b: &Path) -> bool {
    let (Some(ca), Some(cb)) = (read(a), read(b)) else {
        return false;
    };
    ca == cb && mtime_ns(a) == mtime_ns(b) && perm_bits(a) == perm_bits(b)
}

#[cfg(unix)]
fn perm_bits(p: &Path) -> Option<u32> {
    mode(p)
}

#[cfg(not(unix))]
fn perm_bits(p: &Path) -> Option<u32> {
    Some(std::fs::metadata(p).ok()?.permissions().readonly() as u32)
}

/// Every entry below `dir` that is not a folder (files and symbolic links),
/// as sorted `/`-separated relative paths.
pub fn files_in(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.map_while(Result::ok) {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap();
                let parts: Vec<_> = rel.iter().map(|c| c.to_string_lossy()).collect();
                out.push(parts.join("/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Whether two folders hold the same files, each with the same content,
/// mtime and permission bits.
pub fn same_tree(a: &Path, b: &Path) -> bool {
    let files = files_in(a);
    files == files_in(b) && files.iter().all(|f| same_file(&a.join(f), &b.join(f)))
}

/// One way a change can travel between the two servers of a [`Pair`].
pub struct Way<'a> {
    /// The folder the change is made in, and its server.
    pub from: &'a Path,
    pub from_server: &'a Server,
    /// The folder that must follow, and its server.
    pub to: &'a Path,
    pub to_server: &'a Server,
    /// The direction as the servers print it: `A->B` or `B->A`.
    pub arrow: &'static str,
}

impl Server {
    /// How many stdout lines contain all of `words`.
    pub fn said_count(&self, words: &[&str]) -> usize {
        let lines = self.stdout.lock().unwrap();
        lines
            .iter()
            .filter(|l| words.iter().all(|w| l.contains(w)))
            .count()
    }
}

impl Pair {
    /// Both ways a change can travel: made on A and followed by B, then the reverse.
    pub fn ways(&self) -> [Way<'_>; 2] {
        [
            Way {
                from: &self.dir_a,
                from_server: &self.a,
                to: &self.dir_b,
                to_server: &self.b,
                arrow: "A->B",
            },
            Way {
                from: &self.dir_b,
                from_server: &self.b,
                to: &self.dir_a,
                to_server: &self.a,
                arrow: "B->A",
            },
        ]
    }

    /// Waits until both servers have reconciled over the link, so that
    /// changes made from now on travel as runtime changes.
    pub fn wait_linked(&self, secs: u64) {
        self.wait(secs, "both servers to reconcile", || {
            self.a.logged(&["reconciled with server B"])
                && self.b.logged(&["reconciled with server A"])
        });
    }

    /// Starts a pair over empty folders and waits until they are linked.
    pub fn start_linked() -> Pair {
        let pair = Pair::start();
        pair.wait_linked(20);
        pair
    }

    /// Waits until `rel` exists on both sides with the same content, mtime and mode.
    pub fn wait_same(&self, secs: u64, rel: &str) {
        self.wait(secs, &format!("{rel} to be the same on both sides"), || {
            same_file(&self.dir_a.join(rel), &self.dir_b.join(rel))
        });
    }

    /// Waits until the two folders hold exactly the same files.
    pub fn wait_same_tree(&self, secs: u64) {
        self.wait(secs, "both folders to hold the same files", || {
            same_tree(&self.dir_a, &self.dir_b)
        });
    }

    /// Waits until both servers' journals hold every file of
    /// A's tree: both sides have acknowledged them. Same files on disk are
    /// not enough before a kill: the receiver flushes its folder and its
    /// journal to disk before it answers, and a kill in between leaves it
    /// with files it has no history of.
    pub fn wait_journaled(&self, secs: u64) {
        self.wait(secs, "both journals to hold every path as agreed", || {
            let names = files_in(&self.dir_a);
            [&self.state_a, &self.state_b].iter().all(|state| {
                let agreed = agreed_in_journal(state);
                names.iter().all(|n| agreed.contains(n))
            })
        });
    }

    /// Restarts Server A (after a kill) with extra flags added to the usual ones.
    pub fn restart_a_with(&mut self, more: &[&str]) {
        self.a.kill();
        let mut extra = self.extra.clone();
        extra.extend(more.iter().map(|s| s.to_string()));
        self.a = start_a(&self.dir_a, &self.state_a, &self.b.addr, &extra);
    }
}

/// The paths whose last line in `state`'s journal holds an agreed base (a
/// new name's offer is journalled too, before its answer: not agreed).
fn agreed_in_journal(state: &Path) -> std::collections::BTreeSet<String> {
    let journal = std::fs::read_to_string(state.join("core-journal.jsonl")).unwrap_or_default();
    let mut last = std::collections::BTreeMap::new();
    for line in journal.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let Some(p) = v["p"].as_str() {
            last.insert(p.to_string(), !v["r"]["base"].is_null());
        }
    }
    last.into_iter()
        .filter(|(_, b)| *b)
        .map(|(p, _)| p)
        .collect()
}

/// Whether `cond` holds at every poll for the whole of `window` (a bounded
/// check that something does *not* happen).
pub fn holds_for(window: Duration, mut cond: impl FnMut() -> bool) -> bool {
    !wait_until(window, || !cond())
}

impl Pair {
    /// Writes `content` with `mtime_ns` to a staging file in the pair's
    /// temporary root, then renames it to `dir/rel`: the folder only ever
    /// sees the finished file, with its final mtime (as after a save-by-rename).
    pub fn put(&self, dir: &Path, rel: &str, content: &[u8], mtime_ns: i64) -> PathBuf {
        let staged = tempfile::NamedTempFile::new_in(self.root.path()).unwrap();
        std::fs::write(staged.path(), content).unwrap();
        set_mtime_ns(staged.path(), mtime_ns);
        let target = dir.join(rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        staged.persist(&target).unwrap();
        target
    }
}

// ------------------------------------------------------------- lab3 watch

/// A `lab3` that keeps running (`lab3 watch`), its output collected line by
/// line as it comes; killed on drop.
pub struct Running {
    child: Option<Child>,
    pub stdout: Lines,
    pub stderr: Lines,
}

impl Running {
    /// Starts `lab3 --server <server> args...` (with `NO_COLOR`, as [`lab3`]).
    pub fn lab3(server: &str, args: &[&str]) -> Running {
        let mut child = lab3_command(server, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lab3");
        let stdout: Lines = Arc::default();
        let stderr: Lines = Arc::default();
        collect(child.stdout.take().unwrap(), stdout.clone());
        collect(child.stderr.take().unwrap(), stderr.clone());
        Running {
            child: Some(child),
            stdout,
            stderr,
        }
    }

    /// Whether any stdout line contains all of `words`.
    pub fn said(&self, words: &[&str]) -> bool {
        any_line(&self.stdout, words)
    }

    /// Whether any stderr line contains all of `words`.
    pub fn logged(&self, words: &[&str]) -> bool {
        any_line(&self.stderr, words)
    }

    /// Everything printed so far, for failure messages.
    pub fn output(&self) -> String {
        format!(
            "--- lab3 stdout ---\n{}\n--- lab3 stderr ---\n{}",
            self.stdout.lock().unwrap().join("\n"),
            self.stderr.lock().unwrap().join("\n")
        )
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Waits up to `limit` for it to exit by itself; `None` if it did not
    /// (then it is killed).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let mut status = None;
        wait_until(limit, || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        status
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ------------------------------------------- sides, versions and folders

/// One of the two servers of a [`Pair`], for tests that run the same steps
/// from either side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

impl Side {
    /// The other server.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    /// The arrow the servers print for a change made at this side.
    pub fn arrow(self) -> &'static str {
        match self {
            Side::A => "A->B",
            Side::B => "B->A",
        }
    }
}

impl Pair {
    /// The folder of `side`.
    pub fn dir(&self, side: Side) -> &Path {
        match side {
            Side::A => &self.dir_a,
            Side::B => &self.dir_b,
        }
    }

    /// The state directory of `side`.
    pub fn state(&self, side: Side) -> &Path {
        match side {
            Side::A => &self.state_a,
            Side::B => &self.state_b,
        }
    }

    /// The server of `side`.
    pub fn server(&self, side: Side) -> &Server {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    /// kill -9 of the server of `side` (start it again with [`Pair::restart`]).
    pub fn kill(&mut self, side: Side) {
        match side {
            Side::A => self.a.kill(),
            Side::B => self.b.kill(),
        }
    }

    /// Kills the server of `side` if it runs, and starts it again.
    pub fn restart(&mut self, side: Side) {
        match side {
            Side::A => self.restart_a(),
            Side::B => self.restart_b(),
        }
    }

    /// A file under either state directory holding exactly `content` (a
    /// kept version, wherever the engine keeps it), if there is one.
    pub fn kept_anywhere(&self, content: &[u8]) -> Option<PathBuf> {
        state_holds(&self.state_a, content).or_else(|| state_holds(&self.state_b, content))
    }
}

/// A file anywhere below `state` that holds exactly `content`, if any.
pub fn state_holds(state: &Path, content: &[u8]) -> Option<PathBuf> {
    fn walk(dir: &Path, content: &[u8]) -> Option<PathBuf> {
        for e in std::fs::read_dir(dir).ok()?.map_while(Result::ok) {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if let Some(found) = walk(&p, content) {
                    return Some(found);
                }
            } else if ft.is_file()
                && e.metadata().is_ok_and(|m| m.len() == content.len() as u64)
                && read(&p).as_deref() == Some(content)
            {
                return Some(p);
            }
        }
        None
    }
    walk(state, content)
}

/// Every folder below `dir`, empty or not, as sorted `/`-separated
/// relative paths.
pub fn folders_in(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.map_while(Result::ok) {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let p = e.path();
                let rel = p.strip_prefix(root).unwrap();
                let parts: Vec<_> = rel.iter().map(|c| c.to_string_lossy()).collect();
                out.push(parts.join("/"));
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

impl Server {
    /// Every stdout line that contains all of `words`.
    pub fn lines_with(&self, words: &[&str]) -> Vec<String> {
        let lines = self.stdout.lock().unwrap();
        lines
            .iter()
            .filter(|l| words.iter().all(|w| l.contains(w)))
            .cloned()
            .collect()
    }

    /// Stops the process where it is (SIGSTOP): its sockets and file
    /// events wait in the kernel until [`Server::resume`].
    #[cfg(unix)]
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused process run again (SIGCONT).
    #[cfg(unix)]
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    #[cfg(unix)]
    fn signal(&self, sig: &str) {
        let pid = self.pid().expect("the server runs").to_string();
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid} failed");
    }
}

/// Sets its flag when dropped: a helper thread told to stop by that flag
/// also stops when the test panics, so `std::thread::scope` does not wait
/// for it forever.
pub struct SetOnDrop<'a>(pub &'a std::sync::atomic::AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
