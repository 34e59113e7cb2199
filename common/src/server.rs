//! The accept loop both servers run: a capped number of connections, one
//! task each, TLS and handshake first, errors kept to the connection that
//! caused them, no slot held for ever by a connection that went quiet, and
//! token guessers slowed down without costing anyone else ([`Throttle`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::connection::{Connection, ProtocolError};
use crate::handshake::{self, Expect, PeerInfo};
use crate::protocol::Role;
use crate::throttle::Throttle;

/// Listens on `listen` and says so on stdout, flushed, as each server
/// starts: `listening on ADDR` first, then `certificate sha256:…` (this
/// server's fingerprint, to compare or pin at the other end), then on
/// stderr a warning if other machines can reach it without a token.
pub async fn listen(
    listen: &str,
    fingerprint: crate::tls::Fingerprint,
    args: &crate::config::ServerArgs,
) -> anyhow::Result<TcpListener> {
    use std::io::Write;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {addr}");
        let _ = writeln!(out, "certificate {fingerprint}");
        let _ = out.flush();
    }
    crate::config::warn_if_exposed(addr, args);
    Ok(listener)
}

/// A server program's exit: its error, if any, as one line `NAME: error`
/// on stderr and a failure code.
pub fn exit_code(name: &str, result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Most connections served at once; further ones wait to be accepted.
pub const MAX_CONNECTIONS: usize = 256;

/// How long a client connection may sit between requests before it is
/// closed. `lab3` sends its one request right after the handshake; this is
/// for clients that vanished without closing, which would otherwise hold
/// one of the [`MAX_CONNECTIONS`] slots for ever. (Peer links have no such
/// limit: a quiet sync link is normal.)
pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the answer to a bad token proof is held back (the connection
/// slot is given up first).
pub const BAD_PROOF_DELAY: Duration = Duration::from_secs(1);

/// The limits [`serve`] enforces; tests use smaller ones.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_connections: usize,
    client_idle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            client_idle: CLIENT_IDLE_TIMEOUT,
        }
    }
}

/// Who this server is and whom it serves.
#[derive(Debug, Clone)]
pub struct Listener {
    pub me: Role,
    pub allowed: Vec<Role>,
    pub token: Option<String>,
    /// This server's TLS configuration (its key); `None` only for the
    /// benchmarks' plaintext baseline (`--bench-plaintext`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
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
    serve_with(listener, cfg, handler, shutdown, Limits::default()).await
}

async fn serve_with<H, F>(
    listener: TcpListener,
    cfg: Listener,
    handler: H,
    shutdown: impl Future<Output = ()>,
    limits: Limits,
) where
    H: Fn(Connection, PeerInfo) -> F + Send + Sync + 'static,
    F: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    // A permit is taken before accepting and held by the connection's task
    // until it ends: at most 5 s for one that never says hello (the
    // handshake timeout), `client_idle` between a client's requests.
    let limit = Arc::new(Semaphore::new(limits.max_connections));
    let cfg = Arc::new(cfg);
    let handler = Arc::new(handler);
    let throttle = Arc::new(Throttle::default());
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
            let throttle = throttle.clone();
            tokio::spawn(async move {
                let Some((mut conn, peer, _permit)) =
                    handshake(stream, addr, &cfg, &throttle, permit).await
                else {
                    return;
                };
                if peer.role == Role::Client {
                    conn.reader.set_idle_timeout(Some(limits.client_idle));
                }
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

/// TLS and the handshake of one new connection. A refusal is logged with
/// the remote address; a bad token proof also counts against that address,
/// and its answer waits [`BAD_PROOF_DELAY`] after the slot is given back.
async fn handshake(
    stream: tokio::net::TcpStream,
    addr: std::net::SocketAddr,
    cfg: &Listener,
    throttle: &Throttle,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Option<(Connection, PeerInfo, tokio::sync::OwnedSemaphorePermit)> {
    let deadline = tokio::time::Instant::now() + handshake::HANDSHAKE_TIMEOUT;
    let (mut conn, session) = match handshake::secure(stream, cfg.tls.clone()).await {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!("connection from {addr} refused: {e}");
            return None;
        }
    };
    let ip = addr.ip();
    if cfg.token.is_some() {
        if let Err(wait) = throttle.may_check(ip, std::time::Instant::now()) {
            let why = format!(
                "too many bad token proofs from {ip}; try again in {} s",
                wait.as_secs_f64().ceil()
            );
            let _ = handshake::refuse::<()>(&mut conn, why.clone()).await;
            tracing::warn!("connection from {addr} refused: {why}");
            return None;
        }
    }
    let expect = Expect {
        me: cfg.me,
        allowed: &cfg.allowed,
        token: cfg.token.as_deref(),
        deadline,
    };
    match handshake::accept(&mut conn, session.as_ref(), &expect).await {
        Ok(peer) => {
            if cfg.token.is_some() {
                throttle.succeeded(ip);
            }
            Some((conn, peer, permit))
        }
        Err(ProtocolError::BadProof) => {
            throttle.failed(ip, std::time::Instant::now());
            tracing::warn!("connection from {addr} refused: bad or missing token");
            drop(permit);
            tokio::time::sleep(BAD_PROOF_DELAY).await;
            let _ = handshake::refuse::<()>(&mut conn, ProtocolError::BadProof.to_string()).await;
            None
        }
        Err(e) => {
            tracing::warn!("connection from {addr} refused: {e}");
            None
        }
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::protocol::Message;

    /// Serves clients with `limits`, answering each `ListRequest` with an
    /// empty listing; returns the address.
    async fn start(limits: Limits) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = tempfile::tempdir().unwrap();
        let identity = crate::tls::Identity::load_or_create(state.path()).unwrap();
        let cfg = Listener {
            me: Role::ServerA,
            allowed: vec![Role::Client],
            token: None,
            tls: Some(identity.server_config().unwrap()),
        };
        let handler = |mut conn: Connection, _| async move {
            while let Some(_frame) = conn.reader.read_frame().await? {
                let rows = vec![];
                let peer = crate::protocol::PeerState::Connected;
                let done = true;
                conn.writer
                    .send(Message::ListingChunk { peer, rows, done })
                    .await?;
            }
            Ok(())
        };
        tokio::spawn(serve_with(
            listener,
            cfg,
            handler,
            std::future::pending(),
            limits,
        ));
        addr
    }

    #[tokio::test]
    async fn a_quiet_client_is_closed_and_its_slot_goes_to_the_next() {
        let addr = start(Limits {
            max_connections: 1,
            client_idle: Duration::from_millis(300),
        })
        .await;
        let client = handshake::Dialer::new(Role::Client, None, None);
        let (mut quiet, _) = client.dial(&addr).await.unwrap();
        // The one slot is taken: the next client waits ...
        let t = Instant::now();
        let next = tokio::spawn({
            let (addr, client) = (addr.clone(), client.clone());
            async move { client.dial(&addr).await }
        });
        // ... until the quiet one is closed for idling.
        let closed = tokio::time::timeout(Duration::from_secs(3), quiet.reader.read_frame()).await;
        assert!(matches!(closed, Ok(Ok(None)) | Ok(Err(_))), "{closed:?}");
        let (mut next, _) = tokio::time::timeout(Duration::from_secs(3), next)
            .await
            .expect("the next client got the slot")
            .unwrap()
            .unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(250),
            "{:?}",
            t.elapsed()
        );
        // A client that keeps talking is not cut off.
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            next.writer.send(Message::ListRequest).await.unwrap();
            let answer = next.reader.read_message().await.unwrap();
            assert!(matches!(answer, Message::ListingChunk { .. }));
        }
    }
}
