//! Which paths lab3 neither lists nor syncs.
//!
//! Always: lab3's own temporary files (`.lab3-*`) and the rules file
//! `.lab3ignore` at the top of the directory. By default also the junk file
//! managers and office suites leave behind: `.DS_Store`, `Thumbs.db`,
//! `desktop.ini` (any letter case) and `~$*` lock files.
//!
//! On top of those, the user's rules in gitignore syntax (matched by the
//! `ignore` crate's gitignore matcher, against the path relative to the
//! synced directory): `--ignore PATTERN` lines, `--ignore-file PATH` files
//! and `<dir>/.lab3ignore`, read once at start. `*.log` matches at any
//! depth, `/build` only at the top, `tmp/` only folders, `!keep.log`
//! re-includes, `#` starts a comment. An ignored folder hides everything in
//! it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// Prefix of every temporary file lab3 creates next to a target.
pub const TEMP_PREFIX: &str = ".lab3-";

/// The default junk names (exact, case-insensitive).
pub const DEFAULT_JUNK: &[&str] = &[".DS_Store", "Thumbs.db", "desktop.ini"];

/// The rules file each server reads from the top of its directory at start.
/// It is this server's own configuration: neither listed nor synced.
pub const IGNORE_FILE: &str = ".lab3ignore";

/// The set of ignore rules in force. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Ignore {
    /// The user's gitignore rules (empty if none), matched against paths
    /// relative to the synced directory.
    user: Arc<Gitignore>,
    /// Whether the default junk list applies.
    junk: bool,
    /// Prepended (with a `/`) to every relative path before matching: set
    /// by [`Ignore::below`] for walks that start in a subfolder.
    prefix: String,
    /// Where the user's rules came from, for the start-up log line.
    sources: Vec<String>,
}

impl Default for Ignore {
    fn default() -> Self {
        Ignore {
            user: Arc::new(Gitignore::empty()),
            junk: true,
            prefix: String::new(),
            sources: Vec::new(),
        }
    }
}

impl Ignore {
    /// Rules with extra user patterns, each one gitignore line. A pattern
    /// that does not parse is logged and left out (use [`Ignore::load`] to
    /// refuse it instead).
    pub fn with_patterns(patterns: Vec<String>) -> Ignore {
        let mut b = GitignoreBuilder::new(".");
        for p in &patterns {
            if let Err(e) = b.add_line(None, p) {
                tracing::warn!("ignoring the bad ignore pattern {p:?}: {e}");
            }
        }
        Ignore::from_builder(b, Vec::new()).unwrap_or_default()
    }

    /// The rules of a server over `dir`: the defaults, `patterns` (from
    /// `--ignore`), each of `files` (from `--ignore-file`, which must
    /// exist) and `dir/.lab3ignore` if it exists. A pattern that does not
    /// parse is an error naming the file and line.
    pub fn load(dir: &Path, patterns: &[String], files: &[PathBuf]) -> anyhow::Result<Ignore> {
        let mut b = GitignoreBuilder::new(".");
        let mut sources = Vec::new();
        for p in patterns {
            b.add_line(None, p)
                .map_err(|e| anyhow::anyhow!("--ignore {p:?}: {e}"))?;
        }
        if !patterns.is_empty() {
            sources.push(format!("{} --ignore patterns", patterns.len()));
        }
        for f in files {
            if !f.is_file() {
                anyhow::bail!("--ignore-file {}: no such file", f.display());
            }
        }
        let own = dir.join(IGNORE_FILE);
        let mut all = files.to_vec();
        if own.is_file() {
            all.push(own);
        }
        for f in &all {
            if let Some(e) = b.add(f) {
                anyhow::bail!("{e}");
            }
            sources.push(f.display().to_string());
        }
        Ignore::from_builder(b, sources)
    }

    fn from_builder(b: GitignoreBuilder, sources: Vec<String>) -> anyhow::Result<Ignore> {
        Ok(Ignore {
            user: Arc::new(b.build()?),
            sources,
            ..Ignore::default()
        })
    }

    /// The same rules for a walk that starts at the subfolder `dir` (a
    /// relative wire path): paths given to it are relative to `dir`.
    pub fn below(&self, dir: &str) -> Ignore {
        let mut out = self.clone();
        out.prefix = self.full(dir);
        out
    }

    /// One line for the log: what is ignored.
    pub fn describe(&self) -> String {
        let mut s = format!("{TEMP_PREFIX}*, {IGNORE_FILE}");
        if self.junk {
            s.push_str(", .DS_Store, Thumbs.db, desktop.ini, ~$*");
        }
        if !self.sources.is_empty() {
            s.push_str(&format!(
                " and {} rules from {}",
                self.user.num_ignores() + self.user.num_whitelists(),
                self.sources.join(", ")
            ));
        }
        s
    }

    fn full(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_string()
        } else if rel.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }

    /// Whether a name is ignored wherever it appears: the built-in rules,
    /// and the user's rules as they apply to a file of that name at the top.
    pub fn is_ignored_name(&self, name: &OsStr) -> bool {
        let Some(name) = name.to_str() else {
            return false;
        };
        self.builtin(name) || self.user.matched(name, false).is_ignore()
    }

    fn builtin(&self, name: &str) -> bool {
        name.starts_with(TEMP_PREFIX)
            || (self.junk
                && (name.starts_with("~$")
                    || DEFAULT_JUNK.iter().any(|j| j.eq_ignore_ascii_case(name))))
    }

    /// Whether a file at a relative wire path is ignored (by its own name,
    /// or because a folder it is in is).
    pub fn is_ignored_path(&self, rel: &str) -> bool {
        self.is_ignored_entry(rel, false)
    }

    /// Whether the entry at a relative wire path, a folder if `is_dir`, is
    /// ignored (by its own name, or because a folder it is in is).
    pub fn is_ignored_entry(&self, rel: &str, is_dir: bool) -> bool {
        let full = self.full(rel);
        if full.is_empty() {
            return false;
        }
        if full == IGNORE_FILE || full.split('/').any(|c| self.builtin(c)) {
            return true;
        }
        if self.user.is_empty() {
            return false;
        }
        // Top down, as a walk meets them: an ignored folder hides all in
        // it, whatever a later `!` rule says about a file inside (as in git).
        let folders = full.match_indices('/').map(|(i, _)| &full[..i]);
        for folder in folders {
            if self.user.matched(folder, true).is_ignore() {
                return true;
            }
        }
        self.user.matched(&full, is_dir).is_ignore()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_patterns() {
        let ig = Ignore::with_patterns(vec!["*.tmp".into(), "build".into()]);
        for yes in [
            ".lab3-tmp-1",
            ".DS_Store",
            "thumbs.db",
            "~$report.docx",
            "x.tmp",
            "build",
        ] {
            assert!(ig.is_ignored_name(OsStr::new(yes)), "{yes}");
            assert!(ig.is_ignored_path(yes), "{yes}");
        }
        for no in ["notes.txt", "x.tmpl", "builds", "a~$b"] {
            assert!(!ig.is_ignored_name(OsStr::new(no)), "{no}");
            assert!(!ig.is_ignored_path(no), "{no}");
        }
        assert!(ig.is_ignored_path("build/out.o"));
        assert!(ig.is_ignored_path("src/build/out.o"));
        assert!(ig.is_ignored_path("deep/down/x.tmp"));
        assert!(ig.is_ignored_path(".lab3ignore"));
        assert!(!ig.is_ignored_path("sub/.lab3ignore"));
    }

    #[test]
    fn gitignore_syntax() {
        let ig = Ignore::with_patterns(
            [
                "# a comment",
                "/top.txt",
                "cache/",
                "*.log",
                "!keep.log",
                "docs/*.bak",
            ]
            .map(String::from)
            .to_vec(),
        );
        assert!(ig.is_ignored_path("top.txt"));
        assert!(!ig.is_ignored_path("sub/top.txt"));
        assert!(ig.is_ignored_entry("cache", true));
        assert!(
            !ig.is_ignored_entry("cache", false),
            "cache/ is for folders"
        );
        assert!(ig.is_ignored_path("a/cache/x"));
        assert!(ig.is_ignored_path("x.log") && ig.is_ignored_path("a/b/x.log"));
        assert!(!ig.is_ignored_path("keep.log"));
        assert!(ig.is_ignored_path("docs/old.bak"));
        assert!(!ig.is_ignored_path("other/old.bak"));
        assert!(!ig.is_ignored_path("# a comment"));
        // An ignored folder hides a re-included name inside it.
        assert!(ig.is_ignored_path("cache/keep.log"));
        // A walk that starts in a subfolder matches as from the top.
        let docs = ig.below("docs");
        assert!(docs.is_ignored_path("old.bak"));
        assert!(!ig.below("other").is_ignored_path("old.bak"));
        assert!(ig.below("a").is_ignored_entry("cache", true));
        assert!(!ig.below("sub").is_ignored_path("top.txt"));
    }

    #[test]
    fn load_reads_the_rules_file_and_refuses_bad_input() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(IGNORE_FILE), "*.iso\n/private/\n").unwrap();
        let extra = d.path().join("more.ignore");
        std::fs::write(&extra, "*.bak\n").unwrap();
        let ig = Ignore::load(d.path(), &["*.tmp".into()], std::slice::from_ref(&extra)).unwrap();
        for yes in ["a.iso", "x/y.iso", "private/x", "a.bak", "a.tmp"] {
            assert!(ig.is_ignored_path(yes), "{yes}");
        }
        assert!(!ig.is_ignored_path("x/private/y"));
        assert!(ig.describe().contains(IGNORE_FILE), "{}", ig.describe());
        assert!(Ignore::load(d.path(), &[], &[d.path().join("missing")]).is_err());
        assert!(Ignore::load(d.path(), &["a[".into(), "[z-a]".into()], &[]).is_err());
    }
}
