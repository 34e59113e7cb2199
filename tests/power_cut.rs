//! A power cut loses nothing a server reported done (issue 12; CONTRACT.md,
//! "Safety"): Server B runs under `strace`, a file comes from A, and the
//! trace must show, in this order, the received file flushed (`fsync`, or
//! on Linux one `syncfs` for the burst after its last write),
//! renamed into directory_b, directory_b flushed, and the journal flushed,
//! all before B's next write to a socket (its answer that the file is
//! stored). `strace` is installed by `scripts/test-deps.sh`; Linux only.

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

#[test]
fn a_received_file_is_flushed_renamed_its_folder_flushed_and_journaled_before_b_answers() {
    if Command::new("strace").arg("-V").output().is_err() {
        // scripts/test-deps.sh installs it; .ci/run runs that first.
        panic!("strace is missing: run scripts/test-deps.sh");
    }
    let root = tempfile::tempdir().unwrap();
    let root_path = std::fs::canonicalize(root.path()).unwrap();
    let (dir_b, state_b) = (root_path.join("b"), root_path.join("b-state"));
    let trace_file = root_path.join("trace.txt");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-y", "-qq", "-e", "signal=none", "-e"])
        .arg("trace=fsync,fdatasync,syncfs,rename,renameat,renameat2,write,writev,sendto,sendmsg")
        .arg("-o")
        .arg(&trace_file)
        .arg(bin("server_b"));
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
    let mut b = Server::start_cmd("server_b", cmd, args);
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
    // Stop B gracefully so that strace writes out the whole trace.
    let strace_pid = b.pid().unwrap();
    let children =
        std::fs::read_to_string(format!("/proc/{strace_pid}/task/{strace_pid}/children"))
            .unwrap_or_default();
    for pid in children.split_whitespace() {
        let _ = Command::new("kill").args(["-TERM", pid]).status();
    }
    assert!(wait_until(Duration::from_secs(SECS), || !b.is_running()));
    b.kill();
    let trace = std::fs::read_to_string(&trace_file).unwrap();
    let calls = calls(&trace);

    let target = dir_b.join("report.txt");
    let renamed = calls
        .iter()
        .position(|c| {
            c.name.starts_with("rename")
                && quoted(&c.line).last().map(String::as_str) == Some(&target.display().to_string())
        })
        .unwrap_or_else(|| panic!("no rename into {}:\n{trace}", target.display()));
    let source = quoted(&calls[renamed].line)[0].clone();
    // Flushed on its own, or by one `syncfs` for the burst (Linux) made
    // after its last write.
    let last_write = calls[..renamed]
        .iter()
        .rposition(|c| c.name.starts_with("write") && c.line.contains(&format!("<{source}>")))
        .unwrap_or(0);
    assert!(
        calls[last_write..renamed]
            .iter()
            .any(|c| flushes(c, Path::new(&source)) || c.name == "syncfs"),
        "the received file {source} was not flushed before its rename:\n{trace}"
    );
    let after = &calls[renamed + 1..];
    let dir_flushed = after
        .iter()
        .position(|c| flushes(c, &dir_b))
        .unwrap_or_else(|| panic!("directory_b was not flushed after the rename:\n{trace}"));
    let journal = state_b.join("core-journal.jsonl");
    let journaled = after
        .iter()
        .position(|c| flushes(c, &journal))
        .unwrap_or_else(|| panic!("the journal was not flushed after the rename:\n{trace}"));
    let answered = after
        .iter()
        .position(|c| {
            matches!(c.name.as_str(), "write" | "writev" | "sendto" | "sendmsg")
                && (c.line.contains("TCP") || c.line.contains("socket:"))
        })
        .unwrap_or_else(|| panic!("B never answered after the rename:\n{trace}"));
    assert!(
        dir_flushed < answered && journaled < answered,
        "B answered before it flushed (folder at {dir_flushed}, journal at {journaled}, \
         answer at {answered} after the rename):\n{trace}"
    );
}
