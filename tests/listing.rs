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
