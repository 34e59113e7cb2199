//! Faults at the receiving side: a full disk and a folder it may not write
//! to. The file is refused with a clear 'error' line, the old copy stays as
//! it was, nothing partial shows in the folder, the file is asked for again
//! every 3 s, and once the fault is gone both sides converge.
//!
//! Both need root (to mount a small tmpfs, and to run Server B as another
//! user, since root ignores permission bits), so both are `#[ignore]`d: a
//! plain `cargo test` lists them as ignored, and `.ci/run`, as root, runs
//! them with `--ignored`, where each fails, saying why, if it cannot do
//! what it needs (never a silent pass). User `nobody` runs a copy of
//! `server_b` placed in the test's own scratch folder, so a checkout under
//! a private home does not stand in the way.
#![cfg(target_os = "linux")] // tmpfs mounts (lab3_tests::mounts), users and permission bits

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use lab3_tests::mounts::{is_root, Mount};
use lab3_tests::*;

/// The contract's 5 seconds, with slack for a loaded machine and a debug build.
const SECS: u64 = 10;
/// Long enough for two retries (every 3 s) and a reconnect.
const RETRY_SECS: u64 = 20;
const MIB: usize = 1024 * 1024;

/// `n` bytes that say which version they are.
fn content(tag: &str, n: usize) -> Vec<u8> {
    let line = format!("{tag} ");
    line.as_bytes().iter().copied().cycle().take(n).collect()
}

#[test]
#[ignore = "needs root to mount a small tmpfs: run with --ignored, as .ci/run does"]
fn a_file_that_does_not_fit_at_b_is_an_error_the_old_copy_stays_and_it_comes_once_there_is_room() {
    assert!(
        is_root(),
        "mounting a small filesystem for Server B needs root"
    );
    // Declared first, dropped last: unmounted after the servers are gone.
    let mount_root = tempfile::tempdir().unwrap();
    let disk_at = mount_root.path().join("b-disk");
    let _disk = Mount::tmpfs(&disk_at, "8m")
        .unwrap_or_else(|why| panic!("cannot mount a small tmpfs: {why}"));
    let root = tempfile::tempdir().unwrap();
    let dirs = [
        root.path().join("directory_a"),
        root.path().join("state_a"),
        // The state directory on the same small disk: temporary files land
        // there (same filesystem, so the final rename is atomic).
        disk_at.join("directory_b"),
        disk_at.join("state_b"),
    ];
    let old = content("old", MIB);
    let filler = content("filler", 4 * MIB);
    write_file(&dirs[0], "big.bin", &old, None);
    write_file(&dirs[0], "filler.bin", &filler, None);
    let pair = Pair::start_at(root, dirs, &[]);
    pair.wait_same_tree(30);

    // 5 MiB more where about 3 MiB are free.
    let new = content("new", 5 * MIB);
    pair.put(&pair.dir_a, "big.bin", &new, now_ns());
    pair.wait(SECS, "B's error line about the full disk", || {
        pair.b.said(&["error", "big.bin", "No space left"])
    });
    pair.wait(RETRY_SECS, "B to ask again and fail again", || {
        pair.b.said_count(&["error", "big.bin"]) >= 2
    });
    // The old copy is intact, nothing partial is visible.
    assert_eq!(files_in(&pair.dir_b), ["big.bin", "filler.bin"]);
    assert!(read(&pair.dir_b.join("big.bin")).unwrap() == old);
    assert!(read(&pair.dir_b.join("filler.bin")).unwrap() == filler);
    println!(
        "errors at B while full: {}",
        pair.b.said_count(&["error", "big.bin"])
    );

    // Make room at B; the delete travels to A too.
    std::fs::remove_file(pair.dir_b.join("filler.bin")).unwrap();
    pair.wait(RETRY_SECS, "the new big.bin at B", || {
        read(&pair.dir_b.join("big.bin")).is_some_and(|c| c == new)
    });
    pair.wait_same_tree(SECS);
    assert_eq!(files_in(&pair.dir_a), ["big.bin"]);
}

const NOBODY: u32 = 65534;

/// `server_b`, copied to `bin_dir` (made), where user `nobody` can run it
/// whatever the checkout's permissions (a private home, say); and the
/// reason if `nobody` still cannot run it or reach a folder next to `dir`.
fn server_b_for_nobody(bin_dir: &Path, dir: &Path) -> Result<std::path::PathBuf, String> {
    std::fs::create_dir_all(bin_dir).map_err(|e| e.to_string())?;
    std::fs::set_permissions(bin_dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    let copy = bin_dir.join("server_b");
    std::fs::copy(bin("server_b"), &copy)
        .map_err(|e| format!("copy {}: {e}", bin("server_b").display()))?;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    let run = |cmd: &mut Command| {
        cmd.uid(NOBODY)
            .gid(NOBODY)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !run(Command::new(&copy).arg("--version")) {
        return Err(format!("user nobody cannot run {}", copy.display()));
    }
    let parent = dir.parent().unwrap();
    if !run(Command::new("ls").arg(parent)) {
        return Err(format!("user nobody cannot reach {}", parent.display()));
    }
    Ok(copy)
}

/// Server B (the program at `server_b`) as user `nobody`, over folders
/// it owns.
fn start_b_as_nobody(server_b: &Path, dir: &Path, state: &Path) -> Server {
    for p in [dir, state] {
        std::fs::create_dir_all(p).unwrap();
        std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let mut cmd = Command::new(server_b);
    cmd.uid(NOBODY).gid(NOBODY).env_remove("LAB3_TOKEN");
    let args = [
        "--dir",
        &dir.display().to_string(),
        "--state-dir",
        &state.display().to_string(),
        "--listen",
        "127.0.0.1:0",
    ]
    .map(String::from)
    .to_vec();
    Server::start_cmd("server_b", cmd, args)
}

#[test]
#[ignore = "needs root to run Server B as user nobody: run with --ignored, as .ci/run does"]
fn a_folder_b_may_not_write_to_is_an_error_retried_until_it_may() {
    assert!(
        is_root(),
        "running Server B as another user (nobody) needs root"
    );
    let root = tempfile::tempdir().unwrap();
    // The scratch folder is 0700; user nobody must reach into it.
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dirs = [
        root.path().join("directory_a"),
        root.path().join("state_a"),
        root.path().join("directory_b"),
        root.path().join("state_b"),
    ];
    write_file(&dirs[0], "locked/old.txt", b"old version", None);
    write_file(&dirs[0], "free.txt", b"free", None);
    let server_b = server_b_for_nobody(&root.path().join("bin"), &dirs[2])
        .unwrap_or_else(|why| panic!("cannot run Server B as user nobody: {why}"));
    let b = start_b_as_nobody(&server_b, &dirs[2], &dirs[3]);
    let a = start_a(&dirs[0], &dirs[1], &b.addr, &[]);
    let pair = Pair::from_parts(root, dirs, a, b);
    pair.wait_same_tree(30);
    let locked = pair.dir_b.join("locked");
    assert_eq!(
        std::fs::metadata(&locked).unwrap().uid(),
        NOBODY,
        "B made the folder"
    );

    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    pair.put(&pair.dir_a, "locked/new.txt", b"new file", now_ns());
    pair.put(&pair.dir_a, "locked/old.txt", b"edited at A", now_ns());
    pair.wait(SECS, "B's error lines", || {
        pair.b
            .said(&["error", "locked/new.txt", "Permission denied"])
            && pair
                .b
                .said(&["error", "locked/old.txt", "Permission denied"])
    });
    // Retried with backoff, announced once: the attempts grow in status.
    pair.wait(RETRY_SECS, "a second attempt that fails again", || {
        let out = pair.lab3(&["status", "--json"]);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        doc["failing"].as_array().is_some_and(|fs| {
            fs.iter()
                .any(|f| f["path"] == "locked/new.txt" && f["attempts"].as_u64() >= Some(2))
        })
    });
    assert_eq!(
        pair.b.said_count(&["error", "locked/new.txt"]),
        1,
        "{}",
        pair.output()
    );
    assert_eq!(files_in(&locked), ["old.txt"]);
    assert_eq!(read(&locked.join("old.txt")).unwrap(), b"old version");
    // Other files still travel meanwhile.
    pair.put(&pair.dir_a, "free.txt", b"free, edited", now_ns());
    pair.wait_same(SECS, "free.txt");

    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    pair.wait(RETRY_SECS, "both files at B", || {
        read(&locked.join("new.txt")).as_deref() == Some(b"new file".as_slice())
            && read(&locked.join("old.txt")).as_deref() == Some(b"edited at A".as_slice())
    });
    pair.wait_same_tree(SECS);
}
