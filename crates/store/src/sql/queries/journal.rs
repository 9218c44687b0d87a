//! `journal`: the queries (compiled once per backend, see `store/sql.rs`).

use super::*;
use crate::journal::Row;
use crate::journal::*;
use crate::*;

/// Appends journal rows inside the caller's transaction.
pub(crate) async fn insert_in(tx: &mut WriteTx, journal: &[Row]) -> Result<(), sqlx::Error> {
    const ROWS_PER_STATEMENT: usize = 200;
    for chunk in journal.chunks(ROWS_PER_STATEMENT) {
        let mut insert = QueryBuilder::new("INSERT INTO journal (node_id, ts, checkpoint, body) ");
        insert.push_values(chunk, |mut row, r| {
            row.push_bind(&r.node_id)
                .push_bind(r.ts)
                .push_bind(r.checkpoint)
                .push_bind(&r.body);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl crate::JournalStore for Sql<Db> {
    async fn insert_journal(&self, journal: &[Row]) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        insert_in(&mut tx, journal).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn journal_at(&self, node: &str, at: i64) -> Result<Vec<Row>, StoreError> {
        let t: Vec<RowTuple> = query_as(
            "SELECT node_id, ts, checkpoint, body FROM journal
             WHERE node_id = ?1 AND ts <= ?2 AND ts >= (
                 SELECT MAX(ts) FROM journal WHERE node_id = ?1 AND checkpoint = TRUE AND ts <= ?2)
             ORDER BY ts",
        )
        .bind(node)
        .bind(at)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows(t))
    }

    async fn journal_head(&self, node: &str) -> Result<Vec<Row>, StoreError> {
        self.journal_at(node, i64::MAX).await
    }

    async fn journal_oldest(&self) -> Result<Option<i64>, StoreError> {
        let row: (Option<i64>,) = query_as("SELECT MIN(ts) FROM journal")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.0)
    }

    async fn journal_between(
        &self,
        node: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<Row>, StoreError> {
        let t: Vec<RowTuple> = query_as(
            "SELECT node_id, ts, checkpoint, body FROM journal
             WHERE node_id = ? AND ts > ? AND ts <= ? ORDER BY ts",
        )
        .bind(node)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows(t))
    }

    async fn journal_first(&self, node: &str) -> Result<Option<i64>, StoreError> {
        let row: (Option<i64>,) = query_as("SELECT MIN(ts) FROM journal WHERE node_id = ?")
            .bind(node)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.0)
    }

    async fn journal_nodes_between(&self, from: i64, to: i64) -> Result<Vec<String>, StoreError> {
        let t: Vec<(String,)> = query_as(
            "SELECT DISTINCT node_id FROM journal WHERE ts > ? AND ts <= ? ORDER BY node_id",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        Ok(t.into_iter().map(|r| r.0).collect())
    }

    async fn prune_journal(&self, before: i64) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        let done = query(
            "DELETE FROM journal WHERE ts < ?1 AND ts < (
                 SELECT MAX(c.ts) FROM journal c
                 WHERE c.node_id = journal.node_id AND c.checkpoint = TRUE AND c.ts <= ?1)",
        )
        .bind(before)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn journal_size(&self, node: Option<&str>) -> Result<(i64, i64), StoreError> {
        let row: (i64, Option<i64>) = query_as(
            "SELECT COUNT(*), SUM(LENGTH(body)) FROM journal WHERE ?1 IS NULL OR node_id = ?1",
        )
        .bind(node)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.0, row.1.unwrap_or(0)))
    }
}
