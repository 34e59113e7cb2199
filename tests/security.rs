//! The contract's "Safety" section over the real binaries (listing only,
//! `--no-sync`): the shared token, the handshake timeout, refusals with an
//! `Error` frame, the frame size cap and the connection cap.
//!
//! The raw-socket tests speak the wire by hand (TLS, then 4-byte big-endian
//! length, kind byte, JSON) so that they test the protocol, not our codec.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::handshake::HANDSHAKE_TIMEOUT;
use common::protocol::{MAX_FRAME_LEN, PROTOCOL_VERSION};
use common::server::MAX_CONNECTIONS;
use lab3_tests::*;
use serde_json::{json, Value};

// ------------------------------------------------------------ raw wire

/// A connection spoken to frame by frame, over TLS as the programs speak.
struct Raw {
    c: RawConn,
}

/// What reading one frame gave.
#[derive(Debug)]
enum Got {
    Frame(Value),
    /// The server closed the connection (EOF or reset).
    Closed,
    /// Nothing within the read timeout.
    Silent,
}

impl Raw {
    fn connect(addr: &str) -> Raw {
        Raw {
            c: RawConn::connect(addr),
        }
    }

    fn send_bytes(&mut self, b: &[u8]) {
        self.c.send_raw(b);
    }

    fn send(&mut self, v: Value) {
        self.c.send_json(&v);
    }

    fn hello(&mut self, version: u32, role: &str, token: Option<&str>) {
        let hello = self.c.hello(version, role, 0, token);
        self.send(hello);
    }

    /// Says hello as a client and checks the welcome.
    fn handshake(addr: &str) -> Raw {
        let mut r = Raw::connect(addr);
        r.hello(PROTOCOL_VERSION, "client", None);
        match r.read() {
            Got::Frame(v) if v["type"] == "welcome" => r,
            other => panic!("expected a welcome, got {other:?}"),
        }
    }

    fn read(&mut self) -> Got {
        match self.c.try_read_frame() {
            Ok(Some((0, body))) => Got::Frame(serde_json::from_slice(&body).expect("JSON frame")),
            Ok(Some((kind, _))) => Got::Frame(json!({"data_frame_kind": kind})),
            Ok(None) => Got::Closed,
            Err(e) => closed_or_silent(e),
        }
    }

    /// Reads frames until the server closes; returns them, or panics if the
    /// connection is still open after the read timeout.
    fn frames_until_closed(&mut self) -> Vec<Value> {
        let mut frames = Vec::new();
        loop {
            match self.read() {
                Got::Frame(v) => frames.push(v),
                Got::Closed => return frames,
                Got::Silent => panic!("connection still open; got {frames:?}"),
            }
        }
    }

    fn list(&mut self) -> Value {
        self.send(json!({"type": "list_request"}));
        match self.read() {
            Got::Frame(v) if v["type"] == "listing_chunk" => v,
            other => panic!("expected a listing, got {other:?}"),
        }
    }
}

/// A length prefix, a JSON kind byte and the first byte of JSON, in one
/// write (a second write could meet the server's close).
fn frame_head(len: u32) -> Vec<u8> {
    let mut b = len.to_be_bytes().to_vec();
    b.extend_from_slice(&[0, b'{']);
    b
}

fn closed_or_silent(e: std::io::Error) -> Got {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Got::Silent,
        _ => Got::Closed,
    }
}

/// The one `error` frame in `frames`, or a panic.
fn error_text(frames: &[Value]) -> String {
    match frames {
        [v] if v["type"] == "error" => v["body"]["message"].as_str().unwrap().to_string(),
        _ => panic!("expected one error frame, got {frames:?}"),
    }
}

fn one_file(a: &Path, b: &Path) {
    write_file(a, "in_a.txt", b"a", None);
    write_file(b, "in_b.txt", b"bb", None);
}

/// `lab3 --json` succeeded and listed both sides.
fn assert_lists_both(out: &std::process::Output, pair: &Pair) {
    assert!(
        out.status.success(),
        "lab3 failed: {}\n{}",
        text(&out.stderr),
        pair.output()
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["peer"], "connected", "{doc}");
    assert_eq!(doc["files"].as_array().unwrap().len(), 2, "{doc}");
}

/// lab3 failed the way the contract says: non-zero, nothing on stdout, one
/// `lab3:` line on stderr that mentions `word`.
fn assert_one_line_failure(out: &std::process::Output, word: &str) {
    let err = text(&out.stderr);
    assert!(!out.status.success(), "lab3 should fail; stderr: {err}");
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err:?}");
    assert!(err.starts_with("lab3: ") && err.contains(word), "{err:?}");
}

// ------------------------------------------------------------------ token

/// Runs `run` until its answer is not "try again later" (each bad token
/// proof makes that address wait one more second before the next is
/// checked; see `common::throttle`).
fn checked(mut run: impl FnMut() -> std::process::Output) -> std::process::Output {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let out = run();
        if !text(&out.stderr).contains("too many bad token proofs") || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_token_is_required_of_clients_and_accepted_by_flag_or_env() {
    let pair = Pair::start_with_args(&["--no-sync", "--token", "s3cret"], one_file);

    let t = Instant::now();
    let none = pair.lab3(&["--json"]);
    assert_one_line_failure(&none, "bad or missing token");
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "a bad proof is answered late"
    );
    let wrong = checked(|| pair.lab3(&["--json", "--token", "guess"]));
    assert_one_line_failure(&wrong, "bad or missing token");
    let wrong_env = checked(|| lab3_env(&pair.a.addr, &["--json"], &[("LAB3_TOKEN", "guess")]));
    assert_one_line_failure(&wrong_env, "bad or missing token");
    // The answer does not depend on which part of the token is wrong.
    let prefix = checked(|| pair.lab3(&["--json", "--token", "s3cre"]));
    assert_eq!(text(&prefix.stderr), text(&wrong.stderr));
    // Right after a failure, the next proof from this address is not even
    // checked (the right token included): it must wait its turn.
    let early = pair.lab3(&["--json", "--token", "s3cret"]);
    assert_one_line_failure(&early, "too many bad token proofs from 127.0.0.1");

    assert_lists_both(
        &checked(|| pair.lab3(&["--json", "--token", "s3cret"])),
        &pair,
    );
    let env = lab3_env(&pair.a.addr, &["--json"], &[("LAB3_TOKEN", "s3cret")]);
    assert_lists_both(&env, &pair);

    pair.wait(5, "A to log the refusals", || {
        pair.a.logged(&[
            "connection from 127.0.0.1:",
            "refused",
            "bad or missing token",
        ])
    });
}

#[test]
fn server_a_whose_token_b_does_not_share_lists_its_own_side_and_says_why() {
    let root = TempDir::new().unwrap();
    let (dir_a, dir_b) = (root.path().join("a"), root.path().join("b"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    one_file(&dir_a, &dir_b);
    // B takes its token from the environment, A from the flag.
    let b = Server::start_env(
        "server_b",
        vec![
            "--dir".into(),
            dir_b.display().to_string(),
            "--state-dir".into(),
            root.path().join("sb").display().to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--no-sync".into(),
        ],
        &[("LAB3_TOKEN", "b-secret")],
    );
    let a = start_a(
        &dir_a,
        &root.path().join("sa"),
        &b.addr,
        &["--no-sync".into(), "--token".into(), "a-secret".into()],
    );

    let out = lab3(&a.addr, &["--json", "--token", "a-secret"]);
    let both = format!("{}\n{}", a.output(), b.output());
    assert!(out.status.success(), "{}\n{both}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["peer"], "unreachable", "{doc}");
    assert_eq!(doc["files"][0]["name"], "in_a.txt");
    assert_eq!(doc["files"].as_array().unwrap().len(), 1);
    assert!(text(&out.stderr).contains("unreachable"));

    assert!(
        wait_until(Duration::from_secs(5), || a
            .logged(&["unreachable", "bad or missing token"])
            && b.logged(&["refused", "bad or missing token"])),
        "both servers should log why\n{}\n{}",
        a.output(),
        b.output()
    );

    // And B with the token in its environment serves an A that has it.
    let a2 = start_a(
        &dir_a,
        &root.path().join("sa2"),
        &b.addr,
        &["--no-sync".into(), "--token".into(), "b-secret".into()],
    );
    let out = lab3(&a2.addr, &["--json", "--token", "b-secret"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["peer"], "connected", "{doc}\n{}", a2.output());
}

// -------------------------------------------------------------- handshake

#[test]
fn a_connection_that_never_says_hello_is_dropped_while_others_are_served() {
    let pair = Pair::start_with_args(&["--no-sync"], one_file);
    let started = Instant::now();
    let mut silent_a = Raw::connect(&pair.a.addr);
    let mut silent_b = Raw::connect(&pair.b.addr);

    // Meanwhile, clients are served at once (A's own dial to B included).
    for _ in 0..3 {
        let t = Instant::now();
        assert_lists_both(&pair.lab3(&["--json"]), &pair);
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }

    for silent in [&mut silent_a, &mut silent_b] {
        let frames = silent.frames_until_closed();
        let waited = started.elapsed();
        let why = error_text(&frames);
        assert!(why.contains("timed out"), "{why}");
        assert!(
            waited >= HANDSHAKE_TIMEOUT - Duration::from_millis(500)
                && waited <= HANDSHAKE_TIMEOUT + Duration::from_secs(3),
            "closed after {waited:?}"
        );
    }
    pair.wait(5, "the servers to log the timeouts", || {
        pair.a.logged(&["refused", "timed out"]) && pair.b.logged(&["refused", "timed out"])
    });
}

#[test]
fn a_wrong_version_a_wrong_role_or_no_hello_is_refused_with_an_error_frame() {
    let pair = Pair::start_with_args(&["--no-sync"], one_file);

    let mut r = Raw::connect(&pair.a.addr);
    r.hello(PROTOCOL_VERSION + 1, "client", None);
    let why = error_text(&r.frames_until_closed());
    assert!(why.contains("version"), "{why}");

    let mut r = Raw::connect(&pair.a.addr);
    r.hello(PROTOCOL_VERSION, "server_b", None);
    let why = error_text(&r.frames_until_closed());
    assert!(why.contains("does not serve"), "{why}");

    // Server B serves Server A, and clients (listings when A is down);
    // not another Server B.
    let mut r = Raw::connect(&pair.b.addr);
    r.hello(PROTOCOL_VERSION, "server_b", None);
    let why = error_text(&r.frames_until_closed());
    assert!(why.contains("does not serve"), "{why}");

    let mut r = Raw::connect(&pair.a.addr);
    r.send(json!({"type": "list_request"}));
    let why = error_text(&r.frames_until_closed());
    assert!(why.contains("expected hello"), "{why}");

    assert_lists_both(&pair.lab3(&["--json"]), &pair);
}

// ----------------------------------------------------------------- frames

#[test]
fn an_oversized_or_malformed_frame_ends_that_connection_only() {
    let pair = Pair::start_with_args(&["--no-sync"], one_file);
    let mut bystander = Raw::handshake(&pair.a.addr);
    bystander.list();

    // Over the cap, announced after the handshake: the connection ends
    // without the server waiting for (or buffering) the 8 MiB.
    let mut big = Raw::handshake(&pair.a.addr);
    big.send_bytes(&frame_head((MAX_FRAME_LEN + 2) as u32));
    let t = Instant::now();
    big.frames_until_closed();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    // A frame within the cap but over the pre-handshake limit, before hello:
    // refused with an Error frame.
    let mut early = Raw::connect(&pair.a.addr);
    early.send_bytes(&frame_head(1024 * 1024));
    let why = error_text(&early.frames_until_closed());
    assert!(why.contains("size limit"), "{why}");

    // Broken JSON in a well-formed frame, and an unknown frame kind.
    let mut bad = Raw::handshake(&pair.a.addr);
    bad.send_bytes(&[0, 0, 0, 6, 0, b'{', b'n', b'o', b'p', b'e']);
    bad.frames_until_closed();
    let mut bad = Raw::handshake(&pair.a.addr);
    bad.send_bytes(&[0, 0, 0, 2, 7, 0]);
    bad.frames_until_closed();

    // A well-formed request a client may not make gets an Error reply and the
    // connection stays.
    let mut odd = Raw::handshake(&pair.a.addr);
    odd.send(json!({"type": "sync_start"}));
    match odd.read() {
        Got::Frame(v) if v["type"] == "error" => {}
        other => panic!("expected an error reply, got {other:?}"),
    }
    odd.list();

    // Everyone else is still served, on old connections and new ones.
    let listing = bystander.list();
    assert_eq!(listing["body"]["peer"], "connected", "{listing}");
    assert_lists_both(&pair.lab3(&["--json"]), &pair);
    pair.wait(5, "A to log the oversized frame", || {
        pair.a.logged(&["over the size limit"])
    });
    assert!(pair.a.logged(&["malformed message"]), "{}", pair.output());
    assert!(
        pair.a.logged(&["unknown frame kind 7"]),
        "{}",
        pair.output()
    );
}

// -------------------------------------------------------- connection cap

#[test]
fn idle_connections_past_the_cap_do_not_lock_clients_out_for_long() {
    let pair = Pair::start_with_args(&["--no-sync"], one_file);
    let started = Instant::now();
    // More silent connections than the server serves at once: the extra
    // ones wait in the listen backlog behind the first MAX_CONNECTIONS.
    let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS + 40)
        .map(|_| TcpStream::connect(&pair.a.addr).expect("connect"))
        .collect();

    // lab3 gives up after its own handshake timeout while every slot is held;
    // once the silent ones time out, a slot frees and it gets through.
    let mut tries = 0;
    let ok = wait_until(HANDSHAKE_TIMEOUT * 3, || {
        tries += 1;
        pair.lab3(&["--json"]).status.success()
    });
    assert!(
        ok,
        "no client served {:?} after {} silent connections ({tries} tries)\n{}",
        started.elapsed(),
        idle.len(),
        pair.output()
    );
    drop(idle);
}

// ------------------------------------------------------------ peer paths

/// A stand-in for Server B that answers every listing request with `entries`.
fn fake_b(entries: Value) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let identity = fresh_identity();
        for s in listener.incoming() {
            let mut b = Raw {
                c: RawConn::accept(s.unwrap(), &identity),
            };
            let Got::Frame(_hello) = b.read() else {
                continue;
            };
            let welcome = b.c.welcome(PROTOCOL_VERSION, "server_b", 0, None);
            b.send(welcome);
            let Got::Frame(_request) = b.read() else {
                continue;
            };
            b.send(json!({"type": "inventory_chunk",
                          "body": {"entries": entries.clone(), "done": true}}));
        }
    });
    addr
}

#[test]
fn paths_in_b_inventory_are_checked_by_a() {
    let entry = |path: &str| {
        json!({"state": "present", "path": path, "size": 1,
                                    "mtime_ns": 0, "mode": 420, "dirty": false})
    };
    let hostile = ["../../etc/passwd", "/etc/shadow", "a/../../x", "a\\b"];
    let mut entries: Vec<Value> = hostile.iter().map(|p| entry(p)).collect();
    entries.push(entry("fine.txt"));
    let b = fake_b(Value::Array(entries));
    let root = TempDir::new().unwrap();
    let a = start_a(
        &root.path().join("a"),
        &root.path().join("sa"),
        &b,
        &["--no-sync".into()],
    );
    let out = lab3(&a.addr, &["--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    for f in doc["files"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        assert!(
            common::paths::check(name).is_ok(),
            "A listed B's path {name:?}\n{doc}"
        );
    }
    assert!(
        wait_until(Duration::from_secs(5), || a.logged(&["refused path"])),
        "A should log the refused paths\n{}",
        a.output()
    );
}
