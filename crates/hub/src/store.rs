//! Persistence: SQLite (WAL) in the data dir, with embedded migrations.
//!
//! One module per kind of record; each method is one short query or
//! transaction. Times are unix milliseconds.

mod agentless;
mod alerts;
mod audit;
mod auth;
mod backups;
mod commands;
mod events;
mod files;
mod history;
mod journal;
mod layout;
mod nodes;
mod rollouts;
mod schedules;
pub mod settings;
mod ssh;
mod users;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

use crate::audit::anchor::Anchor;
use crate::audit::head::Head;

pub use agentless::{CollectionRun, CommandRun, KEEP_RUNS};
pub use alerts::{
    AlertRecord, ChannelRecord, NewChannel, NewRule, NewSilence, RuleRecord, SilenceRecord,
};
pub use audit::{AuditQuery, AuditScope};
pub use auth::{ApiTokenInfo, Principal, PrincipalKind, Role};
pub use backups::BackupRecord;
pub use commands::{CommandRecord, Output};
pub use files::{FileVersion, NewFileVersion};
pub use history::{
    Bucket, Dictionary, GRACE_MS as HISTORY_GRACE_MS, SEAL_PER_TX as HISTORY_SEAL_PER_TX,
    SampleWrite,
};
pub use layout::PutLayout;
pub use nodes::{EnrollError, NodeRecord, NodeWrite};
pub use schedules::{NewRun, NewSchedule, RunRecord, ScheduleRecord, ScheduleTarget};
pub use users::{UserError, UserInfo};

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
    /// Writers take turns here, in order, before they take a connection:
    /// SQLite has one write lock, and writers waiting on it inside the
    /// database would hold every pooled connection (starving readers, such
    /// as agent handshakes) and retry with growing sleeps.
    writer: Arc<tokio::sync::Mutex<()>>,
    /// The audit head recorded outside the database (`audit/anchor.rs`).
    anchor: Arc<Anchor>,
    /// Bumped whenever a credential may have lost or changed its access
    /// (a session ended, a token revoked, a user's role, groups or password
    /// changed, a user removed): long-lived streams check theirs again.
    access: Arc<tokio::sync::watch::Sender<u64>>,
}

/// A write transaction holding the hub's turn to write (see [`Store::write_tx`]).
pub(crate) struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    _turn: tokio::sync::OwnedMutexGuard<()>,
    anchor: Arc<Anchor>,
    /// The audit head to record once this commits (set by `audit::append_in`).
    audit_head: Option<Head>,
}

impl WriteTx {
    /// Commits, then records a new audit head (still in turn, so in order).
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await?;
        if let Some(head) = &self.audit_head {
            self.anchor.record(head);
        }
        Ok(())
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
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
        let store = Store {
            pool,
            path,
            writer: Arc::new(tokio::sync::Mutex::new(())),
            anchor: Arc::new(Anchor::new(data_dir)),
            access: Arc::new(tokio::sync::watch::Sender::new(0)),
        };
        // Metric history of hubs before 0019 moves to its compact layout once.
        store.migrate_legacy_history().await?;
        Ok(store)
    }

    /// Fires (see [`Store::access`]) whenever a credential may have lost or
    /// changed its access.
    pub fn access_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.access.subscribe()
    }

    fn access_changed(&self) {
        self.access.send_modify(|generation| *generation += 1);
    }

    /// Begins a transaction that will write. `IMMEDIATE` takes the write lock
    /// up front: a deferred transaction that reads first and writes later
    /// fails at once (`SQLITE_BUSY`, no busy wait) when another connection
    /// wrote in between, which WAL mode makes likely under load.
    pub(crate) async fn write_tx(&self) -> Result<WriteTx, sqlx::Error> {
        let turn = self.writer.clone().lock_owned().await;
        Ok(WriteTx {
            tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
            _turn: turn,
            anchor: self.anchor.clone(),
            audit_head: None,
        })
    }

    /// The audit head recorded outside the database, and whether the trail
    /// was found cut.
    pub fn anchor(&self) -> &Anchor {
        &self.anchor
    }

    /// Waits for the hub's turn to write, for a statement that writes
    /// outside [`Store::write_tx`].
    pub(crate) async fn write_turn(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.writer.clone().lock_owned().await
    }

    /// Waits for open work to finish and closes the database cleanly.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

/// A duration in milliseconds, saturating at `i64::MAX` (a duration from
/// input can be longer than any timestamp; a cast would wrap negative).
pub fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `now + ttl` in milliseconds, saturating: a huge ttl means "never", not
/// a time in the past.
pub fn deadline_ms(now: i64, ttl: std::time::Duration) -> i64 {
    now.saturating_add(millis(ttl))
}

#[cfg(test)]
mod tests;
