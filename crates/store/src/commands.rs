//! Commands in SQLite: a row when one starts, its end and output when it ends.

use serde::{Deserialize, Serialize};
use twinbay_proto::command::{Op, Status, Stream};

use super::{Role, StoreError};

/// A command as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CommandRecord {
    pub id: String,
    pub node_id: String,
    pub op: Op,
    /// One line, e.g. `restart container web`.
    pub summary: String,
    pub actor: String,
    pub actor_kind: String,
    /// The least role that may run it, or read its output.
    pub role_needed: Role,
    pub status: Status,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    /// Unix milliseconds.
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub duration_ms: Option<i64>,
    /// Output went past a cap (the action's, or what the hub keeps) and was cut.
    pub truncated: bool,
}

impl CommandRecord {
    /// Records how it ended, at `now_ms`.
    pub fn end(
        &mut self,
        status: Status,
        exit_code: Option<i32>,
        error: Option<String>,
        now_ms: i64,
    ) {
        self.status = status;
        self.exit_code = exit_code;
        self.error = error;
        self.ended_ms = Some(now_ms);
        self.duration_ms = Some(now_ms - self.started_ms);
    }
}

/// A piece of stored output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Output {
    pub stream: Stream,
    pub data: String,
}

/// A row as selected, its last column the output (JSON) or `'[]'` where
/// the output is not wanted.
pub(crate) type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<i64>,
    Option<String>,
    i64,
    Option<i64>,
    bool,
    String,
);

pub(crate) fn record(r: Row) -> Result<(CommandRecord, Vec<Output>), StoreError> {
    let bad = |what: &str| StoreError::Damaged(format!("command {}: bad {what}", r.0));
    let output = serde_json::from_str(&r.13).map_err(|_| bad("output"))?;
    let record = CommandRecord {
        op: serde_json::from_str(&r.2).map_err(|_| bad("op"))?,
        role_needed: Role::parse(&r.6).ok_or_else(|| bad("role"))?,
        status: Status::parse(&r.7).ok_or_else(|| bad("status"))?,
        exit_code: r.8.map(|c| c as i32),
        error: r.9,
        started_ms: r.10,
        ended_ms: r.11,
        duration_ms: r.11.map(|e| e - r.10),
        truncated: r.12,
        id: r.0,
        node_id: r.1,
        summary: r.3,
        actor: r.4,
        actor_kind: r.5,
    };
    Ok((record, output))
}

#[async_trait::async_trait]
pub trait CommandStore: Send + Sync {
    async fn insert_command(&self, c: &CommandRecord) -> Result<(), StoreError>;

    /// Records how a command ended, with the output kept.
    async fn finish_command(&self, c: &CommandRecord, output: &[Output]) -> Result<(), StoreError>;

    /// A command and its output, read in one statement (so never a finished
    /// record with the output of when it ran).
    async fn command(&self, id: &str) -> Result<Option<(CommandRecord, Vec<Output>)>, StoreError>;

    /// A host's commands, newest first.
    async fn node_commands(
        &self,
        node_id: &str,
        limit: u32,
    ) -> Result<Vec<CommandRecord>, StoreError>;

    /// Forgets ended commands older than `before_ms`, and all but the newest
    /// `keep` of each host; running ones stay. Returns how many went.
    async fn prune_commands(&self, before_ms: i64, keep: u32) -> Result<u64, StoreError>;

    /// Commands a previous hub process left running can never end now.
    async fn lose_running_commands(&self, now_ms: i64) -> Result<u64, StoreError>;
}
