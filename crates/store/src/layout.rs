//! The physical layout document (`layout.rs`), kept whole with a version.

use super::StoreError;
use crate::audit::Record;

/// What [`Store::put_layout`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum PutLayout {
    /// Stored as this version.
    Stored(i64),
    /// Someone else saved first: this is the version now stored.
    Conflict(i64),
}

#[async_trait::async_trait]
pub trait LayoutStore: Send + Sync {
    /// The stored layout document and its version (0 and `None`: never saved).
    async fn layout(&self) -> Result<(i64, Option<String>), StoreError>;

    /// Replaces the layout if it is still at version `base`, with `record`
    /// appended to the audit trail in the same transaction.
    async fn put_layout(
        &self,
        base: i64,
        doc: &str,
        record: &Record,
    ) -> Result<PutLayout, StoreError>;
}
