//! Start-up over a big tree (issue 15): the servers answer while their
//! engines scan, `lab3 status` shows each side's scan as it goes
//! ("server A: 412,000 entries so far"), and once both scans are done the
//! pair syncs as usual.
//!
//! A tree big enough to be caught mid-scan would take minutes to make, so
//! the scan is slowed instead, with the servers' test-only
//! `LAB3_TEST_SCAN_DELAY_MS=N` (a pause after each folder of the start-up
//! scan).

use std::time::Duration;

use lab3_tests::*;

/// Folders on each side, and the pause after each: the start-up scan
/// takes about 40 x 250 ms = 10 s per side however fast the machine is.
const FOLDERS: usize = 40;
const DELAY_MS: &str = "250";

fn status(pair: &Pair) -> Option<serde_json::Value> {
    let out = pair.lab3(&["status", "--json"]);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

#[test]
fn status_shows_each_sides_start_up_scan_while_it_runs() {
    let slow = [("LAB3_TEST_SCAN_DELAY_MS", DELAY_MS)];
    let pair = Pair::start_with_env(&[], &slow, &slow, |dir_a, dir_b| {
        for d in 0..FOLDERS {
            write_file(dir_a, &format!("a{d:02}/f.txt"), b"from A", None);
            write_file(dir_b, &format!("b{d:02}/f.txt"), b"from B", None);
        }
    });

    // Mid-scan: both sides counted, through Server A (B's by its status).
    let mut seen = serde_json::Value::Null;
    let caught = wait_until(Duration::from_secs(30), || {
        let Some(doc) = status(&pair) else {
            return false;
        };
        seen = doc["scanning"].clone();
        seen["a"].as_u64().is_some_and(|n| n > 0) && seen["b"].as_u64().is_some_and(|n| n > 0)
    });
    assert!(
        caught,
        "status never showed both scans running: last {seen}\n{}",
        pair.output()
    );
    let table = assert_ok(&pair.lab3(&["status"]));
    assert!(
        table.contains("Start-up scan") && table.contains("entries so far"),
        "{table}\n{}",
        pair.output()
    );
    // The listing is served meanwhile, fresh from both folders.
    let listing = pair.listing();
    assert_eq!(
        listing["files"].as_array().map(Vec::len),
        Some(2 * FOLDERS),
        "{listing}"
    );

    // Done: nothing scanning, and the two folders sync as usual.
    let done = wait_until(Duration::from_secs(120), || {
        status(&pair)
            .is_some_and(|doc| doc["scanning"] == serde_json::json!({"a": null, "b": null}))
    });
    assert!(done, "the scans never ended\n{}", pair.output());
    assert!(
        wait_until(Duration::from_secs(60), || {
            same_file(&pair.dir_a.join("a00/f.txt"), &pair.dir_b.join("a00/f.txt"))
                && same_file(&pair.dir_a.join("b39/f.txt"), &pair.dir_b.join("b39/f.txt"))
        }),
        "the pair did not sync after its scans\n{}",
        pair.output()
    );
    let table = assert_ok(&pair.lab3(&["status"]));
    assert!(
        table
            .lines()
            .any(|l| l.contains("Start-up scan") && l.contains("done")),
        "{table}"
    );
}
