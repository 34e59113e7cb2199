//! Server A's unlock: the gate lets go of a path and its held updates are
//! applied in arrival order, one engine step, each applied or superseded.

use super::*;

impl Engine {
    /// Server A's unlock: the gate lets go of `path`, then its held updates
    /// are applied in order. All in one step, so no update of the peer's
    /// can slip in between.
    pub(super) fn unlock(&mut self, path: &str) -> anyhow::Result<Vec<AppliedUpdate>> {
        let Some(gate) = self.cfg.gate.clone() else {
            anyhow::bail!("this server holds no locks");
        };
        let updates = gate.begin_unlock(path)?;
        let report = self.replay(updates);
        gate.end_unlock(path);
        Ok(report)
    }

    /// Applies held updates in order; an update older than the current copy
    /// is superseded, not applied.
    pub(super) fn replay(&mut self, updates: Vec<QueuedUpdate>) -> Vec<AppliedUpdate> {
        let mut report = Vec::new();
        let mut touched = BTreeSet::new();
        for u in updates {
            let (seq, path, mtime_ns, size, action) = match &u {
                QueuedUpdate::Write { seq, meta, .. } => {
                    (*seq, meta.path.clone(), meta.mtime_ns, meta.size, "write")
                }
                QueuedUpdate::Delete {
                    seq,
                    path,
                    deleted_ns,
                } => (*seq, path.clone(), *deleted_ns, 0, "delete"),
            };
            touched.insert(path.clone());
            let local = self.stat(&path);
            let superseded = local.as_ref().is_some_and(|l| l.mtime_ns > mtime_ns);
            let outcome = if superseded {
                if let QueuedUpdate::Write { file, .. } = &u {
                    let _ = std::fs::remove_file(file);
                }
                "superseded"
            } else {
                match self.replay_one(&u) {
                    Ok(()) => "applied",
                    Err(e) => {
                        self.announce(
                            "error",
                            &self.inbound(),
                            &path,
                            Some(size),
                            format!("replay: {e}"),
                        );
                        "failed"
                    }
                }
            };
            let detail = format!("queued {action} #{seq}");
            self.announce(
                outcome,
                &self.inbound(),
                &path,
                (action == "write").then_some(size),
                detail,
            );
            report.push(AppliedUpdate {
                seq,
                action: action.into(),
                size,
                mtime_ns,
                outcome: outcome.into(),
            });
        }
        // Afterwards the file syncs as any other.
        let now = Instant::now();
        for p in touched {
            self.pending.set(p, now);
        }
        report
    }

    pub(super) fn replay_one(&mut self, u: &QueuedUpdate) -> std::io::Result<()> {
        match u {
            QueuedUpdate::Write { meta, file, .. } => {
                if !file.exists() {
                    // Consumed by a replay that a crash interrupted: already in place.
                    return Ok(());
                }
                crate::meta::set_times_and_mode(file, meta.mtime_ns, meta.mode)?;
                let target =
                    paths::resolve(&self.cfg.root, &meta.path).map_err(std::io::Error::other)?;
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                if std::fs::rename(file, &target).is_err() {
                    // The queue lives on another filesystem: copy to a temp file here, then rename.
                    let tmp = tempfile::Builder::new()
                        .prefix(crate::ignore::TEMP_PREFIX)
                        .tempfile_in(&self.handle.tmp_dir)?;
                    std::fs::copy(file, tmp.path())?;
                    crate::meta::set_times_and_mode(tmp.path(), meta.mtime_ns, meta.mode)?;
                    tmp.persist(&target).map_err(|e| e.error)?;
                    let _ = std::fs::remove_file(file);
                }
                self.journal.set_present(meta, true);
            }
            QueuedUpdate::Delete {
                path, deleted_ns, ..
            } => {
                apply::delete(&self.cfg.root, path)?;
                self.journal.set_deleted(path, *deleted_ns, true);
            }
        }
        Ok(())
    }
}
