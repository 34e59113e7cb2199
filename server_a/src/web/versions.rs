//! The page's versions view: the kept versions of one file, or of every
//! file, at both sides, and a restore of one of them. The same functions
//! answer it as answer `lab3 versions` and `lab3 restore`
//! ([`crate::versions`]), so a restore from the page is the one `lab3`
//! does: at the side that keeps the version, as a new change that syncs.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use common::meta::rfc3339_utc;
use common::protocol::{Message, PeerState, VersionInfo};
use common::sync::versions::EVERY_FILE_AT_MOST;
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::error;
use super::Web;

/// The query of `GET /api/versions`.
#[derive(Deserialize)]
pub struct VersionsQuery {
    /// The file; absent or empty: every file.
    #[serde(default)]
    path: Option<String>,
}

/// `GET /api/versions?path=PATH`: `{"path", "peer", "versions": [...]}`,
/// newest first, each as `lab3 versions --json` prints it, plus its times
/// in milliseconds (for the browser's clock). Without `path` (or with an
/// empty one), the kept versions of every file (`"path": null`), the
/// newest [`EVERY_FILE_AT_MOST`] (`"more": true` when some were
/// left out).
pub async fn list(State(web): State<Arc<Web>>, Query(q): Query<VersionsQuery>) -> Response {
    let path = q.path.unwrap_or_default();
    if !path.is_empty() {
        if let Err(e) = common::paths::check(&path) {
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
    }
    match crate::versions::list(&web.app, &path).await {
        Ok(Message::Versions { peer, versions }) => {
            let peer = match peer {
                PeerState::Connected => "connected",
                PeerState::Unreachable => "unreachable",
            };
            let every_file = path.is_empty();
            // Each side sent its newest; together, the newest of both.
            let more = every_file && versions.len() >= EVERY_FILE_AT_MOST;
            let all: Vec<Value> = versions
                .iter()
                .take(if every_file {
                    EVERY_FILE_AT_MOST
                } else {
                    usize::MAX
                })
                .map(version_json)
                .collect();
            let path = (!every_file).then_some(path);
            Json(json!({ "path": path, "peer": peer, "versions": all, "more": more }))
                .into_response()
        }
        Ok(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected answer".into(),
        ),
        Err(e) => error(StatusCode::BAD_GATEWAY, format!("{e:#}")),
    }
}

/// The body of a restore request.
#[derive(Deserialize)]
pub struct RestoreBody {
    path: String,
    /// The version's ID; absent: the newest of both sides (as `lab3 restore`).
    #[serde(default)]
    version: Option<String>,
}

/// `POST /api/restore` `{"path": PATH, "version": ID}`: answers
/// `{"restored": PATH, "version": {...}}`, as `lab3 restore --json`. A bad
/// path is a 400; a version that cannot be restored (unknown, a folder in
/// the way, Server B away for a `b-` one) a 409, with the reason.
pub async fn restore(State(web): State<Arc<Web>>, Json(body): Json<RestoreBody>) -> Response {
    if let Err(e) = common::paths::check(&body.path) {
        return error(StatusCode::BAD_REQUEST, e.to_string());
    }
    match crate::versions::restore(&web.app, &body.path, body.version).await {
        Ok(Message::Restored { version }) => {
            Json(json!({ "restored": body.path, "version": version_json(&version) }))
                .into_response()
        }
        Ok(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected answer".into(),
        ),
        Err(e) => error(StatusCode::CONFLICT, format!("{e:#}")),
    }
}

/// One version as `lab3 versions --json` prints it, plus `kept_ms` and
/// `modified_ms`.
fn version_json(v: &VersionInfo) -> Value {
    json!({
        "side": v.side,
        "id": v.id,
        "path": v.path,
        "kept": rfc3339_utc(v.kept_ns),
        "kept_ms": v.kept_ns.div_euclid(1_000_000),
        "why": v.why,
        "size": v.size,
        "modified": rfc3339_utc(v.mtime_ns),
        "modified_ms": v.mtime_ns.div_euclid(1_000_000),
        "mode": v.mode.map(|m| format!("{m:04o}")),
    })
}
