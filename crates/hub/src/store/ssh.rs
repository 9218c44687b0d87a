//! Hosts reached over SSH (`ssh.rs`): each kept whole as JSON.

use super::{Store, StoreError, now_ms};
use crate::ssh::hosts::SshHost;

impl Store {
    /// Writes `host` (new or changed). Targets are unique: the caller
    /// checks first; a race ends in the database's unique violation.
    pub async fn save_ssh_host(&self, host: &SshHost) -> Result<(), StoreError> {
        let body = serde_json::to_string(host).map_err(|e| StoreError::Damaged(e.to_string()))?;
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO ssh_hosts (id, target, created_ms, body) VALUES (?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET target = excluded.target, body = excluded.body",
        )
        .bind(&host.id)
        .bind(&host.target)
        .bind(now_ms())
        .bind(&body)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every host reached over SSH, oldest first. One that does not decode
    /// is skipped with a warning.
    pub async fn ssh_hosts(&self) -> Result<Vec<SshHost>, StoreError> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT id, body FROM ssh_hosts ORDER BY created_ms, id")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, body)| match serde_json::from_str(&body) {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(id, error = %e, "a stored SSH host does not decode; skipped");
                    None
                }
            })
            .collect())
    }

    /// Forgets host `id`; false when there was none.
    pub async fn remove_ssh_host(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("DELETE FROM ssh_hosts WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// The node enrolled with the join token `token` (the secret), if any.
    pub async fn node_by_join_token(&self, token: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT n.id FROM nodes n JOIN join_tokens t ON n.join_token_id = t.id
             WHERE t.token_hash = ?",
        )
        .bind(crate::credentials::token_hash(token))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(id,)| id))
    }
}
