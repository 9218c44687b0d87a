//! `rollouts`: the queries (compiled once per backend, see `store/sql.rs`).

use super::*;
use crate::rollouts::Rollout;
use crate::rollouts::*;
use crate::*;

#[async_trait::async_trait]
impl crate::RolloutStore for Sql<Db> {
    async fn save_rollout(&self, rollout: &Rollout) -> Result<(), StoreError> {
        let body =
            serde_json::to_string(rollout).map_err(|e| StoreError::Damaged(e.to_string()))?;
        let mut tx = self.write_tx().await?;
        query(
            "INSERT INTO rollouts (id, created_ms, state, body) VALUES (?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET state = excluded.state, body = excluded.body",
        )
        .bind(&rollout.id)
        .bind(rollout.created_ms)
        .bind(rollout.state.as_str())
        .bind(&body)
        .execute(&mut *tx)
        .await?;
        query(
            "DELETE FROM rollouts WHERE state IN ('done', 'aborted', 'halted')
             AND id NOT IN (SELECT id FROM rollouts ORDER BY created_ms DESC LIMIT ?)",
        )
        .bind(KEEP)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn rollouts(&self) -> Result<Vec<Rollout>, StoreError> {
        let rows: Vec<(String, String)> =
            query_as("SELECT id, body FROM rollouts ORDER BY created_ms DESC, id DESC")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, body)| match serde_json::from_str(&body) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(id, error = %e, "a stored rollout does not decode; skipped");
                    None
                }
            })
            .collect())
    }

    async fn rollout(&self, id: &str) -> Result<Option<Rollout>, StoreError> {
        let body: Option<(String,)> = query_as("SELECT body FROM rollouts WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(body.and_then(|(b,)| match serde_json::from_str(&b) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(id, error = %e, "a stored rollout does not decode");
                None
            }
        }))
    }
}
