//! Block-level transfer of big files that changed a little (a VM image, a
//! database, a log that grew): the receiver lists the blocks of the copy it
//! already has, and the sender sends only what that copy lacks.
//!
//! Blocks are Syncthing's: a fixed size per file that grows with the file
//! (128 KiB up to 16 MiB, so that a file has about 2,000 blocks at most),
//! each with a BLAKE3 hash and rsync's rolling checksum. The sender reads
//! its file once: at each position it first tries the block that starts
//! there by its BLAKE3 hash; where that fails it rolls the checksum byte by
//! byte (rsync's algorithm) until a block of the receiver's turns up again,
//! so an insertion or a deletion of any length costs only the bytes around
//! it. A file that only grew matches block for block, its old last block
//! (shorter than the others) included: only the tail is sent.
//!
//! What crosses the link is a plan of pieces, in file order: data frames
//! for new bytes, [`Message::BlockCopy`] for a run of bytes the receiver
//! takes from its own copy. The receiver writes the whole file into a
//! temporary file and checks the BLAKE3 of all of it, as for a whole
//! transfer (see [`super::transfer`]); it lands by rename the same way.
//!
//! The receiver remembers the list of the file it built (see [`Reuse`]):
//! the blocks it copied in place keep their hashes, only those with new
//! bytes are read again. The next change of the same file is then
//! planned against that list at once, without reading the whole file
//! (see [`block_list_known`]).
//!
//! [`Message::BlockCopy`]: crate::protocol::Message::BlockCopy

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Files this big or bigger, replacing a file the receiver holds, go block
/// by block; smaller ones are sent whole (a round trip costs more than the
/// bytes it could save).
pub const DELTA_FROM: u64 = 1024 * 1024;

const MIN_BLOCK: u64 = 128 * 1024;
const MAX_BLOCK: u64 = 16 * 1024 * 1024;
/// Block sizes double until a file has at most this many blocks.
const TARGET_BLOCKS: u64 = 2_000;
/// A receiver's copy with more blocks than this (a file over about 1.5 TiB)
/// is not listed: its list would not fit a frame. Sent whole.
const MAX_BLOCKS: u64 = 100_000;

/// The block size for a file of `size` bytes: the smallest power of two
/// from 128 KiB that gives at most 2,000 blocks, at most 16 MiB.
pub fn block_size(size: u64) -> u64 {
    let mut b = MIN_BLOCK;
    while b < MAX_BLOCK && size.div_ceil(b) > TARGET_BLOCKS {
        b *= 2;
    }
    b
}

/// The blocks of the receiver's copy of a file, sent to the sender.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockList {
    /// Every block is this long but the last, which may be shorter.
    pub block_size: u64,
    /// The size of the receiver's copy (0 and no blocks: it has none).
    pub size: u64,
    /// Each block's rolling checksum (see [`weak`]).
    pub weak: Vec<u32>,
    /// Each block's BLAKE3 hash, in hex.
    pub strong: Vec<String>,
}

/// Reads `path` block by block: its [`BlockList`] for blocks of
/// `block_size`. Anything but a regular file is an empty list. A big file
/// is read in two halves at once, one per thread (two cores hash it).
pub fn block_list(path: &Path, block_size: u64) -> std::io::Result<BlockList> {
    list_split(path, block_size, SPLIT_FROM)
}

/// [`block_list`], in two halves from `split_from` bytes on.
fn list_split(path: &Path, block_size: u64, split_from: u64) -> std::io::Result<BlockList> {
    let mut list = BlockList {
        block_size,
        ..BlockList::default()
    };
    let Ok(md) = std::fs::symlink_metadata(path) else {
        return Ok(list);
    };
    if !md.is_file() || md.len().div_ceil(block_size) > MAX_BLOCKS || block_size > MAX_BLOCK {
        return Ok(list);
    }
    let blocks = md.len().div_ceil(block_size);
    let split = if md.len() >= split_from {
        blocks / 2
    } else {
        0
    };
    let parts = std::thread::scope(|s| {
        let second = (split > 0).then(|| s.spawn(|| list_part(path, block_size, split, None)));
        let first = list_part(path, block_size, 0, (split > 0).then_some(split));
        let second = second.map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(std::io::Error::other("a hashing thread panicked")))
        });
        (first, second)
    });
    let (first, second) = parts;
    let first = first?;
    let whole = first.whole;
    list.append(first);
    // The second half counts only if the first was read to its end (a
    // file that shrank meanwhile ends where its first half ended).
    if let (true, Some(second)) = (whole, second) {
        list.append(second?);
    }
    Ok(list)
}

/// Files from this size on are listed by two threads.
const SPLIT_FROM: u64 = 64 * 1024 * 1024;

/// A file as it was when its blocks were listed: a list is reused only
/// while the file still has the same device, inode, size and mtime (an
/// edit in place changes the mtime; a save by rename, the inode). Where a
/// reused list is stale all the same (a write that put the mtime back),
/// the receiver's check of the whole file's BLAKE3 fails, the list is
/// forgotten and the file is sent again (see [`forget`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
}

impl FileId {
    /// `md`'s identity; `None` where there are no inode numbers (nothing
    /// is then remembered).
    pub fn of(md: &std::fs::Metadata) -> Option<FileId> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            md.is_file().then(|| FileId {
                dev: md.dev(),
                ino: md.ino(),
                size: md.size(),
                mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = md;
            None
        }
    }
}

/// Block lists of files this side holds, remembered: the list it made
/// for the peer's last ask, or the one it worked out for a file it just
/// built from blocks (see [`derive`]). The next ask for the same file,
/// unchanged, is answered without reading it again (a 1 GiB file is a
/// second or more of reading and hashing on a shared machine). A few
/// files, the most recent first.
static KNOWN: std::sync::Mutex<Vec<(std::path::PathBuf, FileId, BlockList)>> =
    std::sync::Mutex::new(Vec::new());
/// How many files' lists [`KNOWN`] keeps (about 100 KB each at most).
const KNOWN_FILES: usize = 8;

/// The list of the file at `path` that [`KNOWN`] holds for `id`, in
/// blocks of `block_size` (any size with `None`).
fn known(path: &Path, id: FileId, block_size: Option<u64>) -> Option<BlockList> {
    let known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    known
        .iter()
        .find(|(p, i, l)| p == path && *i == id && block_size.is_none_or(|b| b == l.block_size))
        .map(|(_, _, l)| l.clone())
}

/// Remembers `list` as the blocks of the file at `path` while it is `id`.
pub fn remember(path: &Path, id: FileId, list: BlockList) {
    if list.size != id.size || list.weak.len() != list.strong.len() {
        return;
    }
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    known.retain(|(p, _, _)| p != path);
    known.insert(0, (path.to_path_buf(), id, list));
    known.truncate(KNOWN_FILES);
}

/// Forgets the list of the file at `path` (its blocks did not rebuild
/// what the peer sent: it changed in a way its identity did not show).
pub fn forget(path: &Path) {
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    known.retain(|(p, _, _)| p != path);
}

/// [`block_list`], or the list remembered for the file as it is now (see
/// [`KNOWN`]); a list read here is remembered if the file did not change
/// while it was read.
pub fn block_list_known(path: &Path, block_size: u64) -> std::io::Result<BlockList> {
    let id = std::fs::symlink_metadata(path)
        .ok()
        .and_then(|md| FileId::of(&md));
    if let Some(list) = id.and_then(|id| known(path, id, Some(block_size))) {
        return Ok(list);
    }
    let list = block_list(path, block_size)?;
    let after = std::fs::symlink_metadata(path)
        .ok()
        .and_then(|md| FileId::of(&md));
    if let Some(id) = id.filter(|&id| after == Some(id)) {
        remember(path, id, list.clone());
    }
    Ok(list)
}

/// The receiver's side of a delta: which runs of the new file were taken
/// from which blocks of its own copy, whose list it remembers. Once the
/// new file is verified, [`Reuse::derive`] gives its block list mostly
/// from the old one: an unchanged block at the same place has the hashes
/// it had, only the blocks with new bytes are read again.
pub struct Reuse {
    old: BlockList,
    /// (offset in the new file, offset in the old, length), in order.
    copies: Vec<(u64, u64, u64)>,
}

impl Reuse {
    /// For a delta built from the file at `path`, opened as `own`, if its
    /// list is remembered for it as it is now.
    pub fn of(path: &Path, own: &File) -> Option<Reuse> {
        let id = FileId::of(&own.metadata().ok()?)?;
        Some(Reuse {
            old: known(path, id, None)?,
            copies: Vec::new(),
        })
    }

    /// `len` bytes of the new file from `at` on were copied from `offset`
    /// of the old.
    pub fn copied(&mut self, at: u64, offset: u64, len: u64) {
        self.copies.push((at, offset, len));
    }

    /// The block list of the new file, `size` bytes in `file` (verified):
    /// `None` when its block size differs from the old list's, or when
    /// too many blocks would have to be read again (more than an eighth:
    /// an insertion near the start moves every block; the next ask then
    /// reads the file as before).
    pub fn derive(&self, file: &File, size: u64) -> std::io::Result<Option<BlockList>> {
        use std::io::{Seek, SeekFrom};
        let bs = block_size(size);
        if self.old.block_size != bs || size.div_ceil(bs) > MAX_BLOCKS {
            return Ok(None);
        }
        let blocks = size.div_ceil(bs);
        let most_unknown = (blocks / 8).max(4);
        let old_len = |k: u64| self.old.size.saturating_sub(k * bs).min(bs);
        let mut list = BlockList {
            block_size: bs,
            size,
            weak: Vec::with_capacity(blocks as usize),
            strong: Vec::with_capacity(blocks as usize),
        };
        let mut file = file.try_clone()?;
        let mut buf = Vec::new();
        let (mut c, mut unknown) = (0, 0);
        for j in 0..blocks {
            let (start, end) = (j * bs, ((j + 1) * bs).min(size));
            while c < self.copies.len() && self.copies[c].0 + self.copies[c].2 <= start {
                c += 1;
            }
            // Block `k` of the old file, whole and alone, landed here.
            let same = self
                .copies
                .get(c)
                .filter(|&&(at, _, len)| at <= start && end <= at + len)
                .map(|&(at, offset, _)| offset + (start - at))
                .filter(|from| from.is_multiple_of(bs))
                .map(|from| from / bs)
                .filter(|&k| (k as usize) < self.old.strong.len() && old_len(k) == end - start);
            if let Some(k) = same {
                list.weak.push(self.old.weak[k as usize]);
                list.strong.push(self.old.strong[k as usize].clone());
                continue;
            }
            unknown += 1;
            if unknown > most_unknown {
                return Ok(None);
            }
            buf.resize((end - start) as usize, 0);
            file.seek(SeekFrom::Start(start))?;
            if read_full(&mut file, &mut buf)? != buf.len() {
                return Ok(None);
            }
            list.weak.push(weak(&buf));
            list.strong.push(blake3::hash(&buf).to_hex().to_string());
        }
        Ok(Some(list))
    }
}

/// Part of a [`BlockList`]: blocks `from..to` (to the end of the file
/// without `to`).
struct Part {
    weak: Vec<u32>,
    strong: Vec<String>,
    bytes: u64,
    /// Whether every block asked for was there, at full length.
    whole: bool,
}

impl BlockList {
    fn append(&mut self, part: Part) {
        self.weak.extend(part.weak);
        self.strong.extend(part.strong);
        self.size += part.bytes;
    }
}

fn list_part(path: &Path, block_size: u64, from: u64, to: Option<u64>) -> std::io::Result<Part> {
    use std::io::{Seek, SeekFrom};
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(from * block_size))?;
    let mut part = Part {
        weak: Vec::new(),
        strong: Vec::new(),
        bytes: 0,
        whole: true,
    };
    let mut buf = vec![0u8; block_size as usize];
    let mut n_block = from;
    while to.is_none_or(|to| n_block < to) {
        let n = read_full(&mut file, &mut buf)?;
        if n == 0 {
            part.whole = to.is_none();
            break;
        }
        part.weak.push(weak(&buf[..n]));
        part.strong
            .push(blake3::hash(&buf[..n]).to_hex().to_string());
        part.bytes += n as u64;
        n_block += 1;
        if n < buf.len() {
            part.whole = to.is_none();
            break;
        }
    }
    Ok(part)
}

/// Reads until `buf` is full or the file ends; how many bytes it got.
fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// rsync's rolling checksum of a block: the low 16 bits of the byte sum,
/// and above them the low 16 bits of the sum weighted by distance from the
/// block's end (see [`Rolling`] for moving it one byte on).
pub fn weak(block: &[u8]) -> u32 {
    let n = block.len() as u32;
    let (mut a, mut b) = (0u32, 0u32);
    for (i, &x) in block.iter().enumerate() {
        a = a.wrapping_add(u32::from(x));
        b = b.wrapping_add(n.wrapping_sub(i as u32).wrapping_mul(u32::from(x)));
    }
    pack(a, b)
}

fn pack(a: u32, b: u32) -> u32 {
    (a & 0xffff) | (b << 16)
}

/// The rolling checksum of a window of fixed length, moved byte by byte.
#[derive(Debug, Clone, Copy)]
struct Rolling {
    a: u32,
    b: u32,
    len: u32,
}

impl Rolling {
    fn new(window: &[u8]) -> Rolling {
        let mut r = Rolling {
            a: 0,
            b: 0,
            len: window.len() as u32,
        };
        for (i, &x) in window.iter().enumerate() {
            r.a = r.a.wrapping_add(u32::from(x));
            r.b =
                r.b.wrapping_add(r.len.wrapping_sub(i as u32).wrapping_mul(u32::from(x)));
        }
        r
    }

    /// The window loses `out` at its start and gains `inn` at its end.
    fn roll(&mut self, out: u8, inn: u8) {
        self.a = self
            .a
            .wrapping_sub(u32::from(out))
            .wrapping_add(u32::from(inn));
        self.b = self
            .b
            .wrapping_sub(self.len.wrapping_mul(u32::from(out)))
            .wrapping_add(self.a);
    }

    fn value(&self) -> u32 {
        pack(self.a, self.b)
    }
}

/// One piece of the plan the sender streams.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// New bytes, at most a data frame's worth.
    Data(Bytes),
    /// `len` bytes the receiver takes from its own copy, at `offset`.
    Copy { offset: u64, len: u64 },
}

/// The receiver's blocks, indexed for the sender's search.
struct Index {
    block: usize,
    /// Full-length blocks by BLAKE3 hash (the first of equal ones).
    strong: HashMap<[u8; 32], u64>,
    /// Full-length blocks by rolling checksum: their numbers.
    weak: HashMap<u32, Vec<u64>>,
    /// A quick "certainly not" before `weak` (one bit per 16-bit bucket).
    seen: Vec<u64>,
    /// The receiver's last block when it is shorter: (number, length, hash).
    short: Option<(u64, usize, [u8; 32])>,
    hashes: Vec<[u8; 32]>,
}

impl Index {
    fn new(list: &BlockList) -> Option<Index> {
        let block = usize::try_from(list.block_size).ok()?;
        if block == 0 || list.weak.len() != list.strong.len() {
            return None;
        }
        let mut index = Index {
            block,
            strong: HashMap::new(),
            weak: HashMap::new(),
            seen: vec![0; 1024],
            short: None,
            hashes: Vec::with_capacity(list.strong.len()),
        };
        for (i, (w, s)) in list.weak.iter().zip(&list.strong).enumerate() {
            let hash: [u8; 32] = blake3::Hash::from_hex(s).ok()?.into();
            index.hashes.push(hash);
            let i = i as u64;
            let len = list
                .size
                .saturating_sub(i * list.block_size)
                .min(list.block_size);
            if len < list.block_size {
                index.short = Some((i, len as usize, hash));
                continue;
            }
            index.strong.entry(hash).or_insert(i);
            index.weak.entry(*w).or_default().push(i);
            let bucket = bucket(*w);
            index.seen[bucket / 64] |= 1 << (bucket % 64);
        }
        Some(index)
    }

    /// The receiver's full block with this content, if any (by its rolling
    /// checksum `w` first when known).
    /// Also says whether the window was hashed (a strong check, the costly
    /// part) and found nothing.
    fn find(&self, window: &[u8], w: Option<u32>) -> (Option<u64>, bool) {
        if let Some(w) = w {
            let bucket = bucket(w);
            if self.seen[bucket / 64] & (1 << (bucket % 64)) == 0 {
                return (None, false);
            }
            let Some(candidates) = self.weak.get(&w) else {
                return (None, false);
            };
            let hash: [u8; 32] = blake3::hash(window).into();
            let found = candidates
                .iter()
                .copied()
                .find(|&i| self.hashes[i as usize] == hash);
            return (found, found.is_none());
        }
        let hash: [u8; 32] = blake3::hash(window).into();
        let found = self.strong.get(&hash).copied();
        (found, found.is_none())
    }
}

fn bucket(w: u32) -> usize {
    ((w ^ (w >> 16)) & 0xffff) as usize
}

/// The sender's side: reads its file once and yields the [`Piece`]s that
/// rebuild it from the receiver's copy, hashing the whole file as it goes.
pub struct Delta {
    file: File,
    index: Index,
    /// File bytes from offset `base` on.
    buf: Vec<u8>,
    base: u64,
    /// The search position and the start of the new bytes not yet sent,
    /// both indexes into `buf` (`lit <= at`).
    at: usize,
    lit: usize,
    /// The rolling checksum of the window at `at`, while rolling.
    rolling: Option<Rolling>,
    /// The receiver's block after the last one matched (a file that grew
    /// continues with the receiver's short last block).
    next_block: Option<u64>,
    /// A copy not yet yielded (runs of adjacent blocks become one).
    copy: Option<(u64, u64)>,
    ready: std::collections::VecDeque<Piece>,
    eof: bool,
    /// Bytes read, and the most to read (the announced size, plus one to
    /// notice a file that grew).
    read: u64,
    limit: u64,
    /// The BLAKE3 of every byte read, on a thread of its own for a big
    /// file (`None` once taken by [`Delta::finish_hash`]).
    hashing: Option<super::sink::Hashing>,
    /// Strong checks that found nothing since the last match, and where
    /// that run of new bytes began (a file offset): past [`MAX_MISSES`] (a
    /// run of repeated bytes whose rolling checksum keeps matching one of
    /// the receiver's blocks, each window then hashed for nothing), only
    /// windows a whole number of blocks into the run are tried, so the
    /// search stays linear in the file's size.
    misses: u32,
    run_from: u64,
    /// [`MAX_RUN`] (smaller in tests).
    max_run: u64,
}

/// See [`Delta::misses`].
const MAX_MISSES: u32 = 64;

/// The longest run of adjacent blocks one [`Piece::Copy`] takes (give or
/// take a block): the sender yields a piece, and the receiver hears from
/// it, at least once per this many bytes read, however slowly the file is
/// read. (A 1 GiB file that only grew was one copy: on a loaded machine
/// the receiver heard nothing for longer than the link's 25 s and dropped
/// it, again at every retry.)
const MAX_RUN: u64 = 64 * 1024 * 1024;

impl Delta {
    /// A plan for `file` (announced as `size` bytes) against the
    /// receiver's `list`; `None` when the list is unusable.
    pub fn new(file: File, size: u64, list: &BlockList) -> Option<Delta> {
        let index = Index::new(list)?;
        Some(Delta {
            file,
            index,
            buf: Vec::new(),
            base: 0,
            at: 0,
            lit: 0,
            rolling: None,
            next_block: None,
            copy: None,
            ready: std::collections::VecDeque::new(),
            eof: false,
            read: 0,
            limit: size.saturating_add(1),
            hashing: Some(super::sink::Hashing::beside(size)),
            misses: 0,
            run_from: 0,
            max_run: MAX_RUN,
        })
    }

    /// The file being read.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Bytes read from the file so far.
    pub fn read(&self) -> u64 {
        self.read
    }

    /// The BLAKE3 hash of every byte read (the whole file, once
    /// `next_piece` returned `None`); once only.
    pub fn finish_hash(&mut self) -> std::io::Result<String> {
        let hashing = self
            .hashing
            .take()
            .ok_or_else(|| std::io::Error::other("the hash was taken already"))?;
        Ok(hashing.finish()?.to_hex().to_string())
    }

    /// The next piece; `None` once the file is planned to its end.
    pub fn next_piece(&mut self) -> std::io::Result<Option<Piece>> {
        while self.ready.is_empty() {
            if !self.step()? {
                self.flush_literal(self.at);
                self.flush_copy();
                break;
            }
        }
        Ok(self.ready.pop_front())
    }

    /// One search step; false once the end is reached.
    fn step(&mut self) -> std::io::Result<bool> {
        let block = self.index.block;
        self.fill(block + 1)?;
        let avail = self.buf.len() - self.at;
        if avail == 0 {
            return Ok(false);
        }
        if self.rolling.is_none() {
            if let Some((n, len, hash)) = self.index.short {
                let due =
                    self.next_block == Some(n) || self.base + self.at as u64 == n * block as u64;
                if due && avail >= len && blake3::hash(&self.buf[self.at..self.at + len]) == hash {
                    self.matched(n, len);
                    return Ok(true);
                }
            }
        }
        if avail < block {
            // The end of the file, shorter than a block: new bytes.
            self.at = self.buf.len();
            self.flush_literal(self.at);
            return Ok(false);
        }
        let window = &self.buf[self.at..self.at + block];
        let into_run = self.base + self.at as u64 - self.run_from;
        let (found, missed) = if self.misses < MAX_MISSES || into_run.is_multiple_of(block as u64) {
            self.index.find(window, self.rolling.map(|r| r.value()))
        } else {
            (None, false)
        };
        self.misses += u32::from(missed);
        if let Some(n) = found {
            self.matched(n, block);
            return Ok(true);
        }
        if avail == block {
            // The last full window, and no match: new bytes to the end.
            self.at = self.buf.len();
            self.flush_literal(self.at);
            return Ok(false);
        }
        let out = self.buf[self.at];
        let inn = self.buf[self.at + block];
        match self.rolling.as_mut() {
            Some(r) => r.roll(out, inn),
            None => {
                let mut r = Rolling::new(window);
                r.roll(out, inn);
                self.rolling = Some(r);
            }
        }
        self.at += 1;
        if self.at - self.lit >= super::transfer::CHUNK {
            self.flush_literal(self.lit + super::transfer::CHUNK);
        }
        Ok(true)
    }

    /// The window at `at` is the receiver's block `n` (`len` bytes).
    fn matched(&mut self, n: u64, len: usize) {
        self.flush_literal(self.at);
        let offset = n * self.index.block as u64;
        match self.copy.as_mut() {
            Some((o, l)) if *o + *l == offset && *l < self.max_run => *l += len as u64,
            _ => {
                self.flush_copy();
                self.copy = Some((offset, len as u64));
            }
        }
        self.at += len;
        self.lit = self.at;
        self.rolling = None;
        self.misses = 0;
        self.run_from = self.base + self.at as u64;
        self.next_block = Some(n + 1);
    }

    /// Yields the new bytes from `lit` up to `to` as data frames.
    fn flush_literal(&mut self, to: usize) {
        if to <= self.lit {
            return;
        }
        self.flush_copy();
        for piece in self.buf[self.lit..to].chunks(super::transfer::CHUNK) {
            self.ready
                .push_back(Piece::Data(Bytes::copy_from_slice(piece)));
        }
        self.lit = to;
    }

    fn flush_copy(&mut self) {
        if let Some((offset, len)) = self.copy.take() {
            self.ready.push_back(Piece::Copy { offset, len });
        }
    }

    /// Reads until `want` bytes from `at` on are in the buffer, or the end.
    fn fill(&mut self, want: usize) -> std::io::Result<()> {
        if self.eof || self.buf.len() - self.at >= want {
            return Ok(());
        }
        // What was sent or matched goes first, once it is worth a move.
        if self.lit >= want.max(super::transfer::CHUNK) {
            self.buf.drain(..self.lit);
            self.base += self.lit as u64;
            self.at -= self.lit;
            self.lit = 0;
        }
        let goal = self.at + want + super::transfer::CHUNK;
        while self.buf.len() < goal && self.read < self.limit {
            let room = (goal - self.buf.len()).min((self.limit - self.read) as usize);
            let start = self.buf.len();
            self.buf.resize(start + room, 0);
            let n = read_full(&mut self.file, &mut self.buf[start..])?;
            self.buf.truncate(start + n);
            if let Some(h) = self.hashing.as_mut() {
                h.update_slice(&self.buf[start..])?;
            }
            self.read += n as u64;
            if n < room {
                self.eof = true;
                break;
            }
        }
        if self.read >= self.limit {
            self.eof = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::noise;

    /// Rebuilds the sender's file from `old` and the plan; (result, bytes sent).
    fn rebuild(old: &[u8], new: &[u8], block: u64) -> (Vec<u8>, u64) {
        let dir = tempfile::tempdir().unwrap();
        let (o, n) = (dir.path().join("old"), dir.path().join("new"));
        std::fs::write(&o, old).unwrap();
        std::fs::write(&n, new).unwrap();
        let list = block_list(&o, block).unwrap();
        let mut delta = Delta::new(File::open(&n).unwrap(), new.len() as u64, &list).unwrap();
        let (mut out, mut sent) = (Vec::new(), 0);
        while let Some(p) = delta.next_piece().unwrap() {
            match p {
                Piece::Data(b) => {
                    sent += b.len() as u64;
                    out.extend_from_slice(&b);
                }
                Piece::Copy { offset, len } => {
                    out.extend_from_slice(&old[offset as usize..(offset + len) as usize])
                }
            }
        }
        assert_eq!(
            delta.finish_hash().unwrap(),
            blake3::hash(new).to_hex().to_string()
        );
        (out, sent)
    }

    /// Builds `new` from `old` as a receiver does (the plan's copies
    /// taken from `old`, recorded in a [`Reuse`] of `old`'s list), then
    /// works out the new file's list: `Some` only if it is the list read
    /// from the new file.
    fn derived(old: &[u8], new: &[u8]) -> Option<BlockList> {
        let dir = tempfile::tempdir().unwrap();
        let (o, n, out) = (
            dir.path().join("old"),
            dir.path().join("new"),
            dir.path().join("out"),
        );
        std::fs::write(&o, old).unwrap();
        std::fs::write(&n, new).unwrap();
        let list = block_list(&o, block_size(new.len() as u64)).unwrap();
        let mut delta = Delta::new(File::open(&n).unwrap(), new.len() as u64, &list).unwrap();
        let mut reuse = Reuse {
            old: list,
            copies: Vec::new(),
        };
        let mut built = Vec::new();
        while let Some(p) = delta.next_piece().unwrap() {
            match p {
                Piece::Data(b) => built.extend_from_slice(&b),
                Piece::Copy { offset, len } => {
                    reuse.copied(built.len() as u64, offset, len);
                    built.extend_from_slice(&old[offset as usize..(offset + len) as usize]);
                }
            }
        }
        assert_eq!(built, new);
        std::fs::write(&out, &built).unwrap();
        let got = reuse
            .derive(&File::open(&out).unwrap(), new.len() as u64)
            .unwrap()?;
        let read = block_list(&out, block_size(new.len() as u64)).unwrap();
        assert_eq!(got, read, "a worked-out list differs from the file's");
        Some(got)
    }

    #[test]
    fn a_rebuilt_files_list_is_worked_out_from_the_old_one() {
        const BLOCK: usize = 128 * 1024; // `block_size` of these files
        let old = noise(40 * BLOCK + 777, 21);
        // A change in the middle, in place: two blocks read again.
        let mut new = old.clone();
        new[20 * BLOCK - 100..20 * BLOCK + 100].fill(3);
        assert!(derived(&old, &new).is_some());
        // Growth: the old short last block and the tail are read again.
        let mut grown = old.clone();
        grown.extend_from_slice(&noise(3 * BLOCK, 22));
        assert!(derived(&old, &grown).is_some());
        // A truncation.
        assert!(derived(&old, &old[..25 * BLOCK + 5]).is_some());
        // An insertion near the end moves a few blocks: read again.
        let mut inserted = old.clone();
        inserted.splice(37 * BLOCK..37 * BLOCK, noise(1000, 23));
        assert!(derived(&old, &inserted).is_some());
        // Near the start, it moves nearly every block: not worked out
        // (read whole at the next ask, as before).
        let mut inserted = old.clone();
        inserted.splice(BLOCK..BLOCK, noise(1000, 24));
        assert!(derived(&old, &inserted).is_none());
        // Nothing in common.
        assert!(derived(&old, &noise(old.len(), 25)).is_none());
        // A block size of its own (a file over 250 MiB would have one).
        let mut reuse = Reuse {
            old: BlockList {
                block_size: 2 * BLOCK as u64,
                ..BlockList::default()
            },
            copies: Vec::new(),
        };
        reuse.copied(0, 0, 2 * BLOCK as u64);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, &old).unwrap();
        let file = File::open(&path).unwrap();
        assert_eq!(reuse.derive(&file, old.len() as u64).unwrap(), None);
    }

    #[test]
    fn a_list_is_remembered_while_the_file_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let block = 64 * 1024;
        let data = noise(10 * block as usize, 26);
        std::fs::write(&path, &data).unwrap();
        let first = block_list_known(&path, block).unwrap();
        assert_eq!(first, block_list(&path, block).unwrap());
        // Changed behind the file's back (its mtime put back), the file
        // still looks the same: the list remembered is given (the
        // receiver's check of the whole file then fails, see `forget`).
        let md = std::fs::metadata(&path).unwrap();
        let mut changed = data.clone();
        changed[5] ^= 1;
        std::fs::write(&path, &changed).unwrap();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(md.modified().unwrap())
            .unwrap();
        if cfg!(unix) {
            assert_eq!(block_list_known(&path, block).unwrap(), first);
        }
        forget(&path);
        let fresh = block_list_known(&path, block).unwrap();
        assert_ne!(fresh, first);
        assert_eq!(fresh, block_list(&path, block).unwrap());
        // An ordinary edit moves the mtime on: read afresh.
        std::fs::write(&path, &data).unwrap();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(md.modified().unwrap() + std::time::Duration::from_secs(1))
            .unwrap();
        assert_eq!(block_list_known(&path, block).unwrap(), first);
        // Another block size is read afresh.
        assert_eq!(
            block_list_known(&path, 2 * block).unwrap(),
            block_list(&path, 2 * block).unwrap()
        );
    }

    #[test]
    fn a_list_read_in_two_halves_is_the_same_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let block = 64 * 1024;
        for size in [
            0,
            1000,
            64 * 1024,
            3 * 64 * 1024,
            5 * 64 * 1024 + 17,
            1 << 20,
        ] {
            let data = noise(size, 8);
            std::fs::write(&path, &data).unwrap();
            let whole = list_split(&path, block, u64::MAX).unwrap();
            let halves = list_split(&path, block, 0).unwrap();
            assert_eq!(whole, halves, "size {size}");
            assert_eq!(whole.size, size as u64);
            let hashes: Vec<String> = data
                .chunks(block as usize)
                .map(|c| blake3::hash(c).to_hex().to_string())
                .collect();
            let weaks: Vec<u32> = data.chunks(block as usize).map(weak).collect();
            assert_eq!((whole.strong, whole.weak), (hashes, weaks), "size {size}");
        }
    }

    #[test]
    fn a_big_plan_hashes_on_a_thread_the_same() {
        // Past the size where the whole-file hash moves to a thread.
        let old = noise(6 << 20, 9);
        let mut new = old.clone();
        new[3_000_000..3_000_500].fill(1);
        new.extend_from_slice(&noise(100_000, 10));
        let (out, sent) = rebuild(&old, &new, 128 * 1024);
        assert_eq!(out, new);
        assert!(sent <= 2 * 128 * 1024 + 100_000, "sent {sent}");
    }

    #[test]
    fn long_runs_of_copies_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        // Runs of 64 KiB at most, of 4 KiB blocks.
        let (block, max_run) = (4096u64, 64 * 1024);
        let size = (2 * max_run + 3 * block) as usize;
        std::fs::write(&path, noise(size, 13)).unwrap();
        let list = list_split(&path, block, u64::MAX).unwrap();
        let mut delta = Delta::new(File::open(&path).unwrap(), size as u64, &list).unwrap();
        delta.max_run = max_run;
        let mut next = 0;
        while let Some(p) = delta.next_piece().unwrap() {
            let Piece::Copy { offset, len } = p else {
                panic!("new bytes in an unchanged file");
            };
            assert_eq!(offset, next);
            assert!(len <= max_run, "a run of {len}");
            next += len;
        }
        assert_eq!(next, size as u64);
    }

    #[test]
    fn block_sizes_grow_with_the_file() {
        assert_eq!(block_size(0), 128 * 1024);
        assert_eq!(block_size(200 * 1024 * 1024), 128 * 1024);
        assert_eq!(block_size(1 << 30), 1 << 20);
        assert_eq!(block_size(1 << 50), 16 << 20);
    }

    #[test]
    fn rolling_matches_a_fresh_checksum() {
        let data = noise(5000, 1);
        let mut r = Rolling::new(&data[..1000]);
        for i in 0..4000 {
            assert_eq!(r.value(), weak(&data[i..i + 1000]), "at {i}");
            r.roll(data[i], data[i + 1000]);
        }
    }

    #[test]
    fn a_changed_block_in_the_middle_sends_about_that_block() {
        let old = noise(1 << 20, 2);
        let mut new = old.clone();
        new[500_000..500_100].fill(7);
        let (out, sent) = rebuild(&old, &new, 64 * 1024);
        assert_eq!(out, new);
        assert!(sent <= 2 * 64 * 1024, "sent {sent}");
    }

    #[test]
    fn an_insertion_costs_the_bytes_around_it() {
        let old = noise(1 << 20, 3);
        let mut new = old[..300_001].to_vec();
        new.extend_from_slice(b"a few new bytes");
        new.extend_from_slice(&old[300_001..]);
        let (out, sent) = rebuild(&old, &new, 64 * 1024);
        assert_eq!(out, new);
        assert!(sent <= 2 * 64 * 1024, "sent {sent}");
        // And a deletion.
        let mut new = old[..700_000].to_vec();
        new.extend_from_slice(&old[700_333..]);
        let (out, sent) = rebuild(&old, &new, 64 * 1024);
        assert_eq!(out, new);
        assert!(sent <= 2 * 64 * 1024, "sent {sent}");
    }

    #[test]
    fn growth_sends_the_tail_alone() {
        let old = noise(1_000_003, 4); // a short last block
        let mut new = old.clone();
        new.extend_from_slice(&noise(200_000, 5));
        let (out, sent) = rebuild(&old, &new, 64 * 1024);
        assert_eq!(out, new);
        assert_eq!(sent, 200_000);
    }

    #[test]
    fn truncation_and_nothing_in_common() {
        let old = noise(1 << 20, 6);
        let (out, sent) = rebuild(&old, &old[..600_000], 64 * 1024);
        assert_eq!(out, &old[..600_000]);
        assert!(sent < 64 * 1024, "sent {sent}");
        let new = noise(300_000, 7);
        let (out, sent) = rebuild(&old, &new, 64 * 1024);
        assert_eq!(out, new);
        assert_eq!(sent, 300_000);
        let (out, sent) = rebuild(&[], &new, 64 * 1024);
        assert_eq!((out, sent), (new.clone(), 300_000));
        let zeros = vec![0u8; 500_000];
        let (out, sent) = rebuild(&zeros, &vec![0u8; 900_000], 64 * 1024);
        assert_eq!(out, vec![0u8; 900_000]);
        assert!(sent < 64 * 1024, "sent {sent}");
    }
}
