//! The first exchange of every connection: protocol version, role, token.
//!
//! The side that dials sends `Hello`; the side that accepts answers
//! `Welcome` or a one-line `Error` and closes. A connection that does not
//! finish its handshake within [`HANDSHAKE_TIMEOUT`] is told so and dropped,
//! and until it has said hello its frames are capped at [`HELLO_MAX_LEN`],
//! so a stranger can hold neither a connection slot nor much memory for long.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::connection::{Connection, ProtocolError};
use crate::meta::now_ns;
use crate::protocol::{Message, Role, MAX_FRAME_LEN, PROTOCOL_VERSION};

/// How long a connection may take to say hello.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest frame accepted before the handshake is done (a `Hello` is a few
/// hundred bytes; this leaves room for long tokens).
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
}

/// Dials `addr`, introduces ourselves as `role` and waits for the welcome.
pub async fn dial(
    addr: &str,
    role: Role,
    token: Option<&str>,
) -> Result<(Connection, PeerInfo), ProtocolError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connection timed out"))??;
    let mut conn = Connection::new(stream);
    conn.writer
        .send(Message::Hello {
            version: PROTOCOL_VERSION,
            role,
            token: token.map(str::to_string),
            time_ns: now_ns(),
        })
        .await?;
    let reply = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.reader.read_message())
        .await
        .map_err(|_| ProtocolError::Refused("no answer to the handshake".into()))??;
    match reply {
        Message::Welcome {
            version,
            role,
            time_ns,
        } if version == PROTOCOL_VERSION => {
            let info = PeerInfo {
                role,
                clock_skew_ns: time_ns.saturating_sub(now_ns()),
            };
            Ok((conn, info))
        }
        Message::Welcome { version, .. } => Err(ProtocolError::Refused(format!(
            "protocol version {version} at the other end, {PROTOCOL_VERSION} here"
        ))),
        other => Err(ProtocolError::Unexpected(kind_of(&other))),
    }
}

/// Answers a dialler's `Hello`: checks version, role and token.
pub async fn accept(
    conn: &mut Connection,
    me: Role,
    allowed: &[Role],
    token: Option<&str>,
) -> Result<PeerInfo, ProtocolError> {
    conn.reader.set_max_frame_len(HELLO_MAX_LEN);
    let hello = match tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.reader.read_message()).await {
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
        token: theirs,
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
    if let Some(expected) = token {
        if !constant_time_eq(
            expected.as_bytes(),
            theirs.as_deref().unwrap_or("").as_bytes(),
        ) {
            return refuse(conn, "bad or missing token".into()).await;
        }
    }
    if !allowed.contains(&role) {
        return refuse(conn, format!("{me} does not serve a {role}")).await;
    }
    conn.writer
        .send(Message::Welcome {
            version: PROTOCOL_VERSION,
            role: me,
            time_ns: now_ns(),
        })
        .await?;
    Ok(PeerInfo {
        role,
        clock_skew_ns: time_ns.saturating_sub(now_ns()),
    })
}

/// Sends `why` as an `Error` frame (best effort, briefly) and fails with it.
async fn refuse<T>(conn: &mut Connection, why: String) -> Result<T, ProtocolError> {
    let error = Message::Error {
        message: why.clone(),
    };
    let _ = tokio::time::timeout(REFUSE_TIMEOUT, conn.writer.send(error)).await;
    Err(ProtocolError::Refused(why))
}

/// A short name for a message, for error text.
pub fn kind_of(m: &Message) -> String {
    serde_json::to_value(m)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
        .unwrap_or_else(|| "message".into())
}

/// Compares secrets in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::connection::Frame;

    #[test]
    fn constant_time_eq_works() {
        assert!(super::constant_time_eq(b"abc", b"abc"));
        assert!(!super::constant_time_eq(b"abc", b"abd"));
        assert!(!super::constant_time_eq(b"abc", b"ab"));
    }

    /// Runs `accept` (as Server A, serving clients, token `t`) on one end of
    /// a loopback connection while `other_end` plays the dialler.
    async fn accept_against<T, F>(
        other_end: impl FnOnce(TcpStream) -> F,
    ) -> (
        Result<PeerInfo, ProtocolError>,
        Connection,
        tokio::task::JoinHandle<T>,
    )
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dialler = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let other = tokio::spawn(other_end(dialler));
        let mut conn = Connection::new(server);
        let got = accept(&mut conn, Role::ServerA, &[Role::Client], Some("t")).await;
        (got, conn, other)
    }

    fn hello(token: &str) -> Message {
        Message::Hello {
            version: PROTOCOL_VERSION,
            role: Role::Client,
            token: Some(token.into()),
            time_ns: 0,
        }
    }

    /// Everything the dialler receives until the acceptor closes.
    async fn read_all(mut s: TcpStream) -> String {
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
                let hello = Message::Hello {
                    version: PROTOCOL_VERSION,
                    role: Role::Client,
                    token: Some("t".into()),
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
    async fn a_wrong_token_is_refused_with_an_error() {
        let (got, conn, other) = accept_against(|s| async move {
            let mut c = Connection::new(s);
            c.writer.send(hello("nope")).await.unwrap();
            c.reader.read_message().await
        })
        .await;
        drop(conn);
        assert!(matches!(got, Err(ProtocolError::Refused(_))));
        let answer = other.await.unwrap();
        assert!(
            matches!(answer, Err(ProtocolError::Refused(ref why)) if why == "bad or missing token"),
            "{answer:?}"
        );
    }
}
