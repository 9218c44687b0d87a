//! `backups`: the queries (compiled once per backend, see `store/sql.rs`).

use super::*;
use crate::backups::*;
use crate::*;
use twinbay_proto::backup::Keep;

macro_rules! select {
    ($rest:literal) => {
        concat!(
            "SELECT id, node_id, job, command_id, source, object_key, sha256, size, \
             created_ms, status, retention, verified_ms FROM backups ",
            $rest
        )
    };
}

#[async_trait::async_trait]
impl crate::BackupStore for Sql<Db> {
    async fn insert_backup(&self, b: &BackupRecord, keep: Option<&Keep>) -> Result<(), StoreError> {
        let replace = keep.is_some();
        let keep =
            serde_json::to_string(&keep.copied().unwrap_or_default()).expect("keep serializes");
        let mut tx = self.write_tx().await?;
        query(
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
        query(if replace {
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

    async fn backup(&self, id: &str) -> Result<Option<BackupRecord>, StoreError> {
        let row: Option<Row> = query_as(select!("WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(record))
    }

    async fn backups(
        &self,
        node: Option<&str>,
        job: Option<&str>,
        limit: u32,
    ) -> Result<Vec<BackupRecord>, StoreError> {
        let rows: Vec<Row> = query_as(select!(
            "WHERE (?1 IS NULL OR node_id = ?1) AND (?2 IS NULL OR job = ?2) \
             ORDER BY created_ms DESC, id DESC LIMIT ?3"
        ))
        .bind(node)
        .bind(job)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(record).collect())
    }

    async fn backup_job_keep(&self, node_id: &str, job: &str) -> Result<Option<Keep>, StoreError> {
        let row: Option<(String,)> =
            query_as("SELECT keep FROM backup_jobs WHERE node_id = ? AND job = ?")
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

    async fn backup_jobs(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(
            query_as("SELECT DISTINCT node_id, job FROM backups ORDER BY node_id, job")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn apply_prune(
        &self,
        kept: &[(String, String)],
        removed: &[String],
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        for (id, reason) in kept {
            query("UPDATE backups SET retention = ? WHERE id = ?")
                .bind(reason)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        for id in removed {
            query("DELETE FROM backups WHERE id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn mark_verified(&self, id: &str, ok: bool, now_ms: i64) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        query("UPDATE backups SET status = ?, verified_ms = ? WHERE id = ?")
            .bind(if ok { "complete" } else { "corrupt" })
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
