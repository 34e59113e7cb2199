//! Sending and receiving a side's inventory in bounded chunks, and Server
//! B's answer to a listing request.

use tokio::io::{AsyncRead, AsyncWrite};

use crate::connection::{FrameReader, FrameWriter, ProtocolError};
use crate::handshake::kind_of;
use crate::protocol::{InventoryEntry, Message, ENTRIES_PER_CHUNK};

/// Sends `entries` as `InventoryChunk` messages (at least one, the last `done`).
pub async fn send<W: AsyncWrite + Unpin>(
    w: &mut FrameWriter<W>,
    entries: &[InventoryEntry],
) -> Result<(), ProtocolError> {
    let mut chunks = entries.chunks(ENTRIES_PER_CHUNK).peekable();
    if chunks.peek().is_none() {
        return w
            .send(Message::InventoryChunk {
                entries: vec![],
                done: true,
            })
            .await;
    }
    while let Some(c) = chunks.next() {
        let done = chunks.peek().is_none();
        w.feed(Message::InventoryChunk {
            entries: c.to_vec(),
            done,
        })
        .await?;
    }
    w.flush().await
}

/// Receives the chunks [`send`] wrote.
pub async fn receive<R: AsyncRead + Unpin>(
    r: &mut FrameReader<R>,
) -> Result<Vec<InventoryEntry>, ProtocolError> {
    let mut all = Vec::new();
    loop {
        match r.read_message().await? {
            Message::InventoryChunk { entries, done } => {
                all.extend(entries);
                if done {
                    return Ok(all);
                }
            }
            other => return Err(ProtocolError::Unexpected(kind_of(&other))),
        }
    }
}
