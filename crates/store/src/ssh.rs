//! Hosts reached over SSH (`ssh.rs`): each kept whole as JSON.

pub mod hosts;

use crate::StoreError;
use hosts::SshHost;

#[async_trait::async_trait]
pub trait SshStore: Send + Sync {
    /// Writes `host` (new or changed). Targets are unique: the caller
    /// checks first; a race ends in the database's unique violation.
    async fn save_ssh_host(&self, host: &SshHost) -> Result<(), StoreError>;

    /// Every host reached over SSH, oldest first. One that does not decode
    /// is skipped with a warning.
    async fn ssh_hosts(&self) -> Result<Vec<SshHost>, StoreError>;

    /// Forgets host `id`; false when there was none.
    async fn remove_ssh_host(&self, id: &str) -> Result<bool, StoreError>;

    /// The node enrolled with the join token `token` (the secret), if any.
    async fn node_by_join_token(&self, token: &str) -> Result<Option<String>, StoreError>;
}
