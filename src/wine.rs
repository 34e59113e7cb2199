//! Running the Windows build of a server under Wine, for the mixed-pair
//! tests (`tests/wine_pairs.rs`): a Windows `server_a.exe` or
//! `server_b.exe` against the native Linux other server, on this Linux
//! machine. `scripts/wine-setup.sh` installs Wine and mingw-w64, makes the
//! prefix (`target/wine/prefix`) and puts the `ProcessPrng` shim in it;
//! this module finds what it made, builds the `.exe` files (a no-op when
//! they are up to date) and says why when the tests must skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::Server;

/// The Rust target of the Windows build.
pub const WINDOWS_TARGET: &str = "x86_64-pc-windows-gnu";

/// What it takes to run a Windows program here.
#[derive(Debug, Clone)]
pub struct Wine {
    /// The `wine64` loader.
    pub loader: PathBuf,
    /// The Wine prefix (its `system32` holds the shim).
    pub prefix: PathBuf,
    /// Where the `.exe` files are.
    pub exe_dir: PathBuf,
    /// `hold.exe` (scripts/wine/hold.c): holds a file open, unshared.
    pub hold: PathBuf,
}

/// Wine, ready to run the Windows build, or why it is not (the tests print
/// that and skip). Built once per test binary.
pub fn wine() -> Result<&'static Wine, String> {
    static READY: OnceLock<Result<Wine, String>> = OnceLock::new();
    READY
        .get_or_init(find_and_build)
        .as_ref()
        .map_err(Clone::clone)
}

/// For a test: Wine, or `None` after one loud `skipped:` line on stderr.
pub fn wine_or_skip() -> Option<&'static Wine> {
    match wine() {
        Ok(w) => Some(w),
        Err(why) => {
            eprintln!("skipped: no Wine to run the Windows build: {why}");
            None
        }
    }
}

fn find_and_build() -> Result<Wine, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let state = root.join("target/wine");
    if let Ok(why) = std::fs::read_to_string(state.join("unavailable")) {
        return Err(format!("{} (scripts/wine-setup.sh)", why.trim()));
    }
    let loader = ["/usr/lib/wine/wine64", "/usr/bin/wine64", "/usr/bin/wine"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or("wine64 is not installed: run scripts/wine-setup.sh")?;
    let prefix = std::env::var_os("LAB3_WINEPREFIX")
        .map(PathBuf::from)
        .unwrap_or_else(|| state.join("prefix"));
    let shim = prefix.join("drive_c/windows/system32/bcryptprimitives.dll");
    if !shim.exists() {
        return Err(format!(
            "no ProcessPrng shim at {}: run scripts/wine-setup.sh",
            shim.display()
        ));
    }
    let hold = state.join("hold.exe");
    if !hold.exists() {
        return Err(format!("no {}: run scripts/wine-setup.sh", hold.display()));
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--workspace", "--bins", "--target"])
        .arg(WINDOWS_TARGET)
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build --target {WINDOWS_TARGET} failed"));
    }
    Ok(Wine {
        loader,
        prefix,
        // Where cargo put them: `CARGO_TARGET_DIR` when set (relative to
        // the workspace), `target/` otherwise.
        exe_dir: std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| root.join("target"), |d| root.join(d))
            .join(WINDOWS_TARGET)
            .join("debug"),
        hold,
    })
}

impl Wine {
    /// A command that runs the Windows build of `name` (`server_a`,
    /// `server_b`, `lab3`) under Wine; arguments follow.
    pub fn command(&self, name: &str) -> Command {
        let mut cmd = self.loader();
        cmd.arg(self.exe_dir.join(format!("{name}.exe")))
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .env_remove("LAB3_TOKEN");
        cmd
    }

    /// The Wine loader over this prefix, quiet and with no display.
    fn loader(&self) -> Command {
        let mut cmd = Command::new(&self.loader);
        cmd.env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .env_remove("DISPLAY");
        cmd
    }

    /// A Windows process holding `file` open with no sharing until the
    /// returned child's stdin is closed (drop it, or take and drop its
    /// stdin); returns once the file is held.
    pub fn hold(&self, file: &Path) -> std::process::Child {
        use std::io::BufRead;
        let mut child = self
            .loader()
            .arg(&self.hold)
            .arg(windows_path(file))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start hold.exe under wine");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(std::time::Duration::from_secs(30));
        if line.as_deref().map(str::trim) != Ok("held") {
            let _ = child.kill();
            let stderr = child
                .wait_with_output()
                .map(|o| o.stderr)
                .unwrap_or_default();
            panic!(
                "hold.exe did not hold {} ({line:?}): {}",
                file.display(),
                String::from_utf8_lossy(&stderr)
            );
        }
        child
    }

    /// Starts Server B's Windows build on port 0 over `dir`.
    pub fn start_b(&self, dir: &Path, state: &Path, extra: &[&str]) -> Server {
        self.start_server("server_b", dir, state, None, extra)
    }

    /// Starts Server A's Windows build on port 0 over `dir`, dialling B at `peer`.
    pub fn start_a(&self, dir: &Path, state: &Path, peer: &str, extra: &[&str]) -> Server {
        self.start_server("server_a", dir, state, Some(peer), extra)
    }

    /// Starts the Windows build of server `name` on port 0 over `dir`
    /// (dialling B at `peer`, for Server A); `extra` arguments follow.
    fn start_server(
        &self,
        name: &'static str,
        dir: &Path,
        state: &Path,
        peer: Option<&str>,
        extra: &[&str],
    ) -> Server {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (dir, state) = (windows_path(dir), windows_path(state));
        let args = crate::server_args(dir, state, "127.0.0.1:0", peer, &extra);
        Server::start_cmd(name, self.command(name), args)
    }
}

/// How a Windows program under Wine names a Linux path: drive `Z:` is `/`.
pub fn windows_path(p: &Path) -> String {
    format!("Z:{}", p.display().to_string().replace('/', "\\"))
}
