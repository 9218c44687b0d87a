//! `layout`: the queries (compiled once per backend, see `store/sql.rs`).

use super::*;
use crate::audit::Record;
use crate::layout::*;
use crate::*;

#[async_trait::async_trait]
impl crate::LayoutStore for Sql<Db> {
    async fn layout(&self) -> Result<(i64, Option<String>), StoreError> {
        let row: Option<(i64, String)> = query_as("SELECT version, doc FROM layout WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some((version, doc)) => (version, Some(doc)),
            None => (0, None),
        })
    }

    async fn put_layout(
        &self,
        base: i64,
        doc: &str,
        record: &Record,
    ) -> Result<PutLayout, StoreError> {
        let mut tx = self.write_tx().await?;
        let current: i64 = query_scalar("SELECT version FROM layout WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or(0);
        if current != base {
            return Ok(PutLayout::Conflict(current));
        }
        let next = current + 1;
        query(
            "INSERT INTO layout (id, version, doc, updated_ms) VALUES (1, ?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET version = ?1, doc = ?2, updated_ms = ?3",
        )
        .bind(next)
        .bind(doc)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        super::audit::append_in(&mut tx, record).await?;
        tx.commit().await?;
        Ok(PutLayout::Stored(next))
    }
}
