//! Where a received file's bytes land, and the BLAKE3 that checks a file
//! end to end, inline or on a thread of its own.
//!
//! A file sent whole is hashed inline at both ends: the link, not the hash,
//! sets the pace (BLAKE3 runs at gigabytes a second on one core), and a
//! thread fed chunk by chunk cost more than it saved on a busy machine
//! (both servers of a pair on 2 cores: 1 GiB took 1.55-1.65 s with the
//! thread against 1.26-1.39 s inline, bench/RESULTS.md). A delta search
//! ([`super::blocks::Delta`]) is bound by the sender's own reading and
//! rolling checksum, so its whole-file hash runs beside it on a thread
//! ([`Hashing::beside`]), and so does the receiver's once the delta's
//! first copied block arrives ([`Sink::hash_beside`]). [`Sink`] is the
//! receiver's temporary file: written, hashed, and handed to the disk's
//! write-back as it fills, so that the flush before the rename (see
//! [`super::transfer`]) finds little left to write.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use bytes::Bytes;

use super::kernel_copy::{self, Copied, Ways};

/// Files from this size on are hashed on a thread of their own by
/// [`Hashing::beside`].
pub const THREAD_FROM: u64 = 4 * 1024 * 1024;
/// Chunks the hashing thread may lag behind (a bound on memory).
const LAG: usize = 16;
/// Written bytes handed to the disk's write-back at a time.
const WRITE_BACK: u64 = 8 * 1024 * 1024;
/// Bytes per read of this side's copy, or of a run copied in (see
/// [`Sink::copy_from`]).
const COPY_CHUNK: usize = 1024 * 1024;
/// Bytes per kernel copy of a run (see [`Sink::copy_from`]): within what
/// the hashing thread may lag behind ([`LAG`] chunks), so that it hashes
/// one piece while the next is copied.
const COPY_PIECE: u64 = 8 * 1024 * 1024;

/// A BLAKE3 hash computed inline, or on a thread for a big file.
pub enum Hashing {
    Inline(Box<blake3::Hasher>),
    Thread {
        chunks: SyncSender<Bytes>,
        done: JoinHandle<blake3::Hasher>,
    },
}

impl Hashing {
    /// Hashing inline, on the caller's thread.
    pub fn inline() -> Hashing {
        Hashing::Inline(Box::default())
    }

    /// Hashing for `size` bytes beside the caller's work: on a thread from
    /// [`THREAD_FROM`] on.
    pub fn beside(size: u64) -> Hashing {
        if size < THREAD_FROM {
            return Hashing::inline();
        }
        Hashing::on_thread(blake3::Hasher::new())
    }

    /// Goes on hashing on a thread of its own from here on.
    pub fn move_beside(&mut self) {
        if let Hashing::Inline(h) = self {
            *self = Hashing::on_thread(std::mem::take(&mut **h));
        }
    }

    /// A thread that goes on from `hasher` (inline, with it, if no thread
    /// can be made).
    fn on_thread(hasher: blake3::Hasher) -> Hashing {
        let fallback = hasher.clone();
        let (chunks, rx) = sync_channel::<Bytes>(LAG);
        let spawned = std::thread::Builder::new()
            .name("lab3-hash".into())
            .spawn(move || {
                let mut hasher = hasher;
                for chunk in rx {
                    hasher.update(&chunk);
                }
                hasher
            });
        match spawned {
            Ok(done) => Hashing::Thread { chunks, done },
            Err(_) => Hashing::Inline(Box::new(fallback)),
        }
    }

    /// Hashes `bytes` next.
    pub fn update(&mut self, bytes: Bytes) -> std::io::Result<()> {
        match self {
            Hashing::Inline(h) => {
                h.update(&bytes);
                Ok(())
            }
            Hashing::Thread { chunks, .. } => chunks
                .send(bytes)
                .map_err(|_| std::io::Error::other("the hashing thread stopped")),
        }
    }

    /// Hashes `bytes` next (copied only when they go to the thread).
    pub fn update_slice(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Hashing::Inline(h) => {
                h.update(bytes);
                Ok(())
            }
            Hashing::Thread { .. } => self.update(Bytes::copy_from_slice(bytes)),
        }
    }

    /// The hash of everything given.
    pub fn finish(self) -> std::io::Result<blake3::Hash> {
        match self {
            Hashing::Inline(h) => Ok(h.finalize()),
            Hashing::Thread { chunks, done } => {
                drop(chunks);
                let hasher = done
                    .join()
                    .map_err(|_| std::io::Error::other("the hashing thread panicked"))?;
                Ok(hasher.finalize())
            }
        }
    }
}

/// A temporary file being filled, its bytes hashed in order.
pub struct Sink {
    temp: tempfile::NamedTempFile,
    hashing: Hashing,
    written: u64,
    /// Bytes already handed to the disk's write-back.
    started: u64,
    /// How runs of this side's copy are copied in (see [`Sink::copy_from`]).
    ways: Ways,
    /// The temporary file's block size (a reflink's alignment).
    align: u64,
    /// How the runs copied in so far were copied.
    copied: Copied,
}

impl Sink {
    /// A sink for a file into `temp`.
    pub fn new(temp: tempfile::NamedTempFile) -> Sink {
        let align = kernel_copy::fs_block(temp.as_file());
        Sink {
            temp,
            hashing: Hashing::inline(),
            written: 0,
            started: 0,
            ways: Ways::all(),
            align,
            copied: Copied::default(),
        }
    }

    /// The same, copying runs of this side's copy in `ways` only (tests:
    /// the fallbacks).
    #[cfg(test)]
    fn with_ways(temp: tempfile::NamedTempFile, ways: Ways) -> Sink {
        Sink {
            ways,
            ..Sink::new(temp)
        }
    }

    /// Hashes on a thread from here on: the rest of a delta, where this
    /// side reads its own copy beside the link's bytes (one core reads and
    /// writes, the other hashes).
    pub fn hash_beside(&mut self) {
        self.hashing.move_beside();
    }

    /// Appends `bytes` to the file and to the hash.
    pub fn write(&mut self, bytes: Bytes) -> std::io::Result<()> {
        self.temp.write_all(&bytes)?;
        self.written += bytes.len() as u64;
        self.hashing.update(bytes)?;
        self.write_back();
        Ok(())
    }

    /// Hands what was written since the last time to the disk's write-back,
    /// every [`WRITE_BACK`] bytes.
    fn write_back(&mut self) {
        if self.written - self.started >= WRITE_BACK {
            let len = self.written - self.started;
            crate::durable::start_write_back(self.temp.as_file(), self.started, len);
            self.started = self.written;
        }
    }

    /// Appends `len` bytes from `offset` of `own` (this side's copy of the
    /// file) to the file, copied by the kernel where it can (a reflink, or
    /// `copy_file_range`: see [`kernel_copy`]), and to the hash.
    ///
    /// What is hashed is the result: the run is read back from the
    /// temporary file once copied. Bytes that never pass through this
    /// process could differ from what it believes they are (the copy here
    /// changed between a read for the hash and the copy; a fault of the
    /// file system), and the whole-file check is what lets this side say
    /// the file it renames into place is the sender's. Where every fast way
    /// was refused, the run is read and written as before, and hashed as
    /// read: the bytes written are the ones hashed.
    pub fn copy_from(&mut self, own: &File, offset: u64, len: u64) -> std::io::Result<()> {
        // In pieces: the hashing thread hashes one piece while the kernel
        // copies the next.
        let mut done = 0;
        while done < len {
            if !self.ways.any() {
                return self.read_in(own, offset + done, len - done);
            }
            let piece = (len - done).min(COPY_PIECE);
            let at = self.written;
            let how = kernel_copy::copy(
                own,
                offset + done,
                self.temp.as_file(),
                at,
                piece,
                self.align,
                &mut self.ways,
            )?;
            self.copied.add(how);
            // Read back from where the piece begins (positioned copies
            // left the file's offset there), which leaves the offset at
            // its end for the next `write`.
            let mut file = self.temp.as_file();
            file.seek(SeekFrom::Start(at))?;
            each_chunk(file, piece, |chunk| self.hashing.update(chunk))?;
            self.written += piece;
            done += piece;
            self.write_back();
        }
        Ok(())
    }

    /// [`Sink::copy_from`] through this process: read, written and hashed
    /// as read.
    fn read_in(&mut self, mut own: &File, offset: u64, len: u64) -> std::io::Result<()> {
        own.seek(SeekFrom::Start(offset))?;
        each_chunk(own, len, |chunk| self.write(chunk))?;
        self.copied.through_user += len;
        Ok(())
    }

    /// How the runs of this side's copy were copied in.
    pub fn copied(&self) -> Copied {
        self.copied
    }

    /// The hash of all that was written, and the temporary file.
    pub fn finish(self) -> std::io::Result<(blake3::Hash, tempfile::NamedTempFile)> {
        Ok((self.hashing.finish()?, self.temp))
    }
}

/// Reads `len` bytes of `file` from its offset, in chunks of at most
/// [`COPY_CHUNK`] handed to `each`; an error if the file ends first.
fn each_chunk(
    mut file: &File,
    len: u64,
    mut each: impl FnMut(Bytes) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut left = len;
    while left > 0 {
        let want = left.min(COPY_CHUNK as u64);
        // Read into fresh capacity: not zeroed first, handed on whole.
        let mut buf = Vec::with_capacity(want as usize);
        let n = Read::by_ref(&mut file).take(want).read_to_end(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the copy here is shorter than the peer's plan",
            ));
        }
        each(Bytes::from(buf))?;
        left -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::noise;

    #[test]
    fn a_sink_hashes_what_it_writes() {
        let dir = tempfile::tempdir().unwrap();
        for size in [
            100_000,
            THREAD_FROM as usize + 12_345,
            3 * WRITE_BACK as usize,
        ] {
            let data = noise(size, 11);
            let mut sink = Sink::new(tempfile::NamedTempFile::new_in(dir.path()).unwrap());
            for chunk in data.chunks(777_777) {
                sink.write(Bytes::copy_from_slice(chunk)).unwrap();
            }
            let (hash, temp) = sink.finish().unwrap();
            assert_eq!(hash, blake3::hash(&data), "size {size}");
            assert_eq!(std::fs::read(temp.path()).unwrap(), data, "size {size}");
        }
    }

    #[test]
    fn a_hash_moved_to_a_thread_midway_is_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let data = noise(3 * THREAD_FROM as usize, 13);
        let mut sink = Sink::new(tempfile::NamedTempFile::new_in(dir.path()).unwrap());
        let (head, tail) = data.split_at(1_234_567);
        sink.write(Bytes::copy_from_slice(head)).unwrap();
        sink.hash_beside();
        assert!(matches!(sink.hashing, Hashing::Thread { .. }));
        for chunk in tail.chunks(333_333) {
            sink.write(Bytes::copy_from_slice(chunk)).unwrap();
        }
        let (hash, _temp) = sink.finish().unwrap();
        assert_eq!(hash, blake3::hash(&data));
    }

    /// `new` built from `old` as a receiver does, the sender's plan
    /// ([`Delta`]) applied to a sink over a copy of `old` with `ways`: the
    /// sink's hash and the temporary file's bytes are `new`'s.
    fn rebuilt(old: &[u8], new: &[u8], ways: Ways) -> Copied {
        use crate::sync::blocks::{block_list, block_size, Delta, Piece};
        let dir = tempfile::tempdir().unwrap();
        let (o, n) = (dir.path().join("old"), dir.path().join("new"));
        std::fs::write(&o, old).unwrap();
        std::fs::write(&n, new).unwrap();
        let list = block_list(&o, block_size(new.len() as u64)).unwrap();
        let mut delta = Delta::new(File::open(&n).unwrap(), new.len() as u64, &list).unwrap();
        let own = File::open(&o).unwrap();
        let temp = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
        let mut sink = Sink::with_ways(temp, ways);
        while let Some(p) = delta.next_piece().unwrap() {
            match p {
                Piece::Data(b) => sink.write(b).unwrap(),
                Piece::Copy { offset, len } => {
                    sink.hash_beside(); // as `receive_file` does at the first
                    sink.copy_from(&own, offset, len).unwrap()
                }
            }
        }
        let copied = sink.copied();
        let (hash, temp) = sink.finish().unwrap();
        assert_eq!(hash, blake3::hash(new), "{ways:?}");
        assert!(std::fs::read(temp.path()).unwrap() == new, "{ways:?}");
        copied
    }

    /// A change in the middle, an insertion, truncation and growth, with
    /// every way of copying runs of the old file, and the fallback when
    /// the fast calls are refused (`Ways::none`).
    #[test]
    fn a_file_rebuilt_from_blocks_is_the_new_one_however_they_are_copied() {
        const BLOCK: usize = 128 * 1024; // `block_size` of these files
        let old = noise(40 * BLOCK + 777, 41);
        let mut middle = old.clone();
        middle[20 * BLOCK - 100..20 * BLOCK + 5000].fill(3);
        let mut inserted = old[..10 * BLOCK + 11].to_vec();
        inserted.extend_from_slice(&noise(3333, 42));
        inserted.extend_from_slice(&old[10 * BLOCK + 11..]);
        let truncated = old[..25 * BLOCK + 99].to_vec();
        let mut grown = old.clone();
        grown.extend_from_slice(&noise(3 * BLOCK + 5, 43));
        for (what, new) in [
            ("middle", &middle),
            ("insertion", &inserted),
            ("truncation", &truncated),
            ("growth", &grown),
        ] {
            for ways in Ways::each() {
                let c = rebuilt(&old, new, ways);
                assert!(c.total() > new.len() as u64 / 2, "{what} {ways:?}: {c:?}");
                if !ways.any() {
                    assert_eq!(c.through_user, c.total(), "{what}");
                } else if cfg!(target_os = "linux") {
                    assert_eq!(c.through_user, 0, "{what} {ways:?}: {c:?}");
                }
            }
        }
    }

    #[test]
    fn hashing_on_a_thread_takes_slices_too() {
        let data = noise(THREAD_FROM as usize * 2, 12);
        let mut h = Hashing::beside(data.len() as u64);
        assert!(matches!(h, Hashing::Thread { .. }));
        for chunk in data.chunks(100_000) {
            h.update_slice(chunk).unwrap();
        }
        assert_eq!(h.finish().unwrap(), blake3::hash(&data));
    }
}
