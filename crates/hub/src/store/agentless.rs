//! Collection runs of agentless hosts (`agentless/collector.rs`), kept per
//! node up to [`KEEP_RUNS`].

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

/// Runs kept per node (a day at the default 30 s is 2,880: this keeps the
/// last ~4 hours, enough to see when a host started failing).
pub const KEEP_RUNS: i64 = 500;

/// One command of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CommandRun {
    /// The registry's name for it (`df`, `ss-tcp`, …).
    pub name: String,
    pub argv: Vec<String>,
    pub ms: u64,
    /// `ok`, `failed`, `absent` (not on this host) or `unreachable`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One collection run of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CollectionRun {
    pub node_id: String,
    pub started_ms: i64,
    pub duration_ms: i64,
    /// `ok`, `partial`, `failed` or `unreachable`.
    pub outcome: String,
    pub commands: Vec<CommandRun>,
}

impl Store {
    /// Records `run` and drops that node's runs beyond the newest [`KEEP_RUNS`].
    pub async fn record_collection_run(&self, run: &CollectionRun) -> Result<(), StoreError> {
        let commands =
            serde_json::to_string(&run.commands).map_err(|e| StoreError::Damaged(e.to_string()))?;
        let mut tx = self.write_tx().await?;
        sqlx::query(
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
        sqlx::query(
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

    /// A node's newest runs first, at most `limit`.
    pub async fn collection_runs(
        &self,
        node_id: &str,
        limit: i64,
    ) -> Result<Vec<CollectionRun>, StoreError> {
        let rows: Vec<(i64, i64, String, String)> = sqlx::query_as(
            "SELECT started_ms, duration_ms, outcome, commands FROM agentless_runs
             WHERE node_id = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(node_id)
        .bind(limit)
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
