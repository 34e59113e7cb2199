//! The first exchange of every connection: TLS, then protocol version,
//! role and token proofs.
//!
//! The side that dials runs the TLS handshake (checking a pinned
//! certificate fingerprint, if any), then sends `Hello`; the side that
//! accepts answers `Welcome` or a one-line `Error` and closes. With a token
//! set, the `Hello` and the `Welcome` each carry a proof that their sender
//! holds it, bound to this TLS session ([`crate::proof`]); the token
//! itself never crosses the wire. A connection that does not finish its
//! handshake within [`HANDSHAKE_TIMEOUT`] is told so and dropped, and until
//! it has said hello its frames are capped at [`HELLO_MAX_LEN`], so a
//! stranger can hold neither a connection slot nor much memory for long.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::connection::{Connection, ProtocolError};
use crate::meta::now_ns;
use crate::proof::{self, Side};
use crate::protocol::{Message, Role, MAX_FRAME_LEN, PROTOCOL_VERSION};
use crate::tls::{self, Fingerprint, Session};

/// How long a connection may take to say hello (TLS included), and how
/// long a dialler waits for each step of the answer. Ten seconds: short
/// enough that a stranger holds a slot only briefly, long enough for a
/// server busy with a big sync on a loaded two-core machine (CI's fifty
/// clients during a 2,000-file sync at load 14 took more than 5 s).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest frame accepted before the handshake is done (a `Hello` is a few
/// hundred bytes; this leaves room to spare).
pub const HELLO_MAX_LEN: usize = 64 * 1024;
/// How long sending a refusal may take before we just close.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long dialling may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// What the handshake learned about the other end.
#[derive(Debug, Clone, Copy)]
pub struct PeerInfo {
    pub role: Role,
    /// The other end's clock minus ours, nanoseconds (network delay included).
    pub clock_skew_ns: i64,
    /// The other end's certificate fingerprint, when it showed one (the
    /// dialler sees the server's; `None` without TLS).
    pub certificate: Option<Fingerprint>,
}

/// How to dial: who we are, the token to prove, the certificate to expect.
#[derive(Clone)]
pub struct Dialer {
    pub role: Role,
    pub token: Option<String>,
    /// The fingerprint the server's certificate must have (pinning).
    pub pin: Option<Fingerprint>,
    /// `None`: plaintext, for benchmarks only (see [`Dialer::plaintext`]).
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("role", &self.role)
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .field("pin", &self.pin)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Dialer {
    pub fn new(role: Role, token: Option<String>, pin: Option<Fingerprint>) -> Dialer {
        Dialer {
            role,
            token,
            pin,
            tls: Some(tls::client_config()),
        }
    }

    /// The same without TLS: the benchmarks' plaintext baseline, and never
    /// anything else (the servers' hidden `--bench-plaintext`, loopback only).
    pub fn plaintext(self) -> Dialer {
        Dialer { tls: None, ..self }
    }

    /// Dials `addr`, secures the connection, introduces ourselves and waits
    /// for the welcome.
    pub async fn dial(&self, addr: &str) -> Result<(Connection, PeerInfo), ProtocolError> {
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| timed_out("connection timed out"))??;
        let _ = tcp.set_nodelay(true);
        let (mut conn, session) = match &self.tls {
            None => (Connection::new(tcp), None),
            Some(cfg) => {
                let (stream, session) =
                    tokio::time::timeout(HANDSHAKE_TIMEOUT, tls::connect(cfg.clone(), tcp))
                        .await
                        .map_err(|_| timed_out("no answer to the TLS handshake"))?
                        .map_err(tls_failed)?;
                if let (Some(pin), Some(got)) = (self.pin, session.peer_certificate) {
                    if pin != got {
                        return Err(ProtocolError::Untrusted(format!(
                            "its certificate is {got}, not the pinned {pin}"
                        )));
                    }
                }
                (Connection::new(stream), Some(session))
            }
        };
        let exporter = exporter(session.as_ref());
        conn.writer
            .send(Message::Hello {
                version: PROTOCOL_VERSION,
                role: self.role,
                proof: self
                    .token
                    .as_deref()
                    .map(|t| proof::prove(t, &exporter, Side::Dialler)),
                time_ns: now_ns(),
            })
            .await?;
        let reply = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.reader.read_message())
            .await
            .map_err(|_| ProtocolError::Refused("no answer to the handshake".into()))??;
        let Message::Welcome {
            version,
            role,
            proof: theirs,
            time_ns,
        } = reply
        else {
            return Err(ProtocolError::Unexpected(kind_of(&reply)));
        };
        if version != PROTOCOL_VERSION {
            return Err(ProtocolError::Refused(format!(
                "protocol version {version} at the other end, {PROTOCOL_VERSION} here"
            )));
        }
        if let Some(token) = &self.token {
            let good = theirs
                .as_deref()
                .is_some_and(|p| proof::check(token, &exporter, Side::Acceptor, p));
            if !good {
                return Err(ProtocolError::Untrusted(
                    "it did not prove that it holds the token (it runs without one, \
                     or something between us is not it)"
                        .into(),
                ));
            }
        }
        let info = PeerInfo {
            role,
            clock_skew_ns: time_ns.saturating_sub(now_ns()),
            certificate: session.and_then(|s| s.peer_certificate),
        };
        Ok((conn, info))
    }
}

/// The server's side of TLS over a new connection, within
/// [`HANDSHAKE_TIMEOUT`] (`tls` is `None` only for the benchmarks'
/// plaintext baseline). Nothing can be said to a peer that fails here.
pub async fn secure(
    tcp: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<(Connection, Option<Session>), ProtocolError> {
    let _ = tcp.set_nodelay(true);
    let Some(cfg) = tls else {
        return Ok((Connection::new(tcp), None));
    };
    let (stream, session) = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls::accept(cfg, tcp))
        .await
        .map_err(|_| timed_out("handshake timed out (no TLS within 5s)"))?
        .map_err(tls_failed)?;
    Ok((Connection::new(stream), Some(session)))
}

/// What an accepting server checks a `Hello` against.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    pub me: Role,
    pub allowed: &'a [Role],
    pub token: Option<&'a str>,
    /// When the handshake must be done by.
    pub deadline: Instant,
}

/// Answers a dialler's `Hello` on a secured connection: checks version,
/// role and token proof, and answers with our own proof. A bad or missing
/// proof fails with [`ProtocolError::BadProof`] and nothing said yet: the
/// caller slows the guesser down, then [`refuse`]s. Any other refusal is
/// said here.
pub async fn accept(
    conn: &mut Connection,
    session: Option<&Session>,
    expect: &Expect<'_>,
) -> Result<PeerInfo, ProtocolError> {
    conn.reader.set_max_frame_len(HELLO_MAX_LEN);
    let hello = match tokio::time::timeout_at(expect.deadline, conn.reader.read_message()).await {
        Ok(Ok(hello)) => hello,
        // Gone, or it sent an `Error` itself: nobody to tell.
        Ok(Err(e @ (ProtocolError::Io(_) | ProtocolError::Closed | ProtocolError::Refused(_)))) => {
            return Err(e)
        }
        // Oversized or malformed: say why before closing.
        Ok(Err(e)) => return refuse(conn, e.to_string()).await,
        Err(_) => {
            let secs = HANDSHAKE_TIMEOUT.as_secs();
            return refuse(
                conn,
                format!("handshake timed out (no hello within {secs}s)"),
            )
            .await;
        }
    };
    conn.reader.set_max_frame_len(MAX_FRAME_LEN);
    let Message::Hello {
        version,
        role,
        proof: theirs,
        time_ns,
    } = hello
    else {
        return refuse(conn, format!("expected hello, got {}", kind_of(&hello))).await;
    };
    if version != PROTOCOL_VERSION {
        return refuse(
            conn,
            format!("protocol version {version} not supported (this is {PROTOCOL_VERSION})"),
        )
        .await;
    }
    let exporter = exporter(session);
    if let Some(token) = expect.token {
        let good = theirs
            .as_deref()
            .is_some_and(|p| proof::check(token, &exporter, Side::Dialler, p));
        if !good {
            return Err(ProtocolError::BadProof);
        }
    }
    if !expect.allowed.contains(&role) {
        return refuse(conn, format!("{} does not serve a {role}", expect.me)).await;
    }
    conn.writer
        .send(Message::Welcome {
            version: PROTOCOL_VERSION,
            role: expect.me,
            proof: expect
                .token
                .map(|t| proof::prove(t, &exporter, Side::Acceptor)),
            time_ns: now_ns(),
        })
        .await?;
    Ok(PeerInfo {
        role,
        clock_skew_ns: time_ns.saturating_sub(now_ns()),
        certificate: None,
    })
}

/// The keying material proofs are bound to: the TLS session's, or zeros
/// on the benchmarks' plaintext connections (where nothing is secret).
fn exporter(session: Option<&Session>) -> [u8; 32] {
    session.map(|s| s.exporter).unwrap_or_default()
}

/// Sends `why` as an `Error` frame (best effort, briefly) and fails with it.
pub async fn refuse<T>(conn: &mut Connection, why: String) -> Result<T, ProtocolError> {
    let error = Message::Error {
        message: why.clone(),
    };
    let _ = tokio::time::timeout(REFUSE_TIMEOUT, conn.writer.send(error)).await;
    Err(ProtocolError::Refused(why))
}

fn timed_out(what: &str) -> ProtocolError {
    ProtocolError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, what))
}

/// A failed TLS handshake, said plainly (rustls's own words follow).
fn tls_failed(e: std::io::Error) -> ProtocolError {
    ProtocolError::Io(std::io::Error::new(
        e.kind(),
        format!("TLS handshake failed (not a lab3 {PROTOCOL_VERSION} server or client?): {e}"),
    ))
}

/// A short name for a message, for error text.
pub fn kind_of(m: &Message) -> String {
    serde_json::to_value(m)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
        .unwrap_or_else(|| "message".into())
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;
    use crate::connection::Frame;

    /// The session both ends of the in-memory pipe pretend to share.
    const SESSION: Session = Session {
        exporter: [7; 32],
        peer_certificate: None,
    };

    /// Runs `accept` (as Server A, serving clients, token `t`) on one end of
    /// an in-memory pipe while `other_end` plays the dialler.
    async fn accept_against<T, F>(
        other_end: impl FnOnce(DuplexStream) -> F,
    ) -> (
        Result<PeerInfo, ProtocolError>,
        Connection,
        tokio::task::JoinHandle<T>,
    )
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let (server, dialler) = tokio::io::duplex(1 << 20);
        let other = tokio::spawn(other_end(dialler));
        let mut conn = Connection::new(server);
        let expect = Expect {
            me: Role::ServerA,
            allowed: &[Role::Client],
            token: Some("t"),
            deadline: Instant::now() + HANDSHAKE_TIMEOUT,
        };
        let got = accept(&mut conn, Some(&SESSION), &expect).await;
        (got, conn, other)
    }

    fn hello_with(token: &str, exporter: &[u8; 32]) -> Message {
        Message::Hello {
            version: PROTOCOL_VERSION,
            role: Role::Client,
            proof: Some(proof::prove(token, exporter, Side::Dialler)),
            time_ns: 0,
        }
    }

    fn hello(token: &str) -> Message {
        hello_with(token, &SESSION.exporter)
    }

    /// Everything the dialler receives until the acceptor closes.
    async fn read_all(mut s: DuplexStream) -> String {
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
        String::from_utf8_lossy(&rest).into_owned()
    }

    #[tokio::test]
    async fn a_hello_over_the_pre_handshake_cap_is_refused_with_an_error() {
        // 100 KiB is a fine frame once connected, not before saying hello.
        let (got, conn, other) = accept_against(|mut s| async move {
            s.write_all(&(100 * 1024u32).to_be_bytes()).await.unwrap();
            s.write_all(b"\0{").await.unwrap();
            read_all(s).await
        })
        .await;
        drop(conn);
        let err = got.unwrap_err().to_string();
        assert!(err.contains("size limit"), "{err}");
        let said = other.await.unwrap();
        assert!(said.contains("\"type\":\"error\""), "{said}");
        assert!(said.contains("size limit"), "{said}");
    }

    #[tokio::test]
    async fn after_the_hello_the_full_cap_applies_again() {
        let big = bytes::Bytes::from(vec![1u8; 200 * 1024]);
        let sent = big.clone();
        let (got, mut conn, other) = accept_against(|s| async move {
            let mut c = Connection::new(s);
            c.writer.feed(hello("t")).await.unwrap();
            c.writer.feed_data(sent).await.unwrap();
            c.writer.flush().await.unwrap();
            c.reader.read_message().await.unwrap()
        })
        .await;
        assert_eq!(got.unwrap().role, Role::Client);
        assert!(matches!(other.await.unwrap(), Message::Welcome { .. }));
        assert_eq!(
            conn.reader.read_frame().await.unwrap(),
            Some(Frame::Data(big))
        );
    }

    #[tokio::test]
    async fn a_hostile_clock_does_not_overflow_the_skew() {
        for time_ns in [i64::MIN, i64::MAX] {
            let (got, _conn, _other) = accept_against(move |s| async move {
                let mut c = Connection::new(s);
                let Message::Hello { proof, .. } = hello("t") else {
                    unreachable!()
                };
                let hello = Message::Hello {
                    version: PROTOCOL_VERSION,
                    role: Role::Client,
                    proof,
                    time_ns,
                };
                c.writer.send(hello).await.unwrap();
                c
            })
            .await;
            let skew = got.expect("accepted").clock_skew_ns;
            assert_eq!(skew.signum(), time_ns.signum());
        }
    }

    #[tokio::test]
    async fn the_right_proof_is_answered_with_the_acceptors_own() {
        let (got, _conn, other) = accept_against(|s| async move {
            let mut c = Connection::new(s);
            c.writer.send(hello("t")).await.unwrap();
            c.reader.read_message().await
        })
        .await;
        assert!(got.is_ok(), "{got:?}");
        let Ok(Message::Welcome {
            proof: Some(theirs),
            ..
        }) = other.await.unwrap()
        else {
            panic!("expected a welcome with a proof");
        };
        assert!(proof::check(
            "t",
            &SESSION.exporter,
            Side::Acceptor,
            &theirs
        ));
        assert!(!proof::check(
            "t",
            &SESSION.exporter,
            Side::Dialler,
            &theirs
        ));
    }

    #[tokio::test]
    async fn a_wrong_missing_or_replayed_proof_is_a_bad_proof_and_nothing_is_said() {
        let no_proof = Message::Hello {
            version: PROTOCOL_VERSION,
            role: Role::Client,
            proof: None,
            time_ns: 0,
        };
        let replayed = hello_with("t", &[8; 32]); // made for another session
        for sent in [hello("nope"), no_proof, replayed] {
            let (got, conn, other) = accept_against(|s| async move {
                let mut c = Connection::new(s);
                c.writer.send(sent).await.unwrap();
                c.reader.read_frame().await
            })
            .await;
            assert!(matches!(got, Err(ProtocolError::BadProof)), "{got:?}");
            drop(conn);
            assert!(matches!(other.await.unwrap(), Ok(None)));
        }
    }
}
