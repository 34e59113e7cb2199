//! The core's journal: one [`Record`] per path (the base both sides
//! acknowledged, a tombstone, a lock and its queue), kept in the state
//! directory as an append-only file of JSON lines so that a restart knows
//! what was agreed. A torn last line (a kill -9 mid-write) is ignored; the
//! file is compacted when its tail is torn or most lines are superseded.
//!
//! Format: `{"p":PATH,"r":RECORD}`. An agreed base holds the version and
//! this side's stat of it, each with the content's hash where known. Where
//! the two hashes are the same (the sender's bases), the line writes it
//! once, in the version, and says `"same_hash":true`; every other line is
//! as earlier builds wrote it, and their journals are read as they are.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::core::{PathState, Record, States};

#[derive(Serialize, Deserialize)]
struct Line {
    p: String,
    /// `None`: the path is forgotten.
    r: Option<Record>,
    /// The base's `here` had the version's hash, written once (in the
    /// version).
    #[serde(default, skip_serializing_if = "is_false")]
    same_hash: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Line {
    /// The line of `record`, its base's hash written once.
    fn new(p: String, mut r: Option<Record>) -> Line {
        let mut same_hash = false;
        if let Some(base) = r.as_mut().and_then(|r| r.base.as_mut()) {
            if let Some(here) = base.here.as_mut() {
                if here.hash.is_some() && here.hash == base.version.hash {
                    here.hash = None;
                    same_hash = true;
                }
            }
        }
        Line { p, r, same_hash }
    }

    /// The path, and its record as it was set.
    fn into_parts(self) -> (String, Option<Record>) {
        let mut r = self.r;
        if let Some(base) = r.as_mut().and_then(|r| r.base.as_mut()) {
            if let Some(here) = base.here.as_mut() {
                // Written once, or twice by an earlier build: one text,
                // shared by both (see `core::Hash`).
                if self.same_hash || (here.hash.is_some() && here.hash == base.version.hash) {
                    here.hash = base.version.hash.clone();
                }
            }
        }
        (self.p, r)
    }
}

pub struct Records {
    path: PathBuf,
    /// What the file held when it was opened, until the engine takes it
    /// ([`Records::take`]): the core holds the state from then on, and a
    /// second copy here would be a large share of a big tree's memory.
    /// Each line is made the core's state of its path as it is read: a
    /// map of [`Record`]s (about 350 bytes each inline, in B-tree nodes
    /// half full as lines come in path order) made into states afterwards
    /// was the largest transient of a restart's peak (issue 15).
    records: States,
    out: BufWriter<File>,
    /// Lines written since the file was last flushed to disk.
    unsynced: bool,
    /// One of those lines is an install's landing (`Record::landing`):
    /// see [`Records::landing_unsynced`].
    landing_unsynced: bool,
}

impl Records {
    /// Opens (or creates) `<state_dir>/core-journal.jsonl`.
    ///
    /// A torn last line (a kill -9 mid-write, never acknowledged to the
    /// peer) is dropped. Any other line that does not parse is damage: it
    /// is set aside in `core-journal.damaged-<time>.jsonl`, reported, and
    /// the history of its path (of every path, when the line does not
    /// even say which) is forgotten, so that path counts as changed on
    /// both sides (both copies kept), never as deleted. The lines after it
    /// are read as usual. A journal that is there but cannot be read is
    /// an error (the engine does not start), never an empty history.
    pub fn open(state_dir: &Path) -> std::io::Result<Records> {
        std::fs::create_dir_all(state_dir)?;
        let path = state_dir.join("core-journal.jsonl");
        let mut records = BTreeMap::new();
        let (mut lines, mut torn) = (0usize, false);
        let mut damaged: Vec<String> = Vec::new();
        // Read a line at a time: the whole file (hundreds of bytes a path)
        // is never in memory beside the records made from it.
        let mut file = match File::open(&path) {
            Ok(f) => Some(BufReader::with_capacity(64 * 1024, f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let mut raw = Vec::new();
        while let Some(file) = file.as_mut() {
            raw.clear();
            if file.read_until(b'\n', &mut raw)? == 0 {
                break;
            }
            // Only the last line can lack its newline.
            let complete = raw.last() == Some(&b'\n');
            let line = raw.strip_suffix(b"\n").unwrap_or(&raw);
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<Line>(line) {
                Ok(l) => {
                    match l.into_parts() {
                        (p, Some(r)) => records.insert(p, Box::new(PathState::from(r))),
                        (p, None) => records.remove(&p),
                    };
                    lines += 1;
                }
                Err(_) if !complete => torn = true,
                Err(_) => damaged.push(String::from_utf8_lossy(line).into_owned()),
            }
        }
        if !damaged.is_empty() {
            set_aside(state_dir, &damaged, &mut records)?;
        }
        let out = if torn || !damaged.is_empty() || lines > 2 * records.len() + 1_000 {
            rewrite(&path, &records)?
        } else {
            append_to(&path)?
        };
        Ok(Records {
            path,
            records,
            out,
            unsynced: false,
            landing_unsynced: false,
        })
    }

    /// Every record as read at open, in path order.
    #[cfg(test)]
    pub fn all(&self) -> impl Iterator<Item = (&String, Record)> {
        self.records.iter().map(|(p, st)| (p, st.as_record()))
    }

    /// The state of every path as read at open, taken out: the journal
    /// keeps only its file from then on.
    pub fn take(&mut self) -> States {
        std::mem::take(&mut self.records)
    }

    /// How many paths had an agreed base when it was opened.
    pub fn agreed(&self) -> usize {
        self.records.values().filter(|r| r.base.is_some()).count()
    }

    /// Appends `path`'s record (`None`: forgotten); the next open reads it.
    pub fn set(&mut self, path: String, record: Option<Record>) {
        let landing = record.as_ref().is_some_and(|r| r.landing.is_some());
        let line = Line::new(path, record);
        let written = serde_json::to_writer(&mut self.out, &line)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"));
        if let Err(e) = written {
            tracing::error!("writing {}: {e}", self.path.display());
        }
        self.unsynced = true;
        self.landing_unsynced |= landing;
    }

    /// Whether a landing line (an install about to put the peer's version
    /// in place) was set since the journal was last flushed to disk: the
    /// executor then flushes it before the install's rename (a power cut
    /// may keep a rename and lose the line saying where the file came
    /// from; see sync/exec.rs `Exec::hold`).
    pub fn landing_unsynced(&self) -> bool {
        self.landing_unsynced
    }

    /// Hands what was set to the operating system (no flush to disk): it
    /// then survives a kill -9 of this process. Before an install's rename
    /// whose landing line is flushed already: the lines set since then are
    /// in the journal before the file (a kill -9 keeps both).
    pub fn write_out(&mut self) {
        if let Err(e) = self.out.flush() {
            tracing::error!("writing {}: {e}", self.path.display());
        }
    }

    /// Writes out what was set and flushes it to disk (called after every
    /// step of the engine, before the peer hears what the step decided);
    /// nothing to do when nothing was set.
    pub fn flush(&mut self) {
        if !self.unsynced {
            return;
        }
        self.unsynced = false;
        self.landing_unsynced = false;
        let done = self
            .out
            .flush()
            .and_then(|()| crate::durable::sync_data(self.out.get_ref()));
        if let Err(e) = done {
            tracing::error!("writing {}: {e}", self.path.display());
        }
    }
}

/// This start's run number (see `core::Config::run`), kept durably in
/// `<state_dir>/core-run` before the core starts: the last run's number
/// plus one (1 on a first start, and on the first start of a build that
/// did not count: its operations were run 0's numbers). A file that does
/// not hold a number (damage) gives way to one made from the clock's
/// seconds, unlike any recent run's but by a very unlucky chance.
pub fn next_run(state_dir: &Path) -> std::io::Result<u64> {
    let file = state_dir.join("core-run");
    let last = match std::fs::read_to_string(&file) {
        Ok(text) => text.trim().parse::<u64>().unwrap_or_else(|_| {
            tracing::warn!(
                "{} holds no run number; counting from the clock",
                file.display()
            );
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.map_or(0, |d| d.as_secs())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    let run = last.wrapping_add(1);
    crate::durable::write(&file, format!("{run}\n").as_bytes())?;
    Ok(run)
}

/// Keeps the damaged lines beside the journal, says so, and forgets the
/// history they may have been about.
fn set_aside(state_dir: &Path, damaged: &[String], records: &mut States) -> std::io::Result<()> {
    let stamp = crate::durable::stamp();
    let aside = state_dir.join(format!("core-journal.damaged-{stamp}.jsonl"));
    crate::durable::write(&aside, (damaged.join("\n") + "\n").as_bytes())?;
    let paths: Option<Vec<String>> = damaged.iter().map(|l| path_of(l)).collect();
    let forget = |r: &mut Box<PathState>| {
        r.base = None;
        r.deleted_ns = None;
    };
    let which = match &paths {
        Some(paths) => {
            for p in paths {
                if let Some(r) = records.get_mut(p) {
                    forget(r);
                }
            }
            format!("the history of {} is forgotten", paths.join(", "))
        }
        None => {
            records.values_mut().for_each(forget);
            "the lines name no path, so the history of every path is forgotten".into()
        }
    };
    tracing::error!(
        "{} damaged line(s) in the sync journal, set aside in {}; {which}: where both sides differ, \
         both copies are kept (the other as a version), and nothing counts as deleted",
        damaged.len(),
        aside.display()
    );
    Ok(())
}

/// The path a damaged journal line is about, if its start is intact:
/// `{"p":"<path>",...`.
fn path_of(line: &str) -> Option<String> {
    let rest = line.strip_prefix(r#"{"p":"#)?;
    let mut de = serde_json::Deserializer::from_str(rest).into_iter::<String>();
    de.next()?.ok()
}

fn append_to(path: &Path) -> std::io::Result<BufWriter<File>> {
    let file = OpenOptions::new().append(true).create(true).open(path)?;
    Ok(BufWriter::with_capacity(64 * 1024, file))
}

/// Writes a compact copy atomically and opens it for appending.
fn rewrite(path: &Path, records: &States) -> std::io::Result<BufWriter<File>> {
    let tmp = path.with_extension("jsonl.tmp");
    {
        let mut w = BufWriter::new(File::create(&tmp)?);
        for (p, r) in records {
            let line = Line::new(p.clone(), Some(r.as_record()));
            serde_json::to_writer(&mut w, &line)?;
            w.write_all(b"\n")?;
        }
        crate::durable::sync_file(&w.into_inner().map_err(|e| e.into_error())?)?;
    }
    std::fs::rename(&tmp, path)?;
    crate::durable::sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    append_to(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::core::{Base, Entry, FileId, Hash, Kind, Version};

    fn rec(size: u64) -> Record {
        Record {
            base: Some(Base {
                version: Version {
                    kind: Kind::File,
                    size,
                    mtime_ns: 1,
                    mode: Some(0o644),
                    hash: None,
                },
                here: None,
            }),
            deleted_ns: None,
            gone_ns: None,
            lock: None,
            landing: None,
            offered: false,
            queued_through: 0,
        }
    }

    /// A file's agreed base: the version's hash and this side's stat's.
    fn based(version: Option<&str>, here: Option<Option<&str>>) -> Record {
        let version = Version {
            kind: Kind::File,
            size: 3,
            mtime_ns: 1_700_000_000_123_456_789,
            mode: Some(0o644),
            hash: version.map(Hash::from),
        };
        let here = here.map(|h| Entry {
            kind: Kind::File,
            size: 3,
            mtime_ns: 1_700_000_000_123_456_789,
            mode: Some(0o644),
            id: FileId { dev: 7, ino: 42 },
            hash: h.map(Hash::from),
        });
        Record {
            base: Some(Base { version, here }),
            deleted_ns: None,
            gone_ns: None,
            lock: None,
            landing: None,
            offered: false,
            queued_through: 0,
        }
    }

    #[test]
    fn a_base_hash_is_written_once_and_every_record_read_back_as_set() {
        let (x, y) = ("a".repeat(64), "b".repeat(64));
        let cases = [
            ("same", based(Some(&x), Some(Some(&x)))),
            ("unhashed here", based(Some(&x), Some(None))),
            ("other here", based(Some(&x), Some(Some(&y)))),
            ("unhashed version", based(None, Some(Some(&x)))),
            ("neither", based(None, Some(None))),
            ("no here", based(Some(&x), None)),
        ];
        let d = tempfile::tempdir().unwrap();
        {
            let mut j = Records::open(d.path()).unwrap();
            for (p, r) in &cases {
                j.set(p.to_string(), Some(r.clone()));
            }
            j.flush();
        }
        let file = d.path().join("core-journal.jsonl");
        let text = std::fs::read_to_string(&file).unwrap();
        let same = text.lines().next().unwrap();
        assert_eq!(same.matches(&x).count(), 1, "{same}");
        assert!(same.contains(r#""same_hash":true"#), "{same}");
        let others = text.lines().skip(1).collect::<Vec<_>>().join("\n");
        assert!(!others.contains("same_hash"), "{others}");
        let read = |d: &Path| -> BTreeMap<String, Record> {
            let j = Records::open(d).unwrap();
            j.all().map(|(p, r)| (p.clone(), r)).collect()
        };
        let want: BTreeMap<String, Record> = cases
            .iter()
            .map(|(p, r)| (p.to_string(), r.clone()))
            .collect();
        assert_eq!(read(d.path()), want);
        // Compacted (a torn tail makes the next open rewrite the file): the
        // same records again.
        let mut f = OpenOptions::new().append(true).open(&file).unwrap();
        f.write_all(b"{\"p\":\"torn").unwrap();
        drop(f);
        assert_eq!(read(d.path()), want);
        let compacted = std::fs::read_to_string(&file).unwrap();
        assert_eq!(compacted.lines().count(), cases.len());
        assert_eq!(compacted.matches(&x).count(), 5, "once a line: {compacted}");
    }

    #[test]
    fn a_journal_of_earlier_builds_is_read_as_it_was_written() {
        let (x, y) = ("a".repeat(64), "b".repeat(64));
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("core-journal.jsonl");
        // As earlier builds wrote them: the hash in both places, or
        // only in the version.
        let v1 = |p: &str, here_hash: &str| {
            format!(
                r#"{{"p":"{p}","r":{{"base":{{"version":{{"kind":"file","size":3,"mtime_ns":1700000000123456789,"mode":420,"hash":"{x}"}},"here":{{"kind":"file","size":3,"mtime_ns":1700000000123456789,"mode":420,"id":{{"dev":7,"ino":42}}{here_hash}}}}}}}}}"#
            )
        };
        let lines = [
            v1("both", &format!(r#","hash":"{x}""#)),
            v1("other", &format!(r#","hash":"{y}""#)),
            v1("version only", ""),
        ];
        std::fs::write(&file, lines.join("\n") + "\n").unwrap();
        let mut j = Records::open(d.path()).unwrap();
        let all: BTreeMap<_, _> = j.all().map(|(p, r)| (p.clone(), r)).collect();
        assert_eq!(all["both"], based(Some(&x), Some(Some(&x))));
        // The hash written twice is held once, shared by the version and
        // this side's stat (issue 15).
        let base = all["both"].base.as_ref().unwrap();
        let (v, h) = (
            base.version.hash.as_ref(),
            base.here.as_ref().unwrap().hash.as_ref(),
        );
        assert!(std::ptr::eq(v.unwrap().as_ptr(), h.unwrap().as_ptr()));
        assert_eq!(all["other"], based(Some(&x), Some(Some(&y))));
        assert_eq!(all["version only"], based(Some(&x), Some(None)));
        assert!(
            std::fs::read_dir(d.path())
                .unwrap()
                .flatten()
                .all(|e| !e.file_name().to_string_lossy().contains("damaged")),
            "nothing set aside"
        );
        // A line with the hash once appended to it: both read together.
        j.set("new".into(), Some(based(Some(&y), Some(Some(&y)))));
        j.flush();
        drop(j);
        let j = Records::open(d.path()).unwrap();
        let all: BTreeMap<_, _> = j.all().map(|(p, r)| (p.clone(), r)).collect();
        assert_eq!(all.len(), 4);
        assert_eq!(all["new"], based(Some(&y), Some(Some(&y))));
        let base = all["new"].base.as_ref().unwrap();
        let (v, h) = (
            base.version.hash.as_ref(),
            base.here.as_ref().unwrap().hash.as_ref(),
        );
        assert!(
            std::ptr::eq(v.unwrap().as_ptr(), h.unwrap().as_ptr()),
            "written once, held once"
        );
        assert_eq!(all["version only"], based(Some(&x), Some(None)));
    }

    #[test]
    fn records_survive_a_reopen_and_a_torn_tail() {
        let d = tempfile::tempdir().unwrap();
        {
            let mut j = Records::open(d.path()).unwrap();
            j.set("a".into(), Some(rec(1)));
            j.set("b".into(), Some(rec(2)));
            j.set("a".into(), None);
            j.flush();
        }
        let file = d.path().join("core-journal.jsonl");
        let mut f = OpenOptions::new().append(true).open(&file).unwrap();
        f.write_all(b"{\"p\":\"c\",\"r\":{\"ba").unwrap();
        drop(f);
        let j = Records::open(d.path()).unwrap();
        let all: Vec<_> = j.all().map(|(p, r)| (p.clone(), r)).collect();
        assert_eq!(all, vec![("b".to_string(), rec(2))]);
    }

    #[test]
    fn a_damaged_line_is_set_aside_its_path_forgotten_and_later_lines_kept() {
        let d = tempfile::tempdir().unwrap();
        {
            let mut j = Records::open(d.path()).unwrap();
            for p in ["a", "b", "c"] {
                j.set(p.into(), Some(rec(1)));
            }
            j.flush();
        }
        let file = d.path().join("core-journal.jsonl");
        let mut f = OpenOptions::new().append(true).open(&file).unwrap();
        f.write_all(b"{\"p\":\"b\",\"r\":{\"ba#garbage\n").unwrap();
        f.write_all(b"{\"p\":\"d\",\"r\":{}}\n").unwrap();
        drop(f);
        let j = Records::open(d.path()).unwrap();
        let all: BTreeMap<_, _> = j.all().map(|(p, r)| (p.clone(), r)).collect();
        assert_eq!(all["a"], rec(1));
        assert_eq!(all["b"].base, None, "b's history is unknown now");
        assert_eq!(all["c"], rec(1));
        assert!(all.contains_key("d"), "a line after the damage is read");
        let aside: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("damaged"))
            .collect();
        assert_eq!(aside.len(), 1);
        let kept = std::fs::read_to_string(aside[0].path()).unwrap();
        assert!(kept.contains("garbage"));
        // Not reported again: the journal was rewritten without it.
        drop(j);
        Records::open(d.path()).unwrap();
        let n = std::fs::read_dir(d.path()).unwrap().flatten().count();
        assert_eq!(n, 2, "the journal and one set-aside file");
    }

    #[test]
    fn a_line_that_names_no_path_forgets_every_history() {
        let d = tempfile::tempdir().unwrap();
        {
            let mut j = Records::open(d.path()).unwrap();
            j.set("a".into(), Some(rec(1)));
            j.flush();
        }
        let file = d.path().join("core-journal.jsonl");
        let mut f = OpenOptions::new().append(true).open(&file).unwrap();
        f.write_all(b"\x00\x00\x00\n{\"p\":\"z\",\"r\":{}}\n")
            .unwrap();
        drop(f);
        let j = Records::open(d.path()).unwrap();
        let all: BTreeMap<_, _> = j.all().map(|(p, r)| (p.clone(), r)).collect();
        assert_eq!(all["a"].base, None);
        assert!(all.contains_key("z"));
    }

    /// Each start gets a run number above the last one's, kept across
    /// starts (see `core::Config::run`); a damaged counter still gives one.
    #[test]
    fn each_start_counts_a_new_run() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(next_run(d.path()).unwrap(), 1);
        assert_eq!(next_run(d.path()).unwrap(), 2);
        assert_eq!(next_run(d.path()).unwrap(), 3);
        std::fs::write(d.path().join("core-run"), "garbage").unwrap();
        assert!(next_run(d.path()).unwrap() > 3);
    }
}
