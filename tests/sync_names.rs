//! Names and modes across file systems (issue 11; CONTRACT.md,
//! "Synchronisation": names sync wherever the receiving file system can
//! store them; a name it cannot store is reported once, on both consoles
//! and in `lab3 status`, retried only when it changes, and never
//! overwrites another file; permission bits travel between systems that
//! have them, a side without them never changes the other's, and setuid,
//! setgid and sticky bits never travel).
//!
//! The folder that cannot hold every name is a FAT image mounted through
//! FUSE (`fusefat`, made with `mkfs.fat`): case-insensitive, no permission
//! bits, and it refuses the characters Windows refuses. That needs root and
//! /dev/fuse (`scripts/test-deps.sh` installs the tools), so those tests
//! are `#[ignore]`d: a plain `cargo test` lists them as ignored, and
//! `.ci/run`, as root, runs them with `--ignored`, where they fail if they
//! cannot mount. A case-folding ext4 (`mkfs.ext4 -O casefold`, then
//! `chattr +F`), which also takes NFC and NFD names for one, needs a kernel
//! built with it: that test is ignored, and not run by `.ci/run` (this
//! machine's kernel lacks it). The mounts come from `lab3_tests::mounts`.

#![cfg(target_os = "linux")] // FUSE, loop devices, mkfs

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lab3_tests::mounts::{self, Mount};
use lab3_tests::*;

/// The contract's 5 seconds, with slack for a loaded machine and a debug build.
const SECS: u64 = 10;
const LINK_SECS: u64 = 20;

/// The names directly in `dir`, exactly as the file system stores them.
fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with(".lab3-"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `lab3 status --json`, parsed.
fn status(pair: &Pair) -> serde_json::Value {
    let out = pair.lab3(&["status", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The names `lab3 status` lists as not synced: (path, side holding it).
fn unsynced(pair: &Pair) -> Vec<(String, String)> {
    let doc = status(pair);
    doc["names"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| {
                    (
                        n["path"].as_str().unwrap().to_string(),
                        n["side"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_colon_and_a_backslash_are_ordinary_between_two_linux_servers() {
    let pair = Pair::start_linked();
    let odd = ["a:b.txt", "back\\slash.txt", "q?.txt", "CON", "trailing."];
    for name in odd {
        write_file(&pair.dir_a, name, name.as_bytes(), None);
    }
    write_file(&pair.dir_b, "from\\b:side.txt", b"b", None);
    for name in odd {
        pair.wait_same(SECS, name);
    }
    pair.wait_same(SECS, "from\\b:side.txt");
    // Listed, each once, by both servers together.
    let doc = pair.listing();
    let listed = names(&doc);
    for name in odd.iter().chain(&["from\\b:side.txt"]) {
        assert_eq!(
            listed.iter().filter(|n| n == name).count(),
            1,
            "{name} in {listed:?}"
        );
        assert_eq!(row(&doc, name)["where"], "both", "{name}");
    }
    assert_eq!(pair.a.said_count(&["refused"]), 0, "{}", pair.output());
    assert_eq!(pair.b.said_count(&["refused"]), 0, "{}", pair.output());
    assert!(unsynced(&pair).is_empty());
}

#[test]
fn modes_travel_and_setuid_setgid_sticky_do_not() {
    let pair = Pair::start_linked();
    for (name, m) in [("private", 0o600), ("script", 0o755), ("readonly", 0o444)] {
        let p = write_file(&pair.dir_a, name, name.as_bytes(), None);
        set_mode(&p, m);
    }
    let special = write_file(&pair.dir_a, "setuid", b"s", None);
    set_mode(&special, 0o4755);
    let sticky = write_file(&pair.dir_b, "sticky", b"t", None);
    set_mode(&sticky, 0o1777);
    for (name, m) in [("private", 0o600), ("script", 0o755), ("readonly", 0o444)] {
        pair.wait_same(SECS, name);
        assert_eq!(mode(&pair.dir_b.join(name)), Some(m), "{name}");
    }
    // Each file was made, then given its mode: two changes, which may reach
    // the other side one after the other. Wait for the mode, not the file.
    let at_b = pair.dir_b.join("setuid");
    let at_a = pair.dir_a.join("sticky");
    pair.wait(SECS, "setuid at B as 0755", || mode(&at_b) == Some(0o755));
    pair.wait(SECS, "sticky at A as 0777", || mode(&at_a) == Some(0o777));
    // A change of mode alone travels back, and nothing echoes.
    set_mode(&pair.dir_b.join("private"), 0o640);
    pair.wait(SECS, "the new mode at A", || {
        mode(&pair.dir_a.join("private")) == Some(0o640)
    });
    // The special bits left at their own side stay there.
    assert_eq!(mode(&special), Some(0o4755));
    assert_eq!(mode(&sticky), Some(0o1777));
}

// ------------------------------------------------------- a FAT folder

/// Server B's folder on FAT, A's on the usual file system.
fn pair_with_fat_b(mount_root: &Path) -> (Mount, Pair) {
    let mnt = mount_root.join("fat");
    let fat = fat_at(mount_root, &mnt);
    let root = tempfile::tempdir().unwrap();
    let dirs = [
        root.path().join("directory_a"),
        root.path().join("state_a"),
        mnt.join("directory_b"),
        root.path().join("state_b"),
    ];
    let pair = Pair::start_at(root, dirs, &["--rescan-secs", "1"]);
    pair.wait_linked(LINK_SECS);
    (fat, pair)
}

/// A FAT image mounted at `at`; a test that cannot have one fails, saying
/// why (these tests are `#[ignore]`d where they cannot run).
fn fat_at(scratch: &Path, at: &Path) -> Mount {
    Mount::fat(scratch, at).unwrap_or_else(|why| panic!("cannot mount a FAT folder: {why}"))
}

#[test]
#[ignore = "needs root, /dev/fuse, mkfs.fat and fusefat (scripts/test-deps.sh): run with --ignored, as .ci/run does"]
fn a_fat_folder_refuses_what_it_cannot_hold_once_and_overwrites_nothing() {
    let mount_root = tempfile::tempdir().unwrap();
    let (_fat, pair) = pair_with_fat_b(mount_root.path());
    let (a, b) = (&pair.dir_a, &pair.dir_b);
    write_file(a, "X.txt", b"upper", None);
    pair.wait(SECS, "X.txt at B", || {
        read(&b.join("X.txt")).as_deref() == Some(b"upper")
    });
    write_file(a, "x.txt", b"lower", None);
    write_file(a, "q?.txt", b"q", None);
    let ok = write_file(a, "ok.txt", b"ok", None);
    set_mode(&ok, 0o600);
    pair.wait(SECS, "ok.txt at B", || {
        read(&b.join("ok.txt")).as_deref() == Some(b"ok")
    });
    let said = |s: &Server, name: &str| s.said_count(&["refused", &format!(" {name} ")]);
    pair.wait(SECS, "both refusals on both consoles", || {
        ["x.txt", "q?.txt"]
            .iter()
            .all(|n| said(&pair.a, n) >= 1 && said(&pair.b, n) >= 1)
    });
    let mut listed = unsynced(&pair);
    listed.sort();
    assert_eq!(
        listed,
        [
            ("q?.txt".to_string(), "A".to_string()),
            ("x.txt".to_string(), "A".to_string())
        ],
        "{}",
        pair.output()
    );
    let shown = text(&pair.lab3(&["status"]).stdout);
    assert!(
        shown.contains("Names not synced") && shown.contains("x.txt (at A)"),
        "{shown}"
    );
    // Rescans every second: nothing is retried, said again or written over.
    let stays = holds_for(Duration::from_millis(3500), || {
        read(&b.join("X.txt")).as_deref() == Some(b"upper")
            && names_in(b) == ["X.txt", "ok.txt"]
            && ["x.txt", "q?.txt"]
                .iter()
                .all(|n| said(&pair.a, n) == 1 && said(&pair.b, n) == 1)
    });
    assert!(
        stays,
        "B holds {:?}, X.txt there holds {:?}\n{}",
        names_in(b),
        read(&b.join("X.txt")).map(|c| text(&c)),
        pair.output()
    );
    assert_eq!(read(&a.join("x.txt")).as_deref(), Some(&b"lower"[..]));
    assert_eq!(read(&a.join("X.txt")).as_deref(), Some(&b"upper"[..]));

    // B has no permission bits: its edit reaches A and leaves A's mode.
    std::fs::write(b.join("ok.txt"), b"edited at B").unwrap();
    pair.wait(SECS, "B's edit at A", || {
        read(&a.join("ok.txt")).as_deref() == Some(b"edited at B")
    });
    assert_eq!(mode(&a.join("ok.txt")), Some(0o600));

    // A case-only rename at A renames at B.
    write_file(a, "rename me.txt", b"one file", None);
    pair.wait(SECS, "the file to rename at B", || {
        names_in(b).contains(&"rename me.txt".to_string())
    });
    std::fs::rename(a.join("rename me.txt"), a.join("Rename Me.txt")).unwrap();
    pair.wait(SECS, "the new letter case at B", || {
        let at_b = names_in(b);
        at_b.contains(&"Rename Me.txt".to_string()) && !at_b.contains(&"rename me.txt".to_string())
    });
    assert_eq!(
        read(&b.join("Rename Me.txt")).as_deref(),
        Some(&b"one file"[..])
    );
    let stays = holds_for(Duration::from_millis(2500), || {
        names_in(a).contains(&"Rename Me.txt".to_string())
            && !names_in(a).contains(&"rename me.txt".to_string())
    });
    assert!(stays, "A now holds {:?}\n{}", names_in(a), pair.output());

    // Once X.txt is gone from both, x.txt fits and goes.
    std::fs::remove_file(a.join("X.txt")).unwrap();
    pair.wait(SECS, "x.txt at B in X.txt's place", || {
        names_in(b).contains(&"x.txt".to_string())
            && !names_in(b).contains(&"X.txt".to_string())
            && read(&b.join("x.txt")).as_deref() == Some(b"lower")
    });
    pair.wait(SECS, "x.txt off the status", || {
        unsynced(&pair) == [("q?.txt".to_string(), "A".to_string())]
    });
}

#[test]
#[ignore = "needs root, /dev/fuse, mkfs.fat and fusefat (scripts/test-deps.sh): run with --ignored, as .ci/run does"]
fn a_name_made_at_a_fat_side_that_clashes_at_first_meeting_keeps_both_files() {
    // B (FAT) holds NOTES.txt, A holds notes.txt, before they ever met:
    // A gets B's file too; B keeps its own and reports A's.
    let mount_root = tempfile::tempdir().unwrap();
    let mnt = mount_root.path().join("fat");
    let _fat = fat_at(mount_root.path(), &mnt);
    let root = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (root.path().join("directory_a"), mnt.join("directory_b"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    write_file(&dir_a, "notes.txt", b"made at A", None);
    write_file(&dir_b, "NOTES.txt", b"made at B", None);
    let dirs = [
        dir_a.clone(),
        root.path().join("state_a"),
        dir_b.clone(),
        root.path().join("state_b"),
    ];
    let pair = Pair::start_at(root, dirs, &["--rescan-secs", "1"]);
    pair.wait(LINK_SECS, "B's file at A and A's refused", || {
        read(&dir_a.join("NOTES.txt")).as_deref() == Some(b"made at B")
            && pair.b.said_count(&["refused", " notes.txt "]) == 1
    });
    assert_eq!(
        read(&dir_a.join("notes.txt")).as_deref(),
        Some(&b"made at A"[..])
    );
    assert_eq!(names_in(&dir_b), ["NOTES.txt"]);
    assert_eq!(
        read(&dir_b.join("NOTES.txt")).as_deref(),
        Some(&b"made at B"[..])
    );
    assert_eq!(
        unsynced(&pair),
        [("notes.txt".to_string(), "A".to_string())]
    );
}

// ------------------------------------------- a case-folding ext4

#[test]
#[ignore = "needs root, a loop device and a kernel with ext4 casefold (CONFIG_UNICODE), which this machine's kernel lacks"]
fn a_casefold_ext4_takes_nfc_and_nfd_for_one_name_and_refuses_the_second() {
    let mount_root = tempfile::tempdir().unwrap();
    let mnt = mount_root.path().join("ext4");
    let _casefold = Mount::casefold(mount_root.path(), &mnt)
        .unwrap_or_else(|why| panic!("cannot mount a case-folding ext4: {why}"));
    let dir_b = mnt.join("directory_b");
    std::fs::create_dir_all(&dir_b).unwrap();
    mounts::run(Command::new("chattr").arg("+F").arg(&dir_b)).unwrap();
    let root = tempfile::tempdir().unwrap();
    let dirs = [
        root.path().join("directory_a"),
        root.path().join("state_a"),
        dir_b.clone(),
        root.path().join("state_b"),
    ];
    let pair = Pair::start_at(root, dirs, &["--rescan-secs", "1"]);
    pair.wait_linked(LINK_SECS);
    let (nfc, nfd) = ("caf\u{e9}.txt", "cafe\u{301}.txt");
    write_file(&pair.dir_a, nfc, b"composed", None);
    pair.wait(SECS, "the NFC name at B", || {
        read(&dir_b.join(nfc)).as_deref() == Some(b"composed")
    });
    write_file(&pair.dir_a, nfd, b"decomposed", None);
    write_file(&pair.dir_a, "Case.txt", b"C", None);
    write_file(&pair.dir_a, "case.txt", b"c", None);
    pair.wait(SECS, "the NFD name refused at both", || {
        pair.a.said_count(&["refused", "Unicode"]) == 1
            && pair.b.said_count(&["refused", "Unicode"]) == 1
            && pair.a.said_count(&["refused", "letter case"]) == 1
    });
    assert_eq!(read(&dir_b.join(nfc)).as_deref(), Some(&b"composed"[..]));
    assert_eq!(names_in(&dir_b).len(), 2, "{:?}", names_in(&dir_b));
}
