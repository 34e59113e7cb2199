//! `lab3`: the command-line client. Glue over `common`: parse the command,
//! ask Server A (or, for listings and status, the next server of
//! `--server A,B` that answers), print a table or JSON.

mod args;
mod output;

use std::process::ExitCode;

use common::connection::{Connection, ProtocolError};
use common::handshake;
use common::protocol::{Message, PeerState, Role, Target, WATCH_PING_EVERY};

use args::{Cli, Command, Named};

/// A failure to report: one line on stderr and this exit status.
struct Failure {
    code: u8,
    message: String,
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            code: 1,
            message: e.to_string(),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = match args::parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(exit) => return exit,
    };
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            // A name inside the message cannot break the one line.
            eprintln!("lab3: {}", common::console::printable(&f.message));
            ExitCode::from(f.code)
        }
    }
}

/// The server that answered, and the ones tried before it that did not.
struct Reached {
    conn: Connection,
    addr: String,
    role: Role,
    /// The certificate fingerprint of the server that answered, as this
    /// connection saw it.
    certificate: Option<common::tls::Fingerprint>,
    /// `(address, why)` of each server tried first that did not answer.
    skipped: Vec<(String, String)>,
}

impl Reached {
    /// The letter of the server that answered, for JSON (`"a"` or `"b"`).
    fn letter(&self) -> &'static str {
        match self.role {
            Role::ServerB => "b",
            _ => "a",
        }
    }

    /// "server A at X did not answer (why)" for each one skipped.
    fn skipped_words(&self) -> String {
        self.skipped
            .iter()
            .map(|(addr, why)| format!("{addr} did not answer ({why})"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Dials the servers of `--server` in turn and returns the first that
/// answers; with `need_a`, only Server A will do (locks live there). A
/// server that refuses us (a wrong token) ends the search: it is up.
async fn connect(cli: &Cli, need_a: Option<&str>) -> Result<Reached, Failure> {
    let addrs: Vec<&str> = cli
        .server
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    if addrs.is_empty() {
        return Err(Failure {
            code: 2,
            message: "--server names no address (try 'lab3 --help')".into(),
        });
    }
    let one = addrs.len() == 1;
    let mut skipped = Vec::new();
    let mut only_b = None;
    // One pin (`--server-fingerprint`) applies to every server listed.
    let dialer = handshake::Dialer::new(Role::Client, cli.token.clone(), cli.server_fingerprint);
    for addr in &addrs {
        let name = if one {
            format!("server A at {addr}")
        } else {
            addr.to_string()
        };
        match dialer.dial(addr).await {
            Ok((conn, peer)) => {
                if let (Some(_), Role::ServerB) = (need_a, peer.role) {
                    only_b = Some(addr.to_string());
                    continue;
                }
                return Ok(Reached {
                    conn,
                    addr: addr.to_string(),
                    role: peer.role,
                    certificate: peer.certificate,
                    skipped,
                });
            }
            Err(ProtocolError::Refused(why)) => {
                return Err(Failure::from(format!("{name} refused: {why}")))
            }
            Err(ProtocolError::Untrusted(why)) => {
                return Err(Failure::from(format!(
                    "{name} is not trusted: {why} (see --server-fingerprint, --token)"
                )))
            }
            Err(e) if one => return Err(Failure::from(format!("cannot reach {name}: {e}"))),
            Err(e) => skipped.push((addr.to_string(), e.to_string())),
        }
    }
    let tried = skipped
        .iter()
        .map(|(a, why)| format!("{a} ({why})"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(Failure::from(match (only_b, need_a) {
        (Some(b), Some(what)) if tried.is_empty() => {
            format!("{what}: {} at server A; {b} is server B", why_a(what))
        }
        (Some(b), Some(what)) => format!(
            "{what}: {} at server A, which did not answer ({tried}); {b} is server B",
            why_a(what)
        ),
        _ => format!("cannot reach any server: {tried}"),
    }))
}

/// What only Server A has, for the error of a command that needs it.
fn why_a(what: &str) -> &'static str {
    if what == "cannot watch" {
        "both servers' actions are relayed"
    } else {
        "locks live"
    }
}

async fn run(mut cli: Cli) -> Result<(), Failure> {
    let command = cli.command.take().unwrap_or(Command::List);
    if let Command::Completions { shell } = command {
        use std::io::Write;
        // A closed stdout is no error (see output.rs).
        let _ = std::io::stdout().write_all(&args::completions(shell));
        return Ok(());
    }
    let need_a = match &command {
        Command::Lock { .. } => Some("cannot lock"),
        Command::Unlock { .. } => Some("cannot unlock"),
        Command::Locks => Some("cannot list the locks"),
        Command::Watch => Some("cannot watch"),
        _ => None,
    };
    let mut reached = connect(&cli, need_a).await?;
    if !reached.skipped.is_empty() && need_a.is_some() {
        eprintln!("lab3: warning: {}", reached.skipped_words());
    }
    let conn = &mut reached.conn;
    match command {
        Command::List => {
            conn.writer.send(Message::ListRequest).await?;
            let (peer, rows) = receive_listing(conn).await?;
            let other = if reached.role == Role::ServerB {
                "A"
            } else {
                "B"
            };
            match (peer, reached.role) {
                (PeerState::Unreachable, Role::ServerB) => eprintln!(
                    "lab3: warning: server A is unreachable; showing directory_b only \
                     (from server B at {})",
                    reached.addr
                ),
                (PeerState::Unreachable, _) => {
                    eprintln!("lab3: warning: server B is unreachable; showing directory_a only")
                }
                _ if !reached.skipped.is_empty() => eprintln!(
                    "lab3: warning: {}; server {} at {} answered",
                    reached.skipped_words(),
                    reached.letter().to_uppercase(),
                    reached.addr
                ),
                _ => {}
            }
            output::print_listing(peer, &rows, other, reached.letter(), cli.json);
        }
        Command::Lock { target, index, new } => {
            let target = resolve(conn, args::named(target, index, new), true).await?;
            conn.writer.send(Message::Lock { target }).await?;
            match conn.reader.read_message().await? {
                Message::Locked { name } => output::print_locked(&name, cli.json),
                other => return Err(unexpected(other)),
            }
        }
        Command::Unlock { target, index } => {
            let target = resolve(conn, args::named(target, index, false), false).await?;
            conn.writer.send(Message::Unlock { target }).await?;
            match conn.reader.read_message().await? {
                Message::Unlocked { name, updates } => {
                    output::print_unlocked(&name, &updates, cli.json)
                }
                other => return Err(unexpected(other)),
            }
        }
        Command::Locks => {
            conn.writer.send(Message::LocksRequest).await?;
            match conn.reader.read_message().await? {
                Message::Locks { locks } => output::print_locks(&locks, cli.json),
                other => return Err(unexpected(other)),
            }
        }
        Command::Status => {
            conn.writer.send(Message::StatusRequest).await?;
            match conn.reader.read_message().await? {
                status @ Message::Status { .. } => {
                    if !reached.skipped.is_empty() {
                        eprintln!(
                            "lab3: warning: {}; showing server {}'s status",
                            reached.skipped_words(),
                            reached.letter().to_uppercase()
                        );
                    }
                    let b = reached.role == Role::ServerB;
                    let seen = reached.certificate.map(|f| f.to_string());
                    output::print_status(&reached.addr, seen, &status, b, cli.json)
                }
                other => return Err(unexpected(other)),
            }
        }
        Command::Versions { path } => {
            // (An empty path asks a server for every file's versions: the
            // web page's view, not this command's.)
            if path.is_empty() {
                return Err(Failure::from(
                    "refused path \"\": empty path (give a file's path)".to_string(),
                ));
            }
            conn.writer
                .send(Message::VersionsRequest { path: path.clone() })
                .await?;
            match conn.reader.read_message().await? {
                Message::Versions { peer, versions } => {
                    if peer == PeerState::Unreachable {
                        let other = if reached.role == Role::ServerB {
                            "A"
                        } else {
                            "B"
                        };
                        eprintln!("lab3: warning: server {other} is unreachable; its versions are not shown");
                    }
                    output::print_versions(&path, peer, &versions, reached.letter(), cli.json)
                }
                other => return Err(unexpected(other)),
            }
        }
        Command::Restore { path, version } => {
            conn.writer
                .send(Message::RestoreRequest {
                    path: path.clone(),
                    version,
                })
                .await?;
            match conn.reader.read_message().await? {
                Message::Restored { version } => output::print_restored(&path, &version, cli.json),
                other => return Err(unexpected(other)),
            }
        }
        Command::Watch => watch(conn, &reached.addr, cli.json).await?,
        Command::Completions { .. } => unreachable!("answered above"),
    }
    Ok(())
}

/// The target to send for what the user named. A bad index, or a name
/// not in the listing (unless `--new`, or for an unlock), fails here with
/// the valid range or the reason; nothing is sent.
async fn resolve(conn: &mut Connection, named: Named, locking: bool) -> Result<Target, Failure> {
    match named {
        Named::Index(i) => Ok(Target::Index(i)),
        Named::NewName(n) => Ok(Target::Name(n)),
        Named::Name(n) if !locking => Ok(Target::Name(n)),
        Named::Name(n) => {
            conn.writer.send(Message::ListRequest).await?;
            let (_, rows) = receive_listing(conn).await?;
            if rows.iter().any(|r| r.name == n) {
                Ok(Target::Name(n))
            } else {
                Err(Failure::from(format!(
                    "no file named {n} in the listing \
                     ('lab3 lock --new {n}' locks a path that is not there yet)"
                )))
            }
        }
        Named::BadIndex(x) => {
            conn.writer.send(Message::ListRequest).await?;
            let (_, rows) = receive_listing(conn).await?;
            Err(Failure::from(match rows.len() {
                0 => format!("bad index '{x}': the listing is empty"),
                n => format!(
                    "bad index '{x}': valid indexes are 0 to {} ({n} files)",
                    n - 1
                ),
            }))
        }
    }
}

/// `lab3 watch`: prints each action Server A streams until Ctrl-C (exit
/// 0), a closed stdout (exit 0) or a lost connection (exit 1).
async fn watch(conn: &mut Connection, server: &str, json: bool) -> Result<(), Failure> {
    let interrupted = interrupted();
    tokio::pin!(interrupted);
    conn.writer.send(Message::WatchRequest).await?;
    match conn.reader.read_message().await? {
        Message::Watching { link_up } => {
            let b = if link_up {
                "and server B"
            } else {
                "(server B's link is down now)"
            };
            eprintln!("lab3: watching server A at {server} {b}; Ctrl-C stops");
        }
        other => return Err(unexpected(other)),
    }
    let colour = common::console::use_colour();
    let mut out = std::io::stdout().lock();
    // Server A pings a quiet watch; silence for this long means it is gone.
    let silence = common::server::CLIENT_IDLE_TIMEOUT;
    let mut heard = tokio::time::Instant::now();
    let mut ping = tokio::time::interval(WATCH_PING_EVERY);
    ping.reset();
    loop {
        let msg = tokio::select! {
            m = conn.reader.read_message() => {
                heard = tokio::time::Instant::now();
                m
            }
            _ = tokio::time::sleep_until(heard + silence) => {
                return Err(Failure::from(format!(
                    "no word from server A at {server} for {} s",
                    silence.as_secs()
                )));
            }
            _ = ping.tick() => {
                conn.writer.send(Message::Ping).await?;
                continue;
            }
            _ = &mut interrupted => return Ok(()),
        };
        let action = match msg {
            Ok(Message::Ping) => continue,
            Ok(Message::Action(a)) => a,
            Ok(other) => return Err(unexpected(other)),
            Err(ProtocolError::Closed) => {
                return Err(Failure::from(format!(
                    "server A at {server} closed the connection"
                )))
            }
            Err(e) => {
                return Err(Failure::from(format!(
                    "the connection to server A at {server} ended: {e}"
                )))
            }
        };
        if output::write_action(&mut out, &action, json, colour).is_err() {
            return Ok(()); // stdout closed (`lab3 watch | head`): done
        }
    }
}

fn unexpected(m: Message) -> Failure {
    Failure::from(format!(
        "unexpected answer from server A: {}",
        handshake::kind_of(&m)
    ))
}

async fn receive_listing(
    conn: &mut Connection,
) -> Result<(PeerState, Vec<common::protocol::ListingRow>), Failure> {
    let mut all = Vec::new();
    loop {
        match conn.reader.read_message().await? {
            Message::ListingChunk { peer, rows, done } => {
                all.extend(rows);
                if done {
                    return Ok((peer, all));
                }
            }
            other => return Err(unexpected(other)),
        }
    }
}

/// Completes on Ctrl-C (SIGINT). The handler is in place from the call on,
/// not only from the first poll, so an early Ctrl-C still exits cleanly.
fn interrupted() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut sig = signal(SignalKind::interrupt()).ok();
        async move {
            match sig.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
    }
    #[cfg(windows)]
    {
        let mut sig = tokio::signal::windows::ctrl_c().ok();
        async move {
            match sig.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
    }
}
