//! The page, its assets, and the JSON answers and event stream its script
//! reads. The same functions answer it as answer `lab3`
//! ([`crate::client_api`]), so the page and the command line never differ.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use common::meta::rfc3339_utc;
use common::protocol::{Message, PeerState, Target};
use common::status::StatusView;
use futures::Stream;
use serde::Deserialize;
use serde_json::{json, Value};

use super::Web;

const INDEX_HTML: &str = include_str!("assets/index.html");
const LOGIN_HTML: &str = include_str!("assets/login.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// `GET /`: the page, or the token form when a session is needed.
pub async fn page(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    if !web.guard.signed_in(&headers) {
        return login_page(StatusCode::UNAUTHORIZED, "");
    }
    let logout = if web.guard.needs_login() {
        r#"<form method="post" action="/logout"><button class="quiet" type="submit">Sign out</button></form>"#
    } else {
        ""
    };
    Html(
        INDEX_HTML
            .replace("{{csrf}}", &web.guard.csrf)
            .replace("{{logout}}", logout),
    )
    .into_response()
}

/// The token form, with `message` (already plain text) above it.
pub fn login_page(status: StatusCode, message: &str) -> Response {
    let body = LOGIN_HTML.replace("{{message}}", message);
    (status, Html(body)).into_response()
}

pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP_JS,
    )
        .into_response()
}

pub async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLE_CSS,
    )
        .into_response()
}

/// `GET /api/listing`: the composite listing as `lab3 --json` prints it,
/// plus each row's time in milliseconds (for the browser's clock) and each
/// locked file's queue.
pub async fn listing(State(web): State<Arc<Web>>) -> Response {
    let app = &web.app;
    let (peer, rows) = match crate::client_api::listing(app).await {
        Ok(x) => x,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    };
    let files: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "index": r.index,
                "name": r.name,
                "size": r.size,
                "modified": rfc3339_utc(r.mtime_ns),
                "modified_ms": r.mtime_ns.div_euclid(1_000_000),
                "where": r.location,
                "locked": r.locked,
                "queued": r.queued,
            })
        })
        .collect();
    let queues: serde_json::Map<String, Value> = app
        .lock_infos()
        .into_iter()
        .map(|l| {
            let queue = app.queue_of(&l.name);
            (l.name, json!(queue))
        })
        .collect();
    let peer = match peer {
        PeerState::Connected => "connected",
        PeerState::Unreachable => "unreachable",
    };
    Json(json!({ "peer": peer, "files": files, "queues": queues })).into_response()
}

/// `GET /api/status`: what `lab3 status --json` prints (the same
/// answer, in the same form), plus Server A's clock.
pub async fn status(State(web): State<Arc<Web>>) -> Response {
    let app = &web.app;
    let status = crate::client_api::status(app).await;
    let mut doc = StatusView::new(&app.listen, None, &status, false).json();
    doc["now"] = json!(rfc3339_utc(common::meta::now_ns()));
    Json(doc).into_response()
}

/// `GET /api/events`: every action of both servers as it happens (the
/// stream `lab3 watch` reads), one `action` event each. While a page is
/// open, Server A asks Server B to relay its actions, as for a watch.
pub async fn events(
    State(web): State<Arc<Web>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let sub = web.app.sync.as_ref().map(|s| (s.subscribe(), s.side()));
    let stream = futures::stream::unfold(sub, |sub| async move {
        use tokio::sync::broadcast::error::RecvError;
        let Some((mut subscription, side)) = sub else {
            // --no-sync: nothing will ever happen; keep the stream open.
            std::future::pending::<()>().await;
            return None;
        };
        let action = match subscription.recv().await {
            Ok(a) => a,
            Err(RecvError::Lagged(n)) => common::protocol::Action {
                time_ns: common::meta::now_ns(),
                side: side.to_string(),
                direction: side.to_string(),
                action: "missed".into(),
                path: String::new(),
                size: None,
                detail: format!("{n} actions not shown: this page fell behind"),
            },
            Err(RecvError::Closed) => return None,
        };
        let event = Event::default()
            .event("action")
            .json_data(&action)
            .unwrap_or_else(|_| Event::default().comment("unencodable action"));
        Some((Ok(event), Some((subscription, side))))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The body of a lock or unlock request.
#[derive(Deserialize)]
pub struct NameBody {
    name: String,
}

/// `POST /api/lock` `{"name": PATH}`: answers `{"locked": PATH}`.
pub async fn lock(State(web): State<Arc<Web>>, Json(body): Json<NameBody>) -> Response {
    match crate::client_api::lock(&web.app, Target::Name(body.name)).await {
        Ok(Message::Locked { name }) => Json(json!({ "locked": name })).into_response(),
        Ok(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected answer".into(),
        ),
        Err(e) => error(StatusCode::CONFLICT, format!("{e:#}")),
    }
}

/// `POST /api/unlock` `{"name": PATH}`: answers `{"unlocked": PATH,
/// "updates": [...]}`, what the queue's replay did, in order.
pub async fn unlock(State(web): State<Arc<Web>>, Json(body): Json<NameBody>) -> Response {
    match crate::client_api::unlock(&web.app, Target::Name(body.name)).await {
        Ok(Message::Unlocked { name, updates }) => {
            Json(json!({ "unlocked": name, "updates": updates })).into_response()
        }
        Ok(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected answer".into(),
        ),
        Err(e) => error(StatusCode::CONFLICT, format!("{e:#}")),
    }
}

/// An error answer: `{"error": MESSAGE}` with `status`.
pub(super) fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}
