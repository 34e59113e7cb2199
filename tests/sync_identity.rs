//! Files known by what they are, not by how they look (issue 10; CONTRACT.md,
//! "Synchronisation"): look-alike files swapped or moved onto each other, a
//! folder of photos moved into a folder made a moment before, a write
//! through one name of a hard link, and empty folders.

#![cfg(unix)] // hard links and permission bits as Unix has them

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lab3_tests::*;

/// The contract's 5 seconds, with slack for a loaded machine and a debug build.
const SECS: u64 = 10;
/// Reconnecting after a restart: A's backoff reaches 5 s.
const RECONNECT_SECS: u64 = 20;
/// An mtime well in the past (2023-11-14), with nanosecond digits.
const OLD: i64 = 1_700_000_000_123_456_789;
const KIB: usize = 1024;

/// `n` bytes that say which file they belong to.
fn content(tag: &str, n: usize) -> Vec<u8> {
    format!("{tag} ").bytes().cycle().take(n).collect()
}

/// Two look-alike files (equal size, mtime and mode, different bytes).
fn look_alikes(dir: &Path, names: [&str; 2]) -> [Vec<u8>; 2] {
    let bytes = names.map(|n| content(&format!("contents of {n}"), 4 * KIB));
    for (n, c) in names.iter().zip(&bytes) {
        let p = write_file(dir, n, c, Some(OLD));
        set_mode(&p, 0o644);
    }
    bytes
}

/// Waits until `dir` holds exactly `expect` (name, content), each the same
/// at both sides.
fn wait_exactly(pair: &Pair, dir: &Path, expect: &[(&str, &[u8])], what: &str) {
    let mut names: Vec<String> = expect.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    pair.wait(SECS, what, || {
        files_in(dir) == names
            && expect
                .iter()
                .all(|(n, c)| read(&dir.join(n)).as_deref() == Some(*c))
            && same_tree(&pair.dir_a, &pair.dir_b)
    });
}

/// Look-alike files swapped through a temporary name at `at`, then one
/// moved onto the other; then the same swap made while the other server
/// is down: the other side ends with exactly `at`'s contents every time,
/// also after both restart.
fn look_alikes_swapped_land_exactly(at: Side) {
    let mut pair = Pair::start_linked();
    let here = pair.dir(at).to_path_buf();
    let there = |pair: &Pair| pair.dir(at.other()).to_path_buf();
    let [c, d] = look_alikes(&here, ["c.dat", "d.dat"]);
    pair.wait_same_tree(SECS);

    // Swap c.dat and d.dat through a temporary name.
    std::fs::rename(here.join("c.dat"), here.join("swap.tmp")).unwrap();
    std::fs::rename(here.join("d.dat"), here.join("c.dat")).unwrap();
    std::fs::rename(here.join("swap.tmp"), here.join("d.dat")).unwrap();
    wait_exactly(
        &pair,
        &there(&pair),
        &[("c.dat", &d), ("d.dat", &c)],
        "the swapped contents at the other side",
    );
    // mv c.dat d.dat: d.dat now holds what c.dat held (d's first content).
    std::fs::rename(here.join("c.dat"), here.join("d.dat")).unwrap();
    wait_exactly(
        &pair,
        &there(&pair),
        &[("d.dat", &d)],
        "d.dat alone, with c.dat's contents, at the other side",
    );

    // Both restart: nothing flips back. (Once the mover has its answer:
    // the same files on disk do not yet mean the move is acknowledged.)
    pair.wait(SECS, "the mover's answers for c.dat and d.dat", || {
        let s = pair.server(at);
        s.said(&["renamed", "d.dat"])
            || (s.said(&["deleted", "c.dat"]) && s.said_count(&["updated", "d.dat"]) >= 2)
    });
    pair.restart(Side::B);
    pair.restart(Side::A);
    pair.wait_linked(RECONNECT_SECS);
    let steady = holds_for(Duration::from_millis(1500), || {
        read(&there(&pair).join("d.dat")).as_deref() == Some(d.as_slice())
            && files_in(&there(&pair)) == ["d.dat"]
    });
    assert!(
        steady,
        "the contents changed after a restart\n{}",
        pair.output()
    );

    // The same swap while the other server is away.
    let [e, f] = look_alikes(&here, ["e.dat", "f.dat"]);
    pair.wait_same(SECS, "e.dat");
    pair.wait_same(SECS, "f.dat");
    pair.kill(at.other());
    std::fs::rename(here.join("e.dat"), here.join("swap.tmp")).unwrap();
    std::fs::rename(here.join("f.dat"), here.join("e.dat")).unwrap();
    std::fs::rename(here.join("swap.tmp"), here.join("f.dat")).unwrap();
    pair.restart(at.other());
    pair.wait_linked(RECONNECT_SECS);
    wait_exactly(
        &pair,
        &there(&pair),
        &[("d.dat", &d), ("e.dat", &f), ("f.dat", &e)],
        "the swap made while it was away, at the other side",
    );
}

#[test]
fn look_alike_files_swapped_or_moved_onto_each_other_at_a_land_exactly_at_b() {
    look_alikes_swapped_land_exactly(Side::A);
}

#[test]
fn look_alike_files_swapped_or_moved_onto_each_other_at_b_land_exactly_at_a() {
    look_alikes_swapped_land_exactly(Side::B);
}

const PHOTOS: usize = 16;

/// `mkdir -p {to}/.. && mv {from} {to}` at `at`, with the other side
/// watched all along: each photo is at its old or its new path at every
/// look, and it arrives as a rename, never as a new file.
fn move_photos(pair: &Pair, at: Side, from: &str, to: &str) {
    let (here, there) = (pair.dir(at), pair.dir(at.other()));
    let photos: Vec<String> = (0..PHOTOS).map(|i| format!("photo-{i:02}.jpg")).collect();
    let done = AtomicBool::new(false);
    let missing = Mutex::new((0usize, Vec::<String>::new()));
    let mut looks = 0usize;
    std::thread::scope(|s| {
        s.spawn(|| {
            let start = Instant::now();
            while !done.load(Ordering::Relaxed) {
                for p in &photos {
                    // Old path first: a rename between the two looks is seen at the new one.
                    if !there.join(from).join(p).exists() && !there.join(to).join(p).exists() {
                        let mut missing = missing.lock().unwrap();
                        missing.0 += 1;
                        if missing.1.len() < 10 {
                            missing.1.push(format!("{p} after {:?}", start.elapsed()));
                        }
                    }
                }
                looks += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let _stop_on_panic = SetOnDrop(&done);
        std::fs::create_dir_all(here.join(to).parent().unwrap()).unwrap();
        std::fs::rename(here.join(from), here.join(to)).unwrap();
        let arrived = wait_until(Duration::from_secs(SECS), || {
            !there.join(from).exists()
                && photos
                    .iter()
                    .all(|p| same_file(&here.join(to).join(p), &there.join(to).join(p)))
        });
        done.store(true, Ordering::Relaxed);
        assert!(
            arrived,
            "the photos did not arrive at {to}/ at the other side\n{}",
            pair.output()
        );
    });
    let (missing, samples) = missing.into_inner().unwrap();
    assert!(
        missing == 0,
        "a photo was missing at the other side {missing} times in {looks} looks at all \
         {PHOTOS}, e.g. {samples:?}\n{}",
        pair.output()
    );
    let receiver = pair.server(at.other());
    pair.wait(SECS, "a 'renamed' line at the other side", || {
        receiver.said(&[at.arrow(), "renamed", to])
    });
    let resent: Vec<String> = [&pair.a, &pair.b]
        .iter()
        .flat_map(|s| s.lines_with(&["created", to]))
        .collect();
    assert!(
        resent.is_empty(),
        "the moved photos were sent again: {resent:?}\n{}",
        pair.output()
    );
}

#[test]
fn a_folder_of_photos_moved_into_a_new_folder_is_renamed_at_the_other_side_both_ways() {
    let pair = Pair::start_with(|a, _| {
        for i in 0..PHOTOS {
            let name = format!("photos/photo-{i:02}.jpg");
            write_file(a, &name, &content(&name, 512 * KIB), None);
        }
    });
    pair.wait_linked(RECONNECT_SECS);
    pair.wait_same_tree(RECONNECT_SECS);
    move_photos(&pair, Side::A, "photos", "n/sub/photos");
    move_photos(&pair, Side::B, "n/sub/photos", "m/sub/photos");
    pair.wait_same_tree(SECS);
}

/// A write in place through one name of a hard link made at `at` reaches
/// the other side for both names within the contract's 5 s.
fn a_write_through_one_hard_link_reaches_both_names(at: Side) {
    let pair = Pair::start_linked();
    let here = pair.dir(at);
    let (one, two) = ("linked-1.txt", "linked-2.txt");
    write_file(here, one, b"version 1", None);
    pair.wait_same(SECS, one);
    std::fs::hard_link(here.join(one), here.join(two)).unwrap();
    pair.wait_same(SECS, two);

    // Truncate and write: the same inode, so both names change.
    std::fs::write(here.join(one), b"version 2, written through one name").unwrap();
    assert_eq!(inode(&here.join(one)), inode(&here.join(two)));
    let there = pair.dir(at.other());
    pair.wait(5, "the write at the other side under both names", || {
        [one, two].iter().all(|n| {
            read(&there.join(n)).as_deref() == Some(b"version 2, written through one name")
        })
    });
    pair.wait_same(SECS, one);
    pair.wait_same(SECS, two);
}

#[test]
fn a_write_through_one_name_of_a_hard_link_at_a_reaches_b_for_both_names() {
    a_write_through_one_hard_link_reaches_both_names(Side::A);
}

#[test]
fn a_write_through_one_name_of_a_hard_link_at_b_reaches_a_for_both_names() {
    a_write_through_one_hard_link_reaches_both_names(Side::B);
}

#[test]
fn empty_folders_are_made_renamed_and_removed_at_the_other_side_both_ways() {
    let pair = Pair::start_linked();
    for side in [Side::A, Side::B] {
        let (here, there) = (pair.dir(side), pair.dir(side.other()));
        let new = format!("New Folder from {side:?}");
        let renamed = format!("Renamed from {side:?}");
        let folders = |list: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
            v.sort();
            v
        };
        std::fs::create_dir(here.join(&new)).unwrap();
        std::fs::create_dir(here.join(&new).join("inner")).unwrap();
        let inner = format!("{new}/inner");
        pair.wait(SECS, "the empty folders at the other side", || {
            folders_in(there) == folders(&[&new, &inner])
        });
        std::fs::rename(here.join(&new), here.join(&renamed)).unwrap();
        let inner = format!("{renamed}/inner");
        pair.wait(SECS, "the renamed empty folders at the other side", || {
            folders_in(there) == folders(&[&renamed, &inner])
        });
        std::fs::remove_dir(here.join(&inner)).unwrap();
        std::fs::remove_dir(here.join(&renamed)).unwrap();
        pair.wait(SECS, "the folders gone at the other side", || {
            folders_in(there).is_empty()
        });
        let quiet = holds_for(Duration::from_millis(1000), || {
            folders_in(&pair.dir_a).is_empty() && folders_in(&pair.dir_b).is_empty()
        });
        assert!(quiet, "a removed folder came back\n{}", pair.output());
    }
}
