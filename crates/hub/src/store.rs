//! Persistence: SQLite (WAL) in the data dir, with embedded migrations.
//!
//! One module per kind of record; each method is one short query or
//! transaction. Times are unix milliseconds.

mod auth;
mod events;
mod history;
mod nodes;
pub mod settings;

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

pub use auth::{Principal, PrincipalKind, Role};
pub use history::{Bucket, PointWrite};
pub use nodes::{EnrollError, NodeRecord, NodeWrite};

/// The database file inside the data dir.
pub const DB_FILE: &str = "twinbay.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database")]
    Db(#[from] sqlx::Error),
    #[error("database migration")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is damaged: {0}")]
    Damaged(String),
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    path: std::path::PathBuf,
}

impl Store {
    /// Opens (creating if needed) the database in `data_dir` and migrates it.
    pub async fn open(data_dir: &Path) -> Result<Store, StoreError> {
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
        Ok(Store { pool, path })
    }

    /// Begins a transaction that will write. `IMMEDIATE` takes the write lock
    /// up front: a deferred transaction that reads first and writes later
    /// fails at once (`SQLITE_BUSY`, no busy wait) when another connection
    /// wrote in between, which WAL mode makes likely under load.
    pub(crate) async fn write_tx(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// Waits for open work to finish and closes the database cleanly.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
