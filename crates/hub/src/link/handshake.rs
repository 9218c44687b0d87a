//! Checking an agent's hello: protocol, proof of key possession, enrollment or pin.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, VerifyingKey};
use twinbay_proto::message::{ErrorCode, Hello};
use twinbay_proto::{PROTOCOL_VERSION, SUPPORTED_PROTOCOLS, link_proof_message};

use crate::store::{EnrollError, Store, StoreError};
use crate::twin::Twin;

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("protocol version {0} is not supported (this hub speaks {PROTOCOL_VERSION})")]
    Protocol(u32),
    #[error("public key is not a base64 ed25519 key")]
    BadKey,
    #[error("proof of key possession failed")]
    BadSignature,
    #[error("unknown node {0}; enroll the agent again with a new join token")]
    UnknownNode(String),
    #[error("key does not match the key pinned for node {0}")]
    KeyMismatch(String),
    #[error("hello has neither a node id nor a join token")]
    NoCredentials,
    #[error(transparent)]
    Enroll(EnrollError),
    #[error("internal error")]
    Store(#[from] StoreError),
}

impl HandshakeError {
    pub fn code(&self) -> ErrorCode {
        match self {
            HandshakeError::Protocol(_) => ErrorCode::UnsupportedProtocol,
            HandshakeError::Enroll(EnrollError::Store(_)) | HandshakeError::Store(_) => {
                ErrorCode::Internal
            }
            HandshakeError::Enroll(_) => ErrorCode::InvalidToken,
            _ => ErrorCode::AuthFailed,
        }
    }
}

/// Verifies `hello` against the challenge `nonce`; returns the node id.
/// A known node's pinned key comes from the twin (no database read, so a
/// fleet reconnecting at once does not queue on the store).
pub async fn verify(
    store: &Store,
    twin: &Twin,
    hello: &Hello,
    nonce: &str,
) -> Result<String, HandshakeError> {
    if !SUPPORTED_PROTOCOLS.contains(&hello.protocol) {
        return Err(HandshakeError::Protocol(hello.protocol));
    }
    let key = STANDARD
        .decode(&hello.public_key)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or(HandshakeError::BadKey)?;
    let signature = STANDARD
        .decode(&hello.signature)
        .ok()
        .and_then(|b| Signature::try_from(b.as_slice()).ok())
        .ok_or(HandshakeError::BadSignature)?;
    key.verify_strict(&link_proof_message(nonce), &signature)
        .map_err(|_| HandshakeError::BadSignature)?;

    if let Some(node_id) = &hello.node_id {
        let pinned = match twin.pinned_key(node_id) {
            Some(key) => Some(key),
            None => store.node_key(node_id).await?,
        };
        return match pinned {
            None => Err(HandshakeError::UnknownNode(node_id.clone())),
            Some(pinned) if pinned == hello.public_key => Ok(node_id.clone()),
            Some(_) => Err(HandshakeError::KeyMismatch(node_id.clone())),
        };
    }
    match &hello.join_token {
        Some(token) => store
            .enroll(token, &hello.public_key, hello.simulated)
            .await
            .map_err(HandshakeError::Enroll),
        None => Err(HandshakeError::NoCredentials),
    }
}
