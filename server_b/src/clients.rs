//! What Server B answers a `lab3` client: the listing and the status, so
//! that `lab3 --server A,B` still lists when Server A is down. Locks live
//! at Server A; asking B for one is an error that says so.

use std::time::Duration;

use common::connection::Connection;
use common::handshake::{self, kind_of};
use common::ignore::Ignore;
use common::protocol::{ListingRow, Message, PeerState, Role};
use common::sync::SyncHandle;

use crate::Config;

/// How long Server A may take to accept B's listing connection before B
/// answers with its own files only; then A's answer may take as long as
/// it needs, as long as something comes every
/// [`common::inventory::progress_deadline`].
const A_DEADLINE: Duration = Duration::from_secs(10);

/// Serves one client connection until it closes.
pub async fn handle(
    mut conn: Connection,
    cfg: &Config,
    ignore: &Ignore,
    sync: Option<&SyncHandle>,
) -> anyhow::Result<()> {
    while let Some(msg) = conn.next_request().await? {
        let reply = match msg {
            Message::ListRequest => {
                common::listing::send_when_made(&mut conn, listing(cfg, ignore)).await?;
                continue;
            }
            Message::StatusRequest => crate::status(cfg, sync),
            Message::VersionsRequest { path } => versions(cfg, &path).await,
            Message::RestoreRequest { path, version } => restore(cfg, sync, &path, version).await,
            Message::Lock { .. } | Message::Unlock { .. } | Message::LocksRequest => {
                Message::Error {
                    message: "locks live at server A; this is server B".into(),
                }
            }
            Message::WatchRequest => Message::Error {
                message: "lab3 watch needs server A; this is server B".into(),
            },
            other => Message::Error {
                message: format!("unknown request: {}", kind_of(&other)),
            },
        };
        conn.writer.send(reply).await?;
    }
    Ok(())
}

/// Server A's composite listing when A answers (it is fresh from both
/// folders, with the locks); otherwise this folder's files alone, with
/// `peer` unreachable.
async fn listing(cfg: &Config, ignore: &Ignore) -> anyhow::Result<(PeerState, Vec<ListingRow>)> {
    match listing_of_a(cfg).await {
        Ok(answer) => return Ok(answer),
        Err(e) => tracing::debug!(
            "server A at {} unreachable for a listing: {e:#}",
            cfg.server_a
        ),
    }
    let own: Vec<_> = crate::listing_entries(cfg, ignore)
        .await?
        .into_iter()
        .filter_map(|e| match e {
            common::protocol::InventoryEntry::Present { meta, .. } => Some(meta),
            common::protocol::InventoryEntry::Deleted { .. } => None,
        })
        .collect();
    Ok((PeerState::Unreachable, common::listing::merge(&[], &own)))
}

/// Both sides' versions, from Server A when it answers; else this side's,
/// with `peer` unreachable.
async fn versions(cfg: &Config, path: &str) -> Message {
    let ask = Message::VersionsRequest { path: path.into() };
    match ask_a(cfg, ask).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::debug!("server A unreachable for versions: {e:#}");
            match common::sync::versions::infos(&cfg.served.state_dir, path, "b") {
                Ok(versions) => Message::Versions {
                    peer: PeerState::Unreachable,
                    versions,
                },
                Err(e) => Message::Error {
                    message: format!("{e:#}"),
                },
            }
        }
    }
}

/// A restore through Server A when it answers (it knows both sides);
/// else here, if the version is this side's.
async fn restore(
    cfg: &Config,
    sync: Option<&SyncHandle>,
    path: &str,
    id: Option<String>,
) -> Message {
    let ask = Message::RestoreRequest {
        path: path.into(),
        version: id.clone(),
    };
    match ask_a(cfg, ask).await {
        Ok(answer) => answer,
        Err(_) if id.as_deref().is_none_or(|id| !id.starts_with("a-")) => {
            crate::restore(cfg, sync, path, id).await
        }
        Err(e) => Message::Error {
            message: format!("that version is kept at server A, which did not answer: {e:#}"),
        },
    }
}

/// One request to Server A as a client, one answer (an `Error` answer is
/// an answer; only a failure to reach A is an `Err`).
async fn ask_a(cfg: &Config, msg: Message) -> anyhow::Result<Message> {
    let talk = async {
        let dialer = handshake::Dialer::new(Role::Client, cfg.served.args.token.clone(), None);
        let (mut conn, peer) = dialer.dial(&cfg.server_a).await?;
        if peer.role != Role::ServerA {
            anyhow::bail!("{} is {}, not server A", cfg.server_a, peer.role);
        }
        conn.writer.send(msg).await?;
        match conn.reader.read_message().await {
            Err(common::connection::ProtocolError::Refused(message)) => {
                Ok(Message::Error { message })
            }
            answer => Ok(answer?),
        }
    };
    tokio::time::timeout(A_DEADLINE, talk)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {A_DEADLINE:?}"))?
}

/// Asks Server A for its composite listing, as a client would.
async fn listing_of_a(cfg: &Config) -> anyhow::Result<(PeerState, Vec<ListingRow>)> {
    let dialer = handshake::Dialer::new(Role::Client, cfg.served.args.token.clone(), None);
    let (mut conn, peer) = tokio::time::timeout(A_DEADLINE, dialer.dial(&cfg.server_a))
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {A_DEADLINE:?}"))??;
    if peer.role != Role::ServerA {
        anyhow::bail!("{} is {}, not server A", cfg.server_a, peer.role);
    }
    conn.writer.send(Message::ListRequest).await?;
    let mut rows = Vec::new();
    loop {
        match common::inventory::next_message(&mut conn.reader).await? {
            Message::ListingChunk {
                peer,
                rows: chunk,
                done,
            } => {
                rows.extend(chunk);
                if done {
                    return Ok((peer, rows));
                }
            }
            other => anyhow::bail!("unexpected answer from server A: {}", kind_of(&other)),
        }
    }
}
