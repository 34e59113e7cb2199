//! The file-system executor of the sync core: it carries out the core's
//! disk effects (stat, install, remove, rename, keep a version, the lock
//! queue's snapshots) on a real folder and says what it found, as the
//! [`super::core::Input`] to feed back. Blocking `std::fs` calls; the engine
//! runs them on its own thread.
//!
//! Every write follows the core's `expect`: if the disk does not hold what
//! the core decided on, nothing is done and `Mismatch` says what is there,
//! so a user's save that slips in between is never overwritten.

use std::collections::{HashMap, HashSet};
use std::fs::Metadata;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::core::{Effect, Entry, FsTraits, Input, KeepWhy, Kind, Outcome, Queued, Source};
use super::queue_cursor;
use super::retention::Retention;
use super::versions;
use crate::paths;
use crate::scan::is_absent;

/// Threads that hash a batch of look-alikes at most (see [`Disk::hash_all`]).
const HASH_THREADS: usize = 4;
/// A batch this small is hashed on the engine's thread alone.
const HASH_PARALLEL_FROM: usize = 64;

/// A real folder, as the core's executor sees it.
pub struct Disk {
    root: PathBuf,
    state_dir: PathBuf,
    /// Received files, verified, waiting to be installed, by content hash:
    /// one per offer received, as each install or queue snapshot takes one
    /// (two offers of the same content in flight, hard-linked names or a
    /// copy, each get theirs: seeds 857169, 96900 of the simulation).
    staged: HashMap<String, Vec<tempfile::TempPath>>,
    /// What is kept, and for how long (`None`: no expiry, as for a
    /// `--no-sync` server's restore).
    retention: Option<Retention>,
    /// Folders whose entries changed since they were last flushed to disk
    /// (see [`Disk::sync_dirs`]): a burst's renames cost one fsync per
    /// folder, not one per file.
    dirty_dirs: HashSet<PathBuf>,
    /// A file was staged since the last [`Disk::flush_staged`].
    staged_unflushed: bool,
    /// What the folder keeps, as probed at start (see [`probe`]): entries
    /// are fitted to it, and on a folder that folds names a name counts
    /// only as stored (see [`Disk::stat`]).
    fs: FsTraits,
}

impl Disk {
    pub fn new(root: PathBuf, state_dir: PathBuf) -> Disk {
        Disk {
            root,
            state_dir,
            staged: HashMap::new(),
            retention: None,
            dirty_dirs: HashSet::new(),
            staged_unflushed: false,
            fs: FsTraits::default(),
        }
    }

    /// Sets what the folder keeps (probed at start).
    pub fn set_traits(&mut self, fs: FsTraits) {
        self.fs = fs;
    }

    /// Notes that the entries of `p`'s folder changed (a new name, a
    /// rename, a removal), and of every folder made for it under the
    /// synced folder or the state directory.
    fn touched(&mut self, p: &Path) {
        let mut at = p.parent();
        while let Some(dir) = at {
            if !self.dirty_dirs.insert(dir.to_path_buf())
                || dir == self.root
                || dir == self.state_dir
                || !(dir.starts_with(&self.root) || dir.starts_with(&self.state_dir))
            {
                break;
            }
            at = dir.parent();
        }
    }

    /// Flushes every folder whose entries changed to disk: called before
    /// the journal is written and the peer is told (`Stored`), so a power
    /// cut cannot undo a rename the peer was told about.
    pub fn sync_dirs(&mut self) {
        for dir in self.dirty_dirs.drain() {
            if let Err(e) = crate::durable::sync_dir(&dir) {
                if !is_absent(&e) {
                    tracing::warn!("cannot flush {} to disk: {e}", dir.display());
                }
            }
        }
    }

    /// Expires kept versions by `r` from now on, starting now.
    pub fn set_retention(&mut self, r: Retention) {
        self.retention = Some(r);
        self.expire();
    }

    /// The folder's size, of which the default versions cap is a share.
    pub fn set_folder_bytes(&mut self, bytes: u64) {
        if let Some(r) = self.retention.as_mut() {
            r.set_folder_bytes(bytes);
        }
    }

    /// Removes the versions past their age or over the cap, oldest first.
    pub fn expire(&mut self) {
        let Some(r) = self.retention.as_mut() else {
            return;
        };
        for gone in r.prune(crate::meta::now_ns()) {
            tracing::info!("expired the kept version {}", gone.display());
        }
    }

    /// The state directory (where versions are kept).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The synced folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What `rel` holds: a file or a folder (symbolic links and other
    /// kinds count as nothing). On a folder that folds names, only under
    /// exactly this name: `x.txt` is not there when `X.txt` is.
    pub fn stat(&self, rel: &str) -> io::Result<Option<Entry>> {
        let full = self.resolve(rel)?;
        let Some(md) = Self::loose_stat_at(&full)? else {
            return Ok(None);
        };
        if self.fs.folds() && !self.named_exactly(rel)? {
            return Ok(None);
        }
        Ok(Some(self.fs.fit(entry_at(&full, &md))))
    }

    /// What the file system finds at `full`, under whatever name it takes
    /// for it.
    fn loose_stat_at(full: &Path) -> io::Result<Option<Metadata>> {
        match std::fs::symlink_metadata(full) {
            Ok(md) if md.is_file() || md.is_dir() => Ok(Some(md)),
            Ok(_) => Ok(None),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether every component of `rel` is stored under exactly that name
    /// (read from each folder's entries: a lookup by name would find any
    /// name of the same folded form).
    fn named_exactly(&self, rel: &str) -> io::Result<bool> {
        let mut dir = self.root.clone();
        for name in rel.split('/') {
            let mut found = false;
            for e in std::fs::read_dir(&dir)? {
                if e?.file_name() == std::ffi::OsStr::new(name) {
                    found = true;
                    break;
                }
            }
            if !found {
                return Ok(false);
            }
            dir.push(name);
        }
        Ok(true)
    }

    /// On a folder that folds names: whether writing at `rel` would land
    /// on another name (a component, or a folder on the way, stored under
    /// another name of the same folded form), other than `except` (the
    /// source of a case-only rename) or a folder holding it. Read from
    /// each folder's entries, as [`Disk::named_exactly`] does: a lookup by
    /// name may find a cached entry of a name just removed (FUSE).
    fn taken_by_another_name(&self, rel: &str, except: Option<&str>) -> io::Result<bool> {
        if !self.fs.folds() {
            return Ok(false);
        }
        let mut dir = self.root.clone();
        let mut prefix = String::new();
        for name in rel.split('/') {
            let want = self.fs.folded(name).into_owned();
            let mut exact = false;
            let mut other = None;
            let entries = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if is_absent(&e) => return Ok(false),
                Err(e) => return Err(e),
            };
            for e in entries {
                let n = e?.file_name();
                let Some(n) = n.to_str() else { continue };
                if n == name {
                    exact = true;
                } else if self.fs.folded(n) == want {
                    other = Some(n.to_string());
                }
            }
            if let Some(n) = other.filter(|_| !exact) {
                let found = if prefix.is_empty() {
                    n
                } else {
                    format!("{prefix}/{n}")
                };
                let moving = except.is_some_and(|x| {
                    x == found
                        || (x.len() > found.len()
                            && x.starts_with(&found)
                            && x.as_bytes()[found.len()] == b'/')
                });
                return Ok(!moving);
            }
            if !exact {
                return Ok(false);
            }
            dir.push(name);
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(name);
        }
        Ok(false)
    }

    /// Refuses to write at `rel` when that would land on another name.
    fn clash(&self, rel: &str, except: Option<&str>) -> io::Result<Option<Outcome>> {
        Ok(self
            .taken_by_another_name(rel, except)?
            .then(|| Outcome::Failed {
                error: format!(
                    "{rel}: this folder holds a name that differs only in letter case or Unicode form"
                ),
                retry: false,
            }))
    }

    /// The full path of `rel` if it is a symbolic link (never followed).
    pub fn symlink(&self, rel: &str) -> Option<PathBuf> {
        let full = self.resolve(rel).ok()?;
        let md = std::fs::symlink_metadata(&full).ok()?;
        md.file_type().is_symlink().then_some(full)
    }

    /// The key a received file of `version` for `path` is staged under:
    /// its hash, its path and mtime (its temporary file got that mtime,
    /// and a mode from the offer or the file at `path`, on arrival). By
    /// hash alone, two files of one content in one batch, staged before
    /// either is installed, could swap, each landing with the other's
    /// mtime and mode (the Wine pairs' modes test saw each echoed back).
    pub fn staged_key(path: &str, version: &super::core::Version) -> String {
        let hash = version.hash.as_deref().unwrap_or_default();
        format!("{hash} {} {path}", version.mtime_ns)
    }

    /// Keeps a received, verified file until the core installs it, under
    /// [`Disk::staged_key`]; `flushed`: it is on disk already (a big file,
    /// see `transfer::FLUSH_ALONE_FROM`), the flush before the renames
    /// need not wait for it.
    pub fn stage(&mut self, key: String, temp: tempfile::TempPath, flushed: bool) {
        self.staged.entry(key).or_default().push(temp);
        self.staged_unflushed |= !flushed;
    }

    /// Takes the received file staged under `key` ([`Disk::staged_key`]),
    /// or else one of the same content (a name the core put it at that is
    /// not the one it arrived for).
    fn take_staged(&mut self, key: &str) -> Option<tempfile::TempPath> {
        let key = if self.staged.contains_key(key) {
            key.to_string()
        } else {
            let hash = key.split(' ').next().unwrap_or_default();
            let same = |k: &String| k.split(' ').next() == Some(hash);
            self.staged.keys().find(|k| same(k))?.clone()
        };
        let list = self.staged.get_mut(&key)?;
        let t = list.pop();
        if list.is_empty() {
            self.staged.remove(&key);
        }
        t
    }

    /// Flushes every received file staged so far with one call for the
    /// whole file system, before the first of them is renamed into place
    /// (where the platform has such a call; elsewhere each was flushed as
    /// it was received).
    fn flush_staged(&mut self, staged: &Path) -> io::Result<()> {
        if self.staged_unflushed && crate::durable::batched() {
            let dir = staged.parent().unwrap_or(&self.state_dir);
            crate::durable::sync_filesystem(dir)?;
        }
        self.staged_unflushed = false;
        Ok(())
    }

    pub(super) fn resolve(&self, rel: &str) -> io::Result<PathBuf> {
        paths::resolve(&self.root, rel).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    }

    /// Carries out a disk effect; returns what to feed back to the core
    /// (`None` for effects that are not this executor's, or need no answer).
    pub fn run(&mut self, effect: &Effect) -> Option<Input> {
        let (op, result) = match effect {
            Effect::Stat { path } => {
                let entry = self.stat(path).unwrap_or_else(|e| {
                    tracing::warn!("cannot stat {path}: {e}");
                    None
                });
                return Some(Input::Observed {
                    path: path.clone(),
                    entry,
                    closed: false,
                });
            }
            Effect::Hash { files } => {
                return Some(Input::Hashed {
                    hashes: self.hash_all(files),
                });
            }
            Effect::Install {
                op,
                path,
                version,
                source,
                expect,
                keep,
            } => (
                *op,
                self.install(path, version, source, expect.as_ref(), *keep),
            ),
            Effect::Remove {
                op,
                path,
                expect,
                keep,
            } => (*op, self.remove(path, expect, *keep)),
            Effect::Rename {
                op,
                from,
                to,
                expect,
            } => (*op, self.rename(from, to, expect)),
            Effect::Queue {
                path,
                seq,
                update,
                peer_op,
                held,
            } => {
                let entry = Queued {
                    seq: *seq,
                    update: update.clone(),
                    peer_op: *peer_op,
                    held: held.clone(),
                };
                if let Err(e) = self.enqueue(path, &entry) {
                    tracing::error!("cannot queue {path}: {e}");
                }
                return None;
            }
            Effect::Dequeue { path, seq } => {
                // What the replay installed is on disk, then the cursor
                // says the entry is done, then its files go.
                let here = self.stat(path).ok().flatten();
                self.sync_dirs();
                let cursor = queue_cursor::Cursor {
                    done_through: *seq,
                    here,
                };
                if let Err(e) = queue_cursor::write(&self.queue_dir(path), &cursor) {
                    tracing::error!("cannot write the unlock cursor of {path}: {e}");
                }
                let file = self.queue_file(path, *seq);
                let _ = std::fs::remove_file(file.with_extension("json"));
                let _ = std::fs::remove_file(file);
                return None;
            }
            _ => return None,
        };
        let outcome = result.unwrap_or_else(|e| Outcome::Failed {
            error: e.to_string(),
            retry: retryable(&e),
        });
        Some(Input::Done { op, outcome })
    }

    /// The BLAKE3 hash of `rel`, if it holds `expect` before and after.
    /// [`Disk::hash`] of each file, in order. Many files (two trees
    /// meeting for the first time: every file a look-alike) are hashed on
    /// a few threads at once: one thread opening and reading 10,000 small
    /// files was most of such a first start.
    pub(super) fn hash_all(&self, files: &[(String, Entry)]) -> Vec<(String, Option<String>)> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, HASH_THREADS);
        if threads == 1 || files.len() < HASH_PARALLEL_FROM {
            return files
                .iter()
                .map(|(path, expect)| (path.clone(), self.hash(path, expect)))
                .collect();
        }
        let chunk = files.len().div_ceil(threads);
        std::thread::scope(|s| {
            let parts: Vec<_> = files
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|(path, expect)| (path.clone(), self.hash(path, expect)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            parts
                .into_iter()
                .flat_map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    }

    /// The content hash of `rel` if it holds `expect` before and after
    /// the read (`None` otherwise).
    pub(super) fn hash(&self, rel: &str, expect: &Entry) -> Option<String> {
        #[cfg(unix)]
        if !self.fs.folds() {
            return self.hash_opened(rel, expect);
        }
        let same = |d: &Disk| {
            d.stat(rel)
                .ok()
                .flatten()
                .is_some_and(|e| e.same_here(expect))
        };
        if !same(self) {
            return None;
        }
        let mut hasher = blake3::Hasher::new();
        let file = std::fs::File::open(self.resolve(rel).ok()?).ok()?;
        hasher.update_reader(file).ok()?;
        let hash = hasher.finalize().to_hex().to_string();
        same(self).then_some(hash)
    }

    /// [`Disk::hash`] on unix where a name is what it says (no folding):
    /// the file opened once, without following a symbolic link, and its
    /// open handle's stat compared with `expect` before and after the
    /// read. The same checks as a stat of the path on each side, without
    /// walking the path three times (the two stats and the open were half
    /// of hashing a small file).
    #[cfg(unix)]
    fn hash_opened(&self, rel: &str, expect: &Entry) -> Option<String> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(self.resolve(rel).ok()?)
            .ok()?;
        let same = |f: &std::fs::File| {
            f.metadata()
                .ok()
                .is_some_and(|md| md.is_file() && self.fs.fit(entry_of(&md)).same_here(expect))
        };
        if !same(&file) {
            return None;
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(&file).ok()?;
        let hash = hasher.finalize().to_hex().to_string();
        same(&file).then_some(hash)
    }

    /// `Mismatch` unless `rel` holds `expect`.
    fn check(
        &self,
        rel: &str,
        expect: Option<&Entry>,
    ) -> io::Result<Result<Option<Entry>, Outcome>> {
        let found = self.stat(rel)?;
        let same = match (&found, expect) {
            (Some(f), Some(x)) => f.same_here(x),
            (None, None) => true,
            _ => false,
        };
        Ok(if same {
            Ok(found)
        } else {
            Err(Outcome::Mismatch { found })
        })
    }

    fn install(
        &mut self,
        rel: &str,
        version: &super::core::Version,
        source: &Source,
        expect: Option<&Entry>,
        keep: Option<KeepWhy>,
    ) -> io::Result<Outcome> {
        // A new file where nothing is expected (most of an initial sync):
        // the rename itself refuses to replace anything, which makes the
        // look before it needless (see `Disk::rename_new`).
        let new_file = expect.is_none() && version.kind == Kind::File && !self.fs.folds();
        let found = match if new_file {
            Ok(None)
        } else {
            self.check(rel, expect)?
        } {
            Ok(f) => f,
            // A folder is there already (made for a file inside it): it is
            // the folder asked for.
            Err(Outcome::Mismatch { found: Some(f) })
                if f.kind == Kind::Dir && version.kind == Kind::Dir =>
            {
                Some(f)
            }
            Err(mismatch) => return Ok(mismatch),
        };
        if found.is_none() {
            if let Some(refused) = self.clash(rel, None)? {
                return Ok(refused);
            }
        }
        let target = self.resolve(rel)?;
        let content = match (version.kind, source) {
            (Kind::Dir, _) => None,
            (Kind::File, Source::Staged) => {
                match self.take_staged(&Self::staged_key(rel, version)) {
                    Some(t) => {
                        self.flush_staged(&t)?;
                        Some(t.keep().map_err(|e| e.error)?)
                    }
                    None => {
                        return Ok(Outcome::Failed {
                            error: format!("{rel}: the received content is gone"),
                            retry: true,
                        })
                    }
                }
            }
            (Kind::File, Source::Queued { seq }) => Some(self.queue_file(rel, *seq)),
        };
        if version.kind == Kind::Dir && found.as_ref().is_some_and(|f| f.kind == Kind::Dir) {
            // The folder is there already.
            return Ok(Outcome::Applied {
                landed: found,
                kept_at: None,
            });
        }
        let mut kept_at = None;
        if let Some(f) = &found {
            let replace_in_place = f.kind == Kind::File && version.kind == Kind::File;
            match keep {
                Some(why) => {
                    // A file replaced by a file stays in place until the
                    // new one is renamed over it: never a moment (nor,
                    // after a kill -9 or a power cut, a restart) without it.
                    let at = self.keep_as(rel, why, replace_in_place)?;
                    if !self.kept_what_was_checked(&at, f, &target, replace_in_place) {
                        // The peer is told, and sends again if it still wins.
                        if let Some(c) = &content {
                            let _ = std::fs::remove_file(c);
                        }
                        return Ok(Outcome::Mismatch {
                            found: self.stat(rel)?,
                        });
                    }
                    kept_at = Some(at);
                }
                None if replace_in_place => {}
                None if f.kind == Kind::Dir => std::fs::remove_dir_all(&target)?,
                None => std::fs::remove_file(&target)?,
            }
        }
        if let (Some(from), Some(f)) = (&content, &found) {
            self.keep_mode(from, version, f)?;
        }
        match &content {
            Some(from) => {
                let rename = |from: &Path, to: &Path| match new_file {
                    true => Self::rename_new(from, to),
                    false => std::fs::rename(from, to),
                };
                // Most files go into a folder that is there: the folder is
                // looked at (and made) only when the rename says it is missing.
                let mut renamed = rename(from, &target);
                if let Err(e) = &renamed {
                    match target.parent() {
                        Some(parent) if e.kind() == io::ErrorKind::NotFound && !parent.is_dir() => {
                            std::fs::create_dir_all(parent)?;
                            renamed = rename(from, &target);
                        }
                        _ => {}
                    }
                }
                match renamed {
                    Ok(()) => {}
                    // Something arrived at the name since the core looked:
                    // the received content waits staged again, as if the
                    // look before had found it.
                    Err(e) if new_file && e.kind() == io::ErrorKind::AlreadyExists => {
                        if let Source::Staged = source {
                            // (Flushed already, before the rename was tried.)
                            if let Ok(t) = tempfile::TempPath::try_from_path(from) {
                                self.stage(Self::staged_key(rel, version), t, true);
                            }
                        }
                        return Ok(Outcome::Mismatch {
                            found: self.stat(rel)?,
                        });
                    }
                    Err(e) => return Err(e),
                }
            }
            None => {
                if let Some(parent) = target.parent().filter(|p| !p.is_dir()) {
                    std::fs::create_dir_all(parent)?;
                }
                match std::fs::create_dir(&target) {
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    r => r?,
                }
            }
        }
        self.touched(&target);
        Ok(Outcome::Applied {
            landed: self.stat(rel)?,
            kept_at: kept_at.map(|p| p.display().to_string()),
        })
    }

    /// Renames `from` to `to` unless `to` exists (`AlreadyExists` then): one
    /// atomic step where the kernel and the file system can
    /// (`RENAME_NOREPLACE` on Linux), else a look and a rename.
    fn rename_new(from: &Path, to: &Path) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::ffi::OsStrExt;
            let c = |p: &Path| {
                std::ffi::CString::new(p.as_os_str().as_bytes())
                    .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
            };
            let (f, t) = (c(from)?, c(to)?);
            // SAFETY: two valid NUL-terminated paths, relative to nothing.
            let r = unsafe {
                libc::renameat2(
                    libc::AT_FDCWD,
                    f.as_ptr(),
                    libc::AT_FDCWD,
                    t.as_ptr(),
                    libc::RENAME_NOREPLACE,
                )
            };
            if r == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            // A file system without the flag (some network ones) says EINVAL.
            if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) {
                return Err(e);
            }
        }
        match std::fs::symlink_metadata(to) {
            Ok(_) => Err(io::Error::from(io::ErrorKind::AlreadyExists)),
            Err(e) if is_absent(&e) => std::fs::rename(from, to),
            Err(e) => Err(e),
        }
    }

    /// A version from a side without permission bits leaves the file it
    /// replaces with the mode it had here.
    fn keep_mode(
        &self,
        content: &Path,
        version: &super::core::Version,
        found: &Entry,
    ) -> io::Result<()> {
        #[cfg(unix)]
        if let (None, Some(mode)) = (version.mode, found.mode) {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(content, std::fs::Permissions::from_mode(mode & 0o777))?;
        }
        let _ = (content, version, found);
        Ok(())
    }

    fn remove(&mut self, rel: &str, expect: &Entry, keep: Option<KeepWhy>) -> io::Result<Outcome> {
        if let Err(mismatch) = self.check(rel, Some(expect))? {
            return Ok(mismatch);
        }
        let target = self.resolve(rel)?;
        let kept_at = match (expect.kind, keep) {
            (Kind::File, Some(why)) => Some(self.keep(rel, why)?),
            (Kind::File, None) => {
                std::fs::remove_file(&target)?;
                self.touched(&target);
                None
            }
            (Kind::Dir, _) => {
                if let Err(e) = std::fs::remove_dir(&target) {
                    return Ok(Outcome::Failed {
                        error: format!("{rel}: {e}"),
                        retry: false,
                    });
                }
                self.touched(&target);
                None
            }
        };
        Ok(Outcome::Applied {
            landed: None,
            kept_at: kept_at.map(|p| p.display().to_string()),
        })
    }

    fn rename(&mut self, from: &str, to: &str, expect: &Entry) -> io::Result<Outcome> {
        if let Err(mismatch) = self.check(from, Some(expect))? {
            return Ok(mismatch);
        }
        if self.stat(to)?.is_some() {
            return Ok(Outcome::Mismatch {
                found: self.stat(from)?,
            });
        }
        // (A case-only rename lands on its own file: that is no clash.)
        if let Some(refused) = self.clash(to, Some(from))? {
            return Ok(refused);
        }
        let (src, dst) = (self.resolve(from)?, self.resolve(to)?);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::rename(&src, &dst)?;
        self.touched(&src);
        self.touched(&dst);
        Ok(Outcome::Applied {
            landed: self.stat(to)?,
            kept_at: None,
        })
    }

    /// Moves what `rel` holds (a file, or a folder with all it holds) into
    /// the state directory: `conflicts/<time>/<rel>` for a conflict's loser,
    /// `versions/<time>/<rel>` otherwise. A rename keeps its mtime and mode.
    /// Whether the file moved to `at` is the one `check` saw (`found`). A
    /// user's save landing between the check and the keep was moved
    /// instead: it goes back to `target` (never over a newer one) and the
    /// install is a mismatch, so the save is judged as the change it is.
    /// (`linked`: the keep left the file in place, so a save is still
    /// there and only the kept copy goes.)
    fn kept_what_was_checked(&self, at: &Path, found: &Entry, target: &Path, linked: bool) -> bool {
        if linked {
            // The file is still in place: is it still the one checked?
            let now =
                std::fs::symlink_metadata(target).map(|md| self.fs.fit(entry_at(target, &md)));
            if now.is_ok_and(|n| n.same_here(found)) {
                return true;
            }
            versions::forget(at);
            let _ = std::fs::remove_file(at);
            return false;
        }
        let kept = std::fs::symlink_metadata(at).map(|md| self.fs.fit(entry_at(at, &md)));
        if kept.as_ref().is_ok_and(|k| k.same_here(found)) {
            return true;
        }
        versions::forget(at);
        let back = if kept.as_ref().is_ok_and(|k| k.kind == Kind::File) {
            std::fs::hard_link(at, target).and_then(|()| std::fs::remove_file(at))
        } else {
            std::fs::rename(at, target)
        };
        if let Err(e) = back {
            tracing::warn!(
                "a save of {} landed while it was being replaced; it is kept at {} ({e})",
                target.display(),
                at.display()
            );
        }
        false
    }

    pub(super) fn keep(&mut self, rel: &str, why: KeepWhy) -> io::Result<PathBuf> {
        self.keep_as(rel, why, false)
    }

    /// Keeps the file `rel` (`found`, as stat'ed by the caller) as a
    /// version that a restore replaces, leaving it in place (a hard link,
    /// or a copy: see [`Self::keep_as`]), so that the restored copy can be
    /// renamed over it in one step. `None`: a save landed since `found`
    /// was taken, and nothing is kept.
    pub(super) fn keep_in_place(
        &mut self,
        rel: &str,
        found: &Entry,
    ) -> io::Result<Option<PathBuf>> {
        let target = self.resolve(rel)?;
        if let Some(at) = self.kept_already(&target, rel) {
            // Kept by a restore a kill cut short: a version listed since,
            // never dropped here, whatever a save does meanwhile.
            let now = std::fs::symlink_metadata(&target).map(|md| self.fs.fit(entry_of(&md)));
            return Ok(now.is_ok_and(|n| n.same_here(found)).then_some(at));
        }
        let at = self.keep_as(rel, KeepWhy::Replaced, true)?;
        Ok(self
            .kept_what_was_checked(&at, found, &target, true)
            .then_some(at))
    }

    /// [`Self::keep`], or with `in_place` (a file about to be replaced by
    /// a rename over it) a hard link to the file, a copy where the file
    /// system has none (FAT): the file stays where it is meanwhile.
    fn keep_as(&mut self, rel: &str, why: KeepWhy, in_place: bool) -> io::Result<PathBuf> {
        let src = self.resolve(rel)?;
        if in_place {
            if let Some(at) = self.kept_already(&src, rel) {
                return Ok(at);
            }
        }
        let folder = match why {
            KeepWhy::Conflict => "conflicts",
            KeepWhy::Replaced | KeepWhy::Deleted => "versions",
        };
        let stamp_dir = versions::new_stamp_dir(&self.state_dir.join(folder));
        let dst = paths::resolve(&stamp_dir, rel)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if in_place {
            if std::fs::hard_link(&src, &dst).is_err() {
                copy_with_times(&src, &dst)?;
            }
        } else if std::fs::rename(&src, &dst).is_err() {
            // Another file system: copy, then remove.
            copy_with_times(&src, &dst)?;
            std::fs::remove_file(&src)?;
        }
        self.touched(&src);
        self.touched(&dst);
        if let Err(e) = versions::record(&dst, rel, why) {
            tracing::warn!(
                "cannot describe the version of {rel} kept at {}: {e}",
                dst.display()
            );
        }
        if let Some(r) = self.retention.as_mut() {
            r.added(&stamp_dir);
        }
        self.expire();
        Ok(dst)
    }

    /// The version of `rel` already kept as a link to the very file `src`
    /// (a replace cut short by a crash after the keep, done again after the
    /// restart): keeping it again would list the same content twice. Only
    /// a file with more than one link is looked for.
    fn kept_already(&self, src: &Path, rel: &str) -> Option<PathBuf> {
        let (id, links) = super::identity::id_and_links(src)?;
        if links < 2 {
            return None;
        }
        versions::list(&self.state_dir, rel, "")
            .into_iter()
            .map(|k| k.file)
            .find(|f| super::identity::id_and_links(f).is_some_and(|(other, _)| other == id))
    }

    fn queue_file(&self, rel: &str, seq: u64) -> PathBuf {
        self.queue_dir(rel).join(seq.to_string())
    }

    /// The folder of `rel`'s lock queue: a snapshot and a description per
    /// entry, and the unlock's cursor.
    pub fn queue_dir(&self, rel: &str) -> PathBuf {
        let key = blake3::hash(rel.as_bytes()).to_hex();
        self.state_dir.join("queue").join(&key.as_str()[..16])
    }

    /// The unlock of `rel` is over: its cursor goes.
    pub fn end_queue(&self, rel: &str) {
        queue_cursor::clear(&self.queue_dir(rel));
    }

    /// Adds `entry` to the lock queue of `rel`: the staged content (of a
    /// version) moved in as its snapshot, then its description, written
    /// last (a crash before it leaves only an orphan snapshot).
    fn enqueue(&mut self, rel: &str, entry: &Queued) -> io::Result<()> {
        let dst = self.queue_file(rel, entry.seq);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)?;
            // A cursor left by an earlier lock's unlock (a crash before it
            // was cleared) must not skip this lock's entries.
            if queue_cursor::read(parent).is_some_and(|c| c.done_through >= entry.seq) {
                queue_cursor::clear(parent);
            }
        }
        if let Some(v) = entry.update.version().filter(|v| v.hash.is_some()) {
            match self.take_staged(&Self::staged_key(rel, v)) {
                Some(t) => {
                    // On disk before its rename, as for an install: a
                    // power cut must not leave the entry an empty snapshot.
                    self.flush_staged(&t)?;
                    t.persist(&dst).map_err(|e| e.error)?
                }
                None => return Err(io::Error::other("the received content is gone")),
            }
        }
        let mut tmp = tempfile::NamedTempFile::new_in(dst.parent().unwrap_or(&self.state_dir))?;
        // One write, not one per JSON token.
        tmp.write_all(&serde_json::to_vec(entry)?)?;
        crate::durable::sync_file(tmp.as_file())?;
        tmp.persist(dst.with_extension("json"))
            .map_err(|e| e.error)?;
        self.touched(&dst);
        Ok(())
    }

    /// The lock queue of `rel` as kept on disk, oldest first: the entries
    /// an interrupted unlock did not finish (see [`queue_cursor`]).
    pub fn queued(&self, rel: &str) -> Vec<Queued> {
        let dir = self.queue_dir(rel);
        let cursor = queue_cursor::read(&dir);
        let mut entries: Vec<Queued> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|f| f.path().extension().is_some_and(|e| e == "json"))
            .filter_map(|f| serde_json::from_slice(&std::fs::read(f.path()).ok()?).ok())
            .filter(|q| queue_cursor::waits(&dir, cursor.as_ref(), q))
            .collect();
        entries.sort_by_key(|e| e.seq);
        entries
    }
}

/// What [`scan`] found: entries, and skipped paths with why.
pub type Found = (Vec<(String, Entry)>, Vec<(PathBuf, String)>);

/// What a walk of the folder found: every file and folder below `dir`
/// (relative to the synced root, `prefix/` included) that `ignore` keeps,
/// with identities, fitted to `fs`; and what it skipped (symbolic links, names that are not
/// UTF-8, unreadable entries).
///
/// One folder at a time: its names are read, then each is stat'ed through
/// the open folder (`fstatat` on the folder's descriptor: no walk of the
/// whole path per file, and one descriptor open at a time), on two threads
/// when the folder is big. A start-up over a big tree is mostly this.
pub fn scan(
    root: &Path,
    dir: &str,
    ignore: &crate::ignore::Ignore,
    fs: FsTraits,
) -> io::Result<Found> {
    scan_with(root, dir, ignore, fs, &mut |_| {}, &mut |_| {})
}

/// [`scan`], telling `progress` how many entries it found so far after
/// each folder (the start-up scan's progress in `lab3 status`), and
/// `before_listing` the folders it will list (relative to the root, `dir`
/// first, then the folders found in each folder it listed), before it
/// lists any of them: the watcher watches them there (see
/// [`super::watcher::Watcher::add`]), so that a file made in a folder is
/// either listed or seen by the folder's watch.
pub fn scan_with(
    root: &Path,
    dir: &str,
    ignore: &crate::ignore::Ignore,
    fs: FsTraits,
    progress: &mut dyn FnMut(usize),
    before_listing: &mut dyn FnMut(&[String]),
) -> io::Result<Found> {
    let top = if dir.is_empty() {
        root.to_path_buf()
    } else {
        paths::resolve(root, dir).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
    };
    if !std::fs::metadata(&top)?.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{} is not a directory", top.display()),
        ));
    }
    let (mut found, mut skipped) = (Vec::new(), Vec::new());
    let mut folders = vec![(top, dir.to_string())];
    before_listing(&[dir.to_string()]);
    let mut found_here = Vec::new();
    while let Some((folder, prefix)) = folders.pop() {
        let first_found = folders.len();
        let names = match std::fs::read_dir(&folder) {
            Ok(names) => names,
            Err(e) => {
                skipped.push((folder, e.to_string()));
                continue;
            }
        };
        let mut here = Vec::new();
        for item in names {
            let item = match item {
                Ok(i) => i,
                Err(e) => {
                    skipped.push((folder.clone(), e.to_string()));
                    break;
                }
            };
            let ft = match item.file_type() {
                Ok(ft) => ft,
                Err(e) => {
                    skipped.push((item.path(), e.to_string()));
                    continue;
                }
            };
            let name = item.file_name();
            let Some(name) = name.to_str() else {
                skipped.push((item.path(), "name is not UTF-8".into()));
                continue;
            };
            let rel = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}/{name}")
            };
            if ignore.is_ignored_entry(&rel, ft.is_dir()) {
                continue;
            }
            if ft.is_symlink() {
                skipped.push((item.path(), "symbolic link, not followed".into()));
                continue;
            }
            if !ft.is_file() && !ft.is_dir() {
                skipped.push((item.path(), "not a regular file".into()));
                continue;
            }
            if ft.is_dir() {
                folders.push((item.path(), rel.clone()));
            }
            here.push((rel, item));
        }
        if folders.len() > first_found {
            found_here.clear();
            found_here.extend(folders[first_found..].iter().map(|(_, rel)| rel.clone()));
            before_listing(&found_here);
        }
        let ids = super::identity::FolderIds::read(&folder);
        for (rel, looked) in stat_entries(here, &ids) {
            match looked {
                Ok(Some(e)) => found.push((rel, fs.fit(e))),
                Err((path, e)) if !is_absent(&e) => skipped.push((path, e.to_string())),
                // Gone (or replaced by another kind) since its folder was
                // read: the next look sees it.
                _ => {}
            }
        }
        progress(found.len());
    }
    found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok((found, skipped))
}

/// One folder's entries stat'ed (through the folder's descriptor), in
/// order, with their identities (files and folders only); on two threads
/// when there are enough to be worth one (a thread costs tens of
/// microseconds; 256 stats, hundreds: at a start over folders of a
/// thousand files, the second core is idle once the journal is read).
#[allow(clippy::type_complexity)]
fn stat_entries(
    entries: Vec<(String, std::fs::DirEntry)>,
    ids: &super::identity::FolderIds,
) -> Vec<(String, Result<Option<Entry>, (PathBuf, io::Error)>)> {
    let stat = |(rel, item): (String, std::fs::DirEntry)| {
        let entry = match item.metadata() {
            Ok(md) if md.is_file() || md.is_dir() => Ok(Some(Entry {
                id: ids.id(&item.file_name(), &item.path(), &md),
                ..entry_of(&md)
            })),
            Ok(_) => Ok(None),
            Err(e) => Err((item.path(), e)),
        };
        (rel, entry)
    };
    if entries.len() < 256 {
        return entries.into_iter().map(stat).collect();
    }
    let mut first = entries;
    let second = first.split_off(first.len() / 2);
    std::thread::scope(|s| {
        let other = s.spawn(|| second.into_iter().map(stat).collect::<Vec<_>>());
        let mut out: Vec<_> = first.into_iter().map(stat).collect();
        match other.join() {
            Ok(rest) => out.extend(rest),
            Err(panic) => std::panic::resume_unwind(panic),
        }
        out
    })
}

/// Worth trying again later (a full disk, a file held open), as opposed to
/// a refusal that will not change (a name this file system cannot store).
fn retryable(e: &io::Error) -> bool {
    !matches!(
        e.kind(),
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidFilename
    )
}

/// The core's view of a stat of `path`, identity included.
pub fn entry_at(path: &Path, md: &Metadata) -> Entry {
    Entry {
        id: super::identity::id_of(path, md),
        ..entry_of(md)
    }
}

/// The core's view of a stat, for what needs no identity (a kept
/// version's size and times): the identity is only what the stat holds
/// (all of it on unix, none on Windows, where it costs an open).
pub fn entry_of(md: &Metadata) -> Entry {
    let kind = if md.is_dir() { Kind::Dir } else { Kind::File };
    Entry {
        kind,
        size: if md.is_dir() { 0 } else { md.len() },
        mtime_ns: crate::meta::mtime_ns(md),
        mode: mode_of(md),
        id: super::identity::id_in_stat(md),
        hash: None,
    }
}

#[cfg(unix)]
fn mode_of(md: &Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    Some(md.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn mode_of(_: &Metadata) -> Option<u32> {
    None
}

/// Copies `src` to `dst` (mode included) with its mtime, durably: a kept
/// version where a rename or a hard link cannot make one.
fn copy_with_times(src: &Path, dst: &Path) -> io::Result<()> {
    std::fs::copy(src, dst)?;
    let md = std::fs::metadata(src)?;
    filetime::set_file_mtime(dst, filetime::FileTime::from_last_modification_time(&md))?;
    crate::durable::sync_file(&std::fs::File::open(dst)?)
}

/// What the file system under `dir` keeps and refuses: its mtime
/// precision, permission bits, letter case and Unicode forms, Windows'
/// rules for names. Told to the peer when the link comes up. A probe that
/// fails says so and assumes what Linux does.
pub fn probe(dir: &Path) -> FsTraits {
    let mut fs = FsTraits::default();
    match probe_precision(dir) {
        Ok(p) => fs.precision_ns = p,
        Err(e) => tracing::warn!("cannot probe the mtime precision of {}: {e}", dir.display()),
    }
    fs.has_modes = probe_modes(dir);
    match probe_names(dir) {
        Ok((case, norm, windows)) => {
            fs.case_insensitive = case;
            fs.normalization_insensitive = norm;
            fs.windows_names = windows;
        }
        Err(e) => tracing::warn!("cannot probe how {} treats names: {e}", dir.display()),
    }
    fs
}

/// A probe file's path in `dir`: a `.lab3-` name, never listed or synced.
fn probe_path(dir: &Path, what: &str) -> std::path::PathBuf {
    dir.join(format!(
        "{}probe-{}-{what}",
        crate::ignore::TEMP_PREFIX,
        std::process::id()
    ))
}

/// Whether the folder keeps permission bits: a probe file's mode is set
/// twice and read back (FAT and Windows keep none).
fn probe_modes(dir: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let probe = probe_path(dir, "mode");
        let kept = |mode: u32| {
            std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(mode))
                .and_then(|()| std::fs::metadata(&probe))
                .is_ok_and(|md| md.permissions().mode() & 0o777 == mode)
        };
        let has = std::fs::write(&probe, b"").is_ok() && kept(0o600) && kept(0o640);
        let _ = std::fs::remove_file(&probe);
        has
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        false
    }
}

/// Whether the folder takes names differing only in letter case for one,
/// likewise names differing only in Unicode normalization, and whether it
/// refuses the characters Windows refuses: probe files are made under one
/// form and looked up under the other.
pub fn probe_names(dir: &Path) -> io::Result<(bool, bool, bool)> {
    let looks_alike = |made: &str, asked: &str| -> io::Result<bool> {
        let made = probe_path(dir, made);
        std::fs::write(&made, b"")?;
        let found = std::fs::symlink_metadata(probe_path(dir, asked)).is_ok();
        std::fs::remove_file(&made)?;
        Ok(found)
    };
    let case = looks_alike("Ab", "aB")?;
    // A folder that refuses names beyond ASCII (a FAT driver without
    // long-name Unicode) cannot hold two forms either.
    let norm = looks_alike("caf\u{e9}", "cafe\u{301}").unwrap_or(false);
    let windows = cfg!(windows) || {
        let odd = probe_path(dir, "a:b?");
        let refused = std::fs::write(&odd, b"").is_err();
        let _ = std::fs::remove_file(&odd);
        refused
    };
    Ok((case, norm, windows))
}

/// The mtime step the file system under `dir` keeps, in nanoseconds (1,
/// 100, 1e9, 2e9, ...): a probe file gets a time with every digit set and
/// is read back. The probe is a `.lab3-` name, never listed or synced.
pub fn probe_precision(dir: &Path) -> io::Result<u64> {
    const SET: i64 = 1_700_000_001_123_456_789;
    let probe = probe_path(dir, "mtime");
    std::fs::write(&probe, b"")?;
    let result = filetime::set_file_mtime(&probe, crate::meta::filetime_from_ns(SET))
        .and_then(|()| std::fs::metadata(&probe))
        .map(|md| crate::meta::mtime_ns(&md));
    let _ = std::fs::remove_file(&probe);
    let got = result?;
    let steps = [
        1u64,
        10,
        100,
        1_000,
        10_000,
        100_000,
        1_000_000,
        10_000_000,
        100_000_000,
    ];
    let step = steps
        .into_iter()
        .chain([1_000_000_000, 2_000_000_000])
        .find(|&p| (got - SET).unsigned_abs() < p)
        .unwrap_or(2_000_000_000);
    Ok(step)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::core::{Holding, Version};

    fn disk() -> (tempfile::TempDir, tempfile::TempDir, Disk) {
        let (root, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let d = Disk::new(root.path().to_path_buf(), state.path().to_path_buf());
        (root, state, d)
    }

    fn staged(d: &mut Disk, content: &[u8]) -> Version {
        let t = tempfile::NamedTempFile::new_in(&d.state_dir).unwrap();
        std::fs::write(t.path(), content).unwrap();
        let hash = blake3::hash(content).to_hex().to_string();
        d.stage(hash.clone(), t.into_temp_path(), false);
        Version {
            kind: Kind::File,
            size: content.len() as u64,
            mtime_ns: 0,
            mode: Some(0o644),
            hash: Some(hash.into()),
        }
    }

    fn install(
        d: &mut Disk,
        rel: &str,
        v: Version,
        expect: Option<Entry>,
        keep: Option<KeepWhy>,
    ) -> Outcome {
        match d.run(&Effect::Install {
            op: 1,
            path: rel.into(),
            version: v,
            source: Source::Staged,
            expect,
            keep,
        }) {
            Some(Input::Done { outcome, .. }) => outcome,
            other => panic!("{other:?}"),
        }
    }

    /// A batch big enough for several threads comes back in order, each
    /// file hashed only where it still is the file the core expects: not a
    /// look-alike swapped in (another file, same size and time), not a
    /// symbolic link to the expected file, not a file gone.
    #[test]
    fn a_big_batch_of_look_alikes_is_hashed_in_order_and_only_where_the_file_is_as_expected() {
        let (root, _state, d) = disk();
        let mut files = Vec::new();
        for i in 0..(HASH_PARALLEL_FROM * 3) {
            let name = format!("f{i:04}");
            std::fs::write(root.path().join(&name), format!("content {i}")).unwrap();
            let e = d.stat(&name).unwrap().unwrap();
            files.push((name, e));
        }
        // 0: a look-alike swapped in (same size and mtime, another inode).
        let p0 = root.path().join("f0000");
        let md = std::fs::metadata(&p0).unwrap();
        std::fs::write(root.path().join("tmp"), "content X").unwrap();
        let mtime = filetime::FileTime::from_last_modification_time(&md);
        filetime::set_file_mtime(root.path().join("tmp"), mtime).unwrap();
        std::fs::rename(root.path().join("tmp"), &p0).unwrap();
        // 1: gone.
        std::fs::remove_file(root.path().join("f0001")).unwrap();
        // 2: a symbolic link to a file whose stat is the one expected.
        #[cfg(unix)]
        {
            let p2 = root.path().join("f0002");
            std::fs::rename(&p2, root.path().join("target")).unwrap();
            std::os::unix::fs::symlink(root.path().join("target"), &p2).unwrap();
        }
        let hashes = d.hash_all(&files);
        assert_eq!(hashes.len(), files.len());
        for (i, ((path, hash), (want, _))) in hashes.iter().zip(&files).enumerate() {
            assert_eq!(path, want);
            let expected = match i {
                0 | 1 => None,
                2 if cfg!(unix) => None,
                _ => Some(
                    blake3::hash(format!("content {i}").as_bytes())
                        .to_hex()
                        .to_string(),
                ),
            };
            assert_eq!(hash, &expected, "{path}");
        }
    }

    /// Two received files of one content, staged together (one batch),
    /// each land with the mtime their own temporary file was given.
    #[test]
    fn files_of_one_content_staged_together_land_each_as_received() {
        let (root, _state, mut d) = disk();
        let mut versions = Vec::new();
        for (name, mtime_ns) in [("a.txt", 1_000_000_000i64), ("b.txt", 2_000_000_000)] {
            let t = tempfile::NamedTempFile::new_in(&d.state_dir).unwrap();
            std::fs::write(t.path(), b"same").unwrap();
            let ft = filetime::FileTime::from_unix_time(mtime_ns / 1_000_000_000, 0);
            filetime::set_file_mtime(t.path(), ft).unwrap();
            let v = Version {
                kind: Kind::File,
                size: 4,
                mtime_ns,
                mode: Some(0o644),
                hash: Some(blake3::hash(b"same").to_hex().as_str().into()),
            };
            d.stage(Disk::staged_key(name, &v), t.into_temp_path(), false);
            versions.push((name, v));
        }
        for (name, v) in versions {
            let want = v.mtime_ns;
            assert!(matches!(
                install(&mut d, name, v, None, None),
                Outcome::Applied { .. }
            ));
            let md = std::fs::metadata(root.path().join(name)).unwrap();
            let got = filetime::FileTime::from_last_modification_time(&md).unix_seconds();
            assert_eq!(got * 1_000_000_000, want, "{name}");
        }
    }

    #[test]
    fn a_save_that_lands_between_the_check_and_the_keep_goes_back_and_wins_nothing_silently() {
        let (root, _state, mut d) = disk();
        let target = root.path().join("s.txt");
        std::fs::write(&target, b"checked").unwrap();
        let checked = d.stat("s.txt").unwrap().unwrap();
        // The user saves by rename after the check.
        let saved = root.path().join("staged-by-editor");
        std::fs::write(&saved, b"the user's save").unwrap();
        std::fs::rename(&saved, &target).unwrap();
        let at = d.keep("s.txt", KeepWhy::Replaced).unwrap();
        assert!(!d.kept_what_was_checked(&at, &checked, &target, false));
        assert_eq!(std::fs::read(&target).unwrap(), b"the user's save");
        assert!(!at.exists());
        // The file that was checked is kept as it should be.
        std::fs::write(&target, b"checked again").unwrap();
        let checked = d.stat("s.txt").unwrap().unwrap();
        let at = d.keep("s.txt", KeepWhy::Replaced).unwrap();
        assert!(d.kept_what_was_checked(&at, &checked, &target, false));
        assert_eq!(std::fs::read(&at).unwrap(), b"checked again");
    }

    #[test]
    fn a_file_kept_before_a_replace_stays_in_place_until_the_new_one_lands() {
        let (root, state, mut d) = disk();
        let target = root.path().join("s.txt");
        std::fs::write(&target, b"old").unwrap();
        let checked = d.stat("s.txt").unwrap().unwrap();
        let at = d.keep_as("s.txt", KeepWhy::Replaced, true).unwrap();
        // A kill -9 here finds the old file where it was, and kept.
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        assert_eq!(std::fs::read(&at).unwrap(), b"old");
        assert!(at.starts_with(state.path()));
        assert!(d.kept_what_was_checked(&at, &checked, &target, true));
        // A kill -9 before the new file landed: the replace is done again
        // after the restart, and the version is not kept a second time.
        #[cfg(unix)]
        assert_eq!(d.keep_as("s.txt", KeepWhy::Replaced, true).unwrap(), at);
        // A save landing after the check stays; the kept copy goes.
        let checked = d.stat("s.txt").unwrap().unwrap();
        let saved = root.path().join("staged-by-editor");
        std::fs::write(&saved, b"the user's save").unwrap();
        std::fs::rename(&saved, &target).unwrap();
        let at = d.keep_as("s.txt", KeepWhy::Replaced, true).unwrap();
        assert!(!d.kept_what_was_checked(&at, &checked, &target, true));
        assert_eq!(std::fs::read(&target).unwrap(), b"the user's save");
        assert!(!at.exists());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_linux_folder_is_probed_as_keeping_every_name_and_mode() {
        let d = tempfile::tempdir().unwrap();
        let fs = probe(d.path());
        assert!(fs.has_modes && !fs.case_insensitive && !fs.normalization_insensitive);
        assert!(!fs.windows_names);
        assert!(
            std::fs::read_dir(d.path()).unwrap().next().is_none(),
            "a probe file is left"
        );
    }

    #[test]
    fn the_precision_of_a_temp_folder_is_found() {
        let d = tempfile::tempdir().unwrap();
        let p = probe_precision(d.path()).unwrap();
        // tmpfs and ext4 keep nanoseconds, NTFS 100 ns, HFS+ seconds, FAT two.
        assert!([1, 100, 1_000_000_000, 2_000_000_000].contains(&p), "{p}");
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            0,
            "the probe is gone"
        );
    }

    #[test]
    fn an_install_lands_where_the_disk_is_as_expected_and_keeps_what_it_held() {
        let (root, state, mut d) = disk();
        let v = staged(&mut d, b"first");
        let Outcome::Applied {
            landed: Some(first),
            ..
        } = install(&mut d, "a/b.txt", v, None, None)
        else {
            panic!()
        };
        assert_eq!(
            std::fs::read(root.path().join("a/b.txt")).unwrap(),
            b"first"
        );
        // A user's edit slipped in: the install is not done.
        std::fs::write(root.path().join("a/b.txt"), b"user's edit").unwrap();
        let v = staged(&mut d, b"second");
        let stale = Entry {
            size: 5,
            ..first.clone()
        };
        assert!(matches!(
            install(&mut d, "a/b.txt", v.clone(), Some(stale), None),
            Outcome::Mismatch { .. }
        ));
        assert_eq!(
            std::fs::read(root.path().join("a/b.txt")).unwrap(),
            b"user's edit"
        );
        // As expected: installed, the old copy kept as a conflict's loser.
        let now = d.stat("a/b.txt").unwrap();
        let Outcome::Applied {
            kept_at: Some(at), ..
        } = install(&mut d, "a/b.txt", v, now, Some(KeepWhy::Conflict))
        else {
            panic!()
        };
        assert!(
            at.starts_with(&state.path().join("conflicts").display().to_string()),
            "{at}"
        );
        assert_eq!(std::fs::read(&at).unwrap(), b"user's edit");
        assert_eq!(
            std::fs::read(root.path().join("a/b.txt")).unwrap(),
            b"second"
        );
    }

    #[test]
    fn a_folder_in_the_way_of_a_file_is_kept_whole() {
        let (root, _state, mut d) = disk();
        std::fs::create_dir_all(root.path().join("w/sub")).unwrap();
        std::fs::write(root.path().join("w/sub/x"), b"x").unwrap();
        let v = staged(&mut d, b"file");
        let here = d.stat("w").unwrap();
        let Outcome::Applied {
            kept_at: Some(at), ..
        } = install(&mut d, "w", v, here, Some(KeepWhy::Conflict))
        else {
            panic!()
        };
        assert_eq!(std::fs::read(Path::new(&at).join("sub/x")).unwrap(), b"x");
        assert_eq!(std::fs::read(root.path().join("w")).unwrap(), b"file");
    }

    /// A folder taken as case-insensitive (this one is not, so each name
    /// is its own file here and an overwrite would show): a name of
    /// another letter case, or a folder on the way, is never written.
    #[test]
    fn a_name_that_folds_onto_another_is_never_written() {
        let (root, _state, mut d) = disk();
        d.set_traits(FsTraits {
            case_insensitive: true,
            ..FsTraits::default()
        });
        std::fs::write(root.path().join("X.txt"), b"upper").unwrap();
        std::fs::create_dir(root.path().join("Dir")).unwrap();
        for rel in ["x.txt", "dir/inside.txt"] {
            let v = staged(&mut d, b"new");
            let out = install(&mut d, rel, v, None, None);
            assert!(
                matches!(out, Outcome::Failed { retry: false, .. }),
                "{rel}: {out:?}"
            );
        }
        assert_eq!(std::fs::read(root.path().join("X.txt")).unwrap(), b"upper");
        assert!(!root.path().join("x.txt").exists());
        assert!(!root.path().join("dir").exists());
        // Exact names only: X.txt is not x.txt.
        assert!(d.stat("X.txt").unwrap().is_some());
        // A name of its own goes, also into the folder as it is named.
        let v = staged(&mut d, b"new");
        let out = install(&mut d, "Dir/inside.txt", v, None, None);
        assert!(matches!(out, Outcome::Applied { .. }), "{out:?}");
        // A case-only rename of the file itself is no clash.
        let e = d.stat("X.txt").unwrap().unwrap();
        let out = d.run(&Effect::Rename {
            op: 3,
            from: "X.txt".into(),
            to: "x.txt".into(),
            expect: e,
        });
        assert!(
            matches!(
                out,
                Some(Input::Done {
                    outcome: Outcome::Applied { .. },
                    ..
                })
            ),
            "{out:?}"
        );
        assert_eq!(std::fs::read(root.path().join("x.txt")).unwrap(), b"upper");
    }

    /// A name taken since the core looked (a user's file made a moment
    /// before the install of a new one): the rename refuses it, the user's
    /// file stays, and the received content waits, staged again.
    #[test]
    fn a_new_file_never_replaces_one_made_meanwhile() {
        let (root, _state, mut d) = disk();
        std::fs::write(root.path().join("n.txt"), b"the user's").unwrap();
        let v = staged(&mut d, b"received");
        let out = install(&mut d, "n.txt", v.clone(), None, None);
        assert!(
            matches!(&out, Outcome::Mismatch { found: Some(f) } if f.size == 10),
            "{out:?}"
        );
        assert_eq!(
            std::fs::read(root.path().join("n.txt")).unwrap(),
            b"the user's"
        );
        std::fs::remove_file(root.path().join("n.txt")).unwrap();
        let out = install(&mut d, "n.txt", v, None, None);
        assert!(matches!(out, Outcome::Applied { .. }), "{out:?}");
        assert_eq!(
            std::fs::read(root.path().join("n.txt")).unwrap(),
            b"received"
        );
    }

    #[test]
    fn renames_make_parents_and_never_overwrite() {
        let (root, _state, mut d) = disk();
        std::fs::create_dir_all(root.path().join("photos")).unwrap();
        std::fs::write(root.path().join("photos/1.jpg"), b"1").unwrap();
        std::fs::write(root.path().join("taken"), b"t").unwrap();
        let e = d.stat("photos").unwrap().unwrap();
        let run = |d: &mut Disk, to: &str| match d.run(&Effect::Rename {
            op: 2,
            from: "photos".into(),
            to: to.into(),
            expect: e.clone(),
        }) {
            Some(Input::Done { outcome, .. }) => outcome,
            other => panic!("{other:?}"),
        };
        assert!(matches!(run(&mut d, "taken"), Outcome::Mismatch { .. }));
        let Outcome::Applied {
            landed: Some(l), ..
        } = run(&mut d, "n/sub/photos")
        else {
            panic!()
        };
        assert_eq!(l.id, e.id, "the same folder, moved");
        assert_eq!(
            std::fs::read(root.path().join("n/sub/photos/1.jpg")).unwrap(),
            b"1"
        );
    }

    #[test]
    fn a_removed_file_is_kept_and_a_full_folder_is_not_removed() {
        let (root, state, mut d) = disk();
        std::fs::create_dir_all(root.path().join("d")).unwrap();
        std::fs::write(root.path().join("d/f"), b"f").unwrap();
        let dir = d.stat("d").unwrap().unwrap();
        let out = d.run(&Effect::Remove {
            op: 3,
            path: "d".into(),
            expect: dir,
            keep: None,
        });
        assert!(matches!(
            out,
            Some(Input::Done {
                outcome: Outcome::Failed { retry: false, .. },
                ..
            })
        ));
        let f = d.stat("d/f").unwrap().unwrap();
        d.run(&Effect::Remove {
            op: 4,
            path: "d/f".into(),
            expect: f,
            keep: Some(KeepWhy::Deleted),
        });
        assert!(!root.path().join("d/f").exists());
        assert_eq!(
            std::fs::read_dir(state.path().join("versions"))
                .unwrap()
                .count(),
            1
        );
    }

    #[test]
    fn a_scan_finds_folders_empty_ones_included_with_identities() {
        let (root, _state, d) = disk();
        std::fs::create_dir_all(root.path().join("empty")).unwrap();
        std::fs::create_dir_all(root.path().join("sub")).unwrap();
        std::fs::write(root.path().join("sub/f"), b"f").unwrap();
        std::fs::write(root.path().join(".lab3-tmp"), b"x").unwrap();
        #[cfg(unix)]
        std::fs::hard_link(root.path().join("sub/f"), root.path().join("g")).unwrap();
        let (found, _) = scan(
            root.path(),
            "",
            &crate::ignore::Ignore::default(),
            FsTraits::default(),
        )
        .unwrap();
        let names: Vec<_> = found.iter().map(|(p, e)| (p.as_str(), e.kind)).collect();
        assert_eq!(
            names,
            [
                ("empty", Kind::Dir),
                ("g", Kind::File),
                ("sub", Kind::Dir),
                ("sub/f", Kind::File)
            ]
        );
        assert_eq!(found[1].1.id, found[3].1.id, "hard links share an identity");
        assert_eq!(d.stat("sub/f").unwrap().unwrap().id, found[3].1.id);
    }

    #[test]
    fn a_scan_of_a_subfolder_names_paths_from_the_top_and_skips_links_and_ignored() {
        let (root, _state, _d) = disk();
        std::fs::create_dir_all(root.path().join("sub/deeper")).unwrap();
        std::fs::write(root.path().join("sub/deeper/f"), b"f").unwrap();
        std::fs::write(root.path().join("sub/x.log"), b"x").unwrap();
        std::fs::write(root.path().join("top"), b"t").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("deeper/f", root.path().join("sub/link")).unwrap();
        let ignore = crate::ignore::Ignore::load(root.path(), &["*.log".into()], &[]).unwrap();
        let (found, skipped) = scan(root.path(), "sub", &ignore, FsTraits::default()).unwrap();
        let names: Vec<_> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names, ["sub/deeper", "sub/deeper/f"]);
        // (A symbolic link is made on Unix only: elsewhere nothing is skipped.)
        let links = usize::from(cfg!(unix));
        assert_eq!(skipped.len(), links, "{skipped:?}");
        assert!(
            skipped.iter().all(|s| s.0.ends_with("sub/link")),
            "{skipped:?}"
        );
    }

    #[test]
    fn a_big_folder_is_stated_whole_on_two_threads() {
        let (root, _state, _d) = disk();
        for i in 0..2_500 {
            std::fs::write(root.path().join(format!("f{i:04}")), [i as u8]).unwrap();
        }
        let (found, skipped) = scan(
            root.path(),
            "",
            &crate::ignore::Ignore::default(),
            FsTraits::default(),
        )
        .unwrap();
        assert!(skipped.is_empty());
        assert_eq!(found.len(), 2_500);
        assert!(found.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
        assert!(found
            .iter()
            .all(|(_, e)| e.kind == Kind::File && e.size == 1));
    }

    #[test]
    fn a_file_for_a_missing_folder_gets_its_folder() {
        let (root, _state, mut d) = disk();
        let v = staged(&mut d, b"deep");
        let out = install(&mut d, "a/b/c.txt", v, None, None);
        assert!(
            matches!(
                out,
                Outcome::Applied {
                    landed: Some(_),
                    ..
                }
            ),
            "{out:?}"
        );
        assert_eq!(
            std::fs::read(root.path().join("a/b/c.txt")).unwrap(),
            b"deep"
        );
    }

    #[test]
    fn queued_snapshots_are_installed_from_the_queue() {
        let (root, _state, mut d) = disk();
        let v = staged(&mut d, b"queued bytes");
        d.run(&Effect::Queue {
            path: "l.txt".into(),
            seq: 1,
            update: Holding::Present(v.clone()),
            peer_op: 9,
            held: None,
        });
        let kept = d.queued("l.txt");
        assert_eq!(kept.len(), 1);
        assert_eq!((kept[0].seq, kept[0].peer_op), (1, 9));
        let out = d.run(&Effect::Install {
            op: 5,
            path: "l.txt".into(),
            version: v,
            source: Source::Queued { seq: 1 },
            expect: None,
            keep: None,
        });
        assert!(matches!(
            out,
            Some(Input::Done {
                outcome: Outcome::Applied { .. },
                ..
            })
        ));
        assert_eq!(
            std::fs::read(root.path().join("l.txt")).unwrap(),
            b"queued bytes"
        );
    }

    /// Two offers of the same content (hard-linked names at the peer):
    /// each staged copy serves one of them, an install and a queue
    /// snapshot alike (simulation seed 96900: the second had none).
    #[test]
    fn the_same_content_offered_twice_is_staged_twice() {
        let (root, _state, mut d) = disk();
        let v = staged(&mut d, b"linked");
        staged(&mut d, b"linked");
        let out = install(&mut d, "d.txt", v.clone(), None, None);
        assert!(matches!(out, Outcome::Applied { .. }), "{out:?}");
        d.run(&Effect::Queue {
            path: "b.txt".into(),
            seq: 1,
            update: Holding::Present(v.clone()),
            peer_op: 3,
            held: None,
        });
        assert_eq!(d.queued("b.txt").len(), 1);
        assert!(d.queue_file("b.txt", 1).exists());
        assert_eq!(std::fs::read(root.path().join("d.txt")).unwrap(), b"linked");
        let out = install(&mut d, "e.txt", v, None, None);
        assert!(
            matches!(out, Outcome::Failed { retry: true, .. }),
            "{out:?}"
        );
    }
}
