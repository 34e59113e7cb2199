//! The client is strict about what it is told and careful about what it
//! prints: `-lock -<x>` is always an index (a bad one names the valid
//! range and locks nothing), `lock NAME` only locks names in the listing
//! (unless `--new`), names that hold control characters cannot rewrite
//! the terminal, and the table is one aligned line per file.

use lab3_tests::*;

fn locks(pair: &Pair) -> serde_json::Value {
    let out = assert_ok(&pair.lab3(&["locks", "--json"]));
    serde_json::from_str::<serde_json::Value>(&out).unwrap()["locks"].clone()
}

#[test]
fn a_dash_index_that_is_no_index_is_a_bad_index_and_locks_nothing() {
    let pair = listing_pair(|a, b| {
        write_file(a, "a.txt", b"1", None);
        write_file(b, "b.txt", b"2", None);
    });
    for args in [
        &["-lock", "-99999999999999999999"][..],
        &["-lock", "-18446744073709551616"],
        &["-lock", "-"],
        &["-lock", "-abc"],
        &["-unlock", "-x1"],
        &["lock", "99999999999999999999"],
        &["--json", "-lock", "-1e3"],
    ] {
        let line = assert_one_line_error(&pair.lab3(args));
        assert!(
            line.contains("bad index") && line.contains("0 to 1 (2 files)"),
            "{args:?}: {line}"
        );
    }
    assert_eq!(locks(&pair), serde_json::json!([]));
    // The good spellings still work.
    assert_eq!(assert_ok(&pair.lab3(&["-lock", "-1"])), "locked b.txt\n");
}

#[test]
fn lock_by_name_needs_a_listed_name_unless_new() {
    let pair = listing_pair(|a, _| {
        write_file(a, "here.txt", b"1", None);
    });
    let line = assert_one_line_error(&pair.lab3(&["lock", "missing.txt"]));
    assert!(
        line.contains("no file named missing.txt") && line.contains("--new"),
        "{line}"
    );
    assert_eq!(locks(&pair), serde_json::json!([]));
    assert_eq!(
        assert_ok(&pair.lab3(&["lock", "here.txt"])),
        "locked here.txt\n"
    );
    assert_eq!(
        assert_ok(&pair.lab3(&["lock", "--new", "missing.txt"])),
        "locked missing.txt\n"
    );
    assert_eq!(locks(&pair).as_array().unwrap().len(), 2);
}

#[cfg(unix)]
#[test]
fn names_with_control_characters_are_printed_escaped() {
    let evil = "red\x1b[31m\nfake row.txt";
    let pair = listing_pair(|a, _| {
        write_file(a, evil, b"x", None);
        write_file(a, "plain.txt", b"y", None);
    });
    let table = assert_ok(&pair.lab3(&[]));
    assert!(!table.contains('\x1b'), "{table:?}");
    assert_eq!(table.lines().count(), 4, "header, 2 rows, summary: {table}");
    assert!(table.contains(r"red\u{1b}[31m\nfake row.txt"), "{table}");
    // JSON carries the name exactly (escaped by JSON itself).
    let doc = pair.listing();
    assert_eq!(doc["files"][1]["name"], evil);
    let locked = assert_ok(&pair.lab3(&["-lock", "-1"]));
    assert_eq!(locked, "locked red\\u{1b}[31m\\nfake row.txt\n");
    let listed = assert_ok(&pair.lab3(&["locks"]));
    assert!(
        !listed.contains('\x1b') && listed.lines().count() == 1,
        "{listed:?}"
    );
}

#[test]
fn the_table_is_one_aligned_line_per_file_without_rules() {
    let pair = listing_pair(|a, b| {
        write_file(a, "a.txt", b"1", None);
        write_file(b, "a much longer name.txt", &[0; 3000], None);
        write_file(b, "c.bin", &[0; 20], None);
    });
    let out = assert_ok(&pair.lab3(&[]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    for l in &lines {
        assert!(
            !l.chars().any(|c| matches!(c, '─' | '═' | '━' | '|' | '│')),
            "a rule or border in {l:?}"
        );
        assert_eq!(*l, l.trim_end(), "trailing blanks in {l:?}");
    }
    // Each column starts (left-aligned) or ends (right-aligned) where its
    // header does.
    let header = lines[0];
    let end_of = |word: &str| header.find(word).unwrap() + word.len();
    let start_of = |word: &str| header.find(word).unwrap();
    for (row, (size, name)) in
        lines[1..4]
            .iter()
            .zip([("2.9 KiB", "a much"), ("1 B", "a.txt"), ("20 B", "c.bin")])
    {
        assert_eq!(
            row.find(size).unwrap() + size.len(),
            end_of("Size"),
            "{out}"
        );
        assert_eq!(row.find(name).unwrap(), start_of("Name"), "{out}");
    }
    assert_eq!(lines[4], "3 files, 3.0 KiB in all; server B connected");
}
