//! What Server A answers a `lab3` client, one request at a time.
//!
//! An unknown request, or one that cannot be done (a bad index, a double
//! lock), gets an `Error` reply and the connection stays; broken framing
//! ends this connection only.

use std::sync::Arc;

use common::connection::Connection;
use common::handshake::{kind_of, PeerInfo};
use common::protocol::{Action, ListingRow, Message, PeerState, Target, WATCH_PING_EVERY};
use common::server::CLIENT_IDLE_TIMEOUT;
use common::sync::SyncHandle;

use crate::App;

/// Serves one client connection until it closes.
pub async fn handle(mut conn: Connection, _peer: PeerInfo, app: Arc<App>) -> anyhow::Result<()> {
    while let Some(msg) = conn.next_request().await? {
        let reply = match msg {
            Message::ListRequest => {
                common::listing::send_when_made(&mut conn, listing(&app)).await?;
                continue;
            }
            Message::Lock { target } => lock(&app, target).await,
            Message::Unlock { target } => unlock(&app, target).await,
            Message::LocksRequest => Ok(Message::Locks {
                locks: app.lock_infos(),
            }),
            Message::StatusRequest => Ok(status(&app).await),
            Message::VersionsRequest { path } => crate::versions::list(&app, &path).await,
            Message::RestoreRequest { path, version } => {
                crate::versions::restore(&app, &path, version).await
            }
            Message::WatchRequest => match &app.sync {
                Some(sync) => return watch(&mut conn, sync).await,
                None => Err(anyhow::anyhow!(
                    "server A runs with --no-sync: there is nothing to watch"
                )),
            },
            other => Err(anyhow::anyhow!("unknown request: {}", kind_of(&other))),
        };
        let reply = reply.unwrap_or_else(|e| Message::Error {
            message: format!("{e:#}"),
        });
        conn.writer.send(reply).await?;
    }
    Ok(())
}

/// Builds the composite listing: A's directory now, and B's as B reports
/// it now, with each path's lock state.
pub async fn listing(app: &App) -> anyhow::Result<(PeerState, Vec<ListingRow>)> {
    let cfg = &app.cfg;
    let own = common::scan::scan_dir_async(cfg.served.dir.clone(), cfg.served.ignore.clone());
    let theirs = crate::peer::fetch_listing(&cfg.peer, &cfg.dialer);
    let (own, theirs) = tokio::join!(own, theirs);
    let own = own?;
    let (peer, theirs) = match theirs {
        Ok(files) => (PeerState::Connected, files),
        Err(e) => {
            tracing::warn!(
                "server B at {} unreachable for the listing: {e:#}",
                cfg.peer
            );
            (PeerState::Unreachable, Vec::new())
        }
    };
    let mut rows = common::listing::merge(&own.files, &theirs);
    for r in &mut rows {
        r.locked = app.locks.is_locked(&r.name);
        r.queued = app.queued(&r.name);
    }
    Ok((peer, rows))
}

/// The path a client means: a row of the current listing, or a name.
async fn resolve(app: &App, target: Target) -> anyhow::Result<String> {
    match target {
        Target::Index(i) => {
            let (_, rows) = listing(app).await?;
            match rows.get(i) {
                Some(r) => Ok(r.name.clone()),
                None if rows.is_empty() => {
                    anyhow::bail!("no file at index {i}: the listing is empty")
                }
                None => anyhow::bail!(
                    "no file at index {i}: valid indexes are 0 to {} ({} files)",
                    rows.len() - 1,
                    rows.len()
                ),
            }
        }
        Target::Name(name) => {
            common::paths::check(&name)?;
            Ok(name)
        }
    }
}

pub(crate) async fn lock(app: &App, target: Target) -> anyhow::Result<Message> {
    let name = resolve(app, target).await?;
    app.locks.lock(&name)?;
    // The engine takes the lock before this answers: no update from B
    // reaches the folder after `lab3 lock` returns.
    if let Some(sync) = &app.sync {
        sync.lock(&name).await?;
    }
    Ok(Message::Locked { name })
}

pub(crate) async fn unlock(app: &App, target: Target) -> anyhow::Result<Message> {
    let name = resolve(app, target).await?;
    if !app.locks.is_locked(&name) {
        anyhow::bail!("{name} is not locked");
    }
    app.locks.begin_unlock(&name)?;
    let updates = match &app.sync {
        Some(sync) => sync.unlock(&name).await?,
        None => Vec::new(),
    };
    app.locks.end_unlock(&name);
    Ok(Message::Unlocked { name, updates })
}

/// Server A's state for `lab3 status`, with both sides' kept versions.
pub(crate) async fn status(app: &App) -> Message {
    let mut versions = vec![common::sync::versions::usage(
        &app.cfg.served.state_dir,
        "a",
    )];
    let (at_b, link_b) = crate::versions::status_at_b(app).await;
    versions.extend(at_b);
    // Server B's own reports (none when it did not answer), merged in.
    let (link_b, failing_b) = link_b.unwrap_or_default();
    let mut failing = app.sync.as_ref().map(|s| s.failing()).unwrap_or_default();
    failing.extend(failing_b);
    let mut link = app.sync.as_ref().map(|s| s.status()).unwrap_or_default();
    link.merge_peer(link_b);
    Message::Status {
        versions,
        failing,
        set_aside: app.sync.as_ref().map(|s| s.set_aside()).unwrap_or_default(),
        time_ns: common::meta::now_ns(),
        peer: app.cfg.peer.clone(),
        sync: app.sync.is_some(),
        link,
        locks: app.lock_infos(),
        fingerprint: Some(app.cfg.served.identity.fingerprint.to_string()),
        peer_fingerprint: app.peer_certificate.lock().unwrap().map(|f| f.to_string()),
    }
}

/// `lab3 watch`: every action of both servers (Server B's relayed over the
/// sync link) as it happens, until the client goes away.
async fn watch(conn: &mut Connection, sync: &SyncHandle) -> anyhow::Result<()> {
    use tokio::sync::broadcast::error::RecvError;
    let mut actions = sync.subscribe();
    let link_up = sync.status().up;
    conn.writer.send(Message::Watching { link_up }).await?;
    // Both ends ping when quiet; a watcher not heard from for as long as any
    // client may idle has vanished, and frees its slot.
    let mut ping = tokio::time::interval(WATCH_PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.reset();
    let mut heard = tokio::time::Instant::now();
    loop {
        if heard.elapsed() > CLIENT_IDLE_TIMEOUT {
            anyhow::bail!("the watcher said nothing for {CLIENT_IDLE_TIMEOUT:?}; closing");
        }
        tokio::select! {
            _ = ping.tick() => conn.writer.send(Message::Ping).await?,
            got = actions.recv() => match got {
                Ok(a) => {
                    conn.writer.send(Message::Action(a)).await?;
                    ping.reset(); // a sign of life too
                }
                Err(RecvError::Lagged(n)) => {
                    // Said, not hidden: this watcher fell behind.
                    let a = Action {
                        time_ns: common::meta::now_ns(),
                        side: sync.side().to_string(),
                        direction: sync.side().to_string(),
                        action: "missed".into(),
                        path: String::new(),
                        size: None,
                        detail: format!("{n} actions not shown: this watch fell behind"),
                    };
                    conn.writer.send(Message::Action(a)).await?;
                    ping.reset();
                }
                Err(RecvError::Closed) => return Ok(()),
            },
            // The client only pings; it closing ends the watch.
            frame = conn.reader.read_frame() => match frame? {
                None => return Ok(()),
                Some(_) => heard = tokio::time::Instant::now(),
            },
        }
    }
}
