//! `agentless`: the queries (compiled once per backend, see `store/sql.rs`).

use super::*;
use crate::agentless::*;
use crate::*;

#[async_trait::async_trait]
impl crate::AgentlessStore for Sql<Db> {
    async fn record_collection_run(&self, run: &CollectionRun) -> Result<(), StoreError> {
        let commands =
            serde_json::to_string(&run.commands).map_err(|e| StoreError::Damaged(e.to_string()))?;
        let mut tx = self.write_tx().await?;
        query(
            "INSERT INTO agentless_runs (node_id, started_ms, duration_ms, outcome, commands)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&run.node_id)
        .bind(run.started_ms)
        .bind(run.duration_ms)
        .bind(&run.outcome)
        .bind(&commands)
        .execute(&mut *tx)
        .await?;
        query(
            "DELETE FROM agentless_runs WHERE node_id = ?1 AND id <=
             (SELECT id FROM agentless_runs WHERE node_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        )
        .bind(&run.node_id)
        .bind(KEEP_RUNS)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn collection_runs(
        &self,
        node_id: &str,
        limit: i64,
    ) -> Result<Vec<CollectionRun>, StoreError> {
        let rows: Vec<(i64, i64, String, String)> = query_as(
            "SELECT started_ms, duration_ms, outcome, commands FROM agentless_runs
             WHERE node_id = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(node_id)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(started_ms, duration_ms, outcome, commands)| {
                Ok(CollectionRun {
                    node_id: node_id.to_string(),
                    started_ms,
                    duration_ms,
                    outcome,
                    commands: serde_json::from_str(&commands)
                        .map_err(|e| StoreError::Damaged(e.to_string()))?,
                })
            })
            .collect()
    }
}
