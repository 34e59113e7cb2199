//! What must hold, watched while a run goes (locked paths untouched, queue
//! entries replayed once and in order, nothing received sent back) and
//! checked once it is quiet (both folders equal, every version a user
//! wrote current or kept, nothing sync destroyed without keeping it).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use common::sync::core::model::coarse;
use common::sync::core::{Announcement, Entry, Kind, PeerMsg, Replayed, Side};

use crate::fake_fs::{is_under, FakeFs};
use crate::known;
use crate::world::World;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockPhase {
    /// No update from B may reach the path.
    Locked,
    /// The queue is being replayed.
    Unlocking,
}

pub fn ix(s: Side) -> usize {
    match s {
        Side::A => 0,
        Side::B => 1,
    }
}

#[derive(Default)]
pub struct Tracker {
    pub violations: Vec<String>,
    /// Files a writer has open: when it last wrote (its side's clock) and
    /// what the file held after that write. (Content, not the name alone:
    /// another user's whole write through a hard link or after a rename
    /// replaces what the writer left; that content is not partial.)
    pub writing: BTreeMap<(usize, String), (i64, String)>,
    /// Locks A's core has taken (by the inputs it handled).
    pub locks: BTreeMap<String, LockPhase>,
    /// Messages the executors put on the link (or tried to).
    pub sends: u64,
    /// The last ones (to tell a known livelock).
    pub recent: VecDeque<PeerMsg>,
    next_content: u64,
    /// Every content a user wrote, and where.
    pub written: BTreeMap<String, (Side, String)>,
    /// Contents a user removed or overwrote (they may be gone).
    pub retired: BTreeSet<String>,
    /// Per side: (path, content) installed from the peer and not touched
    /// by a user since; sending it back is an echo, unless sync itself
    /// took it from the peer meanwhile (below).
    received: [BTreeSet<(String, String)>; 2],
    /// Per side: (path, content) that sync replaced or removed there. Sent
    /// back to that side it is put back, not echoed: seed 42354, where a
    /// replay at A's unlock replaced A's folder and B's newer folder then
    /// brought A's own file back.
    removed_by_sync: [BTreeSet<(String, String)>; 2],
    /// Contents sync removed or replaced without keeping them.
    dropped: Vec<(Side, String, String, &'static str)>,
    queued: BTreeMap<String, Vec<u64>>,
    dequeued: BTreeMap<String, Vec<u64>>,
    replay_applied: BTreeSet<(String, u64)>,
}

impl Tracker {
    pub fn violation(&mut self, v: String) {
        if self.violations.len() < 20 {
            self.violations.push(v);
        }
    }

    /// A new content, unique in the run, of at least `len` bytes.
    pub fn content(&mut self, s: Side, len: usize) -> String {
        self.next_content += 1;
        let mut c = format!("{s:?}{:04}", self.next_content);
        while c.len() < len {
            c.push('.');
        }
        c
    }

    pub fn wrote(&mut self, s: Side, path: &str, content: &str) {
        self.written
            .insert(content.to_string(), (s, path.to_string()));
    }

    /// A user changed `path` (at either side).
    pub fn user_touched(&mut self, path: &str) {
        for r in &mut self.received {
            r.retain(|(p, _)| p != path && !is_under(p, path) && !is_under(path, p));
        }
    }

    pub fn received(&mut self, s: Side, path: &str, content: &str) {
        self.received[ix(s)].insert((path.to_string(), content.to_string()));
    }

    pub fn sync_removed(&mut self, s: Side, path: &str, content: &str) {
        self.removed_by_sync[ix(s)].insert((path.to_string(), content.to_string()));
    }

    pub fn sent_file(&mut self, s: Side, path: &str, content: &str) {
        let key = (path.to_string(), content.to_string());
        let peer = 1 - ix(s);
        if self.received[ix(s)].contains(&key) && !self.removed_by_sync[peer].contains(&key) {
            self.violation(format!(
                "echo: {s:?} sends {path} ({content}) back, which it received from the peer"
            ));
        }
    }

    pub fn dropped(&mut self, s: Side, path: &str, content: &str, how: &'static str) {
        self.dropped
            .push((s, path.to_string(), content.to_string(), how));
    }

    /// What each locked path holds at A now.
    pub fn locked_view(&self, fs: &FakeFs) -> Vec<(String, LockPhase, Option<Entry>)> {
        self.locks
            .iter()
            .map(|(p, ph)| (p.clone(), *ph, fs.stat(p)))
            .collect()
    }

    pub fn queued(&mut self, path: &str, seq: u64) {
        let q = self.queued.entry(path.to_string()).or_default();
        let last = q.last().copied();
        q.push(seq);
        if last.is_some_and(|l| l >= seq) {
            self.violation(format!("queue of {path}: entry #{seq} after #{last:?}"));
        }
    }

    /// A queue entry a power cut took before it was acknowledged.
    pub fn unqueued(&mut self, path: &str, seq: u64) {
        if let Some(q) = self.queued.get_mut(path) {
            q.retain(|s| *s != seq);
        }
    }

    pub fn dequeued(&mut self, path: &str, seq: u64) {
        let d = self.dequeued.entry(path.to_string()).or_default();
        let twice = d.contains(&seq);
        let last = d.last().copied();
        d.push(seq);
        if twice {
            self.violation(format!("queue of {path}: entry #{seq} replayed twice"));
        } else if last.is_some_and(|l| l > seq) {
            self.violation(format!(
                "queue of {path}: entry #{seq} replayed after #{last:?}"
            ));
        }
    }

    pub fn announced(&mut self, s: Side, an: &Announcement) {
        if s == Side::A && an.action == "locked" {
            self.locks
                .entry(an.path.clone())
                .or_insert(LockPhase::Locked);
        }
        let seq = an
            .detail
            .strip_prefix("queued update #")
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(seq) = seq {
            let key = (an.path.clone(), seq);
            match an.action {
                "applied" => {
                    self.replay_applied.insert(key);
                }
                "superseded" if self.replay_applied.contains(&key) => self.violation(format!(
                    "{s:?}: queue entry {} #{seq} applied, then reported superseded",
                    an.path
                )),
                _ => {}
            }
        }
    }

    pub fn unlocked(&mut self, path: &str, replayed: &[Replayed]) {
        self.locks.remove(path);
        if replayed.windows(2).any(|w| w[0].seq >= w[1].seq) {
            let seqs: Vec<u64> = replayed.iter().map(|r| r.seq).collect();
            self.violation(format!("unlock of {path} replayed out of order: {seqs:?}"));
        }
    }
}

/// Whether `other`, a folder that folds letter case or Unicode forms,
/// holds `path` (or a folder above it) under another spelling: `path` is
/// then a second name for a file there, which it cannot store beside the
/// one it holds.
pub fn clashes(other: &FakeFs, path: &str) -> bool {
    other.folds()
        && std::iter::once(path)
            .chain(crate::fake_fs::ancestors(path))
            .any(|q| other.lookup(q).is_some_and(|k| k != q))
}

/// One side's folder as the two must agree on it: kind, content, mode
/// (where both sides have modes), mtime at the coarser precision. Names
/// exactly as spelt (a case-only rename must travel); a name the other
/// side cannot store (a refused name, a second spelling of a name it
/// holds on a folder that folds case) stays here alone and is left out
/// (and must be reported: [`check_quiet`]).
fn view(fs: &FakeFs, other: &FakeFs) -> BTreeMap<String, String> {
    let precision = fs.knobs.precision_ns.max(other.knobs.precision_ns);
    let modes = fs.knobs.has_modes && other.knobs.has_modes;
    let mut out = BTreeMap::new();
    for (p, e) in fs.scan() {
        if other.refuses(&p) || clashes(other, &p) {
            continue;
        }
        let v = match e.kind {
            Kind::Dir => "folder".to_string(),
            Kind::File => format!(
                "{} mtime {} mode {:?}",
                fs.read(&p).unwrap_or_default(),
                coarse(e.mtime_ns, precision),
                if modes {
                    e.mode.map(|m| m & 0o777)
                } else {
                    None
                }
            ),
        };
        out.insert(p, v);
    }
    out
}

/// The names one side holds that the other cannot store beside a
/// spelling it holds, and that this side's core does not report (in
/// `lab3 status`): each is a violation.
fn unreported_clashes(w: &World) -> Vec<(Side, String)> {
    let mut out = Vec::new();
    for (s, me, other) in [(Side::A, &w.a, &w.b), (Side::B, &w.b, &w.a)] {
        let Some(core) = &me.core else {
            continue;
        };
        let unsent: BTreeSet<&str> = core.unsent().map(|(p, _)| p.as_str()).collect();
        for (p, _) in me.fs.scan() {
            let reported = std::iter::once(p.as_str())
                .chain(crate::fake_fs::ancestors(&p))
                .any(|q| unsent.contains(q));
            if clashes(&other.fs, &p) && !other.fs.refuses(&p) && !reported {
                out.push((s, p.clone()));
            }
        }
    }
    out
}

/// The checks once the run is quiet.
pub fn check_quiet(w: &mut World) {
    // A path is excused by a known bug at it or at a folder above it
    // (what a folder held back holds back what is under it).
    let excused_at = |p: &str| {
        let (Some(a), Some(b)) = (&w.a.core, &w.b.core) else {
            return false;
        };
        known::held_forever(a, b, p) || known::held_forever(b, a, p)
    };
    let excused = |p: &str| {
        !w.strict
            && std::iter::once(p)
                .chain(crate::fake_fs::ancestors(p))
                .any(excused_at)
    };
    let (va, vb) = (view(&w.a.fs, &w.b.fs), view(&w.b.fs, &w.a.fs));
    let keys: BTreeSet<&String> = va.keys().chain(vb.keys()).collect();
    let diff: Vec<String> = keys
        .into_iter()
        .filter(|k| va.get(*k) != vb.get(*k) && !excused(k))
        .map(|k| format!("{k}: A {:?} / B {:?}", va.get(k), vb.get(k)))
        .collect();
    // (A clash held back by a known bug is not refused yet either.)
    let unreported: Vec<String> = unreported_clashes(w)
        .into_iter()
        .filter(|(_, p)| !excused(p))
        .map(|(s, p)| format!("{s:?} {p}"))
        .collect();
    if !diff.is_empty() {
        w.t.violation(format!("not converged: {}", diff.join("; ")));
    }
    if !unreported.is_empty() {
        w.t.violation(format!(
            "a second spelling the other side cannot store, not reported: {}",
            unreported.join(", ")
        ));
    }
    let mut anywhere: BTreeSet<String> = w.a.fs.contents();
    anywhere.extend(w.b.fs.contents());
    for s in [&w.a, &w.b] {
        anywhere.extend(s.kept.iter().map(|(_, _, c)| c.clone()));
        anywhere.extend(s.snapshots().map(|(_, c)| c.clone()));
    }
    let lost: Vec<String> =
        w.t.written
            .iter()
            .filter(|(c, _)| !anywhere.contains(*c) && !w.t.retired.contains(*c))
            .map(|(c, (s, p))| format!("{c} (written at {s:?} {p})"))
            .collect();
    if !lost.is_empty() {
        w.t.violation(format!(
            "lost: a version a user wrote is neither current nor kept: {}",
            lost.join(", ")
        ));
    }
    let dropped: Vec<String> =
        w.t.dropped
            .iter()
            .filter(|(_, _, c, _)| !anywhere.contains(c))
            .map(|(s, p, c, how)| format!("{c} at {s:?} {p} by {how}"))
            .collect();
    if !dropped.is_empty() {
        w.t.violation(format!("destroyed without keeping: {}", dropped.join(", ")));
    }
    if !w.t.locks.is_empty() {
        w.t.violation(format!("still locked after unlock: {:?}", w.t.locks));
    }
    for (path, q) in &w.t.queued.clone() {
        let d = w.t.dequeued.get(path).cloned().unwrap_or_default();
        if *q != d {
            w.t.violation(format!(
                "queue of {path}: queued {q:?} but replayed {d:?} (each once, in order)"
            ));
        }
    }
    if w.a.snapshots().next().is_some() {
        let left: Vec<_> = w.a.snapshots().map(|(k, _)| k).collect();
        w.t.violation(format!("queue snapshots left after unlock: {left:?}"));
    }
}
