//! Writing state so that a power cut loses nothing that was reported
//! done: the bytes go to a temporary file, which is flushed to disk, then
//! renamed into place, and the directory that holds the new name is
//! flushed too (without that, the rename itself may not survive).

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` at `path` atomically and durably.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".lab3-tmp-")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Flushes a directory's entries (new names, renames, removals) to disk.
/// A no-op where directories cannot be opened (Windows: there, the rename
/// itself is flushed by the file system's journal).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}
