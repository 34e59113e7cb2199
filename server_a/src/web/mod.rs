//! The web page of Server A (`--http ADDR`, default `127.0.0.1:6080`): the
//! live composite listing, lock and unlock with each locked file's queue,
//! both servers' actions as they happen, the link's state, and the kept
//! versions of files with a restore button for each, for people
//! who live in a file manager rather than a terminal.
//!
//! One page, its assets embedded in the binary (plain HTML, CSS and a
//! little JavaScript, no build step), over a small JSON API and one
//! server-sent-event stream. The same [`App`] answers it as answers `lab3`.
//!
//! # Layout
//! - [`guard`]: the token login, session cookies, and the cross-site checks
//!   every request passes.
//! - [`api`]: the JSON answers and the event stream.
//! - [`versions`]: the versions view's list and restore.

mod api;
mod guard;
mod versions;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::App;

/// What every request of the page shares.
pub struct Web {
    pub app: Arc<App>,
    pub guard: guard::Guard,
}

/// Binds the page's address, prints `web page at http://ADDR/` and serves
/// it in the background. An address that cannot be bound is said on stderr
/// and Server A runs on without the page.
pub async fn start(addr: &str, app: Arc<App>) {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("web page: cannot listen on {addr}: {e}; running on without the page");
            return;
        }
    };
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("web page: {e}; running on without the page");
            return;
        }
    };
    if !local.ip().is_loopback() && app.cfg.served.args.token.is_none() {
        tracing::warn!(
            "web page: {local} is reachable beyond this machine and no --token is set: \
             anyone who can reach it can lock and unlock files"
        );
    }
    let web = Arc::new(Web {
        guard: guard::Guard::new(app.cfg.served.args.token.clone(), local),
        app,
    });
    print_web_line(local);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(web)).await {
            tracing::error!("web page: {e}");
        }
    });
}

/// The page's routes. Every one passes [`guard::check`] first.
fn router(web: Arc<Web>) -> Router {
    Router::new()
        .route("/", get(api::page))
        .route("/app.js", get(api::script))
        .route("/style.css", get(api::style))
        .route("/login", post(guard::login))
        .route("/logout", post(guard::logout))
        .route("/api/listing", get(api::listing))
        .route("/api/status", get(api::status))
        .route("/api/events", get(api::events))
        .route("/api/lock", post(api::lock))
        .route("/api/unlock", post(api::unlock))
        .route("/api/versions", get(versions::list))
        .route("/api/restore", post(versions::restore))
        .layer(axum::middleware::from_fn_with_state(
            web.clone(),
            guard::check,
        ))
        .with_state(web)
}

/// `web page at http://ADDR/` on stdout, flushed (tests and scripts wait for it).
fn print_web_line(addr: SocketAddr) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "web page at http://{addr}/");
    let _ = out.flush();
}
