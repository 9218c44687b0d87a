//! Signed releases (docs/updates.md): a twinbay binary for one architecture,
//! signed in the minisign format with an ed25519 key that hub and agents
//! trust. The hub refuses a release whose signature does not verify against
//! one of its trusted keys, and so will the agent before it swaps anything.
//!
//! The signature covers the binary (minisign's pre-hashed mode, so it is
//! checked as the bytes stream by) and its trusted comment; a trusted comment
//! that names a `version:` or an `arch:` must name the ones published, so a
//! signed old binary cannot be passed off as a new version.

pub use minisign_verify::Signature;
use minisign_verify::{PublicKey, StreamVerifier};
use serde::{Deserialize, Serialize};

/// The largest binary a release may have.
pub const MAX_RELEASE_BYTES: u64 = 256 << 20;

/// The architectures a release may be built for (`std::env::consts::ARCH`).
pub const ARCHES: &[&str] = &["x86_64", "aarch64", "arm", "riscv64", "s390x", "powerpc64"];

/// What the hub keeps about a release, beside its binary and signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Manifest {
    pub version: String,
    pub arch: String,
    /// Hex SHA-256 of the binary.
    pub sha256: String,
    pub size: u64,
    /// The oldest hub the release works with, if it says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_hub_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// The trusted key that signed it (as configured: minisign's base64).
    pub key: String,
    /// The signature's trusted (signed) comment.
    pub trusted_comment: String,
    pub published_ms: i64,
    pub published_by: String,
}

/// The socket on which an agent downloads the release its `update`
/// command `command_id` names (after the link's challenge and signed hello).
pub fn download_path(command_id: &str) -> String {
    format!("/api/v1/agent/releases/{command_id}")
}

/// The first frame after the welcome on a release download: what the hub
/// offers. Binary frames with the bytes follow, then the hub closes. The
/// agent trusts none of it until its own keys verify the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub manifest: Manifest,
    /// The `.minisig` file's text.
    pub signature: String,
}

/// The agent's stricter check of a signed comment: it must name the
/// version asked for (the agent reports it as its own once installed), and
/// the arch if it names one.
pub fn check_comment_names(comment: &str, version: &str, arch: &str) -> Result<(), ReleaseError> {
    check_trusted_comment(comment, version, arch)?;
    if !comment
        .split_whitespace()
        .any(|w| w.strip_prefix("version:") == Some(version))
    {
        return Err(ReleaseError::Untrusted(format!(
            "its signed comment does not name version {version} (sign with -t \"version:{version} arch:{arch}\")"
        )));
    }
    Ok(())
}

/// A change to the keys an agent trusts, carried in a release's signed
/// comment: `keys:RW…,RW…` adds keys, `replace-keys:RW…,RW…` makes them the
/// enrolled set (the old key retires). Applied only once the release has
/// passed its trial, so a key can be rotated only by a release signed with
/// a key already trusted.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KeyChange {
    /// Replace the enrolled keys instead of adding to them.
    #[serde(default)]
    pub replace: bool,
    pub keys: Vec<String>,
}

impl KeyChange {
    /// The enrolled keys after this change (no duplicates, in order).
    pub fn apply(&self, enrolled: &[String]) -> Vec<String> {
        let mut out: Vec<String> = if self.replace {
            Vec::new()
        } else {
            enrolled.to_vec()
        };
        for k in &self.keys {
            if !out.contains(k) {
                out.push(k.clone());
            }
        }
        out
    }
}

/// The key change a signed comment asks for, if any; a malformed key
/// refuses the release.
pub fn key_change(comment: &str) -> Result<Option<KeyChange>, ReleaseError> {
    let mut change: Option<KeyChange> = None;
    for word in comment.split_whitespace() {
        let (replace, list) = match word.split_once(':') {
            Some(("keys", list)) => (false, list),
            Some(("replace-keys", list)) => (true, list),
            _ => continue,
        };
        if change.is_some() {
            return Err(ReleaseError::Invalid(
                "its signed comment names keys twice".into(),
            ));
        }
        let keys: Vec<String> = list
            .split(',')
            .filter(|k| !k.is_empty())
            .map(String::from)
            .collect();
        if keys.is_empty() {
            return Err(ReleaseError::Invalid(format!(
                "its signed comment's {word:?} names no key"
            )));
        }
        TrustedKeys::parse(keys.iter().map(String::as_str))?;
        change = Some(KeyChange { replace, keys });
    }
    Ok(change)
}

/// Why a release is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    #[error("{0}")]
    Invalid(String),
    #[error("the signature does not verify against a trusted key: {0}")]
    Untrusted(String),
    #[error("no trusted update keys are set (start the hub with --update-key)")]
    NoKeys,
    #[error("the release is larger than {} MiB", MAX_RELEASE_BYTES >> 20)]
    TooLarge,
}

/// The keys releases must be signed with.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys(Vec<(String, PublicKey)>);

impl TrustedKeys {
    /// Keys given as minisign's base64 (`RW…`) or a `minisign.pub` file's text.
    pub fn parse<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<TrustedKeys, ReleaseError> {
        let mut out = Vec::new();
        for text in keys {
            let line = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
                .unwrap_or("");
            let key = PublicKey::from_base64(line).map_err(|e| {
                ReleaseError::Invalid(format!("{line:?} is not a minisign public key: {e}"))
            })?;
            out.push((line.to_string(), key));
        }
        Ok(TrustedKeys(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The keys as configured, for display.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(name, _)| name.as_str())
    }

    /// A check of `signature` over the bytes fed to it, with the trusted key
    /// that made it (by key id).
    pub fn verifier<'a>(&'a self, signature: &'a Signature) -> Result<Check<'a>, ReleaseError> {
        if self.0.is_empty() {
            return Err(ReleaseError::NoKeys);
        }
        for (name, key) in &self.0 {
            match key.verify_stream(signature) {
                Ok(stream) => return Ok(Check { key: name, stream }),
                Err(minisign_verify::Error::UnexpectedKeyId) => continue,
                Err(e) => return Err(ReleaseError::Untrusted(e.to_string())),
            }
        }
        Err(ReleaseError::Untrusted(
            "it was made by a key that is not trusted here".into(),
        ))
    }
}

/// A signature check in progress: feed it the binary, then [`Check::finish`].
pub struct Check<'a> {
    /// The trusted key whose id the signature carries.
    pub key: &'a str,
    stream: StreamVerifier<'a>,
}

impl Check<'_> {
    pub fn update(&mut self, bytes: &[u8]) {
        self.stream.update(bytes);
    }

    pub fn finish(mut self) -> Result<(), ReleaseError> {
        self.stream
            .finalize()
            .map_err(|e| ReleaseError::Untrusted(e.to_string()))
    }
}

/// A `.minisig` file's text.
pub fn parse_signature(text: &str) -> Result<Signature, ReleaseError> {
    Signature::decode(text.trim())
        .map_err(|e| ReleaseError::Invalid(format!("not a minisign signature: {e}")))
}

/// A version: 1 to 64 of letters, digits, `.`, `-` and `+`, starting with a digit.
pub fn check_version(version: &str) -> Result<(), ReleaseError> {
    let ok = (1..=64).contains(&version.len())
        && version.starts_with(|c: char| c.is_ascii_digit())
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'));
    if ok {
        Ok(())
    } else {
        Err(ReleaseError::Invalid(format!(
            "version {version:?}: 1 to 64 letters, digits, '.', '-' or '+', starting with a digit"
        )))
    }
}

pub fn check_arch(arch: &str) -> Result<(), ReleaseError> {
    if ARCHES.contains(&arch) {
        Ok(())
    } else {
        Err(ReleaseError::Invalid(format!(
            "arch {arch:?}: one of {}",
            ARCHES.join(", ")
        )))
    }
}

/// The trusted comment's `version:` and `arch:`, when it names them, must be
/// the published ones (`key:value` words, as minisign writes `timestamp:…`).
pub fn check_trusted_comment(comment: &str, version: &str, arch: &str) -> Result<(), ReleaseError> {
    for word in comment.split_whitespace() {
        let (field, wanted) = match word.split_once(':') {
            Some(("version", v)) => ("version", (v, version)),
            Some(("arch", a)) => ("arch", (a, arch)),
            _ => continue,
        };
        if wanted.0 != wanted.1 {
            return Err(ReleaseError::Untrusted(format!(
                "its signed comment says {field} {}, not {}",
                wanted.0, wanted.1
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_comment_adds_or_replaces_keys_and_a_bad_key_refuses() {
        let a = minisign::KeyPair::generate_unencrypted_keypair()
            .unwrap()
            .pk
            .to_base64();
        let b = minisign::KeyPair::generate_unencrypted_keypair()
            .unwrap()
            .pk
            .to_base64();
        let old = vec!["OLD".to_string()];
        assert_eq!(key_change("version:1.0 arch:x86_64").unwrap(), None);
        let add = key_change(&format!("version:1.0 keys:{a},{b}"))
            .unwrap()
            .unwrap();
        assert!(!add.replace);
        assert_eq!(
            add.apply(&old),
            vec!["OLD".to_string(), a.clone(), b.clone()]
        );
        assert_eq!(
            add.apply(std::slice::from_ref(&a)),
            vec![a.clone(), b.clone()],
            "no duplicates"
        );
        let rotate = key_change(&format!("replace-keys:{b} version:1.0"))
            .unwrap()
            .unwrap();
        assert!(rotate.replace);
        assert_eq!(rotate.apply(&old), vec![b.clone()]);
        assert!(key_change("keys:RWnotakey").is_err());
        assert!(key_change("keys:").is_err());
        assert!(key_change(&format!("keys:{a} replace-keys:{b}")).is_err());
    }

    /// A key pair, its public key as minisign's base64, and a signature of `data`.
    fn signed(data: &[u8], comment: &str) -> (String, Signature) {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let sig = minisign::sign(Some(&pair.pk), &pair.sk, data, Some(comment), None).unwrap();
        (
            pair.pk.to_base64(),
            parse_signature(&sig.into_string()).unwrap(),
        )
    }

    fn check(keys: &TrustedKeys, sig: &Signature, data: &[u8]) -> Result<(), ReleaseError> {
        let mut c = keys.verifier(sig)?;
        for chunk in data.chunks(3) {
            c.update(chunk);
        }
        c.finish()
    }

    #[test]
    fn a_trusted_key_verifies_in_chunks_and_a_change_is_refused() {
        let (key, sig) = signed(b"a twinbay binary", "version:1.0.0");
        let keys = TrustedKeys::parse([key.as_str()]).unwrap();
        assert_eq!(check(&keys, &sig, b"a twinbay binary"), Ok(()));
        assert_eq!(keys.verifier(&sig).unwrap().key, key);
        assert!(matches!(
            check(&keys, &sig, b"a twinbay binarY"),
            Err(ReleaseError::Untrusted(_))
        ));
        assert!(matches!(
            check(&keys, &sig, b"a twinbay"),
            Err(ReleaseError::Untrusted(_))
        ));
        // A minisign.pub file's text works as well, beside another key.
        let (other, _) = signed(b"x", "");
        let file = format!("untrusted comment: minisign public key\n{key}\n");
        let both = TrustedKeys::parse([other.as_str(), file.as_str()]).unwrap();
        assert_eq!(check(&both, &sig, b"a twinbay binary"), Ok(()));
        assert_eq!(both.names().count(), 2);
    }

    #[test]
    fn no_keys_an_untrusted_key_and_garbage_are_refused() {
        let (_, sig) = signed(b"data", "");
        let (other, _) = signed(b"data", "");
        assert!(matches!(
            TrustedKeys::default().verifier(&sig),
            Err(ReleaseError::NoKeys)
        ));
        assert!(matches!(
            TrustedKeys::parse([other.as_str()]).unwrap().verifier(&sig),
            Err(ReleaseError::Untrusted(_))
        ));
        assert!(TrustedKeys::parse(["not a key"]).is_err());
        assert!(TrustedKeys::parse([""]).is_err());
        assert!(parse_signature("nonsense").is_err());
        assert!(parse_signature("").is_err());
    }

    #[test]
    fn versions_arches_and_signed_comments() {
        for ok in ["1.2.3", "0.1.0-rc.1+build.5", "2026.12.3"] {
            assert_eq!(check_version(ok), Ok(()), "{ok}");
        }
        for bad in ["", "v1.0", "1.0/../x", "1 0", &"1".repeat(65)] {
            assert!(check_version(bad).is_err(), "{bad}");
        }
        assert_eq!(check_arch("x86_64"), Ok(()));
        assert!(check_arch("../x").is_err());
        assert_eq!(
            check_trusted_comment("timestamp:1\tfile:twinbay", "1.0.0", "x86_64"),
            Ok(())
        );
        assert_eq!(
            check_trusted_comment("version:1.0.0 arch:x86_64", "1.0.0", "x86_64"),
            Ok(())
        );
        assert!(check_trusted_comment("version:0.9.0", "1.0.0", "x86_64").is_err());
        assert!(check_trusted_comment("arch:aarch64", "1.0.0", "x86_64").is_err());
        // The agent wants the version named.
        assert!(check_comment_names("timestamp:1", "1.0.0", "x86_64").is_err());
        assert!(check_comment_names("version:1.0.0 arch:x86_64", "1.0.0", "x86_64").is_ok());
        assert!(check_comment_names("version:1.0.0 arch:arm", "1.0.0", "x86_64").is_err());
    }

    proptest::proptest! {
        /// Any text as a signature or a key: an answer, never a panic.
        #[test]
        fn any_text_is_parsed_or_refused(text in ".{0,400}") {
            let _ = parse_signature(&text);
            let _ = TrustedKeys::parse([text.as_str()]);
        }
    }
}
