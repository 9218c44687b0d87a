//! Sealing rows into chunks, rolling tiers up, retention and the size cap.
//!
//! Every step is idempotent and runs in its own short write transaction, so
//! a crash between two steps loses nothing: rows stay rows until the
//! transaction that wrote their chunk commits, and a tier's `rolled_*` mark
//! moves in the transaction that wrote its buckets.

use crate::StoreError;

/// How long after a window ends it is sealed and rolled up. Samples that
/// arrive later still count; they cost a rewrite of their chunk.
pub const GRACE_MS: i64 = 60_000;

/// Windows one roll-up step covers at most (bounds its memory).
pub(crate) const WINDOWS_PER_STEP: i64 = 24;
/// Roll-up steps per transaction: short turns for the other writers.
pub(crate) const STEPS_PER_TX: usize = 16;
/// Nodes sealed per transaction.
pub const SEAL_PER_TX: usize = 32;

#[async_trait::async_trait]
pub trait HistoryMaintenance: Send + Sync {
    /// Each node with unsealed rows, and its oldest row's time.
    async fn history_pending(&self) -> Result<Vec<(i64, i64)>, StoreError>;

    /// Moves the rows of `nodes` older than `before` into raw chunks (merged
    /// into a chunk already there), in one transaction. Returns, per node,
    /// whether rows from `before` on remain.
    async fn seal_history(
        &self,
        nodes: &[i64],
        before: i64,
    ) -> Result<Vec<(i64, bool)>, StoreError>;

    /// Rolls every node's tiers up over the windows that `now` (less the
    /// grace) has closed: 1 min buckets from raw samples hour by hour, 15 min
    /// and 1 h buckets from the tier below day by day. Returns the steps done.
    async fn roll_up_history(&self, now: i64) -> Result<u64, StoreError>;

    /// Deletes `level`'s history before `before`, rolling the next tier up
    /// to there first. The cut is rounded down to the next tier's bucket,
    /// so no bucket is ever rolled from part of its data; raw rows go by
    /// time, chunks once their whole window is before the cut. Where history
    /// is partitioned by time, partitions wholly before the cut are dropped
    /// rather than deleted from.
    async fn delete_history_before(&self, level: u32, before: i64) -> Result<u64, StoreError>;

    /// Makes the time partitions of the history tables for `now`'s period
    /// and the next, and for any period with rows in the DEFAULT partition
    /// (moving them in). PostgreSQL with declarative partitions only;
    /// elsewhere nothing. Returns the partitions made.
    async fn keep_history_partitions(&self, now: i64) -> Result<usize, StoreError>;

    /// The time before which the oldest tenth of `level`'s chunks lies (for
    /// raw with no chunks yet, of its rows); `None` when there is nothing.
    async fn oldest_tenth_cut(&self, level: u32) -> Result<Option<i64>, StoreError>;
}
