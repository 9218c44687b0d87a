//! `events`: the queries (compiled once per backend, see `store/sql.rs`).

use super::*;
use crate::timeline::Event;
use crate::*;

#[async_trait::async_trait]
impl crate::EventStore for Sql<Db> {
    async fn insert_events(&self, events: &[Event]) -> Result<(), StoreError> {
        const ROWS_PER_STATEMENT: usize = 190; // 5 parameters each, under SQLite's 999
        let mut tx = self.write_tx().await?;
        for chunk in events.chunks(ROWS_PER_STATEMENT) {
            let mut insert =
                QueryBuilder::new("INSERT INTO events (node_id, ts, kind, target, detail) ");
            insert.push_values(chunk, |mut row, e| {
                row.push_bind(agent_text(&e.node_id))
                    .push_bind(e.ts)
                    .push_bind(agent_text(&e.kind))
                    .push_bind(agent_text(&e.target))
                    .push_bind(e.detail.to_string());
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn events(
        &self,
        node_id: Option<&str>,
        before: i64,
        limit: i64,
    ) -> Result<Vec<Event>, StoreError> {
        let rows: Vec<(String, i64, String, String, String)> = query_as(
            "SELECT node_id, ts, kind, target, detail FROM events
             WHERE (?1 IS NULL OR node_id = ?1) AND ts < ?2 ORDER BY ts DESC, id DESC LIMIT ?3",
        )
        .bind(node_id)
        .bind(before)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(node_id, ts, kind, target, detail)| Event {
                node_id,
                ts,
                kind,
                target,
                detail: serde_json::from_str(&detail).unwrap_or_default(),
            })
            .collect())
    }

    async fn agent_link_at(
        &self,
        node_id: &str,
        at: i64,
    ) -> Result<Option<(i64, bool)>, StoreError> {
        let row: Option<(i64, String)> = query_as(
            "SELECT ts, kind FROM events WHERE node_id = ? AND ts <= ?
             AND kind IN ('agent.connected', 'agent.disconnected')
             ORDER BY ts DESC, id DESC LIMIT 1",
        )
        .bind(node_id)
        .bind(at)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(ts, kind)| (ts, kind == "agent.connected")))
    }
}
