//! The file model: what lab3 knows about a file, and how to read and set it on disk.

use std::fs::Metadata;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A file's identity and metadata as it travels between the servers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileMeta {
    /// Relative to the synced directory, `/`-separated (checked by [`crate::paths`]).
    pub path: String,
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
}

impl FileMeta {
    /// Builds the metadata of `path` from what `std::fs` reports.
    pub fn from_fs(path: String, md: &Metadata) -> FileMeta {
        FileMeta {
            path,
            size: md.len(),
            mtime_ns: mtime_ns(md),
            mode: mode_bits(md),
        }
    }

    /// Same content and metadata as far as lab3 can tell without hashing
    /// (the rsync "quick check": size, mtime and mode).
    pub fn same_state(&self, other: &FileMeta) -> bool {
        self.size == other.size && self.mtime_ns == other.mtime_ns && self.mode == other.mode
    }
}

/// The modification time of `md` in nanoseconds since the epoch.
pub fn mtime_ns(md: &Metadata) -> i64 {
    let ft = filetime::FileTime::from_last_modification_time(md);
    ft.unix_seconds() * 1_000_000_000 + i64::from(ft.nanoseconds())
}

#[cfg(unix)]
fn mode_bits(md: &Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    md.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_bits(md: &Metadata) -> u32 {
    if md.permissions().readonly() {
        0o444
    } else {
        0o644
    }
}

/// Sets the modification time (to the nanosecond) and the mode bits of `path`.
pub fn set_times_and_mode(path: &Path, mtime_ns: i64, mode: u32) -> std::io::Result<()> {
    set_mode(path, mode)?;
    let ft = filetime_from_ns(mtime_ns);
    filetime::set_file_mtime(path, ft)
}

/// The [`filetime::FileTime`] for a nanosecond timestamp.
pub fn filetime_from_ns(ns: i64) -> filetime::FileTime {
    filetime::FileTime::from_unix_time(
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u32,
    )
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
}

#[cfg(not(unix))]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    let mut p = std::fs::metadata(path)?.permissions();
    p.set_readonly(mode & 0o222 == 0);
    std::fs::set_permissions(path, p)
}

/// Now, in nanoseconds since the Unix epoch.
pub fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// RFC 3339, UTC, nanosecond digits: `2026-11-21T10:00:00.123456789Z`.
pub fn rfc3339_utc(ns: i64) -> String {
    chrono::DateTime::from_timestamp(
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u32,
    )
    .unwrap_or_default()
    .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_keeps_nanoseconds_and_utc() {
        assert_eq!(
            rfc3339_utc(1_795_255_200_123_456_789),
            "2026-11-21T10:00:00.123456789Z"
        );
        assert_eq!(rfc3339_utc(-1), "1969-12-31T23:59:59.999999999Z");
    }

    #[test]
    fn filetime_round_trips_negative_and_positive() {
        for ns in [-1_500_000_000i64, 0, 1_795_255_200_123_456_789] {
            let ft = filetime_from_ns(ns);
            assert_eq!(
                ft.unix_seconds() * 1_000_000_000 + i64::from(ft.nanoseconds()),
                ns
            );
        }
    }
}
