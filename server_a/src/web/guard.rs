//! Who may use the web page, and from where.
//!
//! - **Token.** With `--token` set, the page asks for it once (a form
//!   posted to `/login`) and keeps a random session id in a cookie that is
//!   `HttpOnly` and `SameSite=Strict`; without a session, the page is the
//!   login form and every `/api/` request is refused (401). Sessions live
//!   in memory: a restart of Server A asks again.
//! - **Cross-site requests.** A state-changing request (every `POST`) is
//!   refused (403) when its `Origin` is another site's or the browser says
//!   it is cross-site (`Sec-Fetch-Site`), and an `/api/` one also needs the
//!   page's secret in the `X-Lab3-Csrf` header (which another site's page
//!   can neither read nor send without a CORS preflight that is never
//!   granted) and a JSON body.
//! - **Host names.** On a loopback address, a request whose `Host` is a
//!   name other than `localhost` is refused, so that a DNS-rebinding site
//!   cannot read the page as its own origin.
//!
//! Every answer also carries a Content-Security-Policy that allows only the
//! page's own script and style, and forbids framing (no clickjacking of
//! the lock buttons).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::Web;

/// The header that carries the page's cross-site-request secret.
pub const CSRF_HEADER: &str = "x-lab3-csrf";

/// At most this many sessions are kept; the oldest logins give way.
const MAX_SESSIONS: usize = 1024;

/// The page's access rules and live sessions.
pub struct Guard {
    /// The shared secret, when Server A has one.
    token: Option<String>,
    /// Session ids handed out by `/login`, oldest first.
    sessions: Mutex<Vec<String>>,
    /// The secret each state-changing `/api/` request must carry; written
    /// into the page, which other sites cannot read.
    pub csrf: String,
    /// The address the page is served on (its port names the cookie).
    local: SocketAddr,
}

impl Guard {
    pub fn new(token: Option<String>, local: SocketAddr) -> Guard {
        Guard {
            token,
            sessions: Mutex::new(Vec::new()),
            csrf: random_hex(),
            local,
        }
    }

    /// Whether a token is required.
    pub fn needs_login(&self) -> bool {
        self.token.is_some()
    }

    /// The cookie's name: one per port, since browsers share cookies
    /// between the ports of one host.
    fn cookie_name(&self) -> String {
        format!("lab3_session_{}", self.local.port())
    }

    /// Whether the request carries a live session (or none is needed).
    pub fn signed_in(&self, headers: &HeaderMap) -> bool {
        if self.token.is_none() {
            return true;
        }
        let Some(id) = cookie(headers, &self.cookie_name()) else {
            return false;
        };
        let sessions = self.sessions.lock().unwrap();
        sessions.iter().any(|s| same_secret(s, &id))
    }

    fn new_session(&self) -> String {
        let id = random_hex();
        let mut sessions = self.sessions.lock().unwrap();
        if sessions.len() >= MAX_SESSIONS {
            sessions.remove(0);
        }
        sessions.push(id.clone());
        id
    }

    fn end_session(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, &self.cookie_name()) {
            self.sessions.lock().unwrap().retain(|s| s != &id);
        }
    }

    /// Whether `Host` names this page on a loopback listener: `localhost`
    /// or an IP address. (Beyond loopback any name is fine: the token
    /// guards it.)
    fn host_allowed(&self, headers: &HeaderMap) -> bool {
        if !self.local.ip().is_loopback() {
            return true;
        }
        let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
            return true; // HTTP/1.0 without Host: not a browser
        };
        let name = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        let name = name.trim_start_matches('[').trim_end_matches(']');
        name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
    }
}

/// Refuses what this module's doc says is refused; passes the rest on, and
/// adds the security headers to every answer.
pub async fn check(State(web): State<Arc<Web>>, req: Request, next: Next) -> Response {
    let mut resp = match refusal(&web.guard, &req) {
        Some((status, why)) => {
            tracing::warn!(
                "web page: refused {} {}: {why}",
                req.method(),
                req.uri().path()
            );
            (status, axum::Json(serde_json::json!({ "error": why }))).into_response()
        }
        None => next.run(req).await,
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; object-src 'none'; \
             base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Why a request is refused, if it is.
fn refusal(guard: &Guard, req: &Request) -> Option<(StatusCode, &'static str)> {
    let headers = req.headers();
    let path = req.uri().path();
    if !guard.host_allowed(headers) {
        return Some((StatusCode::FORBIDDEN, "unknown Host name"));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        if cross_site(headers) {
            return Some((StatusCode::FORBIDDEN, "cross-site request"));
        }
        if path.starts_with("/api/") {
            let csrf = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if !csrf.is_some_and(|c| same_secret(c, &guard.csrf)) {
                return Some((StatusCode::FORBIDDEN, "missing or wrong X-Lab3-Csrf header"));
            }
        }
    }
    if path.starts_with("/api/") && !guard.signed_in(headers) {
        return Some((StatusCode::UNAUTHORIZED, "sign in with the token first"));
    }
    None
}

/// Whether the browser says the request comes from another site: an
/// `Origin` that is not this page's own, or `Sec-Fetch-Site` other than
/// `same-origin` / `none` (typed in the address bar).
fn cross_site(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        if site != "same-origin" && site != "none" {
            return true;
        }
    }
    match (text(header::ORIGIN), text(header::HOST)) {
        (None, _) => false, // not a browser (browsers send Origin on every POST)
        (Some(origin), Some(host)) => {
            origin != format!("http://{host}") && origin != format!("https://{host}")
        }
        (Some(_), None) => true,
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// `POST /login`: the token from the form; a session cookie if it is right.
pub async fn login(State(web): State<Arc<Web>>, Form(form): Form<LoginForm>) -> Response {
    let guard = &web.guard;
    let Some(token) = &guard.token else {
        return Redirect::to("/").into_response();
    };
    if !same_secret(&form.token, token) {
        tracing::warn!("web page: a sign-in with a wrong token");
        // A little wait makes guessing slow.
        tokio::time::sleep(Duration::from_millis(300)).await;
        return super::api::login_page(StatusCode::UNAUTHORIZED, "That is not the token.");
    }
    let id = guard.new_session();
    let cookie = format!(
        "{}={id}; HttpOnly; SameSite=Strict; Path=/",
        guard.cookie_name()
    );
    let mut resp = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// `POST /logout`: ends the session.
pub async fn logout(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    web.guard.end_session(&headers);
    let cookie = format!(
        "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        web.guard.cookie_name()
    );
    let mut resp = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// The value of cookie `name` in the request, if any.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Compares two secrets in time that does not depend on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    blake3::hash(a.as_bytes()) == blake3::hash(b.as_bytes())
}

/// 128 random bits, as hex.
fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn cross_site_is_told_by_origin_and_fetch_site() {
        assert!(!cross_site(&headers(&[("host", "127.0.0.1:6080")])));
        assert!(!cross_site(&headers(&[
            ("host", "127.0.0.1:6080"),
            ("origin", "http://127.0.0.1:6080")
        ])));
        assert!(cross_site(&headers(&[
            ("host", "127.0.0.1:6080"),
            ("origin", "http://evil.example")
        ])));
        assert!(cross_site(&headers(&[
            ("host", "127.0.0.1:6080"),
            ("origin", "null")
        ])));
        assert!(cross_site(&headers(&[
            ("host", "127.0.0.1:6080"),
            ("sec-fetch-site", "cross-site")
        ])));
    }

    #[test]
    fn loopback_pages_answer_only_to_ip_or_localhost_hosts() {
        let g = Guard::new(None, "127.0.0.1:6080".parse().unwrap());
        assert!(g.host_allowed(&headers(&[("host", "127.0.0.1:6080")])));
        assert!(g.host_allowed(&headers(&[("host", "localhost:6080")])));
        assert!(g.host_allowed(&headers(&[("host", "[::1]:6080")])));
        assert!(!g.host_allowed(&headers(&[("host", "rebind.example:6080")])));
        let wide = Guard::new(None, "0.0.0.0:6080".parse().unwrap());
        assert!(wide.host_allowed(&headers(&[("host", "files.example:6080")])));
    }

    #[test]
    fn sessions_come_from_the_cookie_of_this_port() {
        let g = Guard::new(Some("s3cret".into()), "127.0.0.1:6080".parse().unwrap());
        assert!(!g.signed_in(&HeaderMap::new()));
        let id = g.new_session();
        let good = format!("other=1; lab3_session_6080={id}");
        assert!(g.signed_in(&headers(&[("cookie", &good)])));
        let wrong_port = format!("lab3_session_6081={id}");
        assert!(!g.signed_in(&headers(&[("cookie", &wrong_port)])));
        assert!(!g.signed_in(&headers(&[("cookie", "lab3_session_6080=guess")])));
    }
}
