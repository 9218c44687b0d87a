//! Collection runs of agentless hosts (`agentless/collector.rs`), kept per
//! node up to [`KEEP_RUNS`].

use serde::{Deserialize, Serialize};

use super::StoreError;

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

#[async_trait::async_trait]
pub trait AgentlessStore: Send + Sync {
    /// Records `run` and drops that node's runs beyond the newest [`KEEP_RUNS`].
    async fn record_collection_run(&self, run: &CollectionRun) -> Result<(), StoreError>;

    /// A node's newest runs first, at most `limit`.
    async fn collection_runs(
        &self,
        node_id: &str,
        limit: i64,
    ) -> Result<Vec<CollectionRun>, StoreError>;
}
