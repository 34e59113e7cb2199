//! The composite listing, end to end over the real binaries.

use lab3_tests::*;

#[test]
fn merges_and_sorts_both_sides_with_exact_sizes_and_times() {
    let pair = Pair::start_with_args(&["--no-sync"], |a, b| {
        write_file(a, "b.txt", b"from a", Some(1_700_000_000_123_456_789));
        write_file(b, "a.txt", b"from b!", Some(1_700_000_001_000_000_001));
        write_file(a, "both.txt", b"old", Some(1_700_000_000_000_000_000));
        write_file(b, "both.txt", b"newer!", Some(1_700_000_002_000_000_000));
    });
    let doc = pair.listing();
    assert_eq!(doc["peer"], "connected");
    let files = doc["files"].as_array().unwrap();
    let names: Vec<_> = files.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert!(
        names.starts_with(&["a.txt", "b.txt", "both.txt"]),
        "{names:?}"
    );
    assert_eq!(files[0]["index"], 0);
    assert_eq!(files[0]["size"], 7);
    assert_eq!(files[0]["where"], "b");
    assert_eq!(files[0]["modified"], "2023-11-14T22:13:21.000000001Z");
    assert_eq!(files[1]["modified"], "2023-11-14T22:13:20.123456789Z");
    assert_eq!(files[1]["where"], "a");
    assert_eq!(files[2]["size"], 6, "the newer copy is shown");
    assert_eq!(files[2]["where"], "both");
    assert_eq!(files[2]["locked"], false);
    assert_eq!(files[2]["queued"], 0);
}

#[test]
fn equal_mtimes_show_a_copy() {
    let t = Some(1_700_000_000_000_000_000);
    let pair = listing_pair(|a, b| {
        write_file(a, "same.txt", b"aaaa", t);
        write_file(b, "same.txt", b"bb", t);
    });
    let doc = pair.listing();
    assert_eq!(row(&doc, "same.txt")["size"], 4, "{doc}");
    assert_eq!(row(&doc, "same.txt")["where"], "both");
}

#[test]
fn empty_folders_give_an_empty_listing() {
    let pair = listing_pair(|_, _| {});
    let doc = pair.listing();
    assert_eq!(doc["peer"], "connected");
    assert_eq!(doc["files"], serde_json::json!([]));
    let out = assert_ok(&pair.lab3(&[]));
    assert!(out.contains("0 files"), "{out}");
}

#[test]
fn degraded_listing_when_b_is_down() {
    let mut pair = listing_pair(|a, b| {
        write_file(a, "only_a.txt", b"a", None);
        write_file(b, "only_b.txt", b"b", None);
    });
    pair.b.kill();
    let out = pair.lab3(&["--json"]);
    let doc: serde_json::Value = serde_json::from_str(&assert_ok(&out)).unwrap();
    assert_eq!(doc["peer"], "unreachable");
    assert_eq!(names(&doc), ["only_a.txt"]);
    assert_eq!(row(&doc, "only_a.txt")["where"], "a");
    let err = text(&out.stderr);
    assert!(
        err.starts_with("lab3: warning:") && err.contains("unreachable"),
        "{err}"
    );
    // The table says so too, and still exits 0.
    let table = assert_ok(&pair.lab3(&[]));
    assert!(
        table.contains("only_a.txt") && table.contains("server B unreachable"),
        "{table}"
    );
    assert!(pair.a.logged(&["unreachable"]), "{}", pair.output());
}

#[test]
fn error_when_a_is_down() {
    let addr = dead_addr();
    for args in [&[][..], &["--json"]] {
        let line = assert_one_line_error(&lab3(&addr, args));
        assert!(line.contains(&addr), "{line}");
    }
}

#[test]
fn malformed_commands_fail_with_one_line() {
    let addr = dead_addr();
    for args in [
        &["-frobnicate"][..],
        &["lock"],
        &["unlock"],
        &["frobnicate"],
        &["--json", "--nope"],
    ] {
        let line = assert_one_line_error(&lab3(&addr, args));
        assert!(
            !line.contains(&addr),
            "{args:?} is refused before dialling: {line}"
        );
    }
}

#[test]
fn human_table_has_names_human_sizes_and_a_summary() {
    let pair = listing_pair(|a, b| {
        write_file(a, "small.txt", b"hello", None);
        write_file(b, "two_k.bin", &[0u8; 2048], None);
        let big = write_file(a, "big.bin", b"", None);
        std::fs::File::options()
            .write(true)
            .open(big)
            .unwrap()
            .set_len(3 << 20)
            .unwrap();
    });
    let out = assert_ok(&pair.lab3(&[]));
    for want in [
        "big.bin",
        "small.txt",
        "two_k.bin",
        "5 B",
        "2.0 KiB",
        "3.0 MiB",
        "Index",
        "Name",
        "Size",
        "Modified",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    let last = out.lines().last().unwrap();
    assert_eq!(last, "3 files, 3.0 MiB in all; server B connected");
    // Rows are in listing order, each with its index first.
    let rows: Vec<_> = out
        .lines()
        .filter(|l| *l != last)
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.parse::<usize>().ok()?, w.next()?.to_string()))
        })
        .collect();
    assert_eq!(
        rows,
        [
            (0, "big.bin".into()),
            (1, "small.txt".into()),
            (2, "two_k.bin".into())
        ]
    );
}

#[test]
fn subfolders_spaces_and_unicode_are_slash_separated_and_byte_sorted() {
    let pair = listing_pair(|a, b| {
        write_file(a, "sub/dir/deep.txt", b"1", None);
        write_file(a, "with space.txt", b"2", None);
        write_file(a, "ünïcödé ✓.txt", b"3", None);
        write_file(b, "docs/read me.md", b"4", None);
        write_file(b, "日本語/ファイル.txt", b"5", None);
        write_file(b, "Zebra.txt", b"6", None);
        std::fs::create_dir_all(b.join("empty/folder")).unwrap();
    });
    let doc = pair.listing();
    let got = names(&doc);
    let mut sorted = got.clone();
    sorted.sort(); // String's Ord is byte order
    assert_eq!(got, sorted, "sorted by byte order");
    assert_eq!(
        got,
        [
            "Zebra.txt",
            "docs/read me.md",
            "sub/dir/deep.txt",
            "with space.txt",
            "ünïcödé ✓.txt",
            "日本語/ファイル.txt",
        ]
    );
    let idx: Vec<_> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["index"].clone())
        .collect();
    assert_eq!(idx, (0..6).collect::<Vec<_>>());
    let table = assert_ok(&pair.lab3(&[]));
    assert!(
        table.contains("日本語/ファイル.txt") && table.contains("sub/dir/deep.txt"),
        "{table}"
    );
}

#[test]
fn junk_temp_files_and_symlinks_are_not_listed() {
    let pair = listing_pair(|a, b| {
        write_file(a, "real.txt", b"x", None);
        for junk in [
            ".DS_Store",
            "Thumbs.db",
            "desktop.ini",
            "~$report.docx",
            ".lab3-tmp-1",
        ] {
            write_file(a, junk, b"junk", None);
            write_file(b, &format!("sub/{junk}"), b"junk", None);
        }
        #[cfg(unix)]
        std::os::unix::fs::symlink("real.txt", a.join("link.txt")).unwrap();
        write_file(b, ".hidden", b"kept", None);
    });
    assert_eq!(names(&pair.listing()), [".hidden", "real.txt"]);
}

/// A well-framed message as the client would send it.
fn msg(m: common::protocol::Message) -> serde_json::Value {
    serde_json::to_value(m).unwrap()
}

/// Says hello over a raw connection and checks the welcome.
fn greeted(addr: &str) -> RawConn {
    let mut c = RawConn::connect(addr);
    let hello = c.hello(common::protocol::PROTOCOL_VERSION, "client", 0, None);
    c.send_json(&hello);
    let welcome = c.read_json();
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    c
}

#[test]
fn bad_bytes_end_only_their_connection() {
    let pair = listing_pair(|a, _| {
        write_file(a, "still.txt", b"here", None);
    });
    let mut json_frame = vec![0, 0, 0, 6, 0];
    json_frame.extend_from_slice(b"{nope");
    let cases: [(&str, &[u8], bool, &[&str]); 7] = [
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            false,
            &["refused", "over the"],
        ),
        (
            "a 0xFFFFFFFF length",
            &[0xff, 0xff, 0xff, 0xff, 0],
            false,
            &["refused", "4294967295 bytes"],
        ),
        (
            "bad JSON",
            &json_frame,
            false,
            &["refused", "malformed message"],
        ),
        (
            "an unknown frame kind",
            &[0, 0, 0, 2, 9, 9],
            false,
            &["refused", "unknown frame kind 9"],
        ),
        (
            "an empty frame",
            &[0, 0, 0, 0],
            false,
            &["refused", "empty frame"],
        ),
        (
            "hello, then an oversized length",
            &[0x7f, 0, 0, 0, 0],
            true,
            &["ended", "2130706432 bytes"],
        ),
        (
            "hello, then bad JSON",
            &json_frame,
            true,
            &["ended", "(client)", "malformed message"],
        ),
    ];
    for (what, bytes, after_hello, logged) in cases {
        let mut c = if after_hello {
            greeted(&pair.a.addr)
        } else {
            RawConn::connect(&pair.a.addr)
        };
        c.send_raw(bytes);
        assert!(c.closed_by_peer(), "A closes the connection after {what}");
        pair.wait(10, &format!("A to log {logged:?} after {what}"), || {
            pair.a.logged(logged)
        });
        assert_eq!(
            names(&pair.listing()),
            ["still.txt"],
            "listing after {what}"
        );
    }
}

#[test]
fn a_stalled_connection_does_not_block_others() {
    let pair = listing_pair(|a, _| {
        write_file(a, "x.txt", b"x", None);
    });
    let mut stalled = RawConn::connect(&pair.a.addr);
    stalled.send_raw(&[0, 0]); // half a length, then nothing
    let mut half_frame = greeted(&pair.a.addr);
    half_frame.send_raw(&[0, 0, 0, 100, 0, b'{']); // a frame that never ends
    assert_eq!(names(&pair.listing()), ["x.txt"]);
    // The handshake has a deadline: the silent one is dropped.
    assert!(
        stalled.closed_by_peer(),
        "A drops a connection that never says hello"
    );
    drop(half_frame);
}

#[test]
fn unknown_request_gets_an_error_and_the_connection_stays() {
    use common::protocol::Message;
    let pair = listing_pair(|a, _| {
        write_file(a, "x.txt", b"x", None);
    });
    let mut c = greeted(&pair.a.addr);
    for wrong in [
        msg(Message::InventoryRequest),
        msg(Message::Welcome {
            version: 1,
            role: common::protocol::Role::ServerB,
            proof: None,
            time_ns: 0,
        }),
    ] {
        c.send_json(&wrong);
        let reply = c.read_json();
        assert_eq!(reply["type"], "error", "{wrong} -> {reply}");
        assert!(
            reply["body"]["message"]
                .as_str()
                .unwrap()
                .contains("unknown request"),
            "{reply}"
        );
    }
    c.send_json(&msg(Message::ListRequest));
    let chunk = c.read_json();
    assert_eq!(chunk["type"], "listing_chunk", "{chunk}");
    assert_eq!(chunk["body"]["done"], true);
    assert_eq!(chunk["body"]["rows"][0]["name"], "x.txt");
}
