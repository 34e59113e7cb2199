//! The core's state: one [`PathState`] per path and one [`LinkPhase`].
//! What must survive a restart is a [`Record`] (the journal's line); the
//! rest is rebuilt by the start-up scan and the next reconciliation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::{Entry, FileId, Holding, Kind, Version};
use super::wire::{Digest, FsTraits, InvEntry, OpId};

/// The version both sides last acknowledged, and what this side's disk
/// held then (its own precision and identity), to tell a change here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    pub version: Version,
    pub here: Option<Entry>,
}

/// What is in flight for a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// This side offered (or removed, or moved away) `sent`, read from
    /// `entry` (`None` for a remove), and waits for the peer's answer to `op`.
    Offered {
        op: OpId,
        sent: Holding,
        entry: Option<Entry>,
    },
    /// The peer queued (or could not store) our `sent`: not offered again
    /// while this side still holds `entry`.
    Held { sent: Holding, entry: Option<Entry> },
    /// An effect `op` runs on this side's disk; when it reports, the peer's
    /// `reply_to` (if any) is answered.
    Applying {
        op: OpId,
        reply_to: Option<OpId>,
        target: Holding,
    },
    /// A failed operation waits for [`super::Timer::Retry`].
    Retrying,
}

/// One update from the peer held by a lock (Server A).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    pub seq: u64,
    /// A version (content snapshot kept by the executor) or a delete.
    pub update: Holding,
    /// The peer's operation, answered once it is replayed.
    pub peer_op: OpId,
    /// What this side held when the update arrived, to tell at unlock
    /// whether it was edited since. `None` in entries queued before it
    /// was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Holding>,
}

/// A lock on a path (Server A) and its FIFO queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockState {
    pub queue: Vec<Queued>,
    pub next_seq: u64,
    /// An unlock is replaying the queue (resumed after a crash).
    #[serde(default)]
    pub unlocking: bool,
    /// Entries up to this `seq` arrived before a change of this side
    /// that the peer then acknowledged (an edit, a delete, a move away):
    /// the peer moved on past them, so the unlock reports them superseded.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub superseded_through: u64,
    /// What the replay's last applied update left on disk (after a crash,
    /// from the queue's cursor): while the path still holds it, A was not
    /// edited since, and the next update applies whatever its mtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed_here: Option<Entry>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Everything the core knows of one path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathState {
    /// What this side's disk holds, as last observed.
    pub local: Option<Entry>,
    /// When `local` last changed (to wait for quiet before sending).
    pub changed_ns: i64,
    /// When this side deleted it (a tombstone), while `base` still names it.
    pub deleted_ns: Option<i64>,
    /// Since when this side has seen the agreed path gone: the tombstone's
    /// age, by which it is forgotten (see [`super::Config::keep_deletes_ns`];
    /// `deleted_ns` is `None` where the delete's own time is unknown).
    pub gone_ns: Option<i64>,
    /// The version both sides last acknowledged; `None`: never agreed (or
    /// agreed that nothing is there, and then the path is forgotten).
    pub base: Option<Base>,
    // The four below are boxed: a path in sync holds none of them, and
    // inline they were about 390 of a state's 616 bytes (issue 15).
    /// What the peer said it holds, where that differs from `base`.
    pub peer: Option<Box<Holding>>,
    pub pending: Option<Box<Pending>>,
    pub lock: Option<Box<LockState>>,
    /// The peer's version an install is putting in place right now, kept
    /// in the journal until the install reports: a restart (kill -9)
    /// between the rename and the journal line of the new base finds it on
    /// disk and takes it as agreed, instead of as a change made here.
    pub landing: Option<Box<Version>>,
    /// The identity under which `Core::based` lists this path (its base's
    /// `here` when last recorded): kept in the state rather than in a map
    /// keyed by another copy of the path (about 90 bytes a path).
    pub based_id: Option<FileId>,
    /// This side offered the path as a new name (no agreed base) and has
    /// not heard how it ended: the peer may have stored it and taken it
    /// as agreed. Journalled before the offer goes, so that a side
    /// restarted after a kill -9 still knows it; a restarted side that
    /// no longer holds the name reports it deleted (seed 1107: reported
    /// as nothing, the peer's stored copy came back, resurrecting what
    /// the user had deleted). Cleared once the path has a base.
    pub offered: bool,
    /// The last number a lock of this path gave a queued update: the
    /// path's next lock numbers on from it (plain seeds 232588, 255346:
    /// a second lock numbered its queue from 1 again, and the replay of
    /// its #1 came after the first lock's #1; the real executor's queue
    /// cursor, were a crash to leave the first lock's behind, would take
    /// the new #1 for done).
    pub queued_through: u32,
}

impl PathState {
    /// A file of this side offered and not yet answered: the entry it was
    /// offered as (`None` when the offer did not know it).
    pub(super) fn file_in_flight(&self) -> Option<Option<&Entry>> {
        match self.pending.as_deref() {
            Some(Pending::Offered {
                sent: Holding::Present(v),
                entry,
                ..
            }) if v.kind == Kind::File => Some(entry.as_ref()),
            _ => None,
        }
    }

    /// The journal's view of this path.
    pub fn record(&self) -> Option<Record> {
        if self.base.is_none() && self.lock.is_none() && self.landing.is_none() && !self.offered {
            return None;
        }
        Some(self.as_record())
    }

    /// What of this state a journal line holds, whatever it holds (the
    /// journal keeps the states it read as states, and writes them back
    /// as it read them when it compacts).
    pub fn as_record(&self) -> Record {
        Record {
            base: self.base.clone(),
            deleted_ns: self.deleted_ns,
            gone_ns: self.gone_ns,
            lock: self.lock.clone(),
            landing: self.landing.clone(),
            offered: self.offered && self.base.is_none(),
            queued_through: self.queued_through,
        }
    }
}

impl From<Record> for PathState {
    /// The state of a path the journal kept, before the start-up scan.
    fn from(r: Record) -> PathState {
        PathState {
            deleted_ns: r.deleted_ns,
            gone_ns: r.gone_ns,
            base: r.base,
            lock: r.lock,
            landing: r.landing,
            offered: r.offered,
            queued_through: r.queued_through,
            ..PathState::default()
        }
    }
}

/// [`PathState::holding`] of a state as the core's map holds it (boxed,
/// see `Core::paths`), to pass where a function is taken.
#[allow(clippy::borrowed_box)]
pub fn holding_of(st: &Box<PathState>) -> Holding {
    st.holding()
}

/// What survives a restart of one path: the journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<Base>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_ns: Option<i64>,
    /// See [`PathState::gone_ns`] (journals of earlier builds have none:
    /// their tombstones' age counts from the first start that reads them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone_ns: Option<i64>,
    /// Boxed, as in [`PathState`] (and `landing` too): nearly every
    /// record has neither, and inline they made a record 344 bytes, the
    /// size of every [`super::Effect`] (a first start emits one effect of
    /// a record per path, all in one `Vec`; issue 15). Written as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<Box<LockState>>,
    /// See [`PathState::landing`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landing: Option<Box<Version>>,
    /// See [`PathState::offered`]. (Absent in journals written before it.)
    #[serde(default, skip_serializing_if = "is_false")]
    pub offered: bool,
    /// See [`PathState::queued_through`]. (Absent in journals written
    /// before it, and where no lock queued anything.)
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub queued_through: u32,
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

pub(super) fn is_false(b: &bool) -> bool {
    !*b
}

/// One path as this side's inventory described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub local: Option<Entry>,
    pub now: Holding,
    pub changed: bool,
    /// See [`super::InvEntry::base`].
    pub base: Option<super::Version>,
    /// See [`super::InvEntry::offered`].
    pub offered: bool,
}

/// The link, as the core sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LinkPhase {
    #[default]
    Down,
    /// Up; digests, then (unless they agree) inventories and the hashes of
    /// look-alikes being exchanged. `mine`: the digest this side sent;
    /// `theirs`: the peer's inventory so far.
    Reconciling {
        peer: FsTraits,
        mine: Digest,
        theirs: BTreeMap<String, InvEntry>,
        /// The peer's inventory is complete.
        listed: bool,
        /// This side sent its `Hashes`.
        hashes_sent: bool,
        /// The peer's `Hashes`, once received.
        their_hashes: Option<BTreeMap<String, String>>,
        /// What this side's inventory said of each path (its entry then,
        /// as the peer saw it, and whether it had changed): both sides
        /// decide on the two inventories, never on what changed here
        /// since (the peer cannot see that), so they reach one answer.
        sent: BTreeMap<String, Sent>,
    },
    /// Reconciled: changes are sent as they happen.
    Live { peer: FsTraits },
}

/// Which side answered a `Stored`: this side (holding `local` at the
/// path), or the peer.
pub(super) enum Answered {
    Here { local: Option<Entry> },
    ByPeer,
}

impl LinkPhase {
    /// The peer's file system, while the link is up.
    pub fn peer(&self) -> Option<FsTraits> {
        match self {
            LinkPhase::Down => None,
            LinkPhase::Reconciling { peer, .. } | LinkPhase::Live { peer } => Some(*peer),
        }
    }

    /// A `Stored` at `path` (the answering side holds `now` there,
    /// agreed) answered during a reconciliation before the answering
    /// side's hashes: both sides see it before those hashes, so before
    /// deciding, and both decide on it instead of what that side's
    /// inventory said; after them, on the inventories as they were. (The
    /// one place that decides it for both ends: strict seed 61891, B
    /// stored A's offer of `x:y` after its inventory went without it and
    /// took the copy for a new name of its own, offered back to A, an
    /// echo; NFD seed 38421, the same for a lock's replay answered around
    /// it.)
    pub(super) fn answered(&mut self, by: Answered, path: &str, now: Holding) {
        let LinkPhase::Reconciling {
            theirs,
            hashes_sent,
            their_hashes,
            sent,
            ..
        } = self
        else {
            return;
        };
        match by {
            Answered::Here { local } if !*hashes_sent => {
                let local = local.filter(|_| now.version().is_some());
                let entry = Sent {
                    local,
                    now,
                    changed: false,
                    base: None,
                    offered: false,
                };
                sent.insert(path.to_string(), entry);
            }
            Answered::ByPeer if their_hashes.is_none() => {
                let entry = InvEntry {
                    path: path.to_string(),
                    now,
                    changed: false,
                    base: None,
                    offered: false,
                };
                theirs.insert(path.to_string(), entry);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    /// A big tree holds one state per path, nearly all of them in sync:
    /// what such a state does not use stays out of it (616 bytes with
    /// `pending`, `lock`, `peer` and `landing` inline; 280 without; 304
    /// with the tombstone's age `gone_ns` and the `offered` flag; 280 with
    /// the three hashes shared, 16 bytes each instead of a 24-byte
    /// `String`; issue 15).
    #[test]
    fn a_state_in_sync_is_small() {
        let size = std::mem::size_of::<super::PathState>();
        eprintln!("PathState: {size} bytes");
        assert!(size <= 280, "PathState: {size} bytes");
    }

    /// A journal record, and so every effect (`Effect::Record` holds one),
    /// leaves a lock and a landing out of line: a record was 344 bytes with
    /// them inline and an effect 368, which a first start's `Vec` of one
    /// effect per path paid for each (168 and 224 now).
    #[test]
    fn a_record_is_small() {
        let record = std::mem::size_of::<super::Record>();
        let effect = std::mem::size_of::<super::super::Effect>();
        eprintln!("Record: {record} bytes, Effect: {effect} bytes");
        assert!(record <= 168, "Record: {record} bytes");
        assert!(effect <= 224, "Effect: {effect} bytes");
    }
}
