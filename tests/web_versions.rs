//! The web page's versions view over HTTP, against real servers (issue 12;
//! CONTRACT.md, "The web page": versions with restore; "Versions"): the
//! list of one file's versions and of every file's, a restore at each side
//! that syncs like `lab3 restore`, and bad requests refused with a clear
//! error, changing nothing. (`tests/web_page.rs` clicks the button in a
//! real browser.)

use std::io::{Read, Write};

use lab3_tests::*;
use serde_json::{json, Value};

/// The contract's 5 seconds, with slack for a loaded machine and a debug build.
const SECS: u64 = 10;

/// Servers B and A over fresh folders, A with its page on port 0, linked.
fn linked_web_pair() -> Pair {
    let pair = web_pair(None, |_, _| {});
    pair.wait_linked(20);
    pair
}

/// One HTTP/1.1 request to the page at `url` (`http://ADDR/`): the status
/// and the body.
fn http(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// The page's cross-site-request secret, from the page itself.
fn csrf(url: &str) -> String {
    let (status, page) = http(url, "GET", "/", &[], "");
    assert_eq!(status, 200, "{page}");
    let at = page
        .find(r#"name="lab3-csrf" content=""#)
        .expect("the csrf meta tag");
    let rest = &page[at + r#"name="lab3-csrf" content=""#.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

fn get(url: &str, path: &str) -> (u16, Value) {
    let (status, body) = http(url, "GET", path, &[], "");
    (status, serde_json::from_str(&body).unwrap_or(json!(body)))
}

fn post(url: &str, path: &str, headers: &[(&str, &str)], body: &Value) -> (u16, Value) {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    let (status, body) = http(url, "POST", path, &all, &body.to_string());
    (status, serde_json::from_str(&body).unwrap_or(json!(body)))
}

#[test]
fn the_page_lists_versions_of_a_file_and_of_all_and_restores_at_both_sides() {
    let pair = linked_web_pair();
    let url = pair.a.web_url();
    let (fa, fb) = (pair.dir_a.join("notes.txt"), pair.dir_b.join("notes.txt"));
    write_file(&pair.dir_a, "notes.txt", b"first", None);
    write_file(&pair.dir_a, "other.txt", b"other", None);
    pair.wait_same(SECS, "notes.txt");
    pair.wait_same(SECS, "other.txt");
    // An update from B: A keeps "first". A delete from A: B keeps B's copy.
    write_file(&pair.dir_b, "notes.txt", b"second, longer", None);
    pair.wait(SECS, "B's update at A", || holds(&fa, b"second, longer"));
    std::fs::remove_file(&fa).unwrap();
    pair.wait(SECS, "the delete at B", || !fb.exists());
    write_file(&pair.dir_b, "other.txt", b"other, again", None);
    pair.wait(SECS, "B's update of other.txt at A", || {
        holds(&pair.dir_a.join("other.txt"), b"other, again")
    });

    // One file's versions: both sides', newest first, as lab3 lists them.
    let (status, doc) = get(&url, "/api/versions?path=notes.txt");
    assert_eq!(status, 200, "{doc}");
    assert_eq!(
        version_summary(&doc),
        vec![
            ("b".into(), "deleted".into(), 14),
            ("a".into(), "replaced".into(), 5)
        ],
        "{doc}"
    );
    assert_eq!(doc["path"], "notes.txt");
    assert_eq!(doc["peer"], "connected");
    let cli: Value =
        serde_json::from_str(&assert_ok(&pair.lab3(&["versions", "notes.txt", "--json"]))).unwrap();
    for (page, cli) in doc["versions"]
        .as_array()
        .unwrap()
        .iter()
        .zip(cli["versions"].as_array().unwrap())
    {
        for key in [
            "side", "id", "path", "kept", "why", "size", "modified", "mode",
        ] {
            assert_eq!(page[key], cli[key], "{key}: {page} against {cli}");
        }
        assert!(page["kept_ms"].as_i64().is_some_and(|ms| ms > 0), "{page}");
    }
    let b_id = doc["versions"][0]["id"].as_str().unwrap().to_string();
    let a_id = doc["versions"][1]["id"].as_str().unwrap().to_string();

    // Every file's versions: these two and other.txt's.
    let (status, all) = get(&url, "/api/versions");
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["path"], Value::Null);
    assert_eq!(all["more"], false, "{all}");
    let mut paths: Vec<&str> = all["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["path"].as_str().unwrap())
        .collect();
    paths.sort();
    assert_eq!(paths, ["notes.txt", "notes.txt", "other.txt"], "{all}");

    // Restore A's version: put back at A (its console says so); it syncs to B.
    let token = csrf(&url);
    let csrf_header = ("X-Lab3-Csrf", token.as_str());
    let (status, done) = post(
        &url,
        "/api/restore",
        &[csrf_header],
        &json!({ "path": "notes.txt", "version": a_id }),
    );
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["restored"], "notes.txt");
    assert_eq!(done["version"]["id"], a_id.as_str());
    assert_eq!(done["version"]["side"], "a");
    pair.wait(SECS, "the restore on both sides", || {
        holds(&fa, b"first") && holds(&fb, b"first")
    });
    pair.wait(SECS, "A to say restored", || {
        pair.a.said(&["restored", "notes.txt"])
    });

    // Restore B's: done at B, which holds it; it syncs to A, and what it
    // replaces is kept at both sides.
    let (status, done) = post(
        &url,
        "/api/restore",
        &[csrf_header],
        &json!({ "path": "notes.txt", "version": b_id }),
    );
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["version"]["side"], "b");
    pair.wait(SECS, "B's version on both sides", || {
        holds(&fa, b"second, longer") && holds(&fb, b"second, longer")
    });
    assert!(pair.b.said(&["restored", "notes.txt"]), "{}", pair.output());
    pair.wait(SECS, "the replaced copies kept at both sides", || {
        let (_, doc) = get(&url, "/api/versions?path=notes.txt");
        let s = version_summary(&doc);
        let kept = |side: &str| s.iter().filter(|v| v.0 == side && v.2 == 5).count();
        kept("a") >= 2 && kept("b") >= 1
    });
}

#[test]
fn bad_versions_requests_are_refused_with_a_clear_error_and_change_nothing() {
    let pair = linked_web_pair();
    let url = pair.a.web_url();
    let fa = pair.dir_a.join("f.txt");
    write_file(&pair.dir_a, "f.txt", b"one", None);
    pair.wait_same(SECS, "f.txt");
    write_file(&pair.dir_b, "f.txt", b"two", None);
    pair.wait(SECS, "B's update at A", || holds(&fa, b"two"));
    let (_, doc) = get(&url, "/api/versions?path=f.txt");
    let id = doc["versions"][0]["id"].as_str().unwrap().to_string();
    let token = csrf(&url);
    let csrf_header = ("X-Lab3-Csrf", token.as_str());

    // A path outside the folder.
    for path in ["../etc/passwd", "/etc/passwd", "a/../../b"] {
        let (status, doc) = post(
            &url,
            "/api/restore",
            &[csrf_header],
            &json!({ "path": path, "version": id }),
        );
        assert_eq!(status, 400, "{path}: {doc}");
        let e = doc["error"].as_str().unwrap();
        assert!(e.contains("refused path") && !e.contains('\n'), "{e}");
        let q = format!("/api/versions?path={}", path.replace('/', "%2F"));
        let (status, doc) = get(&url, &q);
        assert_eq!(status, 400, "{path}: {doc}");
    }
    // An ID that is not one: unknown at A, and not of either side.
    for (version, says) in [
        ("a-00000000", "no version a-00000000 of f.txt at server A"),
        ("x-1", "version IDs start with a- or b-"),
    ] {
        let (status, doc) = post(
            &url,
            "/api/restore",
            &[csrf_header],
            &json!({ "path": "f.txt", "version": version }),
        );
        assert_eq!(status, 409, "{doc}");
        assert!(doc["error"].as_str().unwrap().contains(says), "{doc}");
    }
    // A body without a path.
    let (status, doc) = post(
        &url,
        "/api/restore",
        &[csrf_header],
        &json!({ "version": id }),
    );
    assert!((400..500).contains(&status), "{status} {doc}");
    // The page's mutating rules: no CSRF header, or another site's Origin.
    let body = json!({ "path": "f.txt", "version": id });
    let (status, doc) = post(&url, "/api/restore", &[], &body);
    assert_eq!(status, 403, "{doc}");
    assert!(
        doc["error"].as_str().unwrap().contains("X-Lab3-Csrf"),
        "{doc}"
    );
    let (status, doc) = post(
        &url,
        "/api/restore",
        &[csrf_header, ("Origin", "http://evil.example")],
        &body,
    );
    assert_eq!(status, 403, "{doc}");
    assert!(
        doc["error"].as_str().unwrap().contains("cross-site"),
        "{doc}"
    );
    // None of these restored anything.
    assert!(holds(&fa, b"two"));
    assert!(!pair.a.said(&["restored"]), "{}", pair.output());
    // The one good request still works.
    let (status, doc) = post(&url, "/api/restore", &[csrf_header], &body);
    assert_eq!(status, 200, "{doc}");
    pair.wait(SECS, "the restore on both sides", || {
        holds(&fa, b"one") && holds(&pair.dir_b.join("f.txt"), b"one")
    });
}
