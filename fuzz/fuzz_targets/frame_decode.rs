//! Feeds arbitrary bytes to `FrameCodec::decode`, cut into reads of a size
//! the input chooses, under the full cap or the pre-handshake one.
//!
//! Oracles: no panic, no allocation past libFuzzer's RSS limit, and every
//! message decoded survives a second encode/decode unchanged.
#![no_main]

use bytes::BytesMut;
use common::connection::{Frame, FrameCodec};
use common::handshake::HELLO_MAX_LEN;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, stream)) = data.split_first() else {
        return;
    };
    let read_size = usize::from(knobs & 0x3f) + 1;
    let mut codec = FrameCodec::default();
    if knobs & 0x40 != 0 {
        codec.set_max_len(HELLO_MAX_LEN);
    }
    let mut buf = BytesMut::new();
    for read in stream.chunks(read_size) {
        buf.extend_from_slice(read);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => check_round_trip(frame),
                Ok(None) => break,
                // A real connection ends here.
                Err(_) => return,
            }
        }
    }
});

fn check_round_trip(frame: Frame) {
    let Frame::Message(_) = &frame else { return };
    let mut bytes = BytesMut::new();
    FrameCodec::default()
        .encode(frame.clone(), &mut bytes)
        .expect("a decoded message encodes");
    let again = FrameCodec::default()
        .decode(&mut bytes)
        .expect("re-encoded message decodes");
    assert_eq!(again, Some(frame));
    assert!(bytes.is_empty());
}
