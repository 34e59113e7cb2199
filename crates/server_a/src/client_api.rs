//! What Server A answers a `lab3` client, one request at a time.
//!
//! An unknown or malformed-but-framed request gets an `Error` reply and the
//! connection stays; broken framing ends this connection only.

use std::sync::Arc;

use common::connection::{Connection, Frame};
use common::handshake::{kind_of, PeerInfo};
use common::protocol::{ListingRow, Message, PeerState, ENTRIES_PER_CHUNK};

use crate::Config;

/// Serves one client connection until it closes.
pub async fn handle(mut conn: Connection, _peer: PeerInfo, cfg: Arc<Config>) -> anyhow::Result<()> {
    while let Some(frame) = conn.reader.read_frame().await? {
        let Frame::Message(msg) = frame else {
            anyhow::bail!("unexpected data frame from a client");
        };
        match msg {
            Message::ListRequest => {
                let (peer, rows) = listing(&cfg).await?;
                send_listing(&mut conn, peer, rows).await?;
            }
            other => {
                let message = format!("unknown request: {}", kind_of(&other));
                conn.writer.send(Message::Error { message }).await?;
            }
        }
    }
    Ok(())
}

/// Builds the composite listing: A's directory now, and B's as B reports it now.
pub async fn listing(cfg: &Config) -> anyhow::Result<(PeerState, Vec<ListingRow>)> {
    let own = common::scan::scan_dir_async(cfg.dir.clone(), cfg.ignore.clone());
    let theirs = crate::peer::fetch_listing(&cfg.peer, cfg.args.token.as_deref());
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
    Ok((peer, common::listing::merge(&own.files, &theirs)))
}

async fn send_listing(
    conn: &mut Connection,
    peer: PeerState,
    rows: Vec<ListingRow>,
) -> anyhow::Result<()> {
    let mut chunks = rows.chunks(ENTRIES_PER_CHUNK).peekable();
    if chunks.peek().is_none() {
        conn.writer
            .send(Message::ListingChunk {
                peer,
                rows: vec![],
                done: true,
            })
            .await?;
        return Ok(());
    }
    while let Some(c) = chunks.next() {
        let done = chunks.peek().is_none();
        conn.writer
            .feed(Message::ListingChunk {
                peer,
                rows: c.to_vec(),
                done,
            })
            .await?;
    }
    conn.writer.flush().await?;
    Ok(())
}
