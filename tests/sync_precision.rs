//! A folder on a file system that keeps whole-second mtimes (issue 10;
//! CONTRACT.md, "Synchronisation": a difference finer than the coarser side
//! keeps is no change, so nothing echoes back and no side loses its own
//! digits).
//!
//! The coarse folder is a loop-mounted ext4 made with `mkfs.ext4 -I 128`
//! (128-byte inodes have no room for nanoseconds). That needs root, a loop
//! device and mkfs.ext4 (`scripts/test-deps.sh` installs it, and is run
//! here when it is missing), so the tests are `#[ignore]`d: a plain `cargo
//! test` lists them as ignored, and `.ci/run`, as root, runs them with
//! `--ignored`, where they fail if they cannot mount.

#![cfg(target_os = "linux")] // loop devices and mkfs.ext4 are Linux

use std::path::Path;
use std::time::Duration;

use lab3_tests::mounts::Mount;
use lab3_tests::*;

/// The contract's 5 seconds, with slack for a loaded machine and a debug build.
const SECS: u64 = 10;
/// Reconnecting after a restart: A's backoff reaches 5 s.
const RECONNECT_SECS: u64 = 20;
/// An mtime well in the past (2023-11-14), with nanosecond digits.
const OLD: i64 = 1_700_000_000_123_456_789;
const SEC: i64 = 1_000_000_000;

/// `ns` cut to whole seconds, as the coarse file system stores it.
fn whole_seconds(ns: i64) -> i64 {
    ns - ns.rem_euclid(SEC)
}

/// A file's inode and mtime, to tell an untouched file from a rewritten one.
fn identity(p: &Path) -> (Option<u64>, Option<i64>) {
    (inode(p), mtime_ns(p))
}

/// The folder of `coarse` is on the whole-second ext4, the other on the
/// usual file system: a file made at either side arrives at the other, and
/// then nothing moves: no file is sent back, rewritten or re-dated.
fn nothing_echoes_with_a_whole_second_folder_at(coarse: Side) {
    // Declared first, dropped last: unmounted after the servers are gone.
    let mount_root = tempfile::tempdir().unwrap();
    let mnt = mount_root.path().join("ext4-128");
    // 128-byte inodes have no room for nanoseconds.
    let _disk = Mount::ext4(mount_root.path(), &mnt, &["-I", "128"])
        .unwrap_or_else(|why| panic!("cannot loop-mount an ext4 with whole-second mtimes: {why}"));
    let probe = write_file(&mnt, "probe", b"", Some(OLD));
    assert_eq!(
        mtime_ns(&probe),
        Some(whole_seconds(OLD)),
        "the ext4 made with -I 128 should keep whole seconds"
    );
    std::fs::remove_file(&probe).unwrap();

    let root = tempfile::tempdir().unwrap();
    let (coarse_dirs, fine_dirs) = (
        [mnt.join("directory"), mnt.join("state")],
        [root.path().join("directory"), root.path().join("state")],
    );
    let [dir_a, state_a, dir_b, state_b] = match coarse {
        Side::A => [&coarse_dirs[..], &fine_dirs[..]].concat(),
        Side::B => [&fine_dirs[..], &coarse_dirs[..]].concat(),
    }
    .try_into()
    .unwrap();
    // Rescans every second, so that a difference they see would show too.
    let pair = Pair::start_at(
        root,
        [dir_a, state_a, dir_b, state_b],
        &["--rescan-secs", "1"],
    );
    pair.wait_linked(RECONNECT_SECS);
    let fine = coarse.other();

    let made_fine = write_file(pair.dir(fine), "from-fine.txt", b"made with ns", Some(OLD));
    let made_fine_was = identity(&made_fine);
    assert_eq!(made_fine_was.1, Some(OLD));
    let landed_coarse = pair.dir(coarse).join("from-fine.txt");
    pair.wait(SECS, "the fine side's file at the coarse side", || {
        read(&landed_coarse).as_deref() == Some(b"made with ns")
            && mtime_ns(&landed_coarse) == Some(whole_seconds(OLD))
    });
    let made_coarse = write_file(
        pair.dir(coarse),
        "from-coarse.txt",
        b"made in whole seconds",
        Some(OLD + 5 * SEC),
    );
    let made_coarse_was = identity(&made_coarse);
    let landed_fine = pair.dir(fine).join("from-coarse.txt");
    pair.wait(SECS, "the coarse side's file at the fine side", || {
        read(&landed_fine).as_deref() == Some(b"made in whole seconds")
            && mtime_ns(&landed_fine) == mtime_ns(&made_coarse)
    });

    let echoes = || -> Vec<String> {
        [&pair.a, &pair.b]
            .iter()
            .flat_map(|s| {
                let mut v = s.lines_with(&[coarse.arrow(), "from-fine.txt"]);
                v.extend(s.lines_with(&[fine.arrow(), "from-coarse.txt"]));
                v
            })
            .collect()
    };
    // Each file as its maker left it: its own digits, its own inode.
    let kept_own = |what: &str| {
        let fine_now = identity(&made_fine);
        let coarse_now = identity(&made_coarse);
        assert!(
            fine_now == made_fine_was && coarse_now == made_coarse_was && echoes().is_empty(),
            "{what}: a file went back to the side that made it\n\
             (inode, mtime) at the fine side: {fine_now:?}, made as {made_fine_was:?}\n\
             at the coarse side: {coarse_now:?}, made as {made_coarse_was:?}\n\
             echoes: {:?}\n{}",
            echoes(),
            pair.output()
        );
    };
    kept_own("on arrival");
    // Then three rescans: nothing moves at either side.
    let files = [&made_fine, &landed_coarse, &made_coarse, &landed_fine];
    let before: Vec<_> = files.iter().map(|p| identity(p)).collect();
    let still = holds_for(Duration::from_millis(3500), || {
        echoes().is_empty() && files.iter().map(|p| identity(p)).collect::<Vec<_>>() == before
    });
    let after: Vec<_> = files.iter().map(|p| identity(p)).collect();
    assert!(
        still,
        "a file changed after it arrived\n(inode, mtime) of {files:?}\n\
         before: {before:?}\nafter:  {after:?}\n{}",
        pair.output()
    );
    kept_own("three rescans later");
}

#[test]
#[ignore = "needs root, a loop device and mkfs.ext4 (scripts/test-deps.sh): run with --ignored, as .ci/run does"]
fn nothing_echoes_with_a_whole_second_folder_at_b() {
    nothing_echoes_with_a_whole_second_folder_at(Side::B);
}

#[test]
#[ignore = "needs root, a loop device and mkfs.ext4 (scripts/test-deps.sh): run with --ignored, as .ci/run does"]
fn nothing_echoes_with_a_whole_second_folder_at_a() {
    nothing_echoes_with_a_whole_second_folder_at(Side::A);
}
