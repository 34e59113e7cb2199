//! Changes made in this side's folder: hinted paths, once due, are stat'ed
//! and compared with the journal; what differs is recorded and, with a
//! reconciled link, sent as a file, a delete or a rename.

use super::*;

impl Engine {
    pub(super) fn process_due(&mut self) {
        let now = Instant::now();
        let due = self.pending.take_due(now);
        if !due.is_empty() {
            self.process_paths(due);
        }
        for p in self.wants.take_due(now) {
            let have = self.stat(&p);
            self.send(Outgoing::Msg(Message::Want { path: p, have }));
        }
    }

    /// Looks at `paths` on disk and records (and, with a reconciled link,
    /// sends) whatever differs from the journal.
    pub(super) fn process_paths(&mut self, paths: Vec<String>) {
        let send = self.link.as_ref().is_some_and(|l| l.reconciled);
        let mut files = BTreeMap::new();
        for p in paths {
            self.expand(p, &mut files);
        }
        let mut changed = Vec::new();
        let mut vanished = Vec::new();
        for (p, seen) in files {
            let disk = match seen {
                Seen::On(disk) => disk,
                Seen::Unknown => self.stat(&p),
            };
            let known = self.journal.local(&p).cloned();
            match (disk, known) {
                (Some(d), Some(k)) if d.same_state(&k) => {}
                (Some(d), k) => changed.push((d, k)),
                (None, Some(k)) => vanished.push(k),
                (None, None) => {}
            }
        }
        let now = now_ns();
        let new_files: Vec<FileMeta> = changed
            .iter()
            .filter(|(_, k)| k.is_none())
            .map(|(d, _)| d.clone())
            .collect();
        // A new path with the metadata of one that just vanished: a rename.
        let mut renames = Vec::new();
        let mut writes = Vec::new();
        for (d, k) in changed {
            if k.is_none() {
                if let Some(i) = rename_source(&d, &vanished, &new_files) {
                    renames.push((vanished.swap_remove(i), d));
                    continue;
                }
            }
            writes.push((d, k));
        }
        // Deletes go first: a file may be making room for a folder of the
        // same name (or a folder for a file), which the peer can only
        // create once the old one is gone.
        for v in vanished {
            self.journal.set_deleted(&v.path, now, send);
            if send {
                self.announce("deleted", &self.outbound(), &v.path, None, String::new());
                self.send(Outgoing::Msg(Message::Delete {
                    path: v.path.clone(),
                    deleted_ns: now,
                    base: Some(v),
                }));
            }
        }
        for (v, d) in renames {
            self.journal.set_deleted(&v.path, now, send);
            self.journal.set_present(&d, send);
            if send {
                self.announce(
                    "renamed",
                    &self.outbound(),
                    &d.path,
                    Some(d.size),
                    format!("from {}", v.path),
                );
                self.send(Outgoing::Msg(Message::Rename {
                    from: v.path,
                    meta: d,
                    deleted_ns: now,
                }));
            }
        }
        for (d, k) in writes {
            // Synced only once the peer has it (see `sent`).
            self.journal.set_present(&d, false);
            if send {
                let base = self.aborted_base.remove(&d.path).unwrap_or(k);
                self.send_file(d, base);
            }
        }
    }

    /// A hinted path may be a folder (created, moved in, moved away or
    /// deleted): stand in the files below it, on disk and in the journal.
    /// What the one stat here (or the folder's scan) saw is kept, so that
    /// no path is stat'ed twice.
    pub(super) fn expand(&mut self, p: String, out: &mut BTreeMap<String, Seen>) {
        let Ok(full) = paths::resolve(&self.cfg.root, &p) else {
            return;
        };
        match std::fs::symlink_metadata(&full) {
            Ok(md) if md.is_dir() => {
                // A file of that name that became a folder: it vanished.
                if self.journal.local(&p).is_some() {
                    out.insert(p.clone(), Seen::On(None));
                }
                match scan::scan_dir(&full, &self.cfg.ignore.below(&p)) {
                    Ok(scan) => {
                        self.warn_skipped(&scan);
                        for mut f in scan.files {
                            f.path = format!("{p}/{}", f.path);
                            out.insert(f.path.clone(), Seen::On(Some(f)));
                        }
                    }
                    Err(e) => tracing::warn!("scanning {}: {e}", full.display()),
                }
                self.expand_known(&p, out);
            }
            Ok(md) if md.file_type().is_symlink() => {
                if self.warned.insert(full.clone()) {
                    tracing::warn!("skipping {}: symbolic link, not followed", full.display());
                }
                out.insert(p, Seen::On(None));
            }
            looked => {
                // Not known as a file here: it may have been a folder.
                if self.journal.local(&p).is_none() {
                    self.expand_known(&p, out);
                }
                let seen = match looked {
                    Ok(md) if md.is_file() => Seen::On(Some(FileMeta::from_fs(p.clone(), &md))),
                    Ok(_) => Seen::On(None), // a socket, a fifo: not synced
                    Err(e) if scan::is_absent(&e) => Seen::On(None),
                    Err(_) => Seen::Unknown, // stat again, to report why
                };
                out.insert(p, seen);
            }
        }
    }

    pub(super) fn expand_known(&self, dir: &str, out: &mut BTreeMap<String, Seen>) {
        for p in self.journal.paths_under(dir) {
            out.entry(p.clone()).or_insert(Seen::Unknown);
        }
    }
}

/// What [`Engine::expand`] found of a path on disk.
pub(super) enum Seen {
    /// A regular file with this metadata, or (`None`) none.
    On(Option<FileMeta>),
    /// Not looked at yet.
    Unknown,
}

/// Which vanished file `new` was renamed from, judged by metadata (size,
/// mtime, mode), if that is unambiguous. Copies with equal metadata cannot
/// be told apart, and a wrong pairing would make the peer move the wrong
/// content under the new name while both journals believe they agree; so
/// among several look-alikes only a unique one with the same file name (a
/// moved folder) counts, and otherwise the file is sent whole.
fn rename_source(new: &FileMeta, vanished: &[FileMeta], new_files: &[FileMeta]) -> Option<usize> {
    let alike =
        |a: &FileMeta| a.size == new.size && a.mtime_ns == new.mtime_ns && a.mode == new.mode;
    let name = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
    let candidates: Vec<usize> = (0..vanished.len())
        .filter(|&i| alike(&vanished[i]))
        .collect();
    let rivals = new_files.iter().filter(|n| alike(n)).count();
    if candidates.len() == 1 && rivals == 1 {
        return Some(candidates[0]);
    }
    let mine = name(&new.path);
    let same_name: Vec<usize> = candidates
        .into_iter()
        .filter(|&i| name(&vanished[i].path) == mine)
        .collect();
    let rivals = new_files
        .iter()
        .filter(|n| alike(n) && name(&n.path) == mine)
        .count();
    (same_name.len() == 1 && rivals == 1).then(|| same_name[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str, size: u64) -> FileMeta {
        FileMeta {
            path: path.into(),
            size,
            mtime_ns: 5,
            mode: 0o644,
        }
    }

    #[test]
    fn a_rename_is_only_guessed_when_unambiguous() {
        let new = [f("c", 1), f("d", 1)];
        // One look-alike on each side: a rename.
        assert_eq!(rename_source(&new[0], &[f("a", 1)], &new[..1]), Some(0));
        // Two look-alikes with other names: no guess, the file is sent.
        assert_eq!(rename_source(&new[0], &[f("a", 1), f("b", 1)], &new), None);
        assert_eq!(rename_source(&new[0], &[f("a", 1)], &new), None);
        // A moved folder: the same file name decides.
        let moved = [f("y/a", 1), f("y/b", 1)];
        let gone = [f("x/a", 1), f("x/b", 1)];
        assert_eq!(rename_source(&moved[1], &gone, &moved), Some(1));
        // Different metadata is never a rename.
        assert_eq!(rename_source(&f("c", 2), &[f("a", 1)], &[f("c", 2)]), None);
    }
}
