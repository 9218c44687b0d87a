//! The scale-out backend: PostgreSQL, shared by hub replicas.
//!
//! The same queries as SQLite's (`sql/queries/`); `?` placeholders are
//! renumbered to `$N` once per statement and kept.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

pub(crate) use super::Sql;
pub(crate) use crate::{StoreError, now_ms};

pub(crate) type Db = sqlx::Postgres;
pub(crate) type Conn = sqlx::PgConnection;
pub(crate) type WriteTx = super::WriteTx<Db>;
pub(crate) type QueryBuilder = sqlx::QueryBuilder<Db>;
type Arguments = <Db as sqlx::Database>::Arguments;

/// A JSON array bound as text, as rows of one column `value`: the
/// opening and closing text around its placeholder.
macro_rules! json_values_open {
    () => {
        "SELECT value FROM json_array_elements_text(CAST("
    };
}
macro_rules! json_values_close {
    () => {
        " AS json))"
    };
}
/// A file version whose assessment lists drift (`jsonb_array_length`
/// raises on anything but an array, where SQLite's answers 0).
macro_rules! drift_listed {
    () => {
        "CASE WHEN jsonb_typeof(CAST(assessment AS jsonb) -> 'drift') = 'array'
              THEN jsonb_array_length(CAST(assessment AS jsonb) -> 'drift') ELSE 0 END > 0"
    };
}

#[path = "queries/agentless.rs"]
mod agentless;
#[path = "queries/alerts.rs"]
mod alerts;
#[path = "queries/audit.rs"]
pub(crate) mod audit;
#[path = "queries/auth.rs"]
mod auth;
#[path = "queries/backups.rs"]
mod backups;
#[path = "queries/commands.rs"]
mod commands;
#[path = "queries/events.rs"]
mod events;
#[path = "queries/files.rs"]
mod files;
#[path = "queries/history.rs"]
mod history;
#[path = "queries/history/maintain.rs"]
mod history_maintain;
#[path = "queries/journal.rs"]
mod journal;
#[path = "queries/layout.rs"]
mod layout;
#[path = "queries/nodes.rs"]
mod nodes;
#[path = "queries/rollouts.rs"]
mod rollouts;
#[path = "queries/schedules.rs"]
mod schedules;
#[path = "queries/settings.rs"]
mod settings;
#[path = "queries/ssh.rs"]
mod ssh;
#[path = "queries/users.rs"]
mod users;

pub(crate) mod partitions;
pub(crate) use partitions::{drop_history_partitions, history_partitions};

/// Connects to the database at `url` and migrates it. Replicas share it:
/// migrations take PostgreSQL's advisory lock, so they run once.
pub(crate) async fn open(url: &str, data_dir: &std::path::Path) -> Result<Sql<Db>, StoreError> {
    let options: PgConnectOptions = url.parse()?;
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect_with(options)
        .await?;
    sqlx::migrate!("./migrations-postgres").run(&pool).await?;
    let store = Sql::new(pool, None, crate::audit::anchor::Anchor::new(data_dir));
    // This week's and next week's history partitions (history maintenance
    // keeps them coming); until they exist, samples go to DEFAULT.
    if let Err(e) = history_partitions(&store, now_ms()).await {
        tracing::warn!(error = %e, "making history partitions failed");
    }
    Ok(store)
}

impl Sql<Db> {
    /// Begins a transaction that will write (in this hub's turn). Write
    /// transactions take one advisory lock, so they run one at a time across
    /// every replica, as on SQLite: the read-then-write steps (the audit
    /// chain's head, the layout's version, a node's series dictionary) stay
    /// correct without each knowing about the others.
    pub(crate) async fn write_tx(&self) -> Result<WriteTx, sqlx::Error> {
        let turn = self.writer.clone().lock_owned().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(7239)")
            .execute(&mut *tx)
            .await?;
        Ok(super::WriteTx {
            tx,
            _turn: turn,
            anchor: self.anchor.clone(),
            audit_head: None,
        })
    }
}

/// `sql` with its `?` and `?N` placeholders written as PostgreSQL's `$N`.
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut next = 0;
    let mut chars = sql.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                out.push('$');
                if digits.is_empty() {
                    next += 1;
                    out.push_str(&next.to_string());
                } else {
                    out.push_str(&digits);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Each statement renumbered once: the statements are the program's own
/// constants, so the map stays as small as the set of queries.
fn statement(sql: &'static str) -> &'static str {
    static SEEN: LazyLock<Mutex<HashMap<&'static str, &'static str>>> =
        LazyLock::new(Default::default);
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    seen.entry(sql)
        .or_insert_with(|| Box::leak(numbered(sql).into_boxed_str()))
}

pub(crate) fn query<'a>(sql: &'static str) -> sqlx::query::Query<'a, Db, Arguments> {
    sqlx::query(statement(sql))
}

pub(crate) fn query_as<'a, O>(sql: &'static str) -> sqlx::query::QueryAs<'a, Db, O, Arguments>
where
    O: for<'r> sqlx::FromRow<'r, <Db as sqlx::Database>::Row>,
{
    sqlx::query_as(statement(sql))
}

pub(crate) fn query_scalar<'a, O>(
    sql: &'static str,
) -> sqlx::query::QueryScalar<'a, Db, O, Arguments>
where
    (O,): for<'r> sqlx::FromRow<'r, <Db as sqlx::Database>::Row>,
{
    sqlx::query_scalar(statement(sql))
}

/// A read transaction: one snapshot for all its statements (PostgreSQL's
/// default, READ COMMITTED, takes one per statement).
pub(crate) async fn begin_snapshot(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
    pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
}

/// PostgreSQL rewrites rows elsewhere; nothing to switch on.
pub(crate) async fn secure_delete(_conn: &mut Conn) -> Result<(), sqlx::Error> {
    Ok(())
}

/// No write-ahead log of ours to truncate: the server manages its WAL.
pub(crate) async fn checkpoint(_pool: &PgPool) -> Result<(), sqlx::Error> {
    Ok(())
}

/// Autovacuum hands freed space back; nothing to do by hand.
pub(crate) async fn vacuum(_pool: &PgPool) -> Result<(), sqlx::Error> {
    Ok(())
}

/// The database's size is the server's to report (see `history_usage`).
pub(crate) fn disk_bytes(_store: &Sql<Db>) -> u64 {
    0
}

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn placeholders_are_numbered_in_order_and_kept_when_numbered() {
        assert_eq!(numbered("a = ? AND b = ?"), "a = $1 AND b = $2");
        assert_eq!(numbered("?1 IS NULL OR n = ?1"), "$1 IS NULL OR n = $1");
        assert_eq!(numbered("x = '?' AND y = ?"), "x = '?' AND y = $1");
    }
}
