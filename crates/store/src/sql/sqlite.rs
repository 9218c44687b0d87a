//! The embedded backend: SQLite (WAL) in the data dir.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

pub(crate) use super::Sql;
pub(crate) use crate::{StoreError, now_ms};

pub(crate) type Db = sqlx::Sqlite;
pub(crate) type Conn = sqlx::SqliteConnection;
pub(crate) type WriteTx = super::WriteTx<Db>;
pub(crate) type QueryBuilder = sqlx::QueryBuilder<Db>;
type Arguments = <Db as sqlx::Database>::Arguments;

/// A JSON array bound as text, as rows of one column `value`: the
/// opening and closing text around its placeholder.
macro_rules! json_values_open {
    () => {
        "SELECT value FROM json_each("
    };
}
macro_rules! json_values_close {
    () => {
        ")"
    };
}
/// A file version whose assessment lists drift.
macro_rules! drift_listed {
    () => {
        "json_array_length(assessment, '$.drift') > 0"
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
#[path = "queries/history/legacy.rs"]
mod history_legacy;
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

/// The database file inside the data dir.
pub const DB_FILE: &str = "twinbay.db";

/// Opens (creating if needed) the database in `data_dir` and migrates it.
pub(crate) async fn open(data_dir: &Path) -> Result<Sql<Db>, StoreError> {
    let path = data_dir.join(DB_FILE);
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // WAL + NORMAL is durable across application crashes; only a power
        // loss can drop the last transactions.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        // Takes effect only when the file is created (before the first
        // table): lets retention hand freed pages back to the disk.
        .auto_vacuum(SqliteAutoVacuum::Incremental)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    let store = Sql::new(
        pool,
        Some(path),
        crate::audit::anchor::Anchor::new(data_dir),
    );
    // Metric history of hubs before 0019 moves to its compact layout once.
    store.migrate_legacy_history().await?;
    Ok(store)
}

impl Sql<Db> {
    /// Begins a transaction that will write. `IMMEDIATE` takes the write lock
    /// up front: a deferred transaction that reads first and writes later
    /// fails at once (`SQLITE_BUSY`, no busy wait) when another connection
    /// wrote in between, which WAL mode makes likely under load.
    pub(crate) async fn write_tx(&self) -> Result<WriteTx, sqlx::Error> {
        let turn = self.writer.clone().lock_owned().await;
        Ok(super::WriteTx {
            tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
            _turn: turn,
            anchor: self.anchor.clone(),
            audit_head: None,
        })
    }

    /// The pool, for tests that look at the tables themselves.
    #[cfg(any(test, feature = "testing"))]
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

pub(crate) fn query<'a>(sql: &'static str) -> sqlx::query::Query<'a, Db, Arguments> {
    sqlx::query(sql)
}

pub(crate) fn query_as<'a, O>(sql: &'static str) -> sqlx::query::QueryAs<'a, Db, O, Arguments>
where
    O: for<'r> sqlx::FromRow<'r, <Db as sqlx::Database>::Row>,
{
    sqlx::query_as(sql)
}

pub(crate) fn query_scalar<'a, O>(
    sql: &'static str,
) -> sqlx::query::QueryScalar<'a, Db, O, Arguments>
where
    (O,): for<'r> sqlx::FromRow<'r, <Db as sqlx::Database>::Row>,
{
    sqlx::query_scalar(sql)
}

/// Overwrites deleted content with zeros from now on (secrets being sealed).
pub(crate) async fn secure_delete(conn: &mut Conn) -> Result<(), sqlx::Error> {
    sqlx::query("PRAGMA secure_delete = ON")
        .execute(conn)
        .await?;
    Ok(())
}

/// Moves the write-ahead log into the file and truncates it (so plain
/// text once in it is gone).
pub(crate) async fn checkpoint(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(pool)
        .await?;
    Ok(())
}

/// Hands freed pages back to the file system and truncates the WAL.
pub(crate) async fn vacuum(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    sqlx::query("PRAGMA incremental_vacuum")
        .execute(pool)
        .await?;
    checkpoint(pool).await
}

/// History is not partitioned on SQLite: nothing to make.
pub(crate) async fn history_partitions(_store: &Sql<Db>, _now: i64) -> Result<usize, sqlx::Error> {
    Ok(0)
}

/// History is not partitioned on SQLite: retention deletes rows.
pub(crate) async fn drop_history_partitions(
    _store: &Sql<Db>,
    _level: u32,
    _before: i64,
) -> Result<u64, sqlx::Error> {
    Ok(0)
}

/// Bytes the database takes on disk: the file and its write-ahead log.
pub(crate) fn disk_bytes(store: &Sql<Db>) -> u64 {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let Some(db) = &store.path else { return 0 };
    size(db) + size(&db.with_extension("db-wal")) + size(&db.with_extension("db-shm"))
}

/// A read transaction: one snapshot for all its statements (SQLite's
/// read transactions always are).
pub(crate) async fn begin_snapshot(
    pool: &SqlitePool,
) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
    pool.begin().await
}
