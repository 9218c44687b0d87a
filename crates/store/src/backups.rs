//! The backup catalog: one row per complete artifact, and each job's retention.

use serde::Serialize;
use twinbay_proto::backup::Keep;

use super::StoreError;

/// A backup as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BackupRecord {
    pub id: String,
    pub node_id: String,
    pub job: String,
    /// The command (run) that produced it.
    pub command_id: String,
    /// What produced it, e.g. `dir /srv/data` or `action pg-dump db=app`.
    pub source: String,
    #[serde(skip)]
    pub object_key: String,
    /// SHA-256 (hex) of the stored (zstd-compressed) artifact.
    pub sha256: String,
    /// Bytes stored.
    pub size: u64,
    /// Unix milliseconds.
    pub created_ms: i64,
    /// `complete`, or `corrupt` once a verify read other bytes.
    pub status: String,
    /// Why retention keeps it, as of the last prune.
    pub retention: String,
    pub verified_ms: Option<i64>,
}

pub(crate) type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    String,
    String,
    Option<i64>,
);

pub(crate) fn record(r: Row) -> BackupRecord {
    BackupRecord {
        id: r.0,
        node_id: r.1,
        job: r.2,
        command_id: r.3,
        source: r.4,
        object_key: r.5,
        sha256: r.6,
        size: r.7.max(0) as u64,
        created_ms: r.8,
        status: r.9,
        retention: r.10,
        verified_ms: r.11,
    }
}

#[async_trait::async_trait]
pub trait BackupStore: Send + Sync {
    /// Adds a complete artifact and records its job's retention: `keep`
    /// replaces the job's rules; `None` leaves them as they are (a new job
    /// keeps everything).
    async fn insert_backup(&self, b: &BackupRecord, keep: Option<&Keep>) -> Result<(), StoreError>;

    async fn backup(&self, id: &str) -> Result<Option<BackupRecord>, StoreError>;

    /// Backups, newest first, optionally of one node and one job.
    async fn backups(
        &self,
        node: Option<&str>,
        job: Option<&str>,
        limit: u32,
    ) -> Result<Vec<BackupRecord>, StoreError>;

    /// A job's retention as its last run gave it (`None`: no run yet).
    async fn backup_job_keep(&self, node_id: &str, job: &str) -> Result<Option<Keep>, StoreError>;

    /// Every (node, job) that has backups.
    async fn backup_jobs(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Sets the retention reasons of kept backups and removes the others'
    /// rows (their objects go first, by the caller).
    async fn apply_prune(
        &self,
        kept: &[(String, String)],
        removed: &[String],
    ) -> Result<(), StoreError>;

    /// Records a verify: `ok` keeps `complete`, else the backup is `corrupt`.
    async fn mark_verified(&self, id: &str, ok: bool, now_ms: i64) -> Result<(), StoreError>;
}
