//! Kill -9 soak (CONTRACT.md, "Safety": killing either server at any moment
//! loses no data and leaves no partial file in either directory; after
//! restart the two converge).
//!
//! A seeded random workload of creates, edits (in place and save-by-rename),
//! renames, deletes and re-creations of deleted paths, in subfolders, with a
//! few files of several MiB, runs on both sides while one server or the
//! other is killed with SIGKILL at random points and restarted. Each path is
//! only ever written at one side (a file's name starts with its side's
//! letter, `a-12.txt`, in folders both sides share), so the expected end
//! state is unambiguous: the model of what was last written to each path.
//!
//! Checked at every kill: each side's own files are exactly what was
//! written there (the engine never changes or resurrects them), every copy
//! of the other side's files is a complete version that was written (never
//! a prefix), and no `.lab3-*` name is in either folder. Checked at the end
//! (and every `LAB3_SOAK_CHECK_EVERY` cycles): both folders converge to the
//! model, byte for byte, with the same mtimes and modes.
//!
//! `cargo test --test soak` runs the short soak (3 kill cycles);
//! `scripts/soak.sh` the long one (`LAB3_SOAK_CYCLES`, `LAB3_SOAK_MINUTES`).
//! `LAB3_SOAK_SEED` replays a workload (the kill timing still varies);
//! `LAB3_SOAK_LOG=FILE` keeps every server instance's output there, and on
//! a failure both state directories (journals, kept copies) and folders in
//! `FILE.state/`.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lab3_tests::*;

/// Folders both sides create files in.
const FOLDERS: [&str; 5] = ["", "docs", "docs/old", "media", "deep/er/still"];
/// Files per side, at most (creates give way to edits and deletes beyond).
const MAX_FILES: usize = 40;
/// Big files per side, at most.
const MAX_BIG: usize = 2;
/// The size of a big file, about.
const BIG: usize = 4 * 1024 * 1024;
/// How long the folders may take to converge after a restart (A's redial
/// backoff reaches 5 s; a debug build on a loaded machine is slow).
const CONVERGE: Duration = Duration::from_secs(90);

/// splitmix64: small, seedable, good enough for a workload.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.next() as usize % v.len()]
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

fn env_num(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn fingerprint(content: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    content.hash(&mut h);
    h.finish()
}

/// The side that owns `path`: the first letter of its file name.
fn owner(path: &str) -> usize {
    let name = path.rsplit('/').next().unwrap_or(path);
    usize::from(name.starts_with('b'))
}

/// What one side's workload wrote.
#[derive(Default)]
struct Own {
    /// Path to the content last written there.
    files: BTreeMap<String, Vec<u8>>,
    /// Paths deleted (or renamed away), for re-creation.
    deleted: Vec<String>,
    /// The next number in a new file name.
    next: u64,
}

/// The workload and what it expects.
struct Model {
    rng: Rng,
    own: [Own; 2],
    /// Every complete version ever written, by fingerprint: a label for messages.
    versions: HashMap<u64, String>,
    written: u64,
    ops: BTreeMap<&'static str, u64>,
    /// Things that must never happen, seen along the way.
    anomalies: Vec<String>,
    /// A staging folder on the same filesystem, for saves by rename.
    staging: PathBuf,
}

const LETTER: [&str; 2] = ["a", "b"];

impl Model {
    fn new(seed: u64, staging: PathBuf) -> Model {
        std::fs::create_dir_all(&staging).unwrap();
        Model {
            rng: Rng(seed),
            own: Default::default(),
            versions: HashMap::new(),
            written: 0,
            ops: BTreeMap::new(),
            anomalies: Vec::new(),
            staging,
        }
    }

    fn expected(&self) -> BTreeMap<&str, &[u8]> {
        self.own
            .iter()
            .flat_map(|o| o.files.iter().map(|(p, c)| (p.as_str(), c.as_slice())))
            .collect()
    }

    fn new_path(&mut self, side: usize) -> String {
        let folder = *self.rng.pick(&FOLDERS);
        let n = self.own[side].next;
        self.own[side].next += 1;
        let ext = *self.rng.pick(&["txt", "bin", "md"]);
        let name = format!("{}-{n}.{ext}", LETTER[side]);
        if folder.is_empty() {
            name
        } else {
            format!("{folder}/{name}")
        }
    }

    /// A new version for `path`: a unique header, then random bytes; never
    /// the length of `old` (so that even two edits within one clock tick
    /// differ in size, as lab3's quick check needs).
    fn content(&mut self, path: &str, big: bool, old: Option<usize>) -> Vec<u8> {
        self.written += 1;
        let mut len = if big {
            BIG + self.rng.range(0, 4096) as usize
        } else {
            self.rng.range(0, 20_000) as usize
        };
        if Some(len + 64) == old {
            len += 1;
        }
        let mut c = format!("{path} version {}\n", self.written).into_bytes();
        c.resize(64, b' ');
        c.extend(self.rng.bytes(len));
        self.versions.insert(
            fingerprint(&c),
            format!("{path} v{} ({} bytes)", self.written, c.len()),
        );
        c
    }

    /// Checks that the owner's copy of `path` is what was written, before changing it.
    fn check_own(&mut self, dir: &Path, path: &str) {
        let want = &self.own[owner(path)].files[path];
        let got = read(&dir.join(path));
        if got.as_deref() != Some(want.as_slice()) {
            let what = describe(&self.versions, got.as_deref());
            self.anomalies.push(format!(
                "{}'s own {path} was changed under it: {what}",
                LETTER[owner(path)].to_uppercase()
            ));
        }
    }

    /// One random operation at `side` in `dir`.
    fn op(&mut self, side: usize, dir: &Path) {
        let n = self.own[side].files.len();
        let roll = self.rng.range(0, 99);
        if n == 0 || (roll < 35 && n < MAX_FILES) {
            let big = self.rng.chance(6) && self.big_count(side) < MAX_BIG;
            let path = self.new_path(side);
            let c = self.content(&path, big, None);
            let by_rename = big || self.rng.chance(50);
            self.save(dir, &path, c, by_rename, "create");
        } else if roll < 65 {
            let path = self.pick_file(side);
            self.check_own(dir, &path);
            let old = self.own[side].files[&path].len();
            let big = old > BIG / 2;
            let c = self.content(&path, big, Some(old));
            // Big files are saved by rename (a multi-MiB in-place write would
            // be a legitimately half-written file for a moment).
            let by_rename = big || self.rng.chance(50);
            self.save(dir, &path, c, by_rename, "edit");
        } else if roll < 77 {
            let from = self.pick_file(side);
            self.check_own(dir, &from);
            let to = self.new_path(side);
            retry(|| {
                mkparent(&dir.join(&to));
                std::fs::rename(dir.join(&from), dir.join(&to))
            });
            let c = self.own[side].files.remove(&from).unwrap();
            self.own[side].files.insert(to, c);
            self.own[side].deleted.push(from);
            *self.ops.entry("rename").or_default() += 1;
        } else if roll < 92 || self.own[side].deleted.is_empty() {
            let path = self.pick_file(side);
            self.check_own(dir, &path);
            if let Err(e) = std::fs::remove_file(dir.join(&path)) {
                self.anomalies
                    .push(format!("deleting {}'s own {path}: {e}", LETTER[side]));
            }
            self.own[side].files.remove(&path);
            self.own[side].deleted.push(path);
            *self.ops.entry("delete").or_default() += 1;
        } else {
            let i = self.rng.range(0, self.own[side].deleted.len() as u64 - 1) as usize;
            let path = self.own[side].deleted.swap_remove(i);
            let c = self.content(&path, false, None);
            self.save(dir, &path, c, false, "re-create");
        }
    }

    fn pick_file(&mut self, side: usize) -> String {
        let i = self.rng.range(0, self.own[side].files.len() as u64 - 1) as usize;
        self.own[side].files.keys().nth(i).unwrap().clone()
    }

    fn big_count(&self, side: usize) -> usize {
        self.own[side]
            .files
            .values()
            .filter(|c| c.len() > BIG / 2)
            .count()
    }

    /// Writes `c` to `dir/path`, in place or by rename from a staging file.
    fn save(&mut self, dir: &Path, path: &str, c: Vec<u8>, by_rename: bool, op: &'static str) {
        let target = dir.join(path);
        if by_rename {
            let staged = self.staging.join("staged");
            std::fs::write(&staged, &c).unwrap();
            retry(|| {
                mkparent(&target);
                std::fs::rename(&staged, &target)
            });
        } else {
            retry(|| {
                mkparent(&target);
                std::fs::write(&target, &c)
            });
        }
        self.own[owner(path)].files.insert(path.to_string(), c);
        *self.ops.entry(op).or_default() += 1;
    }
}

fn mkparent(p: &Path) {
    if let Some(parent) = p.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
}

/// Runs a file operation, again if a folder vanished in between (the engine
/// removes folders that an applied delete left empty).
fn retry(mut f: impl FnMut() -> std::io::Result<()>) {
    for attempt in 0.. {
        match f() {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 20 => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("workload file operation failed: {e}"),
        }
    }
}

fn describe(versions: &HashMap<u64, String>, got: Option<&[u8]>) -> String {
    match got {
        None => "missing".into(),
        Some(c) => match versions.get(&fingerprint(c)) {
            Some(label) => format!("holds {label}"),
            None => format!("holds {} bytes that are no version written", c.len()),
        },
    }
}

/// Every name below `dir` (files and folders) that is a lab3 temporary.
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.map_while(Result::ok) {
            if e.file_name().to_string_lossy().starts_with(".lab3-") {
                out.push(e.path());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    out
}

/// The invariants that hold at any moment (checked at each kill).
fn check_anytime(model: &mut Model, dirs: [&Path; 2], when: &str) {
    for (side, dir) in dirs.into_iter().enumerate() {
        for t in temporaries(dir) {
            model
                .anomalies
                .push(format!("{when}: temporary {} in a folder", t.display()));
        }
        let mine: Vec<String> = files_in(dir)
            .into_iter()
            .filter(|p| owner(p) == side)
            .collect();
        let expected: Vec<&String> = model.own[side].files.keys().collect();
        if mine.iter().collect::<Vec<_>>() != expected {
            let extra: Vec<_> = mine
                .iter()
                .filter(|p| !model.own[side].files.contains_key(*p))
                .collect();
            let missing: Vec<_> = expected.iter().filter(|p| !mine.contains(p)).collect();
            model.anomalies.push(format!(
                "{when}: {}'s own files: extra {extra:?}, missing {missing:?}",
                LETTER[side]
            ));
        }
        for p in files_in(dir) {
            let c = read(&dir.join(&p)).unwrap_or_default();
            let known = model.versions.contains_key(&fingerprint(&c));
            if owner(&p) == side {
                if model.own[side].files.get(&p).is_some_and(|w| *w != c) {
                    let what = describe(&model.versions, Some(&c));
                    model
                        .anomalies
                        .push(format!("{when}: {}'s own {p} {what}", LETTER[side]));
                }
            } else if !known && !c.is_empty() {
                // An empty copy can be a legitimate snapshot of an in-place
                // write between its truncate and its write; anything else
                // must be a whole version.
                model.anomalies.push(format!(
                    "{when}: {}'s copy of {p} is {} bytes that are no version written (partial?)",
                    LETTER[side],
                    c.len()
                ));
            }
        }
    }
}

/// How each folder differs from the model (empty when both match).
fn differences(model: &Model, dirs: [&Path; 2]) -> Vec<String> {
    let want = model.expected();
    let mut out = Vec::new();
    for (side, dir) in dirs.into_iter().enumerate() {
        let have = files_in(dir);
        for p in &have {
            match want.get(p.as_str()) {
                None => out.push(format!("{}: extra {p}", LETTER[side])),
                Some(w) => {
                    let got = read(&dir.join(p));
                    if got.as_deref() != Some(*w) {
                        out.push(format!(
                            "{}: {p} {}, want {}",
                            LETTER[side],
                            describe(&model.versions, got.as_deref()),
                            describe(&model.versions, Some(w))
                        ));
                    }
                }
            }
        }
        for p in want.keys() {
            if !have.iter().any(|h| h == p) {
                out.push(format!("{}: missing {p}", LETTER[side]));
            }
        }
    }
    out
}

fn tail(lines: &Lines, n: usize) -> String {
    let l = lines.lock().unwrap();
    l[l.len().saturating_sub(n)..].join("\n")
}

fn tails(pair: &Pair) -> String {
    format!(
        "--- A stdout (tail) ---\n{}\n--- A stderr (tail) ---\n{}\n--- B stdout (tail) ---\n{}\n--- B stderr (tail) ---\n{}",
        tail(&pair.a.stdout, 60),
        tail(&pair.a.stderr, 60),
        tail(&pair.b.stdout, 60),
        tail(&pair.b.stderr, 60)
    )
}

/// Waits until both folders equal the model (and each other, mtimes and
/// modes included); panics with the differences otherwise.
fn converge(pair: &Pair, model: &Model, seed: u64, cycle: u64, log: Option<&Path>) -> Duration {
    let started = Instant::now();
    let dirs = [pair.dir_a.as_path(), pair.dir_b.as_path()];
    loop {
        let diff = differences(model, dirs);
        if diff.is_empty() && same_tree(dirs[0], dirs[1]) {
            return started.elapsed();
        }
        if started.elapsed() > CONVERGE {
            keep_evidence(pair, log);
            panic!(
                "seed {seed}, cycle {cycle}: the folders did not converge to what was written in {CONVERGE:?}:\n  {}\n(same_tree: {})\ninvariant violations before:\n  {}\n{}",
                diff.join("\n  "),
                same_tree(dirs[0], dirs[1]),
                model.anomalies.join("\n  "),
                tails(pair)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn assert_no_anomalies(pair: &Pair, model: &Model, seed: u64, log: Option<&Path>) {
    if !model.anomalies.is_empty() {
        keep_evidence(pair, log);
    }
    assert!(
        model.anomalies.is_empty(),
        "seed {seed}: {} invariant violations:\n  {}\n{}",
        model.anomalies.len(),
        model.anomalies.join("\n  "),
        tails(pair)
    );
}

/// Appends `server`'s output so far to `log`.
fn keep_output(log: &Path, server: &Server, when: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    writeln!(f, "===== {} at {when}\n{}", server.name, server.output()).unwrap();
}

/// On a failure with `LAB3_SOAK_LOG=FILE`: both servers' output so far,
/// and a copy of both state directories and folders in `FILE.state/` (the
/// temporary root goes with the panic).
fn keep_evidence(pair: &Pair, log: Option<&Path>) {
    let Some(log) = log else { return };
    keep_output(log, &pair.a, "the failure");
    keep_output(log, &pair.b, "the failure");
    let mut to = log.as_os_str().to_owned();
    to.push(".state");
    let to = PathBuf::from(to);
    for (from, name) in [
        (&pair.state_a, "state_a"),
        (&pair.state_b, "state_b"),
        (&pair.dir_a, "directory_a"),
        (&pair.dir_b, "directory_b"),
    ] {
        copy_tree(from, &to.join(name));
    }
    eprintln!(
        "soak: state directories and folders kept in {}",
        to.display()
    );
}

fn copy_tree(from: &Path, to: &Path) {
    let _ = std::fs::create_dir_all(to);
    let Ok(entries) = std::fs::read_dir(from) else {
        return;
    };
    for e in entries.map_while(Result::ok) {
        let target = to.join(e.file_name());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            copy_tree(&e.path(), &target);
        } else {
            let _ = std::fs::copy(e.path(), target);
        }
    }
}

fn count_files(dir: &Path) -> usize {
    files_in(dir).len()
}

#[test]
fn kill_9_at_random_points_loses_nothing_and_both_converge() {
    let cycles = env_num("LAB3_SOAK_CYCLES").unwrap_or(3).max(1);
    let minutes = env_num("LAB3_SOAK_MINUTES");
    let check_every = env_num("LAB3_SOAK_CHECK_EVERY").unwrap_or(cycles).max(1);
    let seed = env_num("LAB3_SOAK_SEED").unwrap_or_else(|| now_ns() as u64);
    println!("soak: seed {seed} (replay with LAB3_SOAK_SEED={seed}), {cycles} cycles");

    // LAB3_SOAK_LOG=FILE keeps the output of every server instance there.
    let log = std::env::var_os("LAB3_SOAK_LOG").map(PathBuf::from);
    let mut pair = Pair::start_linked();
    let mut model = Model::new(seed, pair.root.path().join("staging"));
    // One big file on each side from the start; more come at random.
    for side in 0..2 {
        let dir = if side == 0 { &pair.dir_a } else { &pair.dir_b }.clone();
        let path = model.new_path(side);
        let c = model.content(&path, true, None);
        model.save(&dir, &path, c, true, "create");
    }
    let started = Instant::now();
    let mut kills = [0u64; 2];
    let mut done = 0;
    let mut checks = Vec::new();
    for cycle in 1..=cycles {
        if minutes.is_some_and(|m| started.elapsed() > Duration::from_secs(m * 60)) {
            println!("soak: time is up after {done} cycles");
            break;
        }
        // A burst of work on both sides while the link is up...
        let burst = model.rng.range(5, 40);
        for _ in 0..burst {
            let side = model.rng.range(0, 1) as usize;
            let dir = if side == 0 { &pair.dir_a } else { &pair.dir_b }.clone();
            model.op(side, &dir);
            let pause = model.rng.range(0, 60);
            std::thread::sleep(Duration::from_millis(pause));
        }
        // ...then a kill at a random moment of what follows.
        let pause = model.rng.range(0, 600);
        std::thread::sleep(Duration::from_millis(pause));
        let victim = model.rng.range(0, 1) as usize;
        if victim == 0 {
            pair.a.kill();
        } else {
            pair.b.kill();
        }
        kills[victim] += 1;
        let when = format!("cycle {cycle}, {} killed", LETTER[victim].to_uppercase());
        check_anytime(&mut model, [&pair.dir_a, &pair.dir_b], &when);
        // Work goes on in both folders while it is down.
        let down = model.rng.range(0, 12);
        for _ in 0..down {
            let side = model.rng.range(0, 1) as usize;
            let dir = if side == 0 { &pair.dir_a } else { &pair.dir_b }.clone();
            model.op(side, &dir);
        }
        if let Some(log) = &log {
            let victim = if victim == 0 { &pair.a } else { &pair.b };
            keep_output(log, victim, &when);
        }
        if victim == 0 {
            pair.restart_a();
        } else {
            pair.restart_b();
        }
        done = cycle;
        if cycle % check_every == 0 || cycle == cycles {
            let took = converge(&pair, &model, seed, cycle, log.as_deref());
            checks.push(took);
            println!(
                "soak: cycle {cycle}: converged in {took:.1?} ({} + {} files, {} kills of A, {} of B, {:.0?} so far)",
                count_files(&pair.dir_a),
                count_files(&pair.dir_b),
                kills[0],
                kills[1],
                started.elapsed()
            );
            assert_no_anomalies(&pair, &model, seed, log.as_deref());
        }
    }
    if done % check_every != 0 && done != cycles {
        checks.push(converge(&pair, &model, seed, done, log.as_deref()));
    }
    assert_no_anomalies(&pair, &model, seed, log.as_deref());
    if let Some(log) = &log {
        keep_output(log, &pair.a, "the end");
        keep_output(log, &pair.b, "the end");
    }
    // Each path is written at one side only, so a kept conflict copy can only
    // be a copy the journal did not know was synced (a kill between applying
    // a file and journaling it): harmless, but counted.
    let kept = [&pair.state_a, &pair.state_b].map(|s| files_in(&s.join("conflicts")));
    for (side, copies) in kept.iter().enumerate() {
        for c in copies {
            let content = read(
                &[&pair.state_a, &pair.state_b][side]
                    .join("conflicts")
                    .join(c),
            );
            println!(
                "soak: conflict copy at {}: {c}: {}",
                LETTER[side].to_uppercase(),
                describe(&model.versions, content.as_deref())
            );
        }
    }
    println!(
        "soak: seed {seed}: {done} cycles ({} kills of A, {} of B) in {:.0?}; ops {:?}; \
         {} versions written; {} files at the end; slowest convergence {:.1?}; \
         conflict copies kept: {} at A, {} at B",
        kills[0],
        kills[1],
        started.elapsed(),
        model.ops,
        model.written,
        model.expected().len(),
        checks.iter().max().copied().unwrap_or_default(),
        kept[0].len(),
        kept[1].len(),
    );
}
