//! Writing state so that a power cut loses nothing that was reported
//! done: the bytes go to a temporary file, which is flushed to disk, then
//! renamed into place, and the directory that holds the new name is
//! flushed too (without that, the rename itself may not survive).

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::OnceLock;

/// Benchmarks only: `LAB3_BENCH_NO_FSYNC=1` skips every flush to disk, to
/// measure what durability costs (`cargo bench --bench sync`, run with and
/// without it). Never for real use: a power cut may then lose changes.
pub const NO_FSYNC_VAR: &str = "LAB3_BENCH_NO_FSYNC";

fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        let off = std::env::var_os(NO_FSYNC_VAR).is_some_and(|v| v == "1");
        if off {
            tracing::warn!(
                "{NO_FSYNC_VAR}=1: files and state are NOT flushed to disk (benchmarks only)"
            );
        }
        !off
    })
}

/// Flushes a file's data and metadata to disk.
pub fn sync_file(file: &File) -> io::Result<()> {
    if enabled() {
        file.sync_all()
    } else {
        Ok(())
    }
}

/// Flushes a file's data (and the size) to disk: enough for an append-only
/// journal.
pub fn sync_data(file: &File) -> io::Result<()> {
    if enabled() {
        file.sync_data()
    } else {
        Ok(())
    }
}

/// Now, for the names of things set aside or kept: `20261121T071254.123456789Z`
/// (UTC; sorts by time).
pub fn stamp() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%S%.9fZ").to_string()
}

/// Writes `bytes` at `path` atomically and durably.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".lab3-tmp-")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    sync_file(tmp.as_file())?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Starts writing `len` bytes of `file` from `offset` back to disk, without
/// waiting for them (Linux: `sync_file_range`), so that the flush that
/// follows (an `fsync`, a `syncfs`) finds little left to write. It flushes
/// nothing by itself: no guarantee rests on it. Nothing elsewhere, or with
/// [`NO_FSYNC_VAR`].
pub fn start_write_back(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    if enabled() {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return;
        };
        // SAFETY: `file` is an open descriptor for the whole call, which
        // touches no memory of ours. A failure only means no head start.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// Flushes everything written to the file system that holds `dir` (Linux:
/// one `syncfs` for a whole burst of received files, instead of one
/// `fsync` each). `Ok(false)` where there is no such call: the caller then
/// flushes each file itself.
pub fn sync_filesystem(dir: &Path) -> io::Result<bool> {
    if !enabled() {
        return Ok(true);
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let d = File::open(dir)?;
        // SAFETY: `d` is an open descriptor for the whole call.
        if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(true)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        Ok(false)
    }
}

/// Benchmarks only: `LAB3_BENCH_FLUSH_EACH=1` flushes each received file
/// as it arrives (`fsync`) instead of the whole burst at once, to compare
/// the two ways (`cargo bench --bench sync`, bench/RESULTS.md).
pub const FLUSH_EACH_VAR: &str = "LAB3_BENCH_FLUSH_EACH";

/// Whether received files are flushed by [`sync_filesystem`] before they
/// are renamed into place, rather than one by one as they arrive.
pub fn batched() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        cfg!(target_os = "linux") && std::env::var_os(FLUSH_EACH_VAR).is_none_or(|v| v != "1")
    })
}

/// Flushes a directory's entries (new names, renames, removals) to disk.
/// A no-op where directories cannot be opened (Windows: there, the rename
/// itself is flushed by the file system's journal).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        if enabled() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}
