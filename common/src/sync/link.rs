//! A connected sync link: a writer task that owns the socket's sending half
//! (messages, inventories, files streamed from disk, a ping when idle) and a
//! reader loop that turns frames into engine events, receiving file bytes
//! into temporary files as they arrive.
//!
//! The engine never waits on the writer (an unbounded queue of small
//! items), so two engines can never block each other through the socket.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{broadcast, mpsc, watch, Notify, Semaphore};

use super::blocks::{self, BlockList};
use super::core::{Kind, OpId, PeerMsg};
use super::exec::{Event, Incoming, Outgoing};
use super::transfer::{self, ReceiveError, Sent};
use super::SyncHandle;
use crate::connection::{
    Connection, Frame, FrameReader, FrameWriter, ProtocolError, ReadHalf, WriteHalf,
};
use crate::handshake::{kind_of, PeerInfo};
use crate::meta::FileMeta;
use crate::paths;
use crate::protocol::{Action, Message, Role};

/// A transfer of a file this big or bigger is announced when it starts, not
/// only when it ends.
pub const ANNOUNCE_TRANSFER_FROM: u64 = 8 * 1024 * 1024;

/// Server A pings after sending nothing for this long, and Server B
/// answers each ping at once: an idle link costs one round trip per period.
const PING_EVERY: Duration = Duration::from_secs(10);
/// Server B pings on its own only after sending nothing for this long (A
/// may be too busy streaming a big file to ping).
const PING_EVERY_B: Duration = Duration::from_secs(15);
/// A link is declared dead when nothing arrives for this long.
const SILENCE_LIMIT: Duration = Duration::from_secs(25);

/// How long a sender waits for the receiver's block list of a big file
/// (the receiver reads its whole copy to make it) before sending it whole.
const BLOCKS_WAIT: Duration = Duration::from_secs(60);

/// Received files (and other messages) reach the engine in batches of at
/// most this many, and sent files are reported in such batches: one
/// wake-up of the engine per burst, not per file.
const BATCH: usize = 64;

/// At most this many received files wait for the engine to install them:
/// beyond that the reader waits, and so, through the socket, does the peer
/// (the temporary folder stays small).
const IN_FLIGHT: usize = 1024;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(super) async fn run(
    handle: &SyncHandle,
    conn: Connection,
    peer: PeerInfo,
) -> anyhow::Result<()> {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let Connection {
        mut reader,
        mut writer,
    } = conn;
    // Said as soon as the handshake is done: "most recent wins" is only
    // as good as the two clocks.
    if peer.clock_skew_ns.abs() > 1_000_000_000 {
        tracing::warn!(
            "server {}'s clock differs from ours by {:.1} s; \"most recent wins\" compares their times",
            handle.peer_side(),
            peer.clock_skew_ns as f64 / 1e9
        );
    }
    // Each side says what its file system keeps, first.
    writer.send(Message::SyncHello { fs: handle.fs }).await?;
    let peer_fs = match tokio::time::timeout(SILENCE_LIMIT, reader.read_frame()).await {
        Ok(Ok(Some(Frame::Message(Message::SyncHello { fs })))) => fs,
        Ok(Ok(Some(other))) => anyhow::bail!("expected sync_hello, got {other:?}"),
        Ok(Ok(None)) => anyhow::bail!("closed by the peer"),
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => anyhow::bail!("no sync_hello from the peer"),
    };
    let (out, out_rx) = mpsc::unbounded_channel();
    handle
        .events
        .send(Event::LinkUp {
            id,
            out,
            peer: peer_fs,
            clock_skew_ns: peer.clock_skew_ns,
        })
        .map_err(|_| anyhow::anyhow!("sync engine stopped"))?;
    handle.tell_link(true, String::new());
    // Server B: whether Server A asked for its actions (read_loop sets it).
    let (relay_tx, relay_rx) = watch::channel(false);
    // Server B: a ping came in, answer it.
    let pong = Arc::new(Notify::new());
    // Block lists: the reader's answers to the peer's asks go out through
    // the writer; the peer's answers to the writer's asks come in through
    // the reader.
    let (replies_tx, replies_rx) = mpsc::unbounded_channel();
    let (answers_tx, answers_rx) = mpsc::unbounded_channel();
    let mut writer_task = tokio::spawn(write_loop(
        writer,
        out_rx,
        handle.clone(),
        id,
        relay_rx,
        pong.clone(),
        Blocks {
            replies: replies_rx,
            answers: answers_rx,
        },
    ));
    let blocks_tx = BlocksTx {
        replies: replies_tx,
        answers: answers_tx,
    };
    let res = tokio::select! {
        r = read_loop(reader, handle, id, &relay_tx, &pong, &blocks_tx) => r,
        w = &mut writer_task => match w {
            Ok(r) => r,
            Err(e) => Err(anyhow::anyhow!("link writer: {e}")),
        },
    };
    writer_task.abort();
    let _ = handle.events.send(Event::LinkDown { id });
    let why = match &res {
        Ok(()) => "closed by the peer".to_string(),
        Err(e) => format!("{e:#}"),
    };
    handle.tell_link(false, why);
    res
}

async fn write_loop(
    mut w: FrameWriter<WriteHalf>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    handle: SyncHandle,
    id: u64,
    mut relay: watch::Receiver<bool>,
    pong: Arc<Notify>,
    mut blocks: Blocks,
) -> anyhow::Result<()> {
    let root = handle.cfg.root.clone();
    let mut ping = tokio::time::interval(if handle.cfg.me == Role::ServerB {
        PING_EVERY_B
    } else {
        PING_EVERY
    });
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Server B relays its actions to A while A asks (it has `lab3 watch`
    // clients); Server A asks whenever the number of its watchers goes
    // from none to some, and stops when it drops back.
    let mut actions: Option<broadcast::Receiver<Action>> = None;
    let mut watchers = (handle.cfg.me != Role::ServerB).then(|| handle.watchers.subscribe());
    let mut sent: Vec<(OpId, Sent)> = Vec::new();
    let mut asked = false;
    if let Some(n) = watchers.as_mut() {
        asked = *n.borrow_and_update() > 0;
        if asked {
            w.feed(Message::RelayActions { on: true }).await?;
        }
    }
    loop {
        tokio::select! {
            // An action goes before what the engine queued after announcing it.
            biased;
            Ok(()) = relay.changed() => {
                let on = *relay.borrow_and_update();
                actions = on.then(|| handle.actions.subscribe());
            }
            Some(want) = wanted(&mut watchers) => {
                if want != asked {
                    asked = want;
                    w.send(Message::RelayActions { on: want }).await?;
                }
            }
            Some(m) = blocks.replies.recv() => w.send(m).await?,
            Some(a) = relay_next(&mut actions) => {
                w.feed(Message::Action(a)).await?;
                if let Some(actions) = actions.as_mut() {
                    while let Some(a) = next_action(actions, false).await {
                        w.feed(Message::Action(a)).await?;
                    }
                }
                if rx.is_empty() {
                    w.flush().await?;
                }
                ping.reset();
            }
            item = rx.recv() => {
                let Some(item) = item else { return Ok(()) };
                match item {
                    Outgoing::Msg(m) => w.feed(m).await?,
                    Outgoing::File { op, expect, offer } => {
                        let PeerMsg::Offer { path, .. } = &offer else {
                            continue;
                        };
                        let meta = FileMeta {
                            path: path.clone(),
                            size: expect.size,
                            mtime_ns: expect.mtime_ns,
                            mode: expect.mode.unwrap_or(0o644),
                        };
                        let mut progress = Progress::start(&handle, true, &meta);
                        // Actions announced so far go before the file, not after it.
                        if let Some(actions) = actions.as_mut() {
                            while let Some(a) = next_action(actions, false).await {
                                w.feed(Message::Action(a)).await?;
                            }
                        }
                        let list = if wants_blocks(&offer, &meta) {
                            ask_blocks(&mut w, &meta, &mut blocks, &mut ping).await?
                        } else {
                            None
                        };
                        let outcome = transfer::send_offer(&mut w, &root, &meta, offer, list.as_ref(), &mut |n| progress.at(n)).await?;
                        let big = meta.size >= transfer::CHUNK as u64;
                        if let Sent::Done { wire, .. } = &outcome {
                            handle.status.lock().unwrap().sent_bytes += wire;
                        }
                        sent.push((op, outcome));
                        // Told to the engine in batches: small files one
                        // burst at a time, a big one as soon as it is sent.
                        if big || sent.len() >= BATCH || rx.is_empty() {
                            let files = std::mem::take(&mut sent);
                            let _ = handle.events.send(Event::Sent { id, files });
                        }
                    }
                }
                if rx.is_empty() {
                    w.flush().await?;
                }
                ping.reset();
            }
            _ = ping.tick() => w.send(Message::Ping).await?,
            _ = pong.notified() => {
                w.send(Message::Ping).await?;
                ping.reset();
            }
        }
    }
}

/// The writer's ends of the block-list exchange (see `run`).
struct Blocks {
    /// Block lists this side made for the peer, to send.
    replies: mpsc::UnboundedReceiver<Message>,
    /// The peer's block lists: (path, list).
    answers: mpsc::UnboundedReceiver<(String, BlockList)>,
}

/// The reader's ends of the same.
struct BlocksTx {
    replies: mpsc::UnboundedSender<Message>,
    answers: mpsc::UnboundedSender<(String, BlockList)>,
}

/// Whether `offer` goes block by block: a big file replacing a file that
/// the receiver holds (as far as this side knows).
fn wants_blocks(offer: &PeerMsg, meta: &FileMeta) -> bool {
    meta.size >= blocks::DELTA_FROM
        && matches!(offer, PeerMsg::Offer { base: Some(b), .. } if b.kind == Kind::File && b.size > 0)
}

/// Asks the peer for the blocks of its copy of `meta.path` and waits for
/// them, meanwhile sending the peer's own asks' answers (both sides may be
/// waiting at once) and pings; `None` (send it whole) after `BLOCKS_WAIT`.
async fn ask_blocks(
    w: &mut FrameWriter<WriteHalf>,
    meta: &FileMeta,
    blocks: &mut Blocks,
    ping: &mut tokio::time::Interval,
) -> anyhow::Result<Option<BlockList>> {
    w.send(Message::BlockHashesRequest {
        path: meta.path.clone(),
        block_size: blocks::block_size(meta.size),
    })
    .await?;
    let deadline = tokio::time::sleep(BLOCKS_WAIT);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            got = blocks.answers.recv() => match got {
                Some((path, list)) if path == meta.path => return Ok(Some(list)),
                Some(_) => {} // a late answer to an ask that timed out
                None => return Ok(None),
            },
            Some(m) = blocks.replies.recv() => w.send(m).await?,
            _ = ping.tick() => w.send(Message::Ping).await?,
            _ = &mut deadline => {
                tracing::warn!(
                    "no block list of {} from the peer within {BLOCKS_WAIT:?}; sending it whole",
                    meta.path
                );
                return Ok(None);
            }
        }
    }
}

/// Answers the peer's ask for the blocks of `path` (read on a blocking
/// thread; an unsafe path or no file there: an empty list).
fn answer_blocks(handle: &SyncHandle, tx: &BlocksTx, path: String, block_size: u64) {
    let full = paths::resolve(&handle.cfg.root, &path);
    let replies = tx.replies.clone();
    tokio::spawn(async move {
        let empty = BlockList {
            block_size,
            ..BlockList::default()
        };
        let blocks = match full {
            Ok(full) => {
                match tokio::task::spawn_blocking(move || {
                    blocks::block_list_known(&full, block_size)
                })
                .await
                {
                    Ok(Ok(list)) => list,
                    Ok(Err(e)) => {
                        tracing::warn!("reading the blocks of {path}: {e}");
                        empty
                    }
                    Err(_) => empty,
                }
            }
            Err(e) => {
                tracing::error!("from the peer: {e}");
                empty
            }
        };
        let _ = replies.send(Message::BlockHashes { path, blocks });
    });
}

/// Server A: whether it wants Server B's actions, when that may have
/// changed (it has watchers or not); never completes at Server B.
async fn wanted(watchers: &mut Option<watch::Receiver<usize>>) -> Option<bool> {
    match watchers {
        Some(n) => match n.changed().await {
            Ok(()) => Some(*n.borrow_and_update() > 0),
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// The next action to relay; never completes when there is nothing to relay.
async fn relay_next(actions: &mut Option<broadcast::Receiver<Action>>) -> Option<Action> {
    match actions {
        Some(rx) => next_action(rx, true).await,
        None => std::future::pending().await,
    }
}

/// The next action, skipping over a gap (the link fell behind: the lost
/// actions are only missing from `lab3 watch`). `wait`: wait for one,
/// else `None` when none is ready.
async fn next_action(rx: &mut broadcast::Receiver<Action>, wait: bool) -> Option<Action> {
    loop {
        let got = if wait {
            rx.recv().await
        } else {
            rx.try_recv().map_err(|e| match e {
                broadcast::error::TryRecvError::Lagged(n) => broadcast::error::RecvError::Lagged(n),
                _ => broadcast::error::RecvError::Closed,
            })
        };
        match got {
            Ok(a) => return Some(a),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::debug!("{n} actions not relayed to the peer: the link fell behind");
            }
            Err(broadcast::error::RecvError::Closed) if wait => std::future::pending::<()>().await,
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}

async fn read_loop(
    mut r: FrameReader<ReadHalf>,
    handle: &SyncHandle,
    id: u64,
    relay: &watch::Sender<bool>,
    pong: &Notify,
    blocks_tx: &BlocksTx,
) -> anyhow::Result<()> {
    // Messages for the engine, handed over when the socket has nothing
    // more for now (or BATCH are waiting), in arrival order.
    let mut batch: Vec<Incoming> = Vec::new();
    let hand_over = |batch: &mut Vec<Incoming>| -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let msgs = std::mem::take(batch);
        (handle.events.send(Event::Peer { id, msgs }).ok()).ok_or(ProtocolError::Closed)?;
        Ok(())
    };
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        if batch.len() >= BATCH {
            hand_over(&mut batch)?;
        }
        // A frame already here is taken at once; before waiting for the
        // next one, the engine gets what came so far.
        let frame = match r.read_frame().now_or_never() {
            Some(f) => f?,
            None => {
                hand_over(&mut batch)?;
                match tokio::time::timeout(SILENCE_LIMIT, r.read_frame()).await {
                    Ok(f) => f?,
                    Err(_) => anyhow::bail!("no word from the peer for {SILENCE_LIMIT:?}"),
                }
            }
        };
        let msg = match frame {
            None => return Ok(()),
            Some(Frame::Data(_)) | Some(Frame::Message(Message::BlockCopy { .. })) => {
                anyhow::bail!("data frame outside a file transfer")
            }
            Some(Frame::Unknown(t)) => {
                tracing::warn!("ignoring unknown message type {t:?} on the sync link");
                continue;
            }
            Some(Frame::Message(m)) => m,
        };
        let ok = match msg {
            Message::Ping => {
                if handle.cfg.me == Role::ServerB {
                    pong.notify_one();
                }
                true
            }
            Message::BlockHashesRequest { path, block_size } => {
                answer_blocks(handle, blocks_tx, path, block_size);
                true
            }
            Message::BlockHashes { path, blocks } => {
                let _ = blocks_tx.answers.send((path, blocks));
                true
            }
            Message::RelayActions { on } if handle.cfg.me == Role::ServerB => {
                relay.send_replace(on);
                true
            }
            Message::Sync(msg) if !safe(&msg) => true,
            Message::Sync(PeerMsg::Offer {
                op,
                path,
                base,
                mut version,
            }) if version.kind == Kind::File => {
                let meta = FileMeta {
                    path: path.clone(),
                    size: version.size,
                    mtime_ns: version.mtime_ns,
                    mode: received_mode(&handle.cfg.root, &path, version.mode),
                };
                let mut progress = Progress::start(handle, false, &meta);
                // Files held back here hold permits too, and a big file
                // takes a while: the engine gets them first.
                if in_flight.available_permits() == 0 || meta.size >= transfer::CHUNK as u64 {
                    hand_over(&mut batch)?;
                }
                let permit = in_flight.clone().acquire_owned().await?;
                let receiving = Receiving::new(handle);
                let got = transfer::receive_file(
                    &mut r,
                    &handle.tmp_dir,
                    &handle.cfg.root,
                    meta,
                    None,
                    &mut |n| progress.at(n),
                )
                .await;
                drop(receiving);
                let staged = match got {
                    Ok(received) => {
                        let mut st = handle.status.lock().unwrap();
                        st.received_bytes += received.wire;
                        st.reused_bytes += received.meta.size.saturating_sub(received.wire);
                        drop(st);
                        version.hash = Some(received.hash.into());
                        Some((
                            super::disk::Disk::staged_key(&path, &version),
                            received.temp,
                            received.flushed,
                        ))
                    }
                    Err(ReceiveError::Protocol(e)) => return Err(e.into()),
                    Err(ReceiveError::Aborted(_)) => continue,
                    Err(e @ ReceiveError::Rejected { .. }) => {
                        tracing::error!("from the peer: {e}");
                        None
                    }
                    Err(e @ ReceiveError::Local { .. }) => {
                        handle.announce(
                            "error",
                            handle.side(),
                            &path,
                            None,
                            format!("{e}; will retry"),
                        );
                        None
                    }
                };
                // Without content the install fails and the core asks
                // the peer to offer it again later.
                let msg = PeerMsg::Offer {
                    op,
                    path,
                    base,
                    version,
                };
                push(
                    &mut batch,
                    Incoming {
                        msg,
                        staged,
                        permit: Some(permit),
                    },
                )
            }
            Message::Sync(msg) => push(
                &mut batch,
                Incoming {
                    msg,
                    staged: None,
                    permit: None,
                },
            ),
            Message::Error { message } => {
                tracing::warn!("the peer reports: {message}");
                true
            }
            Message::Action(a) => {
                handle.relay(a);
                true
            }
            other => {
                tracing::warn!("ignoring unexpected {} on the sync link", kind_of(&other));
                true
            }
        };
        if !ok {
            return Err(ProtocolError::Closed.into());
        }
    }
}

/// Queues `msg` for the engine (see `read_loop`); always true.
fn push(batch: &mut Vec<Incoming>, msg: Incoming) -> bool {
    batch.push(msg);
    true
}

/// Counts a file being received in the link's status while it lives.
struct Receiving<'a>(&'a SyncHandle);

impl<'a> Receiving<'a> {
    fn new(handle: &'a SyncHandle) -> Self {
        handle.status.lock().unwrap().receiving += 1;
        Receiving(handle)
    }
}

impl Drop for Receiving<'_> {
    fn drop(&mut self) {
        let mut st = self.0.status.lock().unwrap();
        st.receiving = st.receiving.saturating_sub(1);
    }
}

/// Whether a path from the peer is safe; logs the refusal if not.
fn checked(path: &str) -> bool {
    match paths::check(path) {
        Ok(()) => true,
        Err(e) => {
            tracing::error!("from the peer: {e}");
            false
        }
    }
}

/// Whether every path a core message names is safe; logs the refusal if not.
fn safe(msg: &PeerMsg) -> bool {
    match msg {
        PeerMsg::Digest(_) => true,
        PeerMsg::Inventory { entries, .. } => entries.iter().all(|e| checked(&e.path)),
        PeerMsg::Hashes { hashes } => hashes.iter().all(|(p, _)| checked(p)),
        PeerMsg::Offer { path, .. }
        | PeerMsg::Remove { path, .. }
        | PeerMsg::Stored { path, .. }
        | PeerMsg::Refused { path, .. }
        | PeerMsg::Queued { path, .. } => checked(path),
        PeerMsg::Move { from, to, .. } => checked(from) && checked(to),
    }
}

/// Announces how far a large transfer has got, at most once a second.
struct Progress {
    handle: Option<SyncHandle>,
    arrow: String,
    path: String,
    size: u64,
    next: std::time::Instant,
}

impl Progress {
    /// Starts tracking a transfer (`outbound`: this side sends it); a big
    /// one is announced now (`sending` / `receiving`) and then once a second.
    fn start(handle: &SyncHandle, outbound: bool, meta: &crate::meta::FileMeta) -> Progress {
        let big = meta.size >= ANNOUNCE_TRANSFER_FROM;
        let arrow = match (big, outbound) {
            (false, _) => String::new(),
            (true, true) => handle.outbound(),
            (true, false) => handle.inbound(),
        };
        if big {
            let what = if outbound { "sending" } else { "receiving" };
            handle.announce(what, &arrow, &meta.path, Some(meta.size), String::new());
        }
        Progress {
            handle: big.then(|| handle.clone()),
            arrow,
            path: meta.path.clone(),
            size: meta.size,
            next: std::time::Instant::now() + Duration::from_secs(1),
        }
    }

    fn at(&mut self, done: u64) {
        let Some(handle) = &self.handle else { return };
        let now = std::time::Instant::now();
        if now < self.next || done >= self.size {
            return;
        }
        self.next = now + Duration::from_secs(1);
        let pct = done * 100 / self.size.max(1);
        let detail = format!("{pct}% of {}", crate::console::human_size(self.size));
        handle.announce("progress", &self.arrow, &self.path, Some(done), detail);
    }
}

/// The mode a received file gets here: the sender's, where its side has
/// permission bits. A side without them (Windows) sends none and never
/// changes ours: the file keeps the mode of the copy it replaces here, and
/// a new one gets 0644.
fn received_mode(root: &std::path::Path, path: &str, sent: Option<u32>) -> u32 {
    sent.or_else(|| {
        let here = crate::paths::resolve(root, path).ok()?;
        super::disk::entry_of(&std::fs::symlink_metadata(here).ok()?).mode
    })
    .unwrap_or(0o644)
}
