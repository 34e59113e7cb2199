//! `lab3`: the command-line client. Glue over `common`: parse the command,
//! ask Server A, print a table or JSON.

mod args;
mod output;

use std::process::ExitCode;

use common::connection::ProtocolError;
use common::handshake;
use common::protocol::{Message, PeerState, Role, Target, WATCH_PING_EVERY};

use args::{Cli, Command};

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
            eprintln!("lab3: {}", f.message);
            ExitCode::from(f.code)
        }
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
    let dialer = handshake::Dialer::new(Role::Client, cli.token.clone(), cli.server_fingerprint);
    let (mut conn, peer) = dialer.dial(&cli.server).await.map_err(|e| Failure {
        code: 1,
        message: match e {
            ProtocolError::Refused(why) => format!("server A at {} refused: {why}", cli.server),
            ProtocolError::Untrusted(why) => format!(
                "server A at {} is not trusted: {why} (see --server-fingerprint, --token)",
                cli.server
            ),
            e => format!("cannot reach server A at {}: {e}", cli.server),
        },
    })?;
    match command {
        Command::List => {
            conn.writer.send(Message::ListRequest).await?;
            let (peer, rows) = receive_listing(&mut conn).await?;
            if peer == PeerState::Unreachable {
                eprintln!("lab3: warning: server B is unreachable; showing directory_a only");
            }
            output::print_listing(peer, &rows, cli.json);
        }
        Command::Lock { target } => {
            conn.writer
                .send(Message::Lock {
                    target: parse_target(&target),
                })
                .await?;
            match conn.reader.read_message().await? {
                Message::Locked { name } => output::print_locked(&name, cli.json),
                other => return Err(unexpected(other)),
            }
        }
        Command::Unlock { target } => {
            conn.writer
                .send(Message::Unlock {
                    target: parse_target(&target),
                })
                .await?;
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
                    let seen = peer.certificate.map(|f| f.to_string());
                    output::print_status(&cli.server, seen, &status, cli.json)
                }
                other => return Err(unexpected(other)),
            }
        }
        Command::Watch => watch(&mut conn, &cli).await?,
        Command::Completions { .. } => unreachable!("answered above"),
    }
    Ok(())
}

/// `lab3 watch`: prints each action Server A streams until Ctrl-C (exit
/// 0), a closed stdout (exit 0) or a lost connection (exit 1).
async fn watch(conn: &mut common::connection::Connection, cli: &Cli) -> Result<(), Failure> {
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
            eprintln!(
                "lab3: watching server A at {} {b}; Ctrl-C stops",
                cli.server
            );
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
                    "no word from server A at {} for {} s",
                    cli.server,
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
                    "server A at {} closed the connection",
                    cli.server
                )))
            }
            Err(e) => {
                return Err(Failure::from(format!(
                    "the connection to server A at {} ended: {e}",
                    cli.server
                )))
            }
        };
        if output::write_action(&mut out, &action, cli.json, colour).is_err() {
            return Ok(()); // stdout closed (`lab3 watch | head`): done
        }
    }
}

/// A number is an index into the listing; anything else names a path.
fn parse_target(s: &str) -> Target {
    match s.parse::<usize>() {
        Ok(i) => Target::Index(i),
        Err(_) => Target::Name(s.to_string()),
    }
}

fn unexpected(m: Message) -> Failure {
    Failure::from(format!(
        "unexpected answer from server A: {}",
        handshake::kind_of(&m)
    ))
}

async fn receive_listing(
    conn: &mut common::connection::Connection,
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
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
