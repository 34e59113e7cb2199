//! The contract's "links are encrypted" over the real binaries: what an
//! eavesdropper on either link records, what a man in the middle with its
//! own key gets (refused, by A and by lab3, with a token and with a pinned
//! fingerprint), the keys themselves, and token guessing that costs only
//! the guesser.

use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::protocol::PROTOCOL_VERSION;
use lab3_tests::*;
use serde_json::Value;

const TOKEN: &str = "tok-7c41e09d2b";

/// A marker no run of this test has used before.
fn marker(what: &str) -> String {
    format!("{what}{:x}{:x}", now_ns(), std::process::id())
}

fn string_args(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// B, a recorder in front of B, A dialling the recorder, and a recorder in
/// front of A: every byte on both links is kept.
struct Tapped {
    root: TempDir,
    b: Server,
    a: Server,
    to_b: Recorder,
    to_a: Recorder,
}

impl Tapped {
    fn start(extra: &[&str]) -> Tapped {
        let root = TempDir::new().unwrap();
        let b = b_in(root.path(), "", "127.0.0.1:0", extra);
        let to_b = Recorder::start(&b.addr);
        let a = a_in(root.path(), "", &to_b.addr, extra);
        let to_a = Recorder::start(&a.addr);
        Tapped {
            root,
            b,
            a,
            to_b,
            to_a,
        }
    }

    fn dir(&self, side: &str) -> std::path::PathBuf {
        self.root.path().join(side)
    }

    fn output(&self) -> String {
        format!("{}\n{}", self.a.output(), self.b.output())
    }
}

#[test]
fn a_recording_relay_on_either_link_sees_neither_names_nor_contents_nor_the_token() {
    let t = Tapped::start(&["--token", TOKEN]);
    let (name_marker, content_marker) = (marker("name"), marker("content"));
    let name = format!("report-{name_marker}.txt");
    let content = content_marker.repeat(4096); // some hundreds of KiB
    write_file(&t.dir("a"), &name, content.as_bytes(), None);

    // The sync of the file, A to B, through the recorder.
    let arrived = wait_until(Duration::from_secs(20), || {
        read(&t.dir("b").join(&name)).as_deref() == Some(content.as_bytes())
    });
    assert!(arrived, "the file did not reach B\n{}", t.output());
    // A listing, a lock, the status and an unlock, through the other one.
    let via = &t.to_a.addr;
    for args in [
        vec!["--json"],
        vec!["lock", name.as_str()],
        vec!["status"],
        vec!["unlock", name.as_str()],
    ] {
        let mut args = args.clone();
        args.extend(["--token", TOKEN]);
        let out = lab3(via, &args);
        let said = assert_ok(&out);
        if args[0] == "--json" {
            assert!(said.contains(&name), "{said}");
            let doc: Value = serde_json::from_str(&said).unwrap();
            assert_eq!(doc["peer"], "connected", "{doc}");
        }
    }

    for (link, rec) in [("A-B", &t.to_b), ("lab3-A", &t.to_a)] {
        let bytes = rec.bytes();
        assert!(bytes.len() > 2_000, "{link}: the relay carried the traffic");
        for secret in [
            name_marker.as_bytes(),
            content_marker.as_bytes(),
            TOKEN.as_bytes(),
        ] {
            assert!(
                !rec.saw(secret),
                "{link}: {:?} crossed the wire in clear",
                String::from_utf8_lossy(secret)
            );
        }
        assert!(!rec.saw(b"\"type\""), "{link}: JSON in clear");
    }
    // The file's bytes did cross: the A-B link carried at least that much.
    assert!(t.to_b.bytes().len() > content.len());
}

#[test]
fn the_same_relay_does_see_them_over_the_benchmarks_plaintext_link() {
    // The hidden bench-only switch turns TLS off on the A-B link: the
    // recorder must then see the name, which shows it can see anything.
    let t = Tapped::start(&["--bench-plaintext"]);
    let name = format!("plain-{}.txt", marker("name"));
    write_file(&t.dir("a"), &name, b"visible", None);
    let seen = wait_until(Duration::from_secs(20), || t.to_b.saw(name.as_bytes()));
    assert!(seen, "no name in clear on a plaintext link\n{}", t.output());
}

#[test]
fn bench_plaintext_is_refused_beyond_loopback() {
    let root = TempDir::new().unwrap();
    let out = std::process::Command::new(bin("server_a"))
        .args(["--dir", &root.path().join("a").display().to_string()])
        .args(["--peer", "192.0.2.1:6001", "--bench-plaintext"])
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not a loopback address"),
        "{}",
        text(&out.stderr)
    );
}

// -------------------------------------------------------- man in the middle

/// Server A over `root/a{n}` (state `root/sa{n}`), dialling `peer`.
fn a_in(root: &Path, n: &str, peer: &str, extra: &[&str]) -> Server {
    let (dir, state) = (root.join(format!("a{n}")), root.join(format!("sa{n}")));
    start_a(&dir, &state, peer, &string_args(extra))
}

/// Server A over `root/a{n}` with no Server B (it dials an address where
/// nothing listens): `extra` is typically `--no-sync` and a `--token`.
fn lone_a(root: &Path, n: &str, extra: &[&str]) -> Server {
    a_in(root, n, &dead_addr(), extra)
}

/// Server B over `root/b{n}` (state `root/sb{n}`), listening on `listen`.
fn b_in(root: &Path, n: &str, listen: &str, extra: &[&str]) -> Server {
    let (dir, state) = (root.join(format!("b{n}")), root.join(format!("sb{n}")));
    start_b(&dir, &state, listen, &string_args(extra))
}

/// A, with `a_extra`, dialling `b` through a relay in `mode`.
fn a_behind_mitm(root: &Path, b: &Server, mode: MitmMode, a_extra: &[&str]) -> (Mitm, Server) {
    let mitm = Mitm::start(&b.addr, mode);
    let a = a_in(root, "", &mitm.addr, a_extra);
    (mitm, a)
}

/// A, with `a_extra`, dialling B through a relay in `mode`, and B
/// with `b_extra`.
fn behind_mitm(
    root: &Path,
    mode: MitmMode,
    a_extra: &[&str],
    b_extra: &[&str],
) -> (Server, Mitm, Server) {
    let b = b_in(root, "", "127.0.0.1:0", b_extra);
    let (mitm, a) = a_behind_mitm(root, &b, mode, a_extra);
    (b, mitm, a)
}

#[test]
fn without_token_or_pin_the_relay_is_a_working_relay() {
    // The control for the tests below: nothing but a token or a pin stops it.
    let root = TempDir::new().unwrap();
    let (b, _mitm, a) = behind_mitm(
        root.path(),
        MitmMode::Forward,
        &["--no-sync"],
        &["--no-sync"],
    );
    write_file(&root.path().join("b"), "from_b.txt", b"b", None);
    let doc: Value = serde_json::from_str(&assert_ok(&lab3(&a.addr, &["--json"]))).unwrap();
    assert_eq!(
        doc["peer"],
        "connected",
        "{doc}\n{}\n{}",
        a.output(),
        b.output()
    );
    assert_eq!(names(&doc), ["from_b.txt"]);
}

#[test]
fn server_a_refuses_a_man_in_the_middle_with_a_token_and_with_a_pin() {
    // With a token: A's proof, made for its session with the relay, fails
    // on the relay's session with B; B says so, and nothing syncs.
    let root = TempDir::new().unwrap();
    let token = ["--token", TOKEN];
    let (b, _mitm, a) = behind_mitm(root.path(), MitmMode::Forward, &token, &token);
    write_file(&root.path().join("b"), "from_b.txt", b"b", None);
    let both = || format!("{}\n{}", a.output(), b.output());
    assert!(
        wait_until(Duration::from_secs(10), || a
            .logged(&["cannot reach server B", "bad or missing token"])
            && b.logged(&[
                "connection from 127.0.0.1:",
                "refused",
                "bad or missing token"
            ])),
        "{}",
        both()
    );
    let doc: Value =
        serde_json::from_str(&assert_ok(&lab3(&a.addr, &["--json", "--token", TOKEN]))).unwrap();
    assert_eq!(doc["peer"], "unreachable", "{doc}");
    assert!(
        read(&root.path().join("a/from_b.txt")).is_none(),
        "{}",
        both()
    );

    // With a pin and no token: A refuses the relay's certificate, in one
    // line naming both fingerprints.
    let root = TempDir::new().unwrap();
    let b = b_in(root.path(), "", "127.0.0.1:0", &[]);
    let real = b.fingerprint();
    let (mitm, a) = a_behind_mitm(
        root.path(),
        &b,
        MitmMode::Forward,
        &["--peer-fingerprint", &real],
    );
    let relay = mitm.fingerprint.to_string();
    assert!(
        wait_until(Duration::from_secs(10), || a.logged(&[
            "server B is not trusted",
            &format!("its certificate is {relay}, not the pinned {real}")
        ])),
        "{}",
        a.output()
    );
    let out = lab3(&a.addr, &["status", "--json"]);
    let status: Value = serde_json::from_str(&assert_ok(&out)).unwrap();
    assert_eq!(status["link"]["up"], false, "{status}");

    // The same pin straight to B: the link comes up, and status shows it.
    let direct = a_in(root.path(), "2", &b.addr, &["--peer-fingerprint", &real]);
    assert!(
        wait_until(Duration::from_secs(10), || {
            let out = lab3(&direct.addr, &["status", "--json"]);
            let s: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            s["link"]["up"] == true && s["fingerprint_b"] == real.as_str()
        }),
        "{}",
        direct.output()
    );
}

#[test]
fn lab3_refuses_a_man_in_the_middle_with_a_token_and_with_a_pin() {
    let root = TempDir::new().unwrap();
    let a = lone_a(root.path(), "", &["--no-sync", "--token", TOKEN]);
    // A relay that passes everything on: A refuses lab3's proof (made for
    // lab3's session with the relay), and logs the relay's address.
    let forward = Mitm::start(&a.addr, MitmMode::Forward);
    let out = lab3(&forward.addr, &["--token", TOKEN]);
    assert_one_line_error(&out);
    assert!(
        text(&out.stderr).contains("refused: bad or missing token"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        wait_until(Duration::from_secs(5), || a.logged(&[
            "connection from 127.0.0.1:",
            "refused: bad or missing token"
        ])),
        "{}",
        a.output()
    );
    // A relay that plays Server A itself: it cannot prove the token, and
    // lab3 refuses it before sending any request.
    let impostor = Mitm::start(&a.addr, MitmMode::Impersonate);
    let out = lab3(&impostor.addr, &["--token", TOKEN]);
    let err = assert_one_line_error(&out);
    assert!(
        err.contains("is not trusted: it did not prove that it holds the token"),
        "{err}"
    );

    // With a pin (and no token), lab3 refuses the relay's certificate in
    // one line naming both fingerprints; straight to A, the pin passes.
    let open_a = lone_a(root.path(), "2", &["--no-sync"]);
    let real = open_a.fingerprint();
    let relay = Mitm::start(&open_a.addr, MitmMode::Forward);
    let out = lab3(&relay.addr, &["--server-fingerprint", &real]);
    let err = assert_one_line_error(&out);
    assert!(
        err.contains(&format!(
            "its certificate is {}, not the pinned {real}",
            relay.fingerprint
        )),
        "{err}"
    );
    let env = lab3_env(
        &open_a.addr,
        &["--json"],
        &[("LAB3_SERVER_FINGERPRINT", &real)],
    );
    assert_ok(&env);
    // Pasted the way openssl prints it, it is the same pin.
    let openssl = real
        .trim_start_matches("sha256:")
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    assert_ok(&lab3(&open_a.addr, &["--server-fingerprint", &openssl]));
    // And a pin that is not one is a malformed command.
    let out = lab3(&open_a.addr, &["--server-fingerprint", "sha256:beef"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn with_the_right_token_everything_works_through_tls() {
    let pair = Pair::start_with_args(&["--token", TOKEN], |a, _| {
        write_file(a, "in_a.txt", b"a", None);
    });
    pair.wait(10, "the file to reach B", || {
        read(&pair.dir_b.join("in_a.txt")).is_some()
    });
    let out = pair.lab3(&["status", "--token", TOKEN]);
    let said = assert_ok(&out);
    // The status names both certificates, as the servers printed them.
    assert!(said.contains(&pair.a.fingerprint()), "{said}");
    assert!(said.contains(&pair.b.fingerprint()), "{said}");
    let wrong = pair.lab3(&["--token", "not-it"]);
    assert!(text(&wrong.stderr).contains("bad or missing token"));
}

// ------------------------------------------------------------------- keys

#[test]
fn each_server_keeps_its_key_private_and_its_fingerprint_across_restarts() {
    let mut pair = Pair::start_with_args(&["--no-sync"], |_, _| {});
    let (fa, fb) = (pair.a.fingerprint(), pair.b.fingerprint());
    assert_ne!(fa, fb, "each server has its own key");
    assert!(fa.starts_with("sha256:") && fa.len() == 7 + 64, "{fa}");
    #[cfg(unix)]
    for state in [&pair.state_a, &pair.state_b] {
        assert_eq!(mode(&state.join("tls/key.pem")), Some(0o600));
        assert_eq!(mode(&state.join("tls")).map(|m| m & 0o777), Some(0o700));
    }
    pair.restart_a();
    pair.restart_b();
    assert_eq!(pair.a.fingerprint(), fa);
    assert_eq!(pair.b.fingerprint(), fb);
}

#[test]
fn a_server_beyond_loopback_without_a_token_warns_at_start() {
    let root = TempDir::new().unwrap();
    let open = b_in(root.path(), "", "0.0.0.0:0", &["--no-sync"]);
    assert!(
        wait_until(Duration::from_secs(5), || open
            .logged(&["WARN", "beyond loopback without a token"])),
        "{}",
        open.output()
    );
    let closed = b_in(
        root.path(),
        "2",
        "0.0.0.0:0",
        &["--no-sync", "--token", TOKEN],
    );
    let local = b_in(root.path(), "3", "127.0.0.1:0", &["--no-sync"]);
    std::thread::sleep(Duration::from_millis(500)); // the warning comes before anything else
    for quiet in [&closed, &local] {
        assert!(!quiet.logged(&["beyond loopback"]), "{}", quiet.output());
    }
}

#[test]
fn a_client_without_tls_is_closed_and_logged() {
    let root = TempDir::new().unwrap();
    let a = lone_a(root.path(), "", &["--no-sync"]);
    let mut plain = RawConn::connect_plain(&a.addr);
    let hello = plain.hello(PROTOCOL_VERSION, "client", 0, None);
    plain.send_json(&hello);
    // At most a TLS alert comes back, never a lab3 frame, and then the close.
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut plain.stream, &mut answer);
    assert!(answer.is_empty() || answer[0] == 0x15, "{answer:?}");
    assert!(
        wait_until(Duration::from_secs(5), || a
            .logged(&["refused", "TLS handshake failed"])),
        "{}",
        a.output()
    );
}

// --------------------------------------------------------------- guessing

#[test]
fn a_token_guesser_is_slowed_down_and_costs_other_clients_nothing() {
    let root = TempDir::new().unwrap();
    let a = lone_a(root.path(), "", &["--no-sync", "--token", TOKEN]);
    // Eight guessers at once from 127.0.0.2, for five seconds.
    let stop = Arc::new(AtomicBool::new(false));
    let guesser: IpAddr = "127.0.0.2".parse().unwrap();
    let guessers: Vec<_> = (0..8)
        .map(|i| {
            let (addr, stop) = (a.addr.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut checked, mut turned_away) = (0, 0);
                while !stop.load(Ordering::Relaxed) {
                    let mut c = RawConn::connect_from(&addr, guesser);
                    let hello = c.hello(PROTOCOL_VERSION, "client", 0, Some(&format!("guess{i}")));
                    c.send_json(&hello);
                    let why = c.read_json()["body"]["message"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    if why == "bad or missing token" {
                        checked += 1;
                    } else {
                        assert!(
                            why.starts_with("too many bad token proofs from 127.0.0.2"),
                            "{why}"
                        );
                        turned_away += 1;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                (checked, turned_away)
            })
        })
        .collect();
    // Meanwhile a client from 127.0.0.1 with the token is served at once.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let t = Instant::now();
        let out = lab3(&a.addr, &["--json", "--token", TOKEN]);
        assert_ok(&out);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "took {:?}",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    let (mut checked, mut turned_away) = (0, 0);
    for g in guessers {
        let (c, t) = g.join().unwrap();
        checked += c;
        turned_away += t;
    }
    // In 5 s: the first wave (parallel, before any failure was recorded),
    // then one check at 1 s, 3 s, 6 s... after the last failure.
    assert!(checked <= 8 + 3, "{checked} guesses checked in 5 s");
    assert!(turned_away > 0);
    assert!(a.logged(&["connection from 127.0.0.2:", "bad or missing token"]));
}
