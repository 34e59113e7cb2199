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
/// `FILES` files and one file at A; A waits at most 3 s for progress,
/// and B pauses `delay_ms` before each chunk. (At 1.5 s, a chunk 600 ms
/// late was once taken for a stall on a loaded machine.)
fn pair(delay_ms: &str) -> Pair {
    Pair::start_with_env(
        &["--no-sync"],
        &[("LAB3_LISTING_PROGRESS_MS", "3000")],
        &[("LAB3_TEST_LISTING_CHUNK_DELAY_MS", delay_ms)],
        |dir_a, dir_b| {
            for i in 0..FILES {
                let sub = dir_b.join(format!("d{:02}", i % 50));
                if i < 50 {
                    std::fs::create_dir_all(&sub).unwrap();
                }
                std::fs::write(sub.join(format!("f{i:05}.txt")), b"x").unwrap();
            }
            std::fs::write(dir_a.join("only-at-a.txt"), b"a").unwrap();
        },
    )
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
    // 5 chunks, 800 ms before each: 4 s in all, longer than A's wait for
    // progress, with under a third of it between two chunks.
    let pair = pair("800");
    let (doc, took) = listing(&pair.a);
    assert_eq!(doc["peer"], "connected", "{}", pair.output());
    assert_eq!(doc["files"].as_array().unwrap().len(), FILES + 1);
    assert!(
        took.as_millis() >= 4000,
        "B's answer was not slowed ({took:?}): the test shows nothing"
    );
}

#[test]
fn an_answer_that_stalls_is_cut_and_a_lists_its_own() {
    // 6 s before the first chunk: twice A's wait for progress.
    let pair = pair("6000");
    let (doc, took) = listing(&pair.a);
    assert_eq!(doc["peer"], "unreachable", "{}", pair.output());
    assert_eq!(names(&doc), ["only-at-a.txt"]);
    assert!(
        took.as_millis() < 6000,
        "A waited for the whole answer: {took:?}"
    );
}
