//! The everyday experience, over the real binaries: `lab3 watch` and
//! `lab3 status`, ignore rules, colour only where it belongs, `--help` and
//! shell completions.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::protocol::Action;
use lab3_tests::*;

/// The contract's 5 seconds, with slack for a loaded machine and a debug build.
const SECS: u64 = 10;

/// Starts `lab3 watch` (with `extra` flags) and waits until Server A has
/// subscribed it.
fn watch(pair: &Pair, extra: &[&str]) -> Running {
    let mut args = vec!["watch"];
    args.extend_from_slice(extra);
    let w = Running::lab3(&pair.a.addr, &args);
    pair.wait(SECS, "lab3 watch to start", || {
        w.logged(&["lab3: watching"])
    });
    w
}

/// Waits until `w` printed a line with all of `words`.
fn wait_said(pair: &Pair, w: &Running, words: &[&str]) {
    if !wait_until(Duration::from_secs(SECS), || w.said(words)) {
        panic!(
            "lab3 watch never said {words:?}\n{}\n{}",
            w.output(),
            pair.output()
        );
    }
}

#[test]
fn watch_shows_actions_of_both_servers() {
    let pair = Pair::start_linked();
    let w = watch(&pair, &[]);
    // A change made at A: A sends it, B applies it (relayed over the link).
    write_file(&pair.dir_a, "from-a.txt", b"made at A", None);
    wait_said(&pair, &w, &["[A] A->B", "created", "from-a.txt", "9 B"]);
    wait_said(&pair, &w, &["[B] A->B", "created", "from-a.txt", "9 B"]);
    // A change made at B: B sends it (relayed), A applies it.
    write_file(&pair.dir_b, "from-b.txt", b"made at B!", None);
    wait_said(&pair, &w, &["[B] B->A", "created", "from-b.txt", "10 B"]);
    wait_said(&pair, &w, &["[A] B->A", "created", "from-b.txt", "10 B"]);
    // B's relayed actions are not printed on A's console: A says only its own.
    assert!(
        holds_for(Duration::from_millis(500), || pair
            .a
            .said_count(&["created", "from-b.txt"])
            == 1),
        "server A printed B's action as well\n{}",
        pair.output()
    );
    // Each line: time, side, direction, action, path, size.
    let line = w
        .stdout
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("[B] B->A"))
        .cloned()
        .unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[1..6], ["[B]", "B->A", "created", "from-b.txt", "10"]);
    assert!(
        words[0].len() == 12 && words[0].as_bytes()[2] == b':',
        "{line}"
    );
}

#[test]
fn watch_announces_the_start_of_a_big_transfer() {
    let pair = Pair::start_linked();
    let w = watch(&pair, &[]);
    let big = vec![7u8; 9 << 20];
    pair.put(&pair.dir_b, "big.bin", &big, now_ns());
    wait_said(&pair, &w, &["[B] B->A", "sending", "big.bin", "9.0 MiB"]);
    wait_said(&pair, &w, &["[A] B->A", "receiving", "big.bin", "9.0 MiB"]);
    wait_said(&pair, &w, &["[A] B->A", "created", "big.bin", "9.0 MiB"]);
    let lines = w.stdout.lock().unwrap().clone();
    let at = |word: &str| lines.iter().position(|l| l.contains(word)).unwrap();
    assert!(at("receiving") < at("[A] B->A  created"), "{lines:#?}");
}

#[test]
fn a_quiet_watch_outlives_the_client_idle_limit() {
    // Server A closes clients silent for 30 s; a watch pings, both ways.
    let pair = Pair::start_linked();
    let w = watch(&pair, &[]);
    std::thread::sleep(Duration::from_secs(35));
    write_file(&pair.dir_a, "after-a-while.txt", b"still here", None);
    wait_said(&pair, &w, &["[B] A->B", "created", "after-a-while.txt"]);
    assert_eq!(w.stderr.lock().unwrap().len(), 1, "{}", w.output());
    // The sync link was quiet for longer than its 25 s silence limit too:
    // A's pings and B's answers kept it up.
    assert!(
        !pair.a.logged(&["is down"]) && !pair.b.logged(&["is down"]),
        "{}",
        pair.output()
    );
}

#[test]
fn watch_json_prints_one_action_per_line() {
    let pair = Pair::start_linked();
    let w = watch(&pair, &["--json"]);
    write_file(&pair.dir_b, "notes.txt", b"twelve bytes", None);
    pair.wait_same(SECS, "notes.txt");
    let both = || {
        let lines = w.stdout.lock().unwrap().clone();
        let actions: Vec<Action> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not an action: {l}: {e}")))
            .collect();
        let seen = |side: &str| {
            actions.iter().any(|a| {
                a.side == side
                    && a.direction == "B->A"
                    && a.action == "created"
                    && a.path == "notes.txt"
                    && a.size == Some(12)
            })
        };
        seen("A") && seen("B")
    };
    if !wait_until(Duration::from_secs(SECS), both) {
        panic!("no created action from each side\n{}", w.output());
    }
    assert!(w.stdout.lock().unwrap().iter().all(|l| !l.contains('\x1b')));
}

#[cfg(unix)]
#[test]
fn watch_ends_cleanly_on_ctrl_c_and_says_so_when_server_a_goes() {
    let mut pair = Pair::start_linked();
    let mut w = watch(&pair, &[]);
    let pid = w.pid().unwrap().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(sent.success());
    let status = w
        .wait_exit(Duration::from_secs(SECS))
        .expect("lab3 watch exits on SIGINT");
    assert!(status.success(), "{status}\n{}", w.output());

    let mut w = watch(&pair, &[]);
    // The link going down is shown too (B's actions stop reaching A).
    pair.b.kill();
    wait_said(&pair, &w, &["[A] A", "link down", "server B"]);
    pair.a.kill();
    let status = w
        .wait_exit(Duration::from_secs(SECS))
        .expect("lab3 watch exits when server A goes");
    assert_eq!(status.code(), Some(1), "{}", w.output());
    assert!(w.logged(&["lab3:", "server A at"]), "{}", w.output());
}

/// `lab3 status --json`, parsed.
fn status(pair: &Pair) -> serde_json::Value {
    let out = assert_ok(&pair.lab3(&["status", "--json"]));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON: {out}: {e}"))
}

#[test]
fn status_shows_the_link_up_then_down_when_b_is_killed() {
    let mut pair = Pair::start_linked();
    let s = status(&pair);
    assert_eq!(s["link"]["up"], true, "{s}");
    assert_eq!(s["server_b"], pair.b.addr.as_str(), "{s}");
    assert_eq!(s["sync"], true, "{s}");
    assert!(s["link"]["since"].as_str().unwrap().ends_with('Z'), "{s}");
    assert!(s["link"]["last_reconcile"].is_string(), "{s}");
    assert!(s["link"]["clock_skew_ns"].is_i64(), "{s}");
    assert_eq!(s["link"]["sending"], 0, "{s}");
    assert_eq!(s["locks"], serde_json::json!([]), "{s}");

    write_file(&pair.dir_a, "held.txt", b"x", None);
    pair.wait_same(SECS, "held.txt");
    assert_ok(&pair.lab3(&["lock", "held.txt"]));
    let table = assert_ok(&pair.lab3(&["status"]));
    for want in [
        "Link",
        "up since",
        "Clock skew",
        "Last reconcile",
        "Transfers",
        "0 sending, 0 receiving",
        "held.txt (0 queued)",
        pair.b.addr.as_str(),
    ] {
        assert!(table.contains(want), "missing {want:?} in\n{table}");
    }
    assert_eq!(
        status(&pair)["locks"],
        serde_json::json!([{"name": "held.txt", "queued": 0}])
    );

    pair.b.kill();
    pair.wait(SECS * 3, "status to say the link is down", || {
        status(&pair)["link"]["up"] == false
    });
    let table = assert_ok(&pair.lab3(&["status"]));
    assert!(table.contains("down since"), "{table}");
}

#[test]
fn status_without_sync_says_so() {
    let pair = listing_pair(|_, _| {});
    let s = status(&pair);
    assert_eq!(s["sync"], false, "{s}");
    assert_eq!(s["link"]["up"], false, "{s}");
    let table = assert_ok(&pair.lab3(&["status"]));
    assert!(table.contains("--no-sync"), "{table}");
    // ...and there is nothing to watch.
    let line = assert_one_line_error(&pair.lab3(&["watch"]));
    assert!(line.contains("--no-sync"), "{line}");
}

#[test]
fn ignored_files_stay_put_and_the_rest_syncs() {
    let pair = Pair::start_with_args(&["--ignore", "*.tmp"], |a, b| {
        write_file(
            a,
            ".lab3ignore",
            b"# A's own rules\n/private/\n*.bak\n",
            None,
        );
        write_file(a, "private/diary.txt", b"mine", None);
        write_file(
            a,
            "sub/private/shared.txt",
            b"anchored rule: not this",
            None,
        );
        write_file(a, "old.bak", b"backup", None);
        write_file(b, "scratch.tmp", b"scratch", None);
        write_file(b, "both.txt", b"normal", None);
    });
    pair.wait_linked(20);
    // Made while running: the ignored ones first, so the normal one arriving
    // last shows that the ignored ones had their chance.
    write_file(&pair.dir_a, "later.bak", b"b", None);
    write_file(&pair.dir_a, "private/later.txt", b"p", None);
    write_file(&pair.dir_b, "later.tmp", b"t", None);
    write_file(&pair.dir_a, "later.txt", b"normal", None);
    pair.wait_same(SECS, "later.txt");
    pair.wait_same(SECS, "both.txt");
    pair.wait_same(SECS, "sub/private/shared.txt");
    std::thread::sleep(Duration::from_millis(500));
    for only_a in [
        ".lab3ignore",
        "private/diary.txt",
        "private/later.txt",
        "old.bak",
        "later.bak",
    ] {
        assert!(pair.dir_a.join(only_a).exists(), "{only_a} left A");
        assert!(!pair.dir_b.join(only_a).exists(), "{only_a} reached B");
    }
    for only_b in ["scratch.tmp", "later.tmp"] {
        assert!(pair.dir_b.join(only_b).exists(), "{only_b} left B");
        assert!(!pair.dir_a.join(only_b).exists(), "{only_b} reached A");
    }
    // The listing leaves out what its own side ignores.
    let listed = names(&pair.listing());
    assert_eq!(
        listed,
        ["both.txt", "later.txt", "sub/private/shared.txt"],
        "A ignores .lab3ignore, /private/ and *.bak, both ignore *.tmp"
    );
}

#[test]
fn a_rule_added_at_restart_does_not_delete_the_peers_copies() {
    let mut pair = Pair::start_with(|a, _| {
        write_file(a, "app.log", b"log lines", None);
        write_file(a, "keep.txt", b"keep", None);
    });
    pair.wait_linked(20);
    pair.wait_same(SECS, "app.log");
    pair.wait_journaled(SECS);
    pair.a.kill();
    std::fs::write(pair.dir_a.join(".lab3ignore"), "*.log\n").unwrap();
    pair.restart_a();
    pair.wait(SECS * 2, "A to reconcile again", || {
        pair.a.logged(&["reconciled with server B"])
    });
    write_file(&pair.dir_a, "after.txt", b"after", None);
    pair.wait_same(SECS, "after.txt");
    assert!(
        pair.dir_b.join("app.log").exists(),
        "B's app.log was deleted\n{}",
        pair.output()
    );
    assert!(pair.dir_a.join("app.log").exists());
}

#[test]
fn a_bad_ignore_rule_or_missing_ignore_file_stops_a_server_with_one_line() {
    let root = TempDir::new().unwrap();
    for args in [
        vec!["--ignore-file", "no-such-file"],
        vec!["--ignore", "[z-a]"],
    ] {
        let out = Command::new(bin("server_b"))
            .args(["--dir", &root.path().join("b").display().to_string()])
            .args(["--listen", "127.0.0.1:0"])
            .args(&args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("server_b: ") && last.contains(args[1]),
            "{args:?}: {err}"
        );
    }
}

// ------------------------------------------------------------------ colour

/// Spawns a server over fresh folders with `envs`, no `NO_COLOR` unless
/// given, output piped; returns it once it printed `listening on`.
struct Spawned {
    child: Child,
    stdout: Lines,
    stderr: Lines,
    addr: String,
}

impl Spawned {
    fn start(name: &str, args: &[String], envs: &[(&str, &str)]) -> Spawned {
        let mut cmd = Command::new(bin(name));
        cmd.args(args)
            .env_remove("NO_COLOR")
            .env_remove("RUST_LOG")
            .env_remove("LAB3_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout: Lines = Default::default();
        let stderr: Lines = Default::default();
        for (pipe, sink) in [
            (
                Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
                stdout.clone(),
            ),
            (Box::new(child.stderr.take().unwrap()), stderr.clone()),
        ] {
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
        }
        let mut s = Spawned {
            child,
            stdout,
            stderr,
            addr: String::new(),
        };
        assert!(
            wait_until(Duration::from_secs(30), || s.first_line().is_some()),
            "{name} did not start: {:?}",
            s.stderr.lock().unwrap()
        );
        s.addr = s.first_line().unwrap().replace("listening on ", "");
        s
    }

    fn first_line(&self) -> Option<String> {
        self.stdout.lock().unwrap().first().cloned()
    }

    fn all(&self) -> String {
        let out = self.stdout.lock().unwrap().join("\n");
        let err = self.stderr.lock().unwrap().join("\n");
        format!("{out}\n{err}")
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server_args(dir: &Path, listen: &str) -> Vec<String> {
    vec![
        "--dir".into(),
        dir.display().to_string(),
        "--listen".into(),
        listen.into(),
    ]
}

#[test]
fn output_that_is_not_a_terminal_has_no_escape_codes_even_without_no_color() {
    let root = TempDir::new().unwrap();
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    write_file(&a, "notes.txt", b"hello", None);
    let sb = Spawned::start("server_b", &server_args(&b, "127.0.0.1:0"), &[]);
    let mut args = server_args(&a, "127.0.0.1:0");
    args.extend(["--peer".into(), sb.addr.clone()]);
    args.extend(["--http".into(), "127.0.0.1:0".into()]);
    let sa = Spawned::start("server_a", &args, &[]);
    assert!(
        wait_until(Duration::from_secs(SECS), || sb.all().contains("created")),
        "no action at B:\n{}",
        sb.all()
    );
    let lab3 = |args: &[&str]| {
        let out = Command::new(bin("lab3"))
            .args(["--server", &sa.addr])
            .args(args)
            .env_remove("NO_COLOR")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    };
    for out in [lab3(&[]), lab3(&["status"]), sa.all(), sb.all()] {
        assert!(!out.contains('\x1b'), "escape codes in:\n{out}");
    }
}

/// Runs `cmd` under a pseudo-terminal (`script`), with or without
/// `NO_COLOR`, until its output contains `until`; returns the output.
#[cfg(unix)]
fn on_a_terminal(cmd: &str, no_color: bool, until: &str) -> String {
    let mut c = Command::new("script");
    c.args(["-qefc", cmd, "/dev/null"])
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if no_color {
        c.env("NO_COLOR", "1");
    }
    let mut child = c.spawn().expect("run script");
    let out: Lines = Default::default();
    let sink = out.clone();
    let pipe = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let seen = wait_until(Duration::from_secs(30), || {
        out.lock().unwrap().iter().any(|l| l.contains(until))
    });
    let _ = child.kill();
    let _ = child.wait();
    let text = out.lock().unwrap().join("\n");
    assert!(seen, "never saw {until:?} in:\n{text}");
    text
}

#[cfg(unix)]
#[test]
fn on_a_terminal_logs_are_coloured_unless_no_color_is_set() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` to make a terminal with");
        return;
    }
    let root = TempDir::new().unwrap();
    // A folder each: the first server may still hold its state directory
    // for a moment after its terminal is gone.
    let cmd = |dir: &str| {
        format!(
            "exec {} --dir {} --listen 127.0.0.1:0 --no-sync",
            bin("server_b").display(),
            root.path().join(dir).display()
        )
    };
    let coloured = on_a_terminal(&cmd("b1"), false, "ignoring");
    assert!(
        coloured.contains('\x1b'),
        "no colour on a terminal:\n{coloured}"
    );
    let plain = on_a_terminal(&cmd("b2"), true, "ignoring");
    assert!(!plain.contains('\x1b'), "colour despite NO_COLOR:\n{plain}");
}

#[test]
fn rust_log_sets_the_detail_on_stderr() {
    let root = TempDir::new().unwrap();
    let args = server_args(&root.path().join("b"), "127.0.0.1:0");
    let debug = Spawned::start("server_b", &args, &[("RUST_LOG", "debug")]);
    assert!(
        wait_until(Duration::from_secs(SECS), || debug
            .all()
            .contains("DEBUG ignore rules from")),
        "{}",
        debug.all()
    );
    drop(debug);
    let quiet = Spawned::start("server_b", &args, &[("RUST_LOG", "warn")]);
    assert!(
        holds_for(Duration::from_millis(500), || !quiet.all().contains("INFO")),
        "{}",
        quiet.all()
    );
    // One server per state directory: this one goes first.
    drop(quiet);
    // The usual start: INFO lines, each starting with the local time.
    let usual = Spawned::start("server_b", &args, &[]);
    assert!(wait_until(Duration::from_secs(SECS), || usual
        .all()
        .contains("INFO ignoring")));
    let line = usual
        .stderr
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("INFO ignoring"))
        .cloned()
        .unwrap();
    assert!(
        line.as_bytes()[2] == b':' && line.as_bytes()[8] == b'.',
        "{line}"
    );
}

// ---------------------------------------------------------- help, completions

#[test]
fn help_of_every_program_exits_0_and_shows_examples() {
    for (name, args) in [
        ("lab3", vec!["--help"]),
        ("lab3", vec!["watch", "--help"]),
        ("lab3", vec!["status", "--help"]),
        ("lab3", vec!["completions", "--help"]),
        ("server_a", vec!["--help"]),
        ("server_b", vec!["--help"]),
    ] {
        let out = Command::new(bin(name)).args(&args).output().unwrap();
        let help = text(&out.stdout);
        assert!(out.status.success(), "{name} {args:?}: {}", out.status);
        assert!(help.contains("Examples:"), "{name} {args:?}:\n{help}");
        assert!(help.contains("Usage:"), "{name} {args:?}:\n{help}");
    }
    let top = text(
        &Command::new(bin("lab3"))
            .arg("--help")
            .output()
            .unwrap()
            .stdout,
    );
    for cmd in ["lab3 watch", "lab3 status", "lab3 completions", "-lock -3"] {
        assert!(top.contains(cmd), "lab3 --help lacks {cmd:?}");
    }
}

#[test]
fn completions_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef lab3"),
        ("fish", "complete -c lab3"),
    ] {
        let out = Command::new(bin("lab3"))
            .args(["completions", shell])
            .output()
            .unwrap();
        let script = text(&out.stdout);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        assert!(script.contains(marker), "{shell}:\n{script}");
        for sub in ["watch", "status", "lock", "unlock"] {
            assert!(script.contains(sub), "{shell} lacks {sub}");
        }
    }
    let bad = Command::new(bin("lab3"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

/// A `lab3` that printed its answer and exited closes its TLS connection
/// without a close_notify; that is an ordinary end, not a warning on each
/// server's console for every listing.
#[test]
fn a_listing_leaves_no_warning_on_either_console() {
    let pair = Pair::start_linked();
    for _ in 0..3 {
        pair.listing();
    }
    assert!(pair.lab3(&["status"]).status.success());
    let warned = wait_until(Duration::from_secs(2), || {
        let ended = ["connection from", "ended"];
        pair.a.logged(&ended) || pair.b.logged(&ended)
    });
    assert!(!warned, "{}", pair.output());
}
