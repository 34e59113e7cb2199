//! Feeds arbitrary bytes, as the dialler's side of a connection whose TLS
//! handshake is done, to the server's `handshake::accept` (the first thing
//! a stranger's decrypted bytes reach), with and without a token.
//!
//! Oracles: no panic, no hang (the pipe closes after the input, so accept
//! must finish), and with a token no input is ever accepted: a fuzzer
//! cannot make an HMAC proof for a session it does not know.
#![no_main]

use common::connection::Connection;
use common::handshake::{self, Expect, HANDSHAKE_TIMEOUT};
use common::protocol::Role;
use common::tls::Session;
use libfuzzer_sys::fuzz_target;
use tokio::io::AsyncWriteExt;

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, input)) = data.split_first() else {
        return;
    };
    let token = (knobs & 1 != 0).then_some("s3cret");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let (server, mut dialler) = tokio::io::duplex(1 << 20);
        let input = input.to_vec();
        tokio::spawn(async move {
            let _ = dialler.write_all(&input).await;
            let _ = dialler.shutdown().await;
            // Keep reading what the server says until it closes.
            let _ = tokio::io::copy(&mut dialler, &mut tokio::io::sink()).await;
        });
        let mut conn = Connection::new(server);
        let session = Session {
            exporter: [knobs; 32],
            peer_certificate: None,
        };
        let expect = Expect {
            me: Role::ServerA,
            allowed: &[Role::Client],
            token,
            deadline: tokio::time::Instant::now() + HANDSHAKE_TIMEOUT,
        };
        let got = handshake::accept(&mut conn, Some(&session), &expect).await;
        if token.is_some() {
            assert!(got.is_err(), "accepted without a proof: {got:?}");
        }
    });
});
