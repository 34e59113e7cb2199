//! The composite listing: both sides' files merged into one sorted table.

use std::collections::BTreeMap;

use crate::connection::Connection;
use crate::meta::FileMeta;
use crate::protocol::{ListingRow, Message, PeerState, ENTRIES_PER_CHUNK};

/// Merges A's and B's files: one row per distinct path, sorted by path
/// (byte order), indexed from 0; where both sides hold a path the newer
/// copy's size and time are shown (A's on a tie).
pub fn merge(a: &[FileMeta], b: &[FileMeta]) -> Vec<ListingRow> {
    let mut rows: BTreeMap<&str, (&FileMeta, &'static str)> = BTreeMap::new();
    for f in a {
        rows.insert(&f.path, (f, "a"));
    }
    for f in b {
        rows.entry(&f.path)
            .and_modify(|(shown, side)| {
                *side = "both";
                if f.mtime_ns > shown.mtime_ns {
                    *shown = f;
                }
            })
            .or_insert((f, "b"));
    }
    rows.into_values()
        .enumerate()
        .map(|(index, (f, side))| ListingRow {
            index,
            name: f.path.clone(),
            size: f.size,
            mtime_ns: f.mtime_ns,
            location: side.to_string(),
            locked: false,
            queued: 0,
        })
        .collect()
}

/// Sends a listing to a client in chunks of at most [`ENTRIES_PER_CHUNK`]
/// rows (at least one chunk; the last says `done`). Server A and Server B
/// both answer listings this way.
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
