//! Synchronisation while both servers run: every kind of change, in both
//! directions, over the real binaries (CONTRACT.md, "Synchronisation").
//!
//! Restarts, reconciliation and the delete rules are in `sync_restart.rs`;
//! big files, slow writers and bursts in `sync_load.rs`.

use std::time::Duration;

use lab3_tests::*;

/// The contract's 5 seconds, with slack for a loaded machine and a debug build.
const SECS: u64 = 10;

/// The arrow of the opposite direction.
fn back(arrow: &str) -> &'static str {
    if arrow == "A->B" {
        "B->A"
    } else {
        "A->B"
    }
}

/// A file name that says which side it was made on.
fn named(w: &Way, stem: &str) -> String {
    format!("{stem}-from-{}.txt", &w.arrow[..1])
}

#[test]
fn a_new_file_travels_both_ways() {
    let pair = Pair::start_linked();
    for w in pair.ways() {
        let name = named(&w, "new");
        write_file(w.from, &name, b"fresh content", None);
        pair.wait_same(SECS, &name);
        pair.wait(SECS, "the 'created' line", || {
            w.to_server.said(&[w.arrow, "created", &name])
        });
    }
}

#[test]
fn a_change_arrives_within_5_seconds_through_events_alone() {
    // With the safety-net rescan pushed out of the way, only the watcher can do it.
    let pair = Pair::start_with_args(&["--rescan-secs", "600"], |_, _| {});
    pair.wait_linked(20);
    for w in pair.ways() {
        let name = named(&w, "prompt");
        write_file(w.from, &name, b"on time", None);
        pair.wait_same(5, &name);
    }
}

#[test]
fn a_modified_file_travels_both_ways() {
    let pair = Pair::start_linked();
    for w in pair.ways() {
        let name = named(&w, "edit");
        write_file(w.from, &name, b"first", Some(1_700_000_000_000_000_000));
        pair.wait_same(SECS, &name);
        write_file(w.from, &name, b"second, longer", None);
        pair.wait(SECS, "the new content", || {
            read(&w.to.join(&name)).as_deref() == Some(b"second, longer")
        });
        pair.wait_same(SECS, &name);
        pair.wait(SECS, "the 'updated' line", || {
            w.to_server.said(&[w.arrow, "updated", &name])
        });
    }
}

#[test]
fn a_deleted_file_is_deleted_on_the_other_side_both_ways() {
    let pair = Pair::start_linked();
    for w in pair.ways() {
        let name = named(&w, "doomed");
        write_file(w.from, &name, b"short-lived", None);
        pair.wait_same(SECS, &name);
        std::fs::remove_file(w.from.join(&name)).unwrap();
        pair.wait(SECS, "the delete", || !w.to.join(&name).exists());
        pair.wait(SECS, "the 'deleted' line", || {
            w.to_server.said(&[w.arrow, "deleted", &name])
        });
    }
}

#[test]
fn a_rename_moves_the_file_on_the_other_side_both_ways() {
    let pair = Pair::start_linked();
    for w in pair.ways() {
        let (old, new) = (named(&w, "before"), named(&w, "after"));
        write_file(w.from, &old, b"moved, not resent", None);
        pair.wait_same(SECS, &old);
        std::fs::rename(w.from.join(&old), w.from.join(&new)).unwrap();
        pair.wait_same(SECS, &new);
        pair.wait(SECS, "the old name to go", || !w.to.join(&old).exists());
        pair.wait(SECS, "the 'renamed' line", || {
            w.to_server
                .said(&[w.arrow, "renamed", &new, &format!("from {old}")])
        });
        assert!(
            !w.to_server.said(&[w.arrow, "created", &new]),
            "the renamed file was sent again\n{}",
            pair.output()
        );
    }
}

#[test]
fn an_editors_save_by_rename_replaces_the_file_both_ways() {
    let pair = Pair::start_linked();
    for w in pair.ways() {
        let name = named(&w, "doc");
        write_file(w.from, &name, b"draft 1", Some(1_700_000_000_000_000_000));
        pair.wait_same(SECS, &name);
        // What vim, gedit or VS Code do: write a sibling, rename it over the target.
        let tmp = write_file(w.from, &format!("{name}.swp~"), b"draft 2, saved", None);
        std::fs::rename(&tmp, w.from.join(&name)).unwrap();
        pair.wait(SECS, "the saved content", || {
            read(&w.to.join(&name)).as_deref() == Some(b"draft 2, saved")
        });
        pair.wait_same(SECS, &name);
        pair.wait(SECS, "no trace of the editor's temporary file", || {
            !w.to.join(format!("{name}.swp~")).exists()
        });
    }
    pair.wait_same_tree(SECS);
}

#[test]
fn a_save_that_moves_the_old_copy_to_a_backup_first_replaces_the_file_both_ways() {
    let pair = Pair::start_linked();
    for w in pair.ways() {
        let name = named(&w, "vim");
        let backup = format!("{name}~");
        write_file(w.from, &name, b"draft 1", Some(1_700_000_000_000_000_000));
        pair.wait_same(SECS, &name);
        // What vim does by default: move the old file to a backup, write
        // the new one under the name, then delete the backup.
        std::fs::rename(w.from.join(&name), w.from.join(&backup)).unwrap();
        write_file(w.from, &name, b"draft 2, saved by vim", None);
        std::fs::remove_file(w.from.join(&backup)).unwrap();
        pair.wait(SECS, "the saved content", || {
            read(&w.to.join(&name)).as_deref() == Some(b"draft 2, saved by vim")
        });
        pair.wait_same(SECS, &name);
        pair.wait(SECS, "no backup left", || !w.to.join(&backup).exists());
    }
    pair.wait_same_tree(SECS);
}

#[test]
fn an_applied_change_is_not_sent_back() {
    let pair = Pair::start_linked();
    for w in pair.ways() {
        let name = named(&w, "echo");
        write_file(w.from, &name, b"once", None);
        pair.wait_same(SECS, &name);
        pair.wait(SECS, "the 'created' line", || {
            w.to_server.said(&[w.arrow, "created", &name])
        });
        let src = w.from.join(&name);
        let (ino, mtime) = (inode(&src), mtime_ns(&src));
        let quiet = holds_for(Duration::from_millis(1500), || {
            inode(&src) == ino
                && mtime_ns(&src) == mtime
                && !pair.a.said(&[back(w.arrow), &name])
                && !pair.b.said(&[back(w.arrow), &name])
        });
        assert!(quiet, "{name} came back to its source\n{}", pair.output());
    }
}

#[test]
fn an_applied_rename_or_delete_is_not_sent_back() {
    let pair = Pair::start_linked();
    let window = Duration::from_millis(1000);
    for w in pair.ways() {
        let (old, new) = (named(&w, "echo-old"), named(&w, "echo-new"));
        write_file(w.from, &old, b"moves, then goes", None);
        pair.wait_same(SECS, &old);
        std::fs::rename(w.from.join(&old), w.from.join(&new)).unwrap();
        pair.wait(SECS, "the 'renamed' line", || {
            w.to_server.said(&[w.arrow, "renamed", &new])
        });
        let quiet = holds_for(window, || {
            !pair.a.said(&[back(w.arrow), &new]) && !pair.b.said(&[back(w.arrow), &new])
        });
        assert!(quiet, "the rename of {new} came back\n{}", pair.output());

        std::fs::remove_file(w.from.join(&new)).unwrap();
        pair.wait(SECS, "the delete", || !w.to.join(&new).exists());
        let quiet = holds_for(window, || {
            !w.from.join(&new).exists()
                && !pair.a.said(&[back(w.arrow), "deleted", &new])
                && !pair.b.said(&[back(w.arrow), "deleted", &new])
        });
        assert!(quiet, "the delete of {new} came back\n{}", pair.output());
    }
}

#[test]
fn edits_on_both_sides_at_once_end_with_the_newer_copy_on_both() {
    let pair = Pair::start_linked();
    for w in pair.ways() {
        let name = named(&w, "contested");
        write_file(w.from, &name, b"v1", Some(1_700_000_000_000_000_000));
        pair.wait_same(SECS, &name);
        let t = now_ns();
        pair.put(w.to, &name, b"the older edit", t);
        pair.put(w.from, &name, b"the newer edit wins", t + 1_000_000);
        pair.wait(SECS, "the newer edit on both sides", || {
            read(&w.to.join(&name)).as_deref() == Some(b"the newer edit wins")
                && read(&w.from.join(&name)).as_deref() == Some(b"the newer edit wins")
        });
        pair.wait_same(SECS, &name);
    }
}

#[test]
fn a_folder_moved_in_arrives_and_one_moved_out_is_deleted() {
    let pair = Pair::start_linked();
    let outside = pair.root.path().join("outside");
    write_file(&outside, "album/one.jpg", b"one", None);
    write_file(&outside, "album/sub/two.jpg", b"two", None);
    std::fs::rename(outside.join("album"), pair.dir_a.join("album")).unwrap();
    pair.wait_same(SECS, "album/one.jpg");
    pair.wait_same(SECS, "album/sub/two.jpg");

    std::fs::rename(pair.dir_b.join("album"), outside.join("album")).unwrap();
    pair.wait(SECS, "the folder to leave A", || {
        !pair.dir_a.join("album").exists()
    });
    assert!(files_in(&pair.dir_a).is_empty());
}

#[test]
fn folders_made_moved_in_or_installed_while_running_are_watched() {
    // With the safety-net rescan pushed out of the way, a file written in a
    // folder later arrives only if the folder got a watch of its own (on
    // Linux the engine adds one per folder, as it lists each folder).
    let pair = Pair::start_with_args(&["--rescan-secs", "600"], |_, _| {});
    pair.wait_linked(20);
    for w in pair.ways() {
        let side = &w.arrow[..1];
        // Made while running, two levels at once.
        let made = format!("made-{side}");
        std::fs::create_dir_all(w.from.join(&made).join("inner")).unwrap();
        // Moved in from outside, with files and a folder in it.
        let outside = pair.root.path().join(format!("outside-{side}"));
        write_file(&outside, "moved/old.txt", b"old", None);
        write_file(&outside, "moved/sub/older.txt", b"older", None);
        let moved = format!("moved-{side}");
        std::fs::rename(outside.join("moved"), w.from.join(&moved)).unwrap();
        pair.wait_same(SECS, &format!("{moved}/old.txt"));
        pair.wait_same(SECS, &format!("{moved}/sub/older.txt"));
        pair.wait(SECS, "the new folders to arrive", || {
            w.to.join(&made).join("inner").is_dir()
        });
        // Written after, on the side that made the folders, then on the
        // side whose engine made them (installed from the peer).
        let dirs = [
            made.clone(),
            format!("{made}/inner"),
            moved.clone(),
            format!("{moved}/sub"),
        ];
        for (here, to_side) in [(w.from, "there"), (w.to, "back")] {
            for dir in &dirs {
                let name = format!("{dir}/later-{to_side}.txt");
                write_file(here, &name, to_side.as_bytes(), None);
                pair.wait_same(SECS, &name);
            }
        }
    }
}

#[test]
fn folders_are_created_renamed_and_deleted_on_the_other_side() {
    let pair = Pair::start_linked();
    // Same size and time: only their names tell them apart when the folder moves.
    let t = 1_700_000_000_000_000_000;
    write_file(&pair.dir_a, "d1/d2/deep.txt", b"deep", Some(t));
    write_file(&pair.dir_a, "d1/top.txt", b"top!", Some(t));
    pair.wait_same(SECS, "d1/d2/deep.txt");
    pair.wait_same(SECS, "d1/top.txt");

    std::fs::rename(pair.dir_a.join("d1"), pair.dir_a.join("d3")).unwrap();
    pair.wait_same(SECS, "d3/d2/deep.txt");
    pair.wait_same(SECS, "d3/top.txt");
    pair.wait(SECS, "the old folder to go", || {
        !pair.dir_b.join("d1").exists()
    });
    pair.wait(SECS, "the 'renamed' line", || {
        pair.b
            .said(&["A->B", "renamed", "d3/top.txt", "from d1/top.txt"])
    });
    assert_eq!(read(&pair.dir_b.join("d3/top.txt")).unwrap(), b"top!");

    std::fs::remove_dir_all(pair.dir_b.join("d3")).unwrap();
    pair.wait(SECS, "the folder to be deleted on A", || {
        !pair.dir_a.join("d3").exists()
    });
    assert_eq!(files_in(&pair.dir_a), Vec::<String>::new());
}

#[test]
fn unicode_and_odd_names_travel_both_ways() {
    let pair = Pair::start_linked();
    let names = [
        "héllo wörld.txt",
        "日本語/ファイル名.txt",
        "it's \"quoted\".txt",
        " leading and trailing spaces .txt",
        "emoji 🎉 #1 & (copy) [2] $HOME;.md",
    ];
    for w in pair.ways() {
        for n in names {
            let name = format!("{}-{n}", &w.arrow[..1]);
            write_file(w.from, &name, name.as_bytes(), None);
        }
    }
    for w in pair.ways() {
        for n in names {
            pair.wait_same(SECS, &format!("{}-{n}", &w.arrow[..1]));
        }
    }
    pair.wait_same_tree(SECS);
}

#[cfg(unix)]
#[test]
fn permission_bits_travel_both_ways() {
    let pair = Pair::start_linked();
    let p = write_file(&pair.dir_a, "script.sh", b"#!/bin/sh\n", None);
    set_mode(&p, 0o644);
    pair.wait_same(SECS, "script.sh");
    set_mode(&p, 0o600);
    pair.wait(SECS, "0600 on B", || {
        mode(&pair.dir_b.join("script.sh")) == Some(0o600)
    });
    set_mode(&pair.dir_b.join("script.sh"), 0o755);
    pair.wait(SECS, "0755 on A", || mode(&p) == Some(0o755));
    pair.wait_same(SECS, "script.sh");
    // Bits a usual umask (022) takes away at creation must still arrive.
    let shared = write_file(&pair.dir_a, "shared.txt", b"for everyone", None);
    set_mode(&shared, 0o666);
    pair.wait(SECS, "0666 on B", || {
        mode(&pair.dir_b.join("shared.txt")) == Some(0o666)
    });
}

#[test]
fn a_case_only_rename_leaves_exactly_one_file() {
    let pair = Pair::start_linked();
    write_file(&pair.dir_a, "File.txt", b"case matters", None);
    pair.wait_same(SECS, "File.txt");
    std::fs::rename(pair.dir_a.join("File.txt"), pair.dir_a.join("file.txt")).unwrap();
    for dir in [&pair.dir_a, &pair.dir_b] {
        pair.wait(SECS, "only file.txt", || files_in(dir) == ["file.txt"]);
    }
    pair.wait_same(SECS, "file.txt");
    assert_eq!(read(&pair.dir_b.join("file.txt")).unwrap(), b"case matters");
}

#[cfg(unix)]
#[test]
fn symbolic_links_are_skipped_with_a_warning() {
    let pair = Pair::start_with(|a, _| {
        write_file(a, "target.txt", b"real", None);
        std::os::unix::fs::symlink("target.txt", a.join("at-start.lnk")).unwrap();
    });
    pair.wait_linked(20);
    std::os::unix::fs::symlink("target.txt", pair.dir_a.join("at-runtime.lnk")).unwrap();
    std::os::unix::fs::symlink(".", pair.dir_a.join("loop-dir")).unwrap();
    pair.wait(SECS, "warnings about the links", || {
        ["at-start.lnk", "at-runtime.lnk", "loop-dir"]
            .iter()
            .all(|l| pair.a.logged(&["symbolic link", l]))
    });
    // A file made after the links arrives, and the links never do.
    write_file(&pair.dir_a, "after.txt", b"later", None);
    pair.wait_same(SECS, "after.txt");
    pair.wait_same(SECS, "target.txt");
    assert_eq!(files_in(&pair.dir_b), ["after.txt", "target.txt"]);
}

#[test]
fn files_with_the_same_size_and_time_renamed_crosswise_keep_their_content() {
    let pair = Pair::start_linked();
    let t = 1_700_000_000_000_000_000;
    write_file(&pair.dir_a, "a.txt", b"content of a", Some(t));
    write_file(&pair.dir_a, "b.txt", b"content of b", Some(t));
    pair.wait_same(SECS, "a.txt");
    pair.wait_same(SECS, "b.txt");
    // In one burst: a.txt becomes d.txt and b.txt becomes c.txt.
    std::fs::rename(pair.dir_a.join("a.txt"), pair.dir_a.join("d.txt")).unwrap();
    std::fs::rename(pair.dir_a.join("b.txt"), pair.dir_a.join("c.txt")).unwrap();
    pair.wait(SECS, "the new names at B", || {
        files_in(&pair.dir_b) == ["c.txt", "d.txt"]
    });
    pair.wait_same(SECS, "c.txt");
    pair.wait_same(SECS, "d.txt");
    assert_eq!(read(&pair.dir_b.join("d.txt")).unwrap(), b"content of a");
}

#[test]
fn a_file_replaced_by_a_folder_of_the_same_name_and_back() {
    let pair = Pair::start_linked();
    write_file(&pair.dir_a, "notes", b"a plain file", None);
    pair.wait_same(SECS, "notes");

    std::fs::remove_file(pair.dir_a.join("notes")).unwrap();
    write_file(&pair.dir_a, "notes/monday.txt", b"now a folder", None);
    pair.wait_same(SECS, "notes/monday.txt");
    pair.wait_same_tree(SECS);

    std::fs::remove_dir_all(pair.dir_a.join("notes")).unwrap();
    write_file(&pair.dir_a, "notes", b"a file again", None);
    pair.wait(SECS, "the file again at B", || {
        read(&pair.dir_b.join("notes")).as_deref() == Some(b"a file again")
    });
    pair.wait_same_tree(SECS);
}
