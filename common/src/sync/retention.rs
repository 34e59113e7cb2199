//! How long kept versions stay, and how much room they may take: each is
//! kept for `--keep-versions DAYS` (30 by default), and all of a side's
//! together within `--versions-cap` (by default a tenth of the folder's
//! size, but never under [`MIN_DEFAULT_CAP`]); the oldest go first. The
//! newest version is never removed for size alone: a single big file
//! replaced is still kept until a newer keep or its age pushes it out.
//!
//! The inventory of what is kept is read once at start; each keep adds to
//! it, so the checks after a keep cost nothing more than the keep.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::versions::FOLDERS;

/// The smallest cap the default (a tenth of the folder) may come to, so
/// that a small folder still keeps its recent versions.
pub const MIN_DEFAULT_CAP: u64 = 100 * 1024 * 1024;

const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// The room kept versions may take (`--versions-cap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Bytes(u64),
    /// A share of the folder's size, in percent (with [`MIN_DEFAULT_CAP`]
    /// as a floor).
    Percent(u64),
}

impl Default for Cap {
    fn default() -> Cap {
        Cap::Percent(10)
    }
}

impl std::str::FromStr for Cap {
    type Err = String;

    /// `10%`, `500M`, `2G`, `1024` (bytes); K, M, G, T are powers of 1024.
    fn from_str(s: &str) -> Result<Cap, String> {
        let s = s.trim();
        let bad = || format!("{s:?} is no size: say 10%, 500M, 2G or a number of bytes");
        if let Some(p) = s.strip_suffix('%') {
            return p.trim().parse().map(Cap::Percent).map_err(|_| bad());
        }
        let upper = s.to_ascii_uppercase();
        let digits = upper.trim_end_matches(['B', 'I']);
        let (num, shift) = match digits.chars().last() {
            Some('K') => (&digits[..digits.len() - 1], 10),
            Some('M') => (&digits[..digits.len() - 1], 20),
            Some('G') => (&digits[..digits.len() - 1], 30),
            Some('T') => (&digits[..digits.len() - 1], 40),
            _ => (digits, 0),
        };
        let n: u64 = num.trim().parse().map_err(|_| bad())?;
        n.checked_mul(1 << shift).map(Cap::Bytes).ok_or_else(bad)
    }
}

/// What a side keeps, oldest first, and the rules it keeps them by.
#[derive(Debug)]
pub struct Retention {
    max_age_ns: i64,
    cap: Cap,
    folder_bytes: u64,
    /// Each stamp folder (one keep): when, where, how many bytes.
    kept: VecDeque<(i64, PathBuf, u64)>,
    total: u64,
}

impl Retention {
    /// Reads what `state_dir` keeps now.
    pub fn load(state_dir: &Path, days: u32, cap: Cap) -> Retention {
        let mut kept: Vec<(i64, PathBuf, u64)> = FOLDERS
            .iter()
            .flat_map(|f| super::versions::stamps(&state_dir.join(f)))
            .map(|dir| {
                let at = super::versions::stamp_ns(&dir).unwrap_or(0);
                let bytes = bytes_in(&dir);
                (at, dir, bytes)
            })
            .collect();
        kept.sort();
        let total = kept.iter().map(|k| k.2).sum();
        // What a stop left on its way out.
        remove_later(
            (std::fs::read_dir(state_dir.join(EXPIRING)).into_iter())
                .flatten()
                .flatten()
                .map(|left| left.path())
                .collect(),
        );
        Retention {
            max_age_ns: i64::from(days).saturating_mul(DAY_NS),
            cap,
            folder_bytes: 0,
            kept: kept.into(),
            total,
        }
    }

    /// The folder's size now (the default cap is a share of it).
    pub fn set_folder_bytes(&mut self, bytes: u64) {
        self.folder_bytes = bytes;
    }

    /// The cap in bytes now.
    pub fn cap_bytes(&self) -> u64 {
        match self.cap {
            Cap::Bytes(b) => b,
            Cap::Percent(p) => {
                let share = u128::from(self.folder_bytes) * u128::from(p) / 100;
                u64::try_from(share)
                    .unwrap_or(u64::MAX)
                    .max(MIN_DEFAULT_CAP)
            }
        }
    }

    /// Notes a keep just made into `stamp_dir`.
    pub fn added(&mut self, stamp_dir: &Path) {
        let bytes = bytes_in(stamp_dir);
        let at = super::versions::stamp_ns(stamp_dir).unwrap_or_else(crate::meta::now_ns);
        self.total += bytes;
        self.kept.push_back((at, stamp_dir.to_path_buf(), bytes));
    }

    /// How many versions are kept (stamp folders) and their bytes.
    pub fn usage(&self) -> (usize, u64) {
        (self.kept.len(), self.total)
    }

    /// Removes, oldest first, what is older than the age limit, then what
    /// is over the cap (never the newest for size alone). Returns what it
    /// removed, for the log.
    pub fn prune(&mut self, now_ns: i64) -> Vec<PathBuf> {
        let cap = self.cap_bytes();
        let mut gone = Vec::new();
        let mut away = Vec::new();
        while let Some((at, _, bytes)) = self.kept.front() {
            let too_old = now_ns.saturating_sub(*at) >= self.max_age_ns;
            let too_big = self.total > cap && self.kept.len() > 1;
            if !too_old && !too_big {
                break;
            }
            let bytes = *bytes;
            let (_, dir, _) = self.kept.pop_front().expect("just seen");
            if let Some(moved) = out_of_sight(&dir) {
                self.total -= bytes;
                gone.push(dir);
                away.push(moved);
                continue;
            }
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {
                    self.total -= bytes;
                    gone.push(dir);
                }
                Err(e) => {
                    tracing::warn!("cannot remove the expired version {}: {e}", dir.display());
                    self.total -= bytes;
                }
            }
        }
        remove_later(away);
        gone
    }
}

/// Where expired versions go on their way out, in the state directory:
/// renamed there at once, removed on a thread of their own. Removing a
/// big file takes a while (half a second for 1 GiB on ext4), and a keep
/// expires the oldest version in the middle of an install, before its
/// rename.
const EXPIRING: &str = "expiring";

/// Moves the stamp folder `dir` (`<state>/<folder>/<stamp>`) into
/// [`EXPIRING`]; where it went, or `None` if it could not be moved (it is
/// then removed where it is).
fn out_of_sight(dir: &Path) -> Option<PathBuf> {
    let folder = dir.parent()?;
    let bin = folder.parent()?.join(EXPIRING);
    std::fs::create_dir_all(&bin).ok()?;
    let away = bin.join(format!(
        "{}-{}",
        folder.file_name()?.to_string_lossy(),
        dir.file_name()?.to_string_lossy()
    ));
    std::fs::rename(dir, &away).ok()?;
    Some(away)
}

/// Removes the folders `dirs` on one thread (now, if no thread can be
/// made): one thread for a prune or a start, not one per version.
fn remove_later(dirs: Vec<PathBuf>) {
    if dirs.is_empty() {
        return;
    }
    let remove = |dirs: &[PathBuf]| {
        for dir in dirs {
            if let Err(e) = std::fs::remove_dir_all(dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("cannot remove the expired version {}: {e}", dir.display());
                }
            }
        }
    };
    let again = dirs.clone();
    if std::thread::Builder::new()
        .name("lab3-expire".into())
        .spawn(move || remove(&dirs))
        .is_err()
    {
        remove(&again);
    }
}

/// The bytes of the files under `dir` (sidecars included: they are small).
fn bytes_in(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep(state: &Path, stamp: &str, bytes: usize) -> PathBuf {
        let dir = state.join("versions").join(stamp);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("f"), vec![b'x'; bytes]).unwrap();
        dir
    }

    #[test]
    fn old_ones_go_by_age_then_the_oldest_by_size_never_the_newest() {
        let d = tempfile::tempdir().unwrap();
        let old = keep(d.path(), "20200101T000000.000000000Z", 10);
        let mid = keep(d.path(), "20261101T000000.000000000Z", 600);
        let new = keep(d.path(), "20261102T000000.000000000Z", 600);
        let now = super::super::versions::stamp_ns(&d.path().join("20261103T000000.0Z")).unwrap();
        let mut r = Retention::load(d.path(), 30, Cap::Bytes(1000));
        assert_eq!(r.usage(), (3, 1210));
        assert_eq!(r.prune(now), vec![old.clone(), mid.clone()]);
        assert!(!old.exists() && !mid.exists() && new.exists());
        // Out of sight at once, removed on a thread.
        let bin = d.path().join(EXPIRING);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::fs::read_dir(&bin).map_or(0, |r| r.count()) > 0 {
            assert!(std::time::Instant::now() < deadline, "never removed");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // What a stop left there goes at the next start.
        let left = bin.join("versions-20261101T000000.000000000Z");
        std::fs::create_dir_all(&left).unwrap();
        std::fs::write(left.join("f"), b"x").unwrap();
        drop(Retention::load(d.path(), 30, Cap::Bytes(1000)));
        while left.exists() {
            assert!(std::time::Instant::now() < deadline, "a leftover stays");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(r.usage(), (1, 600));
        let newest = keep(d.path(), "20261102T000001.000000000Z", 5000);
        r.added(&newest);
        assert_eq!(r.prune(now), vec![new]);
        assert!(newest.exists(), "the newest stays, even over the cap");
        let mut none = Retention::load(d.path(), 0, Cap::default());
        assert_eq!(none.prune(now).len(), 1);
    }

    #[test]
    fn caps_are_read_as_people_write_them() {
        assert_eq!("10%".parse(), Ok(Cap::Percent(10)));
        assert_eq!("500M".parse(), Ok(Cap::Bytes(500 << 20)));
        assert_eq!("2GiB".parse(), Ok(Cap::Bytes(2 << 30)));
        assert_eq!("1024".parse(), Ok(Cap::Bytes(1024)));
        assert!("lots".parse::<Cap>().is_err());
        let mut r = Retention::load(Path::new("/nonexistent"), 30, Cap::default());
        r.set_folder_bytes(10 << 30);
        assert_eq!(r.cap_bytes(), 1 << 30);
    }
}
