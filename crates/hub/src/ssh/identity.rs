//! The hub's SSH identity: an ed25519 key pair in `DATA_DIR/ssh/`, created
//! on first use. The private key (`id_ed25519`, 0600) never leaves the data
//! dir; the public key is what admins put in `authorized_keys`.
//!
//! A host added with its own key (`--ssh-key`) has that key kept beside it
//! as `hosts/ID.key` (0600), never returned either.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::keys::ssh_key::{LineEnding, private::Ed25519Keypair};
use russh::keys::{HashAlg, PrivateKey};

use super::SshError;
use crate::fsutil;

/// The directory under the data dir.
pub const DIR: &str = "ssh";
const KEY_FILE: &str = "id_ed25519";

/// What the API shows of an identity.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PublicIdentity {
    /// `ssh-ed25519 AAAA… twinbay-hub@HOSTNAME`: a line for `authorized_keys`.
    pub public_key: String,
    /// `SHA256:…`, as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
}

/// Loads the hub's key pair from `data_dir`, creating it the first time.
pub fn load_or_create(data_dir: &Path) -> Result<Arc<PrivateKey>, SshError> {
    let dir = data_dir.join(DIR);
    fsutil::create_private_dir(&dir).map_err(|e| SshError::Identity(crate::report(&e)))?;
    let path = dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => return parse_private(&text).map(Arc::new),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(SshError::Identity(format!("{}: {e}", path.display())));
        }
        Err(_) => {}
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| SshError::Identity(format!("no randomness: {e}")))?;
    let key = PrivateKey::new(
        Ed25519Keypair::from_seed(&seed).into(),
        format!("twinbay-hub@{}", crate::hostname()),
    )
    .map_err(|e| SshError::Identity(e.to_string()))?;
    let pem = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| SshError::Identity(e.to_string()))?;
    fsutil::write_private(&path, pem.as_bytes())
        .map_err(|e| SshError::Identity(crate::report(&e)))?;
    tracing::info!(fingerprint = %key.fingerprint(HashAlg::Sha256), "created the hub's SSH key");
    Ok(Arc::new(key))
}

/// Parses an OpenSSH private key; an encrypted one is refused (the hub has
/// no one to ask for the passphrase).
pub fn parse_private(text: &str) -> Result<PrivateKey, SshError> {
    let key = PrivateKey::from_openssh(text.trim_start())
        .map_err(|e| SshError::Identity(format!("not an OpenSSH private key: {e}")))?;
    if key.is_encrypted() {
        return Err(SshError::Identity(
            "the key is encrypted with a passphrase; give an unencrypted copy".into(),
        ));
    }
    Ok(key)
}

/// The public half, as the API shows it.
pub fn public(key: &PrivateKey) -> PublicIdentity {
    PublicIdentity {
        public_key: key
            .public_key()
            .to_openssh()
            .unwrap_or_else(|e| format!("(cannot encode: {e})")),
        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
    }
}

/// Where a host's own key is kept.
pub fn host_key_path(data_dir: &Path, host_id: &str) -> PathBuf {
    data_dir
        .join(DIR)
        .join("hosts")
        .join(format!("{host_id}.key"))
}

/// Keeps a host's own key (0600); checked to parse first.
pub fn store_host_key(data_dir: &Path, host_id: &str, pem: &str) -> Result<PrivateKey, SshError> {
    let key = parse_private(pem)?;
    let path = host_key_path(data_dir, host_id);
    if let Some(dir) = path.parent() {
        fsutil::create_private_dir(dir).map_err(|e| SshError::Identity(crate::report(&e)))?;
    }
    let pem = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| SshError::Identity(e.to_string()))?;
    fsutil::write_private(&path, pem.as_bytes())
        .map_err(|e| SshError::Identity(crate::report(&e)))?;
    Ok(key)
}

/// A host's own key, if it has one.
pub fn load_host_key(data_dir: &Path, host_id: &str) -> Result<Option<PrivateKey>, SshError> {
    let path = host_key_path(data_dir, host_id);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_private(&text).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SshError::Identity(format!("{}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_private_and_stable() {
        let dir = std::env::temp_dir().join(format!("tb-ssh-id-{}", std::process::id()));
        let a = load_or_create(&dir).unwrap();
        let b = load_or_create(&dir).unwrap();
        assert_eq!(public(&a).fingerprint, public(&b).fingerprint);
        assert!(public(&a).public_key.starts_with("ssh-ed25519 AAAA"));
        assert!(public(&a).public_key.contains("twinbay-hub@"));
        assert!(public(&a).fingerprint.starts_with("SHA256:"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(DIR).join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(parse_private("not a key").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
