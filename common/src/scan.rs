//! Walks a directory and reports its files: the inventory both servers
//! build for listings and for reconciliation.
//!
//! Symbolic links are never followed (they are reported so the caller can
//! warn once); lab3's own temporary files and the usual file-manager junk
//! are left out (see [`crate::ignore`]).

use std::path::{Path, PathBuf};

use crate::ignore::Ignore;
use crate::meta::FileMeta;
use crate::paths;

/// What one walk of a directory found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Regular files, sorted by path.
    pub files: Vec<FileMeta>,
    /// Paths skipped: symbolic links, names that are not UTF-8, unreadable entries.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Walks `root` (which must exist) and returns every regular file below it
/// that `ignore` does not ignore (for a walk of a subfolder, pass
/// [`Ignore::below`] so that the rules see paths from the synced directory's top).
pub fn scan_dir(root: &Path, ignore: &Ignore) -> std::io::Result<Scan> {
    let md = std::fs::metadata(root)?;
    if !md.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            format!("{} is not a directory", root.display()),
        ));
    }
    let mut scan = Scan::default();
    // Names first (the walk reads folders only), then the files' metadata,
    // on two threads when there are many.
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .min_depth(1)
        .into_iter()
        .filter_entry(|e| {
            // Matched by the path below `root` (gitignore rules may name folders).
            let rel = paths::relative(root, e.path());
            !rel.is_some_and(|rel| ignore.is_ignored_entry(&rel, e.file_type().is_dir()))
        });
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let p = e.path().map(Path::to_path_buf).unwrap_or_default();
                scan.skipped.push((p, e.to_string()));
                continue;
            }
        };
        let ft = entry.file_type();
        if ft.is_dir() {
            continue;
        }
        if ft.is_symlink() {
            scan.skipped.push((
                entry.path().to_path_buf(),
                "symbolic link, not followed".into(),
            ));
            continue;
        }
        if !ft.is_file() {
            scan.skipped
                .push((entry.path().to_path_buf(), "not a regular file".into()));
            continue;
        }
        let Some(rel) = paths::relative(root, entry.path()) else {
            scan.skipped
                .push((entry.path().to_path_buf(), "name is not UTF-8".into()));
            continue;
        };
        found.push((rel, entry.into_path()));
    }
    for looked in stat_all(found) {
        match looked {
            Looked::File(f) => scan.files.push(f),
            Looked::Skipped(path, why) => scan.skipped.push((path, why)),
            Looked::Gone => {}
        }
    }
    scan.files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Ok(scan)
}

/// What the stat of one walked entry found.
enum Looked {
    File(FileMeta),
    /// Vanished since the walk, or no longer a file: the next look sees it.
    Gone,
    Skipped(PathBuf, String),
}

/// Stats every `(relative, full)` path, in order; split over two threads
/// when there are enough to be worth one (a big folder's scan is mostly
/// stats).
fn stat_all(found: Vec<(String, PathBuf)>) -> Vec<Looked> {
    let stat = |(rel, path): (String, PathBuf)| match std::fs::symlink_metadata(&path) {
        Ok(md) if md.is_file() => Looked::File(FileMeta::from_fs(rel, &md)),
        Ok(_) => Looked::Gone,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Looked::Gone,
        Err(e) => Looked::Skipped(path, e.to_string()),
    };
    if found.len() < 2_000 {
        return found.into_iter().map(stat).collect();
    }
    let mut first = found;
    let second = first.split_off(first.len() / 2);
    std::thread::scope(|s| {
        let other = s.spawn(|| second.into_iter().map(stat).collect::<Vec<_>>());
        let mut out: Vec<Looked> = first.into_iter().map(stat).collect();
        match other.join() {
            Ok(rest) => out.extend(rest),
            Err(panic) => std::panic::resume_unwind(panic),
        }
        out
    })
}

/// Stats one file: `Ok(None)` when it does not exist (or is not a regular file).
pub fn stat_file(root: &Path, rel: &str) -> std::io::Result<Option<FileMeta>> {
    let full = paths::resolve(root, rel)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    match std::fs::symlink_metadata(&full) {
        Ok(md) if md.is_file() => Ok(Some(FileMeta::from_fs(rel.to_string(), &md))),
        Ok(_) => Ok(None),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether a stat's error means "no such file" (also: a parent that is a
/// file now, not a folder).
pub fn is_absent(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

/// [`scan_dir`] on the blocking thread pool.
pub async fn scan_dir_async(root: PathBuf, ignore: Ignore) -> std::io::Result<Scan> {
    tokio::task::spawn_blocking(move || scan_dir(&root, &ignore))
        .await
        .map_err(std::io::Error::other)?
}

/// Whether `dir` is on a filesystem where the OS watcher may not see every
/// change: network filesystems (NFS, SMB/CIFS, 9p, Ceph, AFS) and FUSE,
/// whose changes made elsewhere raise no local events.
#[cfg(target_os = "linux")]
pub fn events_may_be_missing(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    const REMOTE: &[i64] = &[
        0x6969,     // NFS
        0x517B,     // SMB
        0xFF534D42, // CIFS
        0xFE534D42, // SMB2
        0x65735546, // FUSE
        0x01021997, // 9p (VM and WSL shares)
        0x00C36400, // Ceph
        0x5346414F, // AFS
        0x73757245, // Coda
    ];
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return true;
    };
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a buffer of the right type.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return true;
    }
    REMOTE.contains(&(st.f_type as i64))
}

/// On macOS, FSEvents sees every change on a local volume (its coalescing
/// and dropped events arrive as a rescan flag, which the watcher acts on at
/// once); a volume without `MNT_LOCAL` (SMB, NFS, AFP, FUSE) may change
/// elsewhere unseen.
#[cfg(target_os = "macos")]
pub fn events_may_be_missing(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return true;
    };
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a buffer of the right type.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return true;
    }
    st.f_flags & (libc::MNT_LOCAL as u32) == 0
}

/// On Windows, ReadDirectoryChangesW sees every change on a local drive (a
/// full buffer arrives as a rescan flag, acted on at once); a network
/// share's changes made by other machines may go unreported.
#[cfg(windows)]
pub fn events_may_be_missing(dir: &Path) -> bool {
    use std::os::windows::ffi::OsStrExt;
    use windows_sys::Win32::Storage::FileSystem::{GetDriveTypeW, GetVolumePathNameW};
    const DRIVE_REMOVABLE: u32 = 2;
    const DRIVE_FIXED: u32 = 3;
    const DRIVE_RAMDISK: u32 = 6;
    let wide: Vec<u16> = dir.as_os_str().encode_wide().chain([0]).collect();
    let mut root = [0u16; 1024];
    // SAFETY: a NUL-terminated path and a buffer of the length given.
    if unsafe { GetVolumePathNameW(wide.as_ptr(), root.as_mut_ptr(), root.len() as u32) } == 0 {
        return true;
    }
    // SAFETY: `root` was NUL-terminated by the call above.
    let kind = unsafe { GetDriveTypeW(root.as_ptr()) };
    ![DRIVE_FIXED, DRIVE_REMOVABLE, DRIVE_RAMDISK].contains(&kind)
}

/// Elsewhere the filesystem type is not checked: assume events may be missing.
#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
pub fn events_may_be_missing(_dir: &Path) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(any(target_os = "linux", target_os = "macos", windows))]
    #[test]
    fn a_local_temp_folder_raises_events() {
        let d = tempfile::tempdir().unwrap();
        assert!(!events_may_be_missing(d.path()));
    }

    #[test]
    fn finds_nested_files_and_skips_links_and_junk() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("b.txt"), "bb").unwrap();
        std::fs::write(d.path().join("sub/a.txt"), "a").unwrap();
        std::fs::write(d.path().join(".DS_Store"), "junk").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("b.txt", d.path().join("link")).unwrap();
        let s = scan_dir(d.path(), &Ignore::default()).unwrap();
        let names: Vec<_> = s.files.iter().map(|f| (f.path.as_str(), f.size)).collect();
        assert_eq!(names, [("b.txt", 2), ("sub/a.txt", 1)]);
        #[cfg(unix)]
        assert_eq!(s.skipped.len(), 1);
    }
}
