//! The flags both servers share, where state lives by default, and what
//! both load from them at start ([`Served`]).

use std::path::{Path, PathBuf};

/// Flags common to `server_a` and `server_b`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// The state directory (journal, locks, queues, temporary files).
    /// Default: a hidden sibling of --dir, `.<dir>.lab3-state`; never inside --dir.
    #[arg(long, value_name = "PATH")]
    pub state_dir: Option<PathBuf>,

    /// Shared secret every peer and client must present.
    #[arg(long, env = "LAB3_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// A path to neither list nor sync, in gitignore syntax (`*.log`,
    /// `/build/`, `!keep.log`); repeatable. Adds to the defaults and to
    /// `<dir>/.lab3ignore`.
    #[arg(long = "ignore", value_name = "PATTERN")]
    pub ignore: Vec<String>,

    /// A file of ignore rules in gitignore syntax, read at start; repeatable.
    #[arg(long = "ignore-file", value_name = "PATH")]
    pub ignore_file: Vec<PathBuf>,

    /// Seconds between safety-net rescans of the directory (events do the
    /// real work). Default: 3 where events may be missing (no watcher, a
    /// network or FUSE filesystem), 30 where the OS watcher sees everything.
    #[arg(long, value_name = "SECS")]
    pub rescan_secs: Option<f64>,

    /// Accept that the directory, which held files at the last sync, is now
    /// empty or missing, and propagate those deletes.
    #[arg(long)]
    pub confirm_empty: bool,

    /// Days to keep the versions sync replaces or deletes (and conflict
    /// losers) in the state directory; 0 keeps none.
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub keep_versions: u32,

    /// Days a delete made while the peer is away is remembered, so that
    /// the peer's copy does not come back at reconnect; after that it is
    /// forgotten, and a peer away longer brings its copy back. 0: forgotten
    /// at the next start or rescan while the peer is away.
    #[arg(long, value_name = "DAYS", default_value_t = crate::sync::core::KEEP_DELETES_DAYS)]
    pub keep_deletes: u32,

    /// The room all kept versions may take, oldest out first: a share of
    /// the folder (`10%`, the default, at least 100 MiB) or a size (`500M`,
    /// `2G`, bytes).
    #[arg(long, value_name = "SIZE", default_value = "10%")]
    pub versions_cap: crate::sync::retention::Cap,

    /// Serve listings only; do not synchronise (the lab's part 1).
    #[arg(long)]
    pub no_sync: bool,

    /// Benchmarks only: the A-B link without TLS, for the plaintext
    /// baseline (both servers must say it; loopback addresses only).
    #[arg(long, hide = true)]
    pub bench_plaintext: bool,
}

/// What both servers hold of the folder they serve, loaded from the same
/// flags the same way; each server's own `Config` embeds it.
#[derive(Debug, Clone)]
pub struct Served {
    /// The synced folder (`--dir`).
    pub dir: PathBuf,
    /// Where the journal, locks, queues and versions live (`--state-dir`).
    pub state_dir: PathBuf,
    pub args: ServerArgs,
    pub ignore: crate::ignore::Ignore,
    /// This server's key and certificate (made at first start).
    pub identity: crate::tls::Identity,
    /// This server's hold on its state directory, for as long as it runs.
    pub state_lock: crate::state_lock::StateLock,
}

impl Served {
    /// Resolves and claims the state directory of `dir` (see [`claim`]),
    /// reads the ignore rules and loads (or makes) the server's identity.
    pub fn load(dir: PathBuf, args: ServerArgs) -> anyhow::Result<Served> {
        let state_dir = state_dir_for(&dir, args.state_dir.as_deref())?;
        let state_lock = claim(&dir, &state_dir, &args)?;
        let ignore = ignore_rules(&dir, &args)?;
        let identity = crate::tls::Identity::load_or_create(&state_dir)?;
        Ok(Served {
            dir,
            state_dir,
            args,
            ignore,
            identity,
            state_lock,
        })
    }

    /// Binds `addr` and prints where, and this server's fingerprint (see
    /// [`crate::server::listen`]).
    pub async fn listen(&self, addr: &str) -> anyhow::Result<tokio::net::TcpListener> {
        crate::server::listen(addr, self.identity.fingerprint, &self.args).await
    }

    /// The sync engine over this folder, started as `me`; `None` with
    /// `--no-sync`.
    pub fn start_sync(
        &self,
        me: crate::protocol::Role,
    ) -> anyhow::Result<Option<crate::sync::SyncHandle>> {
        start_sync(
            &self.dir,
            &self.state_dir,
            &self.args,
            self.ignore.clone(),
            me,
        )
    }
}

/// The default state directory for `dir`: `<parent>/.<name>.lab3-state`.
pub fn default_state_dir(dir: &Path) -> PathBuf {
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let name = abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into());
    let parent = abs
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    parent.join(format!(".{name}.lab3-state"))
}

/// Resolves the state directory and refuses one inside the synced directory.
pub fn state_dir_for(dir: &Path, given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let state = given
        .map(Path::to_path_buf)
        .unwrap_or_else(|| default_state_dir(dir));
    let abs_state = std::path::absolute(&state)?;
    let abs_dir = std::path::absolute(dir)?;
    if abs_state.starts_with(&abs_dir) {
        anyhow::bail!(
            "--state-dir {} is inside --dir {}; it must be outside",
            state.display(),
            dir.display()
        );
    }
    Ok(state)
}

/// What both servers do first with their folders: take the state
/// directory for this process (a second server on it is refused), and make
/// a missing `dir` only for a listing-only server (`--no-sync`). A syncing
/// server leaves that to the sync engine, which refuses to recreate a
/// folder that held files at the last sync (an unmounted disk, a wrong
/// path): see `sync::check_folder`.
pub fn claim(
    dir: &Path,
    state_dir: &Path,
    args: &ServerArgs,
) -> anyhow::Result<crate::state_lock::StateLock> {
    let lock = crate::state_lock::take(state_dir)?;
    if args.no_sync {
        std::fs::create_dir_all(dir)?;
    } else {
        crate::sync::check_folder_at_start(dir, state_dir, args.confirm_empty)?;
    }
    Ok(lock)
}

/// Refuses `--bench-plaintext` unless `addr` (where the plaintext link
/// runs) is on this machine: it exists to measure what TLS costs, and
/// must never carry files across a network.
pub fn check_bench_plaintext(args: &ServerArgs, addr: &str) -> anyhow::Result<()> {
    if !args.bench_plaintext {
        return Ok(());
    }
    let loopback = std::net::ToSocketAddrs::to_socket_addrs(addr)
        .map(|mut all| all.all(|a| a.ip().is_loopback()))
        .unwrap_or(false);
    if !loopback {
        anyhow::bail!(
            "--bench-plaintext is for benchmarks on one machine: {addr} is not a loopback address"
        );
    }
    tracing::warn!(
        "--bench-plaintext: the link to the other server is NOT encrypted (benchmarks only)"
    );
    Ok(())
}

/// Warns when a server listens beyond loopback without a token: anyone
/// who reaches it could list, lock and change files.
pub fn warn_if_exposed(addr: std::net::SocketAddr, args: &ServerArgs) {
    if !addr.ip().is_loopback() && args.token.is_none() {
        tracing::warn!(
            "listening on {addr} beyond loopback without a token: anyone who reaches this port \
             can list, lock and change files; set --token (or LAB3_TOKEN) on all three programs"
        );
    }
}

/// The ignore rules of a server over `dir`: the defaults, `--ignore`,
/// `--ignore-file` and `<dir>/.lab3ignore`. Logs what is ignored.
pub fn ignore_rules(dir: &Path, args: &ServerArgs) -> anyhow::Result<crate::ignore::Ignore> {
    tracing::debug!(
        "ignore rules from --ignore {:?}, --ignore-file {:?} and {}",
        args.ignore,
        args.ignore_file,
        dir.join(crate::ignore::IGNORE_FILE).display()
    );
    let ignore = crate::ignore::Ignore::load(dir, &args.ignore, &args.ignore_file)?;
    tracing::info!("ignoring {}", ignore.describe());
    Ok(ignore)
}

/// The sync engine of a server over `dir`, started; `None` with
/// `--no-sync`.
pub fn start_sync(
    dir: &Path,
    state_dir: &Path,
    args: &ServerArgs,
    ignore: crate::ignore::Ignore,
    me: crate::protocol::Role,
) -> anyhow::Result<Option<crate::sync::SyncHandle>> {
    if args.no_sync {
        return Ok(None);
    }
    let settings = sync_config(dir, state_dir, args, ignore, me);
    Ok(Some(crate::sync::start(settings)?))
}

/// The sync engine's settings for a server over `dir`.
pub fn sync_config(
    dir: &Path,
    state_dir: &Path,
    args: &ServerArgs,
    ignore: crate::ignore::Ignore,
    me: crate::protocol::Role,
) -> crate::sync::SyncConfig {
    crate::sync::SyncConfig {
        root: dir.to_path_buf(),
        state_dir: state_dir.to_path_buf(),
        ignore,
        me,
        rescan_every: args
            .rescan_secs
            .map(|s| std::time::Duration::from_secs_f64(s.max(0.1))),
        confirm_empty: args.confirm_empty,
        keep_versions_days: args.keep_versions,
        keep_deletes_days: args.keep_deletes,
        versions_cap: args.versions_cap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_hidden_sibling() {
        assert_eq!(
            default_state_dir(Path::new("/x/directory_a")),
            PathBuf::from("/x/.directory_a.lab3-state")
        );
        assert!(state_dir_for(Path::new("/x/d"), Some(Path::new("/x/d/state"))).is_err());
    }
}
