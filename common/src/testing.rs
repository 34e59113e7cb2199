//! Helpers the tests of every crate share (this crate's unit tests and
//! the workspace harness, which re-exports them): not part of lab3's API.

/// `len` bytes that do not repeat (xorshift from `seed`): content that
/// neither compresses nor matches itself block by block.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
