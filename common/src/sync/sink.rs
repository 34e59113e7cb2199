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

use std::io::Write;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use bytes::Bytes;

/// Files from this size on are hashed on a thread of their own by
/// [`Hashing::beside`].
pub const THREAD_FROM: u64 = 4 * 1024 * 1024;
/// Chunks the hashing thread may lag behind (a bound on memory).
const LAG: usize = 16;
/// Written bytes handed to the disk's write-back at a time.
const WRITE_BACK: u64 = 8 * 1024 * 1024;

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
}

impl Sink {
    /// A sink for a file into `temp`.
    pub fn new(temp: tempfile::NamedTempFile) -> Sink {
        Sink {
            temp,
            hashing: Hashing::inline(),
            written: 0,
            started: 0,
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
        if self.written - self.started >= WRITE_BACK {
            let len = self.written - self.started;
            crate::durable::start_write_back(self.temp.as_file(), self.started, len);
            self.started = self.written;
        }
        Ok(())
    }

    /// The hash of all that was written, and the temporary file.
    pub fn finish(self) -> std::io::Result<(blake3::Hash, tempfile::NamedTempFile)> {
        Ok((self.hashing.finish()?, self.temp))
    }
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
