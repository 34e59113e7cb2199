//! Moving file bytes over the link: streamed in chunks with bounded memory,
//! hashed with BLAKE3 on both ends, and landing in a temporary file outside
//! the directory that only [`crate::sync::apply`] renames into place.
//!
//! The sender checks, once the file is read, that it still has the size and
//! mtime it was stat'ed with; if not, it aborts, and the engine sends the new
//! version instead.
//!
//! A big file the receiver already holds a copy of goes block by block
//! ([`super::blocks`]): between the data frames, `block_copy` messages tell
//! the receiver which runs of bytes to take from its own copy. The check at
//! the end covers every byte either way.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};

use super::blocks::{self, BlockList, Delta, Piece, Reuse};
use super::sink::{Hashing, Sink};
use crate::connection::{Frame, FrameReader, FrameWriter, ProtocolError};
use crate::meta::FileMeta;
use crate::paths;
use crate::protocol::Message;

/// Bytes per data frame.
pub const CHUNK: usize = 256 * 1024;

/// How sending a file ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    /// Sent, as `meta` says, with this BLAKE3 hash; `wire`: the file bytes
    /// that crossed the link (the rest the receiver took from its copy).
    Done { hash: String, wire: u64 },
    /// The file changed or vanished before or while it was read; nothing
    /// (or an aborted transfer) reached the peer.
    Changed,
    /// The file could not be opened or read (permissions, a file held open
    /// on Windows, an I/O error); nothing (or an aborted transfer) reached
    /// the peer. Worth trying again later.
    Unreadable { error: String },
}

/// Sends `offer` (a core `Offer` of `meta.path` under `root`), then the
/// file's data frames and `FileEnd`; nothing at all if it cannot be opened.
/// With the receiver's `blocks` of its copy, only what that copy lacks.
pub async fn send_offer<W: AsyncWrite + Unpin>(
    w: &mut FrameWriter<W>,
    root: &Path,
    meta: &FileMeta,
    offer: crate::sync::core::PeerMsg,
    blocks: Option<&BlockList>,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<Sent, ProtocolError> {
    let full = match paths::resolve(root, &meta.path) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("{e}");
            return Ok(Sent::Changed);
        }
    };
    let mut file = match File::open(&full) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Sent::Changed),
        Err(e) => {
            return Ok(Sent::Unreadable {
                error: format!("cannot read: {e}"),
            })
        }
    };
    w.feed(Message::Sync(offer)).await?;
    if let Some(list) = blocks.filter(|l| !l.strong.is_empty()) {
        match Delta::new(file, meta.size, list) {
            Some(delta) => return send_delta(w, delta, meta, progress).await,
            None => return abort(w, meta, "the peer's block list is malformed").await,
        }
    }
    let mut hashing = Hashing::inline();
    let mut total = 0u64;
    // Reading stops at the announced size: one read for a small file. The
    // file's size and mtime, checked once it is read, tell whether it
    // changed since it was stat'ed, before or during the read.
    while total < meta.size {
        // Room for what is left plus one byte (to notice a file that grew),
        // at most a chunk: a small file costs a small buffer, not two
        // zeroed chunks.
        let left = meta.size.saturating_sub(total).saturating_add(1);
        let mut buf = BytesMut::zeroed(usize::try_from(left).map_or(CHUNK, |n| n.min(CHUNK)));
        let n = match file.read(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                w.send(Message::FileAbort).await?;
                return Ok(Sent::Unreadable {
                    error: format!("cannot read: {e}"),
                });
            }
        };
        if n == 0 {
            break;
        }
        buf.truncate(n);
        let buf = buf.freeze();
        if let Err(e) = hashing.update(buf.clone()) {
            return abort(w, meta, &e.to_string()).await;
        }
        total += n as u64;
        if total > meta.size {
            break; // grew while we read it: abort below
        }
        w.feed_data(buf).await?;
        progress(total);
    }
    if total != meta.size || !unchanged(&file, meta) {
        w.send(Message::FileAbort).await?;
        return Ok(Sent::Changed);
    }
    let hash = match hashing.finish() {
        Ok(h) => h.to_hex().to_string(),
        Err(e) => return abort(w, meta, &e.to_string()).await,
    };
    w.feed(Message::FileEnd { hash: hash.clone() }).await?;
    Ok(Sent::Done { hash, wire: total })
}

/// The rest of [`send_offer`] for a file sent block by block.
async fn send_delta<W: AsyncWrite + Unpin>(
    w: &mut FrameWriter<W>,
    mut delta: Delta,
    meta: &FileMeta,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<Sent, ProtocolError> {
    let mut wire = 0u64;
    loop {
        let piece = match delta.next_piece() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => return abort(w, meta, &e.to_string()).await,
        };
        match piece {
            Piece::Data(b) => {
                wire += b.len() as u64;
                w.feed_data(b).await?;
            }
            // Sent now, not when the buffer fills: a run of copies takes
            // a while to read (see `blocks::MAX_RUN`), and the peer must
            // hear from this side meanwhile.
            Piece::Copy { offset, len } => w.send(Message::BlockCopy { offset, len }).await?,
        }
        progress(delta.read().min(meta.size));
    }
    if delta.read() != meta.size || !unchanged(delta.file(), meta) {
        w.send(Message::FileAbort).await?;
        return Ok(Sent::Changed);
    }
    let hash = match delta.finish_hash() {
        Ok(h) => h,
        Err(e) => return abort(w, meta, &e.to_string()).await,
    };
    w.feed(Message::FileEnd { hash: hash.clone() }).await?;
    tracing::info!(
        "sent {}: {} of {} over the link, the rest from the peer's copy",
        meta.path,
        crate::console::human_size(wire),
        crate::console::human_size(meta.size)
    );
    Ok(Sent::Done { hash, wire })
}

/// Gives up on a file already offered (`why` is logged).
async fn abort<W: AsyncWrite + Unpin>(
    w: &mut FrameWriter<W>,
    meta: &FileMeta,
    why: &str,
) -> Result<Sent, ProtocolError> {
    tracing::warn!("reading {}: {why}", meta.path);
    w.send(Message::FileAbort).await?;
    Ok(Sent::Changed)
}

/// Whether the open file still has `meta`'s size and mtime once read.
///
/// Size and mtime only: this guards the bytes. A mode changed meanwhile is
/// seen by the watcher and sent as a change of its own; and the mode in
/// `meta` is the core's view, which has no bits on a folder without them
/// (FAT, Windows) and never the setuid, setgid or sticky bits, so it
/// cannot be compared with the file's own.
fn unchanged(file: &File, meta: &FileMeta) -> bool {
    match file.metadata() {
        Ok(md) => {
            let now = FileMeta::from_fs(meta.path.clone(), &md);
            now.size == meta.size && now.mtime_ns == meta.mtime_ns
        }
        Err(_) => false,
    }
}

/// A file received whole and verified, waiting in a temporary file.
#[derive(Debug)]
pub struct Received {
    pub meta: FileMeta,
    /// What the sender believed this side held (see `FileBegin`).
    pub base: Option<FileMeta>,
    /// The temporary file, with mtime and mode already set; deleted on drop.
    pub temp: tempfile::TempPath,
    /// BLAKE3 of the content (checked against the sender's).
    pub hash: String,
    /// The bytes that came over the link (the rest came from this side's
    /// own copy, block by block).
    pub wire: u64,
    /// Whether the temporary file is on disk already (a big file is
    /// flushed on its own, see [`FLUSH_ALONE_FROM`]); otherwise the
    /// engine's flush before the rename covers it.
    pub flushed: bool,
}

/// Received files from this size on are flushed to disk on their own, as
/// they are received (`fsync`), not by the engine's one flush of the whole
/// file system before a burst's renames (`syncfs`): that flush also waits
/// for whatever any other program wrote to the file system and left to
/// the kernel (in the delta bench, the gigabytes the setup's copies and
/// rsync's runs leave dirty beside lab3's). Many small files still cost
/// one flush in all.
pub const FLUSH_ALONE_FROM: u64 = 8 * 1024 * 1024;

/// Why a received file was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("{0}")]
    Protocol(#[from] ProtocolError),
    /// The peer sent something wrong for this one file; the link can go on.
    #[error("rejected {path}: {why}")]
    Rejected { path: String, why: String },
    /// We could not store it (disk full, permissions); worth retrying later.
    #[error("cannot store {path}: {why}")]
    Local { path: String, why: String },
    /// The sender aborted (the file changed at its side).
    #[error("{0} was aborted by the sender")]
    Aborted(String),
}

/// Reads the data frames and `FileEnd` that follow a `FileBegin`, into a
/// temporary file in `tmp_dir`. Always consumes the whole transfer, so the
/// link stays in step even when the file is refused. A `block_copy` takes
/// its bytes from this side's copy of the file, under `root`.
pub async fn receive_file<R: AsyncRead + Unpin>(
    r: &mut FrameReader<R>,
    tmp_dir: &Path,
    root: &Path,
    meta: FileMeta,
    base: Option<FileMeta>,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<Received, ReceiveError> {
    let mut problem: Option<ReceiveError> =
        paths::check(&meta.path)
            .err()
            .map(|e| ReceiveError::Rejected {
                path: meta.path.clone(),
                why: e.why.to_string(),
            });
    let mut sink = match (&problem, new_temp(tmp_dir, meta.mode)) {
        (None, Ok(t)) => Some(Sink::new(t)),
        (None, Err(e)) => {
            problem = Some(local_error(&meta.path, e));
            None
        }
        _ => None,
    };
    let mut total = 0u64;
    let mut wire = 0u64;
    // This side's copy, opened at the first `block_copy`, and what it
    // gives of the new file (to work out its block list, see `Reuse`).
    let mut own: Option<File> = None;
    let mut reuse: Option<Reuse> = None;
    let mut copied = false;
    let hash = loop {
        match r.read_frame().await? {
            Some(Frame::Message(Message::BlockCopy { offset, len })) => {
                if !copied && meta.size >= super::sink::THREAD_FROM {
                    if let Some(s) = sink.as_mut() {
                        s.hash_beside();
                    }
                }
                let at = total;
                total = total.saturating_add(len);
                progress(total);
                if total > meta.size && problem.is_none() {
                    problem = Some(rejected(&meta.path, "more bytes than announced"));
                    sink = None;
                }
                if let Some(s) = sink.as_mut() {
                    if let Err(e) = copy_own(root, &meta.path, &mut own, offset, len, s) {
                        problem = Some(local_error(&meta.path, e));
                        sink = None;
                    }
                }
                if !copied {
                    reuse = own
                        .as_ref()
                        .and_then(|f| Reuse::of(&paths::resolve(root, &meta.path).ok()?, f));
                }
                copied = true;
                if let Some(r) = reuse.as_mut() {
                    r.copied(at, offset, len);
                }
            }
            Some(Frame::Data(b)) => {
                wire += b.len() as u64;
                total += b.len() as u64;
                progress(total);
                if total > meta.size && problem.is_none() {
                    problem = Some(rejected(&meta.path, "more bytes than announced"));
                    sink = None;
                }
                if let Some(s) = sink.as_mut() {
                    if let Err(e) = s.write(b) {
                        problem = Some(local_error(&meta.path, e));
                        sink = None;
                    }
                }
            }
            Some(Frame::Message(Message::FileEnd { hash })) => break hash,
            Some(Frame::Message(Message::FileAbort)) => {
                return Err(ReceiveError::Aborted(meta.path))
            }
            Some(Frame::Unknown(t)) => {
                return Err(ProtocolError::Unexpected(format!(
                    "unknown message type {t:?} inside a file transfer"
                ))
                .into())
            }
            Some(Frame::Message(other)) => {
                return Err(ProtocolError::Unexpected(format!(
                    "{} inside a file transfer",
                    crate::handshake::kind_of(&other)
                ))
                .into())
            }
            None => return Err(ProtocolError::Closed.into()),
        }
    };
    if let Some(p) = problem {
        return Err(p);
    }
    if total != meta.size {
        return Err(rejected(&meta.path, "fewer bytes than announced"));
    }
    let sink = sink.expect("no problem means a temp file");
    if copied {
        let c = sink.copied();
        tracing::debug!(
            "{}: {} of this side's copy taken: {} shared (reflink), {} copied by the kernel, {} read and written",
            meta.path,
            crate::console::human_size(c.total()),
            crate::console::human_size(c.cloned),
            crate::console::human_size(c.in_kernel),
            crate::console::human_size(c.through_user)
        );
    }
    let (got, temp) = sink.finish().map_err(|e| local_error(&meta.path, e))?;
    if got.to_hex().as_str() != hash {
        if copied {
            if let Ok(full) = paths::resolve(root, &meta.path) {
                blocks::forget(&full);
            }
            // Most likely this side's copy changed while blocks were taken
            // from it: worth another try.
            return Err(local_error(
                &meta.path,
                std::io::Error::other("content hash does not match (the copy here changed?)"),
            ));
        }
        return Err(rejected(&meta.path, "content hash does not match"));
    }
    set_time_and_mode(temp.as_file(), meta.mtime_ns, meta.mode)
        .map_err(|e| local_error(&meta.path, e))?;
    if let Some(reuse) = reuse {
        remember_blocks(root, &meta, &reuse, temp.as_file());
    }
    // On disk before it can be renamed into place: a power cut must not
    // leave an empty file under the new name (with the new mtime).
    // (Where the engine flushes a whole burst at once before its renames,
    // see `Disk::install`, not here, one file at a time; but for a big one.)
    let flushed = !crate::durable::batched() || meta.size >= FLUSH_ALONE_FROM;
    if flushed {
        crate::durable::sync_file(temp.as_file()).map_err(|e| local_error(&meta.path, e))?;
    }
    let (file, path) = temp.into_parts();
    drop(file);
    Ok(Received {
        meta,
        base,
        temp: path,
        hash,
        wire,
        flushed,
    })
}

/// Remembers the block list of a file built from blocks of this side's
/// copy (verified, in `temp`), worked out from the old file's (see
/// [`Reuse`]): the next delta of it is answered without reading it.
fn remember_blocks(root: &Path, meta: &FileMeta, reuse: &Reuse, temp: &File) {
    let Ok(full) = paths::resolve(root, &meta.path) else {
        return;
    };
    let id = temp.metadata().ok().and_then(|md| blocks::FileId::of(&md));
    match (id, reuse.derive(temp, meta.size)) {
        (Some(id), Ok(Some(list))) => blocks::remember(&full, id, list),
        (_, Err(e)) => tracing::debug!("the blocks of {}: {e}", meta.path),
        _ => {}
    }
}

/// Appends `len` bytes at `offset` of this side's copy of `rel` to `sink`
/// (see [`Sink::copy_from`]).
fn copy_own(
    root: &Path,
    rel: &str,
    own: &mut Option<File>,
    offset: u64,
    len: u64,
    sink: &mut Sink,
) -> std::io::Result<()> {
    if own.is_none() {
        let full = paths::resolve(root, rel).map_err(std::io::Error::other)?;
        *own = Some(File::open(full)?);
    }
    sink.copy_from(own.as_ref().expect("opened above"), offset, len)
}

/// The BLAKE3 hash of `meta.path` under `root`, if it still has `meta`'s
/// size and mtime once read.
pub fn hash_file(root: &Path, meta: &FileMeta) -> Option<String> {
    let full = paths::resolve(root, &meta.path).ok()?;
    let mut file = File::open(full).ok()?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    unchanged(&file, meta).then(|| hasher.finalize().to_hex().to_string())
}

/// Sets the mtime (to the nanosecond) and the mode bits through the open
/// file, so that no path is looked up again (the same result as
/// [`crate::meta::set_times_and_mode`], two path walks fewer per received file).
/// The setuid, setgid and sticky bits never travel: only `mode & 0o777`
/// is set.
fn set_time_and_mode(file: &File, mtime_ns: i64, mode: u32) -> std::io::Result<()> {
    let mode = mode & 0o777;
    let since_epoch = std::time::Duration::from_nanos(mtime_ns.unsigned_abs());
    let mtime = if mtime_ns >= 0 {
        std::time::UNIX_EPOCH + since_epoch
    } else {
        std::time::UNIX_EPOCH - since_epoch
    };
    file.set_modified(mtime)?;
    if mode_is_set(mode) {
        return Ok(()); // created with it (see `new_temp`)
    }
    #[cfg(unix)]
    let perms = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::Permissions::from_mode(mode)
    };
    #[cfg(not(unix))]
    let perms = {
        let mut p = file.metadata()?.permissions();
        p.set_readonly(mode & 0o222 == 0);
        p
    };
    file.set_permissions(perms)
}

/// A temporary file for content that will get `mode`: created with that
/// mode where the umask lets it through unchanged (so no `fchmod` is needed
/// afterwards, see [`mode_is_set`]), otherwise owner-only until it is set.
fn new_temp(tmp_dir: &Path, mode: u32) -> std::io::Result<tempfile::NamedTempFile> {
    // Spread over a few folders: creating a file locks its folder, and so
    // does renaming one out of it, which the engine does meanwhile.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % TEMP_SPREAD;
    let tmp_dir = tmp_dir.join(n.to_string());
    let mut b = tempfile::Builder::new();
    b.prefix(crate::ignore::TEMP_PREFIX);
    #[cfg(unix)]
    if mode_is_set(mode) {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(mode & 0o777));
    }
    #[cfg(not(unix))]
    let _ = mode; // no permission bits to create it with: see `set_time_and_mode`
    b.tempfile_in(tmp_dir)
}

/// How many folders under the temporary folder receive files (see `new_temp`).
const TEMP_SPREAD: usize = 8;

/// Whether a file created with `mode` ends up with exactly that mode: no
/// special bits, and nothing the umask takes away. The umask is read once,
/// from /proc (where there is none, the mode is always set explicitly).
fn mode_is_set(mode: u32) -> bool {
    static UMASK: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    let umask = UMASK.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
        u32::from_str_radix(line.trim(), 8).ok()
    });
    umask.is_some_and(|u| mode & 0o7000 == 0 && mode & u & 0o777 == 0)
}

fn rejected(path: &str, why: &str) -> ReceiveError {
    ReceiveError::Rejected {
        path: path.to_string(),
        why: why.to_string(),
    }
}

fn local_error(path: &str, e: std::io::Error) -> ReceiveError {
    ReceiveError::Local {
        path: path.to_string(),
        why: e.to_string(),
    }
}

/// Where temporary files go: the state directory when it is on the same
/// filesystem as the synced directory (so a rename is atomic), otherwise a
/// hidden `.lab3-tmp` folder inside it (never listed or synced). Emptied at start.
pub fn temp_dir_for(dir: &Path, state_dir: &Path) -> std::io::Result<PathBuf> {
    let tmp = temp_dir_of(dir, state_dir);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    for n in 0..TEMP_SPREAD {
        std::fs::create_dir_all(tmp.join(n.to_string()))?;
    }
    Ok(tmp)
}

/// The folder [`temp_dir_for`] makes (and empties at start), as it is.
pub fn temp_dir_of(dir: &Path, state_dir: &Path) -> PathBuf {
    if same_filesystem(dir, state_dir) {
        state_dir.join("tmp")
    } else {
        dir.join(format!("{}tmp", crate::ignore::TEMP_PREFIX))
    }
}

#[cfg(unix)]
fn same_filesystem(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_filesystem(_: &Path, _: &Path) -> bool {
    true
}
