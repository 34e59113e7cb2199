//! The core's journal: one [`Record`] per path (the base both sides
//! acknowledged, a tombstone, a lock and its queue), kept in the state
//! directory as an append-only file of JSON lines so that a restart knows
//! what was agreed. A torn last line (a kill -9 mid-write) is ignored; the
//! file is compacted when its tail is torn or most lines are superseded.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::core::Record;

#[derive(Serialize, Deserialize)]
struct Line {
    p: String,
    /// `None`: the path is forgotten.
    r: Option<Record>,
}

pub struct Records {
    path: PathBuf,
    records: BTreeMap<String, Record>,
    out: BufWriter<File>,
}

impl Records {
    /// Opens (or creates) `<state_dir>/core-journal.jsonl`.
    pub fn open(state_dir: &Path) -> std::io::Result<Records> {
        std::fs::create_dir_all(state_dir)?;
        let path = state_dir.join("core-journal.jsonl");
        let mut records = BTreeMap::new();
        let (mut lines, mut torn) = (0usize, false);
        if let Ok(f) = File::open(&path) {
            for line in BufReader::new(f).lines() {
                let Ok(Ok(l)) = line.map(|l| serde_json::from_str::<Line>(&l)) else {
                    torn = true;
                    break;
                };
                match l.r {
                    Some(r) => records.insert(l.p, r),
                    None => records.remove(&l.p),
                };
                lines += 1;
            }
        }
        let out = if torn || lines > 2 * records.len() + 1_000 {
            rewrite(&path, &records)?
        } else {
            append_to(&path)?
        };
        Ok(Records { path, records, out })
    }

    /// Every record, in path order.
    pub fn all(&self) -> impl Iterator<Item = (&String, &Record)> {
        self.records.iter()
    }

    /// How many paths have an agreed base.
    pub fn agreed(&self) -> usize {
        self.records.values().filter(|r| r.base.is_some()).count()
    }

    pub fn set(&mut self, path: String, record: Option<Record>) {
        let line = Line {
            p: path.clone(),
            r: record.clone(),
        };
        let written = serde_json::to_writer(&mut self.out, &line)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"));
        if let Err(e) = written {
            tracing::error!("writing {}: {e}", self.path.display());
        }
        match record {
            Some(r) => self.records.insert(path, r),
            None => self.records.remove(&path),
        };
    }

    /// Writes out what was set (called after every step of the engine).
    pub fn flush(&mut self) {
        if let Err(e) = self.out.flush() {
            tracing::error!("writing {}: {e}", self.path.display());
        }
    }
}

fn append_to(path: &Path) -> std::io::Result<BufWriter<File>> {
    let file = OpenOptions::new().append(true).create(true).open(path)?;
    Ok(BufWriter::with_capacity(64 * 1024, file))
}

/// Writes a compact copy atomically and opens it for appending.
fn rewrite(path: &Path, records: &BTreeMap<String, Record>) -> std::io::Result<BufWriter<File>> {
    let tmp = path.with_extension("jsonl.tmp");
    {
        let mut w = BufWriter::new(File::create(&tmp)?);
        for (p, r) in records {
            let line = Line {
                p: p.clone(),
                r: Some(r.clone()),
            };
            serde_json::to_writer(&mut w, &line)?;
            w.write_all(b"\n")?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    append_to(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::core::{Base, Kind, Version};

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
            lock: None,
        }
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
        let all: Vec<_> = j.all().map(|(p, r)| (p.clone(), r.clone())).collect();
        assert_eq!(all, vec![("b".to_string(), rec(2))]);
    }
}
