//! A power cut loses nothing a server reported done (issue 12; CONTRACT.md,
//! "Safety"): Server B runs under `strace`, a file comes from A, and the
//! trace must show, in this order, the received file flushed (`fsync`, or
//! on Linux one `syncfs` for the burst after its last write),
//! renamed into directory_b, directory_b flushed, and the journal flushed,
//! all before B's next write to a socket (its answer that the file is
//! stored). The same for Server A's lock queue: a queued update's snapshot
//! and description are flushed before they are renamed into A's state
//! directory, and their folder after, before A answers B. `strace` is
//! installed by `scripts/test-deps.sh`; Linux only.

#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lab3_tests::*;

const SECS: u64 = 20;

/// One line of the trace: the syscall and the rest of its line.
struct Call {
    name: String,
    line: String,
}

fn calls(trace: &str) -> Vec<Call> {
    trace
        .lines()
        .filter_map(|l| {
            // "<pid>  name(args) = result"
            let rest = l.split_once(' ')?.1.trim_start();
            let name = rest.split('(').next()?.to_string();
            Some(Call {
                name,
                line: rest.to_string(),
            })
        })
        .collect()
}

/// The quoted strings of a line, in order.
fn quoted(line: &str) -> Vec<String> {
    line.split('"')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

/// Whether `c` flushes (fsync, fdatasync) the file or folder `path`
/// (strace `-y` shows an fd as `N</path>`).
fn flushes(c: &Call, path: &Path) -> bool {
    matches!(c.name.as_str(), "fsync" | "fdatasync")
        && c.line.contains(&format!("<{}>", path.display()))
}

/// The syscalls the checks read.
const TRACED: &str =
    "trace=fsync,fdatasync,syncfs,rename,renameat,renameat2,write,writev,sendto,sendmsg";

fn need_strace() {
    if Command::new("strace").arg("-V").output().is_err() {
        // scripts/test-deps.sh installs it; .ci/run runs that first.
        panic!("strace is missing: run scripts/test-deps.sh");
    }
}

/// A server run under strace. Dropped without [`stop_traced`] (a failed
/// assertion), the traced server is killed too: killing strace alone
/// would leave it running.
struct Traced(Option<Server>);

impl std::ops::Deref for Traced {
    type Target = Server;
    fn deref(&self) -> &Server {
        self.0.as_ref().expect("running")
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        if let Some(server) = &self.0 {
            signal_traced(server, "-KILL");
        }
    }
}

/// Sends `signal` to the processes strace runs for `server`.
fn signal_traced(server: &Server, signal: &str) {
    let Some(strace_pid) = server.pid() else {
        return;
    };
    let children =
        std::fs::read_to_string(format!("/proc/{strace_pid}/task/{strace_pid}/children"))
            .unwrap_or_default();
    for pid in children.split_whitespace() {
        let _ = Command::new("kill").args([signal, pid]).status();
    }
}

/// `name` with `args`, run under `strace -f -y`, tracing into `trace_file`.
fn traced(name: &'static str, trace_file: &Path, args: Vec<String>) -> Traced {
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-y", "-qq", "-e", "signal=none", "-e", TRACED])
        .arg("-o")
        .arg(trace_file)
        .arg(bin(name));
    Traced(Some(Server::start_cmd(name, cmd, args)))
}

/// Stops a server started by [`traced`] gracefully, so that strace writes
/// out the whole trace, and returns the trace.
fn stop_traced(mut traced: Traced, trace_file: &Path) -> String {
    let mut server = traced.0.take().expect("running");
    signal_traced(&server, "-TERM");
    assert!(wait_until(Duration::from_secs(SECS), || !server.is_running()));
    server.kill();
    std::fs::read_to_string(trace_file).unwrap()
}

/// The index of the first rename whose target is `target`.
fn rename_into(calls: &[Call], target: &Path, trace: &str) -> usize {
    calls
        .iter()
        .position(|c| {
            c.name.starts_with("rename")
                && quoted(&c.line).last().map(String::as_str) == Some(&target.display().to_string())
        })
        .unwrap_or_else(|| panic!("no rename into {}:\n{trace}", target.display()))
}

/// Asserts that the source of the rename at `renamed` was written and
/// then flushed before it: on its own, or by one `syncfs` for the burst
/// (Linux) made after its last write.
fn assert_flushed_before_rename(calls: &[Call], renamed: usize, trace: &str) {
    let source = quoted(&calls[renamed].line)[0].clone();
    let last_write = calls[..renamed]
        .iter()
        .rposition(|c| c.name.starts_with("write") && c.line.contains(&format!("<{source}>")))
        .unwrap_or_else(|| panic!("no write to {source} seen before its rename:\n{trace}"));
    assert!(
        calls[last_write..renamed]
            .iter()
            .any(|c| flushes(c, Path::new(&source)) || c.name == "syncfs"),
        "{source} was not flushed before its rename:\n{trace}"
    );
}

/// Asserts that the journal was written (the install's landing line: the
/// peer's version about to be put in place) and flushed after that,
/// before the rename at `renamed`: a power cut that keeps the rename keeps
/// the line, and the restarted server takes the file for the peer's, not
/// for a new file of its own to send back (plain seed 343571 of the
/// simulation).
fn assert_landing_flushed_before_rename(
    calls: &[Call],
    renamed: usize,
    journal: &Path,
    trace: &str,
) {
    let at = format!("<{}>", journal.display());
    let last_write = calls[..renamed]
        .iter()
        .rposition(|c| c.name.starts_with("write") && c.line.contains(&at))
        .unwrap_or_else(|| panic!("no landing line written before the rename:\n{trace}"));
    assert!(
        calls[last_write..renamed]
            .iter()
            .any(|c| flushes(c, journal)),
        "the landing line was not flushed before the rename:\n{trace}"
    );
}

/// Asserts that after the rename at `renamed`, the folder `dir` is
/// flushed (and `also`, if given) before the server's next write to a
/// socket (its answer that what was renamed is stored).
fn assert_folder_flushed_before_answer(
    calls: &[Call],
    renamed: usize,
    dir: &Path,
    also: Option<&Path>,
    trace: &str,
) {
    let after = &calls[renamed + 1..];
    let dir_flushed = after
        .iter()
        .position(|c| flushes(c, dir))
        .unwrap_or_else(|| {
            panic!(
                "{} was not flushed after the rename:\n{trace}",
                dir.display()
            )
        });
    let also_flushed = also.map(|p| {
        after
            .iter()
            .position(|c| flushes(c, p))
            .unwrap_or_else(|| panic!("{} was not flushed after the rename:\n{trace}", p.display()))
    });
    let answered = after
        .iter()
        .position(|c| {
            matches!(c.name.as_str(), "write" | "writev" | "sendto" | "sendmsg")
                && (c.line.contains("TCP") || c.line.contains("socket:"))
        })
        .unwrap_or_else(|| panic!("no answer after the rename:\n{trace}"));
    assert!(
        dir_flushed < answered && also_flushed.is_none_or(|j| j < answered),
        "answered before the flushes (folder at {dir_flushed}, {also:?} at {also_flushed:?}, \
         answer at {answered} after the rename):\n{trace}"
    );
}

#[test]
fn a_received_file_is_flushed_renamed_its_folder_flushed_and_journaled_before_b_answers() {
    need_strace();
    let root = tempfile::tempdir().unwrap();
    let root_path = std::fs::canonicalize(root.path()).unwrap();
    let (dir_b, state_b) = (root_path.join("b"), root_path.join("b-state"));
    let trace_file = root_path.join("trace.txt");
    let args = [
        "--dir",
        &dir_b.display().to_string(),
        "--state-dir",
        &state_b.display().to_string(),
        "--listen",
        "127.0.0.1:0",
    ]
    .map(String::from)
    .to_vec();
    let b = traced("server_b", &trace_file, args);
    let dir_a = root_path.join("a");
    let a = start_a(&dir_a, &root_path.join("a-state"), &b.addr, &[]);
    assert!(
        wait_until(Duration::from_secs(SECS), || a
            .logged(&["reconciled with server B"])),
        "{}",
        a.output()
    );
    write_file(&dir_a, "report.txt", &vec![b'r'; 64 * 1024], None);
    assert!(
        wait_until(Duration::from_secs(SECS), || a.said(&[
            "A->B",
            "created",
            "report.txt"
        ])),
        "{}\n{}",
        a.output(),
        b.output()
    );
    let trace = stop_traced(b, &trace_file);
    let calls = calls(&trace);

    let target = dir_b.join("report.txt");
    let renamed = rename_into(&calls, &target, &trace);
    assert_flushed_before_rename(&calls, renamed, &trace);
    let journal = state_b.join("core-journal.jsonl");
    assert_landing_flushed_before_rename(&calls, renamed, &journal, &trace);
    assert_folder_flushed_before_answer(&calls, renamed, &dir_b, Some(&journal), &trace);
    // And every other rename into the folder or the state directory (the
    // TLS key and certificate made at this first start, ...): each of a
    // file written and flushed, its folder flushed before B talks.
    for (renamed, c) in calls.iter().enumerate() {
        let Some(target) = c
            .name
            .starts_with("rename")
            .then(|| quoted(&c.line))
            .and_then(|q| q.last().cloned())
        else {
            continue;
        };
        let target = Path::new(&target);
        if target.starts_with(&dir_b) || target.starts_with(&state_b) {
            assert_flushed_before_rename(&calls, renamed, &trace);
            let folder = target.parent().unwrap();
            assert_folder_flushed_before_answer(&calls, renamed, folder, None, &trace);
        }
    }
    assert!(
        calls
            .iter()
            .any(|c| c.name.starts_with("rename") && c.line.contains("/tls/")),
        "no TLS key written at B's first start:\n{trace}"
    );
}

/// Server A with `held.txt` locked: B's update of it is queued at A. The
/// snapshot (the received content, moved into `queue/`) and the entry's
/// description are each flushed before their rename, and the queue's
/// folder after, before A answers B that the update is stored: a power
/// cut must not leave a queue entry whose snapshot is empty.
#[test]
fn a_queued_update_is_flushed_renamed_and_its_folder_flushed_before_a_answers() {
    need_strace();
    let root = tempfile::tempdir().unwrap();
    let root_path = std::fs::canonicalize(root.path()).unwrap();
    let (dir_a, state_a) = (root_path.join("a"), root_path.join("a-state"));
    let dir_b = root_path.join("b");
    write_file(&dir_a, "held.txt", b"A's copy", None);
    let b = start_b(&dir_b, &root_path.join("b-state"), "127.0.0.1:0", &[]);
    let trace_file = root_path.join("trace.txt");
    let args = [
        "--dir",
        &dir_a.display().to_string(),
        "--state-dir",
        &state_a.display().to_string(),
        "--listen",
        "127.0.0.1:0",
        "--peer",
        &b.addr,
    ]
    .map(String::from)
    .to_vec();
    let a = traced("server_a", &trace_file, args);
    assert!(
        wait_until(Duration::from_secs(SECS), || {
            read(&dir_b.join("held.txt")).as_deref() == Some(b"A's copy".as_slice())
        }),
        "{}\n{}",
        a.output(),
        b.output()
    );
    assert_ok(&lab3(&a.addr, &["lock", "held.txt"]));
    write_file(&dir_b, "held.txt", &vec![b'q'; 64 * 1024], None);
    assert!(
        wait_until(Duration::from_secs(SECS), || a
            .said(&["queued", "held.txt"])),
        "{}\n{}",
        a.output(),
        b.output()
    );
    // A's answer to B follows the announcement within moments; the trace
    // is checked for it in full once A has stopped.
    let queue = state_a.join("queue");
    wait_until(Duration::from_secs(SECS), || {
        let trace = std::fs::read_to_string(&trace_file).unwrap_or_default();
        let queue = format!("\"{}/", queue.display());
        trace.rfind(&queue).is_some_and(|at| {
            trace[at..]
                .lines()
                .any(|l| l.contains(" write") && (l.contains("TCP") || l.contains("socket:")))
        })
    });
    assert_eq!(
        read(&dir_a.join("held.txt")).as_deref(),
        Some(b"A's copy".as_slice())
    );
    let trace = stop_traced(a, &trace_file);
    let calls = calls(&trace);

    let into_queue: Vec<usize> = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.name.starts_with("rename")
                && quoted(&c.line)
                    .last()
                    .is_some_and(|t| Path::new(t).starts_with(&queue))
        })
        .map(|(i, _)| i)
        .collect();
    let is_snapshot = |i: &usize| {
        let target = quoted(&calls[*i].line).last().cloned().unwrap_or_default();
        Path::new(&target)
            .file_name()
            .is_some_and(|n| n.to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
    };
    assert!(
        into_queue.iter().any(is_snapshot),
        "no snapshot renamed into {}:\n{trace}",
        queue.display()
    );
    for &renamed in &into_queue {
        assert_flushed_before_rename(&calls, renamed, &trace);
        let target = quoted(&calls[renamed].line).last().cloned().unwrap();
        let folder = Path::new(&target).parent().unwrap().to_path_buf();
        assert_folder_flushed_before_answer(&calls, renamed, &folder, None, &trace);
    }
}
