//! A file's identity on its own side, and how many names it has: what lets
//! the core see a move as a move and tell hard links from a replaced file.
//!
//! On unix both come with every stat (device and inode, the link count).
//! On Windows a directory listing or a stat through std gives neither on
//! stable Rust, so they are asked of the file itself: opened with no access
//! rights (which no other program's sharing mode can refuse, so a file held
//! open elsewhere still has an identity), then `GetFileInformationByHandle`
//! (through `winapi-util`, already in the tree for `walkdir`) gives the
//! volume serial number, the 64-bit file index and the number of links in
//! one call. A full scan does not open each file: [`FolderIds`] lists a
//! folder once more with `GetFileInformationByHandleEx(FileIdBothDirectory
//! Info)`, which gives every entry's file id (the same 64-bit index) in a
//! few calls per folder. (Opening each file instead made a restart over
//! 5,000 files take 19 s rather than 1.5 s under Wine.)

use std::fs::Metadata;
use std::path::Path;

use super::core::FileId;

/// The identity of the file or folder at `path`, as stat'ed into `md`.
#[cfg(unix)]
pub fn id_of(_path: &Path, md: &Metadata) -> FileId {
    id_in_stat(md)
}

/// What a stat alone says of the identity: all of it on unix.
#[cfg(unix)]
pub fn id_in_stat(md: &Metadata) -> FileId {
    use std::os::unix::fs::MetadataExt;
    FileId {
        dev: md.dev(),
        ino: md.ino(),
    }
}

/// What a stat alone says of the identity: nothing off unix (see
/// [`id_of`]).
#[cfg(not(unix))]
pub fn id_in_stat(_md: &Metadata) -> FileId {
    FileId { dev: 0, ino: 0 }
}

/// The identity of the file or folder at `path` (volume serial number and
/// file index). One that cannot be read (the file went meanwhile, a file
/// system without indexes) is made of the path's name instead: never the
/// identity of another path, so it is never taken for a move or a hard
/// link, at worst a move sent as a delete and a create.
#[cfg(windows)]
pub fn id_of(path: &Path, _md: &Metadata) -> FileId {
    match windows::information(path) {
        Ok(info) => FileId {
            dev: info.volume_serial_number(),
            ino: info.file_index(),
        },
        Err(_) => of_name(path),
    }
}

/// Elsewhere (no such platform is built today): an identity per name.
#[cfg(not(any(unix, windows)))]
pub fn id_of(path: &Path, _md: &Metadata) -> FileId {
    of_name(path)
}

/// An identity that only this name has: a device number no real volume
/// uses, and a hash of the path.
#[cfg(not(unix))]
fn of_name(path: &Path) -> FileId {
    let hash = blake3::hash(path.as_os_str().as_encoded_bytes());
    let mut ino = [0u8; 8];
    ino.copy_from_slice(&hash.as_bytes()[..8]);
    FileId {
        dev: u64::MAX,
        ino: u64::from_le_bytes(ino),
    }
}

/// The identities of what one folder holds, read in one pass where the
/// stat of each entry does not give them (Windows); on unix, nothing to
/// read: the stat has it.
pub struct FolderIds {
    #[cfg(windows)]
    ids: std::collections::HashMap<std::ffi::OsString, FileId>,
}

impl FolderIds {
    /// The identities of `folder`'s entries (none, and each asked of its
    /// file later, where the folder cannot be listed so).
    #[cfg(unix)]
    pub fn read(_folder: &Path) -> FolderIds {
        FolderIds {}
    }

    #[cfg(windows)]
    pub fn read(folder: &Path) -> FolderIds {
        FolderIds {
            ids: windows::ids_in(folder).unwrap_or_default(),
        }
    }

    #[cfg(not(any(unix, windows)))]
    pub fn read(_folder: &Path) -> FolderIds {
        FolderIds {}
    }

    /// The identity of the entry `name` of the folder, at `path`, stat'ed
    /// into `md`.
    #[cfg(windows)]
    pub fn id(&self, name: &std::ffi::OsStr, path: &Path, md: &Metadata) -> FileId {
        match self.ids.get(name) {
            Some(id) => *id,
            None => id_of(path, md),
        }
    }

    #[cfg(not(windows))]
    pub fn id(&self, _name: &std::ffi::OsStr, path: &Path, md: &Metadata) -> FileId {
        id_of(path, md)
    }
}

/// The identity of the file at `path` and how many names it has, or
/// `None` if it cannot be read.
#[cfg(unix)]
pub fn id_and_links(path: &Path) -> Option<(FileId, u64)> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::symlink_metadata(path).ok()?;
    Some((id_of(path, &md), md.nlink()))
}

/// The identity of the file at `path` and how many names it has, or
/// `None` if it cannot be read.
#[cfg(windows)]
pub fn id_and_links(path: &Path) -> Option<(FileId, u64)> {
    let info = windows::information(path).ok()?;
    let id = FileId {
        dev: info.volume_serial_number(),
        ino: info.file_index(),
    };
    Some((id, info.number_of_links()))
}

/// (No link count elsewhere.)
#[cfg(not(any(unix, windows)))]
pub fn id_and_links(_path: &Path) -> Option<(FileId, u64)> {
    None
}

#[cfg(windows)]
mod windows {
    use std::collections::HashMap;
    use std::ffi::OsString;
    use std::os::windows::ffi::OsStringExt;
    use std::os::windows::fs::OpenOptionsExt;
    use std::os::windows::io::AsRawHandle;
    use std::path::Path;

    use windows_sys::Win32::Foundation::ERROR_NO_MORE_FILES;
    use windows_sys::Win32::Storage::FileSystem::{
        FileIdBothDirectoryInfo, GetFileInformationByHandleEx, FILE_ID_BOTH_DIR_INFO,
        FILE_LIST_DIRECTORY,
    };

    use super::FileId;

    /// `FILE_FLAG_BACKUP_SEMANTICS`: lets a folder be opened too.
    const BACKUP_SEMANTICS: u32 = 0x0200_0000;
    /// `FILE_FLAG_OPEN_REPARSE_POINT`: a link itself, never followed.
    const OPEN_REPARSE_POINT: u32 = 0x0020_0000;

    /// `GetFileInformationByHandle` of what `path` names, opened with no
    /// access rights (std shares read, write and delete).
    pub fn information(path: &Path) -> std::io::Result<winapi_util::file::Information> {
        let file = std::fs::OpenOptions::new()
            .access_mode(0)
            .custom_flags(BACKUP_SEMANTICS | OPEN_REPARSE_POINT)
            .open(path)?;
        winapi_util::file::information(&file)
    }

    /// Every entry of `folder` (`.` and `..` too) with its identity: the
    /// folder listed through its handle, 64 KiB of entries a call.
    pub fn ids_in(folder: &Path) -> std::io::Result<HashMap<OsString, FileId>> {
        let dir = std::fs::OpenOptions::new()
            .access_mode(FILE_LIST_DIRECTORY)
            .custom_flags(BACKUP_SEMANTICS)
            .open(folder)?;
        let volume = winapi_util::file::information(&dir)?.volume_serial_number();
        let mut ids = HashMap::new();
        // u64s: the entries are 8-byte aligned.
        let mut buf = vec![0u64; 8 * 1024];
        let bytes = (buf.len() * 8) as u32;
        loop {
            // SAFETY: the handle is open for listing, and the buffer is as
            // long as the size given.
            let ok = unsafe {
                GetFileInformationByHandleEx(
                    dir.as_raw_handle(),
                    FileIdBothDirectoryInfo,
                    buf.as_mut_ptr().cast(),
                    bytes,
                )
            };
            if ok == 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(ERROR_NO_MORE_FILES as i32) {
                    return Ok(ids);
                }
                return Err(e);
            }
            let mut at = 0usize;
            loop {
                // SAFETY: the call filled the buffer with a chain of
                // entries, each starting at the previous one's
                // NextEntryOffset, its name FileNameLength bytes long
                // from FileName, all within the buffer.
                let (next, name, id) = unsafe {
                    let entry = buf
                        .as_ptr()
                        .cast::<u8>()
                        .add(at)
                        .cast::<FILE_ID_BOTH_DIR_INFO>();
                    let len = (*entry).FileNameLength as usize / 2;
                    let name = std::ptr::addr_of!((*entry).FileName).cast::<u16>();
                    let name = std::slice::from_raw_parts(name, len);
                    (
                        (*entry).NextEntryOffset,
                        OsString::from_wide(name),
                        (*entry).FileId,
                    )
                };
                ids.insert(
                    name,
                    FileId {
                        dev: volume,
                        ino: id as u64,
                    },
                );
                if next == 0 {
                    break;
                }
                at += next as usize;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_links_share_an_identity_and_count_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        std::fs::write(&a, b"one file").unwrap();
        std::fs::write(&c, b"one file").unwrap();
        std::fs::hard_link(&a, &b).unwrap();
        let (id_a, links_a) = id_and_links(&a).unwrap();
        let (id_b, links_b) = id_and_links(&b).unwrap();
        let (id_c, links_c) = id_and_links(&c).unwrap();
        assert_eq!(id_a, id_b, "two names of one file");
        assert_ne!(id_a, id_c, "a look-alike is another file");
        assert_eq!((links_a, links_b, links_c), (2, 2, 1));
        let md = std::fs::symlink_metadata(&a).unwrap();
        assert_eq!(id_of(&a, &md), id_a);
    }

    #[test]
    fn a_folder_read_once_gives_each_entry_the_identity_a_stat_gives() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        let ids = FolderIds::read(dir.path());
        for item in std::fs::read_dir(dir.path()).unwrap() {
            let item = item.unwrap();
            let md = item.metadata().unwrap();
            assert_eq!(
                ids.id(&item.file_name(), &item.path(), &md),
                id_and_links(&item.path()).unwrap().0
            );
        }
    }

    #[test]
    fn a_moved_file_and_folder_keep_their_identity() {
        let dir = tempfile::tempdir().unwrap();
        let (f, g) = (dir.path().join("f"), dir.path().join("g"));
        let (d, e) = (dir.path().join("d"), dir.path().join("e"));
        std::fs::write(&f, b"x").unwrap();
        std::fs::create_dir(&d).unwrap();
        let before_f = id_and_links(&f).unwrap().0;
        let before_d = id_of(&d, &std::fs::metadata(&d).unwrap());
        std::fs::rename(&f, &g).unwrap();
        std::fs::rename(&d, &e).unwrap();
        assert_eq!(id_and_links(&g).unwrap().0, before_f);
        assert_eq!(id_of(&e, &std::fs::metadata(&e).unwrap()), before_d);
    }
}
