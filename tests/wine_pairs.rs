//! Mixed pairs (issue 11): the Windows build of one server, run under Wine
//! on this Linux machine, against the native Linux build of the other, both
//! ways round (Linux A with Windows B, Windows A with Linux B). Listing,
//! create, modify, delete and rename in both directions, no echo of the
//! 100 ns mtime rounding, modes kept on the Linux side, a name Windows
//! cannot store, a file held open by a Windows process.
//!
//! `scripts/wine-setup.sh` (run by `.ci/run`) installs Wine and mingw-w64
//! and makes the prefix; without them every test here prints one
//! `skipped:` line saying why and returns.
//!
//! What Wine cannot show, so no test leans on it: a case-only rename made
//! through Windows calls does nothing there; reserved names (`CON`,
//! `aux.txt`) are stored as ordinary files; a Windows program can read
//! /proc. The Windows side's folder is a Linux folder, so the tests edit it
//! from Linux, as another program on that machine would.
#![cfg(target_os = "linux")] // Wine runs the Windows build on Linux

use std::path::Path;
use std::time::Duration;

use lab3_tests::*;

/// Which side runs the Windows build.
#[derive(Clone, Copy, Debug)]
enum Layout {
    LinuxAWindowsB,
    WindowsALinuxB,
}

/// A mixed pair, with its Linux and Windows folders named.
struct Mixed {
    pair: Pair,
    layout: Layout,
}

impl Mixed {
    /// Starts the pair after `setup(linux_dir, windows_dir)`, or `None`
    /// (having said why) when there is no Wine here.
    fn start(layout: Layout, setup: impl FnOnce(&Path, &Path)) -> Option<Mixed> {
        let wine = wine_or_skip()?;
        let root = TempDir::new().unwrap();
        let dir_a = root.path().join("directory_a");
        let dir_b = root.path().join("directory_b");
        let state_a = root.path().join("state_a");
        let state_b = root.path().join("state_b");
        std::fs::create_dir_all(&dir_a).unwrap();
        std::fs::create_dir_all(&dir_b).unwrap();
        match layout {
            Layout::LinuxAWindowsB => setup(&dir_a, &dir_b),
            Layout::WindowsALinuxB => setup(&dir_b, &dir_a),
        }
        let extra = ["--rescan-secs", "1"];
        let extra_native: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (a, b) = match layout {
            Layout::LinuxAWindowsB => {
                let b = wine.start_b(&dir_b, &state_b, &extra);
                (start_a(&dir_a, &state_a, &b.addr, &extra_native), b)
            }
            Layout::WindowsALinuxB => {
                let b = start_b(&dir_b, &state_b, "127.0.0.1:0", &extra_native);
                (wine.start_a(&dir_a, &state_a, &b.addr, &extra), b)
            }
        };
        let pair = Pair::from_parts(root, [dir_a, state_a, dir_b, state_b], a, b);
        Some(Mixed { pair, layout })
    }

    fn linux_dir(&self) -> &Path {
        match self.layout {
            Layout::LinuxAWindowsB => &self.pair.dir_a,
            Layout::WindowsALinuxB => &self.pair.dir_b,
        }
    }

    fn windows_dir(&self) -> &Path {
        match self.layout {
            Layout::LinuxAWindowsB => &self.pair.dir_b,
            Layout::WindowsALinuxB => &self.pair.dir_a,
        }
    }

    fn linux(&self) -> &Server {
        match self.layout {
            Layout::LinuxAWindowsB => &self.pair.a,
            Layout::WindowsALinuxB => &self.pair.b,
        }
    }

    fn windows(&self) -> &Server {
        match self.layout {
            Layout::LinuxAWindowsB => &self.pair.b,
            Layout::WindowsALinuxB => &self.pair.a,
        }
    }

    /// Waits until `rel` holds `content` in both folders.
    fn wait_both(&self, rel: &str, content: &[u8]) {
        let (l, w) = (self.linux_dir().join(rel), self.windows_dir().join(rel));
        self.pair.wait(
            15,
            &format!("{rel} = {:?} on both sides", text(content)),
            || read(&l).as_deref() == Some(content) && read(&w).as_deref() == Some(content),
        );
    }

    /// Waits until `rel` is in neither folder.
    fn wait_gone(&self, rel: &str) {
        let (l, w) = (self.linux_dir().join(rel), self.windows_dir().join(rel));
        self.pair
            .wait(15, &format!("{rel} gone from both sides"), || {
                !l.exists() && !w.exists()
            });
    }

    /// The lines, on both consoles, that name `what`.
    fn lines_naming(&self, what: &str) -> Vec<String> {
        [self.linux(), self.windows()]
            .iter()
            .flat_map(|s| {
                let mut all = s.stdout.lock().unwrap().clone();
                all.extend(s.stderr.lock().unwrap().iter().cloned());
                all.into_iter()
                    .filter(|l| l.contains(what))
                    .map(|l| format!("[{}] {l}", s.name))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Asserts that neither console reported a conflict.
    fn assert_no_conflict(&self) {
        let conflicts = self.lines_naming(" conflict ");
        assert!(
            conflicts.is_empty(),
            "{:?}: spurious conflicts: {conflicts:#?}\n{}",
            self.layout,
            self.pair.output()
        );
    }
}

/// One test per layout for each scenario, both named after it.
macro_rules! both_ways {
    ($(#[$attr:meta])* $name:ident) => {
        mod $name {
            use super::*;
            $(#[$attr])*
            #[test]
            fn linux_a_windows_b() {
                super::$name(Layout::LinuxAWindowsB);
            }
            $(#[$attr])*
            #[test]
            fn windows_a_linux_b() {
                super::$name(Layout::WindowsALinuxB);
            }
        }
    };
}

both_ways!(listing_create_modify_delete);
fn listing_create_modify_delete(layout: Layout) {
    let Some(m) = Mixed::start(layout, |linux, windows| {
        write_file(linux, "from_linux.txt", b"linux start", None);
        write_file(windows, "docs/from_windows.txt", b"windows start", None);
    }) else {
        return;
    };
    m.wait_both("from_linux.txt", b"linux start");
    m.wait_both("docs/from_windows.txt", b"windows start");
    let doc = m.pair.listing();
    assert_eq!(names(&doc), ["docs/from_windows.txt", "from_linux.txt"]);
    assert_eq!(doc["peer"], "connected");
    for f in doc["files"].as_array().unwrap() {
        assert_eq!(f["where"], "both", "{doc}");
    }

    // Create, modify, delete from each side in turn.
    for (from, to, side) in [
        (m.linux_dir(), m.windows_dir(), "linux"),
        (m.windows_dir(), m.linux_dir(), "windows"),
    ] {
        let rel = format!("made on {side}.txt");
        write_file(from, &rel, b"one", None);
        m.wait_both(&rel, b"one");
        write_file(from, &rel, b"two, longer", None);
        m.wait_both(&rel, b"two, longer");
        std::fs::remove_file(from.join(&rel)).unwrap();
        m.wait_gone(&rel);
        assert!(!to.join(&rel).exists());
    }
    // A folder made and removed on the Windows side.
    std::fs::create_dir(m.windows_dir().join("empty")).unwrap();
    let l = m.linux_dir().join("empty");
    m.pair
        .wait(15, "the folder on the Linux side", || l.is_dir());
    std::fs::remove_dir(m.windows_dir().join("empty")).unwrap();
    m.pair
        .wait(15, "the folder gone on the Linux side", || !l.exists());
    m.assert_no_conflict();
}

both_ways!(renames_both_ways);
fn renames_both_ways(layout: Layout) {
    let Some(m) = Mixed::start(layout, |linux, windows| {
        write_file(linux, "l.txt", b"renamed on linux", None);
        write_file(windows, "w.txt", b"renamed on windows", None);
    }) else {
        return;
    };
    m.wait_both("l.txt", b"renamed on linux");
    m.wait_both("w.txt", b"renamed on windows");
    std::fs::rename(m.linux_dir().join("l.txt"), m.linux_dir().join("l2.txt")).unwrap();
    m.wait_both("l2.txt", b"renamed on linux");
    m.wait_gone("l.txt");
    std::fs::rename(
        m.windows_dir().join("w.txt"),
        m.windows_dir().join("w2.txt"),
    )
    .unwrap();
    m.wait_both("w2.txt", b"renamed on windows");
    m.wait_gone("w.txt");
    m.assert_no_conflict();
}

both_ways!(folder_moves_both_ways);
/// Ignored from 2026-11-30 as flaky (once under load, Windows A + Linux B:
/// the moved folder sent as `created ld2` plus a file rename, and `ld`
/// re-created on both sides). The sync core changed much since (folder
/// moves crossing offers and answers); 2026-12-02 it passed 60 runs in a
/// row both ways at load average 7-9, and runs again with the rest.
fn folder_moves_both_ways(layout: Layout) {
    let Some(m) = Mixed::start(layout, |_, _| {}) else {
        return;
    };
    // A folder moved on each side, with what it holds.
    write_file(m.linux_dir(), "ld/inner.txt", b"in a linux folder", None);
    m.wait_both("ld/inner.txt", b"in a linux folder");
    std::fs::rename(m.linux_dir().join("ld"), m.linux_dir().join("ld2")).unwrap();
    m.wait_both("ld2/inner.txt", b"in a linux folder");
    write_file(
        m.windows_dir(),
        "wd/inner.txt",
        b"in a windows folder",
        None,
    );
    m.wait_both("wd/inner.txt", b"in a windows folder");
    std::fs::rename(m.windows_dir().join("wd"), m.windows_dir().join("wd2")).unwrap();
    m.wait_both("wd2/inner.txt", b"in a windows folder");
    m.pair.wait(15, "the old folders gone", || {
        !m.linux_dir().join("ld").exists()
            && !m.windows_dir().join("ld").exists()
            && !m.linux_dir().join("wd").exists()
            && !m.windows_dir().join("wd").exists()
    });
    m.assert_no_conflict();
}

both_ways!(renames_from_windows_arrive_as_renames);
/// The Windows side knows its files by volume serial number and file
/// index: a rename there is sent as a rename, and lands on Linux as one.
fn renames_from_windows_arrive_as_renames(layout: Layout) {
    // Two files renamed at once, in crossed name order, beside one that
    // stays: a Windows side that gave every file one identity (as before
    // it read file indexes) paired old and new names by their order (v.txt
    // with b.txt), and the bytes were sent again.
    let files = [
        ("v.txt", "z.txt", &b"v, moved on windows"[..]),
        ("w.txt", "b.txt", &b"w, also moved on windows, longer"[..]),
    ];
    let Some(m) = Mixed::start(layout, |_, windows| {
        write_file(windows, "a.txt", b"stays where it is", None);
        for (from, _, content) in files {
            write_file(windows, from, content, None);
        }
    }) else {
        return;
    };
    m.wait_both("a.txt", b"stays where it is");
    let mut before = Vec::new();
    for (from, _, content) in files {
        m.wait_both(from, content);
        before.push(inode(&m.linux_dir().join(from)));
    }
    for (from, to, _) in files {
        std::fs::rename(m.windows_dir().join(from), m.windows_dir().join(to)).unwrap();
    }
    for ((from, to, content), inode_before) in files.into_iter().zip(before) {
        m.wait_both(to, content);
        m.wait_gone(from);
        m.pair.wait(10, "the Linux side's 'renamed' line", || {
            m.linux().said(&["renamed", to])
        });
        // A rename on the Linux side keeps the inode; a delete and a
        // create (or a rename of the other file, then its bytes) would not.
        assert_eq!(
            inode(&m.linux_dir().join(to)),
            inode_before,
            "{to}\n{}",
            m.pair.output()
        );
    }
    m.assert_no_conflict();
}

both_ways!(a_folder_moved_on_windows_arrives_as_a_rename);
/// A folder moved on the Windows side, with what it holds: one rename on
/// Linux, the file inside it never sent again.
fn a_folder_moved_on_windows_arrives_as_a_rename(layout: Layout) {
    let Some(m) = Mixed::start(layout, |_, windows| {
        write_file(windows, "wd/inner.txt", b"in a windows folder", None);
    }) else {
        return;
    };
    m.wait_both("wd/inner.txt", b"in a windows folder");
    let before = inode(&m.linux_dir().join("wd/inner.txt"));
    std::fs::rename(m.windows_dir().join("wd"), m.windows_dir().join("wd2")).unwrap();
    m.wait_both("wd2/inner.txt", b"in a windows folder");
    m.wait_gone("wd");
    m.pair.wait(10, "the Linux side's 'renamed' line", || {
        m.linux().said(&["renamed", "wd2"])
    });
    assert_eq!(
        inode(&m.linux_dir().join("wd2/inner.txt")),
        before,
        "the file inside was sent again\n{}",
        m.pair.output()
    );
    m.assert_no_conflict();
}

both_ways!(no_echo_of_the_windows_precision);
/// A file made on Linux with every nanosecond digit set lands on the
/// Windows side rounded to 100 ns; that must not come back as a change.
fn no_echo_of_the_windows_precision(layout: Layout) {
    let mtime = 1_795_255_200_123_456_789;
    let Some(m) = Mixed::start(layout, |linux, _| {
        write_file(linux, "fine.txt", b"every digit", Some(mtime));
    }) else {
        return;
    };
    m.wait_both("fine.txt", b"every digit");
    let on_linux = m.linux_dir().join("fine.txt");
    let before = inode(&on_linux);
    // Then a change made while both run, also to the nanosecond.
    let live = write_file(m.linux_dir(), "live.txt", b"live", Some(mtime + 1_111));
    m.wait_both("live.txt", b"live");
    assert_eq!(
        mtime_ns(&m.windows_dir().join("fine.txt")).map(|t| t / 100),
        Some(mtime / 100),
        "the Windows side keeps the time to 100 ns"
    );
    // Several rescans (1 s) later, nothing has come back.
    let still = holds_for(Duration::from_secs(4), || {
        mtime_ns(&on_linux) == Some(mtime) && mtime_ns(&live) == Some(mtime + 1_111)
    });
    assert!(
        still,
        "the Linux copies were rewritten\n{}",
        m.pair.output()
    );
    assert_eq!(inode(&on_linux), before, "the Linux file was replaced");
    let echoes: Vec<String> = m
        .linux()
        .stdout
        .lock()
        .unwrap()
        .iter()
        .filter(|l| {
            (l.contains("fine.txt") || l.contains("live.txt"))
                && ["updated", "created"].iter().any(|w| l.contains(w))
                && !l.contains(direction_from_linux(layout))
        })
        .cloned()
        .collect();
    assert!(
        echoes.is_empty(),
        "echoed back: {echoes:#?}\n{}",
        m.pair.output()
    );
    m.assert_no_conflict();
    // And nothing was kept as a version on either side.
    let versions = m.pair.lab3(&["versions", "fine.txt", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&versions.stdout).unwrap_or_default();
    assert!(
        doc["versions"].as_array().is_none_or(|v| v.is_empty()),
        "versions kept for an echo: {doc}"
    );
}

/// The direction of the console lines of a change that went from Linux.
fn direction_from_linux(layout: Layout) -> &'static str {
    match layout {
        Layout::LinuxAWindowsB => "A->B",
        Layout::WindowsALinuxB => "B->A",
    }
}

both_ways!(modes_kept_on_the_linux_side);
/// Windows has no permission bits: a file edited there comes back to Linux
/// with the mode the Linux copy had, and a new file gets an ordinary one.
fn modes_kept_on_the_linux_side(layout: Layout) {
    let modes = [
        ("private.txt", 0o600),
        ("tool.sh", 0o755),
        ("frozen.txt", 0o444),
    ];
    let Some(m) = Mixed::start(layout, |linux, _| {
        for (name, mode) in modes {
            let p = write_file(linux, name, b"start", None);
            set_mode(&p, mode);
        }
    }) else {
        return;
    };
    for (name, _) in modes {
        m.wait_both(name, b"start");
        // Edited only once the Windows side has answered for what it got.
        m.pair.wait(15, "the Windows side's 'created' line", || {
            m.windows().said(&["created", name])
        });
    }
    for (name, _) in modes {
        // Edited on the Windows side (from Linux, as root: the read-only
        // attribute does not stop that).
        let p = m.windows_dir().join(name);
        std::fs::write(&p, b"edited on windows").unwrap();
    }
    for (name, _) in modes {
        m.wait_both(name, b"edited on windows");
    }
    write_file(m.windows_dir(), "new.txt", b"new on windows", None);
    m.wait_both("new.txt", b"new on windows");
    let still = holds_for(Duration::from_secs(3), || {
        modes
            .iter()
            .all(|(name, mode)| lab3_tests::mode(&m.linux_dir().join(name)) == Some(*mode))
    });
    let got: Vec<_> = modes
        .iter()
        .map(|(n, _)| {
            (
                n,
                lab3_tests::mode(&m.linux_dir().join(n)).map(|b| format!("{b:o}")),
            )
        })
        .collect();
    assert!(
        still,
        "modes on the Linux side: {got:?}\n{}",
        m.pair.output()
    );
    let new_mode = lab3_tests::mode(&m.linux_dir().join("new.txt")).unwrap();
    assert_eq!(new_mode & 0o7000, 0, "{new_mode:o}");
    assert_eq!(new_mode & 0o600, 0o600, "{new_mode:o}");
    m.assert_no_conflict();
}

both_ways!(a_name_windows_cannot_store_is_reported_once);
fn a_name_windows_cannot_store_is_reported_once(layout: Layout) {
    let Some(m) = Mixed::start(layout, |linux, _| {
        write_file(linux, "ok.txt", b"fine", None);
    }) else {
        return;
    };
    m.wait_both("ok.txt", b"fine");
    write_file(m.linux_dir(), "q?.txt", b"no such name on windows", None);
    write_file(m.linux_dir(), "after.txt", b"still syncs", None);
    m.wait_both("after.txt", b"still syncs");
    m.pair.wait(10, "q?.txt reported on both consoles", || {
        m.linux().said(&["q?.txt"]) || m.linux().logged(&["q?.txt"])
    });
    m.pair
        .wait(10, "q?.txt reported on the Windows console", || {
            m.windows().said(&["q?.txt"]) || m.windows().logged(&["q?.txt"])
        });
    // Several retry periods (3 s) later: still once on each console.
    std::thread::sleep(Duration::from_secs(7));
    let lines = m.lines_naming("q?.txt");
    let per_side = |s: &str| lines.iter().filter(|l| l.starts_with(s)).count();
    assert!(
        per_side("[server_a]") == 1 && per_side("[server_b]") == 1,
        "q?.txt should be reported once per console: {lines:#?}"
    );
    assert!(
        !m.linux().said(&["created", "q?.txt"]),
        "the Linux side says it was created: {lines:#?}"
    );
    let status = m.pair.lab3(&["status"]);
    assert!(
        text(&status.stdout).contains("q?.txt"),
        "lab3 status does not name it:\n{}",
        text(&status.stdout)
    );
    assert_eq!(
        read(&m.linux_dir().join("q?.txt")).unwrap(),
        b"no such name on windows"
    );
}

both_ways!(a_file_held_open_on_windows_is_replaced_once_closed);
/// A Windows process holds a file open without sharing: the Windows server
/// cannot replace it with a change from Linux until it is closed.
fn a_file_held_open_on_windows_is_replaced_once_closed(layout: Layout) {
    let Some(m) = Mixed::start(layout, |linux, _| {
        write_file(linux, "incoming.txt", b"v1", None);
    }) else {
        return;
    };
    m.wait_both("incoming.txt", b"v1");
    let held = wine().unwrap().hold(&m.windows_dir().join("incoming.txt"));
    write_file(m.linux_dir(), "incoming.txt", b"v2 from linux", None);
    let w_in = m.windows_dir().join("incoming.txt");
    // (A sharing violation, or access denied where the version is kept by
    // a hard link or a copy of the held file before the replace.)
    m.pair.wait(15, "the held file reported", || {
        m.windows().said(&[" error ", "incoming.txt"])
    });
    // While held, it does not move (a few retries).
    let kept = holds_for(Duration::from_secs(4), || {
        read(&w_in).as_deref() == Some(b"v1")
    });
    assert!(
        kept,
        "a held file was replaced under Wine?\n{}",
        m.pair.output()
    );
    close(held);
    m.wait_both("incoming.txt", b"v2 from linux");
    m.assert_no_conflict();
}

both_ways!(a_file_held_open_on_windows_is_sent_once_closed);
/// A file changed on the Windows side while a Windows process holds it
/// open without sharing: the Windows server cannot read it until it is
/// closed, and must send it then.
fn a_file_held_open_on_windows_is_sent_once_closed(layout: Layout) {
    let Some(m) = Mixed::start(layout, |_, windows| {
        write_file(windows, "outgoing.txt", b"v1", None);
    }) else {
        return;
    };
    m.wait_both("outgoing.txt", b"v1");
    let held = wine().unwrap().hold(&m.windows_dir().join("outgoing.txt"));
    // Written from Linux: Wine's sharing rules bind Windows programs only.
    write_file(m.windows_dir(), "outgoing.txt", b"v2 from windows", None);
    let l_out = m.linux_dir().join("outgoing.txt");
    let kept = holds_for(Duration::from_secs(4), || {
        read(&l_out).as_deref() == Some(b"v1")
    });
    assert!(
        kept,
        "a held file was read under Wine?\n{}",
        m.pair.output()
    );
    close(held);
    m.wait_both("outgoing.txt", b"v2 from windows");
    m.assert_no_conflict();
}

both_ways!(a_held_file_is_reported_by_name);
fn a_held_file_is_reported_by_name(layout: Layout) {
    let Some(m) = Mixed::start(layout, |linux, _| {
        write_file(linux, "busy.txt", b"v1", None);
    }) else {
        return;
    };
    m.wait_both("busy.txt", b"v1");
    let held = wine().unwrap().hold(&m.windows_dir().join("busy.txt"));
    write_file(m.linux_dir(), "busy.txt", b"v2", None);
    m.pair.wait(10, "busy.txt in lab3 status", || {
        text(&m.pair.lab3(&["status"]).stdout).contains("busy.txt")
    });
    close(held);
    m.wait_both("busy.txt", b"v2");
    m.pair.wait(10, "busy.txt no longer in lab3 status", || {
        !text(&m.pair.lab3(&["status"]).stdout).contains("busy.txt")
    });
}

/// Lets a `hold.exe` close its file and end.
fn close(mut held: std::process::Child) {
    drop(held.stdin.take());
    let _ = held.wait();
}
