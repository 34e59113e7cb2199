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

use common::config::{Served, ServerArgs};
use common::handshake::Dialer;
use common::protocol::Role;
use common::sync::SyncHandle;
use common::tls::Fingerprint;
use tokio::net::TcpListener;

/// Everything Server A needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The folder, its state directory, flags, ignore rules and identity.
    pub served: Served,
    /// Server B's address.
    pub peer: String,
    /// Where to serve the web page (`--http`); `None` for `--http off`.
    pub http: Option<String>,
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
        let served = Served::load(dir, args)?;
        common::config::check_bench_plaintext(&served.args, &peer)?;
        let mut dialer = Dialer::new(Role::ServerA, served.args.token.clone(), pin);
        if served.args.bench_plaintext {
            dialer = dialer.plaintext();
        }
        Ok(Config {
            served,
            peer,
            http: None,
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
    /// Where `lab3` clients reach this server (the bound address).
    pub listen: String,
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
    let locks = Arc::new(locks::Locks::open(&cfg.served.state_dir)?);
    let peer_certificate = Arc::default();
    let sync = cfg.served.start_sync(Role::ServerA)?;
    if let Some(sync) = &sync {
        // A damaged lock table takes its locks from the engine's journal:
        // then (only) the server waits for the engine before it answers,
        // so that no client sees a lock missing.
        if locks.needs_recovery() {
            sync.ready().await?;
            locks.recover(sync.locked())?;
        }
        // The engine keeps its own record of locks; the table is the truth
        // about which paths are locked. Each is handed to the engine now,
        // before any client's command can be (the engine takes commands in
        // order), and taken once its start-up (a big folder's scan) is done.
        let taking: Vec<_> = locks.locked().iter().map(|p| sync.lock(p)).collect();
        tokio::spawn(after_start(
            sync.clone(),
            Arc::clone(&locks),
            taking,
            (cfg.peer.clone(), cfg.dialer.clone()),
            Arc::clone(&peer_certificate),
        ));
    }
    let engine = sync.clone();
    let tls = Some(cfg.served.identity.server_config()?);
    let app = Arc::new(App {
        listen: listener.local_addr()?.to_string(),
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
        token: app.cfg.served.args.token.clone(),
        tls,
    };
    let handler = move |conn, peer| client_api::handle(conn, peer, app.clone());
    // If the engine cannot start, the server stops with its error.
    let why = Arc::default();
    let stop = common::sync::until_stopped(engine, shutdown, Arc::clone(&why));
    common::server::serve(listener, settings, handler, stop).await;
    let failed = why.lock().unwrap().take();
    failed.map_or(Ok(()), Err)
}

/// What waits for the engine's start-up: the locks handed to it at
/// start, the unlocks a crash interrupted (finished first), then the link
/// to Server B.
async fn after_start(
    sync: SyncHandle,
    locks: Arc<locks::Locks>,
    taking: Vec<impl Future<Output = anyhow::Result<()>>>,
    (peer, dialer): (String, Dialer),
    peer_certificate: Arc<Mutex<Option<Fingerprint>>>,
) {
    if sync.ready().await.is_err() {
        return; // said by the engine; the server stops (see `run`)
    }
    for taken in taking {
        if let Err(e) = taken.await {
            tracing::error!("taking a lock at start: {e:#}");
        }
    }
    for path in locks.interrupted() {
        tracing::info!("resuming the interrupted unlock of {path}");
        match sync.unlock(&path).await {
            Ok(_) => locks.end_unlock(&path),
            Err(e) => tracing::error!("resuming the unlock of {path}: {e:#}"),
        }
    }
    peer::keep_link(sync, peer, dialer, peer_certificate).await;
}
