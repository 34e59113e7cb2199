//! Server A: answers `lab3` clients (listing, locks), dials Server B for
//! its listing and keeps the sync link to it up.
//!
//! # Layout
//! - [`client_api`]: one task per client connection, request by request.
//! - [`peer`]: talking to Server B (fresh listings, the sync link).
//! - [`versions`]: `lab3 versions` and `restore`, at both sides.
//! - [`locks`]: the lock table and the per-file FIFO queues, on disk.
//! - [`web`]: the web page (`--http`), over the same [`App`].

pub mod client_api;
pub mod locks;
pub mod peer;
pub mod versions;
pub mod web;

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use common::config::ServerArgs;
use common::handshake::Dialer;
use common::ignore::Ignore;
use common::protocol::Role;
use common::sync::SyncHandle;
use common::tls::{Fingerprint, Identity};
use tokio::net::TcpListener;

/// Everything Server A needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub dir: PathBuf,
    pub state_dir: PathBuf,
    /// Server B's address.
    pub peer: String,
    pub args: ServerArgs,
    pub ignore: Ignore,
    /// Where to serve the web page (`--http`); `None` for `--http off`.
    pub http: Option<String>,
    /// This server's key and certificate (made at first start).
    pub identity: Identity,
    /// This server's hold on its state directory, for as long as it runs.
    pub state_lock: common::state_lock::StateLock,
    /// How to dial Server B: TLS, our token, B's pinned fingerprint.
    pub dialer: Dialer,
}

impl Config {
    /// `pin`: the fingerprint Server B's certificate must have.
    pub fn new(
        dir: PathBuf,
        peer: String,
        pin: Option<Fingerprint>,
        args: ServerArgs,
    ) -> anyhow::Result<Config> {
        let state_dir = common::config::state_dir_for(&dir, args.state_dir.as_deref())?;
        let state_lock = common::config::claim(&dir, &state_dir, &args)?;
        let ignore = common::config::ignore_rules(&dir, &args)?;
        let identity = Identity::load_or_create(&state_dir)?;
        common::config::check_bench_plaintext(&args, &peer)?;
        let mut dialer = Dialer::new(Role::ServerA, args.token.clone(), pin);
        if args.bench_plaintext {
            dialer = dialer.plaintext();
        }
        Ok(Config {
            dir,
            state_dir,
            peer,
            args,
            ignore,
            http: None,
            identity,
            state_lock,
            dialer,
        })
    }
}

impl App {
    /// Every locked path with the length of its queue.
    pub fn lock_infos(&self) -> Vec<common::protocol::LockInfo> {
        self.locks
            .locked()
            .into_iter()
            .map(|name| common::protocol::LockInfo {
                queued: self.queued(&name),
                name,
            })
            .collect()
    }

    /// How many of Server B's updates of `name` wait in its queue.
    pub fn queued(&self, name: &str) -> usize {
        self.sync.as_ref().map_or(0, |s| s.queued(name))
    }

    /// Server B's updates of `name` waiting in its queue, oldest first.
    pub fn queue_of(&self, name: &str) -> Vec<locks::QueuedInfo> {
        self.sync.as_ref().map_or(Vec::new(), |s| {
            s.queue(name).iter().map(locks::QueuedInfo::of).collect()
        })
    }
}

/// What every client connection shares.
pub struct App {
    pub cfg: Config,
    pub locks: Arc<locks::Locks>,
    /// The sync engine (absent with `--no-sync`).
    pub sync: Option<SyncHandle>,
    /// Server B's certificate, as the last connection to it showed it.
    pub peer_certificate: Arc<Mutex<Option<Fingerprint>>>,
}

/// Serves clients until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    cfg: Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let locks = Arc::new(locks::Locks::open(&cfg.state_dir)?);
    let peer_certificate = Arc::default();
    let sync = if cfg.args.no_sync {
        None
    } else {
        let sc = common::config::sync_config(
            &cfg.dir,
            &cfg.state_dir,
            &cfg.args,
            cfg.ignore.clone(),
            Role::ServerA,
        );
        let sync = common::sync::start(sc)?;
        locks.recover(sync.locked())?;
        // The engine keeps its own record of locks; the table is the truth
        // about which paths are locked. An unlock interrupted by a crash is
        // finished first.
        for path in locks.locked() {
            sync.lock(&path).await?;
        }
        for path in locks.interrupted() {
            tracing::info!("resuming the interrupted unlock of {path}");
            match sync.unlock(&path).await {
                Ok(_) => locks.end_unlock(&path),
                Err(e) => tracing::error!("resuming the unlock of {path}: {e:#}"),
            }
        }
        tokio::spawn(peer::keep_link(
            sync.clone(),
            cfg.peer.clone(),
            cfg.dialer.clone(),
            Arc::clone(&peer_certificate),
        ));
        Some(sync)
    };
    let tls = Some(cfg.identity.server_config()?);
    let app = Arc::new(App {
        cfg,
        locks,
        sync,
        peer_certificate,
    });
    if let Some(addr) = &app.cfg.http {
        web::start(addr, app.clone()).await;
    }
    let settings = common::server::Listener {
        me: Role::ServerA,
        allowed: vec![Role::Client],
        token: app.cfg.args.token.clone(),
        tls,
    };
    let handler = move |conn, peer| client_api::handle(conn, peer, app.clone());
    common::server::serve(listener, settings, handler, shutdown).await;
    Ok(())
}
