//! The physical layout document (`layout.rs`), kept whole with a version.

use super::{Store, StoreError, now_ms};
use crate::audit::Record;

/// What [`Store::put_layout`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum PutLayout {
    /// Stored as this version.
    Stored(i64),
    /// Someone else saved first: this is the version now stored.
    Conflict(i64),
}

impl Store {
    /// The stored layout document and its version (0 and `None`: never saved).
    pub async fn layout(&self) -> Result<(i64, Option<String>), StoreError> {
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT version, doc FROM layout WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?;
        Ok(match row {
            Some((version, doc)) => (version, Some(doc)),
            None => (0, None),
        })
    }

    /// Replaces the layout if it is still at version `base`, with `record`
    /// appended to the audit trail in the same transaction.
    pub async fn put_layout(
        &self,
        base: i64,
        doc: &str,
        record: &Record,
    ) -> Result<PutLayout, StoreError> {
        let mut tx = self.write_tx().await?;
        let current: i64 = sqlx::query_scalar("SELECT version FROM layout WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or(0);
        if current != base {
            return Ok(PutLayout::Conflict(current));
        }
        let next = current + 1;
        sqlx::query(
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
