//! True conflicts: both sides change a file while the link is down
//! (CONTRACT.md, "Synchronisation": the later modification time wins; and
//! the engine keeps the losing copy under `<state>/conflicts/<time>/<path>`
//! and announces a 'conflict' line, docs/PROTOCOL.md "Conflicts").

use std::path::Path;

use lab3_tests::*;

/// The contract's 5 seconds, with slack for a loaded machine and a debug build.
const SECS: u64 = 10;
/// Reconnecting after a restart: A's backoff reaches 5 s.
const RECONNECT_SECS: u64 = 20;
/// An mtime well in the past (2023-11-14), with nanosecond digits.
const OLD: i64 = 1_700_000_000_123_456_789;
const SEC: i64 = 1_000_000_000;

/// The contents of every kept copy of `rel` under `<state>/conflicts/*/`.
fn kept_copies(state: &Path, rel: &str) -> Vec<Vec<u8>> {
    let Ok(stamps) = std::fs::read_dir(state.join("conflicts")) else {
        return Vec::new();
    };
    stamps
        .map_while(Result::ok)
        .filter_map(|s| read(&s.path().join(rel)))
        .collect()
}

#[test]
fn both_sides_edited_while_apart_the_newer_wins_and_the_loser_keeps_its_copy() {
    let mut pair = Pair::start_with(|a, _| {
        write_file(a, "b-wins.txt", b"original", Some(OLD));
        write_file(a, "docs/a-wins.txt", b"original", Some(OLD));
    });
    pair.wait_same_tree(RECONNECT_SECS);
    pair.wait_journaled(RECONNECT_SECS);

    pair.b.kill();
    // b-wins.txt: A's edit is older than B's; docs/a-wins.txt: the reverse.
    pair.put(
        &pair.dir_a,
        "b-wins.txt",
        b"A's edit (older)",
        OLD + 10 * SEC,
    );
    pair.put(
        &pair.dir_b,
        "b-wins.txt",
        b"B's edit (newer)",
        OLD + 20 * SEC,
    );
    pair.put(
        &pair.dir_a,
        "docs/a-wins.txt",
        b"A's edit (newer)",
        OLD + 20 * SEC,
    );
    pair.put(
        &pair.dir_b,
        "docs/a-wins.txt",
        b"B's edit (older)",
        OLD + 10 * SEC,
    );
    pair.restart_b();

    pair.wait_same(RECONNECT_SECS, "b-wins.txt");
    pair.wait_same(SECS, "docs/a-wins.txt");
    for dir in [&pair.dir_a, &pair.dir_b] {
        assert_eq!(
            read(&dir.join("b-wins.txt")).unwrap(),
            b"B's edit (newer)",
            "{}",
            dir.display()
        );
        assert_eq!(mtime_ns(&dir.join("b-wins.txt")), Some(OLD + 20 * SEC));
        assert_eq!(
            read(&dir.join("docs/a-wins.txt")).unwrap(),
            b"A's edit (newer)"
        );
    }
    // The losing versions are kept at the side that lost, and said.
    pair.wait(SECS, "A's losing copy in A's conflicts folder", || {
        kept_copies(&pair.state_a, "b-wins.txt") == [b"A's edit (older)".to_vec()]
    });
    pair.wait(SECS, "B's losing copy in B's conflicts folder", || {
        kept_copies(&pair.state_b, "docs/a-wins.txt") == [b"B's edit (older)".to_vec()]
    });
    pair.wait(SECS, "'conflict' lines for both files", || {
        (pair.a.said(&["conflict", "b-wins.txt"]) || pair.b.said(&["conflict", "b-wins.txt"]))
            && (pair.a.said(&["conflict", "docs/a-wins.txt"])
                || pair.b.said(&["conflict", "docs/a-wins.txt"]))
    });
    // Nothing of the conflict shows in the folders themselves.
    assert_eq!(files_in(&pair.dir_a), ["b-wins.txt", "docs/a-wins.txt"]);
    assert!(same_tree(&pair.dir_a, &pair.dir_b));
}

#[test]
fn an_edit_on_one_side_only_is_no_conflict() {
    let mut pair = Pair::start_with(|a, _| {
        write_file(a, "notes.txt", b"original", Some(OLD));
    });
    pair.wait_same_tree(RECONNECT_SECS);
    pair.wait_journaled(RECONNECT_SECS);
    pair.b.kill();
    pair.put(&pair.dir_a, "notes.txt", b"edited at A", OLD + SEC);
    pair.restart_b();
    pair.wait(RECONNECT_SECS, "A's edit at B", || {
        read(&pair.dir_b.join("notes.txt")).as_deref() == Some(b"edited at A".as_slice())
    });
    pair.wait_same(SECS, "notes.txt");
    assert!(kept_copies(&pair.state_a, "notes.txt").is_empty());
    assert!(kept_copies(&pair.state_b, "notes.txt").is_empty());
    assert!(
        !pair.a.said(&["conflict"]) && !pair.b.said(&["conflict"]),
        "a conflict was reported\n{}",
        pair.output()
    );
}
