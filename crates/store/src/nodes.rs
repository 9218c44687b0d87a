use std::time::Duration;

use twinbay_proto::model::{NodeState, Sample};

use super::StoreError;

/// Most simulated agents one join token may enroll.
pub const MAX_SIMULATED_PER_TOKEN: i64 = 100_000;

/// A node as stored: identity, pinned key and last known twin.
#[derive(Debug, Clone)]
pub struct NodeRecord {
    pub id: String,
    pub public_key: String,
    pub agent_version: String,
    pub last_seen: Option<i64>,
    pub simulated: bool,
    pub state: NodeState,
    pub resources: Option<Sample>,
}

/// What the recorder writes for a node whose twin changed.
#[derive(Debug, Clone)]
pub struct NodeWrite {
    pub id: String,
    pub hostname: String,
    pub agent_version: String,
    pub last_seen: i64,
    /// The whole state as JSON; `None` when only liveness changed.
    pub state: Option<String>,
    pub resources: Option<String>,
    /// With `state`: when it last changed (unix ms) and the state itself,
    /// for the journal (`journal.rs`).
    pub journal: Option<(i64, NodeState)>,
}

/// Why a join token cannot enroll an agent.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("unknown join token")]
    Unknown,
    #[error("join token was already used")]
    Used,
    #[error("join token expired")]
    Expired,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for EnrollError {
    fn from(e: sqlx::Error) -> Self {
        EnrollError::Store(e.into())
    }
}

#[async_trait::async_trait]
pub trait NodeStore: Send + Sync {
    /// Mints a one-time join token valid for `ttl`; only its hash is kept.
    async fn create_join_token(&self, ttl: Duration) -> Result<String, StoreError>;

    /// Spends `token` to enroll the agent holding `public_key`, pinning the
    /// key, and returns the node id. Repeating a successful enrollment with
    /// the same token and key returns the same node (the agent may have
    /// crashed before it heard the answer); anyone else gets [`EnrollError::Used`].
    ///
    /// A token first spent by a simulated agent becomes that simulated
    /// fleet's: until it expires it enrolls more simulated agents (up to
    /// [`MAX_SIMULATED_PER_TOKEN`]), and never a real one.
    async fn enroll(
        &self,
        token: &str,
        public_key: &str,
        simulated: bool,
    ) -> Result<String, EnrollError>;

    /// Records a node the hub reads itself (an agentless host over SSH):
    /// `key` stands in for an agent's public key. Nothing if it exists.
    async fn add_agentless_node(&self, node_id: &str, key: &str) -> Result<(), StoreError>;

    /// The key pinned for `node_id`, if the node exists.
    async fn node_key(&self, node_id: &str) -> Result<Option<String>, StoreError>;

    async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError>;

    /// Writes the latest twins of several nodes, and their journal rows,
    /// in one transaction.
    async fn save_nodes(
        &self,
        writes: &[NodeWrite],
        journal: &[crate::journal::Row],
    ) -> Result<(), StoreError>;
}
