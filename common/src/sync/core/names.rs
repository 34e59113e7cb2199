//! Names one side holds that the other side's folder cannot: a name
//! Windows refuses (`q?.txt`, `CON`, a trailing dot), or a second name
//! that a case-insensitive or normalization-insensitive folder takes for
//! one it already holds (`X.txt` beside `x.txt`, `é` as NFC beside NFD).
//!
//! The receiving core refuses such an offer before anything touches its
//! disk (for good: `retry: false`) and says why once; the sending core
//! keeps the name in [`Core::unsent`] (what `lab3 status` shows) and
//! offers it again only once it changes, or once the name it clashed with
//! has gone from the peer. Each side decides with the [`FsTraits`] its
//! own folder was probed for, so two Linux servers never refuse a name.

use std::borrow::Cow;

use unicode_normalization::{is_nfc, UnicodeNormalization};

use super::local::{ancestors, is_under};
use super::{Core, Direction, Entry, FsTraits};

/// Characters no Windows file name may hold, besides controls.
const WINDOWS_FORBIDDEN: &[char] = &['<', '>', ':', '"', '\\', '|', '?', '*'];

/// Device names Windows reserves, with or without an extension
/// (`aux.txt` too), in any letter case.
const WINDOWS_RESERVED: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM0", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7",
    "COM8", "COM9", "COM¹", "COM²", "COM³", "LPT0", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6",
    "LPT7", "LPT8", "LPT9", "LPT¹", "LPT²", "LPT³",
];

/// Why a Windows folder cannot store `path` (a `/`-separated wire path),
/// or `None` when it can.
pub fn windows_refuses(path: &str) -> Option<&'static str> {
    path.split('/').find_map(windows_refuses_component)
}

fn windows_refuses_component(name: &str) -> Option<&'static str> {
    if name.contains(WINDOWS_FORBIDDEN) {
        return Some("Windows names cannot hold < > : \" \\ | ? *");
    }
    if name.chars().any(|c| (c as u32) < 32) {
        return Some("Windows names cannot hold control characters");
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return Some("Windows names cannot end with a dot or a space");
    }
    let stem = name.split('.').next().unwrap_or(name).trim_end_matches(' ');
    if WINDOWS_RESERVED
        .iter()
        .any(|r| r.eq_ignore_ascii_case(stem))
    {
        return Some("a name Windows reserves for a device (CON, PRN, AUX, NUL, COM1, LPT1, ...)");
    }
    None
}

impl FsTraits {
    /// Whether two different names can be one file on this folder.
    pub fn folds(&self) -> bool {
        self.case_insensitive || self.normalization_insensitive
    }

    /// The name under which `path` is one file with every other name of
    /// the same form on this folder: NFC where it ignores the Unicode
    /// normalization, lower case where it ignores letter case.
    pub fn folded<'a>(&self, path: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(path);
        if self.normalization_insensitive && !is_nfc(&out) {
            out = Cow::Owned(out.nfc().collect());
        }
        if self.case_insensitive && out.chars().any(char::is_uppercase) {
            out = Cow::Owned(out.to_lowercase());
        }
        out
    }

    /// An entry as the core should see it on this folder: no permission
    /// bits where the folder has none (whatever the OS makes up for it),
    /// and never the setuid, setgid or sticky bits, which do not travel.
    pub fn fit(&self, mut e: Entry) -> Entry {
        e.mode = e.mode.filter(|_| self.has_modes).map(|m| m & 0o777);
        e
    }
}

/// How two names that a folder takes for one differ, in words.
fn how_alike(a: &str, b: &str) -> &'static str {
    if a.nfc().eq(b.nfc()) {
        "only in Unicode normalization (NFC, NFD)"
    } else {
        "only in letter case"
    }
}

/// A name this side holds that the peer refused to store, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsent {
    /// What this side held when the peer refused it: offered again only
    /// once it is something else.
    pub entry: Option<Entry>,
    pub why: String,
}

impl Core {
    /// Why this side's folder cannot store `path` as the peer names it:
    /// a name its file system refuses, or (on a folder that folds names)
    /// a name, or a folder on its way, that is one file here with another
    /// this side holds. `moving`: the source of an incoming rename, which
    /// does not count (a case-only rename lands on itself).
    pub(super) fn cannot_store(&self, path: &str, moving: Option<&str>) -> Option<String> {
        let fs = self.cfg.fs;
        if fs.windows_names {
            if let Some(why) = windows_refuses(path) {
                return Some(format!("this folder cannot store the name: {why}"));
            }
        }
        if !fs.folds() {
            return None;
        }
        let prefixes = ancestors(path).collect::<Vec<_>>();
        for name in prefixes.into_iter().rev().chain([path]) {
            if self.paths.get(name).is_some_and(|s| s.local.is_some()) {
                continue; // held here under exactly this name
            }
            let Some(others) = self.folds.get(fs.folded(name).as_ref()) else {
                continue;
            };
            let moved = |o: &str| moving.is_some_and(|m| o == m || is_under(o, m));
            if let Some(other) = others.iter().find(|o| o.as_str() != name && !moved(o)) {
                return Some(format!(
                    "this folder takes it for {other}, which it holds (the names differ {})",
                    how_alike(name, other)
                ));
            }
        }
        None
    }

    /// On a folder that folds names, whether a lock under another
    /// spelling covers `path` here: a locked name that is one file with
    /// `path`, with a folder above it or with a path under it (`L` locked,
    /// the peer's `l`, `L/x` or `l/x`, or a folder `L` above a locked
    /// `l/x`). The peer's update of it waits for the unlock as one of a
    /// locked folder's does. `held_only`: only locks not being unlocked.
    pub(super) fn locked_as_another(&self, path: &str, held_only: bool) -> bool {
        let fs = self.cfg.fs;
        if self.locked.is_empty() || !fs.folds() {
            return false;
        }
        let me = fs.folded(path);
        self.locked.iter().any(|l| {
            if l == path || (held_only && !self.held(l)) {
                return false;
            }
            let f = fs.folded(l);
            let related = f == me || is_under(&f, &me) || is_under(&me, &f);
            // (An exact ancestor or descendant is the lock's own business.)
            related && !is_under(l, path) && !is_under(path, l)
        })
    }

    /// Keeps the index of held names by folded form in step with `path`
    /// (present here or not), on a folder that folds names.
    pub(super) fn index_folded(&mut self, path: &str, present: bool) {
        let fs = self.cfg.fs;
        if !fs.folds() {
            return;
        }
        let key = fs.folded(path).into_owned();
        if present {
            self.folds.entry(key).or_default().insert(path.to_string());
        } else if let Some(set) = self.folds.get_mut(&key) {
            set.remove(path);
            if set.is_empty() {
                self.folds.remove(&key);
            }
        }
    }

    /// This side refuses the peer's `path` (`why`): said on the console
    /// once, not again while the refusal stands.
    pub(super) fn refuse_name(&mut self, path: &str, why: &str) {
        if self.refused_here.get(path).map(String::as_str) == Some(why) {
            return;
        }
        self.refused_here.insert(path.to_string(), why.to_string());
        self.announce(
            "refused",
            Direction::In,
            path,
            None,
            format!("{why}; it stays at the other side only"),
        );
    }

    /// The peer refused this side's `path` for good (`why`): said once,
    /// kept for `lab3 status`, offered again once it changes.
    pub(super) fn peer_refused_name(&mut self, path: &str, entry: Option<Entry>, why: String) {
        let said = self.unsent.get(path).is_some_and(|u| u.why == why);
        self.unsent.insert(
            path.to_string(),
            Unsent {
                entry,
                why: why.clone(),
            },
        );
        self.unsent_changes += 1;
        if !said {
            self.announce(
                "refused",
                Direction::Out,
                path,
                None,
                format!("the other side cannot store it: {why}; it stays here only"),
            );
        }
    }

    /// Whether `path` is a name the peer refused and that has not changed
    /// since (nothing to send); forgets the refusal once it has.
    pub(super) fn still_refused(&mut self, path: &str) -> bool {
        let Some(u) = self.unsent.get(path) else {
            return false;
        };
        let local = self.paths.get(path).and_then(|s| s.local.as_ref());
        let same = match (&u.entry, local) {
            (Some(a), Some(b)) => a.same_here(b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            self.unsent.remove(path);
            self.unsent_changes += 1;
        }
        same
    }

    /// `gone` no longer holds anything at the peer (removed, or moved
    /// away): names refused for clashing with it may fit now.
    pub(super) fn name_freed(&mut self, gone: &str) {
        self.refused_here.remove(gone);
        let Some(peer) = self.link.peer() else {
            return;
        };
        if self.unsent.is_empty() || !peer.folds() {
            return;
        }
        let key = peer.folded(gone).into_owned();
        let retry: Vec<String> = self
            .unsent
            .keys()
            .filter(|p| {
                let f = peer.folded(p);
                f == key || is_under(&f, &key)
            })
            .cloned()
            .collect();
        for p in retry {
            self.unsent.remove(&p);
            self.unsent_changes += 1;
            if let Some(st) = self.paths.get_mut(&p) {
                if matches!(st.pending.as_deref(), Some(super::Pending::Held { .. })) {
                    st.pending = None;
                }
            }
            self.consider(&p, false);
        }
    }

    /// The peer names `path` itself (offers it, or removes it): it holds
    /// that very spelling now, so a refusal of this side's `path` for
    /// clashing with another spelling there is over, and it goes again
    /// (seed 53364: B's file `a`, refused while A held a folder `A`, then
    /// lost a conflict to A's folder renamed `a`: B won it but kept its
    /// copy back as refused, A offered `a/a` into B's file, for ever).
    pub(super) fn peer_names(&mut self, path: &str) {
        if self.unsent.remove(path).is_none() {
            return;
        }
        self.unsent_changes += 1;
        if let Some(st) = self.paths.get_mut(path) {
            if matches!(st.pending.as_deref(), Some(super::Pending::Held { .. })) {
                st.pending = None;
            }
        }
    }

    /// `path` has gone from this folder, never agreed with the peer:
    /// whether this side refused some of the peer's names for clashing
    /// with it (and holds no other spelling of it), so that the peer must
    /// hear that the name is free (seed 41421: B refused A's `e` + U+0301
    /// for B's `é`, then B's `é` went before it ever reached A; A kept its
    /// name back for good). The refusals stand until the peer offers those
    /// names again (a remove held back by a lock there is sent again).
    pub(super) fn frees_refused(&self, path: &str) -> bool {
        let fs = self.cfg.fs;
        if self.refused_here.is_empty() || !fs.folds() {
            return false;
        }
        let key = fs.folded(path).into_owned();
        if self.folds.get(&key).is_some_and(|s| !s.is_empty()) {
            return false; // another spelling still holds it
        }
        // (Only a refused name that fits now: one that clashes with a
        // folder above it here still does not, seed 50293.)
        self.refused_here.keys().any(|p| {
            let f = fs.folded(p);
            p.as_str() != path
                && (f == key || is_under(&f, &key))
                && self.cannot_store(p, None).is_none()
        })
    }

    /// The names this side holds that the peer refused, and why, in path
    /// order (for `lab3 status`).
    pub fn unsent(&self) -> impl Iterator<Item = (&String, &Unsent)> {
        self.unsent.iter()
    }

    /// Counts changes of [`Core::unsent`], so an executor republishes it
    /// only when it changed.
    pub fn unsent_changes(&self) -> u64 {
        self.unsent_changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_windows_refuses() {
        for bad in [
            "q?.txt",
            "a:b.txt",
            "back\\slash.txt",
            "dir/a<b",
            "pipe|.txt",
            "star*",
            "quote\".txt",
            "trailing.",
            "trailing ",
            "CON",
            "con",
            "aux.txt",
            "dir/NUL.tar.gz",
            "COM1",
            "lpt9.log",
            "COM¹",
            "tab\there",
            "ok/sub./x",
        ] {
            assert!(windows_refuses(bad).is_some(), "{bad:?}");
        }
        for ok in [
            "a.txt",
            "console.txt",
            "COM10",
            "auxiliary",
            ".hidden",
            "sub dir/file name.txt",
            "ünïcödé.md",
            "a.b.c",
        ] {
            assert_eq!(windows_refuses(ok), None, "{ok:?}");
        }
    }

    #[test]
    fn a_folder_folds_names_as_it_was_probed() {
        let plain = FsTraits::default();
        assert!(!plain.folds());
        assert_eq!(plain.folded("X.txt"), "X.txt");
        let nocase = FsTraits {
            case_insensitive: true,
            ..FsTraits::default()
        };
        assert_eq!(nocase.folded("Dir/X.txt"), "dir/x.txt");
        assert_eq!(nocase.folded("caf\u{e9}"), "caf\u{e9}");
        assert_ne!(nocase.folded("cafe\u{301}"), nocase.folded("caf\u{e9}"));
        let nonorm = FsTraits {
            normalization_insensitive: true,
            ..FsTraits::default()
        };
        assert_eq!(nonorm.folded("cafe\u{301}"), "caf\u{e9}");
        assert_eq!(nonorm.folded("X"), "X");
        assert_eq!(
            how_alike("cafe\u{301}", "caf\u{e9}"),
            "only in Unicode normalization (NFC, NFD)"
        );
        assert_eq!(how_alike("X.txt", "x.txt"), "only in letter case");
    }

    #[test]
    fn special_bits_never_enter_and_a_folder_without_modes_has_none() {
        let e = Entry {
            kind: super::super::Kind::File,
            size: 1,
            mtime_ns: 0,
            mode: Some(0o4755),
            id: super::super::FileId { dev: 1, ino: 1 },
            hash: None,
        };
        assert_eq!(FsTraits::default().fit(e.clone()).mode, Some(0o755));
        let fat = FsTraits {
            has_modes: false,
            ..FsTraits::default()
        };
        assert_eq!(fat.fit(e).mode, None);
    }
}
