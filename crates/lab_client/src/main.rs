//! `lab3`: the command-line client. Glue over `common`: parse the command,
//! ask Server A, print a table or JSON.

mod args;
mod output;

use std::process::ExitCode;

use common::connection::ProtocolError;
use common::handshake;
use common::protocol::{Message, PeerState, Role, Target};

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

async fn run(cli: Cli) -> Result<(), Failure> {
    let (mut conn, _) = handshake::dial(&cli.server, Role::Client, cli.token.as_deref())
        .await
        .map_err(|e| Failure {
            code: 1,
            message: match e {
                ProtocolError::Refused(why) => format!("server A at {} refused: {why}", cli.server),
                e => format!("cannot reach server A at {}: {e}", cli.server),
            },
        })?;
    match cli.command.unwrap_or(Command::List) {
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
    }
    Ok(())
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
