//! Property tests of everything a peer or a client controls: the bytes of
//! frames, the messages inside them, and the paths they name.
//!
//! Case counts are kept low so the suite runs in a few seconds on every
//! `cargo test`; `scripts/fuzz.sh` explores the same decoders for longer.
//! A failing case is saved under `proptest-regressions/`; commit it.

use std::path::{Component, Path};

use bytes::{Bytes, BytesMut};
use common::connection::{Frame, FrameCodec, ProtocolError};
use common::handshake::kind_of;
use common::meta::FileMeta;
use common::paths;
use common::protocol::{
    Action, AppliedUpdate, InventoryEntry, LinkStatus, ListingRow, LockInfo, Message, PeerState,
    Role, Target, UnsyncedName, VersionInfo, MAX_FRAME_LEN,
};
use common::sync::core::{FsTraits, Kind, PeerMsg, Version};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use tokio_util::codec::{Decoder, Encoder};

// ---------------------------------------------------------------- strategies

/// Short plain names most of the time, any Unicode some of the time.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[a-z0-9 ._/-]{0,16}", 1 => any::<String>()]
}

fn file_meta() -> impl Strategy<Value = FileMeta> {
    (text(), any::<u64>(), any::<i64>(), any::<u32>()).prop_map(|(path, size, mtime_ns, mode)| {
        FileMeta {
            path,
            size,
            mtime_ns,
            mode,
        }
    })
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Client), Just(Role::ServerA), Just(Role::ServerB)]
}

fn peer_state() -> impl Strategy<Value = PeerState> {
    prop_oneof![Just(PeerState::Connected), Just(PeerState::Unreachable)]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        any::<usize>().prop_map(Target::Index),
        text().prop_map(Target::Name)
    ]
}

fn listing_row() -> impl Strategy<Value = ListingRow> {
    (
        any::<usize>(),
        text(),
        any::<u64>(),
        any::<i64>(),
        text(),
        any::<bool>(),
        any::<usize>(),
    )
        .prop_map(
            |(index, name, size, mtime_ns, location, locked, queued)| ListingRow {
                index,
                name,
                size,
                mtime_ns,
                location,
                locked,
                queued,
            },
        )
}

fn applied_update() -> impl Strategy<Value = AppliedUpdate> {
    (any::<u64>(), text(), any::<u64>(), any::<i64>(), text()).prop_map(
        |(seq, action, size, mtime_ns, outcome)| AppliedUpdate {
            seq,
            action,
            size,
            mtime_ns,
            outcome,
        },
    )
}

fn inventory_entry() -> impl Strategy<Value = InventoryEntry> {
    prop_oneof![
        (
            file_meta(),
            any::<bool>(),
            proptest::option::of("[0-9a-f]{64}")
        )
            .prop_map(|(meta, dirty, hash)| InventoryEntry::Present { meta, dirty, hash }),
        (text(), any::<i64>())
            .prop_map(|(path, deleted_ns)| InventoryEntry::Deleted { path, deleted_ns }),
    ]
}

fn link_status() -> impl Strategy<Value = LinkStatus> {
    (
        any::<bool>(),
        proptest::option::of(any::<i64>()),
        proptest::option::of(any::<i64>()),
        proptest::option::of(any::<i64>()),
        any::<usize>(),
        any::<usize>(),
        vec((text(), text(), text()), 0..3),
    )
        .prop_map(
            |(up, since_ns, clock_skew_ns, last_reconcile_ns, sending, receiving, names)| {
                LinkStatus {
                    up,
                    since_ns,
                    clock_skew_ns,
                    last_reconcile_ns,
                    sending,
                    receiving,
                    names: names
                        .into_iter()
                        .map(|(path, side, why)| UnsyncedName { path, side, why })
                        .collect(),
                    ..LinkStatus::default()
                }
            },
        )
}

/// Every variant of [`Message`] (see [`variant`], which fails to compile
/// when a variant is added, as a reminder to add it here too).
fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            any::<u32>(),
            role(),
            proptest::option::of(text()),
            any::<i64>()
        )
            .prop_map(|(version, role, proof, time_ns)| Message::Hello {
                version,
                role,
                proof,
                time_ns
            }),
        (
            any::<u32>(),
            role(),
            proptest::option::of(text()),
            any::<i64>()
        )
            .prop_map(|(version, role, proof, time_ns)| Message::Welcome {
                version,
                role,
                proof,
                time_ns,
            }),
        text().prop_map(|message| Message::Error { message }),
        Just(Message::ListRequest),
        target().prop_map(|target| Message::Lock { target }),
        target().prop_map(|target| Message::Unlock { target }),
        Just(Message::LocksRequest),
        Just(Message::WatchRequest),
        Just(Message::StatusRequest),
        text().prop_map(|path| Message::VersionsRequest { path }),
        (text(), proptest::option::of("[ab]-[0-9a-f]{8}"))
            .prop_map(|(path, version)| Message::RestoreRequest { path, version }),
        (peer_state(), vec(version_info(), 0..3))
            .prop_map(|(peer, versions)| Message::Versions { peer, versions }),
        version_info().prop_map(|version| Message::Restored { version }),
        any::<bool>().prop_map(|link_up| Message::Watching { link_up }),
        (
            any::<i64>(),
            text(),
            any::<bool>(),
            link_status(),
            vec((text(), any::<usize>()), 0..4),
            proptest::option::of(text()),
            proptest::option::of(text()),
        )
            .prop_map(
                |(time_ns, peer, sync, link, l, fingerprint, peer_fingerprint)| Message::Status {
                    time_ns,
                    peer,
                    sync,
                    link,
                    locks: l
                        .into_iter()
                        .map(|(name, queued)| LockInfo { name, queued })
                        .collect(),
                    fingerprint,
                    peer_fingerprint,
                    versions: Vec::new(),
                    failing: Vec::new(),
                    set_aside: Vec::new(),
                }
            ),
        (peer_state(), vec(listing_row(), 0..4), any::<bool>())
            .prop_map(|(peer, rows, done)| Message::ListingChunk { peer, rows, done }),
        text().prop_map(|name| Message::Locked { name }),
        (text(), vec(applied_update(), 0..4))
            .prop_map(|(name, updates)| Message::Unlocked { name, updates }),
        vec((text(), any::<usize>()), 0..4).prop_map(|l| Message::Locks {
            locks: l
                .into_iter()
                .map(|(name, queued)| LockInfo { name, queued })
                .collect()
        }),
        Just(Message::InventoryRequest),
        (vec(inventory_entry(), 0..4), any::<bool>())
            .prop_map(|(entries, done)| Message::InventoryChunk { entries, done }),
        Just(Message::SyncStart),
        "[0-9a-f]{64}".prop_map(|hash| Message::FileEnd { hash }),
        Just(Message::FileAbort),
        Just(Message::Ping),
        any::<bool>().prop_map(|on| Message::RelayActions { on }),
        (text(), any::<u64>())
            .prop_map(|(path, block_size)| Message::BlockHashesRequest { path, block_size }),
        (text(), any::<u64>(), vec(any::<u32>(), 0..4)).prop_map(|(path, size, weak)| {
            Message::BlockHashes {
                path,
                blocks: common::sync::blocks::BlockList {
                    block_size: 131_072,
                    size,
                    strong: weak.iter().map(|w| format!("{w:064x}")).collect(),
                    weak,
                },
            }
        }),
        (any::<u64>(), any::<u64>()).prop_map(|(offset, len)| Message::BlockCopy { offset, len }),
        (any::<u64>(), any::<[bool; 4]>()).prop_map(|(precision_ns, [m, c, n, w])| {
            Message::SyncHello {
                fs: FsTraits {
                    precision_ns,
                    has_modes: m,
                    case_insensitive: c,
                    normalization_insensitive: n,
                    windows_names: w,
                },
            }
        }),
        (
            any::<u64>(),
            text(),
            any::<u64>(),
            any::<i64>(),
            proptest::option::of("[0-9a-f]{64}")
        )
            .prop_map(
                |(op, path, size, mtime_ns, hash)| Message::Sync(PeerMsg::Offer {
                    op,
                    path,
                    base: None,
                    version: Version {
                        kind: Kind::File,
                        size,
                        mtime_ns,
                        mode: Some(0o644),
                        hash: hash.map(Into::into),
                    },
                })
            ),
        (any::<u64>(), text()).prop_map(|(op, path)| Message::Sync(PeerMsg::Queued { op, path })),
        (
            any::<i64>(),
            text(),
            text(),
            proptest::option::of(any::<u64>())
        )
            .prop_map(|(time_ns, path, detail, size)| Message::Action(Action {
                time_ns,
                side: "B".into(),
                direction: "B->A".into(),
                action: "updated".into(),
                path,
                size,
                detail,
            })),
    ]
}

fn version_info() -> impl Strategy<Value = VersionInfo> {
    (
        text(),
        any::<i64>(),
        any::<u64>(),
        any::<i64>(),
        proptest::option::of(any::<u32>()),
    )
        .prop_map(|(path, kept_ns, size, mtime_ns, mode)| VersionInfo {
            side: "b".into(),
            id: "b-0123abcd".into(),
            path,
            why: "deleted".into(),
            kept_ns,
            size,
            mtime_ns,
            mode,
        })
}

/// The wire name of each variant; exhaustive on purpose (see [`message`]).
fn variant(m: &Message) -> &'static str {
    match m {
        Message::Hello { .. } => "hello",
        Message::Welcome { .. } => "welcome",
        Message::Error { .. } => "error",
        Message::ListRequest => "list_request",
        Message::Lock { .. } => "lock",
        Message::Unlock { .. } => "unlock",
        Message::LocksRequest => "locks_request",
        Message::WatchRequest => "watch_request",
        Message::StatusRequest => "status_request",
        Message::Watching { .. } => "watching",
        Message::Status { .. } => "status",
        Message::ListingChunk { .. } => "listing_chunk",
        Message::Locked { .. } => "locked",
        Message::Unlocked { .. } => "unlocked",
        Message::Locks { .. } => "locks",
        Message::InventoryRequest => "inventory_request",
        Message::InventoryChunk { .. } => "inventory_chunk",
        Message::SyncStart => "sync_start",
        Message::FileEnd { .. } => "file_end",
        Message::FileAbort => "file_abort",
        Message::Ping => "ping",
        Message::RelayActions { .. } => "relay_actions",
        Message::BlockHashesRequest { .. } => "block_hashes_request",
        Message::BlockHashes { .. } => "block_hashes",
        Message::BlockCopy { .. } => "block_copy",
        Message::SyncHello { .. } => "sync_hello",
        Message::Sync(_) => "sync",
        Message::Action(_) => "action",
        Message::VersionsRequest { .. } => "versions_request",
        Message::RestoreRequest { .. } => "restore_request",
        Message::Versions { .. } => "versions",
        Message::Restored { .. } => "restored",
    }
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        3 => message().prop_map(Frame::Message),
        1 => vec(any::<u8>(), 0..600).prop_map(|b| Frame::Data(Bytes::from(b))),
    ]
}

// ------------------------------------------------------------------- helpers

fn encode_all(frames: &[Frame]) -> BytesMut {
    let mut out = BytesMut::new();
    let mut codec = FrameCodec::default();
    for f in frames {
        codec.encode(f.clone(), &mut out).expect("encodes");
    }
    out
}

/// `bytes` cut at the given points (in any order, repeats allowed).
fn split<'a>(bytes: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    at.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

/// Feeds `chunks` to one codec as a socket would, draining frames after each.
fn decode_chunks(chunks: &[&[u8]]) -> (Result<Vec<Frame>, ProtocolError>, BytesMut) {
    let mut codec = FrameCodec::default();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => return (Err(e), buf),
            }
        }
    }
    (Ok(frames), buf)
}

// ------------------------------------------------------------------- frames

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever arrives, however it is cut, decoding ends in frames, a wait
    /// or an error: never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..2048), cuts in vec(any::<Index>(), 0..8)) {
        let _ = decode_chunks(&split(&bytes, &cuts));
    }

    /// A valid stream with a few bytes flipped: still no panic.
    #[test]
    fn corrupted_streams_never_panic(
        frames in vec(frame(), 1..6),
        flips in vec((any::<Index>(), any::<u8>()), 1..4),
        cuts in vec(any::<Index>(), 0..8),
    ) {
        let mut bytes = encode_all(&frames).to_vec();
        for (at, b) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= b;
        }
        let _ = decode_chunks(&split(&bytes, &cuts));
    }

    /// Encoded frames decode to exactly the same frames, whatever the read
    /// boundaries, with nothing left over.
    #[test]
    fn any_chunking_gives_back_the_frames(frames in vec(frame(), 1..8), cuts in vec(any::<Index>(), 0..24)) {
        let bytes = encode_all(&frames);
        let (got, rest) = decode_chunks(&split(&bytes, &cuts));
        prop_assert_eq!(got.expect("valid stream decodes"), frames);
        prop_assert!(rest.is_empty());
    }

    /// An announced length over the cap is refused from the 4-byte prefix
    /// alone, before anything is reserved for it.
    #[test]
    fn oversized_lengths_error_before_buffering(
        len in (MAX_FRAME_LEN as u32 + 2)..=u32::MAX,
        tail in vec(any::<u8>(), 0..64),
    ) {
        let mut buf = BytesMut::from(&len.to_be_bytes()[..]);
        buf.extend_from_slice(&tail);
        let before = buf.capacity();
        let got = FrameCodec::default().decode(&mut buf);
        prop_assert!(matches!(got, Err(ProtocolError::TooLarge(n)) if n == len as usize), "{:?}", got);
        prop_assert_eq!(buf.capacity(), before);
    }

    /// Under a lowered cap (as before the handshake), the same holds for
    /// anything over that cap, and a frame within it still waits for its bytes.
    #[test]
    fn a_lowered_cap_is_honoured(cap in 0usize..100_000, len in 1u32..200_000, tail in vec(any::<u8>(), 0..64)) {
        let mut codec = FrameCodec::default();
        codec.set_max_len(cap);
        let mut buf = BytesMut::from(&len.to_be_bytes()[..]);
        buf.extend_from_slice(&tail);
        let before = buf.capacity();
        let got = codec.decode(&mut buf);
        if len as usize > cap + 1 {
            prop_assert!(matches!(got, Err(ProtocolError::TooLarge(n)) if n == len as usize), "{:?}", got);
            prop_assert_eq!(buf.capacity(), before);
        } else if tail.len() < len as usize {
            prop_assert!(matches!(got, Ok(None)), "{:?}", got);
            // Room for this one frame at most, never more than the cap allows.
            prop_assert!(buf.capacity() <= (4 + cap + 1).max(before) * 2);
        }
    }

    /// Lengths within the cap are waited for, and what is reserved for them
    /// is bounded by the frame, never by anything larger.
    #[test]
    fn lengths_within_the_cap_reserve_at_most_the_frame(len in 1u32..=(MAX_FRAME_LEN as u32 + 1)) {
        let mut buf = BytesMut::from(&len.to_be_bytes()[..]);
        buf.extend_from_slice(&[1]);
        let got = FrameCodec::default().decode(&mut buf);
        if len == 1 {
            prop_assert_eq!(got.unwrap(), Some(Frame::Data(Bytes::new())));
        } else {
            prop_assert!(matches!(got, Ok(None)), "{:?}", got);
            prop_assert!(buf.capacity() <= 2 * (4 + MAX_FRAME_LEN + 1));
        }
    }
}

// ------------------------------------------------------------------ messages

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every message survives encode and decode unchanged, and names itself.
    #[test]
    fn messages_round_trip(m in message()) {
        let bytes = encode_all(&[Frame::Message(m.clone())]);
        let (got, rest) = decode_chunks(&[&bytes]);
        prop_assert_eq!(got.expect("decodes"), vec![Frame::Message(m.clone())]);
        prop_assert!(rest.is_empty());
        prop_assert_eq!(kind_of(&m), variant(&m));
    }
}

// --------------------------------------------------------------------- paths

/// Pieces that make hostile paths likely, glued at random.
fn tricky_path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just(".."),
        Just("."),
        Just("/"),
        Just("\\"),
        Just("\0"),
        Just("C:"),
        Just(":"),
        Just("a"),
        Just("é"),
        Just(" "),
        Just("..."),
        Just(".hidden"),
    ];
    vec(piece, 0..10).prop_map(|p| p.concat())
}

/// What every accepted path must satisfy, and that it maps into `root`.
fn assert_safe(rel: &str) -> Result<(), TestCaseError> {
    prop_assert!(!rel.is_empty());
    prop_assert!(!rel.starts_with('/'));
    prop_assert!(!rel.contains('\0'));
    for c in rel.split('/') {
        prop_assert!(!c.is_empty() && c != "." && c != "..", "component {:?}", c);
    }
    let root = Path::new("/srv/lab3/directory_a");
    // A backslash or a colon is part of a name; a Windows host refuses
    // such a name when it resolves it (a separator, a drive, a stream).
    let full = match paths::resolve(root, rel) {
        Ok(full) => full,
        Err(_) if cfg!(windows) && rel.contains(['\\', ':']) => return Ok(()),
        Err(e) => panic!("check passed, so resolve does: {e}"),
    };
    prop_assert!(full.starts_with(root));
    prop_assert!(full
        .strip_prefix(root)
        .unwrap()
        .components()
        .all(|c| matches!(c, Component::Normal(_))));
    let back = paths::relative(root, &full);
    prop_assert_eq!(back.as_deref(), Some(rel));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn check_never_panics_nor_accepts_escapes(rel in any::<String>()) {
        if paths::check(&rel).is_ok() {
            assert_safe(&rel)?;
        }
    }

    #[test]
    fn check_refuses_every_hostile_construction(rel in tricky_path()) {
        if paths::check(&rel).is_ok() {
            assert_safe(&rel)?;
        }
    }

    #[test]
    fn plain_relative_paths_are_accepted(parts in vec("[a-zA-Z0-9_ -][a-zA-Z0-9_. -]{0,15}", 1..6)) {
        let rel = parts.join("/");
        prop_assert!(paths::check(&rel).is_ok(), "{:?}", rel);
        assert_safe(&rel)?;
    }
}

// ----------------------------------------------------------- the handshake

/// Runs the server's handshake over a TLS session (faked: its exported
/// keying material is `exporter`) against `input` from the dialler.
fn accept_bytes(input: Vec<u8>, exporter: [u8; 32], token: Option<&str>) -> bool {
    use common::handshake::{self, Expect, HANDSHAKE_TIMEOUT};
    use tokio::io::AsyncWriteExt;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (server, mut dialler) = tokio::io::duplex(1 << 20);
        tokio::spawn(async move {
            let _ = dialler.write_all(&input).await;
            let _ = dialler.shutdown().await; // then the end of input: no waiting for the deadline
            let _ = tokio::io::copy(&mut dialler, &mut tokio::io::sink()).await;
        });
        let mut conn = common::connection::Connection::new(server);
        let session = common::tls::Session {
            exporter,
            peer_certificate: None,
        };
        let expect = Expect {
            me: Role::ServerA,
            allowed: &[Role::Client],
            token,
            deadline: tokio::time::Instant::now() + HANDSHAKE_TIMEOUT,
        };
        handshake::accept(&mut conn, Some(&session), &expect)
            .await
            .is_ok()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever a stranger sends once TLS is up, the handshake ends (the
    /// deadline holds) without a panic, and with a token nothing is let in
    /// without the proof for this session: not a hello carrying another
    /// session's proof, not one carrying the token itself.
    #[test]
    fn the_handshake_after_tls_lets_in_only_a_proof_for_this_session(
        bytes in vec(any::<u8>(), 0..512),
        hello_first in any::<bool>(),
        exporter in any::<[u8; 32]>(),
        other in any::<[u8; 32]>(),
    ) {
        prop_assume!(exporter != other);
        let frame = |m: &Message| encode_all(&[Frame::Message(m.clone())]).to_vec();
        let hello = |proof: Option<String>| Message::Hello {
            version: common::protocol::PROTOCOL_VERSION,
            role: Role::Client,
            proof,
            time_ns: 0,
        };
        let prove = |e: &[u8; 32]| common::proof::prove("t", e, common::proof::Side::Dialler);
        let mut input = if hello_first { frame(&hello(Some(prove(&other)))) } else { Vec::new() };
        input.extend_from_slice(&bytes);
        prop_assert!(!accept_bytes(input.clone(), exporter, Some("t")));
        prop_assert!(!accept_bytes(frame(&hello(Some("t".into()))), exporter, Some("t")));
        let _ = accept_bytes(input, exporter, None);
        // The control: this session's proof is let in.
        prop_assert!(accept_bytes(frame(&hello(Some(prove(&exporter)))), exporter, Some("t")));
    }
}
