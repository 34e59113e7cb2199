//! Reconciliation on every (re)connection: both sides send a digest of
//! their inventory; when the two are equal and both sides believe the peer
//! holds everything, that is the end of it. Otherwise both send their
//! inventory, then the hashes of look-alike paths, and each carries out its
//! half of the same plan (`decide::plan`): push what it wins, delete what a
//! later delete beat. Until then, local changes are recorded, not sent.

use super::*;

impl Engine {
    pub(super) fn link_up(
        &mut self,
        id: u64,
        out: mpsc::UnboundedSender<Outgoing>,
        clock_skew_ns: i64,
    ) {
        tracing::info!("link to server {} is up; reconciling", self.other());
        if clock_skew_ns.abs() > 1_000_000_000 {
            tracing::warn!(
                "server {}'s clock differs from ours by {:.1} s; \"most recent wins\" compares their times",
                self.other(),
                clock_skew_ns as f64 / 1e9
            );
        }
        self.link = Some(Link {
            id,
            out,
            my_digest: None,
            peer_digest: None,
            reconciled: false,
            inventory_sent: false,
            peer_inventory: None,
            hashes_sent: false,
            peer_hashes: None,
        });
        self.sending = 0;
        self.aborted_base.clear();
        {
            let mut st = self.handle.status.lock().unwrap();
            st.up = true;
            st.since_ns = Some(now_ns());
            st.clock_skew_ns = Some(clock_skew_ns);
            st.sending = 0;
        }
        if self.watching && !self.rescan_flag.is_raised() {
            // The watcher has kept the journal current (and raises the flag
            // if it lost events): look at what it hinted, no full scan.
            let hinted = self
                .pending
                .take_due(Instant::now() + Duration::from_secs(3600));
            if !hinted.is_empty() {
                self.process_paths(hinted);
            }
            self.send_digest();
        } else {
            self.start_scan(true);
        }
    }

    /// Sends the digest of this side's inventory (the first step).
    pub(super) fn send_digest(&mut self) {
        let inventory = self.journal.inventory();
        let digest = Digest {
            digest: digest_of(&inventory),
            entries: inventory.len() as u64,
            synced: self.journal.all_synced(),
        };
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if link.my_digest.is_some() || link.inventory_sent || link.reconciled {
            return;
        }
        let _ = link.out.send(Outgoing::Msg(Message::InventoryDigest {
            digest: digest.digest.clone(),
            entries: digest.entries,
            synced: digest.synced,
        }));
        link.my_digest = Some((digest, inventory, self.journal.generation()));
        self.compare_digests();
    }

    /// Both digests known: equal and synced on both sides means the trees
    /// agree (this side's inventory as digested stands for the peer's, so
    /// a change made since is still pushed); anything else, inventories.
    pub(super) fn compare_digests(&mut self) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        let (Some((mine, ..)), Some(theirs)) = (&link.my_digest, &link.peer_digest) else {
            return;
        };
        if link.reconciled || link.inventory_sent {
            return;
        }
        let agree = mine == theirs && mine.synced;
        // The inventory kept with the digest is let go either way.
        let (digest, inventory, generation) = link.my_digest.take().expect("checked above");
        if agree {
            if generation == self.journal.generation() {
                // Nothing recorded since: every path agrees as it is.
                self.reconciled(digest.entries as usize, 0, 0, " (digests agree)");
            } else {
                self.reconcile(inventory);
            }
        } else {
            self.send_inventory();
        }
    }

    /// Sends this side's full inventory (when the digests differ).
    pub(super) fn send_inventory(&mut self) {
        let inventory = self.journal.inventory();
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if link.inventory_sent {
            return;
        }
        link.inventory_sent = true;
        let _ = link.out.send(Outgoing::Inventory(inventory));
        if link.peer_inventory.is_some() {
            self.compare_contents();
        }
    }

    /// Both inventories are known. Paths whose two copies have the same
    /// size, mtime and mode, one of them changed since the last sync, and a
    /// content hash unknown on either side may still differ: hash this side's
    /// copies of those (up to [`HASH_LIMIT`] bytes each) and send them. Both
    /// sides always send `hashes` (maybe empty) and plan only once they have
    /// the peer's, so they plan from the same facts. In-sync trees and a
    /// copy into an empty peer hash nothing.
    pub(super) fn compare_contents(&mut self) {
        let Some(theirs) = self.link.as_ref().and_then(|l| l.peer_inventory.as_ref()) else {
            return;
        };
        let mut look_alikes = Vec::new();
        for t in theirs {
            let InventoryEntry::Present {
                meta: tm,
                dirty: td,
                hash: th,
            } = t
            else {
                continue;
            };
            let Some(rec) = self.journal.get(&tm.path) else {
                continue;
            };
            let Some(mine) = rec.local.as_ref() else {
                continue;
            };
            if mine.same_state(tm)
                && (*td || !rec.synced)
                && !(th.is_some() && rec.hash.is_some())
                && mine.size <= HASH_LIMIT
            {
                look_alikes.push(mine.clone());
            }
        }
        let todo: Vec<FileMeta> = look_alikes
            .iter()
            .filter(|m| self.journal.hash_of(m).is_none())
            .cloned()
            .collect();
        let paths: Vec<String> = look_alikes.into_iter().map(|m| m.path).collect();
        if todo.is_empty() {
            self.send_hashes(paths);
            return;
        }
        let root = self.cfg.root.clone();
        let events = self.handle.events.clone();
        tokio::task::spawn_blocking(move || {
            let hashes = todo
                .into_iter()
                .filter_map(|m| transfer::hash_file(&root, &m).map(|h| (m, h)))
                .collect();
            let _ = events.send(Event::Hashed { hashes, paths });
        });
    }

    pub(super) fn send_hashes(&mut self, paths: Vec<String>) {
        let hashes: BTreeMap<String, String> = paths
            .into_iter()
            .filter_map(|p| {
                let h = self.journal.get(&p)?.hash.clone()?;
                Some((p, h))
            })
            .collect();
        let Some(link) = self.link.as_mut() else {
            return;
        };
        link.hashes_sent = true;
        let _ = link.out.send(Outgoing::Hashes(hashes));
        self.plan_if_ready();
    }

    /// Runs the plan once the peer's inventory and hashes are in and ours are out.
    pub(super) fn plan_if_ready(&mut self) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if !(link.inventory_sent && link.hashes_sent && link.peer_hashes.is_some()) {
            return;
        }
        let (Some(mut theirs), Some(hashes)) =
            (link.peer_inventory.take(), link.peer_hashes.take())
        else {
            return;
        };
        for e in &mut theirs {
            if let InventoryEntry::Present { meta, hash, .. } = e {
                if let Some(h) = hashes.get(&meta.path) {
                    *hash = Some(h.clone());
                }
            }
        }
        self.reconcile(theirs);
    }

    /// Both inventories are known: carry out this side's part of the plan.
    pub(super) fn reconcile(&mut self, theirs: Vec<InventoryEntry>) {
        let theirs: HashMap<String, InventoryEntry> = theirs
            .into_iter()
            .filter(|e| !self.cfg.ignore.is_ignored_path(e.path()))
            .map(|e| (e.path().to_string(), e))
            .collect();
        let mine: HashMap<String, InventoryEntry> = self
            .journal
            .inventory()
            .into_iter()
            .map(|e| (e.path().to_string(), e))
            .collect();
        let all: BTreeSet<&String> = mine.keys().chain(theirs.keys()).collect();
        let (mut pushed, mut deleted, mut agreed) = (0, 0, 0);
        for p in all {
            match decide::plan(mine.get(p), theirs.get(p), self.i_am_a()) {
                Plan::Agree => {
                    agreed += 1;
                    self.journal.set_synced(p);
                }
                Plan::Push { base, tie } => {
                    let Some(meta) = self.journal.local(p).cloned() else {
                        continue;
                    };
                    if tie {
                        self.announce(
                            "conflict",
                            self.me(),
                            p,
                            Some(meta.size),
                            format!("same time, different copies: {}'s wins", self.me()),
                        );
                    }
                    pushed += 1;
                    self.send_file(meta, base);
                }
                Plan::DeleteLocal { deleted_ns } => {
                    deleted += 1;
                    let base = self.journal.local(p).cloned();
                    self.apply_delete(p.clone(), deleted_ns, base);
                }
                Plan::AwaitPeer => {}
            }
        }
        self.reconciled(agreed, pushed, deleted, "");
    }

    /// Reconciliation is over: changes flow as they happen from now on.
    fn reconciled(&mut self, agreed: usize, pushed: usize, deleted: usize, how: &str) {
        tracing::info!(
            "reconciled with server {}{how}: {agreed} in agreement, {pushed} to send, {deleted} deleted here",
            self.other()
        );
        if let Some(l) = self.link.as_mut() {
            l.reconciled = true;
        }
        self.handle.status.lock().unwrap().last_reconcile_ns = Some(now_ns());
    }
}

/// The digest of an inventory: BLAKE3 over each entry's path and state
/// (size, mtime and mode of a file; a tombstone's mark, not its time, as
/// two deletes agree whenever they happened), in path order.
fn digest_of(inventory: &[InventoryEntry]) -> String {
    let mut h = blake3::Hasher::new();
    for e in inventory {
        h.update(&(e.path().len() as u64).to_le_bytes());
        h.update(e.path().as_bytes());
        match e {
            InventoryEntry::Present { meta, .. } => {
                h.update(&[1]);
                h.update(&meta.size.to_le_bytes());
                h.update(&meta.mtime_ns.to_le_bytes());
                h.update(&meta.mode.to_le_bytes());
            }
            InventoryEntry::Deleted { .. } => {
                h.update(&[2]);
            }
        }
    }
    h.finalize().to_hex().to_string()
}
