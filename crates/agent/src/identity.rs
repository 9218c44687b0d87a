//! The agent's identity: its ed25519 key and its enrollment, kept in the state dir.
//!
//! `agent.key` holds the secret key (base64, mode 0600), created on first start.
//! `agent.json` holds where the hub is, the pin of its certificate and, once
//! enrolled, the node id the hub gave (the one-time join token is kept only
//! until enrollment succeeds, so a restart in between can still enroll).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};
use twinbay_proto::join::JoinString;

use crate::AgentError;

const KEY_FILE: &str = "agent.key";
const STATE_FILE: &str = "agent.json";

/// What `agent.json` holds. Versioned so later agents can migrate it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrollment {
    pub version: u32,
    /// Hub URLs, tried in order.
    pub hubs: Vec<String>,
    /// The pinned hub certificate fingerprint (`sha256:…`).
    pub fingerprint: String,
    #[serde(default)]
    pub node_id: Option<String>,
    #[serde(default)]
    pub join_token: Option<String>,
    /// The minisign keys (base64) the agent trusts for its own updates,
    /// from the join string (docs/updates.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub update_keys: Vec<String>,
}

#[derive(Debug)]
pub struct Identity {
    /// Where the identity is kept; `None` for one that lives only in memory.
    dir: Option<PathBuf>,
    key: SigningKey,
    pub enrollment: Enrollment,
    /// A simulated agent (`twinbay sim`), as it tells the hub.
    pub simulated: bool,
    /// The version a simulated agent pretended to update to (its hello says it).
    pub pretended_version: Option<String>,
}

impl Identity {
    /// Loads the identity from `dir`, creating the key on first start and
    /// taking the enrollment from `join` if the agent has not enrolled yet.
    pub fn load_or_enroll(dir: &Path, join: Option<&str>) -> Result<Identity, AgentError> {
        create_private_dir(dir)?;
        let key = load_or_create_key(&dir.join(KEY_FILE))?;
        let state_path = dir.join(STATE_FILE);
        let existing = read_enrollment(&state_path)?;
        let enrollment = match (existing, join) {
            (Some(e), Some(_)) if e.node_id.is_some() => {
                tracing::warn!(
                    node_id = e.node_id.as_deref().unwrap_or_default(),
                    "already enrolled; ignoring --join (remove the state dir to enroll anew)"
                );
                e
            }
            (_, Some(join)) => {
                let join = JoinString::parse(join)?;
                let e = Enrollment {
                    version: 1,
                    hubs: join.hubs(),
                    fingerprint: join.fp,
                    node_id: None,
                    join_token: Some(join.token),
                    update_keys: join.update_keys,
                };
                write_atomic(
                    &state_path,
                    &serde_json::to_vec_pretty(&e).expect("serializes"),
                    0o600,
                )?;
                e
            }
            (Some(e), None) => e,
            (None, None) => return Err(AgentError::NotEnrolled),
        };
        Ok(Identity {
            dir: Some(dir.to_path_buf()),
            key,
            enrollment,
            simulated: false,
            pretended_version: None,
        })
    }

    /// A simulated agent's identity: `key`, enrolling with `join`, kept in
    /// memory only.
    pub fn simulated(key: SigningKey, join: &JoinString) -> Identity {
        Identity {
            dir: None,
            key,
            enrollment: Enrollment {
                version: 1,
                hubs: join.hubs(),
                fingerprint: join.fp.clone(),
                node_id: None,
                join_token: Some(join.token.clone()),
                update_keys: Vec::new(),
            },
            simulated: true,
            pretended_version: None,
        }
    }

    /// Whether the agent in `dir` has enrolled with a hub.
    pub fn is_enrolled_in(dir: &Path) -> bool {
        matches!(read_enrollment(&dir.join(STATE_FILE)), Ok(Some(e)) if e.node_id.is_some())
    }

    /// Dials these hubs instead of the enrolled ones (used by `twinbay up`,
    /// whose hub may move to another port between runs).
    pub fn override_hubs(&mut self, hubs: Vec<String>) {
        if !hubs.is_empty() {
            self.enrollment.hubs = hubs;
        }
    }

    /// Where the identity is kept (`None` in memory only).
    pub fn state_dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The key itself, for a second connection (a backup upload) to prove it.
    pub fn signing_key(&self) -> SigningKey {
        self.key.clone()
    }

    pub fn public_key_b64(&self) -> String {
        STANDARD.encode(self.key.verifying_key().as_bytes())
    }

    pub fn sign_b64(&self, message: &[u8]) -> String {
        STANDARD.encode(self.key.sign(message).to_bytes())
    }

    /// The key that hashes watched files and secret values: derived from
    /// the identity key (stable across restarts), never sent.
    pub fn file_key(&self) -> crate::sources::files::FileKey {
        crate::sources::files::FileKey::derive(self.key.as_bytes())
    }

    pub fn is_enrolled(&self) -> bool {
        self.enrollment.node_id.is_some()
    }

    /// Records the node id the hub gave and forgets the spent join token.
    pub fn record_enrollment(&mut self, node_id: &str) -> Result<(), AgentError> {
        if self.enrollment.node_id.as_deref() == Some(node_id)
            && self.enrollment.join_token.is_none()
        {
            return Ok(());
        }
        self.enrollment.node_id = Some(node_id.to_string());
        self.enrollment.join_token = None;
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let bytes = serde_json::to_vec_pretty(&self.enrollment).expect("serializes");
        write_atomic(&dir.join(STATE_FILE), &bytes, 0o600)
    }
}

fn state_err(path: &Path) -> impl FnOnce(std::io::Error) -> AgentError + '_ {
    move |source| AgentError::State {
        path: path.to_path_buf(),
        source,
    }
}

fn create_private_dir(dir: &Path) -> Result<(), AgentError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(state_err(dir))
}

fn load_or_create_key(path: &Path) -> Result<SigningKey, AgentError> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let bytes = STANDARD
                .decode(text.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok());
            bytes
                .map(|b| SigningKey::from_bytes(&b))
                .ok_or_else(|| AgentError::StateDamaged {
                    path: path.to_path_buf(),
                    reason: "not a base64 ed25519 secret key".into(),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| AgentError::State {
                path: path.to_path_buf(),
                source: std::io::Error::other(e.to_string()),
            })?;
            write_atomic(path, STANDARD.encode(secret).as_bytes(), 0o600)?;
            Ok(SigningKey::from_bytes(&secret))
        }
        Err(e) => Err(state_err(path)(e)),
    }
}

/// Applies a release's key change to the update keys enrolled in `dir`'s
/// `agent.json` (after the release passed its trial); returns the new set.
pub fn change_update_keys(
    dir: &Path,
    change: &twinbay_proto::release::KeyChange,
) -> Result<Vec<String>, AgentError> {
    let path = dir.join(STATE_FILE);
    let mut e = read_enrollment(&path)?.ok_or(AgentError::NotEnrolled)?;
    e.update_keys = change.apply(&e.update_keys);
    write_atomic(
        &path,
        &serde_json::to_vec_pretty(&e).expect("serializes"),
        0o600,
    )?;
    Ok(e.update_keys)
}

fn read_enrollment(path: &Path) -> Result<Option<Enrollment>, AgentError> {
    match fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| AgentError::StateDamaged {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(state_err(path)(e)),
    }
}

/// Writes through a temporary file and a rename, so a crash never leaves half a file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), AgentError> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(state_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("twinbay-identity-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_key_change_rewrites_the_enrolled_update_keys_and_nothing_else() {
        use twinbay_proto::release::KeyChange;
        let dir = tempdir("keys");
        let change = KeyChange {
            replace: false,
            keys: vec!["NEW".into()],
        };
        assert!(matches!(
            change_update_keys(&dir, &change),
            Err(AgentError::NotEnrolled)
        ));
        let join = JoinString {
            hub: "https://127.0.0.1:1".into(),
            token: "tok".into(),
            fp: "sha256:aa".into(),
            update_keys: vec!["OLD".into()],
            more_hubs: Vec::new(),
        }
        .encode();
        let mut first = Identity::load_or_enroll(&dir, Some(&join)).unwrap();
        first.record_enrollment("n_1").unwrap();
        assert_eq!(change_update_keys(&dir, &change).unwrap(), ["OLD", "NEW"]);
        let again = Identity::load_or_enroll(&dir, None).unwrap();
        assert_eq!(again.enrollment.update_keys, ["OLD", "NEW"]);
        assert_eq!(again.enrollment.node_id.as_deref(), Some("n_1"));
        assert_eq!(again.public_key_b64(), first.public_key_b64());
        let rotate = KeyChange {
            replace: true,
            keys: vec!["NEWER".into()],
        };
        assert_eq!(change_update_keys(&dir, &rotate).unwrap(), ["NEWER"]);
        assert_eq!(
            Identity::load_or_enroll(&dir, None)
                .unwrap()
                .enrollment
                .update_keys,
            ["NEWER"]
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn enrolls_once_keeps_its_key_and_forgets_the_token() {
        let dir = tempdir("enroll");
        assert!(matches!(
            Identity::load_or_enroll(&dir, None),
            Err(AgentError::NotEnrolled)
        ));
        let join = JoinString {
            hub: "https://127.0.0.1:1".into(),
            token: "tok".into(),
            fp: "sha256:aa".into(),
            update_keys: Vec::new(),
            more_hubs: vec!["https://127.0.0.1:2".into()],
        }
        .encode();
        let mut first = Identity::load_or_enroll(&dir, Some(&join)).unwrap();
        assert_eq!(first.enrollment.join_token.as_deref(), Some("tok"));
        first.record_enrollment("n_1").unwrap();

        let again = Identity::load_or_enroll(&dir, None).unwrap();
        assert_eq!(again.public_key_b64(), first.public_key_b64());
        assert_eq!(again.enrollment.node_id.as_deref(), Some("n_1"));
        assert_eq!(again.enrollment.join_token, None);
        let text = fs::read_to_string(dir.join(STATE_FILE)).unwrap();
        assert!(!text.contains("\"tok\""), "{text}");

        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_damaged_key_is_a_clear_error() {
        let dir = tempdir("damaged");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(KEY_FILE), "nope").unwrap();
        let err = Identity::load_or_enroll(&dir, None).unwrap_err();
        assert!(matches!(err, AgentError::StateDamaged { .. }), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
