//! Talking to Server B: a fresh listing of its directory, on request.

use common::handshake;
use common::meta::FileMeta;
use common::protocol::{InventoryEntry, Message, Role};

/// Asks Server B at `addr` for its files as they are now.
pub async fn fetch_listing(addr: &str, token: Option<&str>) -> anyhow::Result<Vec<FileMeta>> {
    let (mut conn, _) = handshake::dial(addr, Role::ServerA, token).await?;
    conn.writer.send(Message::InventoryRequest).await?;
    let entries = common::inventory::receive(&mut conn.reader).await?;
    Ok(entries
        .into_iter()
        .filter_map(|e| match e {
            InventoryEntry::Present { meta, .. } => Some(meta),
            InventoryEntry::Deleted { .. } => None,
        })
        .collect())
}
