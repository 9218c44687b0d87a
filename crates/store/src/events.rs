use super::StoreError;
use crate::timeline::Event;

#[async_trait::async_trait]
pub trait EventStore: Send + Sync {
    /// Writes `events` in one transaction, a few hundred rows per statement
    /// (a reconnect storm brings thousands at once).
    async fn insert_events(&self, events: &[Event]) -> Result<(), StoreError>;

    /// The newest events before `before` (unix ms), newest first, for one node or all.
    async fn events(
        &self,
        node_id: Option<&str>,
        before: i64,
        limit: i64,
    ) -> Result<Vec<Event>, StoreError>;

    /// The node's last `agent.connected` or `agent.disconnected` at or
    /// before `at`: (ts, connected).
    async fn agent_link_at(
        &self,
        node_id: &str,
        at: i64,
    ) -> Result<Option<(i64, bool)>, StoreError>;
}
