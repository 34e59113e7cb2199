//! Scans of this side's folder: the one at start, which records silently
//! what changed while the server was down (deletes dated so that they never
//! beat a later edit elsewhere), and the safety-net rescans, whose findings
//! are only hints that are stat'ed again.

use super::*;

impl Engine {
    /// At start: record silently what changed while the server was down.
    pub(super) fn startup_scan(&mut self) -> anyhow::Result<()> {
        let scan = scan::scan_dir(&self.cfg.root, &self.cfg.ignore)?;
        self.warn_skipped(&scan);
        // Paths the rules ignore now (a rule added since the last run) were
        // not deleted: forget them, so that no delete reaches the peer.
        let ignored: Vec<String> = (self.journal.inventory().iter())
            .map(|e| e.path())
            .filter(|p| self.cfg.ignore.is_ignored_path(p))
            .map(str::to_string)
            .collect();
        for p in ignored {
            self.journal.forget(&p);
        }
        let known = self.journal.present().count();
        if known > 0 && scan.files.is_empty() && !self.cfg.confirm_empty {
            tracing::warn!(
                "{} is empty, but it held {known} files at the last sync; not propagating those deletes \
                 (an unmounted disk?). The peer's copies will come back; to delete them everywhere instead, \
                 restart with --confirm-empty",
                self.cfg.root.display()
            );
            let paths: Vec<String> = self.journal.present().map(|m| m.path.clone()).collect();
            for p in paths {
                self.journal.forget(&p);
            }
        } else {
            let on_disk: HashSet<&str> = scan.files.iter().map(|f| f.path.as_str()).collect();
            for f in &scan.files {
                if !self.journal.local(&f.path).is_some_and(|j| j.same_state(f)) {
                    self.journal.set_present(f, false);
                }
            }
            let now = now_ns();
            let last_alive = self.journal.last_alive_ns().unwrap_or(now);
            let gone: Vec<(String, i64)> = self
                .journal
                .present()
                .filter(|m| !on_disk.contains(m.path.as_str()))
                .map(|m| {
                    (
                        m.path.clone(),
                        deleted_while_down_ns(last_alive, m.mtime_ns, now),
                    )
                })
                .collect();
            for (p, deleted_ns) in gone {
                self.journal.set_deleted(&p, deleted_ns, false);
            }
        }
        self.journal.alive();
        self.journal.flush();
        Ok(())
    }

    pub(super) fn start_scan(&mut self, reconcile: bool) {
        if !reconcile {
            if self.scanning {
                return;
            }
            self.scanning = true;
        }
        let root = self.cfg.root.clone();
        let ignore = self.cfg.ignore.clone();
        let events = self.handle.events.clone();
        tokio::task::spawn_blocking(move || {
            let scan = scan::scan_dir(&root, &ignore);
            let _ = events.send(Event::Scanned { scan, reconcile });
        });
    }

    pub(super) fn scanned(&mut self, scan: std::io::Result<Scan>, reconcile: bool) {
        if !reconcile {
            self.scanning = false;
        }
        match scan {
            Ok(scan) => {
                self.warn_skipped(&scan);
                // The scan is only a hint: each differing path is stat'ed again now.
                let on_disk: HashSet<&str> = scan.files.iter().map(|f| f.path.as_str()).collect();
                let mut differ: Vec<String> = scan
                    .files
                    .iter()
                    .filter(|f| !self.journal.local(&f.path).is_some_and(|j| j.same_state(f)))
                    .map(|f| f.path.clone())
                    .collect();
                differ.extend(
                    self.journal
                        .present()
                        .filter(|m| !on_disk.contains(m.path.as_str()))
                        .map(|m| m.path.clone()),
                );
                if !differ.is_empty() {
                    tracing::debug!("rescan found {} changed paths", differ.len());
                    self.process_paths(differ);
                }
            }
            Err(e) => tracing::error!("scanning {}: {e}", self.cfg.root.display()),
        }
        if reconcile {
            self.send_digest();
        }
    }

    pub(super) fn warn_skipped(&mut self, scan: &Scan) {
        for (p, why) in &scan.skipped {
            if self.warned.insert(p.clone()) {
                tracing::warn!("skipping {}: {why}", p.display());
            }
        }
    }
}

/// When a file found missing at start was deleted, as best we can tell:
/// after we last saw it, so after both the last time this server was known
/// to run (`last_alive`, marked every rescan) and the file's last
/// modification (it was seen with that mtime), and before now.
///
/// The mtime bound matters: a file written in the seconds between the last
/// alive mark and a crash, then deleted while the server was down, would
/// otherwise get a tombstone older than its own mtime, lose against the
/// peer's copy of that very version, and come back.
fn deleted_while_down_ns(last_alive: i64, mtime_ns: i64, now: i64) -> i64 {
    last_alive.max(mtime_ns.saturating_add(1)).min(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delete_found_at_start_is_dated_after_the_files_last_change() {
        // Written after the last alive mark: the delete came later still.
        assert_eq!(deleted_while_down_ns(100, 150, 1000), 151);
        // Written before it: the mark is the better bound.
        assert_eq!(deleted_while_down_ns(100, 50, 1000), 100);
        // An mtime in the future: no later than now.
        assert_eq!(deleted_while_down_ns(100, 5000, 1000), 1000);
        assert_eq!(deleted_while_down_ns(100, i64::MAX, 1000), 1000);
    }
}
