//! The backup catalog: one row per complete artifact, and each job's retention.

use serde::Serialize;
use twinbay_proto::backup::Keep;

use super::{Store, StoreError};

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

type Row = (
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

macro_rules! select {
    ($rest:literal) => {
        concat!(
            "SELECT id, node_id, job, command_id, source, object_key, sha256, size, \
             created_ms, status, retention, verified_ms FROM backups ",
            $rest
        )
    };
}

fn record(r: Row) -> BackupRecord {
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

impl Store {
    /// Adds a complete artifact and records its job's retention: `keep`
    /// replaces the job's rules; `None` leaves them as they are (a new job
    /// keeps everything).
    pub async fn insert_backup(
        &self,
        b: &BackupRecord,
        keep: Option<&Keep>,
    ) -> Result<(), StoreError> {
        let replace = keep.is_some();
        let keep =
            serde_json::to_string(&keep.copied().unwrap_or_default()).expect("keep serializes");
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO backups (id, node_id, job, command_id, source, object_key, sha256, size, \
             created_ms, status, retention) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&b.id)
        .bind(&b.node_id)
        .bind(&b.job)
        .bind(&b.command_id)
        .bind(&b.source)
        .bind(&b.object_key)
        .bind(&b.sha256)
        .bind(b.size as i64)
        .bind(b.created_ms)
        .bind(&b.status)
        .bind(&b.retention)
        .execute(&mut *tx)
        .await?;
        sqlx::query(if replace {
            "INSERT INTO backup_jobs (node_id, job, keep) VALUES (?, ?, ?) \
             ON CONFLICT (node_id, job) DO UPDATE SET keep = excluded.keep"
        } else {
            "INSERT INTO backup_jobs (node_id, job, keep) VALUES (?, ?, ?) \
             ON CONFLICT (node_id, job) DO NOTHING"
        })
        .bind(&b.node_id)
        .bind(&b.job)
        .bind(keep)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn backup(&self, id: &str) -> Result<Option<BackupRecord>, StoreError> {
        let row: Option<Row> = sqlx::query_as(select!("WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(record))
    }

    /// Backups, newest first, optionally of one node and one job.
    pub async fn backups(
        &self,
        node: Option<&str>,
        job: Option<&str>,
        limit: u32,
    ) -> Result<Vec<BackupRecord>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(select!(
            "WHERE (?1 IS NULL OR node_id = ?1) AND (?2 IS NULL OR job = ?2) \
             ORDER BY created_ms DESC, id DESC LIMIT ?3"
        ))
        .bind(node)
        .bind(job)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(record).collect())
    }

    /// A job's retention as its last run gave it (`None`: no run yet).
    pub async fn backup_job_keep(
        &self,
        node_id: &str,
        job: &str,
    ) -> Result<Option<Keep>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT keep FROM backup_jobs WHERE node_id = ? AND job = ?")
                .bind(node_id)
                .bind(job)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(k,)| {
            serde_json::from_str(&k)
                .map_err(|_| StoreError::Damaged(format!("backup job {node_id}/{job}: bad keep")))
        })
        .transpose()
    }

    /// Every (node, job) that has backups.
    pub async fn backup_jobs(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT DISTINCT node_id, job FROM backups ORDER BY node_id, job")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Sets the retention reasons of kept backups and removes the others'
    /// rows (their objects go first, by the caller).
    pub async fn apply_prune(
        &self,
        kept: &[(String, String)],
        removed: &[String],
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        for (id, reason) in kept {
            sqlx::query("UPDATE backups SET retention = ? WHERE id = ?")
                .bind(reason)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        for id in removed {
            sqlx::query("DELETE FROM backups WHERE id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records a verify: `ok` keeps `complete`, else the backup is `corrupt`.
    pub async fn mark_verified(&self, id: &str, ok: bool, now_ms: i64) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE backups SET status = ?, verified_ms = ? WHERE id = ?")
            .bind(if ok { "complete" } else { "corrupt" })
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
