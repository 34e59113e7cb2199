//! Bytes to frames to messages, with a size cap checked before allocating.
//!
//! A frame is a 4-byte big-endian length, then one kind byte, then the
//! payload: kind 0 is a JSON [`Message`], kind 1 raw file bytes. The codec
//! tells "not enough bytes yet" (wait) apart from "invalid" (an error that
//! ends this one connection).
//!
//! A [`Connection`] runs over any byte stream: TLS over TCP between the
//! programs (see [`crate::tls`]), an in-memory pipe in tests and fuzzing.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::protocol::{Message, MAX_FRAME_LEN};

const KIND_MESSAGE: u8 = 0;
const KIND_DATA: u8 = 1;

/// One decoded frame.
// A frame lives only from its decoding to its handling, one at a time per
// connection: a `Message` inline (a status carries several lists, the
// largest variant) costs less than a box per frame.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Message(Message),
    Data(Bytes),
    /// A well-formed JSON message whose `type` this version does not know
    /// (a newer peer, or a typo): answered with an error, not a hang-up.
    Unknown(String),
}

/// Why a connection could not go on.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes is over the size limit")]
    TooLarge(usize),
    #[error("empty frame")]
    Empty,
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("malformed message: {0}")]
    BadJson(#[from] serde_json::Error),
    #[error("connection closed")]
    Closed,
    #[error("unexpected message: {0}")]
    Unexpected(String),
    #[error("{0}")]
    Refused(String),
    /// The other end did not prove that it holds the shared token (see
    /// [`crate::proof`]).
    #[error("bad or missing token")]
    BadProof,
    /// The other end is not who it should be: its certificate is not the
    /// pinned one, or it could not prove that it holds the token.
    #[error("{0}")]
    Untrusted(String),
}

/// The codec for [`Frame`]s.
pub struct FrameCodec {
    inner: LengthDelimitedCodec,
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec {
            inner: LengthDelimitedCodec::builder()
                .length_field_length(4)
                .max_frame_length(MAX_FRAME_LEN + 1)
                .new_codec(),
        }
    }
}

impl FrameCodec {
    /// Changes the cap on the payload of the frames decoded from now on (at
    /// most [`MAX_FRAME_LEN`]). The handshake reads its one small frame under
    /// a low cap, so that a stranger cannot make us buffer megabytes.
    pub fn set_max_len(&mut self, max_len: usize) {
        self.inner
            .set_max_frame_length(max_len.min(MAX_FRAME_LEN) + 1);
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        // The inner codec checks the announced length against the cap before
        // reserving room for the payload. (Peeking at `src` ourselves would be
        // wrong: once the inner codec has consumed a header, `src` starts with
        // the payload, not with a length.)
        let Some(mut frame) = self
            .inner
            .decode(src)
            .map_err(|e| map_codec_error(e, src))?
        else {
            return Ok(None);
        };
        if frame.is_empty() {
            return Err(ProtocolError::Empty);
        }
        match frame.get_u8() {
            KIND_MESSAGE => match serde_json::from_slice(&frame) {
                Ok(m) => Ok(Some(Frame::Message(m))),
                Err(e) => match unknown_type(&frame) {
                    Some(t) => Ok(Some(Frame::Unknown(t))),
                    None => Err(e.into()),
                },
            },
            KIND_DATA => Ok(Some(Frame::Data(frame.freeze()))),
            other => Err(ProtocolError::UnknownKind(other)),
        }
    }
}

/// The `type` of a JSON object whose type is not one of ours.
fn unknown_type(payload: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Typed {
        #[serde(rename = "type")]
        kind: String,
    }
    let t: Typed = serde_json::from_slice(payload).ok()?;
    let known = serde_json::from_value::<Message>(serde_json::json!({ "type": t.kind }));
    // A known type with a bad body is malformed, not unknown.
    match known {
        Err(e) if e.to_string().starts_with("unknown variant") => {
            Some(t.kind.chars().take(64).collect())
        }
        _ => None,
    }
}

/// Turns the inner codec's "frame size too big" into [`ProtocolError::TooLarge`]
/// with the announced length, which is still at the front of `src` (the
/// inner codec refuses a header before consuming it).
fn map_codec_error(e: std::io::Error, src: &BytesMut) -> ProtocolError {
    if e.kind() == std::io::ErrorKind::InvalidData {
        let len = src
            .get(..4)
            .map(|h| u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize)
            .unwrap_or(0);
        ProtocolError::TooLarge(len)
    } else {
        ProtocolError::Io(e)
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = ProtocolError;

    fn encode(&mut self, item: Frame, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        let (kind, body) = match item {
            Frame::Message(m) => (KIND_MESSAGE, Bytes::from(serde_json::to_vec(&m)?)),
            Frame::Data(b) => (KIND_DATA, b),
            Frame::Unknown(t) => (
                KIND_MESSAGE,
                Bytes::from(serde_json::to_vec(&serde_json::json!({ "type": t }))?),
            ),
        };
        if body.len() > MAX_FRAME_LEN {
            return Err(ProtocolError::TooLarge(body.len() + 1));
        }
        dst.reserve(5 + body.len());
        dst.put_u32(body.len() as u32 + 1);
        dst.put_u8(kind);
        dst.put_slice(&body);
        Ok(())
    }
}

/// Reads frames from one half of a connection.
pub struct FrameReader<R> {
    inner: FramedRead<R, FrameCodec>,
    /// How long [`FrameReader::read_frame`] waits for the next frame before
    /// failing; `None` (the default) waits for ever, as a sync link must.
    idle_timeout: Option<Duration>,
}

/// Writes frames to one half of a connection.
pub struct FrameWriter<W> {
    inner: FramedWrite<W, FrameCodec>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(r: R) -> Self {
        FrameReader {
            inner: FramedRead::with_capacity(r, FrameCodec::default(), 256 * 1024),
            idle_timeout: None,
        }
    }

    /// Makes [`FrameReader::read_frame`] fail with a `TimedOut` error when no
    /// frame arrives within `idle` (`None`: wait for ever). Servers set it on
    /// client connections, so a client that vanished without closing (a
    /// sleeping laptop, a dropped network) does not hold a slot for ever.
    pub fn set_idle_timeout(&mut self, idle: Option<Duration>) {
        self.idle_timeout = idle;
    }

    /// Changes the size cap for the frames read from now on (see
    /// [`FrameCodec::set_max_len`]).
    pub fn set_max_frame_len(&mut self, max_len: usize) {
        self.inner.decoder_mut().set_max_len(max_len);
    }

    /// The next frame, or `None` when the peer closed cleanly between frames.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, ProtocolError> {
        let Some(idle) = self.idle_timeout else {
            let next = self.inner.next().await;
            return self.ended_between_frames(next);
        };
        match tokio::time::timeout(idle, self.inner.next()).await {
            Ok(next) => self.ended_between_frames(next),
            Err(_) => Err(ProtocolError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("nothing received for {}s; closing", idle.as_secs_f32()),
            ))),
        }
    }

    /// A TLS peer that closes its socket without a TLS close_notify (a
    /// `lab3` that printed its answer and exited) ends in an
    /// `UnexpectedEof`; between two frames that is a close like any other,
    /// not an error worth a warning. Inside a frame it stays an error: a
    /// frame cut short is never taken.
    fn ended_between_frames(
        &self,
        next: Option<Result<Frame, ProtocolError>>,
    ) -> Result<Option<Frame>, ProtocolError> {
        match next {
            Some(Err(ProtocolError::Io(e)))
                if e.kind() == std::io::ErrorKind::UnexpectedEof
                    && self.inner.read_buffer().is_empty() =>
            {
                Ok(None)
            }
            other => other.transpose(),
        }
    }

    /// The next frame, which must be a message.
    pub async fn read_message(&mut self) -> Result<Message, ProtocolError> {
        match self.read_frame().await? {
            Some(Frame::Message(Message::Error { message })) => {
                Err(ProtocolError::Refused(message))
            }
            Some(Frame::Message(m)) => Ok(m),
            Some(Frame::Data(_)) => Err(ProtocolError::Unexpected("data frame".into())),
            Some(Frame::Unknown(t)) => Err(ProtocolError::Unexpected(format!(
                "unknown message type {t:?}"
            ))),
            None => Err(ProtocolError::Closed),
        }
    }
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub fn new(w: W) -> Self {
        let mut inner = FramedWrite::new(w, FrameCodec::default());
        inner.set_backpressure_boundary(256 * 1024);
        FrameWriter { inner }
    }

    /// Sends one message and flushes.
    pub async fn send(&mut self, m: Message) -> Result<(), ProtocolError> {
        self.inner.send(Frame::Message(m)).await
    }

    /// Queues one message without flushing (call [`FrameWriter::flush`]).
    pub async fn feed(&mut self, m: Message) -> Result<(), ProtocolError> {
        self.inner.feed(Frame::Message(m)).await
    }

    /// Queues one data frame without flushing.
    pub async fn feed_data(&mut self, b: Bytes) -> Result<(), ProtocolError> {
        self.inner.feed(Frame::Data(b)).await
    }

    pub async fn flush(&mut self) -> Result<(), ProtocolError> {
        self.inner.flush().await
    }
}

/// A byte stream a [`Connection`] can run over.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// The receiving half of a connection's stream.
pub type ReadHalf = tokio::io::ReadHalf<Box<dyn Stream>>;
/// The sending half of a connection's stream.
pub type WriteHalf = tokio::io::WriteHalf<Box<dyn Stream>>;

/// A connection speaking lab3 frames, split into its two halves.
pub struct Connection {
    pub reader: FrameReader<ReadHalf>,
    pub writer: FrameWriter<WriteHalf>,
}

impl Connection {
    /// Frames over `stream` (a TLS stream between the programs).
    pub fn new(stream: impl Stream + 'static) -> Connection {
        let boxed: Box<dyn Stream> = Box::new(stream);
        let (r, w) = tokio::io::split(boxed);
        Connection {
            reader: FrameReader::new(r),
            writer: FrameWriter::new(w),
        }
    }

    /// The next request on a server's connection: `None` when the other end
    /// closed. A message of an unknown type is answered with an error here
    /// and skipped (the connection stays); a data frame is an error.
    pub async fn next_request(&mut self) -> Result<Option<Message>, ProtocolError> {
        loop {
            match self.reader.read_frame().await? {
                None => return Ok(None),
                Some(Frame::Message(m)) => return Ok(Some(m)),
                Some(Frame::Unknown(t)) => {
                    let message = format!("unknown request: {t}");
                    self.writer.send(Message::Error { message }).await?;
                }
                Some(Frame::Data(_)) => {
                    return Err(ProtocolError::Unexpected(
                        "data frame outside a transfer".into(),
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(f: Frame) -> BytesMut {
        let mut b = BytesMut::new();
        FrameCodec::default().encode(f, &mut b).unwrap();
        b
    }

    #[test]
    fn message_round_trips() {
        let mut b = encode(Frame::Message(Message::ListRequest));
        // `{"type":"list_request"}` is 23 bytes, plus the kind byte.
        assert_eq!(&b[..5], &[0, 0, 0, 24, 0]);
        let got = FrameCodec::default().decode(&mut b).unwrap();
        assert_eq!(got, Some(Frame::Message(Message::ListRequest)));
    }

    #[test]
    fn an_unknown_type_is_its_own_frame_but_a_bad_body_is_an_error() {
        let body = br#"{"type":"frobnicate","body":{"x":1}}"#;
        let mut b = BytesMut::new();
        b.put_u32(body.len() as u32 + 1);
        b.put_u8(0);
        b.put_slice(body);
        assert_eq!(
            FrameCodec::default().decode(&mut b).unwrap(),
            Some(Frame::Unknown("frobnicate".into()))
        );
        let body = br#"{"type":"lock","body":{"nope":1}}"#;
        let mut b = BytesMut::new();
        b.put_u32(body.len() as u32 + 1);
        b.put_u8(0);
        b.put_slice(body);
        assert!(FrameCodec::default().decode(&mut b).is_err());
    }

    #[test]
    fn partial_frame_waits() {
        let full = encode(Frame::Data(Bytes::from_static(b"hello")));
        let mut part = BytesMut::from(&full[..7]);
        assert_eq!(FrameCodec::default().decode(&mut part).unwrap(), None);
    }

    #[test]
    fn data_frame_split_across_reads_decodes() {
        // After the inner codec consumes a header, the buffer starts with the
        // kind byte and payload; those must not be read as a new length.
        let payload = Bytes::from(vec![7u8; 1000]);
        let full = encode(Frame::Data(payload.clone()));
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&full[..10]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(&full[10..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(Frame::Data(payload)));
    }

    #[test]
    fn oversized_length_is_refused_before_allocating() {
        let mut b = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 0][..]);
        assert!(matches!(
            FrameCodec::default().decode(&mut b),
            Err(ProtocolError::TooLarge(0xffff_ffff))
        ));
        assert!(b.capacity() < 1024, "nothing was reserved for the payload");
        // The largest allowed frame is announced, not refused.
        let max = (MAX_FRAME_LEN as u32 + 1).to_be_bytes();
        let mut b = BytesMut::from(&max[..]);
        assert_eq!(FrameCodec::default().decode(&mut b).unwrap(), None);
        let over = (MAX_FRAME_LEN as u32 + 2).to_be_bytes();
        let mut b = BytesMut::from(&over[..]);
        assert!(matches!(
            FrameCodec::default().decode(&mut b),
            Err(ProtocolError::TooLarge(n)) if n == MAX_FRAME_LEN + 2
        ));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut b = BytesMut::from(&[0, 0, 0, 3, 0, b'{', b'x'][..]);
        assert!(FrameCodec::default().decode(&mut b).is_err());
        let mut b = BytesMut::from(&[0, 0, 0, 1, 9][..]);
        assert!(matches!(
            FrameCodec::default().decode(&mut b),
            Err(ProtocolError::UnknownKind(9))
        ));
        let mut b = BytesMut::from(&[0, 0, 0, 0][..]);
        assert!(matches!(
            FrameCodec::default().decode(&mut b),
            Err(ProtocolError::Empty)
        ));
    }

    #[test]
    fn a_lower_cap_refuses_what_the_default_takes() {
        let b = encode(Frame::Data(Bytes::from(vec![7u8; 100])));
        let mut codec = FrameCodec::default();
        codec.set_max_len(99);
        assert!(matches!(
            codec.decode(&mut b.clone()),
            Err(ProtocolError::TooLarge(101))
        ));
        let mut codec = FrameCodec::default();
        codec.set_max_len(100);
        assert!(codec.decode(&mut b.clone()).unwrap().is_some());
    }
}
