//! `commands`: the queries (compiled once per backend, see `store/sql.rs`).

use super::*;
use crate::commands::*;
use crate::*;

/// `SELECT` of a [`Row`]: `$output` is `"output"` or `"'[]'"`.
macro_rules! select {
    ($output:literal, $rest:literal) => {
        concat!(
            "SELECT id, node_id, op, summary, actor, actor_kind, role_needed, status, exit_code, error, \
             started_ms, ended_ms, truncated, ",
            $output,
            " FROM commands ",
            $rest
        )
    };
}

#[async_trait::async_trait]
impl crate::CommandStore for Sql<Db> {
    async fn insert_command(&self, c: &CommandRecord) -> Result<(), StoreError> {
        let op = serde_json::to_string(&c.op).expect("ops serialize");
        let mut tx = self.write_tx().await?;
        query(
            "INSERT INTO commands (id, node_id, op, summary, actor, actor_kind, role_needed, status, started_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.id)
        .bind(&c.node_id)
        .bind(op)
        .bind(&c.summary)
        .bind(&c.actor)
        .bind(&c.actor_kind)
        .bind(c.role_needed.as_str())
        .bind(c.status.as_str())
        .bind(c.started_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn finish_command(&self, c: &CommandRecord, output: &[Output]) -> Result<(), StoreError> {
        let output = serde_json::to_string(output).expect("output serializes");
        let mut tx = self.write_tx().await?;
        query(
            "UPDATE commands SET status = ?, exit_code = ?, error = ?, ended_ms = ?, truncated = ?, output = ? \
             WHERE id = ?",
        )
        .bind(c.status.as_str())
        .bind(c.exit_code)
        .bind(c.error.as_deref().map(agent_text))
        .bind(c.ended_ms)
        .bind(c.truncated)
        .bind(output)
        .bind(&c.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn command(&self, id: &str) -> Result<Option<(CommandRecord, Vec<Output>)>, StoreError> {
        let row: Option<Row> = query_as(select!("output", "WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(record).transpose()
    }

    async fn node_commands(
        &self,
        node_id: &str,
        limit: u32,
    ) -> Result<Vec<CommandRecord>, StoreError> {
        let rows: Vec<Row> = query_as(select!(
            "'[]'",
            "WHERE node_id = ? ORDER BY started_ms DESC, id DESC LIMIT ?"
        ))
        .bind(node_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|r| Ok(record(r)?.0)).collect()
    }

    async fn prune_commands(&self, before_ms: i64, keep: u32) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        let done = query(
            "DELETE FROM commands WHERE status != 'running' AND (ended_ms < ? OR id IN (\
               SELECT id FROM (SELECT id, ROW_NUMBER() OVER \
                 (PARTITION BY node_id ORDER BY started_ms DESC, id DESC) AS n FROM commands) AS ranked \
               WHERE n > ?))",
        )
        .bind(before_ms)
        .bind(i64::from(keep))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn lose_running_commands(&self, now_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        let done = query(
            "UPDATE commands SET status = 'lost', ended_ms = ?, error = 'the hub restarted while it ran' \
             WHERE status = 'running'",
        )
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}
