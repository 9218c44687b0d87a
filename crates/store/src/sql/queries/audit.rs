//! `audit`: the queries (compiled once per backend, see `store/sql.rs`).

use super::*;
use crate::audit::anchor::judge;
use crate::audit::head::Head;
use crate::audit::*;
use crate::audit::{Broken, Entry, Expected, Record, Verifier, entry_hash};
use crate::*;
use futures_util::TryStreamExt;

/// Appends `record` in `tx`; once `tx` commits, the new entry is the
/// recorded head (if the chain still holds the one recorded before).
pub(crate) async fn append_in(tx: &mut WriteTx, record: &Record) -> Result<Entry, StoreError> {
    let last = head(tx).await?;
    let anchored = holds_recorded_head(tx, &last).await?;
    let conn: &mut Conn = tx;
    let (id, prev_hash) = (last.id + 1, last.hash);
    let ts = now_ms();
    let hash = entry_hash(&prev_hash, id, ts, record);
    query(
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

async fn head(conn: &mut Conn) -> Result<Head, StoreError> {
    let last: Option<(i64, String)> =
        query_as("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")
            .fetch_optional(conn)
            .await?;
    Ok(last.map_or_else(Head::empty, |(id, hash)| Head { id, hash }))
}

async fn hash_at(conn: &mut Conn, id: i64) -> Result<Option<String>, StoreError> {
    let row: Option<(String,)> = query_as("SELECT hash FROM audit WHERE id = ?")
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

impl Sql<Db> {
    /// Inserts a row (`insert` returns its id) and audits `record`, aimed
    /// at `KIND:ID`, in one write transaction: both land, or neither.
    pub(crate) async fn insert_audited(
        &self,
        insert: sqlx::query::QueryScalar<'_, Db, i64, Arguments>,
        record: Record,
        kind: &str,
    ) -> Result<i64, StoreError> {
        let mut tx = self.write_tx().await?;
        let id = insert.fetch_one(&mut *tx).await?;
        append_in(&mut tx, &record.target(&format!("{kind}:{id}"))).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Changes or deletes row `id` (`change`) and, when it was there,
    /// audits `record`, aimed at `KIND:ID`, in the same write transaction.
    pub(crate) async fn change_audited(
        &self,
        change: sqlx::query::Query<'_, Db, Arguments>,
        record: Record,
        kind: &str,
        id: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let found = change.execute(&mut *tx).await?.rows_affected() == 1;
        if found {
            append_in(&mut tx, &record.target(&format!("{kind}:{id}"))).await?;
        }
        tx.commit().await?;
        Ok(found)
    }
}

#[async_trait::async_trait]
impl crate::AuditStore for Sql<Db> {
    async fn audit(&self, record: Record) -> Result<Entry, StoreError> {
        let mut tx = self.write_tx().await?;
        let entry = append_in(&mut tx, &record).await?;
        tx.commit().await?;
        Ok(entry)
    }

    async fn audit_many(&self, records: &[Record]) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        for record in records {
            append_in(&mut tx, record).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn audit_search(
        &self,
        q: &AuditQuery,
        scope: Option<&AuditScope>,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut sql = QueryBuilder::new(format!("SELECT {COLUMNS} FROM audit WHERE 1 = 1"));
        if let Some(scope) = scope {
            let targets = serde_json::to_string(&scope.targets).unwrap_or_else(|_| "[]".into());
            sql.push(" AND (actor = ")
                .push_bind(&scope.actor)
                .push(concat!(" OR target IN (", json_values_open!()))
                .push_bind(targets)
                .push(concat!(json_values_close!(), "))"));
        }
        if let Some(actor) = &q.actor {
            sql.push(" AND actor = ").push_bind(actor);
        }
        match &q.action {
            Some(prefix) if prefix.ends_with('.') => {
                sql.push(" AND substr(action, 1, CAST(")
                    // In characters, as `substr` counts them.
                    .push_bind(prefix.chars().count() as i64)
                    .push(" AS INTEGER)) = ")
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

    async fn audit_head(&self) -> Result<Head, StoreError> {
        head(&mut *self.pool.acquire().await?).await
    }

    async fn audit_hash_at(&self, id: i64) -> Result<Option<String>, StoreError> {
        hash_at(&mut *self.pool.acquire().await?, id).await
    }

    async fn audit_verify(
        &self,
        expect: Option<Expected>,
    ) -> Result<Result<(u64, Option<(i64, String)>), Broken>, StoreError> {
        let mut rows = query_as::<Row>(
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
