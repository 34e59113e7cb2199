//! Sending and receiving a side's inventory in bounded chunks, and Server
//! B's answer to a listing request.
//!
//! A listing of a very big folder takes as long as it takes: the one who
//! waits gives up only when nothing has come for [`progress_deadline`],
//! never on the whole answer. While the answering side is still scanning
//! it says so every [`KEEPALIVE`] with an empty, unfinished chunk.

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::connection::{FrameReader, FrameWriter, ProtocolError};
use crate::handshake::kind_of;
use crate::protocol::{InventoryEntry, Message, ENTRIES_PER_CHUNK};

/// While a listing is being made, an empty chunk goes out this often.
pub const KEEPALIVE: Duration = Duration::from_secs(2);

/// How long a listing may go without any chunk arriving before the one
/// waiting gives up on it: 10 s. (Tests shorten it through the
/// environment variable `LAB3_LISTING_PROGRESS_MS`; not for real use.)
pub fn progress_deadline() -> Duration {
    static D: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *D.get_or_init(|| {
        std::env::var("LAB3_LISTING_PROGRESS_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(Duration::from_secs(10), Duration::from_millis)
    })
}

/// A pause before each chunk of an answer, for tests that show a slow
/// answer still arrives (`LAB3_TEST_LISTING_CHUNK_DELAY_MS`; zero unless set).
fn chunk_delay() -> Duration {
    static D: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *D.get_or_init(|| {
        std::env::var("LAB3_TEST_LISTING_CHUNK_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(Duration::ZERO, Duration::from_millis)
    })
}

/// Waits for `making` (a listing being made), sending `keepalive()` every
/// [`KEEPALIVE`] meanwhile, so the other end sees progress.
pub async fn keep_alive_while<W, F, T>(
    w: &mut FrameWriter<W>,
    making: F,
    keepalive: impl Fn() -> Message,
) -> Result<T, ProtocolError>
where
    W: AsyncWrite + Unpin,
    F: Future<Output = T>,
{
    tokio::pin!(making);
    let mut tick = tokio::time::interval(KEEPALIVE);
    tick.reset(); // not at once
    loop {
        tokio::select! {
            done = &mut making => return Ok(done),
            _ = tick.tick() => w.send(keepalive()).await?,
        }
    }
}

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
    let delay = chunk_delay();
    while let Some(c) = chunks.next() {
        if !delay.is_zero() {
            w.flush().await?;
            tokio::time::sleep(delay).await;
        }
        let done = chunks.peek().is_none();
        w.feed(Message::InventoryChunk {
            entries: c.to_vec(),
            done,
        })
        .await?;
    }
    w.flush().await
}

/// An empty, unfinished chunk: "still making the inventory".
pub fn still_scanning() -> Message {
    Message::InventoryChunk {
        entries: vec![],
        done: false,
    }
}

/// Receives the chunks [`send`] wrote, giving up only when no chunk comes
/// for [`progress_deadline`].
pub async fn receive<R: AsyncRead + Unpin>(
    r: &mut FrameReader<R>,
) -> Result<Vec<InventoryEntry>, ProtocolError> {
    let mut all = Vec::new();
    loop {
        match next_message(r).await? {
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

/// The next message, if one comes within [`progress_deadline`].
pub async fn next_message<R: AsyncRead + Unpin>(
    r: &mut FrameReader<R>,
) -> Result<Message, ProtocolError> {
    let limit = progress_deadline();
    match tokio::time::timeout(limit, r.read_message()).await {
        Ok(m) => m,
        Err(_) => Err(ProtocolError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("nothing for {limit:?} in the middle of a listing"),
        ))),
    }
}
