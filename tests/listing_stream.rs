//! A listing of a very big folder has no deadline on the whole answer
//! (issue 15): Server A gives up on Server B's answer only when nothing
//! comes for a while, so an answer that takes longer than that in all, but
//! keeps coming, is listed whole; one that stalls is cut, and A lists its
//! own folder alone.
//!
//! A slow disk is played by two test-only environment variables: at A,
//! `LAB3_LISTING_PROGRESS_MS` shortens the wait for progress (10 s
//! otherwise), and at B, `LAB3_TEST_LISTING_CHUNK_DELAY_MS` pauses before
//! each chunk of 2,000 entries.

use lab3_tests::*;

/// B's files: 5 chunks of 2,000.
const FILES: usize = 10_000;

/// A pair without sync (the listing is what is tested) over a B folder of
/// `FILES` files and one file at A; A waits at most 1.5 s for progress,
/// and B pauses `delay_ms` before each chunk.
fn pair(delay_ms: &str) -> (tempfile::TempDir, Server, Server) {
    let root = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (root.path().join("a"), root.path().join("b"));
    for i in 0..FILES {
        let sub = dir_b.join(format!("d{:02}", i % 50));
        if i < 50 {
            std::fs::create_dir_all(&sub).unwrap();
        }
        std::fs::write(sub.join(format!("f{i:05}.txt")), b"x").unwrap();
    }
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::write(dir_a.join("only-at-a.txt"), b"a").unwrap();
    let args = |dir: &std::path::Path, state: &str| {
        vec![
            "--dir".to_string(),
            dir.display().to_string(),
            "--state-dir".into(),
            root.path().join(state).display().to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--no-sync".into(),
        ]
    };
    let b = Server::start_env(
        "server_b",
        args(&dir_b, "state_b"),
        &[("LAB3_TEST_LISTING_CHUNK_DELAY_MS", delay_ms)],
    );
    let mut a_args = args(&dir_a, "state_a");
    a_args.extend(["--peer".to_string(), b.addr.clone()]);
    let a = Server::start_env("server_a", a_args, &[("LAB3_LISTING_PROGRESS_MS", "1500")]);
    (root, a, b)
}

fn listing(a: &Server) -> (serde_json::Value, std::time::Duration) {
    let t0 = std::time::Instant::now();
    let out = lab3(&a.addr, &["--json"]);
    let took = t0.elapsed();
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("lab3 --json: {e}; stderr: {}", text(&out.stderr)));
    (doc, took)
}

#[test]
fn an_answer_that_keeps_coming_is_listed_whole_however_long() {
    // 5 chunks, 600 ms before each: 3 s in all, twice A's wait for progress.
    let (_root, a, b) = pair("600");
    let (doc, took) = listing(&a);
    assert_eq!(doc["peer"], "connected", "{}\n{}", a.output(), b.output());
    assert_eq!(doc["files"].as_array().unwrap().len(), FILES + 1);
    assert!(
        took.as_millis() >= 3000,
        "B's answer was not slowed ({took:?}): the test shows nothing"
    );
}

#[test]
fn an_answer_that_stalls_is_cut_and_a_lists_its_own() {
    // 3 s before the first chunk: twice A's wait for progress.
    let (_root, a, _b) = pair("3000");
    let (doc, took) = listing(&a);
    assert_eq!(doc["peer"], "unreachable", "{}", a.output());
    assert_eq!(names(&doc), ["only-at-a.txt"]);
    assert!(
        took.as_millis() < 3000,
        "A waited for the whole answer: {took:?}"
    );
}
