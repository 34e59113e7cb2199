//! Listings that survive Server A going down: `lab3 --server A,B` (or
//! `LAB3_SERVER=A,B`) asks Server B when A does not answer; B answers
//! listings and status (A's composite while A is up), and lock commands
//! that reach only B fail with one line saying locks live at Server A.

use std::process::Command;

use lab3_tests::*;

/// Server A on a port chosen before B starts, so that B can be told where
/// A answers clients (`--server-a`); both folders synced.
struct Failover {
    _root: TempDir,
    a: Server,
    b: Server,
    a_addr: String,
}

impl Failover {
    fn start() -> Failover {
        let root = TempDir::new().unwrap();
        let p = |n: &str| root.path().join(n).display().to_string();
        write_file(root.path(), "a/notes.txt", b"from a", None);
        write_file(root.path(), "b/data.csv", b"1,2,3", None);
        let a_addr = dead_addr();
        let b = start_b(
            root.path().join("b").as_path(),
            root.path().join("b-state").as_path(),
            "127.0.0.1:0",
            &["--server-a".into(), a_addr.clone()],
        );
        let args = [
            "--dir",
            &p("a"),
            "--state-dir",
            &p("a-state"),
            "--listen",
            &a_addr,
            "--peer",
            &b.addr,
        ];
        let a = Server::start("server_a", args.iter().map(|s| s.to_string()).collect());
        let f = Failover {
            _root: root,
            a,
            b,
            a_addr,
        };
        assert!(
            wait_until(std::time::Duration::from_secs(20), || {
                let doc = f.listing(&f.a_addr);
                doc["files"]
                    .as_array()
                    .is_some_and(|fs| fs.len() == 2 && fs.iter().all(|x| x["where"] == "both"))
            }),
            "no initial sync\n{}\n{}",
            f.a.output(),
            f.b.output()
        );
        f
    }

    fn both(&self) -> String {
        format!("{},{}", self.a_addr, self.b.addr)
    }

    fn listing(&self, servers: &str) -> serde_json::Value {
        let out = lab3(servers, &["--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }
}

#[test]
fn with_a_killed_the_listing_comes_from_b_with_one_warning() {
    let mut f = Failover::start();
    f.a.kill();

    let out = lab3(&f.both(), &[]);
    let table = assert_ok(&out);
    assert!(
        table.contains("data.csv") && table.contains("notes.txt"),
        "{table}"
    );
    assert!(
        table
            .trim_end()
            .ends_with("2 files, 11 B in all; server A unreachable"),
        "{table}"
    );
    let err = lines(&out.stderr);
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(
        err[0].starts_with("lab3: warning: server A is unreachable; showing directory_b only"),
        "{err:?}"
    );

    let doc = f.listing(&f.both());
    assert_eq!(doc["peer"], "unreachable", "{doc}");
    assert_eq!(doc["answered_by"], "b", "{doc}");
    assert!(
        doc["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["where"] == "b"),
        "{doc}"
    );

    // LAB3_SERVER takes the same list.
    let out = Command::new(bin("lab3"))
        .arg("--json")
        .env("LAB3_SERVER", f.both())
        .env_remove("LAB3_TOKEN")
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&assert_ok(&out)).unwrap();
    assert_eq!(doc["answered_by"], "b", "{doc}");

    // Status works against B, and says whose view it is.
    let status = assert_ok(&lab3(&f.both(), &["status", "--json"]));
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["answered_by"], "b", "{status}");
    assert_eq!(status["server_b"], f.b.addr.as_str(), "{status}");
    assert_eq!(status["server_a"], f.a_addr.as_str(), "{status}");
    f.b.kill();
}

#[test]
fn a_lock_that_reaches_only_b_names_server_a_and_prints_nothing() {
    let mut f = Failover::start();
    f.a.kill();
    for args in [
        &["-lock", "-0"][..],
        &["-unlock", "-0"],
        &["lock", "notes.txt"],
        &["locks"],
    ] {
        for servers in [f.both(), f.b.addr.clone()] {
            let line = assert_one_line_error(&lab3(&servers, args));
            assert!(
                line.contains("locks live at server A") && line.contains(&f.b.addr),
                "{args:?} at {servers}: {line}"
            );
        }
    }
    // Asked directly (an older client, or by hand), B says so itself.
    assert!(f.b.is_running());
}

#[test]
fn with_a_up_b_answers_with_a_composite_listing_and_a_is_asked_first() {
    let f = Failover::start();
    assert_ok(&lab3(&f.a_addr, &["lock", "notes.txt"]));
    let via_both = f.listing(&f.both());
    assert_eq!(via_both["answered_by"], "a", "{via_both}");
    // B asked directly: A's composite (the lock shows), "peer" connected.
    let via_b = f.listing(&f.b.addr);
    assert_eq!(via_b["answered_by"], "b", "{via_b}");
    assert_eq!(via_b["peer"], "connected", "{via_b}");
    assert_eq!(via_b["files"], via_both["files"]);
    // Locks go to A even when B is named first.
    let order = format!("{},{}", f.b.addr, f.a_addr);
    assert_ok(&lab3(&order, &["unlock", "notes.txt"]));
    assert_eq!(f.listing(&f.a_addr)["files"][1]["locked"], false);
}

#[test]
fn no_server_answering_is_one_line_naming_each() {
    let (x, y) = (dead_addr(), dead_addr());
    let line = assert_one_line_error(&lab3(&format!("{x},{y}"), &[]));
    assert!(line.contains(&x) && line.contains(&y), "{line}");
}
