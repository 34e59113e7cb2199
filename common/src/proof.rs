//! Proving that one holds the shared token without sending it: a keyed
//! hash (HMAC-SHA256, keyed with the token) over the TLS session's
//! exported keying material ([`crate::tls::Session::exporter`]).
//!
//! A proof is good for one session only: a relay that terminates TLS
//! itself has one session with each end, so a proof it forwards from one
//! leg fails on the other, and it cannot make one without the token. Each
//! direction has its own label, so the server's proof is not the client's
//! sent back. The dialler proves first and the server answers only a good
//! proof with its own, so a stranger who connects learns nothing it could
//! test guesses against offline; a relay the dialler was sent to does see
//! the dialler's proof, which is why a token should be long and random.

use ring::hmac;

/// Which end a proof comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The end that dialled (`lab3`, or Server A on its link to B).
    Dialler,
    /// The end that accepted.
    Acceptor,
}

impl Side {
    fn label(self) -> &'static [u8] {
        match self {
            Side::Dialler => b"lab3 token proof v1: dialler",
            Side::Acceptor => b"lab3 token proof v1: acceptor",
        }
    }
}

/// The proof, in hex, that `side` holds `token` in the session whose
/// exported keying material is `exporter`.
pub fn prove(token: &str, exporter: &[u8; 32], side: Side) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, token.as_bytes());
    to_hex(hmac::sign(&key, &message(exporter, side)).as_ref())
}

/// Whether `proof` is the one [`prove`] gives (compared in constant time).
pub fn check(token: &str, exporter: &[u8; 32], side: Side, proof: &str) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, token.as_bytes());
    match from_hex(proof) {
        Some(tag) => hmac::verify(&key, &message(exporter, side), &tag).is_ok(),
        None => false,
    }
}

fn message(exporter: &[u8; 32], side: Side) -> Vec<u8> {
    [side.label(), b"\0", exporter].concat()
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex digits (either case) to bytes; `None` for anything else.
pub(crate) fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_holds_for_its_token_session_and_side_only() {
        let (e1, e2) = ([1u8; 32], [2u8; 32]);
        let p = prove("s3cret", &e1, Side::Dialler);
        assert_eq!(p.len(), 64);
        assert!(!p.contains("s3cret"));
        assert!(check("s3cret", &e1, Side::Dialler, &p));
        assert!(check("s3cret", &e1, Side::Dialler, &p.to_uppercase()));
        assert!(!check("s3cret", &e2, Side::Dialler, &p), "another session");
        assert!(!check("s3cret", &e1, Side::Acceptor, &p), "the other side");
        assert!(!check("s3cre", &e1, Side::Dialler, &p), "another token");
        assert!(!check("s3cret", &e1, Side::Dialler, "zz"));
        assert!(!check("s3cret", &e1, Side::Dialler, ""));
        assert!(!check("s3cret", &e1, Side::Dialler, "é"));
    }
}
