//! Talking to Server B: a fresh listing of its directory on request, and
//! the sync link, dialled and kept up with backoff.

use std::time::{Duration, Instant};

use common::handshake;
use common::meta::FileMeta;
use common::protocol::{InventoryEntry, Message, Role};
use common::sync::SyncHandle;

/// How long B may take to answer a listing request before A gives up on it
/// and answers with its own files only.
const LISTING_DEADLINE: Duration = Duration::from_secs(10);

/// Asks Server B at `addr` for its files as they are now.
pub async fn fetch_listing(addr: &str, token: Option<&str>) -> anyhow::Result<Vec<FileMeta>> {
    tokio::time::timeout(LISTING_DEADLINE, fetch(addr, token))
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {LISTING_DEADLINE:?}"))?
}

async fn fetch(addr: &str, token: Option<&str>) -> anyhow::Result<Vec<FileMeta>> {
    let (mut conn, _) = handshake::dial(addr, Role::ServerA, token).await?;
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

/// Dials Server B for the sync link and runs it; when it breaks, dials
/// again with exponential backoff (100 ms up to 5 s). Never returns.
pub async fn keep_link(sync: SyncHandle, addr: String, token: Option<String>) {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);
    let mut backoff = FIRST;
    let mut reported = false;
    loop {
        match handshake::dial(&addr, Role::ServerA, token.as_deref()).await {
            Ok((mut conn, peer)) => {
                reported = false;
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
                        "cannot reach server B at {addr}: {e}; retrying in the background"
                    );
                    reported = true;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX);
    }
}
