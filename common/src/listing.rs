//! The composite listing: both sides' files merged into one sorted table.

use crate::connection::Connection;
use crate::meta::FileMeta;
use crate::protocol::{ListingRow, Message, PeerState, ENTRIES_PER_CHUNK};

/// Merges A's and B's files: one row per distinct path, sorted by path
/// (byte order), indexed from 0; where both sides hold a path the newer
/// copy's size and time are shown (A's on a tie). Scans come sorted, so
/// this is one pass over both (a million rows in a blink); unsorted input
/// is sorted first.
pub fn merge(a: &[FileMeta], b: &[FileMeta]) -> Vec<ListingRow> {
    let (a, b) = (sorted(a), sorted(b));
    let mut rows = Vec::with_capacity(a.len().max(b.len()));
    let (mut i, mut j) = (0, 0);
    loop {
        let (f, side) = match (a.get(i), b.get(j)) {
            (None, None) => break,
            (Some(x), Some(y)) if x.path == y.path => {
                i += 1;
                j += 1;
                (if y.mtime_ns > x.mtime_ns { y } else { x }, "both")
            }
            (Some(x), Some(y)) if x.path < y.path => {
                i += 1;
                (x, "a")
            }
            (Some(x), None) => {
                i += 1;
                (x, "a")
            }
            (_, Some(y)) => {
                j += 1;
                (y, "b")
            }
        };
        // A path listed twice by one side (not from a scan) counts once.
        if rows.last().is_some_and(|r: &ListingRow| r.name == f.path) {
            continue;
        }
        rows.push(ListingRow {
            index: rows.len(),
            name: f.path.clone(),
            size: f.size,
            mtime_ns: f.mtime_ns,
            location: side.to_string(),
            locked: false,
            queued: 0,
        });
    }
    rows
}

/// `files` sorted by path: borrowed as they are when they already are.
fn sorted(files: &[FileMeta]) -> std::borrow::Cow<'_, [FileMeta]> {
    if files.is_sorted_by(|x, y| x.path <= y.path) {
        std::borrow::Cow::Borrowed(files)
    } else {
        let mut v = files.to_vec();
        v.sort_by(|x, y| x.path.cmp(&y.path));
        std::borrow::Cow::Owned(v)
    }
}

/// Sends the listing `making` yields to a client in chunks of at most
/// [`ENTRIES_PER_CHUNK`] rows (at least one chunk; the last says `done`),
/// and, while it is being made (both folders scanned: seconds for a
/// million files), an empty unfinished chunk every
/// [`crate::inventory::KEEPALIVE`], so the one waiting sees progress.
/// Server A and Server B both answer listings this way.
pub async fn send_when_made(
    conn: &mut Connection,
    making: impl std::future::Future<Output = anyhow::Result<(PeerState, Vec<ListingRow>)>>,
) -> anyhow::Result<()> {
    let keepalive = || Message::ListingChunk {
        peer: PeerState::Connected,
        rows: Vec::new(),
        done: false,
    };
    let (peer, rows) =
        crate::inventory::keep_alive_while(&mut conn.writer, making, keepalive).await??;
    send(conn, peer, rows).await
}

/// Sends a listing to a client in chunks of at most [`ENTRIES_PER_CHUNK`]
/// rows (at least one chunk; the last says `done`).
pub async fn send(
    conn: &mut Connection,
    peer: PeerState,
    rows: Vec<ListingRow>,
) -> anyhow::Result<()> {
    let mut chunks = rows.chunks(ENTRIES_PER_CHUNK).peekable();
    loop {
        let c = chunks.next().unwrap_or(&[]);
        let done = chunks.peek().is_none();
        conn.writer
            .feed(Message::ListingChunk {
                peer,
                rows: c.to_vec(),
                done,
            })
            .await?;
        if done {
            break;
        }
    }
    conn.writer.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str, size: u64, mtime_ns: i64) -> FileMeta {
        FileMeta {
            path: path.into(),
            size,
            mtime_ns,
            mode: 0o644,
        }
    }

    #[test]
    fn merges_unsorted_input_and_duplicates() {
        let a = [f("z", 1, 1), f("m", 2, 2), f("m", 2, 2)];
        let b = [f("m", 3, 3), f("a", 4, 4)];
        let got: Vec<_> = merge(&a, &b)
            .into_iter()
            .map(|r| (r.index, r.name, r.size, r.location))
            .collect();
        assert_eq!(
            got,
            [
                (0, "a".to_string(), 4, "b".to_string()),
                (1, "m".into(), 3, "both".into()),
                (2, "z".into(), 1, "a".into())
            ]
        );
    }

    #[test]
    fn merges_sorts_and_prefers_newer() {
        let a = [f("b.txt", 1, 10), f("both.txt", 5, 100)];
        let b = [f("a.txt", 2, 20), f("both.txt", 7, 200)];
        let rows = merge(&a, &b);
        let got: Vec<_> = rows
            .iter()
            .map(|r| (r.index, r.name.as_str(), r.size, r.location.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (0, "a.txt", 2, "b"),
                (1, "b.txt", 1, "a"),
                (2, "both.txt", 7, "both")
            ]
        );
    }
}
