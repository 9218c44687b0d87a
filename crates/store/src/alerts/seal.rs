//! Channel secrets at rest. A channel's URL (tokens, passwords, webhook
//! paths) and its secret are stored sealed with ChaCha20-Poly1305 (ring)
//! under a key the hub makes on its first start, `DATA_DIR/alerts.key`
//! (mode 0600): a copy of the database alone gives none of them away.
//!
//! Sealed text is `sealed:v1:` and base64 of a random 96-bit nonce and
//! the ciphertext with its tag; the column's name is the associated data,
//! so a sealed URL cannot be passed off as a secret. Text without the
//! prefix is a row from before sealing, read as it is until the hub seals
//! it at start ([`crate::Store::seal_alert_channels`]).

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::StoreError;

/// The key's file in the data directory.
pub const KEY_FILE: &str = "alerts.key";
const PREFIX: &str = "sealed:v1:";

/// Seals and opens channel secrets with the hub's key.
pub struct Sealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

/// Sealed text that does not open: another hub's key, or damaged.
#[derive(Debug, thiserror::Error)]
#[error("a sealed channel {0} does not open with this hub's key ({KEY_FILE})")]
pub struct Unopenable(pub &'static str);

impl Sealer {
    /// Reads `DATA_DIR/alerts.key`, or makes it (0600) on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<Sealer, StoreError> {
        let failed =
            |path: &Path, e: std::io::Error| StoreError::Config(format!("{}: {e}", path.display()));
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = STANDARD
                    .decode(text.trim())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| {
                        StoreError::Config(format!(
                            "{}: not a key (32 bytes, base64)",
                            path.display()
                        ))
                    })?;
                Ok(Sealer::from_key(&bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                SystemRandom::new()
                    .fill(&mut key)
                    .map_err(|_| failed(&path, std::io::Error::other("no randomness")))?;
                crate::fsutil::write_private(&path, STANDARD.encode(key).as_bytes())
                    .map_err(|e| failed(&path, e))?;
                tracing::info!(path = %path.display(), "created the key that seals alert channel secrets");
                Ok(Sealer::from_key(&key))
            }
            Err(e) => Err(failed(&path, e)),
        }
    }

    pub fn from_key(key: &[u8; 32]) -> Sealer {
        let key = UnboundKey::new(&CHACHA20_POLY1305, key).expect("a 32-byte key");
        Sealer {
            key: LessSafeKey::new(key),
            rng: SystemRandom::new(),
        }
    }

    /// `plain`, sealed for the column `what` (`url`, `secret`).
    pub fn seal(&self, plain: &str, what: &'static str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).expect("the system's randomness");
        let mut data = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(what),
                &mut data,
            )
            .expect("sealing cannot fail for short text");
        let mut out = nonce.to_vec();
        out.extend(data);
        format!("{PREFIX}{}", STANDARD.encode(out))
    }

    /// The text `stored` in column `what`: opened if sealed, as it is if
    /// it is from before sealing.
    pub fn open(&self, stored: &str, what: &'static str) -> Result<String, Unopenable> {
        let Some(sealed) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let bytes = STANDARD.decode(sealed).map_err(|_| Unopenable(what))?;
        if bytes.len() < NONCE_LEN {
            return Err(Unopenable(what));
        }
        let (nonce, data) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Unopenable(what))?;
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(what), &mut data)
            .map_err(|_| Unopenable(what))?;
        String::from_utf8(plain.to_vec()).map_err(|_| Unopenable(what))
    }

    /// Whether `stored` is sealed already.
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_text_opens_only_with_its_key_and_column() {
        let s = Sealer::from_key(&[7; 32]);
        let url = "ntfy://:tk_secret@ntfy.example/alerts";
        let sealed = s.seal(url, "url");
        assert!(Sealer::is_sealed(&sealed));
        assert!(!sealed.contains("tk_secret"), "{sealed}");
        assert_ne!(sealed, s.seal(url, "url"), "a fresh nonce each time");
        assert_eq!(s.open(&sealed, "url").unwrap(), url);
        assert!(s.open(&sealed, "secret").is_err(), "another column");
        assert!(Sealer::from_key(&[8; 32]).open(&sealed, "url").is_err());
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 3;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert!(s.open(&String::from_utf8(flipped).unwrap(), "url").is_err());
        assert!(s.open("sealed:v1:!!", "url").is_err());
        // A row from before sealing reads as it is.
        assert_eq!(s.open("https://hook", "url").unwrap(), "https://hook");
    }

    #[test]
    fn the_key_is_made_once_private_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("twinbay-seal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = Sealer::load_or_create(&dir).unwrap();
        let sealed = first.seal("x", "secret");
        let mode = std::fs::metadata(dir.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = Sealer::load_or_create(&dir).unwrap();
        assert_eq!(again.open(&sealed, "secret").unwrap(), "x");
        std::fs::write(dir.join(KEY_FILE), "short").unwrap();
        assert!(Sealer::load_or_create(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
