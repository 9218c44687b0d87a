//! The audit trail in SQLite: appending (inside the caller's transaction
//! when there is one), searching, reading it in order to verify, and its
//! head (kept outside the database too, see `audit/anchor.rs`).

use crate::StoreError;
use crate::audit::head::Head;
use crate::audit::{Broken, Entry, Expected, Record};

pub(crate) type Row = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

pub(crate) const COLUMNS: &str = "id, ts, actor, actor_kind, address, user_agent, action, target, outcome, detail, prev_hash, hash";

pub(crate) fn entry(r: Row) -> Entry {
    Entry {
        id: r.0,
        ts: r.1,
        actor: r.2,
        actor_kind: r.3,
        address: r.4,
        user_agent: r.5,
        action: r.6,
        target: r.7,
        outcome: r.8,
        detail: r.9,
        prev_hash: r.10,
        hash: r.11,
    }
}

/// What to look for in the trail; every field narrows the search.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Exact actor (username, `token:ID`, node id).
    pub actor: Option<String>,
    /// Action, or a prefix ending in `.` (`session.` finds every session action).
    pub action: Option<String>,
    /// Exact target.
    pub target: Option<String>,
    /// `ok`, `denied` or `failed`.
    pub outcome: Option<String>,
    /// Entries older than this id (paging backwards).
    pub before: Option<i64>,
    /// At most this many, newest first (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// What a caller limited to host groups may read: entries by `actor`, or
/// about one of `targets` (itself, `node:ID` and node ids it sees).
#[derive(Debug, Clone, Default)]
pub struct AuditScope {
    pub actor: String,
    pub targets: Vec<String>,
}

#[async_trait::async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends one entry in a transaction of its own.
    async fn audit(&self, record: Record) -> Result<Entry, StoreError>;

    /// Appends `records` in order in one transaction: one commit for many
    /// entries (the MCP read queue's batches).
    async fn audit_many(&self, records: &[Record]) -> Result<(), StoreError>;

    /// Newest first.
    /// Entries matching `q`, newest first; with a `scope`, only those it allows.
    async fn audit_search(
        &self,
        q: &AuditQuery,
        scope: Option<&AuditScope>,
    ) -> Result<Vec<Entry>, StoreError>;

    /// The newest entry's id and hash ([`Head::empty`] for an empty trail).
    async fn audit_head(&self) -> Result<Head, StoreError>;

    /// The hash of entry `id`, if there is one.
    async fn audit_hash_at(&self, id: i64) -> Result<Option<String>, StoreError>;

    /// Reads the whole trail in order and checks the chain (and that it
    /// holds `expect`, when given): the number of entries and the head (last
    /// id and hash), or the first broken entry.
    async fn audit_verify(
        &self,
        expect: Option<Expected>,
    ) -> Result<Result<(u64, Option<(i64, String)>), Broken>, StoreError>;
}
