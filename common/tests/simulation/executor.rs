//! The fake executor: carries out a core's effects against the fake file
//! system and link, as the real one does against the disk (sync/disk.rs):
//! it acts only where the disk holds what the core expected, re-stats
//! after acting, and feeds the outcome back as an input.

use common::sync::core::{
    Effect, Entry, Input, Kind, OpId, Outcome, PeerMsg, Queued, Side, Source,
};

use crate::durability::Batch;
use crate::fake_fs::parent;
use crate::invariants::LockPhase;
use crate::world::World;

fn same(found: &Option<Entry>, expect: Option<&Entry>) -> bool {
    match (found, expect) {
        (Some(f), Some(x)) => f.same_here(x),
        (None, None) => true,
        _ => false,
    }
}

fn done(w: &mut World, s: Side, op: OpId, outcome: Outcome) {
    w.side(s).inbox.push_back((Input::Done { op, outcome }, 0));
}

fn failed(error: String, retry: bool) -> Outcome {
    Outcome::Failed { error, retry }
}

/// Carries out `effect`, asked for by `batch` (see [`crate::durability`]).
pub fn run(w: &mut World, s: Side, effect: Effect, epoch: u64, batch: Batch) {
    // What the locked paths hold before a sync change at A, to see that
    // none of them moves.
    let guard = s == Side::A
        && matches!(
            effect,
            Effect::Install { .. } | Effect::Remove { .. } | Effect::Rename { .. }
        );
    let before = if guard {
        w.t.locked_view(&w.a.fs)
    } else {
        Vec::new()
    };
    let replay = matches!(
        &effect,
        Effect::Install {
            source: Source::Queued { .. },
            ..
        } | Effect::Remove { .. }
    );
    let what = format!("{effect:?}");
    match effect {
        Effect::Send(msg) => {
            w.told(s, epoch, batch);
            w.send(s, epoch, msg, None)
        }
        Effect::SendFile {
            op,
            path,
            expect,
            mut offer,
        } => {
            let found = w.side(s).fs.stat_exact(&path);
            if !same(&found, Some(&expect)) {
                return done(w, s, op, Outcome::Mismatch { found });
            }
            let content = w.side(s).fs.read(&path).unwrap_or_default();
            // Quiet before sending: not what a writer is still writing.
            let key = (crate::invariants::ix(s), path.clone());
            if let Some((t, _)) = w.t.writing.get(&key).filter(|(_, c)| *c == content) {
                let since = w.clock(s) - t;
                if since < w.side_ref(s).cfg.quiet_ns {
                    w.t.violation(format!(
                        "partial: {s:?} sends {path} {} ms after a write, still open",
                        since / 1_000_000
                    ));
                }
            }
            if let PeerMsg::Offer { version, .. } = &mut offer {
                version.hash = Some(content.as_str().into());
            }
            w.t.sent_file(s, &path, &content);
            done(
                w,
                s,
                op,
                Outcome::Sent {
                    hash: content.clone(),
                },
            );
            w.told(s, epoch, batch);
            w.send(s, epoch, offer, Some(content));
        }
        Effect::Stat { path } => {
            let me = w.side(s);
            let entry = me.fs.stat_exact(&path);
            me.inbox.push_back((
                Input::Observed {
                    path,
                    entry,
                    closed: false,
                },
                0,
            ));
        }
        Effect::Hash { files } => {
            // The content is its hash here (every content is unique).
            let me = w.side(s);
            let hashes = files
                .into_iter()
                .map(|(p, e)| {
                    let same = me.fs.stat_exact(&p).is_some_and(|f| f.same_here(&e));
                    let h = if same { me.fs.read(&p) } else { None };
                    (p, h)
                })
                .collect();
            me.inbox.push_back((Input::Hashed { hashes }, 0));
        }
        Effect::Install {
            op,
            path,
            version,
            source,
            expect,
            keep,
        } => {
            let now = w.clock(s);
            let me = w.side(s);
            // A landing line not flushed yet reaches the disk first, with
            // everything held (sync/exec.rs flushes the folders and the
            // journal before the install: see `crate::durability`).
            me.flush_landings();
            let found = me.fs.stat_exact(&path);
            if !same(&found, expect.as_ref()) {
                return done(w, s, op, Outcome::Mismatch { found });
            }
            if found.is_none() && me.fs.taken_by_another(&path, None) {
                let e =
                    format!("{path}: this folder holds a name that differs only in letter case or Unicode form");
                return done(w, s, op, failed(e, false));
            }
            if me.fs.refuses(&path) {
                let e = format!("{path}: a name this file system refuses");
                return done(w, s, op, failed(e, false));
            }
            let content = match (version.kind, &source) {
                (Kind::Dir, _) => None,
                (Kind::File, Source::Staged) => {
                    let hash: String = version.hash.as_deref().unwrap_or_default().to_string();
                    if !me.take_staged(&hash) {
                        let e = format!("{path}: the received content is gone");
                        return done(w, s, op, failed(e, true));
                    }
                    Some(hash)
                }
                (Kind::File, Source::Queued { seq }) => match me.snapshot(&(path.clone(), *seq)) {
                    Some(c) => Some(c),
                    None => {
                        w.t.violation(format!(
                            "{s:?} replays queue entry {path} #{seq}, which holds no snapshot"
                        ));
                        return done(w, s, op, failed("no snapshot".into(), false));
                    }
                },
            };
            if version.kind == Kind::Dir && found.as_ref().is_some_and(|f| f.kind == Kind::Dir) {
                return done(
                    w,
                    s,
                    op,
                    Outcome::Applied {
                        landed: found,
                        kept_at: None,
                    },
                );
            }
            // A file above the path: cannot be made now.
            if let Some(p) = parent(&path) {
                let mut at = Some(p);
                while let Some(d) = at {
                    if me.fs.stat(d).is_some_and(|e| e.kind == Kind::File) {
                        let e = format!("{path}: not a directory: {d}");
                        return done(w, s, op, failed(e, true));
                    }
                    at = parent(d);
                }
            }
            let mut kept_at = None;
            if found.is_some() {
                let key = me.fs.lookup(&path).expect("found");
                let under = me.fs.subtree(&key);
                let lost: Vec<(String, String)> = under
                    .iter()
                    .filter_map(|p| me.fs.read(p).map(|c| (p.clone(), c)))
                    .collect();
                match keep {
                    Some(why) => {
                        me.kept
                            .extend(lost.iter().map(|(p, c)| (p.clone(), why, c.clone())));
                        kept_at = Some(format!("versions/{path}"));
                    }
                    None => {
                        for (p, c) in &lost {
                            w.t.dropped(s, p, c, "an install");
                        }
                    }
                }
                for (p, c) in lost {
                    w.t.sync_removed(s, &p, &c);
                }
                // Kept or not, what was there makes way (a rename into
                // place held a file; a folder goes with all it held).
                w.side(s).fs.remove_all(&path);
            }
            let me = w.side(s);
            let made = match me.fs.mkdirs(&path, now) {
                Ok(m) => m,
                Err(e) => return done(w, s, op, failed(e, true)),
            };
            let r = match &content {
                Some(c) => me.fs.write(&path, c, version.mtime_ns, version.mode, false),
                None => me.fs.mkdir(&path, now),
            };
            if let Err(e) = r {
                return done(w, s, op, failed(e, true));
            }
            for p in made {
                me.touch(&p, false);
            }
            me.touch(&path, false);
            let landed = me.fs.stat_exact(&path);
            if let Some(c) = &content {
                w.t.received(s, &path, c);
            }
            done(w, s, op, Outcome::Applied { landed, kept_at });
        }
        Effect::Remove {
            op,
            path,
            expect,
            keep,
        } => {
            let me = w.side(s);
            let found = me.fs.stat_exact(&path);
            if !same(&found, Some(&expect)) {
                return done(w, s, op, Outcome::Mismatch { found });
            }
            let content = me.fs.read(&path);
            if let Err(e) = me.fs.remove(&path) {
                return done(w, s, op, failed(e, false));
            }
            me.touch(&path, false);
            let mut kept_at = None;
            if let Some(c) = &content {
                w.t.sync_removed(s, &path, c);
            }
            let me = w.side(s);
            if let Some(c) = content {
                match keep {
                    Some(why) => {
                        me.kept.push((path.clone(), why, c));
                        kept_at = Some(format!("versions/{path}"));
                    }
                    None => w.t.dropped(s, &path, &c, "a remove"),
                }
            }
            done(
                w,
                s,
                op,
                Outcome::Applied {
                    landed: None,
                    kept_at,
                },
            );
        }
        Effect::Rename {
            op,
            from,
            to,
            expect,
        } => {
            let now = w.clock(s);
            let me = w.side(s);
            let found = me.fs.stat_exact(&from);
            if !same(&found, Some(&expect)) || me.fs.stat_exact(&to).is_some() {
                return done(w, s, op, Outcome::Mismatch { found });
            }
            // (A case-only rename lands on its own file: that is no clash.)
            if me.fs.taken_by_another(&to, Some(&from)) {
                let e = format!("{to}: this folder holds a name that differs only in letter case or Unicode form");
                return done(w, s, op, failed(e, false));
            }
            if me.fs.refuses(&to) {
                let e = format!("{to}: a name this file system refuses");
                return done(w, s, op, failed(e, false));
            }
            let made = match me.fs.mkdirs(&to, now) {
                Ok(m) => m,
                Err(e) => return done(w, s, op, failed(e, true)),
            };
            if let Err(e) = me.fs.rename(&from, &to, false) {
                return done(w, s, op, failed(e, true));
            }
            for p in made {
                me.touch(&p, false);
            }
            me.touch(&from, false);
            me.touch(&to, false);
            let landed = me.fs.stat_exact(&to);
            done(
                w,
                s,
                op,
                Outcome::Applied {
                    landed,
                    kept_at: None,
                },
            );
        }
        Effect::Queue {
            path,
            seq,
            update,
            peer_op,
            held,
        } => {
            w.t.queued(&path, seq);
            let me = w.side(s);
            // The snapshot first, then the description (as sync/disk.rs:
            // without its content, the entry is not kept).
            let snapshot = update
                .version()
                .and_then(|v| v.hash.as_deref().map(str::to_string));
            if let Some(h) = &snapshot {
                if !me.take_staged(h) {
                    return;
                }
            }
            let entry = Queued {
                seq,
                update,
                peer_op,
                held,
            };
            me.enqueue(batch, (path, seq), snapshot, entry);
        }
        Effect::Dequeue { path, seq } => {
            w.t.dequeued(&path, seq);
            w.side(s).dequeue(&(path, seq));
        }
        Effect::Record { path, mut record } => {
            // An unlock replays from its journal record on. (Not from its
            // input: effects of inputs handled before it, such as an
            // earlier unlock's end and a new lock's announcement, may still
            // be waiting, and come first.)
            let unlocking = record
                .as_ref()
                .and_then(|r| r.lock.as_ref())
                .is_some_and(|l| l.unlocking);
            if s == Side::A && unlocking {
                if let Some(p) = w.t.locks.get_mut(&path) {
                    *p = LockPhase::Unlocking;
                }
            }
            // The queue's entries are kept apart (see `Effect::Queue`).
            if let Some(lock) = record.as_mut().and_then(|r| r.lock.as_mut()) {
                lock.queue.clear();
            }
            w.side(s).set_record(batch, path, record);
        }
        Effect::Announce(an) => {
            // `lab3 lock` is answered once the lock is on disk.
            if s == Side::A && an.action == "locked" {
                w.side(s).told(batch);
            }
            w.t.announced(s, &an)
        }
        Effect::Arm { timer, at_ns } => {
            let t = w.side(s).timers.entry(timer).or_insert(at_ns);
            *t = (*t).max(at_ns);
        }
        Effect::Unlocked { path, replayed } => {
            w.side(s).told(batch);
            w.t.unlocked(&path, &replayed)
        }
        Effect::Reconciled { .. } => {}
    }
    if guard {
        let after = w.t.locked_view(&w.a.fs);
        for ((path, phase, b), (_, _, a)) in before.iter().zip(after.iter()) {
            let allowed = *phase == LockPhase::Unlocking && replay;
            if b != a && !allowed {
                w.t.violation(format!(
                    "an update from B reached locked {path} at A ({phase:?}): {what}"
                ));
            }
        }
    }
}
