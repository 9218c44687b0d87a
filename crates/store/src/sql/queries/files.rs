//! `files`: the queries (compiled once per backend, see `store/sql.rs`).

use super::*;
use crate::files::*;
use crate::*;
use sha2::{Digest, Sha256};

/// `SELECT` of every column of [`Row`], then the rest of the query.
macro_rules! select {
    ($($rest:expr),+ $(,)?) => {
        concat!(
            "SELECT id, node_id, path, ts_ms, sha256, prev_sha256, change, state, kind, content, keyed, size, mode, risk, summary, assessment, images FROM file_versions ",
            $($rest),+
        )
    };
}

#[async_trait::async_trait]
impl crate::FileStore for Sql<Db> {
    async fn latest_file_version(
        &self,
        node_id: &str,
        path: &str,
    ) -> Result<Option<FileVersion>, StoreError> {
        let row: Option<Row> = query_as(select!(
            "WHERE node_id = ? AND path = ? ORDER BY id DESC LIMIT 1"
        ))
        .bind(node_id)
        .bind(path)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(version))
    }

    async fn insert_file_version(&self, v: &NewFileVersion<'_>) -> Result<i64, StoreError> {
        let mut tx = self.write_tx().await?;
        let id: i64 = query_scalar(
            "INSERT INTO file_versions (node_id, path, ts_ms, sha256, prev_sha256, change, state, kind, content, keyed, size, mode, images)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(v.node_id)
        .bind(v.path)
        .bind(v.ts_ms)
        .bind(v.sha256)
        .bind(v.prev_sha256)
        .bind(v.change)
        .bind(v.state)
        .bind(v.kind)
        .bind(v.content)
        .bind(v.keyed)
        .bind(v.size)
        .bind(v.mode)
        .bind(v.images.as_ref().map(|i| i.to_string()))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn set_file_assessment(
        &self,
        id: i64,
        risk: &str,
        summary: &str,
        assessment: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        query("UPDATE file_versions SET risk = ?, summary = ?, assessment = ? WHERE id = ?")
            .bind(risk)
            .bind(summary)
            .bind(assessment.to_string())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn file_versions(
        &self,
        node_id: &str,
        path: &str,
        limit: i64,
    ) -> Result<Vec<FileVersion>, StoreError> {
        let rows: Vec<Row> = query_as(select!(
            "WHERE node_id = ? AND path = ? ORDER BY id DESC LIMIT ?"
        ))
        .bind(node_id)
        .bind(path)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(version).collect())
    }

    async fn file_version_by_sha(
        &self,
        node_id: &str,
        path: &str,
        sha256: &str,
    ) -> Result<Option<FileVersion>, StoreError> {
        let row: Option<Row> = query_as(select!(
            "WHERE node_id = ? AND path = ? AND sha256 = ? ORDER BY id DESC LIMIT 1"
        ))
        .bind(node_id)
        .bind(path)
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(version))
    }

    async fn file_changes(
        &self,
        since_ms: i64,
        risks: &[&str],
        limit: i64,
    ) -> Result<Vec<FileVersion>, StoreError> {
        let risks = serde_json::to_string(risks).expect("strings serialize");
        let rows: Vec<Row> = query_as(select!(
            "WHERE ts_ms >= ? AND change != 'first_seen' AND risk IN (",
            json_values_open!(),
            "?",
            json_values_close!(),
            ") ORDER BY id DESC LIMIT ?"
        ))
        .bind(since_ms)
        .bind(risks)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(version).collect())
    }

    async fn unassessed_file_versions(
        &self,
        node_id: &str,
        sha256: &str,
    ) -> Result<Vec<FileVersion>, StoreError> {
        let rows: Vec<Row> = query_as(select!(
            "WHERE node_id = ? AND sha256 = ? AND risk IS NULL ORDER BY id"
        ))
        .bind(node_id)
        .bind(sha256)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(version).collect())
    }

    async fn has_file_content(
        &self,
        node_id: &str,
        sha256: &str,
        keyed: bool,
    ) -> Result<bool, StoreError> {
        let row: Option<(i64,)> = query_as(
            "SELECT CAST(1 AS BIGINT) FROM file_contents WHERE node_id = ? AND sha256 = ?",
        )
        .bind(owner(node_id, keyed))
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    async fn put_file_content(
        &self,
        node_id: &str,
        sha256: &str,
        keyed: bool,
        text: &str,
    ) -> Result<bool, StoreError> {
        let content_sha = hex::encode(Sha256::digest(text.as_bytes()));
        // Text with a NUL is binary (agents never send it; PostgreSQL's
        // `text` would refuse it): refused alike on both backends.
        if (!keyed && content_sha != sha256) || text.contains('\0') {
            return Ok(false);
        }
        let mut tx = self.write_tx().await?;
        query(
            "INSERT INTO file_blobs (content_sha, size, data) VALUES (?, ?, ?)
             ON CONFLICT (content_sha) DO NOTHING",
        )
        .bind(&content_sha)
        .bind(text.len() as i64)
        .bind(text)
        .execute(&mut *tx)
        .await?;
        query(
            "INSERT INTO file_contents (node_id, sha256, content_sha) VALUES (?, ?, ?)
             ON CONFLICT (node_id, sha256) DO UPDATE SET content_sha = excluded.content_sha",
        )
        .bind(owner(node_id, keyed))
        .bind(sha256)
        .bind(&content_sha)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn file_content(
        &self,
        node_id: &str,
        sha256: &str,
        keyed: bool,
    ) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = query_as(
            "SELECT b.data FROM file_contents c JOIN file_blobs b ON b.content_sha = c.content_sha
             WHERE c.node_id = ? AND c.sha256 = ?",
        )
        .bind(owner(node_id, keyed))
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.0))
    }

    async fn latest_file_versions(&self, node_id: &str) -> Result<Vec<FileVersion>, StoreError> {
        let rows: Vec<Row> = query_as(select!(
            "WHERE id IN (SELECT MAX(id) FROM file_versions WHERE node_id = ?1 GROUP BY path) ORDER BY path"
        ))
        .bind(node_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(version).collect())
    }

    async fn drifting_file_versions(&self) -> Result<Vec<FileVersion>, StoreError> {
        let rows: Vec<Row> = query_as(select!(
            "WHERE id IN (SELECT MAX(id) FROM file_versions GROUP BY node_id, path) AND ",
            drift_listed!()
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(version).collect())
    }

    async fn prune_file_versions(&self, keep: i64, cutoff_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        let gone = query(
            "DELETE FROM file_versions WHERE id IN (
                SELECT id FROM (
                    SELECT id, ts_ms, ROW_NUMBER() OVER (PARTITION BY node_id, path ORDER BY id DESC) AS n
                    FROM file_versions) AS ranked
                WHERE n > ? AND ts_ms < ?)",
        )
        .bind(keep)
        .bind(cutoff_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if gone > 0 {
            query(
                "DELETE FROM file_contents WHERE NOT EXISTS (
                    SELECT 1 FROM file_versions v WHERE v.sha256 = file_contents.sha256
                    AND (file_contents.node_id = '' OR v.node_id = file_contents.node_id))",
            )
            .execute(&mut *tx)
            .await?;
            query(
                "DELETE FROM file_blobs WHERE content_sha NOT IN (SELECT content_sha FROM file_contents)",
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(gone)
    }
}
