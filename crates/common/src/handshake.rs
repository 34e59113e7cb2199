//! The first exchange of every connection: protocol version, role, token.
//!
//! The side that dials sends `Hello`; the side that accepts answers
//! `Welcome` or a one-line `Error` and closes. A connection that does not
//! finish its handshake within [`HANDSHAKE_TIMEOUT`] is dropped.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::connection::{Connection, ProtocolError};
use crate::meta::now_ns;
use crate::protocol::{Message, Role, PROTOCOL_VERSION};

/// How long a connection may take to say hello.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
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
                clock_skew_ns: time_ns - now_ns(),
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
    let hello = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.reader.read_message())
        .await
        .map_err(|_| ProtocolError::Refused("handshake timed out".into()))??;
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
        clock_skew_ns: time_ns - now_ns(),
    })
}

async fn refuse<T>(conn: &mut Connection, why: String) -> Result<T, ProtocolError> {
    let _ = conn
        .writer
        .send(Message::Error {
            message: why.clone(),
        })
        .await;
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
    #[test]
    fn constant_time_eq_works() {
        assert!(super::constant_time_eq(b"abc", b"abc"));
        assert!(!super::constant_time_eq(b"abc", b"abd"));
        assert!(!super::constant_time_eq(b"abc", b"ab"));
    }
}
