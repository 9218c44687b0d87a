//! `ssh`: the queries (compiled once per backend, see `store/sql.rs`).

use super::*;
use crate::ssh::hosts::SshHost;
use crate::*;

#[async_trait::async_trait]
impl crate::SshStore for Sql<Db> {
    async fn save_ssh_host(&self, host: &SshHost) -> Result<(), StoreError> {
        let body = serde_json::to_string(host).map_err(|e| StoreError::Damaged(e.to_string()))?;
        let mut tx = self.write_tx().await?;
        query(
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

    async fn ssh_hosts(&self) -> Result<Vec<SshHost>, StoreError> {
        let rows: Vec<(String, String)> =
            query_as("SELECT id, body FROM ssh_hosts ORDER BY created_ms, id")
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

    async fn remove_ssh_host(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let done = query("DELETE FROM ssh_hosts WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn node_by_join_token(&self, token: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = query_as(
            "SELECT n.id FROM nodes n JOIN join_tokens t ON n.join_token_id = t.id
             WHERE t.token_hash = ?",
        )
        .bind(crate::credentials::token_hash(token))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(id,)| id))
    }
}
