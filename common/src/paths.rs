//! Checks on relative paths that come from a peer or a client, and the
//! mapping between wire paths (`/`-separated) and local ones.
//!
//! Anything that is not a plain relative path inside the directory is
//! refused: absolute paths, `..`, `.`, empty components, NUL and
//! components longer than the usual 255-byte filesystem limit. A backslash
//! or a colon is an ordinary character of a name on the wire (Linux and
//! macOS store both); only a Windows host, where they would be a separator,
//! a drive or a stream, refuses them when it [`resolve`]s a path.

use std::path::{Path, PathBuf};

/// The longest single path component accepted (ext4, APFS, NTFS: 255).
pub const MAX_COMPONENT_LEN: usize = 255;
/// The longest whole relative path accepted.
pub const MAX_PATH_LEN: usize = 4096;

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused path {path:?}: {why}")]
pub struct BadPath {
    pub path: String,
    pub why: &'static str,
}

/// Checks a wire path and returns it joined onto `root`.
pub fn resolve(root: &Path, rel: &str) -> Result<PathBuf, BadPath> {
    check(rel)?;
    #[cfg(windows)]
    if let Some(why) = crate::sync::core::names::windows_refuses(rel) {
        return Err(BadPath {
            path: rel.chars().take(200).collect(),
            why,
        });
    }
    let mut p = root.to_path_buf();
    for c in rel.split('/') {
        p.push(c);
    }
    Ok(p)
}

/// Checks that `rel` is a safe relative path (see the module doc).
pub fn check(rel: &str) -> Result<(), BadPath> {
    let bad = |why| {
        Err(BadPath {
            path: rel.chars().take(200).collect(),
            why,
        })
    };
    if rel.is_empty() {
        return bad("empty path");
    }
    if rel.len() > MAX_PATH_LEN {
        return bad("path too long");
    }
    if rel.contains('\0') {
        return bad("NUL in path");
    }
    if rel.starts_with('/') {
        return bad("absolute path");
    }
    for c in rel.split('/') {
        match c {
            "" => return bad("empty path component"),
            "." | ".." => return bad("dot component"),
            c if c.len() > MAX_COMPONENT_LEN => return bad("path component too long"),
            _ => {}
        }
    }
    Ok(())
}

/// The wire form of `path` relative to `root`, or `None` when it is outside
/// `root` or not valid UTF-8.
pub fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let mut out = String::new();
    for c in rel.components() {
        let std::path::Component::Normal(s) = c else {
            return None;
        };
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(s.to_str()?);
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_pass() {
        for ok in [
            "a.txt",
            "sub/dir/file name.txt",
            "ünïcödé/\"q\" 'x'.md",
            ".hidden",
            // Ordinary characters between two Linux servers (a Windows host
            // refuses them when it resolves the path).
            "a:b.txt",
            "back\\slash.txt",
            "C:x",
            "q?.txt",
        ] {
            assert!(check(ok).is_ok(), "{ok}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_backslash_or_a_colon_is_part_of_the_name_on_unix() {
        let root = Path::new("/r/dir");
        let p = resolve(root, "sub/back\\slash:x.txt").unwrap();
        assert_eq!(p, Path::new("/r/dir/sub/back\\slash:x.txt"));
        assert_eq!(p.file_name().unwrap(), "back\\slash:x.txt");
    }

    #[test]
    fn hostile_paths_are_refused() {
        let long = "x".repeat(256);
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a/./b",
            "a\0b",
            &long,
            "a/",
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn relative_round_trips() {
        let root = Path::new("/r/dir");
        let p = resolve(root, "a/b c.txt").unwrap();
        assert_eq!(relative(root, &p).as_deref(), Some("a/b c.txt"));
        assert_eq!(relative(root, Path::new("/elsewhere/x")), None);
    }
}
