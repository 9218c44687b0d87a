//! Rollouts (`rollouts.rs`): each kept whole as JSON, rewritten on change.

mod record;

pub use record::*;

use crate::StoreError;

/// Rollouts kept; the oldest finished ones go as new ones come.
pub(crate) const KEEP: i64 = 200;

#[async_trait::async_trait]
pub trait RolloutStore: Send + Sync {
    /// Writes `rollout` (new or changed) and drops finished rollouts beyond
    /// the newest [`KEEP`].
    async fn save_rollout(&self, rollout: &Rollout) -> Result<(), StoreError>;

    /// Every kept rollout, newest first. One that does not decode (written
    /// by a newer hub, say) is skipped with a warning.
    async fn rollouts(&self) -> Result<Vec<Rollout>, StoreError>;

    /// One kept rollout, `None` if there is none by that id (or it does not decode).
    async fn rollout(&self, id: &str) -> Result<Option<Rollout>, StoreError>;
}
