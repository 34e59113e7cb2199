//! Deletes are remembered for a stated time, then forgotten.
//!
//! A delete made while the peer is away is kept as a tombstone (the agreed
//! base of a path this side no longer holds), so that the peer's unchanged
//! copy does not come back at reconnect. Kept for ever, tombstones of a
//! peer that never returns would grow without end; so, as Syncthing does
//! (about 15 months), a tombstone older than `Config::keep_deletes_ns` is
//! forgotten. The risk that remains, written down in the README: a peer
//! away longer than that brings its copy back, as a new file.
//!
//! A tombstone's age counts from when this side first saw the path gone
//! (`PathState::gone_ns`, journalled then), not from `deleted_ns`, which is
//! unknown for a delete made while this server was not running.

use super::{Core, Direction};

impl Core {
    /// Forgets the tombstones older than `keep_deletes_ns`, while the
    /// peer is away (with the link up a delete goes across in seconds; a
    /// tombstone kept then is one in flight, or queued behind a lock at
    /// the peer). Run after every scan: at start and at each rescan.
    pub(super) fn forget_old_deletes(&mut self) {
        if self.link.peer().is_some() {
            return;
        }
        let cutoff = self.now_ns.saturating_sub(self.cfg.keep_deletes_ns);
        let mut old = Vec::new();
        let mut unaged = Vec::new();
        for (p, s) in &self.paths {
            let tombstone = s.local.is_none()
                && s.base.is_some()
                && s.pending.is_none()
                && s.lock.is_none()
                && s.landing.is_none();
            if !tombstone {
                continue;
            }
            match s.gone_ns {
                Some(t) if t <= cutoff => old.push(p.clone()),
                Some(_) => {}
                None => unaged.push(p.clone()),
            }
        }
        // Made tombstones without passing `changed` (the files of a
        // vanished folder): their age starts now.
        for p in unaged {
            if let Some(st) = self.paths.get_mut(&p) {
                st.gone_ns = Some(self.now_ns);
            }
            self.record(&p);
        }
        let days = self.cfg.keep_deletes_ns / 86_400_000_000_000;
        for p in old {
            self.forget(&p);
            let detail = format!(
                "its delete is older than {days} days (--keep-deletes): the peer's copy, if it still holds one, comes back"
            );
            self.announce("forgotten", Direction::Here, &p, None, detail);
        }
    }
}
