//! The accept loop both servers run: a capped number of connections, one
//! task each, handshake first, errors kept to the connection that caused them.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::connection::Connection;
use crate::handshake::{self, PeerInfo};
use crate::protocol::Role;

/// Most connections served at once; further ones wait to be accepted.
pub const MAX_CONNECTIONS: usize = 256;

/// Who this server is and whom it serves.
#[derive(Debug, Clone)]
pub struct Listener {
    pub me: Role,
    pub allowed: Vec<Role>,
    pub token: Option<String>,
}

/// Accepts connections until `shutdown` completes, running `handler` on
/// each one that passes the handshake. A failing connection is logged and
/// closed; the loop goes on.
pub async fn serve<H, F>(
    listener: TcpListener,
    cfg: Listener,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Connection, PeerInfo) -> F + Send + Sync + 'static,
    F: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let cfg = Arc::new(cfg);
    let handler = Arc::new(handler);
    let accept_loop = async {
        let mut backoff = Duration::from_millis(10);
        loop {
            let permit = limit
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore never closed");
            let (stream, addr) = match listener.accept().await {
                Ok(x) => {
                    backoff = Duration::from_millis(10);
                    x
                }
                Err(e) => {
                    // EMFILE and friends: wait and try again rather than spin.
                    tracing::warn!("accept failed: {e}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            let cfg = cfg.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let mut conn = Connection::new(stream);
                let peer =
                    match handshake::accept(&mut conn, cfg.me, &cfg.allowed, cfg.token.as_deref())
                        .await
                    {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::warn!("connection from {addr} refused: {e}");
                            return;
                        }
                    };
                if let Err(e) = handler(conn, peer).await {
                    tracing::warn!("connection from {addr} ({}) ended: {e:#}", peer.role);
                }
            });
        }
    };
    tokio::select! {
        _ = accept_loop => {}
        _ = shutdown => {}
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
