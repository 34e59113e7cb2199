//! Feeds arbitrary strings to `paths::check`; whatever it accepts must be a
//! plain relative path that resolves inside the root and maps back to itself.
#![no_main]

use std::path::{Component, Path};

use common::paths;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(rel) = std::str::from_utf8(data) else {
        return;
    };
    if paths::check(rel).is_err() {
        return;
    }
    assert!(!rel.is_empty());
    assert!(!rel.starts_with('/'));
    assert!(!rel.contains('\0'));
    // A backslash (and a colon) is an ordinary character on the wire since
    // issue 11: a Linux folder stores `a\b` as one name (what is checked
    // below; the fuzzer runs on Linux), a Windows host refuses it when it
    // resolves the path.
    assert!(rel
        .split('/')
        .all(|c| !c.is_empty() && c != "." && c != ".."));
    let root = Path::new("/srv/lab3/directory_a");
    let full = paths::resolve(root, rel).expect("check passed");
    assert!(full.starts_with(root));
    assert!(full
        .strip_prefix(root)
        .unwrap()
        .components()
        .all(|c| matches!(c, Component::Normal(_))));
    assert_eq!(paths::relative(root, &full).as_deref(), Some(rel));
});
