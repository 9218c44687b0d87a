//! The join string: everything an agent needs to enroll, in one copyable line.
//!
//! Format: `tbj1_` followed by unpadded base64url of a JSON object
//! `{"hub": URL, "token": TOKEN, "fp": "sha256:HEX"}`. The fingerprint pins the
//! hub's TLS certificate; it is empty only for a `ws://` hub on loopback.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

const PREFIX: &str = "tbj1_";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinString {
    /// The hub's URL: `https://` or `wss://` (or `ws://`/`http://` on loopback).
    pub hub: String,
    pub token: String,
    /// `sha256:` and the lowercase hex SHA-256 of the hub certificate's DER.
    #[serde(default)]
    pub fp: String,
    /// The minisign public keys (base64, `RW…`) the agent trusts for its own
    /// updates: the hub's `--update-key`s. Absent from older join strings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub update_keys: Vec<String>,
    /// The other hub replicas' URLs (same certificate): the agent dials
    /// them in turn when `hub` does not answer. Absent from older ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_hubs: Vec<String>,
}

impl JoinString {
    /// Every hub URL to dial, `hub` first, without repeats.
    pub fn hubs(&self) -> Vec<String> {
        let mut hubs = vec![self.hub.clone()];
        for h in &self.more_hubs {
            if !hubs.contains(h) {
                hubs.push(h.clone());
            }
        }
        hubs
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JoinError {
    #[error("not a twinbay join string (it should start with {PREFIX:?})")]
    Prefix,
    #[error("join string is damaged: {0}")]
    Damaged(String),
}

impl JoinString {
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("a join string always serializes");
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
    }

    pub fn parse(text: &str) -> Result<JoinString, JoinError> {
        let body = text.trim().strip_prefix(PREFIX).ok_or(JoinError::Prefix)?;
        let json = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|e| JoinError::Damaged(e.to_string()))?;
        let join: JoinString =
            serde_json::from_slice(&json).map_err(|e| JoinError::Damaged(e.to_string()))?;
        if join.hub.is_empty() || join.token.is_empty() {
            return Err(JoinError::Damaged("hub URL or token is empty".into()));
        }
        Ok(join)
    }
}

/// The pin of a TLS certificate: `sha256:` and the lowercase hex SHA-256 of its DER.
pub fn cert_fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(der);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let join = JoinString {
            hub: "https://10.0.0.2:7780".into(),
            token: "abc".into(),
            fp: "sha256:00ff".into(),
            update_keys: vec!["RWQkey".into()],
            more_hubs: vec!["https://b:7780".into(), "https://hub:7780".into()],
        };
        let text = join.encode();
        assert!(text.starts_with("tbj1_"));
        assert!(!text.contains(['+', '/', '=', ' ']));
        assert_eq!(JoinString::parse(&format!(" {text}\n")).unwrap(), join);
        assert_eq!(JoinString::parse("hello"), Err(JoinError::Prefix));
        assert!(matches!(
            JoinString::parse("tbj1_!!!"),
            Err(JoinError::Damaged(_))
        ));
        assert!(matches!(
            JoinString::parse("tbj1_e30"),
            Err(JoinError::Damaged(_))
        ));
        // A join string from before update keys still parses (with none).
        let old = format!(
            "tbj1_{}",
            URL_SAFE_NO_PAD.encode(br#"{"hub":"https://h:1","token":"t","fp":"sha256:00"}"#)
        );
        assert!(JoinString::parse(&old).unwrap().update_keys.is_empty());
    }
}
