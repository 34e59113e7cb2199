//! An in-memory folder with the knobs real file systems differ in: mtime
//! precision, permission bits or none, case-insensitive names, names that
//! differ only in Unicode normalization taken for one, names it refuses. Files are inodes (hard links share one); every operation is
//! atomic, as a rename into place is on a real disk.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use common::sync::core::model::coarse;
use common::sync::core::{Entry, FileId, Kind};
use unicode_normalization::UnicodeNormalization;

/// What this file system keeps and refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Knobs {
    pub precision_ns: u64,
    pub has_modes: bool,
    pub case_insensitive: bool,
    /// Names differing only in Unicode normalization (NFC, NFD) are one
    /// file, the name kept as given (APFS, ext4 with casefold). HFS+,
    /// which stores every name as NFD, is not modelled.
    pub normalization_insensitive: bool,
    /// Refuses names with a `:` or a trailing `.` (as Windows does).
    pub refuses_odd_names: bool,
}

#[derive(Debug, Clone)]
struct Inode {
    content: String,
    mtime_ns: i64,
    mode: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
enum Node {
    File(u64),
    Dir { ino: u64, mtime_ns: i64 },
}

#[derive(Debug, Clone)]
pub struct FakeFs {
    pub knobs: Knobs,
    nodes: BTreeMap<String, Node>,
    inodes: HashMap<u64, Inode>,
    next_ino: u64,
}

/// Whether `path` lies strictly under folder `dir`.
pub fn is_under(path: &str, dir: &str) -> bool {
    path.len() > dir.len() + 1 && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/'
}

/// The folders above `path`, nearest first.
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').rev().map(move |(i, _)| &path[..i])
}

/// The folder holding `path` (`None`: the root).
pub fn parent(path: &str) -> Option<&str> {
    path.rfind('/').map(|i| &path[..i])
}

impl FakeFs {
    pub fn new(knobs: Knobs) -> FakeFs {
        FakeFs {
            knobs,
            nodes: BTreeMap::new(),
            inodes: HashMap::new(),
            next_ino: 0,
        }
    }

    fn ino(&mut self) -> u64 {
        self.next_ino += 1;
        self.next_ino
    }

    fn mode(&self, m: Option<u32>) -> Option<u32> {
        if self.knobs.has_modes {
            Some(m.unwrap_or(0o644) & 0o7777)
        } else {
            None
        }
    }

    /// Whether two different names can be one file here.
    pub fn folds(&self) -> bool {
        self.knobs.case_insensitive || self.knobs.normalization_insensitive
    }

    /// The form under which names are one file here: NFC where the
    /// folder ignores normalization, then lower case where it ignores
    /// letter case (as the core's `FsTraits::folded`, written again here
    /// so the simulation does not take the core's word for it).
    pub fn fold(&self, path: &str) -> String {
        let mut out = path.to_string();
        if self.knobs.normalization_insensitive {
            out = out.nfc().collect();
        }
        if self.knobs.case_insensitive {
            out = out.to_lowercase();
        }
        out
    }

    /// The name `path` is stored under (itself, or on a folder that folds
    /// names the one that differs only in letter case or normalization).
    pub fn lookup(&self, path: &str) -> Option<String> {
        if self.nodes.contains_key(path) {
            return Some(path.to_string());
        }
        if !self.folds() {
            return None;
        }
        let want = self.fold(path);
        self.nodes.keys().find(|k| self.fold(k) == want).cloned()
    }

    /// The stored name for a new entry at `path`: its parent as stored.
    fn placed(&self, path: &str) -> Result<String, String> {
        let name = &path[path.rfind('/').map_or(0, |i| i + 1)..];
        if self.refuses(name) {
            return Err(format!("invalid name: {path}"));
        }
        match parent(path) {
            None => Ok(path.to_string()),
            Some(p) => match self.lookup(p).map(|k| (self.nodes[&k], k)) {
                Some((Node::Dir { .. }, k)) => Ok(format!("{k}/{name}")),
                Some(_) => Err(format!("not a directory: {p}")),
                None => Err(format!("no such folder: {p}")),
            },
        }
    }

    pub fn refuses(&self, path: &str) -> bool {
        self.knobs.refuses_odd_names && path.split('/').any(|c| c.contains(':') || c.ends_with('.'))
    }

    pub fn stat(&self, path: &str) -> Option<Entry> {
        let key = self.lookup(path)?;
        Some(self.entry(self.nodes[&key]))
    }

    /// What the server's executor finds at `path`: on a folder that folds
    /// case, only under exactly this name (as sync/disk.rs reads it from
    /// the folder's entries: `x` is not there when `X` is).
    pub fn stat_exact(&self, path: &str) -> Option<Entry> {
        self.nodes.get(path).map(|n| self.entry(*n))
    }

    /// Whether writing at `path` would land on another name this folder
    /// holds (`path`, or a folder on the way, stored under another
    /// spelling), other than `except` (the source of a case-only rename)
    /// or a folder holding it: sync/disk.rs refuses that for good.
    pub fn taken_by_another(&self, path: &str, except: Option<&str>) -> bool {
        let mut prefixes: Vec<&str> = ancestors(path).collect();
        prefixes.reverse();
        prefixes.push(path);
        for q in prefixes {
            if self.nodes.contains_key(q) {
                continue;
            }
            return match self.lookup(q) {
                Some(k) => !except.is_some_and(|x| x == k || is_under(x, &k)),
                None => false,
            };
        }
        false
    }

    fn entry(&self, node: Node) -> Entry {
        match node {
            Node::File(ino) => {
                let i = &self.inodes[&ino];
                Entry {
                    kind: Kind::File,
                    size: i.content.len() as u64,
                    mtime_ns: i.mtime_ns,
                    mode: i.mode,
                    id: FileId { dev: 1, ino },
                    hash: None,
                }
            }
            Node::Dir { ino, mtime_ns } => Entry {
                kind: Kind::Dir,
                size: 0,
                mtime_ns,
                mode: self.mode(Some(0o755)),
                id: FileId { dev: 1, ino },
                hash: None,
            },
        }
    }

    pub fn read(&self, path: &str) -> Option<String> {
        match self.nodes.get(&self.lookup(path)?)? {
            Node::File(ino) => Some(self.inodes[ino].content.clone()),
            Node::Dir { .. } => None,
        }
    }

    pub fn is_dir(&self, path: &str) -> bool {
        self.stat(path).is_some_and(|e| e.kind == Kind::Dir)
    }

    /// Every entry, as a scan sees it.
    pub fn scan(&self) -> Vec<(String, Entry)> {
        self.nodes
            .iter()
            .map(|(p, n)| (p.clone(), self.entry(*n)))
            .collect()
    }

    /// `path` (as stored) and everything under it.
    pub fn subtree(&self, key: &str) -> Vec<String> {
        self.nodes
            .keys()
            .filter(|p| *p == key || is_under(p, key))
            .cloned()
            .collect()
    }

    /// Every content some name holds.
    pub fn contents(&self) -> BTreeSet<String> {
        self.nodes
            .values()
            .filter_map(|n| match n {
                Node::File(ino) => Some(self.inodes[ino].content.clone()),
                Node::Dir { .. } => None,
            })
            .collect()
    }

    /// Writes `content` at `path`: through the existing inode when
    /// `in_place` and a file is there (every hard link sees it), else as a
    /// new inode replacing what was there.
    pub fn write(
        &mut self,
        path: &str,
        content: &str,
        mtime_ns: i64,
        mode: Option<u32>,
        in_place: bool,
    ) -> Result<(), String> {
        let t = coarse(mtime_ns, self.knobs.precision_ns);
        let mode = self.mode(mode);
        match self.lookup(path).map(|k| (self.nodes[&k], k)) {
            Some((Node::Dir { .. }, _)) => Err(format!("is a directory: {path}")),
            Some((Node::File(ino), _)) if in_place => {
                let i = self.inodes.get_mut(&ino).expect("linked");
                i.content = content.to_string();
                i.mtime_ns = t;
                Ok(())
            }
            found => {
                let key = match found {
                    Some((_, k)) => k,
                    None => self.placed(path)?,
                };
                let ino = self.ino();
                let inode = Inode {
                    content: content.to_string(),
                    mtime_ns: t,
                    mode,
                };
                self.inodes.insert(ino, inode);
                self.unlink(&key);
                self.nodes.insert(key, Node::File(ino));
                Ok(())
            }
        }
    }

    pub fn set_mtime(&mut self, path: &str, mtime_ns: i64) {
        let t = coarse(mtime_ns, self.knobs.precision_ns);
        if let Some(Node::File(ino)) = self.lookup(path).map(|k| self.nodes[&k]) {
            self.inodes.get_mut(&ino).expect("linked").mtime_ns = t;
        }
    }

    pub fn chmod(&mut self, path: &str, mode: u32) {
        let mode = self.mode(Some(mode));
        if let Some(Node::File(ino)) = self.lookup(path).map(|k| self.nodes[&k]) {
            self.inodes.get_mut(&ino).expect("linked").mode = mode;
        }
    }

    pub fn mkdir(&mut self, path: &str, now_ns: i64) -> Result<(), String> {
        if self.lookup(path).is_some() {
            return Err(format!("exists: {path}"));
        }
        let key = self.placed(path)?;
        let ino = self.ino();
        let mtime_ns = coarse(now_ns, self.knobs.precision_ns);
        self.nodes.insert(key, Node::Dir { ino, mtime_ns });
        Ok(())
    }

    /// `mkdir -p` of the folders above `path`; the ones it made.
    pub fn mkdirs(&mut self, path: &str, now_ns: i64) -> Result<Vec<String>, String> {
        let mut made = Vec::new();
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            let dir = &path[..at + i];
            match self.stat(dir) {
                Some(e) if e.kind == Kind::Dir => {}
                Some(_) => return Err(format!("not a directory: {dir}")),
                None => {
                    self.mkdir(dir, now_ns)?;
                    made.push(dir.to_string());
                }
            }
            at += i + 1;
        }
        Ok(made)
    }

    fn unlink(&mut self, key: &str) {
        if let Some(Node::File(ino)) = self.nodes.remove(key) {
            if !self
                .nodes
                .values()
                .any(|n| matches!(n, Node::File(i) if *i == ino))
            {
                self.inodes.remove(&ino);
            }
        }
    }

    /// Removes a file, or an empty folder.
    pub fn remove(&mut self, path: &str) -> Result<(), String> {
        let key = self.lookup(path).ok_or(format!("no such file: {path}"))?;
        if self.subtree(&key).len() > 1 {
            return Err(format!("folder not empty: {path}"));
        }
        self.unlink(&key);
        Ok(())
    }

    /// `rm -r`.
    pub fn remove_all(&mut self, path: &str) {
        if let Some(key) = self.lookup(path) {
            for p in self.subtree(&key).into_iter().rev() {
                self.unlink(&p);
            }
        }
    }

    /// `rename(2)`: `to` may hold a file (replaced) when `from` is a file,
    /// or an empty folder when `from` is a folder; a folder moves with all
    /// it holds. `replace`: whether anything at `to` may be replaced.
    pub fn rename(&mut self, from: &str, to: &str, replace: bool) -> Result<(), String> {
        let fkey = self.lookup(from).ok_or(format!("no such file: {from}"))?;
        let same = self.lookup(to).as_deref() == Some(fkey.as_str());
        if is_under(to, &fkey) {
            return Err(format!("into itself: {from} -> {to}"));
        }
        if !same {
            if let Some(tkey) = self.lookup(to) {
                let from_dir = matches!(self.nodes[&fkey], Node::Dir { .. });
                let to_dir = matches!(self.nodes[&tkey], Node::Dir { .. });
                if !replace || from_dir != to_dir || self.subtree(&tkey).len() > 1 {
                    return Err(format!("exists: {to}"));
                }
                self.unlink(&tkey);
            }
        }
        let moved = self.subtree(&fkey);
        let nodes: Vec<(String, Node)> = moved
            .iter()
            .map(|p| (p.clone(), self.nodes.remove(p).expect("listed")))
            .collect();
        let tkey = match self.placed(to) {
            Ok(k) => k,
            Err(e) => {
                self.nodes.extend(nodes);
                return Err(e);
            }
        };
        for (p, n) in nodes {
            self.nodes.insert(format!("{tkey}{}", &p[fkey.len()..]), n);
        }
        Ok(())
    }

    /// `ln from to`.
    pub fn link(&mut self, from: &str, to: &str) -> Result<(), String> {
        let Some(Node::File(ino)) = self.lookup(from).map(|k| self.nodes[&k]) else {
            return Err(format!("not a file: {from}"));
        };
        if self.lookup(to).is_some() {
            return Err(format!("exists: {to}"));
        }
        let key = self.placed(to)?;
        self.nodes.insert(key, Node::File(ino));
        Ok(())
    }
}
