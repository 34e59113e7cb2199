//! Copying a run of bytes from one open file into another without taking
//! them through this process: where the file system shares blocks between
//! files (XFS, btrfs), the block-aligned part becomes a reflink
//! (`FICLONERANGE`: the new file points at the old one's blocks, nothing
//! is written but metadata); the rest goes by `copy_file_range` (the
//! kernel copies from page cache to page cache, no round trip through
//! user space). Each call is given up on, for the files at hand, at its
//! first refusal (the file system has no reflinks, the files are on two
//! file systems, an old kernel): the bytes then go through user space,
//! read and written as before. Linux only; elsewhere always read and
//! written.
//!
//! Nothing here checks the bytes: the receiver hashes what the new file
//! holds, read back (see [`super::sink::Sink::copy_from`]).

use std::fs::File;
use std::io;

/// How a run's bytes were copied.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// Shared with the source (a reflink): no bytes written.
    pub cloned: u64,
    /// Copied by the kernel (`copy_file_range`).
    pub in_kernel: u64,
    /// Read and written through this process.
    pub through_user: u64,
}

impl Copied {
    pub fn add(&mut self, other: Copied) {
        self.cloned += other.cloned;
        self.in_kernel += other.in_kernel;
        self.through_user += other.through_user;
    }

    pub fn total(&self) -> u64 {
        self.cloned + self.in_kernel + self.through_user
    }
}

/// The fast calls still worth trying between two files: each is set to
/// false at its first refusal ([`refused`]), and not tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ways {
    /// `FICLONERANGE`, for block-aligned runs.
    pub clone: bool,
    /// `copy_file_range`.
    pub copy_range: bool,
}

impl Ways {
    /// Every way this system has (none but reads and writes off Linux).
    pub fn all() -> Ways {
        let linux = cfg!(target_os = "linux");
        Ways {
            clone: linux,
            copy_range: linux,
        }
    }

    /// Reads and writes only.
    #[cfg(test)]
    pub fn none() -> Ways {
        Ways {
            clone: false,
            copy_range: false,
        }
    }

    /// Every combination the tests try: all ways, `copy_file_range`
    /// alone, and reads and writes only.
    #[cfg(test)]
    pub fn each() -> [Ways; 3] {
        let copy_range_only = Ways {
            clone: false,
            copy_range: true,
        };
        [Ways::all(), copy_range_only, Ways::none()]
    }

    /// Whether any fast way is left.
    pub fn any(&self) -> bool {
        self.clone || self.copy_range
    }
}

/// Whether a fast call's error means "not here" (the file system or the
/// kernel cannot, or not between these two files): the caller falls back
/// to the next way. Any other error is a real failure.
pub fn refused(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(
            e.raw_os_error(),
            Some(
                libc::EOPNOTSUPP
                    | libc::EXDEV
                    | libc::EINVAL
                    | libc::ENOSYS
                    | libc::ENOTTY
                    | libc::EPERM
            )
        )
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        true
    }
}

/// The result of one fast call, `way` given up on if it was refused:
/// `Ok(None)` then (fall back), the error if it is a real one.
pub fn settle<T>(result: io::Result<T>, way: &mut bool) -> io::Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if refused(&e) => {
            tracing::debug!("kernel copy refused ({e}): falling back");
            *way = false;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Copies `len` bytes from `src_at` of `src` to `dst_at` of `dst` by the
/// fastest of `ways` that works (and gives up, in `ways`, those that were
/// refused). A reflink is tried only where both offsets are multiples of
/// `align` (the file system's block size), for the whole `align` blocks of
/// the run. An error if `src` ends before `src_at + len`.
pub fn copy(
    src: &File,
    src_at: u64,
    dst: &File,
    dst_at: u64,
    len: u64,
    align: u64,
    ways: &mut Ways,
) -> io::Result<Copied> {
    let mut done = Copied::default();
    let (mut s, mut d, mut left) = (src_at, dst_at, len);
    let whole = left - left % align.max(1);
    if ways.clone && align > 0 && s % align == 0 && d % align == 0 && whole > 0 {
        if let Some(()) = settle(clone_range(src, s, dst, d, whole), &mut ways.clone)? {
            done.cloned = whole;
            (s, d, left) = (s + whole, d + whole, left - whole);
        }
    }
    while left > 0 && ways.copy_range {
        match settle(copy_file_range(src, s, dst, d, left), &mut ways.copy_range)? {
            Some(0) => return Err(short()),
            Some(n) => {
                done.in_kernel += n;
                (s, d, left) = (s + n, d + n, left - n);
            }
            None => break,
        }
    }
    if left > 0 {
        done.through_user = through_user(src, s, dst, d, left)?;
    }
    Ok(done)
}

fn short() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the copy here is shorter than the peer's plan",
    )
}

/// Bytes per read of [`through_user`].
const CHUNK: usize = 1024 * 1024;

/// Reads and writes (positioned: neither file's offset moves).
fn through_user(src: &File, src_at: u64, dst: &File, dst_at: u64, len: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; CHUNK.min(len as usize)];
    let mut done = 0;
    while done < len {
        let want = (len - done).min(buf.len() as u64) as usize;
        let n = read_at(src, &mut buf[..want], src_at + done)?;
        if n == 0 {
            return Err(short());
        }
        write_all_at(dst, &buf[..n], dst_at + done)?;
        done += n as u64;
    }
    Ok(done)
}

/// One positioned read, retried on an interruption.
pub fn read_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    loop {
        #[cfg(unix)]
        let r = std::os::unix::fs::FileExt::read_at(file, buf, at);
        #[cfg(windows)]
        let r = std::os::windows::fs::FileExt::seek_read(file, buf, at);
        match r {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

fn write_all_at(file: &File, mut buf: &[u8], mut at: u64) -> io::Result<()> {
    while !buf.is_empty() {
        #[cfg(unix)]
        let r = std::os::unix::fs::FileExt::write_at(file, buf, at);
        #[cfg(windows)]
        let r = std::os::windows::fs::FileExt::seek_write(file, buf, at);
        match r {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                at += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `FICLONERANGE`: `len` bytes of `dst` from `dst_at` share `src`'s blocks
/// from `src_at`.
#[cfg(target_os = "linux")]
fn clone_range(src: &File, src_at: u64, dst: &File, dst_at: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let arg = libc::file_clone_range {
        src_fd: i64::from(src.as_raw_fd()),
        src_offset: src_at,
        src_length: len,
        dest_offset: dst_at,
    };
    // SAFETY: both descriptors are open for the whole call, and `arg` is a
    // valid `file_clone_range` the kernel only reads.
    if unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONERANGE, &arg) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn clone_range(_: &File, _: u64, _: &File, _: u64, _: u64) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// One `copy_file_range` of at most `len` bytes (both offsets given: the
/// files' own offsets do not move): the bytes copied, 0 at the end of `src`.
#[cfg(target_os = "linux")]
fn copy_file_range(src: &File, src_at: u64, dst: &File, dst_at: u64, len: u64) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    let to_off =
        |v: u64| i64::try_from(v).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    let (mut off_in, mut off_out) = (to_off(src_at)?, to_off(dst_at)?);
    // At most 1 GiB a call, as the kernel would anyway.
    let len = len.min(1 << 30) as usize;
    loop {
        // SAFETY: both descriptors are open for the whole call; the
        // offsets are ours, valid for the call.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut off_in,
                dst.as_raw_fd(),
                &mut off_out,
                len,
                0,
            )
        };
        if n >= 0 {
            return Ok(n as u64);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn copy_file_range(_: &File, _: u64, _: &File, _: u64, _: u64) -> io::Result<u64> {
    Err(io::ErrorKind::Unsupported.into())
}

/// The block size of the file system that holds `file` (what a reflink's
/// offsets must be multiples of); 0 if unknown (no reflink is tried).
pub fn fs_block(file: &File) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        file.metadata().map_or(0, |m| m.blksize())
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::noise;

    fn files(dir: &std::path::Path, old: &[u8]) -> (File, File) {
        std::fs::write(dir.join("old"), old).unwrap();
        let src = File::open(dir.join("old")).unwrap();
        let dst = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join("new"))
            .unwrap();
        (src, dst)
    }

    /// Runs of `old` copied (at other offsets, aligned and not) by every
    /// combination of ways: the same bytes, counted once each.
    #[test]
    fn every_way_copies_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let old = noise(3 * 1024 * 1024 + 999, 31);
        let runs: [(u64, u64, u64); 4] = [
            (0, 0, 1024 * 1024),                             // aligned, same place
            (2 * 1024 * 1024, 1024 * 1024, 4096 * 10 + 17),  // aligned, moved, a tail
            (12_345, 1024 * 1024 + 4096 * 10 + 17, 100_000), // unaligned
            (3 * 1024 * 1024, 1024 * 1024 + 4096 * 10 + 17 + 100_000, 999), // the end
        ];
        for ways in Ways::each() {
            let (src, dst) = files(dir.path(), &old);
            let mut w = ways;
            let mut want = Vec::new();
            for &(from, at, len) in &runs {
                assert_eq!(at, want.len() as u64);
                let got = copy(&src, from, &dst, at, len, fs_block(&dst), &mut w).unwrap();
                assert_eq!(got.total(), len, "{ways:?}");
                if !ways.any() {
                    assert_eq!(got.through_user, len);
                }
                want.extend_from_slice(&old[from as usize..(from + len) as usize]);
            }
            assert_eq!(
                std::fs::read(dir.path().join("new")).unwrap(),
                want,
                "{ways:?}"
            );
        }
    }

    #[test]
    fn a_run_past_the_end_of_the_source_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let old = noise(10_000, 32);
        for ways in [Ways::all(), Ways::none()] {
            let (src, dst) = files(dir.path(), &old);
            let mut w = ways;
            let e = copy(&src, 8_000, &dst, 0, 4_000, fs_block(&dst), &mut w).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{ways:?}");
        }
    }

    /// A refusal gives the way up and falls back; any other error is one.
    #[cfg(unix)]
    #[test]
    fn a_refused_call_falls_back_and_is_not_tried_again() {
        for errno in [libc::EOPNOTSUPP, libc::EXDEV, libc::EINVAL, libc::ENOSYS] {
            let mut way = true;
            let r: io::Result<Option<u64>> =
                settle(Err(io::Error::from_raw_os_error(errno)), &mut way);
            assert!(matches!(r, Ok(None)), "errno {errno}");
            assert!(!way, "errno {errno}");
        }
        let mut way = true;
        let r: io::Result<Option<u64>> =
            settle(Err(io::Error::from_raw_os_error(libc::EIO)), &mut way);
        assert!(r.is_err());
        assert!(way);
        assert!(matches!(settle(Ok(7u64), &mut way), Ok(Some(7))));
        assert!(way);
    }

    /// On a file system with reflinks (XFS made with `-m reflink=1`,
    /// btrfs), an aligned run is shared, not copied.
    #[test]
    #[ignore = "needs a folder on XFS (reflink=1) or btrfs in LAB3_TEST_REFLINK_DIR (as root: bench/xfs.sh up makes one)"]
    fn an_aligned_run_is_a_reflink_where_the_file_system_has_them() {
        let root = std::env::var_os("LAB3_TEST_REFLINK_DIR")
            .expect("LAB3_TEST_REFLINK_DIR: a folder on XFS (reflink=1) or btrfs");
        let dir = tempfile::tempdir_in(root).unwrap();
        let old = noise(4 * 1024 * 1024 + 5, 33);
        let (src, dst) = files(dir.path(), &old);
        let mut ways = Ways::all();
        let got = copy(
            &src,
            0,
            &dst,
            0,
            old.len() as u64,
            fs_block(&dst),
            &mut ways,
        )
        .unwrap();
        assert!(ways.clone, "the reflink was refused");
        assert_eq!(got.cloned, 4 * 1024 * 1024);
        assert_eq!(got.total(), old.len() as u64);
        assert_eq!(std::fs::read(dir.path().join("new")).unwrap(), old);
    }
}
