//! Talking to Server B: a fresh listing of its directory on request, and
//! the sync link, dialled and kept up with backoff.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::connection::ProtocolError;
use common::handshake::Dialer;
use common::meta::FileMeta;
use common::protocol::{InventoryEntry, Message};
use common::sync::SyncHandle;
use common::tls::Fingerprint;

/// How long B may take to accept a listing connection before A gives up
/// on it and answers with its own files only. Once connected, B's answer
/// may take as long as a big folder needs: A gives up only when nothing
/// comes for [`common::inventory::progress_deadline`] (B says "still
/// scanning" every 2 s meanwhile).
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);

/// Asks Server B at `addr` for its files as they are now.
pub async fn fetch_listing(addr: &str, dialer: &Dialer) -> anyhow::Result<Vec<FileMeta>> {
    let (mut conn, _) = tokio::time::timeout(CONNECT_DEADLINE, dialer.dial(addr))
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {CONNECT_DEADLINE:?}"))?
        .map_err(explain)?;
    conn.writer.send(Message::InventoryRequest).await?;
    let entries = common::inventory::receive(&mut conn.reader).await?;
    Ok(entries
        .into_iter()
        .filter_map(|e| match e {
            InventoryEntry::Present { meta, .. } => match common::paths::check(&meta.path) {
                Ok(()) => Some(meta),
                Err(e) => {
                    tracing::error!("server B's listing: {e}");
                    None
                }
            },
            InventoryEntry::Deleted { .. } => None,
        })
        .collect())
}

/// Says which flag a refusal of B's identity is about.
fn explain(e: ProtocolError) -> anyhow::Error {
    match e {
        ProtocolError::Untrusted(why) => anyhow::anyhow!(
            "server B is not trusted: {why} (--peer-fingerprint, --token; see docs/TWO-MACHINES.md)"
        ),
        e => e.into(),
    }
}

/// Dials Server B for the sync link and runs it; when it breaks, dials
/// again with exponential backoff (100 ms up to 5 s). Never returns.
/// `certificate` keeps what B's certificate was on the last link.
pub async fn keep_link(
    sync: SyncHandle,
    addr: String,
    dialer: Dialer,
    certificate: Arc<Mutex<Option<Fingerprint>>>,
) {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);
    let mut backoff = FIRST;
    let mut reported = false;
    loop {
        match dialer.dial(&addr).await.map_err(explain) {
            Ok((mut conn, peer)) => {
                reported = false;
                *certificate.lock().unwrap() = peer.certificate;
                let started = Instant::now();
                let res = match conn.writer.send(Message::SyncStart).await {
                    Ok(()) => sync.run_link(conn, peer).await,
                    Err(e) => Err(e.into()),
                };
                if let Err(e) = res {
                    tracing::warn!("sync link to server B at {addr} ended: {e:#}");
                }
                if started.elapsed() > Duration::from_secs(2) {
                    backoff = FIRST;
                }
            }
            Err(e) => {
                if !reported {
                    tracing::warn!(
                        "cannot reach server B at {addr}: {e:#}; retrying in the background"
                    );
                    reported = true;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX);
    }
}
