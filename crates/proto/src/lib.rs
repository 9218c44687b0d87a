//! The twinbay wire protocol and twin data model, shared by agent and hub.
//!
//! This crate does no I/O. It defines what a node's twin looks like
//! ([`model`]), how two twins differ ([`diff`]), the messages agent and hub
//! exchange over their one WebSocket ([`message`]), how the hub decodes an
//! untrusted frame ([`codec`]) and the join string that enrolls an agent
//! ([`join`]).
//!
//! # When you change this crate
//! Hub and agents run mixed versions during every rollout. Adding an optional
//! field (with `#[serde(default)]`) is compatible and needs no version bump:
//! unknown fields are ignored on both sides. Renaming or removing a field,
//! changing a type, or changing what a message means is not: bump
//! [`PROTOCOL_VERSION`] and teach the hub to speak both versions until the old
//! agents are gone.
#![forbid(unsafe_code)]

pub mod backup;
pub mod codec;
pub mod command;
pub mod diff;
pub mod join;
pub mod message;
pub mod model;
pub mod release;
pub mod text;
pub use text::Str;
#[cfg(feature = "tls")]
pub mod tls;

/// The agent ⇄ hub protocol version. See the crate docs before changing it.
///
/// - 1: state, diffs, metrics, commands.
/// - 2: watched files: the `files` collection, `file_chunk` (agent → hub)
///   and `need_files` (hub → agent). A hub speaks 1 and 2
///   ([`SUPPORTED_PROTOCOLS`]); a version-1 agent simply has no files.
/// - 3: reverse-proxy routes: the `routes` collection. An older agent simply
///   has none.
pub const PROTOCOL_VERSION: u32 = 3;

/// Every version a hub accepts from an agent.
pub const SUPPORTED_PROTOCOLS: std::ops::RangeInclusive<u32> = 1..=PROTOCOL_VERSION;

/// The largest frame either side accepts, in bytes.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// Domain separation for the agent's proof of key possession.
pub const LINK_PROOF_CONTEXT: &[u8] = b"twinbay-link-proof-v1\0";

/// The bytes an agent signs to prove it holds its key: a fixed context,
/// then the hub's one-time challenge nonce.
pub fn link_proof_message(nonce: &str) -> Vec<u8> {
    let mut msg = Vec::with_capacity(LINK_PROOF_CONTEXT.len() + nonce.len());
    msg.extend_from_slice(LINK_PROOF_CONTEXT);
    msg.extend_from_slice(nonce.as_bytes());
    msg
}

/// An error and all its sources on one line (`a: b: c`), for logs and CLI output.
pub fn report(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}
