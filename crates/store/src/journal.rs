//! The state journal (`journal.rs`): rows of checkpoints and diffs per node.

use crate::StoreError;

/// A row of the journal table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub node_id: String,
    /// Unix ms; strictly increasing per node.
    pub ts: i64,
    pub checkpoint: bool,
    /// zstd of the entry's JSON.
    pub body: Vec<u8>,
}

pub(crate) type RowTuple = (String, i64, bool, Vec<u8>);

pub(crate) fn rows(t: Vec<RowTuple>) -> Vec<Row> {
    t.into_iter()
        .map(|(node_id, ts, checkpoint, body)| Row {
            node_id,
            ts,
            checkpoint,
            body,
        })
        .collect()
}

#[async_trait::async_trait]
pub trait JournalStore: Send + Sync {
    /// Appends journal rows in one transaction (the recorder writes them
    /// with the nodes' state instead: [`Store::save_nodes`]).
    async fn insert_journal(&self, journal: &[Row]) -> Result<(), StoreError>;

    /// The rows that rebuild node `node` as of `at`: its newest checkpoint
    /// at or before `at` and the diffs after it up to `at`. Empty when the
    /// journal holds nothing of the node that early.
    async fn journal_at(&self, node: &str, at: i64) -> Result<Vec<Row>, StoreError>;

    /// The rows that rebuild node `node`'s newest journaled state.
    async fn journal_head(&self, node: &str) -> Result<Vec<Row>, StoreError>;

    /// The oldest journal row's time.
    async fn journal_oldest(&self) -> Result<Option<i64>, StoreError>;

    /// The rows of node `node` in `(from, to]`, oldest first.
    async fn journal_between(&self, node: &str, from: i64, to: i64)
    -> Result<Vec<Row>, StoreError>;

    /// The first journaled moment of node `node`.
    async fn journal_first(&self, node: &str) -> Result<Option<i64>, StoreError>;

    /// The nodes with journal rows in `(from, to]`.
    async fn journal_nodes_between(&self, from: i64, to: i64) -> Result<Vec<String>, StoreError>;

    /// Deletes what is older than `before`, except each node's newest
    /// checkpoint at or before it (and so the diffs after that): the state
    /// at `before` can still be rebuilt, and no diff loses its checkpoint.
    async fn prune_journal(&self, before: i64) -> Result<u64, StoreError>;

    /// Rows and bytes (compressed bodies) of the journal, of one node or all.
    async fn journal_size(&self, node: Option<&str>) -> Result<(i64, i64), StoreError>;
}
