//! Changes from the peer: a file, a delete or a rename is applied at once
//! when this side's copy is the one the peer last knew; otherwise both
//! sides changed the path and `decide` picks the winner, the losing copy
//! kept under the state directory. Server A's gate may hold an update back.

use super::*;

impl Engine {
    pub(super) fn held(&self, path: &str) -> bool {
        self.cfg.gate.as_ref().is_some_and(|g| g.holds(path))
    }

    pub(super) fn hold(&self, update: HeldUpdate) {
        if let Some(g) = &self.cfg.gate {
            let (path, size) = match &update {
                HeldUpdate::Write(r) => (r.meta.path.clone(), Some(r.meta.size)),
                HeldUpdate::Delete { path, .. } => (path.clone(), None),
            };
            let what = if size.is_some() { "write" } else { "delete" };
            g.hold(update);
            self.announce(
                "queued",
                &self.inbound(),
                &path,
                size,
                format!("{what} held by a lock"),
            );
        }
    }

    pub(super) fn apply_file(&mut self, mut r: Received) {
        let p = r.meta.path.clone();
        if self.cfg.ignore.is_ignored_path(&p) {
            return;
        }
        if self.held(&p) {
            self.hold(HeldUpdate::Write(r));
            return;
        }
        // New at the peer and unknown here (every file of a first sync):
        // with nothing at the path, it is installed as is; the rename
        // itself checks that the path is free, so no stat is needed first.
        if r.base.is_none() && self.journal.local(&p).is_none() {
            match apply::install_new(&self.cfg.root, &p, r.temp) {
                Ok(None) => return self.installed(r.meta, r.hash, "created"),
                Ok(Some(temp)) => r.temp = temp, // something is there: look below
                Err(e) => return self.install_failed(p, r.meta.size, e),
            }
        }
        let local = self.stat(&p);
        let mut clean = match (&local, &r.base) {
            (None, None) => true,
            (Some(l), Some(b)) => l.same_state(b),
            _ => false,
        };
        if let Some(l) = local.as_ref().filter(|l| l.same_state(&r.meta)) {
            let mine = match self.journal.hash_of(l) {
                Some(h) => Some(h.to_string()),
                None => transfer::hash_file(&self.cfg.root, l),
            };
            if mine.is_none() || mine.as_deref() == Some(r.hash.as_str()) {
                self.journal.set_present(&r.meta, true);
                self.journal.set_hash(&r.meta, r.hash);
                return;
            }
            // Same size and time, different content: the peer's copy won the
            // tie (see `decide`); ours is kept, not destroyed.
            if !self.save_conflict(&p, "the peer's copy (same time, other content)") {
                return;
            }
            clean = true;
        } else if clean && local.as_ref().is_some_and(|l| self.unsynced_change(&p, l)) {
            // The peer knew our copy (it is the base) and its own won anyway:
            // a reconciliation after both sides changed the file apart.
            if !self.save_conflict(&p, "the peer's newer copy") {
                return;
            }
        }
        if !clean {
            let mine = self.local_state(&p, local.as_ref());
            let (w, _) = decide::winner(
                mine,
                State::Present {
                    meta: &r.meta,
                    dirty: true,
                    hash: None,
                },
                self.i_am_a(),
            );
            if w != Winner::Theirs {
                self.keep_mine(&p, local, Some(r.meta.clone()));
                return;
            }
            if local.is_some() && !self.save_conflict(&p, "the peer's newer copy") {
                return;
            }
        }
        let size = r.meta.size;
        let action = if local.is_some() {
            "updated"
        } else {
            "created"
        };
        match apply::install(&self.cfg.root, &p, r.temp) {
            Ok(()) => self.installed(r.meta, r.hash, action),
            Err(e) => self.install_failed(p, size, e),
        }
    }

    /// The peer's file is in place: record and announce it.
    fn installed(&mut self, meta: FileMeta, hash: String, action: &str) {
        self.journal.set_present(&meta, true);
        self.journal.set_hash(&meta, hash);
        let inbound = self.inbound();
        self.announce(action, &inbound, &meta.path, Some(meta.size), String::new());
    }

    /// The peer's file could not be put in place: say so, ask again later.
    fn install_failed(&mut self, path: String, size: u64, e: std::io::Error) {
        self.announce(
            "error",
            &self.inbound(),
            &path,
            Some(size),
            format!("cannot write: {e}; will retry"),
        );
        self.wants.set(path, Instant::now() + RETRY_AFTER);
    }

    pub(super) fn apply_delete(&mut self, path: String, deleted_ns: i64, base: Option<FileMeta>) {
        if self.cfg.ignore.is_ignored_path(&path) {
            return;
        }
        if self.held(&path) {
            self.hold(HeldUpdate::Delete { path, deleted_ns });
            return;
        }
        let Some(local) = self.stat(&path) else {
            self.journal.set_deleted(&path, deleted_ns, true);
            return;
        };
        let clean = base.as_ref().is_some_and(|b| local.same_state(b));
        if clean && self.unsynced_change(&path, &local) {
            // A change the peer never had loses to its later delete: kept.
            if !self.save_conflict(&path, "a later delete") {
                return;
            }
        } else if !clean {
            let (w, _) = decide::winner(
                State::Present {
                    meta: &local,
                    dirty: true,
                    hash: None,
                },
                State::Deleted { deleted_ns },
                self.i_am_a(),
            );
            if w != Winner::Theirs {
                self.keep_mine(&path, Some(local), None);
                return;
            }
            if !self.save_conflict(&path, "a later delete") {
                return;
            }
        }
        match apply::delete(&self.cfg.root, &path) {
            Ok(()) => {
                self.journal.set_deleted(&path, deleted_ns, true);
                self.announce("deleted", &self.inbound(), &path, None, String::new());
            }
            Err(e) => self.announce(
                "error",
                &self.inbound(),
                &path,
                None,
                format!("cannot delete: {e}"),
            ),
        }
    }

    pub(super) fn apply_rename(&mut self, from: String, meta: FileMeta, deleted_ns: i64) {
        let to = meta.path.clone();
        let from_meta = FileMeta {
            path: from.clone(),
            ..meta.clone()
        };
        let local_from = self.stat(&from);
        let local_to = self.stat(&to);
        let movable = !self.held(&from)
            && !self.held(&to)
            && !self.cfg.ignore.is_ignored_path(&to)
            && local_from.as_ref().is_some_and(|l| l.same_state(&meta))
            && local_to.is_none();
        if movable {
            match apply::rename(&self.cfg.root, &from, &to) {
                Ok(()) => {
                    self.journal.set_deleted(&from, deleted_ns, true);
                    self.journal.set_present(&meta, true);
                    self.announce(
                        "renamed",
                        &self.inbound(),
                        &to,
                        Some(meta.size),
                        format!("from {from}"),
                    );
                    return;
                }
                Err(e) => tracing::warn!("renaming {from} to {to}: {e}; fetching it instead"),
            }
        }
        self.apply_delete(from, deleted_ns, Some(from_meta));
        if !self.cfg.ignore.is_ignored_path(&to) {
            self.send(Outgoing::Msg(Message::Want {
                path: to,
                have: local_to,
            }));
        }
    }

    pub(super) fn answer_want(&mut self, path: String, have: Option<FileMeta>) {
        match self.stat(&path) {
            Some(meta) => self.send_file(meta, have),
            None => {
                if let Some(deleted_ns) = self.journal.get(&path).and_then(|r| r.deleted_ns) {
                    self.send(Outgoing::Msg(Message::Delete {
                        path,
                        deleted_ns,
                        base: have,
                    }));
                }
            }
        }
    }

    /// Whether our copy of `p` (on disk as `local`) holds a change the peer
    /// never had: the journal records this very state as not yet synced
    /// (made while the link was down, or found at start). A peer's update
    /// whose base is such a copy beat it in reconciliation: a true conflict.
    pub(super) fn unsynced_change(&self, p: &str, local: &FileMeta) -> bool {
        self.journal
            .get(p)
            .is_some_and(|r| !r.synced && r.local.as_ref().is_some_and(|l| l.same_state(local)))
    }

    /// This side's state of `p` for a conflict: the file, its tombstone, or nothing.
    pub(super) fn local_state<'a>(&self, p: &str, local: Option<&'a FileMeta>) -> State<'a> {
        match local {
            Some(meta) => State::Present {
                meta,
                dirty: true,
                hash: None,
            },
            None => match self.journal.get(p).and_then(|r| r.deleted_ns) {
                Some(deleted_ns) => State::Deleted { deleted_ns },
                None => State::Absent,
            },
        }
    }

    /// Our copy (or delete) won a conflict: say so and make sure the peer gets it.
    pub(super) fn keep_mine(&mut self, p: &str, local: Option<FileMeta>, theirs: Option<FileMeta>) {
        self.announce(
            "conflict",
            self.me(),
            p,
            local.as_ref().map(|l| l.size),
            format!("{}'s copy is newer and stays", self.me()),
        );
        match local {
            Some(l) => {
                self.journal.set_present(&l, false);
                self.send_file(l, theirs);
            }
            None => {
                if let Some(deleted_ns) = self.journal.get(p).and_then(|r| r.deleted_ns) {
                    self.send(Outgoing::Msg(Message::Delete {
                        path: p.to_string(),
                        deleted_ns,
                        base: theirs,
                    }));
                }
            }
        }
    }

    /// Moves our losing copy into the state directory; false if that failed
    /// (then nothing is replaced).
    pub(super) fn save_conflict(&self, p: &str, winner: &str) -> bool {
        match apply::keep_conflict(&self.cfg.root, &self.cfg.state_dir, p) {
            Ok(saved) => {
                self.announce(
                    "conflict",
                    &self.inbound(),
                    p,
                    None,
                    format!(
                        "{winner} wins; this side's copy kept at {}",
                        saved.display()
                    ),
                );
                true
            }
            Err(e) => {
                self.announce(
                    "error",
                    self.me(),
                    p,
                    None,
                    format!("cannot keep the losing copy: {e}; not replaced"),
                );
                false
            }
        }
    }
}
