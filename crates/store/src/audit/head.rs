//! The trail's head, signed by the hub, for an admin to keep elsewhere.
//!
//! `GET /api/v1/audit/head` returns a [`SignedHead`]; later,
//! `twinbay ctl audit verify --head-file F` checks its signature with the
//! hub's audit key (`DATA_DIR/audit.key`) and that the chain still contains
//! that entry. The signature is ed25519 over [`SignedHead::message`]:
//!
//! ```text
//! twinbay audit head v1
//! id=12
//! hash=<64 lowercase hex digits>
//! ts_ms=1767225600000
//! count=12
//! ```
//!
//! (one field a line, each line ending in `\n`). `public_key` and
//! `signature` are standard base64 of the raw 32- and 64-byte values.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::{Expected, GENESIS};

/// The one signature algorithm.
pub const ALGORITHM: &str = "ed25519";

/// The newest entry: what a later check must find again in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    /// 0 for an empty trail.
    pub id: i64,
    /// Lowercase hex SHA-256; [`GENESIS`] for an empty trail.
    pub hash: String,
}

impl Head {
    pub fn empty() -> Head {
        Head {
            id: 0,
            hash: GENESIS.into(),
        }
    }

    pub fn expected(&self) -> Expected {
        Expected {
            id: Some(self.id),
            hash: self.hash.clone(),
        }
    }
}

/// The audit trail's head, signed by the hub's audit key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedHead {
    /// The newest entry's id (0 when the trail is empty).
    pub id: i64,
    /// The newest entry's hash, lowercase hex SHA-256 (64 zeros when empty).
    pub hash: String,
    /// When the hub signed this head, unix milliseconds.
    pub ts_ms: i64,
    /// Entries in the trail (ids run from 1 without gaps, so this is `id`).
    pub count: u64,
    /// Base64 ed25519 signature over the canonical message
    /// `twinbay audit head v1\nid={id}\nhash={hash}\nts_ms={ts_ms}\ncount={count}\n`.
    pub signature: String,
    /// Base64 ed25519 public key of the hub's audit key.
    pub public_key: String,
    /// Always `ed25519`.
    pub algorithm: String,
}

/// Why a saved head is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("the head's algorithm is {0:?}, not ed25519")]
    Algorithm(String),
    #[error("the head is malformed: {0}")]
    Malformed(&'static str),
    #[error("the head was signed by another key, not this hub's audit key")]
    OtherKey,
    #[error("the head's signature does not match: it was changed after the hub signed it")]
    Signature,
}

impl SignedHead {
    /// Signs `head`, as of `ts_ms`, with `key`.
    pub fn sign(key: &SigningKey, head: &Head, ts_ms: i64) -> SignedHead {
        let count = u64::try_from(head.id).unwrap_or(0);
        let message = message(head.id, &head.hash, ts_ms, count);
        SignedHead {
            id: head.id,
            hash: head.hash.clone(),
            ts_ms,
            count,
            signature: STANDARD.encode(key.sign(message.as_bytes()).to_bytes()),
            public_key: public_key(&key.verifying_key()),
            algorithm: ALGORITHM.into(),
        }
    }

    /// The exact bytes the signature covers.
    pub fn message(&self) -> String {
        message(self.id, &self.hash, self.ts_ms, self.count)
    }

    /// Checks that this head was signed by `key` and not changed since; the
    /// head to expect in the chain.
    pub fn verify(&self, key: &VerifyingKey) -> Result<Expected, HeadError> {
        if self.algorithm != ALGORITHM {
            return Err(HeadError::Algorithm(self.algorithm.clone()));
        }
        if self.public_key != public_key(key) {
            return Err(HeadError::OtherKey);
        }
        let signature = STANDARD
            .decode(&self.signature)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or(HeadError::Malformed("the signature is not base64 ed25519"))?;
        key.verify_strict(self.message().as_bytes(), &signature)
            .map_err(|_| HeadError::Signature)?;
        let mut expected =
            Expected::parse(&self.hash).map_err(|_| HeadError::Malformed("bad hash"))?;
        if expected.hash != self.hash {
            // Signed, but not in the form the hub writes (uppercase).
            return Err(HeadError::Malformed("the hash is not lowercase hex"));
        }
        expected.id = Some(self.id);
        Ok(expected)
    }
}

/// Base64 of a public key, as [`SignedHead::public_key`] holds it.
pub fn public_key(key: &VerifyingKey) -> String {
    STANDARD.encode(key.to_bytes())
}

fn message(id: i64, hash: &str, ts_ms: i64, count: u64) -> String {
    format!("twinbay audit head v1\nid={id}\nhash={hash}\nts_ms={ts_ms}\ncount={count}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn head() -> Head {
        Head {
            id: 12,
            hash: "ab".repeat(32),
        }
    }

    #[test]
    fn a_signed_head_verifies_with_its_key_and_survives_json() {
        let k = key(7);
        let signed = SignedHead::sign(&k, &head(), 1_767_225_600_000);
        assert_eq!(signed.count, 12);
        assert_eq!(signed.algorithm, "ed25519");
        let text = serde_json::to_string(&signed).unwrap();
        let back: SignedHead = serde_json::from_str(&text).unwrap();
        assert_eq!(back.verify(&k.verifying_key()), Ok(head().expected()));
    }

    #[test]
    fn the_canonical_message_is_the_documented_one() {
        let signed = SignedHead::sign(&key(7), &head(), 5);
        assert_eq!(
            signed.message(),
            format!(
                "twinbay audit head v1\nid=12\nhash={}\nts_ms=5\ncount=12\n",
                "ab".repeat(32)
            )
        );
    }

    #[test]
    fn a_tampered_head_is_refused() {
        let k = key(7);
        let signed = SignedHead::sign(&k, &head(), 5);
        let vk = k.verifying_key();
        // Pointing at an older entry, to hide a cut.
        let mut older = signed.clone();
        older.id = 9;
        older.count = 9;
        older.hash = "cd".repeat(32);
        assert_eq!(older.verify(&vk), Err(HeadError::Signature));
        let mut later = signed.clone();
        later.ts_ms += 1;
        assert_eq!(later.verify(&vk), Err(HeadError::Signature));
        let mut garbled = signed.clone();
        garbled.signature = "not base64!".into();
        assert!(matches!(garbled.verify(&vk), Err(HeadError::Malformed(_))));
        let mut algorithm = signed.clone();
        algorithm.algorithm = "none".into();
        assert_eq!(
            algorithm.verify(&vk),
            Err(HeadError::Algorithm("none".into()))
        );
    }

    #[test]
    fn a_head_signed_by_another_key_is_refused() {
        let mallory = key(9);
        let forged = SignedHead::sign(&mallory, &head(), 5);
        // Its own key verifies it; the hub's does not accept it.
        assert!(forged.verify(&mallory.verifying_key()).is_ok());
        assert_eq!(
            forged.verify(&key(7).verifying_key()),
            Err(HeadError::OtherKey)
        );
        // Claiming the hub's key does not help: the signature is mallory's.
        let mut claimed = forged;
        claimed.public_key = public_key(&key(7).verifying_key());
        assert_eq!(
            claimed.verify(&key(7).verifying_key()),
            Err(HeadError::Signature)
        );
    }
}
