//! The versions a side keeps: whatever sync replaced or deleted there, and
//! every conflict's loser, as plain files under the state directory
//! (`versions/<time>/<path>`, `conflicts/<time>/<path>`, see
//! `Disk::keep`), each with a small JSON sidecar that says what it was.
//! This module finds them for `lab3 versions`, picks one for `lab3
//! restore`, and expires them (by age, then by total size, oldest first).
//!
//! A sidecar sits next to what it describes, named
//! `.lab3-version.<name>.json`: the `.lab3-` prefix is lab3's own, never a
//! synced file's, so it cannot clash with a kept folder's contents. A
//! kept folder's sidecar covers every file in it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::core::{KeepWhy, Kind};
use super::disk::{entry_of, Disk};
use crate::protocol::VersionInfo;

/// The two folders of kept things in a state directory.
pub const FOLDERS: [&str; 2] = ["versions", "conflicts"];

const SIDECAR_PREFIX: &str = ".lab3-version.";

/// What a sidecar holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sidecar {
    /// The path it was kept from.
    path: String,
    why: KeepWhy,
    kept_ns: i64,
    folder: bool,
    size: u64,
    mtime_ns: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mode: Option<u32>,
}

/// The sidecar of what was kept at `kept_at`.
fn sidecar_of(kept_at: &Path) -> PathBuf {
    let name = kept_at
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    kept_at.with_file_name(format!("{SIDECAR_PREFIX}{name}.json"))
}

/// Writes the sidecar of what was just kept at `kept_at` (from `rel`),
/// durably: a version a user was told about survives a power cut.
pub fn record(kept_at: &Path, rel: &str, why: KeepWhy) -> std::io::Result<()> {
    let md = std::fs::symlink_metadata(kept_at)?;
    let e = entry_of(&md);
    let car = Sidecar {
        path: rel.to_string(),
        why,
        kept_ns: crate::meta::now_ns(),
        folder: e.kind == Kind::Dir,
        size: e.size,
        mtime_ns: e.mtime_ns,
        mode: e.mode,
    };
    let json = serde_json::to_vec(&car)?;
    crate::durable::write(&sidecar_of(kept_at), &json)
}

/// Drops the sidecar of `kept_at` (what was kept went back).
pub fn forget(kept_at: &Path) {
    let _ = std::fs::remove_file(sidecar_of(kept_at));
}

/// One kept version, and where its bytes are.
#[derive(Debug, Clone)]
pub struct Kept {
    pub info: VersionInfo,
    pub file: PathBuf,
    /// The stamp folder it lives in (what expiry removes).
    pub stamp_dir: PathBuf,
}

/// The kept versions of the file `rel` at this side (`side`: `"a"` or
/// `"b"`), newest first. A version of `rel` is either kept as itself or
/// inside a kept folder that held it.
pub fn list(state_dir: &Path, rel: &str, side: &str) -> Vec<Kept> {
    let mut out = Vec::new();
    for folder in FOLDERS {
        for stamp_dir in stamps(&state_dir.join(folder)) {
            if let Some(k) = find_in(&stamp_dir, folder, rel, side) {
                out.push(k);
            }
        }
    }
    newest_first(&mut out);
    out
}

/// Newest first; among versions kept at one moment, by path, then id.
fn newest_first(kept: &mut [Kept]) {
    kept.sort_by(|x, y| {
        y.info
            .kept_ns
            .cmp(&x.info.kept_ns)
            .then(x.info.path.cmp(&y.info.path))
            .then(x.info.id.cmp(&y.info.id))
    });
}

/// The stamp folders under `dir` (one per moment something was kept).
pub(super) fn stamps(dir: &Path) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    all.sort();
    all
}

/// The version of `rel` kept in `stamp_dir`, if there is one: its own
/// sidecar, or the nearest kept folder's, or (kept before sidecars) the
/// folder's name alone.
fn find_in(stamp_dir: &Path, folder: &str, rel: &str, side: &str) -> Option<Kept> {
    let file = crate::paths::resolve(stamp_dir, rel).ok()?;
    let md = std::fs::symlink_metadata(&file).ok()?;
    if !md.is_file() {
        return None;
    }
    let e = entry_of(&md);
    let mut why = if folder == "conflicts" {
        KeepWhy::Conflict
    } else {
        KeepWhy::Replaced
    };
    let mut kept_ns = stamp_ns(stamp_dir).unwrap_or(e.mtime_ns);
    let mut at = Some(file.as_path());
    while let Some(p) = at.filter(|p| p.starts_with(stamp_dir) && *p != stamp_dir) {
        if let Some(car) = read_sidecar(p) {
            why = car.why;
            kept_ns = car.kept_ns;
            break;
        }
        at = p.parent();
    }
    let key = format!(
        "{folder}/{}/{rel}",
        stamp_dir.file_name()?.to_string_lossy()
    );
    let id = format!(
        "{side}-{}",
        &blake3::hash(key.as_bytes()).to_hex().as_str()[..8]
    );
    Some(Kept {
        info: VersionInfo {
            side: side.to_string(),
            id,
            path: rel.to_string(),
            why: why_word(why).to_string(),
            kept_ns,
            size: e.size,
            mtime_ns: e.mtime_ns,
            mode: e.mode,
        },
        file,
        stamp_dir: stamp_dir.to_path_buf(),
    })
}

fn read_sidecar(kept_at: &Path) -> Option<Sidecar> {
    serde_json::from_slice(&std::fs::read(sidecar_of(kept_at)).ok()?).ok()
}

/// `replaced`, `deleted` or `conflict`.
pub fn why_word(why: KeepWhy) -> &'static str {
    match why {
        KeepWhy::Replaced => "replaced",
        KeepWhy::Deleted => "deleted",
        KeepWhy::Conflict => "conflict",
    }
}

/// The time in a stamp folder's name (`20261121T071254.123456789Z`).
pub(super) fn stamp_ns(stamp_dir: &Path) -> Option<i64> {
    let name = stamp_dir.file_name()?.to_str()?;
    let name = name.split('-').next()?;
    let t = chrono::NaiveDateTime::parse_from_str(name, "%Y%m%dT%H%M%S%.fZ").ok()?;
    t.and_utc().timestamp_nanos_opt()
}

/// The stamp folder for something kept now under `dir`: named by the
/// time, and never one that exists already.
pub fn new_stamp_dir(dir: &Path) -> PathBuf {
    let stamp = crate::durable::stamp();
    let mut at = dir.join(&stamp);
    let mut n = 1;
    while at.exists() {
        at = dir.join(format!("{stamp}-{n}"));
        n += 1;
    }
    at
}

/// Puts version `id` of `rel` (default: the newest) back at this side as
/// a new change: copied (the kept version stays) into a temporary file,
/// flushed, and renamed over the path in one step. What the path held is
/// kept as a version first, as a hard link (a copy where the file system
/// has none), so at every instant, a kill -9 or a power cut included, the
/// path holds either what it held or the restored copy, and both are
/// kept. The copy's modification time is now, so the restore is a change
/// made after everything it replaces and syncs as one. Fails, changing
/// nothing, if the path is a folder now or a save lands meanwhile.
pub fn restore(
    disk: &mut Disk,
    rel: &str,
    id: Option<&str>,
    side: &str,
) -> anyhow::Result<VersionInfo> {
    crate::paths::check(rel)?;
    let all = list(disk.state_dir(), rel, side);
    let up = side.to_uppercase();
    let kept = match id {
        Some(id) => all.into_iter().find(|k| k.info.id == id).ok_or_else(|| {
            anyhow::anyhow!("no version {id} of {rel} at server {up} (see lab3 versions {rel})")
        })?,
        None => all
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("no kept versions of {rel} at server {up}"))?,
    };
    let target = disk.resolve(rel)?;
    let found = disk.stat(rel)?;
    if found.as_ref().is_some_and(|e| e.kind == Kind::Dir) {
        anyhow::bail!("{rel} is a folder at server {up} now; move it away to restore the file");
    }
    let parent = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    // Where received files are made (emptied at start: a restore cut short
    // leaves nothing behind in the folder).
    let tmp_dir = super::transfer::temp_dir_of(disk.root(), disk.state_dir());
    std::fs::create_dir_all(&tmp_dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(crate::ignore::TEMP_PREFIX)
        .tempfile_in(&tmp_dir)?;
    std::io::copy(&mut std::fs::File::open(&kept.file)?, &mut tmp)?;
    #[cfg(unix)]
    if let Some(mode) = kept.info.mode {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode & 0o777))?;
    }
    crate::durable::sync_file(tmp.as_file())?;
    let changed = || {
        anyhow::anyhow!(
            "{rel} changed at server {up} while it was being restored; nothing was replaced: try again"
        )
    };
    match &found {
        Some(f) => {
            disk.keep_in_place(rel, f)?.ok_or_else(changed)?;
            // The kept version is on disk before the path changes.
            disk.sync_dirs();
            hold_for_tests();
            tmp.persist(&target)
                .map_err(|e| anyhow::anyhow!("{rel}: {}", e.error))?;
        }
        None => {
            tmp.persist_noclobber(&target).map_err(|_| changed())?;
        }
    }
    crate::durable::sync_dir(parent)?;
    Ok(kept.info)
}

/// For tests only: `LAB3_TEST_RESTORE_HOLD=FILE` makes a restore that has
/// kept what the path held wait, before it renames the restored copy over
/// the path, for as long as FILE exists, so that a test can kill the
/// server in that window (see [`super::hold_for_tests`]).
fn hold_for_tests() {
    super::hold_for_tests("LAB3_TEST_RESTORE_HOLD", "restore held before its rename");
}

/// How many versions an answer for every file holds at most: the newest
/// (an answer must fit in a frame; a page lists no more).
pub const EVERY_FILE_AT_MOST: usize = 2000;

/// The versions of `rel` kept at this side (`side`: `"a"` or `"b"`); an
/// empty `rel`: of every file, the newest [`EVERY_FILE_AT_MOST`] (the web
/// page's view of all versions).
pub fn infos(state_dir: &Path, rel: &str, side: &str) -> anyhow::Result<Vec<VersionInfo>> {
    let kept = if rel.is_empty() {
        let mut all = list_all(state_dir, side);
        all.truncate(EVERY_FILE_AT_MOST);
        all
    } else {
        crate::paths::check(rel)?;
        list(state_dir, rel, side)
    };
    Ok(kept.into_iter().map(|k| k.info).collect())
}

/// Every kept version at this side, of every file, newest first: each
/// file under a stamp folder (but the sidecars), as [`list`] finds it.
pub fn list_all(state_dir: &Path, side: &str) -> Vec<Kept> {
    let mut out = Vec::new();
    for folder in FOLDERS {
        for stamp_dir in stamps(&state_dir.join(folder)) {
            for e in walkdir::WalkDir::new(&stamp_dir)
                .min_depth(1)
                .into_iter()
                .flatten()
            {
                let name = e.file_name().to_string_lossy();
                if !e.file_type().is_file() || name.starts_with(SIDECAR_PREFIX) {
                    continue;
                }
                let Ok(rel) = e.path().strip_prefix(&stamp_dir) else {
                    continue;
                };
                let parts: Vec<_> = rel.iter().map(|c| c.to_string_lossy()).collect();
                if let Some(k) = find_in(&stamp_dir, folder, &parts.join("/"), side) {
                    out.push(k);
                }
            }
        }
    }
    newest_first(&mut out);
    out
}

/// `lab3 restore` at this side: through the running engine, or (a server
/// started with `--no-sync`) straight on the folder.
pub async fn restore_here(
    sync: Option<&super::SyncHandle>,
    root: &Path,
    state_dir: &Path,
    side: &str,
    rel: &str,
    id: Option<String>,
) -> anyhow::Result<VersionInfo> {
    crate::paths::check(rel)?;
    match sync {
        Some(s) => s.restore(rel, id).await,
        None => {
            let mut disk = Disk::new(root.to_path_buf(), state_dir.to_path_buf());
            restore(&mut disk, rel, id.as_deref(), side)
        }
    }
}

/// How many versions this side keeps, and their bytes (for `lab3 status`).
pub fn usage(state_dir: &Path, side: &str) -> crate::protocol::VersionUsage {
    use super::retention::{Cap, Retention};
    let (count, bytes) = Retention::load(state_dir, u32::MAX, Cap::Bytes(u64::MAX)).usage();
    crate::protocol::VersionUsage {
        side: side.to_string(),
        count,
        bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_file_and_a_file_in_a_kept_folder_are_listed_newest_first() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path();
        let one = new_stamp_dir(&state.join("versions"));
        std::fs::create_dir_all(one.join("docs")).unwrap();
        std::fs::write(one.join("docs/a.txt"), "old").unwrap();
        record(&one.join("docs/a.txt"), "docs/a.txt", KeepWhy::Replaced).unwrap();
        let two = new_stamp_dir(&state.join("conflicts"));
        std::fs::create_dir_all(two.join("docs")).unwrap();
        std::fs::write(two.join("docs/a.txt"), "older!").unwrap();
        record(&two.join("docs"), "docs", KeepWhy::Deleted).unwrap();
        let got = list(state, "docs/a.txt", "a");
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].info.why, "deleted");
        assert_eq!(got[0].info.size, 6);
        assert_eq!(got[1].info.why, "replaced");
        assert!(got[1].info.id.starts_with("a-") && got[1].info.id.len() == 10);
        assert_ne!(got[0].info.id, got[1].info.id);
        assert_eq!(list(state, "docs/a.txt", "a")[1].info.id, got[1].info.id);
        assert!(list(state, "docs", "a").is_empty());
        assert!(stamp_ns(&one).is_some());
        // Every file's versions: these two, and no sidecar.
        std::fs::write(one.join("b.txt"), "b").unwrap();
        let every = infos(state, "", "a").unwrap();
        let paths: Vec<&str> = every.iter().map(|v| v.path.as_str()).collect();
        // (b.txt has no sidecar: kept when its stamp folder was made, first.)
        assert_eq!(paths, ["docs/a.txt", "docs/a.txt", "b.txt"], "{every:?}");
        assert!(infos(state, "../x", "a").is_err());
    }
}
