//! Changing the directory: every write lab3 makes to a synced folder goes
//! through here, so that a file only ever appears whole (renamed into place
//! from a finished temporary file) and a replaced copy that lost a conflict
//! is kept in the state directory rather than destroyed.

use std::path::{Path, PathBuf};

use crate::paths;

/// Renames a finished temporary file to `rel` under `root`, creating parent folders.
pub fn install(root: &Path, rel: &str, temp: tempfile::TempPath) -> std::io::Result<()> {
    let target = paths::resolve(root, rel).map_err(std::io::Error::other)?;
    // The parent folder almost always exists: try the rename first, and
    // create folders only when it says one is missing (two system calls
    // fewer per received file).
    let temp = match temp.persist(&target) {
        Ok(()) => return Ok(()),
        Err(e) if e.error.kind() == std::io::ErrorKind::NotFound => e.path,
        Err(e) => return Err(e.error),
    };
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    temp.persist(&target).map_err(|e| e.error)
}

/// Like [`install`], but only when nothing is at `rel` yet, checked by the
/// rename itself (`RENAME_NOREPLACE` where the OS has it): one system call,
/// no stat first. Gives the temporary file back when something is there, or
/// when this filesystem cannot rename without replacing; the caller then
/// looks and decides.
pub fn install_new(
    root: &Path,
    rel: &str,
    temp: tempfile::TempPath,
) -> std::io::Result<Option<tempfile::TempPath>> {
    let target = paths::resolve(root, rel).map_err(std::io::Error::other)?;
    let temp = match temp.persist_noclobber(&target) {
        Ok(()) => return Ok(None),
        Err(e) if e.error.kind() == std::io::ErrorKind::NotFound => e.path,
        Err(e) => return Ok(Some(e.path)),
    };
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match temp.persist_noclobber(&target) {
        Ok(()) => Ok(None),
        Err(e) => Ok(Some(e.path)),
    }
}

/// Moves a file already in the directory from `from` to `to`.
pub fn rename(root: &Path, from: &str, to: &str) -> std::io::Result<()> {
    let src = paths::resolve(root, from).map_err(std::io::Error::other)?;
    let dst = paths::resolve(root, to).map_err(std::io::Error::other)?;
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::rename(&src, &dst)?;
    remove_empty_parents(root, &src);
    Ok(())
}

/// Deletes `rel` (a missing file is fine) and any folders it leaves empty.
pub fn delete(root: &Path, rel: &str) -> std::io::Result<()> {
    let target = paths::resolve(root, rel).map_err(std::io::Error::other)?;
    match std::fs::remove_file(&target) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    remove_empty_parents(root, &target);
    Ok(())
}

fn remove_empty_parents(root: &Path, path: &Path) {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) || std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

/// Moves the local copy of `rel` into `<state>/conflicts/<time>/<rel>` and
/// returns where it went. Used before a copy is replaced or deleted by a
/// version that won a conflict against it.
pub fn keep_conflict(root: &Path, state_dir: &Path, rel: &str) -> std::io::Result<PathBuf> {
    let src = paths::resolve(root, rel).map_err(std::io::Error::other)?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.9fZ").to_string();
    let dst = paths::resolve(&state_dir.join("conflicts").join(stamp), rel)
        .map_err(std::io::Error::other)?;
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if std::fs::rename(&src, &dst).is_err() {
        // Another filesystem: copy, then remove.
        std::fs::copy(&src, &dst)?;
        std::fs::remove_file(&src)?;
    }
    Ok(dst)
}
