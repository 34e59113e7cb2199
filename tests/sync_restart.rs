//! Synchronisation across starts, stops and kills: reconciliation of what
//! changed while a server was down, the delete rules, conflicts, and the
//! empty-directory guard (CONTRACT.md, "Synchronisation" and "Safety").

use lab3_tests::*;

/// The contract's 5 seconds, with slack for a loaded machine and a debug build.
const SECS: u64 = 10;
/// Reconnecting after a restart: A's backoff reaches 5 s.
const RECONNECT_SECS: u64 = 20;
/// An mtime well in the past (2023-11-14), with nanosecond digits.
const OLD: i64 = 1_700_000_000_123_456_789;

#[test]
fn startup_makes_both_sides_equal_with_exact_times_and_modes() {
    let pair = Pair::start_with(|a, b| {
        let p = write_file(a, "only-a.txt", b"from a", Some(OLD));
        set_mode(&p, 0o640);
        let p = write_file(b, "only-b/nested.txt", b"from b", Some(OLD + 1));
        set_mode(&p, 0o600);
        write_file(a, "newer-on-a.txt", b"A's newer copy", Some(OLD + 10));
        write_file(b, "newer-on-a.txt", b"B's old", Some(OLD));
        write_file(a, "newer-on-b.txt", b"A's old", Some(OLD));
        // Newer by one nanosecond.
        let p = write_file(b, "newer-on-b.txt", b"B's newer copy", Some(OLD + 1));
        set_mode(&p, 0o755);
    });
    let expect: [(&str, &[u8], i64, u32); 4] = [
        ("only-a.txt", b"from a", OLD, 0o640),
        ("only-b/nested.txt", b"from b", OLD + 1, 0o600),
        ("newer-on-a.txt", b"A's newer copy", OLD + 10, 0o644),
        ("newer-on-b.txt", b"B's newer copy", OLD + 1, 0o755),
    ];
    for (name, content, mtime, perm) in expect {
        pair.wait_same(RECONNECT_SECS, name);
        for dir in [&pair.dir_a, &pair.dir_b] {
            let p = dir.join(name);
            assert_eq!(read(&p).unwrap(), content, "{}", p.display());
            assert_eq!(mtime_ns(&p), Some(mtime), "{}", p.display());
            #[cfg(unix)]
            assert_eq!(mode(&p), Some(perm), "{}", p.display());
            #[cfg(not(unix))]
            let _ = perm; // no permission bits here: see CONTRACT.md, "Synchronisation"
        }
    }
    pair.wait_same_tree(SECS);
}

/// Both folders hold `name` with the same mtime and different content; at
/// the end both must hold A's copy, and a 'conflict' line must say so.
fn tie_resolves_to_as_copy(name: &str, a_content: &[u8], b_content: &[u8]) {
    let pair = Pair::start_with(|a, b| {
        write_file(a, name, a_content, Some(OLD));
        write_file(b, name, b_content, Some(OLD));
    });
    pair.wait(RECONNECT_SECS, &format!("A's copy of {name} on B"), || {
        read(&pair.dir_b.join(name)).as_deref() == Some(a_content)
    });
    pair.wait_same(SECS, name);
    pair.wait(SECS, "a 'conflict' line", || {
        pair.a.said(&["conflict", name]) || pair.b.said(&["conflict", name])
    });
}

#[test]
fn equal_times_with_different_content_end_with_as_copy_and_are_reported() {
    tie_resolves_to_as_copy("tie.txt", b"A's copy", b"B's longer copy");
}

#[test]
fn equal_times_and_sizes_with_different_content_end_with_as_copy_and_are_reported() {
    tie_resolves_to_as_copy("tie.txt", b"AAAA", b"BBBB");
}

#[test]
fn a_delete_made_while_the_peer_was_down_wins_and_nothing_comes_back() {
    let mut pair = Pair::start_with(|a, _| {
        write_file(a, "gone-on-a.txt", b"x", Some(OLD));
        write_file(a, "gone-on-b.txt", b"y", Some(OLD));
    });
    pair.wait_same_tree(RECONNECT_SECS);
    pair.wait_journaled(RECONNECT_SECS);

    pair.b.kill();
    std::fs::remove_file(pair.dir_a.join("gone-on-a.txt")).unwrap();
    pair.restart_b();
    pair.wait(RECONNECT_SECS, "B's copy to be deleted", || {
        !pair.dir_b.join("gone-on-a.txt").exists()
    });

    pair.a.kill();
    std::fs::remove_file(pair.dir_b.join("gone-on-b.txt")).unwrap();
    pair.restart_a();
    pair.wait(RECONNECT_SECS, "A's copy to be deleted", || {
        !pair.dir_a.join("gone-on-b.txt").exists()
    });

    let none_back = holds_for(std::time::Duration::from_millis(1500), || {
        files_in(&pair.dir_a).is_empty() && files_in(&pair.dir_b).is_empty()
    });
    assert!(none_back, "a deleted file came back\n{}", pair.output());
}

/// `--keep-deletes DAYS` bounds how long a delete is remembered while the
/// peer is away (the test above: the default, 456 days). At 0 a restart
/// forgets it, and the peer's copy comes back: the stated risk of a peer
/// away longer than the limit.
#[test]
fn a_delete_older_than_keep_deletes_is_forgotten_and_the_peers_copy_comes_back() {
    let mut pair = Pair::start_with(|a, _| {
        write_file(a, "keep.txt", b"keeps the folder non-empty", Some(OLD));
        write_file(a, "gone.txt", b"x", Some(OLD));
    });
    pair.wait_same_tree(RECONNECT_SECS);
    pair.wait_journaled(RECONNECT_SECS);

    pair.b.kill();
    std::fs::remove_file(pair.dir_a.join("gone.txt")).unwrap();
    pair.restart_a_with(&["--keep-deletes", "0"]);
    pair.wait(SECS, "A to forget the delete", || {
        pair.a.said(&["forgotten", "gone.txt", "--keep-deletes"])
    });
    pair.restart_b();
    pair.wait(RECONNECT_SECS, "B's copy to come back to A", || {
        std::fs::read(pair.dir_a.join("gone.txt")).is_ok_and(|c| c == b"x")
    });
    pair.wait_same_tree(SECS);
}

#[test]
fn a_delete_made_while_its_server_was_down_wins_too() {
    let mut pair = Pair::start_with(|a, _| {
        write_file(a, "keep.txt", b"keeps the folder non-empty", Some(OLD));
        write_file(a, "gone.txt", b"x", Some(OLD));
    });
    pair.wait_same_tree(RECONNECT_SECS);
    pair.wait_journaled(RECONNECT_SECS);
    pair.b.kill();
    std::fs::remove_file(pair.dir_b.join("gone.txt")).unwrap();
    pair.restart_b();
    pair.wait(RECONNECT_SECS, "A's copy to be deleted", || {
        !pair.dir_a.join("gone.txt").exists()
    });
    pair.wait_same_tree(SECS);
    assert_eq!(files_in(&pair.dir_a), ["keep.txt"]);
}

#[test]
fn an_edit_after_a_delete_made_while_disconnected_survives_on_both_sides() {
    let mut pair = Pair::start_with(|a, _| {
        write_file(a, "keep.txt", b"keeps the folders non-empty", Some(OLD));
        write_file(a, "deleted-on-b.txt", b"v1", Some(OLD));
        write_file(a, "deleted-on-a.txt", b"v1", Some(OLD));
    });
    pair.wait_same_tree(RECONNECT_SECS);

    // B is down: deleted in B's folder, then edited at A.
    pair.b.kill();
    std::fs::remove_file(pair.dir_b.join("deleted-on-b.txt")).unwrap();
    write_file(
        &pair.dir_a,
        "deleted-on-b.txt",
        b"v2, edited on A",
        Some(now_ns()),
    );
    pair.restart_b();
    pair.wait_same(RECONNECT_SECS, "deleted-on-b.txt");
    assert_eq!(
        read(&pair.dir_b.join("deleted-on-b.txt")).unwrap(),
        b"v2, edited on A"
    );

    // A is down: deleted in A's folder, then edited at B.
    pair.a.kill();
    std::fs::remove_file(pair.dir_a.join("deleted-on-a.txt")).unwrap();
    write_file(
        &pair.dir_b,
        "deleted-on-a.txt",
        b"v2, edited on B",
        Some(now_ns()),
    );
    pair.restart_a();
    pair.wait_same(RECONNECT_SECS, "deleted-on-a.txt");
    assert_eq!(
        read(&pair.dir_a.join("deleted-on-a.txt")).unwrap(),
        b"v2, edited on B"
    );
    pair.wait_same_tree(SECS);
}

/// Writes `n` files of 64 KiB, each with its own content, under `dir/sub`.
fn batch(dir: &std::path::Path, sub: &str, n: usize) {
    for i in 0..n {
        let body = format!("{sub} file {i:04}\n").repeat(64 * 1024 / 16);
        write_file(dir, &format!("{sub}/f{i:04}.bin"), body.as_bytes(), None);
    }
}

#[test]
fn a_kill_during_a_batch_of_changes_loses_nothing_and_both_converge() {
    let mut pair = Pair::start_linked();

    batch(&pair.dir_a, "one", 300);
    pair.wait(SECS, "the batch to start arriving at B", || {
        !files_in(&pair.dir_b).is_empty()
    });
    pair.b.kill();
    println!(
        "B held {} of 300 files when killed",
        files_in(&pair.dir_b).len()
    );
    pair.restart_b();
    pair.wait_same_tree(60);
    assert_eq!(files_in(&pair.dir_b).len(), 300);

    batch(&pair.dir_b, "two", 300);
    pair.wait(SECS, "the batch to start arriving at A", || {
        files_in(&pair.dir_a).len() > 300
    });
    pair.a.kill();
    println!(
        "A held {} of 600 files when killed",
        files_in(&pair.dir_a).len()
    );
    pair.restart_a();
    pair.wait_same_tree(60);
    assert_eq!(files_in(&pair.dir_a).len(), 600);
}

/// Waits until A has journaled B's two files: B announces a file sent
/// once A answers that it is stored, which A does only after writing its
/// journal (the files on A's disk alone do not say that: a kill between
/// the two leaves A with no history).
fn wait_journaled_at_a(pair: &Pair) {
    pair.wait(SECS, "A to acknowledge both files", || {
        pair.b.said(&["B->A", "created", "one.txt"])
            && pair.b.said(&["B->A", "created", "sub/two.txt"])
    });
}

#[test]
fn an_emptied_directory_does_not_delete_the_peers_files() {
    let mut pair = Pair::start_with(|_, b| {
        write_file(b, "one.txt", b"1", Some(OLD));
        write_file(b, "sub/two.txt", b"2", Some(OLD));
    });
    pair.wait_same_tree(RECONNECT_SECS);
    assert_eq!(files_in(&pair.dir_a).len(), 2);
    wait_journaled_at_a(&pair);

    // An unmounted disk, a wrong path: A finds its folder empty at start.
    pair.a.kill();
    std::fs::remove_dir_all(&pair.dir_a).unwrap();
    std::fs::create_dir(&pair.dir_a).unwrap();
    pair.restart_a();
    pair.wait(SECS, "A's warning", || pair.a.logged(&["is empty"]));
    pair.wait_same(RECONNECT_SECS, "one.txt");
    pair.wait_same(SECS, "sub/two.txt");
    assert!(
        !pair.b.said(&["deleted"]),
        "B deleted files\n{}",
        pair.output()
    );
}

#[test]
fn with_confirm_empty_an_emptied_directory_deletes_everywhere() {
    let mut pair = Pair::start_with(|_, b| {
        write_file(b, "one.txt", b"1", Some(OLD));
        write_file(b, "sub/two.txt", b"2", Some(OLD));
    });
    pair.wait_same_tree(RECONNECT_SECS);
    wait_journaled_at_a(&pair);

    pair.a.kill();
    std::fs::remove_dir_all(&pair.dir_a).unwrap();
    std::fs::create_dir(&pair.dir_a).unwrap();
    pair.restart_a_with(&["--confirm-empty"]);
    pair.wait(RECONNECT_SECS, "the deletes to reach B", || {
        files_in(&pair.dir_b).is_empty()
    });
    pair.wait(SECS, "B's 'deleted' lines", || {
        pair.b.said(&["A->B", "deleted", "one.txt"])
            && pair.b.said(&["A->B", "deleted", "sub/two.txt"])
    });
    assert!(files_in(&pair.dir_a).is_empty());
}

#[test]
fn a_restart_over_trees_in_sync_agrees_by_digest_but_one_after_an_edit_does_not() {
    let mut pair = Pair::start_with(|a, _| {
        for i in 0..20 {
            let body = format!("file {i}");
            write_file(
                a,
                &format!("d{}/f{i}.txt", i % 3),
                body.as_bytes(),
                Some(OLD + i),
            );
        }
    });
    pair.wait_same_tree(RECONNECT_SECS);
    let sent = |s: &Server| {
        let out = s.stdout.lock().unwrap();
        // Files only: their folders are announced too.
        out.iter()
            .filter(|l| l.contains("created") && l.contains(".txt"))
            .count()
    };
    pair.wait(SECS, "all 20 files announced on both sides", || {
        sent(&pair.a) == 20 && sent(&pair.b) == 20
    });

    // Nothing changed while A was down: one digest each way settles it.
    pair.restart_a();
    pair.wait(RECONNECT_SECS, "a reconcile by digest", || {
        pair.a.logged(&[
            "reconciled with server B (digests agree)",
            "20 in agreement",
        ]) && pair.b.logged(&["reconciled with server A (digests agree)"])
    });

    // An edit made while A was down: the digests differ, and the edit travels.
    pair.a.kill();
    write_file(
        &pair.dir_a,
        "d1/f1.txt",
        b"edited while down",
        Some(OLD + 100),
    );
    pair.restart_a();
    pair.wait(RECONNECT_SECS, "the edit at B", || {
        read(&pair.dir_b.join("d1/f1.txt")).as_deref() == Some(b"edited while down".as_slice())
    });
    assert!(
        pair.a
            .logged(&["reconciled with server B: 19 in agreement, 1 to send"]),
        "{}",
        pair.output()
    );
    pair.wait_same_tree(SECS);
}
