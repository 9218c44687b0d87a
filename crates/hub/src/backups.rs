//! Backups: artifacts a host produces, streamed to the hub, kept by a
//! retention and served back.
//!
//! - [`retention`]: which backups of a job to keep (pure, PBS-style rules).
//! - [`objects`]: where the artifacts live (a local directory in the data dir),
//!   or [`s3`]: any S3-compatible store.
//! - [`transfer`]: the agent's upload socket, hashing and storing on the fly.
//! - [`restore`]: the agent's download socket for a restore.
//!
//! A backup run is a command (`op: backup`); its record says how the run
//! ended. Only a complete artifact (producer exited 0, upload finished,
//! hashes agree) gets a catalog row; pruning runs after each backup and on
//! demand, and says what it removed.

pub mod objects;
pub mod restore;
pub mod retention;
pub mod s3;
pub mod transfer;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::lock;
use crate::store::{BackupRecord, Store, StoreError};
use objects::{ObjectError, Objects};

/// The artifact store's directory inside the data dir.
pub const OBJECTS_DIR: &str = "backups/objects";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Object(#[from] ObjectError),
}

/// What a prune did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PruneReport {
    pub node_id: String,
    pub job: String,
    /// The rules applied, e.g. `keep-last 3, keep-daily 7`.
    pub rules: String,
    pub kept: Vec<retention::Decision>,
    pub removed: Vec<retention::Decision>,
}

/// What a verify found.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VerifyReport {
    pub id: String,
    pub ok: bool,
    pub sha256_expected: String,
    pub sha256_actual: String,
    pub size_expected: u64,
    pub size_actual: u64,
}

pub struct Backups {
    store: Store,
    objects: Arc<dyn Objects>,
    /// Commands whose upload is under way (one socket each).
    active: Mutex<HashSet<String>>,
    /// One prune at a time.
    pruning: tokio::sync::Mutex<()>,
}

impl Backups {
    /// The local store under `data_dir`.
    pub fn local(store: Store, data_dir: &Path) -> Result<Backups, ObjectError> {
        let objects = objects::LocalDir::open(&data_dir.join(OBJECTS_DIR))?;
        Ok(Backups::new(store, Arc::new(objects)))
    }

    /// The store `--backup-store` names (S3), else the local directory.
    pub fn from_config(
        store: Store,
        data_dir: &Path,
        url: Option<&str>,
        credentials: Option<&Path>,
    ) -> Result<Backups, crate::HubError> {
        let Some(url) = url else {
            return Backups::local(store, data_dir).map_err(|e| {
                crate::HubError::Config(format!("backup storage: {}", crate::report(&e)))
            });
        };
        let text = match credentials {
            Some(path) => {
                Some(std::fs::read_to_string(path).map_err(|e| crate::HubError::io(path, e))?)
            }
            None => None,
        };
        let s3 = s3::S3::open(url, text.as_deref()).map_err(crate::HubError::Config)?;
        tracing::info!(store = s3.describe(), "backup artifacts go to S3");
        Ok(Backups::new(store, Arc::new(s3)))
    }

    pub fn new(store: Store, objects: Arc<dyn Objects>) -> Backups {
        Backups {
            store,
            objects,
            active: Mutex::new(HashSet::new()),
            pruning: tokio::sync::Mutex::new(()),
        }
    }

    pub fn objects(&self) -> &dyn Objects {
        self.objects.as_ref()
    }

    /// Claims the upload of `command_id`; `None` if one is under way.
    fn claim(self: &Arc<Self>, command_id: &str) -> Option<Claim> {
        lock(&self.active)
            .insert(command_id.to_string())
            .then(|| Claim {
                backups: self.clone(),
                id: command_id.to_string(),
            })
    }

    /// Applies the job's retention: removes the objects, then the rows, of
    /// what the rules do not keep, and records why the others stay.
    pub async fn prune(&self, node_id: &str, job: &str) -> Result<PruneReport, BackupError> {
        let _turn = self.pruning.lock().await;
        let keep = self
            .store
            .backup_job_keep(node_id, job)
            .await?
            .unwrap_or_default();
        let list = self
            .store
            .backups(Some(node_id), Some(job), u32::MAX)
            .await?;
        let items: Vec<retention::Item> = list
            .iter()
            .map(|b| retention::Item {
                id: b.id.clone(),
                created_ms: b.created_ms,
            })
            .collect();
        let decisions = retention::apply(&keep, &items);
        let (kept, removed): (Vec<_>, Vec<_>) = decisions.into_iter().partition(|d| d.keep);
        let mut gone = Vec::new();
        for d in &removed {
            if let Some(b) = list.iter().find(|b| b.id == d.id) {
                match self.objects.delete(&b.object_key).await {
                    Ok(()) => gone.push(d.id.clone()),
                    Err(e) => {
                        tracing::error!(id = d.id, error = %crate::report(&e), "could not remove a pruned artifact; its row stays");
                    }
                }
            }
        }
        let reasons: Vec<(String, String)> = kept
            .iter()
            .map(|d| (d.id.clone(), d.reason.clone()))
            .collect();
        self.store.apply_prune(&reasons, &gone).await?;
        let removed = removed
            .into_iter()
            .filter(|d| gone.contains(&d.id))
            .collect();
        Ok(PruneReport {
            node_id: node_id.to_string(),
            job: job.to_string(),
            rules: keep.describe(),
            kept,
            removed,
        })
    }

    /// Reads the artifact back and hashes it; marks it `corrupt` on a mismatch.
    pub async fn verify(&self, b: &BackupRecord) -> Result<VerifyReport, BackupError> {
        let size = self.objects.size(&b.object_key).await?;
        let mut stream = self.objects.read(&b.object_key, 0, size).await?;
        let mut hasher = Sha256::new();
        let mut read = 0u64;
        let mut failed = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => {
                    read += c.len() as u64;
                    hasher.update(&c);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let actual = match failed {
            Some(e) => format!("unreadable: {e}"),
            None => hex::encode(hasher.finalize()),
        };
        let ok = actual == b.sha256 && read == b.size;
        self.store
            .mark_verified(&b.id, ok, crate::store::now_ms())
            .await?;
        Ok(VerifyReport {
            id: b.id.clone(),
            ok,
            sha256_expected: b.sha256.clone(),
            sha256_actual: actual,
            size_expected: b.size,
            size_actual: read,
        })
    }
}

/// An upload under way; released when dropped.
struct Claim {
    backups: Arc<Backups>,
    id: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        lock(&self.backups.active).remove(&self.id);
    }
}

/// The file name a download gets: node, job, UTC time, and the extension
/// for what the source made.
pub fn file_name(b: &BackupRecord) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(b.created_ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let ext = if b.source.starts_with("dir ") {
        "tar.zst"
    } else {
        "zst"
    };
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!(
        "{}-{}-{:04}{:02}{:02}T{:02}{:02}{:02}Z.{ext}",
        clean(&b.node_id),
        clean(&b.job),
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Where an artifact is stored: `<node>/<job>/<id>.zst`.
pub fn file_key(node_id: &str, job: &str, id: &str) -> String {
    let clean = |s: &str| -> String {
        let c: String = s
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        if c.is_empty() { "_".into() } else { c }
    };
    format!("{}/{}/{}.zst", clean(node_id), clean(job), clean(id))
}

#[cfg(test)]
mod tests {
    use twinbay_proto::backup::Keep;

    use super::*;

    async fn setup(name: &str) -> (std::path::PathBuf, Arc<Backups>, Store) {
        let dir =
            std::env::temp_dir().join(format!("twinbay-backups-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir).await.unwrap();
        let backups = Arc::new(Backups::local(store.clone(), &dir).unwrap());
        (dir, backups, store)
    }

    async fn add(backups: &Backups, store: &Store, id: &str, at: i64, keep: Option<&Keep>) {
        let data = format!("artifact {id}");
        let key = file_key("n1", "nightly", id);
        let mut w = backups.objects().create(&key).await.unwrap();
        w.write(data.as_bytes()).await.unwrap();
        w.finish().await.unwrap();
        let b = BackupRecord {
            id: id.into(),
            node_id: "n1".into(),
            job: "nightly".into(),
            command_id: format!("cmd_{id}"),
            source: "dir /srv".into(),
            object_key: key,
            sha256: hex::encode(Sha256::digest(data.as_bytes())),
            size: data.len() as u64,
            created_ms: at,
            status: "complete".into(),
            retention: String::new(),
            verified_ms: None,
        };
        store.insert_backup(&b, keep).await.unwrap();
    }

    #[tokio::test]
    async fn prune_removes_exactly_what_the_rules_say_objects_first() {
        let (dir, backups, store) = setup("prune").await;
        let hour = 3_600_000;
        let keep = Keep {
            last: 2,
            ..Keep::default()
        };
        add(&backups, &store, "b1", 1_000 * hour, Some(&keep)).await;
        add(&backups, &store, "b2", 1_001 * hour, None).await;
        add(&backups, &store, "b3", 1_002 * hour, None).await;
        // A run without `keep` left the job's rules alone.
        let report = backups.prune("n1", "nightly").await.unwrap();
        assert_eq!(report.rules, "keep-last 2");
        let removed: Vec<&str> = report.removed.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(removed, ["b1"]);
        let left: Vec<String> = store
            .backups(Some("n1"), Some("nightly"), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|b| format!("{} {}", b.id, b.retention))
            .collect();
        assert_eq!(left, ["b3 keep-last 1/2", "b2 keep-last 2/2"]);
        assert!(
            !dir.join(OBJECTS_DIR)
                .join(file_key("n1", "nightly", "b1"))
                .exists()
        );
        // Pruning again changes nothing.
        assert!(
            backups
                .prune("n1", "nightly")
                .await
                .unwrap()
                .removed
                .is_empty()
        );
    }

    #[tokio::test]
    async fn verify_finds_changed_bytes() {
        let (dir, backups, store) = setup("verify").await;
        add(&backups, &store, "b1", 1_000, None).await;
        let b = store.backup("b1").await.unwrap().unwrap();
        assert!(backups.verify(&b).await.unwrap().ok);
        let path = dir.join(OBJECTS_DIR).join(&b.object_key);
        std::fs::write(&path, "artifact b2").unwrap();
        let report = backups.verify(&b).await.unwrap();
        assert!(!report.ok);
        assert_eq!(store.backup("b1").await.unwrap().unwrap().status, "corrupt");
    }
}
