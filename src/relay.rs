//! Relays to put between the programs in tests: a [`Recorder`] that
//! forwards TCP as it is and keeps every byte (what an eavesdropper on the
//! path sees), and a [`Mitm`] that terminates TLS itself with its own key
//! and dials the real server (what a man in the middle does).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use common::tls::{self, Identity};

/// A TCP forwarder to `target` that keeps every byte it passes, both ways.
pub struct Recorder {
    /// Where to connect instead of the target.
    pub addr: String,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Recorder {
    pub fn start(target: &str) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap().to_string();
        let seen: Arc<Mutex<Vec<u8>>> = Arc::default();
        let (target, kept) = (target.to_string(), seen.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let kept = kept.clone();
                    std::thread::spawn(move || pump(from, to, &kept));
                }
            }
        });
        Recorder { addr, seen }
    }

    /// Every byte passed so far, both directions.
    pub fn bytes(&self) -> Vec<u8> {
        self.seen.lock().unwrap().clone()
    }

    /// Whether `needle` appears anywhere in what passed.
    pub fn saw(&self, needle: &[u8]) -> bool {
        !needle.is_empty() && self.bytes().windows(needle.len()).any(|w| w == needle)
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, kept: &Mutex<Vec<u8>>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.lock().unwrap().extend_from_slice(&buf[..n]);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// What a [`Mitm`] does with the decrypted bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MitmMode {
    /// Passes them on to the real server, over its own TLS session.
    Forward,
    /// Plays the server itself: reads the hello and welcomes it, with no
    /// proof (it has no token to make one with).
    Impersonate,
}

/// A relay that terminates TLS with its own key: it shows its own
/// certificate to whoever dials it, and dials `target` over TLS itself.
pub struct Mitm {
    pub addr: String,
    /// The relay's own certificate fingerprint.
    pub fingerprint: common::tls::Fingerprint,
    _runtime: tokio::runtime::Runtime,
}

impl Mitm {
    pub fn start(target: &str, mode: MitmMode) -> Mitm {
        let identity = crate::wire::fresh_identity();
        let fingerprint = identity.fingerprint;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let target = target.to_string();
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (identity, target) = (identity.clone(), target.clone());
                tokio::spawn(async move {
                    let _ = relay(tcp, &identity, &target, mode).await;
                });
            }
        });
        Mitm {
            addr,
            fingerprint,
            _runtime: runtime,
        }
    }
}

async fn relay(
    tcp: tokio::net::TcpStream,
    identity: &Identity,
    target: &str,
    mode: MitmMode,
) -> anyhow::Result<()> {
    let (victim, _) = tls::accept(identity.server_config()?, tcp).await?;
    match mode {
        MitmMode::Forward => {
            let upstream = tokio::net::TcpStream::connect(target).await?;
            let (server, _) = tls::connect(tls::client_config(), upstream).await?;
            let (mut victim, mut server) = (victim, server);
            tokio::io::copy_bidirectional(&mut victim, &mut server).await?;
        }
        MitmMode::Impersonate => {
            let mut conn = common::connection::Connection::new(victim);
            let hello = conn.reader.read_message().await?;
            let common::protocol::Message::Hello { role, .. } = hello else {
                anyhow::bail!("expected a hello");
            };
            let me = match role {
                common::protocol::Role::ServerA => common::protocol::Role::ServerB,
                _ => common::protocol::Role::ServerA,
            };
            conn.writer
                .send(common::protocol::Message::Welcome {
                    version: common::protocol::PROTOCOL_VERSION,
                    role: me,
                    proof: None,
                    time_ns: common::meta::now_ns(),
                })
                .await?;
            // Then whatever the victim sends is the relay's to read.
            while conn.reader.read_frame().await?.is_some() {}
        }
    }
    Ok(())
}
