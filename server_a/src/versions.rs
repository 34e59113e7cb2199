//! `lab3 versions` and `lab3 restore` at Server A: its own side's kept
//! versions, and Server B's, asked for over a one-shot connection (as
//! listings are). A restore is done at the side that keeps the version.

use std::time::Duration;

use common::connection::ProtocolError;
use common::handshake::{kind_of, Dialer};
use common::protocol::{FailingPath, Message, PeerState, VersionInfo, VersionUsage};
use common::sync::versions;

use crate::App;

/// How long Server B may take to answer before A answers without it.
const B_DEADLINE: Duration = Duration::from_secs(10);

/// `lab3 status` waits less for B's versions: they are a detail of it.
const STATUS_DEADLINE: Duration = Duration::from_secs(3);

/// The versions of `path` at both sides, newest first.
pub async fn list(app: &App, path: &str) -> anyhow::Result<Message> {
    let mut all = versions::infos(&app.cfg.served.state_dir, path, "a")?;
    let peer = match ask_b(app, Message::VersionsRequest { path: path.into() }).await {
        Ok(Message::Versions { versions, .. }) => {
            all.extend(versions);
            PeerState::Connected
        }
        Ok(Message::Error { message }) => anyhow::bail!("server B: {message}"),
        Ok(other) => anyhow::bail!("unexpected answer from server B: {}", kind_of(&other)),
        Err(e) => {
            tracing::warn!("server B unreachable for the versions of {path}: {e:#}");
            PeerState::Unreachable
        }
    };
    newest_first(&mut all);
    Ok(Message::Versions {
        peer,
        versions: all,
    })
}

/// Puts a version back at the side that keeps it (`id` `None`: the newest
/// of both sides).
pub async fn restore(app: &App, path: &str, id: Option<String>) -> anyhow::Result<Message> {
    common::paths::check(path)?;
    let at_b = match id.as_deref() {
        Some(id) if id.starts_with("a-") => false,
        Some(id) if id.starts_with("b-") => true,
        Some(id) => anyhow::bail!(
            "no version {id} of {path}: version IDs start with a- or b- (see lab3 versions {path})"
        ),
        None => match list(app, path).await? {
            Message::Versions { peer, versions } => match versions.first() {
                Some(newest) => newest.side == "b",
                None if peer == PeerState::Unreachable => anyhow::bail!(
                    "no kept versions of {path} at server A, and server B did not answer"
                ),
                None => anyhow::bail!("no kept versions of {path} at either server"),
            },
            _ => unreachable!("list answers Versions"),
        },
    };
    if !at_b {
        let version = versions::restore_here(
            app.sync.as_ref(),
            &app.cfg.served.dir,
            &app.cfg.served.state_dir,
            "a",
            path,
            id,
        )
        .await?;
        return Ok(Message::Restored { version });
    }
    let ask = Message::RestoreRequest {
        path: path.into(),
        version: id,
    };
    match ask_b(app, ask).await {
        Ok(m @ Message::Restored { .. }) => Ok(m),
        Ok(Message::Error { message }) => anyhow::bail!("{message}"),
        Ok(other) => anyhow::bail!("unexpected answer from server B: {}", kind_of(&other)),
        Err(e) => anyhow::bail!("that version is kept at server B, which did not answer: {e:#}"),
    }
}

/// Server B's side of `lab3 status`, if it answers within a moment: how
/// many versions it keeps, its own link status (the names it holds that A
/// cannot store, its watch-limit advice) and the paths it cannot read or
/// replace.
pub async fn status_at_b(
    app: &App,
) -> (
    Option<VersionUsage>,
    Option<(common::protocol::LinkStatus, Vec<FailingPath>)>,
) {
    let ask = ask(&app.cfg.peer, &app.cfg.dialer, Message::StatusRequest);
    match tokio::time::timeout(STATUS_DEADLINE, ask).await {
        Ok(Ok(Message::Status {
            versions,
            link,
            failing,
            ..
        })) => (
            versions.into_iter().find(|v| v.side == "b"),
            Some((link, failing)),
        ),
        _ => (None, None),
    }
}

/// Newest first; ties by side and ID, so the order is the same each time.
pub fn newest_first(all: &mut [VersionInfo]) {
    all.sort_by(|x, y| {
        y.kept_ns
            .cmp(&x.kept_ns)
            .then_with(|| x.side.cmp(&y.side))
            .then_with(|| x.id.cmp(&y.id))
    });
}

/// One request to Server B, one answer.
async fn ask_b(app: &App, msg: Message) -> anyhow::Result<Message> {
    tokio::time::timeout(B_DEADLINE, ask(&app.cfg.peer, &app.cfg.dialer, msg))
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {B_DEADLINE:?}"))?
}

async fn ask(addr: &str, dialer: &Dialer, msg: Message) -> anyhow::Result<Message> {
    let (mut conn, _) = dialer.dial(addr).await?;
    conn.writer.send(msg).await?;
    match conn.reader.read_message().await {
        Err(ProtocolError::Refused(message)) => Ok(Message::Error { message }),
        answer => Ok(answer?),
    }
}
