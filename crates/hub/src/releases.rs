//! Signed releases (docs/updates.md): the binaries the fleet can be updated
//! to, published by an admin and refused unless their minisign signature
//! verifies against one of the hub's trusted keys (`--update-key`).
//!
//! Each lives in `DATA_DIR/releases/VERSION/ARCH/` as `twinbay`,
//! `twinbay.minisig` and `manifest.json`. A publish streams into a staging
//! directory (hashed and checked on the way, never whole in memory) that is
//! renamed into place only once the signature holds, so a release is there
//! whole or not at all.

use std::path::{Path, PathBuf};

use axum::body::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use twinbay_proto::release::{self, MAX_RELEASE_BYTES, Manifest, ReleaseError, TrustedKeys};

use crate::HubError;

/// What a publish asks for besides the binary and its signature.
#[derive(Debug, Clone)]
pub struct Publish {
    pub version: String,
    pub arch: String,
    pub notes: Option<String>,
    pub min_hub_version: Option<String>,
    /// Who publishes (the audit's actor).
    pub by: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Release(#[from] ReleaseError),
    /// A different binary was published as this version and arch already.
    #[error("release {0} is published already with other content")]
    Exists(String),
    /// The upload broke off.
    #[error("reading the upload: {0}")]
    Body(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub struct Releases {
    dir: PathBuf,
    keys: TrustedKeys,
}

impl Releases {
    /// The releases in `data_dir`, checked against `keys`.
    pub fn open(data_dir: &Path, keys: TrustedKeys) -> Result<Releases, HubError> {
        let dir = data_dir.join("releases");
        let staging = dir.join(".incoming");
        // What a crash left half-uploaded.
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(|e| HubError::io(&staging, e))?;
        Ok(Releases { dir, keys })
    }

    pub fn keys(&self) -> &TrustedKeys {
        &self.keys
    }

    /// Streams `body` in, checks it against `signature` (a `.minisig`
    /// file's text) and keeps it. `Ok(false)`: the same binary was there.
    pub async fn publish<S, E>(
        &self,
        p: &Publish,
        signature: &str,
        mut body: S,
    ) -> Result<(Manifest, bool), PublishError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let sig = match self.precheck(p, signature) {
            Ok(sig) => sig,
            Err(e) => {
                // Read the upload to its end (or the cap) before refusing,
                // so an HTTP client gets the answer rather than a reset.
                drain(body).await;
                return Err(e.into());
            }
        };
        let mut check = self.keys.verifier(&sig)?;
        let stage = self.dir.join(".incoming").join(random_name());
        tokio::fs::create_dir(&stage).await?;
        let result = async {
            let mut file = tokio::fs::File::create(stage.join("twinbay")).await?;
            let (mut sha, mut size) = (Sha256::new(), 0u64);
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| PublishError::Body(e.to_string()))?;
                size += chunk.len() as u64;
                if size > MAX_RELEASE_BYTES {
                    return Err(ReleaseError::TooLarge.into());
                }
                sha.update(&chunk);
                check.update(&chunk);
                file.write_all(&chunk).await?;
            }
            let key = check.key.to_string();
            check.finish()?;
            file.sync_all().await?;
            let manifest = Manifest {
                version: p.version.clone(),
                arch: p.arch.clone(),
                sha256: hex::encode(sha.finalize()),
                size,
                min_hub_version: p.min_hub_version.clone(),
                notes: p.notes.clone(),
                key,
                trusted_comment: sig.trusted_comment().to_string(),
                published_ms: crate::store::now_ms(),
                published_by: p.by.clone(),
            };
            tokio::fs::write(stage.join("twinbay.minisig"), signature).await?;
            let json = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?;
            tokio::fs::write(stage.join("manifest.json"), json).await?;
            self.place(&stage, manifest).await
        }
        .await;
        let _ = tokio::fs::remove_dir_all(&stage).await;
        result
    }

    /// What can be refused before the binary is read.
    fn precheck(&self, p: &Publish, signature: &str) -> Result<release::Signature, ReleaseError> {
        release::check_version(&p.version)?;
        release::check_arch(&p.arch)?;
        let sig = release::parse_signature(signature)?;
        self.keys.verifier(&sig)?;
        release::check_trusted_comment(sig.trusted_comment(), &p.version, &p.arch)?;
        Ok(sig)
    }

    /// Renames the staged release into place, unless one is there already.
    async fn place(
        &self,
        stage: &Path,
        manifest: Manifest,
    ) -> Result<(Manifest, bool), PublishError> {
        let parent = self.dir.join(&manifest.version);
        tokio::fs::create_dir_all(&parent).await?;
        let dest = parent.join(&manifest.arch);
        match tokio::fs::rename(stage, &dest).await {
            Ok(()) => Ok((manifest, true)),
            Err(e) if dest.exists() => match self.manifest(&manifest.version, &manifest.arch).await
            {
                Some(old) if old.sha256 == manifest.sha256 => Ok((old, false)),
                _ => {
                    tracing::debug!(error = %e, "release exists");
                    Err(PublishError::Exists(format!(
                        "{} {}",
                        manifest.version, manifest.arch
                    )))
                }
            },
            Err(e) => Err(e.into()),
        }
    }

    /// One release's manifest.
    pub async fn manifest(&self, version: &str, arch: &str) -> Option<Manifest> {
        release::check_version(version).ok()?;
        release::check_arch(arch).ok()?;
        let bytes = tokio::fs::read(self.dir.join(version).join(arch).join("manifest.json"))
            .await
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Where a release's binary is, with its manifest.
    pub async fn binary(&self, version: &str, arch: &str) -> Option<(PathBuf, Manifest)> {
        let manifest = self.manifest(version, arch).await?;
        Some((self.dir.join(version).join(arch).join("twinbay"), manifest))
    }

    /// Every release, newest first.
    pub async fn list(&self) -> Result<Vec<Manifest>, std::io::Error> {
        let mut out = Vec::new();
        let mut versions = tokio::fs::read_dir(&self.dir).await?;
        while let Some(v) = versions.next_entry().await? {
            let Some(version) = v.file_name().to_str().map(String::from) else {
                continue;
            };
            if version.starts_with('.') {
                continue;
            }
            let Ok(mut arches) = tokio::fs::read_dir(v.path()).await else {
                continue;
            };
            while let Some(a) = arches.next_entry().await? {
                if let Some(m) = self
                    .manifest(&version, &a.file_name().to_string_lossy())
                    .await
                {
                    out.push(m);
                }
            }
        }
        out.sort_by(|a, b| {
            b.published_ms
                .cmp(&a.published_ms)
                .then(a.arch.cmp(&b.arch))
        });
        Ok(out)
    }
}

/// Reads `body` to its end or [`MAX_RELEASE_BYTES`], whichever is first.
pub async fn drain<S, E>(mut body: S)
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let mut size = 0u64;
    while let Some(Ok(chunk)) = body.next().await {
        size += chunk.len() as u64;
        if size > MAX_RELEASE_BYTES {
            return;
        }
    }
}

fn random_name() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS has a random source");
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keypair() -> (String, minisign::KeyPair) {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        (pair.pk.to_base64(), pair)
    }

    fn sign(pair: &minisign::KeyPair, data: &[u8], comment: &str) -> String {
        minisign::sign(Some(&pair.pk), &pair.sk, data, Some(comment), None)
            .unwrap()
            .into_string()
    }

    fn chunks(data: &[u8]) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
        let parts: Vec<_> = data
            .chunks(7)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        futures_util::stream::iter(parts)
    }

    fn publish(version: &str) -> Publish {
        Publish {
            version: version.into(),
            arch: "x86_64".into(),
            notes: None,
            min_hub_version: None,
            by: "admin".into(),
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("twinbay-releases-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[tokio::test]
    async fn a_signed_release_is_kept_and_a_bad_one_leaves_nothing() {
        let dir = temp_dir("kept");
        let (key, pair) = keypair();
        let (_, stranger) = keypair();
        let releases = Releases::open(&dir, TrustedKeys::parse([key.as_str()]).unwrap()).unwrap();
        let binary = b"\x7fELF a twinbay binary".repeat(100);
        let sig = sign(&pair, &binary, "version:1.1.0 arch:x86_64");
        let (m, new) = releases
            .publish(&publish("1.1.0"), &sig, chunks(&binary))
            .await
            .unwrap();
        assert!(new);
        assert_eq!(
            (m.size, m.sha256.clone()),
            (binary.len() as u64, hex::encode(Sha256::digest(&binary)))
        );
        assert_eq!(m.key, key);
        let (path, _) = releases.binary("1.1.0", "x86_64").await.unwrap();
        assert_eq!(std::fs::read(path).unwrap(), binary);
        // The same again: fine, nothing new.
        let (_, new) = releases
            .publish(&publish("1.1.0"), &sig, chunks(&binary))
            .await
            .unwrap();
        assert!(!new);

        let refused = [
            // Changed bytes, truncated, another key, a comment naming another version.
            (
                publish("1.2.0"),
                sign(&pair, &binary, ""),
                b"\x7fELF changed".to_vec(),
            ),
            (
                publish("1.2.0"),
                sign(&pair, &binary, ""),
                binary[..100].to_vec(),
            ),
            (
                publish("1.2.0"),
                sign(&stranger, &binary, ""),
                binary.clone(),
            ),
            (
                publish("1.2.0"),
                sign(&pair, &binary, "version:1.1.0"),
                binary.clone(),
            ),
            (
                publish("../1.2.0"),
                sign(&pair, &binary, ""),
                binary.clone(),
            ),
            (publish("1.2.0"), "not a signature".into(), binary.clone()),
        ];
        for (p, sig, data) in refused {
            let err = releases.publish(&p, &sig, chunks(&data)).await.unwrap_err();
            assert!(matches!(err, PublishError::Release(_)), "{err}");
        }
        // Another binary as a published version.
        let other = b"another binary".to_vec();
        let err = releases
            .publish(&publish("1.1.0"), &sign(&pair, &other, ""), chunks(&other))
            .await
            .unwrap_err();
        assert!(matches!(err, PublishError::Exists(_)), "{err}");
        let list = releases.list().await.unwrap();
        assert_eq!(list.len(), 1, "{list:?}");
        assert!(releases.manifest("1.2.0", "x86_64").await.is_none());
        let staged = std::fs::read_dir(dir.join("releases/.incoming"))
            .unwrap()
            .count();
        assert_eq!(staged, 0, "nothing left half-uploaded");
    }

    #[tokio::test]
    async fn without_trusted_keys_nothing_is_published() {
        let dir = temp_dir("no-keys");
        let (_, pair) = keypair();
        let releases = Releases::open(&dir, TrustedKeys::default()).unwrap();
        let err = releases
            .publish(&publish("1.0.0"), &sign(&pair, b"x", ""), chunks(b"x"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, PublishError::Release(ReleaseError::NoKeys)),
            "{err}"
        );
    }
}
