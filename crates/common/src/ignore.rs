//! Which names lab3 neither lists nor syncs.
//!
//! Always: lab3's own temporary files (`.lab3-*`). By default also the junk
//! file managers and office suites leave behind: `.DS_Store`, `Thumbs.db`,
//! `desktop.ini` and `~$*` lock files. Each rule matches a single name
//! component, so an ignored folder hides everything below it.

use std::ffi::OsStr;

/// Prefix of every temporary file lab3 creates next to a target.
pub const TEMP_PREFIX: &str = ".lab3-";

/// The default junk names (exact, case-insensitive).
pub const DEFAULT_JUNK: &[&str] = &[".DS_Store", "Thumbs.db", "desktop.ini"];

/// The set of ignore rules in force.
#[derive(Debug, Clone)]
pub struct Ignore {
    /// Extra exact names or `*`-glob patterns given by the user.
    patterns: Vec<String>,
    /// Whether the default junk list applies.
    junk: bool,
}

impl Default for Ignore {
    fn default() -> Self {
        Ignore {
            patterns: Vec::new(),
            junk: true,
        }
    }
}

impl Ignore {
    /// Rules with extra user patterns (`*` matches any run of characters).
    pub fn with_patterns(patterns: Vec<String>) -> Ignore {
        Ignore {
            patterns,
            junk: true,
        }
    }

    /// Whether one name component is ignored.
    pub fn is_ignored_name(&self, name: &OsStr) -> bool {
        let Some(name) = name.to_str() else {
            return false;
        };
        if name.starts_with(TEMP_PREFIX) {
            return true;
        }
        if self.junk
            && (name.starts_with("~$") || DEFAULT_JUNK.iter().any(|j| j.eq_ignore_ascii_case(name)))
        {
            return true;
        }
        self.patterns.iter().any(|p| glob_match(p, name))
    }

    /// Whether any component of a relative wire path is ignored.
    pub fn is_ignored_path(&self, rel: &str) -> bool {
        rel.split('/').any(|c| self.is_ignored_name(OsStr::new(c)))
    }
}

/// `*` matches any run (also empty), `?` one character; everything else is literal.
fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
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
        }
        for no in ["notes.txt", "x.tmpl", "builds", "a~$b"] {
            assert!(!ig.is_ignored_name(OsStr::new(no)), "{no}");
        }
        assert!(ig.is_ignored_path("build/out.o"));
    }
}
