//! # lab3 common
//!
//! Everything both servers and the client share: the protocol, the file
//! model and the sync engine. The binaries are thin glue over this crate.
//!
//! # Layout
//! - [`protocol`]: the messages, as plain data.
//! - [`connection`]: length-prefixed frames over a byte stream, with a size cap.
//! - [`tls`]: TLS 1.3 under every connection; keys, certificates, fingerprints.
//! - [`handshake`]: TLS, then version, role and token proof at the start of a connection.
//! - [`proof`]: proving the shared token without sending it, bound to the TLS session.
//! - [`server`]: the accept loop (connection cap, one task per connection).
//! - [`throttle`]: slowing down whoever guesses the token, and only them.
//! - [`meta`], [`paths`], [`scan`], [`ignore`]: the file model: metadata,
//!   safe relative paths, walking a directory, what is never synced.
//! - [`inventory`]: a side's file list over the wire, in chunks.
//! - [`listing`]: merging both sides into the composite listing.
//! - [`console`]: the one-line-per-action announcements and logging.
//! - [`durable`]: state written so that a power cut cannot tear it.
//! - [`state_lock`]: one running server per state directory.
//! - [`status`]: `lab3 status` from both sides' reports.
//! - [`config`]: flags both servers share and the default state directory.
//! - [`sync`]: the sync engine (watcher, journal, decide, transfer, apply, link).
//! - `testing`: helpers the tests share (hidden: not part of the API).

pub mod config;
pub mod connection;
pub mod console;
pub mod durable;
pub mod handshake;
pub mod ignore;
pub mod inventory;
pub mod listing;
pub mod meta;
pub mod paths;
pub mod proof;
pub mod protocol;
pub mod scan;
pub mod server;
pub mod state_lock;
pub mod status;
pub mod sync;
#[doc(hidden)]
pub mod testing;
pub mod throttle;
pub mod tls;
