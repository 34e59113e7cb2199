//! Speaking the wire by hand, for tests that send what no well-behaved
//! program would: a blocking connection that runs TLS as the programs do
//! (or not at all), then raw lab3 frames (4-byte big-endian length counting
//! kind + payload, 1 kind byte, payload).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use common::proof::{self, Side};
use common::tls::{self, Fingerprint, Identity, Session};

/// How long a raw connection waits for a frame: past the servers'
/// handshake deadline, so a test sees a silent connection dropped.
const READ_TIMEOUT: Duration =
    Duration::from_secs(common::handshake::HANDSHAKE_TIMEOUT.as_secs() + 10);

/// Frame kind of a JSON message.
pub const KIND_JSON: u8 = 0;
/// Frame kind of raw file bytes.
pub const KIND_DATA: u8 = 1;

/// Something a [`RawConn`] reads and writes.
pub trait ByteStream: Read + Write + Send {}
impl<T: Read + Write + Send> ByteStream for T {}

/// A blocking connection speaking raw frames, over TLS unless made plain.
pub struct RawConn {
    pub stream: Box<dyn ByteStream>,
    /// The TLS session (`None` on a plain connection).
    pub session: Option<Session>,
}

impl RawConn {
    /// Connects to `addr` and runs TLS as `lab3` does; reads time out after 10 s.
    pub fn connect(addr: &str) -> RawConn {
        Self::tls_over(tcp_to(addr))
    }

    /// Like [`RawConn::connect`], from the local address `from` (another
    /// loopback address, such as 127.0.0.2, is another client to the server).
    pub fn connect_from(addr: &str, from: std::net::IpAddr) -> RawConn {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let tcp = runtime.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind((from, 0).into())?;
            socket.connect(addr.parse().expect("an IP:port")).await
        });
        let tcp = tcp.expect("connect").into_std().unwrap();
        tcp.set_nonblocking(false).unwrap();
        tcp.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        Self::tls_over(tcp)
    }

    fn tls_over(tcp: TcpStream) -> RawConn {
        let name = rustls::pki_types::ServerName::try_from("lab3").unwrap();
        let conn = rustls::ClientConnection::new(tls::client_config(), name).expect("TLS client");
        Self::handshake(conn, tcp)
    }

    /// Runs the TLS handshake of `conn` (either end) over `tcp` to its end.
    fn handshake<C, D>(mut conn: C, mut tcp: TcpStream) -> RawConn
    where
        C: std::ops::DerefMut<Target = rustls::ConnectionCommon<D>> + Send + 'static,
        D: rustls::SideData + Send + 'static,
    {
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).expect("TLS handshake");
        }
        let session = tls::session_of(&conn).expect("exported keying material");
        RawConn {
            stream: Box::new(rustls::StreamOwned::new(conn, tcp)),
            session: Some(session),
        }
    }

    /// Connects to `addr` without TLS (what a stranger or an old lab3 does).
    pub fn connect_plain(addr: &str) -> RawConn {
        RawConn {
            stream: Box::new(tcp_to(addr)),
            session: None,
        }
    }

    /// The server's end of an accepted `tcp`, with `identity`'s certificate.
    pub fn accept(tcp: TcpStream, identity: &Identity) -> RawConn {
        tcp.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let cfg = identity.server_config().expect("server config");
        let conn = rustls::ServerConnection::new(cfg).expect("TLS server");
        Self::handshake(conn, tcp)
    }

    /// The other end's certificate, as the TLS handshake showed it.
    pub fn certificate(&self) -> Option<Fingerprint> {
        self.session.and_then(|s| s.peer_certificate)
    }

    /// A `hello` as `role` would send it on this connection, with the
    /// proof of `token` bound to this session.
    pub fn hello(
        &self,
        version: u32,
        role: &str,
        time_ns: i64,
        token: Option<&str>,
    ) -> serde_json::Value {
        self.greeting("hello", Side::Dialler, version, role, time_ns, token)
    }

    /// A `welcome` as a server answers on this connection, with the proof
    /// of `token` bound to this session.
    pub fn welcome(
        &self,
        version: u32,
        role: &str,
        time_ns: i64,
        token: Option<&str>,
    ) -> serde_json::Value {
        self.greeting("welcome", Side::Acceptor, version, role, time_ns, token)
    }

    /// A `hello` or `welcome` (`kind`), its proof made as `side` proves.
    fn greeting(
        &self,
        kind: &str,
        side: Side,
        version: u32,
        role: &str,
        time_ns: i64,
        token: Option<&str>,
    ) -> serde_json::Value {
        let mut body = serde_json::json!({"version": version, "role": role, "time_ns": time_ns});
        if let Some(t) = token {
            body["proof"] = proof::prove(t, &self.exporter(), side).into();
        }
        serde_json::json!({"type": kind, "body": body})
    }

    fn exporter(&self) -> [u8; 32] {
        self.session.map(|s| s.exporter).unwrap_or_default()
    }

    /// Writes bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
        self.stream.flush().expect("flush");
    }

    /// Writes one frame of `kind` around `payload`.
    pub fn send_frame(&mut self, kind: u8, payload: &[u8]) {
        let mut buf = Vec::with_capacity(5 + payload.len());
        buf.extend_from_slice(&(payload.len() as u32 + 1).to_be_bytes());
        buf.push(kind);
        buf.extend_from_slice(payload);
        self.send_raw(&buf);
    }

    /// Writes one JSON message frame.
    pub fn send_json(&mut self, msg: &serde_json::Value) {
        self.send_frame(KIND_JSON, msg.to_string().as_bytes());
    }

    /// Reads one frame: `Some((kind, payload))`, or `None` if the other end
    /// closed (or reset) the connection. Panics on a timeout.
    pub fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        self.try_read_frame().expect("reading a frame")
    }

    /// Reads one frame; an error is a timeout (or a broken TLS stream).
    pub fn try_read_frame(&mut self) -> std::io::Result<Option<(u8, Vec<u8>)>> {
        let mut head = [0u8; 4];
        match self.stream.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if is_closed(&e) => return Ok(None),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes(head) as usize;
        assert!(len >= 1, "empty frame from the server");
        assert!(
            len <= common::protocol::MAX_FRAME_LEN + 1,
            "frame length {len}"
        );
        let mut body = vec![0u8; len];
        match self.stream.read_exact(&mut body) {
            Ok(()) => {}
            Err(e) if is_closed(&e) => return Ok(None),
            Err(e) => return Err(e),
        }
        let payload = body.split_off(1);
        Ok(Some((body[0], payload)))
    }

    /// Reads one frame that must be a JSON message.
    pub fn read_json(&mut self) -> serde_json::Value {
        let (kind, payload) = self.read_frame().expect("a frame, not a closed connection");
        assert_eq!(kind, KIND_JSON, "expected a JSON frame");
        serde_json::from_slice(&payload).expect("the frame holds JSON")
    }

    /// Whether the other end closes the connection (EOF or reset) within
    /// the read timeout, ignoring a few frames it may send first.
    pub fn closed_by_peer(&mut self) -> bool {
        for _ in 0..16 {
            match self.try_read_frame() {
                Ok(None) => return true,
                Ok(Some(_)) => continue,
                Err(e) => return is_closed(&e),
            }
        }
        false
    }
}

fn tcp_to(addr: &str) -> TcpStream {
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let _ = tcp.set_nodelay(true);
    tcp
}

/// Whether `e` means the other end went away (a TLS close without
/// close_notify included).
pub fn is_closed(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
    )
}

/// A fresh identity in its own temporary folder (for fake servers and
/// relays that present a key of their own).
pub fn fresh_identity() -> Arc<Identity> {
    let dir = tempfile::tempdir().expect("temp dir");
    Arc::new(Identity::load_or_create(dir.path()).expect("an identity"))
}
