//! The command line: clap for the conventional spellings, plus the lab's
//! own `-lock -<index>` / `-unlock -<index>`, rewritten before clap sees them.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// lab3: the composite listing of Server A's and Server B's folders, file
/// locks, and what the two servers are doing.
///
/// Examples:
///   lab3                      list both folders, merged and indexed
///   lab3 --json               the same as one JSON document
///   lab3 -lock -3             lock the file at index 3 at Server A
///   lab3 -unlock -3           unlock it and apply Server B's queued updates
///   lab3 lock notes.txt       lock by name
///   lab3 locks                list the locks and their queues
///   lab3 watch                follow every action of both servers (Ctrl-C stops)
///   lab3 watch --json         the same, one JSON object per line
///   lab3 status               the A-B link, transfers, locks
///   lab3 versions notes.txt   the kept earlier versions of a file
///   lab3 restore notes.txt    put the newest kept version back (it syncs)
///   lab3 --server host:6000 --token s3cret status
///   lab3 --server-fingerprint sha256:3f1c…   refuse any server A but this one
///   lab3 completions bash > ~/.local/share/bash-completion/completions/lab3
#[derive(Debug, Parser)]
#[command(name = "lab3", version, verbatim_doc_comment)]
pub struct Cli {
    /// Server A's address; or several, comma-separated, tried in turn
    /// (`A,B`: Server B answers listings and status when A is down).
    #[arg(
        long,
        global = true,
        env = "LAB3_SERVER",
        value_name = "ADDR[,ADDR...]",
        default_value = "127.0.0.1:6000"
    )]
    pub server: String,
    /// Shared secret, if the servers require one (proven, never sent).
    #[arg(long, global = true, env = "LAB3_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The certificate fingerprint the server must show (`sha256:…`, as
    /// it prints at start and `lab3 status` shows); another is refused.
    #[arg(
        long,
        global = true,
        env = "LAB3_SERVER_FINGERPRINT",
        value_name = "FINGERPRINT"
    )]
    pub server_fingerprint: Option<common::tls::Fingerprint>,
    /// Print one JSON document instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The composite listing (the default).
    List,
    /// Lock a file at Server A, by index in the listing or by name.
    ///
    /// A number is an index; anything else names a file of the listing.
    ///
    /// Examples:
    ///   lab3 lock 3
    ///   lab3 -lock -3
    ///   lab3 lock notes.txt
    ///   lab3 lock --new report.csv   # a path that does not exist yet
    #[command(verbatim_doc_comment)]
    Lock {
        #[arg(required_unless_present = "index")]
        target: Option<String>,
        /// TARGET names a path that need not be in the listing yet (a file
        /// Server B is about to create), even if it looks like a number.
        #[arg(long)]
        new: bool,
        /// The `-lock -<index>` spelling (whatever follows the dash).
        #[arg(long, hide = true, allow_hyphen_values = true, conflicts_with_all = ["target", "new"])]
        index: Option<String>,
    },
    /// Unlock a file; Server A applies its queued updates in order.
    Unlock {
        #[arg(required_unless_present = "index")]
        target: Option<String>,
        /// The `-unlock -<index>` spelling (whatever follows the dash).
        #[arg(
            long,
            hide = true,
            allow_hyphen_values = true,
            conflicts_with = "target"
        )]
        index: Option<String>,
    },
    /// The locks and how many updates wait in each queue.
    Locks,
    /// Follow what both servers do, one line per action, until Ctrl-C.
    ///
    /// Each line: time, server ([A] or [B]), direction, action, path, size.
    /// With --json, one JSON object per line (the protocol's `action`).
    ///
    /// Examples:
    ///   lab3 watch
    ///   lab3 watch --json | jq -r 'select(.action == "deleted") | .path'
    #[command(verbatim_doc_comment)]
    Watch,
    /// Server A's view: the link to Server B (up or down, since when, clock
    /// skew), the last reconciliation, transfers in flight, locks and queues.
    ///
    /// Examples:
    ///   lab3 status
    ///   lab3 status --json | jq .link.up
    #[command(verbatim_doc_comment)]
    Status,
    /// The kept earlier versions of a file at both servers: what sync
    /// replaced or deleted there, and the losers of conflicts.
    ///
    /// Examples:
    ///   lab3 versions notes.txt
    ///   lab3 versions docs/report.csv --json
    #[command(verbatim_doc_comment)]
    Versions {
        /// The file's path in the listing (`docs/report.csv`).
        path: String,
    },
    /// Put a kept version back at its server as a new change, which then
    /// syncs; what the file held there is kept as a version in turn.
    ///
    /// Examples:
    ///   lab3 restore notes.txt                   # the newest kept version
    ///   lab3 restore notes.txt --version b-3f9c1e2b
    #[command(verbatim_doc_comment)]
    Restore {
        /// The file's path (`docs/report.csv`).
        path: String,
        /// The version's ID, as `lab3 versions` shows it (default: the newest).
        #[arg(long, value_name = "ID")]
        version: Option<String>,
    },
    /// Print a shell completion script for lab3.
    ///
    /// Examples:
    ///   lab3 completions bash > ~/.local/share/bash-completion/completions/lab3
    ///   lab3 completions zsh > ~/.zfunc/_lab3     # with fpath+=~/.zfunc in ~/.zshrc
    ///   lab3 completions fish > ~/.config/fish/completions/lab3.fish
    #[command(verbatim_doc_comment)]
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    use clap::CommandFactory;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "lab3", &mut script);
    script
}

/// Parses the command line; on failure prints help, version or one error
/// line and returns the exit status to use.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, ExitCode> {
    match Cli::try_parse_from(rewrite_lab_flags(args.into_iter().collect())) {
        Ok(cli) => Ok(cli),
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("malformed command");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("lab3: {first} (try 'lab3 --help')");
            Err(ExitCode::from(2))
        }
    }
}

/// `-lock -3` becomes `lock --index=3`, `-unlock -3` `unlock --index=3`,
/// `--lock X` `lock X`. Whatever follows the dash of `-lock -<x>` is taken
/// as an index (`-lock -` and `-lock -abc` are bad indexes, not names).
fn rewrite_lab_flags(mut args: Vec<OsString>) -> Vec<OsString> {
    let mut i = 1;
    while i < args.len() {
        let word = args[i].to_str().unwrap_or("");
        if let Some(cmd) = ["lock", "unlock"].into_iter().find(|c| {
            word.strip_prefix('-')
                .map(|w| w.strip_prefix('-').unwrap_or(w))
                == Some(c)
        }) {
            args[i] = cmd.into();
            if let Some(next) = args.get(i + 1).and_then(|a| a.to_str()) {
                if let Some(n) = next.strip_prefix('-').filter(|n| !n.starts_with('-')) {
                    args[i + 1] = format!("--index={n}").into();
                }
            }
        }
        i += 1;
    }
    args
}

/// What a lock or unlock command names, as the user typed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    /// A row of the listing.
    Index(usize),
    /// Something given as an index that is none (too big, not a number).
    BadIndex(String),
    /// A path that must be in the listing.
    Name(String),
    /// A path that need not exist yet (`lock --new`).
    NewName(String),
}

/// Reads a lock or unlock target: `--index` (the `-lock -<x>` spelling) is
/// always an index; a target of digits is an index; anything else a name.
pub fn named(target: Option<String>, index: Option<String>, new: bool) -> Named {
    match (index, target) {
        (Some(x), _) => match x.parse::<usize>() {
            Ok(i) if x.bytes().all(|b| b.is_ascii_digit()) => Named::Index(i),
            _ => Named::BadIndex(format!("-{x}")),
        },
        (None, Some(t)) if new => Named::NewName(t),
        (None, Some(t)) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => {
            match t.parse::<usize>() {
                Ok(i) => Named::Index(i),
                Err(_) => Named::BadIndex(t),
            }
        }
        (None, Some(t)) => Named::Name(t),
        (None, None) => Named::BadIndex(String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(words: &[&str]) -> Cli {
        let args = std::iter::once("lab3")
            .chain(words.iter().copied())
            .map(OsString::from);
        parse(args).expect("parses")
    }

    /// The target of a parsed lock or unlock command.
    fn target(words: &[&str]) -> Named {
        match parse_ok(words).command {
            Some(Command::Lock { target, index, new }) => named(target, index, new),
            Some(Command::Unlock { target, index }) => named(target, index, false),
            other => panic!("{words:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn lab_spellings() {
        assert_eq!(target(&["-lock", "-3"]), Named::Index(3));
        assert_eq!(target(&["-unlock", "-12"]), Named::Index(12));
        assert_eq!(target(&["--lock", "a.txt"]), Named::Name("a.txt".into()));
        assert_eq!(target(&["lock", "7"]), Named::Index(7));
        assert_eq!(target(&["lock", "--new", "7"]), Named::NewName("7".into()));
        let c = parse_ok(&["-lock", "-0", "--json"]);
        assert!(c.json);
        assert!(parse_ok(&[]).command.is_none());
        assert!(matches!(
            parse_ok(&["watch", "--json"]).command,
            Some(Command::Watch)
        ));
        assert!(matches!(
            parse_ok(&["status"]).command,
            Some(Command::Status)
        ));
        assert!(matches!(
            parse_ok(&["completions", "zsh"]).command,
            Some(Command::Completions { .. })
        ));
    }

    #[test]
    fn a_dash_index_that_is_no_index_is_a_bad_index_never_a_name() {
        let huge = "-99999999999999999999";
        assert_eq!(target(&["-lock", huge]), Named::BadIndex(huge.into()));
        let over = "-18446744073709551616";
        assert_eq!(target(&["-lock", over]), Named::BadIndex(over.into()));
        assert_eq!(target(&["-lock", "-"]), Named::BadIndex("-".into()));
        assert_eq!(target(&["-unlock", "-abc"]), Named::BadIndex("-abc".into()));
        assert_eq!(target(&["-lock", "-+3"]), Named::BadIndex("-+3".into()));
        assert_eq!(
            target(&["lock", "99999999999999999999"]),
            Named::BadIndex("99999999999999999999".into())
        );
    }
}
