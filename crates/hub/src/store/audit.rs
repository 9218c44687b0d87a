//! The audit trail in SQLite: appending (inside the caller's transaction
//! when there is one), searching, reading it in order to verify, and its
//! head (kept outside the database too, see `audit/anchor.rs`).

use futures_util::TryStreamExt;
use sqlx::SqliteConnection;

use super::{Store, StoreError, WriteTx, now_ms};
use crate::audit::anchor::judge;
use crate::audit::head::Head;
use crate::audit::{Broken, Entry, Expected, Record, Verifier, entry_hash};

type Row = (
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

const COLUMNS: &str = "id, ts, actor, actor_kind, address, user_agent, action, target, outcome, detail, prev_hash, hash";

fn entry(r: Row) -> Entry {
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

/// Appends `record` in `tx`; once `tx` commits, the new entry is the
/// recorded head (if the chain still holds the one recorded before).
pub(crate) async fn append_in(tx: &mut WriteTx, record: &Record) -> Result<Entry, StoreError> {
    let last = head(tx).await?;
    let anchored = holds_recorded_head(tx, &last).await?;
    let conn: &mut SqliteConnection = tx;
    let (id, prev_hash) = (last.id + 1, last.hash);
    let ts = now_ms();
    let hash = entry_hash(&prev_hash, id, ts, record);
    sqlx::query(
        "INSERT INTO audit (id, ts, actor, actor_kind, address, user_agent, action, target, outcome, detail, prev_hash, hash)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(id)
    .bind(ts)
    .bind(&record.actor)
    .bind(record.actor_kind.as_str())
    .bind(&record.address)
    .bind(&record.user_agent)
    .bind(&record.action)
    .bind(&record.target)
    .bind(record.outcome.as_str())
    .bind(&record.detail)
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    if anchored {
        tx.audit_head = Some(Head {
            id,
            hash: hash.clone(),
        });
    }
    Ok(Entry {
        id,
        ts,
        actor: record.actor.clone(),
        actor_kind: record.actor_kind.as_str().into(),
        address: record.address.clone(),
        user_agent: record.user_agent.clone(),
        action: record.action.clone(),
        target: record.target.clone(),
        outcome: record.outcome.as_str().into(),
        detail: record.detail.clone(),
        prev_hash,
        hash,
    })
}

async fn head(conn: &mut SqliteConnection) -> Result<Head, StoreError> {
    let last: Option<(i64, String)> =
        sqlx::query_as("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")
            .fetch_optional(conn)
            .await?;
    Ok(last.map_or_else(Head::empty, |(id, hash)| Head { id, hash }))
}

async fn hash_at(conn: &mut SqliteConnection, id: i64) -> Result<Option<String>, StoreError> {
    let row: Option<(String,)> = sqlx::query_as("SELECT hash FROM audit WHERE id = ?")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| r.0))
}

/// Whether the chain, whose head is `last`, still holds the head recorded in
/// `audit.head`: only then may the file move on. If not, the tail was cut
/// since; the file keeps the old head as evidence and the trail is flagged.
async fn holds_recorded_head(tx: &mut WriteTx, last: &Head) -> Result<bool, StoreError> {
    let anchor = tx.anchor.clone();
    if anchor.wrote(last) {
        return Ok(true);
    }
    let recorded = match anchor.read() {
        Ok(None) => return Ok(true),
        Ok(Some(recorded)) => recorded,
        Err(e) => {
            anchor.flag(&format!("the recorded head cannot be read: {e}"));
            return Ok(false);
        }
    };
    let at = match recorded.id {
        id if id == last.id => Some(last.hash.clone()),
        id if id < last.id => hash_at(tx, id).await?,
        _ => None,
    };
    match judge(&recorded, at.as_deref(), last) {
        None => Ok(true),
        Some(detail) => {
            anchor.flag(&detail);
            Ok(false)
        }
    }
}

impl Store {
    /// Appends one entry in a transaction of its own.
    pub async fn audit(&self, record: Record) -> Result<Entry, StoreError> {
        let mut tx = self.write_tx().await?;
        let entry = append_in(&mut tx, &record).await?;
        tx.commit().await?;
        Ok(entry)
    }

    /// Appends `records` in order in one transaction: one commit for many
    /// entries (the MCP read queue's batches).
    pub async fn audit_many(&self, records: &[Record]) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        for record in records {
            append_in(&mut tx, record).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Newest first.
    /// Entries matching `q`, newest first; with a `scope`, only those it allows.
    pub async fn audit_search(
        &self,
        q: &AuditQuery,
        scope: Option<&AuditScope>,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut sql = sqlx::QueryBuilder::new(format!("SELECT {COLUMNS} FROM audit WHERE 1 = 1"));
        if let Some(scope) = scope {
            let targets = serde_json::to_string(&scope.targets).unwrap_or_else(|_| "[]".into());
            sql.push(" AND (actor = ")
                .push_bind(&scope.actor)
                .push(" OR target IN (SELECT value FROM json_each(")
                .push_bind(targets)
                .push(")))");
        }
        if let Some(actor) = &q.actor {
            sql.push(" AND actor = ").push_bind(actor);
        }
        match &q.action {
            Some(prefix) if prefix.ends_with('.') => {
                sql.push(" AND substr(action, 1, ")
                    .push_bind(prefix.len() as i64)
                    .push(") = ")
                    .push_bind(prefix);
            }
            Some(action) => {
                sql.push(" AND action = ").push_bind(action);
            }
            None => {}
        }
        if let Some(target) = &q.target {
            sql.push(" AND target = ").push_bind(target);
        }
        if let Some(outcome) = &q.outcome {
            sql.push(" AND outcome = ").push_bind(outcome);
        }
        if let Some(before) = q.before {
            sql.push(" AND id < ").push_bind(before);
        }
        let limit = q.limit.unwrap_or(100).clamp(1, 1000);
        sql.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows: Vec<Row> = sql.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(entry).collect())
    }

    /// The newest entry's id and hash ([`Head::empty`] for an empty trail).
    pub async fn audit_head(&self) -> Result<Head, StoreError> {
        head(&mut *self.pool.acquire().await?).await
    }

    /// The hash of entry `id`, if there is one.
    pub async fn audit_hash_at(&self, id: i64) -> Result<Option<String>, StoreError> {
        hash_at(&mut *self.pool.acquire().await?, id).await
    }

    /// Reads the whole trail in order and checks the chain (and that it
    /// holds `expect`, when given): the number of entries and the head (last
    /// id and hash), or the first broken entry.
    pub async fn audit_verify(
        &self,
        expect: Option<Expected>,
    ) -> Result<Result<(u64, Option<(i64, String)>), Broken>, StoreError> {
        let mut rows = sqlx::query_as::<_, Row>(
            "SELECT id, ts, actor, actor_kind, address, user_agent, action, target, outcome, detail, prev_hash, hash
             FROM audit ORDER BY id",
        )
        .fetch(&self.pool);
        let mut verifier = expect.map(Verifier::expecting).unwrap_or_default();
        while let Some(row) = rows.try_next().await? {
            if let Err(broken) = verifier.check(&entry(row)) {
                return Ok(Err(broken));
            }
        }
        Ok(verifier.finish())
    }
}
