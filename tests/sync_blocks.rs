//! Big files that change a little go block by block (issue 15): a block
//! changed in the middle, an insertion, a truncation and growth each land
//! exactly, and the file bytes that crossed the link (the servers' own
//! counters, `lab3 status --json`) are a small part of the file.

use std::io::{Seek, SeekFrom, Write};

use lab3_tests::*;

/// The contract's 5 seconds, with slack for a loaded machine and a debug build.
const SECS: u64 = 20;
const MIB: usize = 1024 * 1024;
/// The test file: 8 MiB, so blocks of 128 KiB (64 of them).
const SIZE: usize = 8 * MIB;
const BLOCK: u64 = 128 * 1024;

/// One of Server A's link counters (`sent_bytes`, `received_bytes`,
/// `reused_bytes`).
fn counter(pair: &Pair, name: &str) -> u64 {
    let out = assert_ok(&pair.lab3(&["status", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    doc["link"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no link.{name} in {doc}"))
}

/// Waits until `path` holds exactly `want` on both sides and A's counter
/// `name` moved; how far it moved.
fn landed(pair: &Pair, want: &[u8], name: &str, before: u64) -> u64 {
    pair.wait(SECS, "the change to land on the other side", || {
        read(&pair.dir_a.join("big.bin")).as_deref() == Some(want)
            && read(&pair.dir_b.join("big.bin")).as_deref() == Some(want)
    });
    pair.wait_same(SECS, "big.bin");
    let mut now = before;
    pair.wait(SECS, &format!("A's {name} to count the transfer"), || {
        now = counter(pair, name);
        now > before
    });
    now - before
}

/// Overwrites `dir/big.bin` in place with `content` (as a program that
/// rewrites its file does), its mtime moved on.
fn rewrite(dir: &std::path::Path, content: &[u8]) {
    std::fs::write(dir.join("big.bin"), content).unwrap();
}

#[test]
fn a_big_file_that_changes_a_little_sends_little() {
    let pair = Pair::start_linked();
    let mut file = noise(SIZE, 1);
    rewrite(&pair.dir_a, &file);
    let whole = landed(&pair, &file, "sent_bytes", 0);
    assert_eq!(whole, SIZE as u64, "a new file goes whole");

    // A block changed in the middle, in place (a database page).
    let before = counter(&pair, "sent_bytes");
    let at = 4 * MIB + 12_345;
    file[at..at + 1000].copy_from_slice(&noise(1000, 2));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(pair.dir_a.join("big.bin"))
        .unwrap();
    f.seek(SeekFrom::Start(at as u64)).unwrap();
    f.write_all(&file[at..at + 1000]).unwrap();
    drop(f);
    let sent = landed(&pair, &file, "sent_bytes", before);
    assert!(sent <= 2 * BLOCK, "a changed block: sent {sent} bytes");

    // An insertion of a few bytes: everything after it shifts.
    let before = counter(&pair, "sent_bytes");
    let at = 3 * MIB + 777;
    file.splice(at..at, noise(5000, 3));
    rewrite(&pair.dir_a, &file);
    let sent = landed(&pair, &file, "sent_bytes", before);
    assert!(
        sent <= 2 * BLOCK + 5000,
        "an insertion: sent {sent} bytes of {}",
        file.len()
    );

    // A truncation.
    let before = counter(&pair, "sent_bytes");
    file.truncate(5 * MIB + 1234);
    std::fs::OpenOptions::new()
        .write(true)
        .open(pair.dir_a.join("big.bin"))
        .unwrap()
        .set_len(file.len() as u64)
        .unwrap();
    let sent = landed(&pair, &file, "sent_bytes", before);
    assert!(sent <= BLOCK, "a truncation: sent {sent} bytes");

    // Growth, the other way (a log appended to at B): only the tail
    // crosses, and A takes the rest from its own copy.
    let (before, reused_before) = (
        counter(&pair, "received_bytes"),
        counter(&pair, "reused_bytes"),
    );
    let tail = noise(MIB, 4);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(pair.dir_b.join("big.bin"))
        .unwrap();
    f.write_all(&tail).unwrap();
    drop(f);
    let old_len = file.len() as u64;
    file.extend_from_slice(&tail);
    let got = landed(&pair, &file, "received_bytes", before);
    assert_eq!(got, tail.len() as u64, "growth: only the tail crosses");
    let reused = counter(&pair, "reused_bytes") - reused_before;
    assert_eq!(reused, old_len, "growth: A reuses all it had");
    assert!(
        pair.b.logged(&["sent big.bin", "over the link"]),
        "B logs what it saved\n{}",
        pair.output()
    );
    // Each delta after the first was planned against the block list a
    // side worked out for the file it built last (`blocks::Reuse`), not
    // read again: a wrong one would have rebuilt a file whose hash does
    // not match, refused and sent again.
    for server in [&pair.a, &pair.b] {
        assert!(
            !server.said(&["does not match"]) && !server.logged(&["does not match"]),
            "a rebuilt file did not match\n{}",
            pair.output()
        );
    }
}

/// A small file, and a big one the receiver does not have, go whole.
#[test]
fn small_and_new_files_go_whole() {
    let pair = Pair::start_linked();
    let small = noise(100_000, 5);
    std::fs::write(pair.dir_a.join("big.bin"), &small).unwrap();
    assert_eq!(landed(&pair, &small, "sent_bytes", 0), small.len() as u64);
    let before = counter(&pair, "sent_bytes");
    let mut changed = small.clone();
    changed[50_000] ^= 1;
    std::fs::write(pair.dir_a.join("big.bin"), &changed).unwrap();
    assert_eq!(
        landed(&pair, &changed, "sent_bytes", before),
        small.len() as u64,
        "under 1 MiB a file goes whole"
    );
}
