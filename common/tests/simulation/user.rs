//! What users do to a folder (at either side, running or not): writes,
//! saves by rename, look-alikes, restores of old copies, touches, chmods,
//! folders made, renames and moves, swaps, deletes, type changes, hard
//! links. Each reports its paths to the watcher and what it wrote or
//! destroyed to the invariants.

use common::sync::core::{Kind, Side};

use crate::prng::Rng;
use crate::world::World;

/// The names users pick from: few, so that they collide; a capital that
/// a case-insensitive folder folds, and two names Windows refuses.
pub const NAMES: &[&str] = &[
    "a", "b", "c", "A", "d", "e", "d/a", "d/b", "d/e", "d/e/a", "e/a", "e/b", "x:y", "d/z.",
];

/// [`NAMES`] and names that differ from each other only in Unicode
/// normalization (`é` as NFC and as NFD, a folder of each form) or in
/// letter case as well (`É`): one file on a folder that folds Unicode
/// forms (macOS), two on Linux and Windows (`LAB3_SIM_NFD=1`).
pub const NFD_NAMES: &[&str] = &[
    "a",
    "b",
    "c",
    "A",
    "d",
    "e",
    "d/a",
    "d/b",
    "d/e",
    "d/e/a",
    "e/a",
    "e/b",
    "x:y",
    "d/z.",
    "\u{e9}",
    "e\u{301}",
    "\u{c9}",
    "d/e\u{301}",
    "\u{e9}/a",
    "e\u{301}/b",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Write,
    /// A write still going on: more bytes, in place, the file not closed.
    Append,
    SaveByRename,
    LookAlike,
    RestoreOld,
    Touch,
    Chmod,
    Mkdir,
    Rename,
    Swap,
    Delete,
    TypeChange,
    HardLink,
}

pub const ACTS: &[Act] = &[
    Act::Write,
    Act::Append,
    Act::Write,
    Act::SaveByRename,
    Act::LookAlike,
    Act::RestoreOld,
    Act::Touch,
    Act::Chmod,
    Act::Mkdir,
    Act::Rename,
    Act::Rename,
    Act::Swap,
    Act::Delete,
    Act::TypeChange,
    Act::HardLink,
];

fn existing(w: &World, s: Side, rng: &mut Rng, kind: Option<Kind>) -> Option<String> {
    let fs = &w.side_ref(s).fs;
    let ps: Vec<String> = fs
        .scan()
        .into_iter()
        .filter(|(_, e)| kind.is_none_or(|k| e.kind == k))
        .map(|(p, _)| p)
        .collect();
    (!ps.is_empty()).then(|| rng.pick(&ps).clone())
}

/// Does `act` at side `s`; `r` picks its paths. The watcher hears of a
/// path under the name the folder stores it by (`A` when a user writes
/// `a` on a folder that folds case and holds `A`), as a real one does.
pub fn act(w: &mut World, s: Side, act: Act, r: u64) {
    let mut rng = Rng::new(r);
    // A user takes a moment: two writes never share a nanosecond.
    w.now += 1_000_000;
    let now = w.clock(s);
    let before = w.side_ref(s).fs.contents();
    let mut hints: Vec<(String, bool)> = Vec::new();
    let name = rng.pick(w.names).to_string();
    let mode = *rng.pick(&[0o644, 0o644, 0o600, 0o755]);
    match act {
        Act::Write | Act::RestoreOld => {
            let c = w.t.content(s, 6 + rng.below(4) as usize);
            let mtime = if act == Act::RestoreOld {
                now - 1_000_000_000 * (1 + rng.below(1000) as i64)
            } else {
                now
            };
            let (fs, t) = w.fs_and_tracker(s);
            if let Ok(made) = fs.mkdirs(&name, now) {
                hints.extend(
                    made.into_iter()
                        .map(|p| (fs.lookup(&p).unwrap_or(p), false)),
                );
                if fs.write(&name, &c, mtime, Some(mode), true).is_ok() {
                    t.wrote(s, &name, &c);
                    hints.push((fs.lookup(&name).unwrap_or(name.clone()), true));
                }
            }
        }
        Act::Append => {
            let old = w.side_ref(s).fs.read(&name).unwrap_or_default();
            let c = format!("{old}+{}", w.t.content(s, 0));
            let (fs, t) = w.fs_and_tracker(s);
            if let Ok(made) = fs.mkdirs(&name, now) {
                hints.extend(
                    made.into_iter()
                        .map(|p| (fs.lookup(&p).unwrap_or(p), false)),
                );
                if fs.write(&name, &c, now, Some(mode), true).is_ok() {
                    t.wrote(s, &name, &c);
                    let stored = fs.lookup(&name).unwrap_or(name.clone());
                    t.writing
                        .insert((crate::invariants::ix(s), stored), (now, c.clone()));
                    hints.push((fs.lookup(&name).unwrap_or(name.clone()), false));
                }
            }
        }
        Act::SaveByRename | Act::LookAlike => {
            let like = match act {
                Act::LookAlike => match existing(w, s, &mut rng, Some(Kind::File)) {
                    Some(p) => w.side_ref(s).fs.stat(&p),
                    None => return,
                },
                _ => None,
            };
            let len = like
                .as_ref()
                .map_or(6 + rng.below(4) as usize, |e| e.size as usize);
            let c = w.t.content(s, len);
            if c.len() != len {
                return;
            }
            let mtime = like.as_ref().map_or(now, |e| e.mtime_ns);
            let m = like.as_ref().map_or(Some(mode), |e| e.mode);
            let tmp = format!("{name}.~tmp");
            let (fs, t) = w.fs_and_tracker(s);
            if let Ok(made) = fs.mkdirs(&name, now) {
                hints.extend(
                    made.into_iter()
                        .map(|p| (fs.lookup(&p).unwrap_or(p), false)),
                );
                if fs.write(&tmp, &c, mtime, m, false).is_ok() {
                    t.wrote(s, &tmp, &c);
                    hints.push((tmp.clone(), true));
                    if fs.rename(&tmp, &name, true).is_ok() {
                        t.wrote(s, &name, &c);
                        hints.push((fs.lookup(&name).unwrap_or(name.clone()), false));
                    }
                }
            }
        }
        Act::Touch | Act::Chmod => {
            let Some(p) = existing(w, s, &mut rng, Some(Kind::File)) else {
                return;
            };
            let fs = &mut w.side(s).fs;
            if act == Act::Touch {
                fs.set_mtime(&p, now);
            } else {
                fs.chmod(&p, mode);
            }
            hints.push((p, false));
        }
        Act::Mkdir => {
            let fs = &mut w.side(s).fs;
            if let Ok(made) = fs.mkdirs(&name, now) {
                hints.extend(
                    made.into_iter()
                        .map(|p| (fs.lookup(&p).unwrap_or(p), false)),
                );
                if fs.mkdir(&name, now).is_ok() {
                    hints.push((fs.lookup(&name).unwrap_or(name.clone()), false));
                }
            }
        }
        Act::Rename => {
            let Some(from) = existing(w, s, &mut rng, None) else {
                return;
            };
            let replace = rng.chance(50);
            let (fs, t) = w.fs_and_tracker(s);
            // Into a folder made a moment before, sometimes.
            if let Ok(made) = fs.mkdirs(&name, now) {
                hints.extend(
                    made.into_iter()
                        .map(|p| (fs.lookup(&p).unwrap_or(p), false)),
                );
                if fs.rename(&from, &name, replace).is_ok() {
                    hints.push((from.clone(), false));
                    let moved = fs.lookup(&name).map(|k| fs.subtree(&k)).unwrap_or_default();
                    hints.extend(moved.into_iter().map(|p| (p, false)));
                    t.user_touched(&from);
                }
            }
        }
        Act::Swap => {
            let (Some(x), Some(y)) = (
                existing(w, s, &mut rng, Some(Kind::File)),
                existing(w, s, &mut rng, Some(Kind::File)),
            ) else {
                return;
            };
            let tmp = format!("{x}.~swap");
            let (fs, t) = w.fs_and_tracker(s);
            if x != y
                && fs.rename(&x, &tmp, false).is_ok()
                && fs.rename(&y, &x, false).is_ok()
                && fs.rename(&tmp, &y, false).is_ok()
            {
                hints.extend([(x.clone(), false), (y.clone(), false), (tmp, false)]);
                t.user_touched(&x);
                t.user_touched(&y);
            }
        }
        Act::Delete => {
            let Some(p) = existing(w, s, &mut rng, None) else {
                return;
            };
            let fs = &mut w.side(s).fs;
            let gone = fs.lookup(&p).map(|k| fs.subtree(&k)).unwrap_or_default();
            fs.remove_all(&p);
            hints.extend(gone.into_iter().map(|p| (p, false)));
        }
        Act::TypeChange => {
            let Some(p) = existing(w, s, &mut rng, None) else {
                return;
            };
            let c = w.t.content(s, 6);
            let (fs, t) = w.fs_and_tracker(s);
            let gone = fs.lookup(&p).map(|k| fs.subtree(&k)).unwrap_or_default();
            let was_dir = fs.is_dir(&p);
            fs.remove_all(&p);
            hints.extend(gone.into_iter().map(|p| (p, false)));
            if was_dir {
                if fs.write(&p, &c, now, Some(mode), false).is_ok() {
                    t.wrote(s, &p, &c);
                    hints.push((p.clone(), true));
                }
            } else if fs.mkdir(&p, now).is_ok() {
                hints.push((p.clone(), false));
                let inner = format!("{p}/a");
                if rng.chance(50) && fs.write(&inner, &c, now, Some(mode), false).is_ok() {
                    t.wrote(s, &inner, &c);
                    hints.push((inner, true));
                }
            }
        }
        Act::HardLink => {
            let Some(from) = existing(w, s, &mut rng, Some(Kind::File)) else {
                return;
            };
            let fs = &mut w.side(s).fs;
            if let Ok(made) = fs.mkdirs(&name, now) {
                hints.extend(
                    made.into_iter()
                        .map(|p| (fs.lookup(&p).unwrap_or(p), false)),
                );
                if fs.link(&from, &name).is_ok() {
                    hints.push((fs.lookup(&name).unwrap_or(name.clone()), false));
                }
            }
        }
    }
    let after = w.side_ref(s).fs.contents();
    w.t.retired.extend(before.difference(&after).cloned());
    // A change through one name of a hard link is a change of every name
    // it shares its file with (a touch of `d/e` moves the time of `a`
    // too: sending `a` then is no echo, seed 95206).
    let scan = w.side_ref(s).fs.scan();
    let links: Vec<String> = hints
        .iter()
        .filter_map(|(p, _)| w.side_ref(s).fs.stat(p))
        .filter(|e| e.kind == Kind::File)
        .flat_map(|e| {
            scan.iter()
                .filter(move |(_, o)| o.kind == Kind::File && o.id == e.id)
                .map(|(p, _)| p.clone())
        })
        .collect();
    for p in links {
        w.t.user_touched(&p);
    }
    for (p, closed) in hints {
        // Closed, or replaced, moved or deleted by someone else: no
        // writer has it open any more.
        if closed || act != Act::Append {
            w.t.writing.remove(&(crate::invariants::ix(s), p.clone()));
        }
        w.t.user_touched(&p);
        w.side(s).touch(&p, closed);
    }
}
