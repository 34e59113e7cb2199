//! A pair of servers whose Server A serves its web page, for the tests of
//! the page over HTTP (`tests/web_versions.rs`) and in a browser
//! (`tests/web_page.rs`, `tests/web_access.rs`, `tests/web_screenshots.rs`).

use std::path::Path;

use crate::{start_a, start_b, Pair, TempDir};

/// Servers B and A over fresh folders that `setup` fills first, A with its
/// page on port 0 (`Server::web_url` says where); `token` for both when
/// given. It does not wait for the link.
pub fn web_pair(token: Option<&str>, setup: impl FnOnce(&Path, &Path)) -> Pair {
    let root = TempDir::new().unwrap();
    let [dir_a, state_a, dir_b, state_b] =
        ["directory_a", "state_a", "directory_b", "state_b"].map(|n| root.path().join(n));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    setup(&dir_a, &dir_b);
    let mut extra: Vec<String> = Vec::new();
    if let Some(t) = token {
        extra = vec!["--token".into(), t.into()];
    }
    let b = start_b(&dir_b, &state_b, "127.0.0.1:0", &extra);
    extra.extend(["--http".into(), "127.0.0.1:0".into()]);
    let a = start_a(&dir_a, &state_a, &b.addr, &extra);
    Pair::from_parts(root, [dir_a, state_a, dir_b, state_b], a, b)
}
