//! Server B: serves its directory's inventory to Server A, and runs its
//! half of the sync link that Server A dials.
//!
//! It also answers `lab3` clients, for when Server A is down (`lab3
//! --server A,B`): a listing (Server A's composite when A answers it, else
//! B's own files, `peer` unreachable) and its status. Locks live at Server
//! A: lock requests get an error that says so.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use common::config::{Served, ServerArgs};
use common::connection::Connection;
use common::handshake::{kind_of, PeerInfo};
use common::ignore::Ignore;
use common::protocol::{InventoryEntry, Message, Role};
use common::sync::{versions, SyncHandle};
use tokio::net::TcpListener;

mod clients;

/// Everything Server B needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The folder, its state directory, flags, ignore rules and identity.
    pub served: Served,
    /// Server A's address for clients (`--server-a`), asked first when a
    /// client wants a listing from B.
    pub server_a: String,
}

impl Config {
    pub fn new(dir: PathBuf, args: ServerArgs) -> anyhow::Result<Config> {
        Ok(Config {
            served: Served::load(dir, args)?,
            server_a: "127.0.0.1:6000".into(),
        })
    }
}

/// Serves Server A until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    cfg: Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let sync = cfg.served.start_sync(Role::ServerB)?;
    let tls = if cfg.served.args.bench_plaintext {
        common::config::check_bench_plaintext(
            &cfg.served.args,
            &listener.local_addr()?.to_string(),
        )?;
        None
    } else {
        Some(cfg.served.identity.server_config()?)
    };
    let engine = sync.clone();
    let cfg = Arc::new(cfg);
    let ignore = Arc::new(cfg.served.ignore.clone());
    let settings = common::server::Listener {
        me: Role::ServerB,
        allowed: vec![Role::ServerA, Role::Client],
        token: cfg.served.args.token.clone(),
        tls,
    };
    let handler = move |conn: Connection, peer: PeerInfo| {
        let cfg = cfg.clone();
        let ignore = ignore.clone();
        let sync = sync.clone();
        async move { handle(conn, peer, &cfg, &ignore, sync.as_ref()).await }
    };
    // The engine starts (reads its journal, scans the folder) while the
    // server answers; if it cannot, the server stops with its error.
    let why = Arc::default();
    let stop = common::sync::until_stopped(engine, shutdown, Arc::clone(&why));
    common::server::serve(listener, settings, handler, stop).await;
    let failed = why.lock().unwrap().take();
    failed.map_or(Ok(()), Err)
}

async fn handle(
    mut conn: Connection,
    peer: PeerInfo,
    cfg: &Config,
    ignore: &Ignore,
    sync: Option<&SyncHandle>,
) -> anyhow::Result<()> {
    if peer.role == Role::Client {
        return clients::handle(conn, cfg, ignore, sync).await;
    }
    while let Some(msg) = conn.next_request().await? {
        match msg {
            Message::InventoryRequest => {
                // A big folder takes a while to scan: A hears "still
                // scanning" meanwhile (it waits on progress, not on the whole).
                let making = listing_entries(cfg, ignore);
                let entries = common::inventory::keep_alive_while(
                    &mut conn.writer,
                    making,
                    common::inventory::still_scanning,
                )
                .await??;
                common::inventory::send(&mut conn.writer, &entries).await?;
            }
            // Server A asks for B's side of `lab3 versions` and `restore`.
            Message::VersionsRequest { path } => {
                let answer = match versions::infos(&cfg.served.state_dir, &path, "b") {
                    Ok(versions) => Message::Versions {
                        peer: common::protocol::PeerState::Connected,
                        versions,
                    },
                    Err(e) => Message::Error {
                        message: format!("{e:#}"),
                    },
                };
                conn.writer.send(answer).await?;
            }
            Message::RestoreRequest { path, version } => {
                let answer = restore(cfg, sync, &path, version).await;
                conn.writer.send(answer).await?;
            }
            // Server A asks for B's side of `lab3 status` (its versions).
            Message::StatusRequest => conn.writer.send(status(cfg, sync)).await?,
            Message::SyncStart => match sync {
                Some(sync) => return sync.run_link(conn, peer).await,
                None => {
                    let message = "server B runs with --no-sync".to_string();
                    conn.writer.send(Message::Error { message }).await?;
                }
            },
            other => {
                let message = format!("unexpected request: {}", kind_of(&other));
                conn.writer
                    .send(Message::Error {
                        message: message.clone(),
                    })
                    .await?;
            }
        }
    }
    Ok(())
}

/// Server B's own state, for `lab3 status` (asked by a client when A is
/// down, or by Server A for B's versions).
pub(crate) fn status(cfg: &Config, sync: Option<&SyncHandle>) -> Message {
    Message::Status {
        time_ns: common::meta::now_ns(),
        peer: cfg.server_a.clone(),
        sync: sync.is_some(),
        link: sync.map(|s| s.status()).unwrap_or_default(),
        locks: Vec::new(),
        fingerprint: Some(cfg.served.identity.fingerprint.to_string()),
        peer_fingerprint: None,
        versions: vec![versions::usage(&cfg.served.state_dir, "b")],
        failing: sync.map(|s| s.failing()).unwrap_or_default(),
        set_aside: sync.map(|s| s.set_aside()).unwrap_or_default(),
    }
}

/// A restore at this side, as the answer to send.
pub(crate) async fn restore(
    cfg: &Config,
    sync: Option<&SyncHandle>,
    path: &str,
    id: Option<String>,
) -> Message {
    match versions::restore_here(sync, &cfg.served.dir, &cfg.served.state_dir, "b", path, id).await
    {
        Ok(version) => Message::Restored { version },
        Err(e) => Message::Error {
            message: format!("{e:#}"),
        },
    }
}

pub(crate) async fn listing_entries(
    cfg: &Config,
    ignore: &Ignore,
) -> anyhow::Result<Vec<InventoryEntry>> {
    let scan = common::scan::scan_dir_async(cfg.served.dir.clone(), ignore.clone()).await?;
    Ok(scan
        .files
        .into_iter()
        .map(|meta| InventoryEntry::Present {
            meta,
            dirty: false,
            hash: None,
        })
        .collect())
}
