//! Persistence: one storage interface ([`Backend`], a trait per kind of
//! record) over SQLite (WAL) in the data dir or PostgreSQL shared by hub
//! replicas, each with its embedded migrations.
//!
//! One module per kind of record; each method is one short query or
//! transaction. Times are unix milliseconds.

pub mod agentless;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod backups;
pub mod commands;
pub mod credentials;
pub mod events;
pub mod files;
pub mod fsutil;
pub mod history;
pub mod journal;
pub mod layout;
pub mod nodes;
pub mod rollouts;
pub mod schedules;
pub mod settings;
pub mod ssh;
pub mod timeline;
pub mod users;

pub mod sql;

use std::path::Path;
use std::sync::Arc;

use crate::audit::anchor::Anchor;

pub use agentless::{AgentlessStore, CollectionRun, CommandRun, KEEP_RUNS};
pub use alerts::{
    AlertRecord, AlertStore, ChannelRecord, NewChannel, NewRule, NewSilence, RuleRecord,
    SilenceRecord,
};
pub use audit::{AuditQuery, AuditScope, AuditStore};
pub use auth::{ApiTokenInfo, AuthStore, Principal, PrincipalKind, Role};
pub use backups::{BackupRecord, BackupStore};
pub use commands::{CommandRecord, CommandStore, Output};
pub use events::EventStore;
pub use files::{FileStore, FileVersion, NewFileVersion};
pub use history::maintain::HistoryMaintenance;
pub use history::{
    Bucket, Dictionary, GRACE_MS as HISTORY_GRACE_MS, HistoryStore,
    SEAL_PER_TX as HISTORY_SEAL_PER_TX, SampleWrite,
};
pub use journal::JournalStore;
pub use layout::{LayoutStore, PutLayout};
pub use nodes::{EnrollError, NodeRecord, NodeStore, NodeWrite};
pub use rollouts::RolloutStore;
pub use schedules::{
    NewRun, NewSchedule, RunRecord, ScheduleRecord, ScheduleStore, ScheduleTarget,
};
pub use settings::SettingStore;
pub use ssh::SshStore;
pub use users::{UserError, UserInfo, UserStore};

pub use sql::sqlite::DB_FILE;

/// Where the store of a data dir lives when it is not the embedded SQLite
/// file: the PostgreSQL URL the hub was started with (`--store`), so that
/// `twinbay ctl --data-dir DIR` opens the same store as the hub.
pub const STORE_URL_FILE: &str = "store.url";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database")]
    Db(#[from] sqlx::Error),
    #[error("database migration")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is damaged: {0}")]
    Damaged(String),
    #[error("store: {0}")]
    Config(String),
}

/// What every backend does beside its records.
#[async_trait::async_trait]
pub trait Core: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Fires whenever a credential may have lost or changed its access.
    fn access_changes(&self) -> tokio::sync::watch::Receiver<u64>;

    /// The audit head recorded outside the database, and whether the trail
    /// was found cut.
    fn anchor(&self) -> &Anchor;

    /// Waits for open work to finish and closes the database cleanly.
    async fn close(&self);
}

/// The whole storage interface: one trait per kind of record, implemented
/// by [`sql::Sql`] for SQLite and for PostgreSQL.
macro_rules! backend {
    ($($kind:path),+ $(,)?) => {
        pub trait Backend: $($kind +)+ {}
        impl<T> Backend for T where T: $($kind +)+ {}
    };
}
backend!(
    Core,
    AgentlessStore,
    AlertStore,
    AuditStore,
    AuthStore,
    BackupStore,
    CommandStore,
    EventStore,
    FileStore,
    HistoryStore,
    HistoryMaintenance,
    JournalStore,
    LayoutStore,
    NodeStore,
    RolloutStore,
    ScheduleStore,
    SettingStore,
    SshStore,
    UserStore,
);

macro_rules! core_for {
    ($db:ty, $name:literal) => {
        #[async_trait::async_trait]
        impl Core for sql::Sql<$db> {
            fn backend(&self) -> &'static str {
                $name
            }
            fn access_changes(&self) -> tokio::sync::watch::Receiver<u64> {
                self.access.subscribe()
            }
            fn anchor(&self) -> &Anchor {
                &self.anchor
            }
            async fn close(&self) {
                self.pool.close().await;
            }
        }
    };
}
core_for!(sqlx::Sqlite, "sqlite");
core_for!(sqlx::Postgres, "postgres");

/// The hub's store: SQLite in the data dir, or PostgreSQL shared by replicas.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    /// The same store, typed, for tests of SQLite's own details.
    #[cfg(any(test, feature = "testing"))]
    sqlite: Option<Arc<sql::Sql<sqlx::Sqlite>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.backend.backend())
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Backend;
    fn deref(&self) -> &Self::Target {
        &*self.backend
    }
}

impl Store {
    /// Opens the store of `data_dir`: the PostgreSQL database it was last
    /// started with ([`STORE_URL_FILE`]), or else the embedded SQLite file
    /// (created and migrated if needed).
    pub async fn open(data_dir: &Path) -> Result<Store, StoreError> {
        match std::fs::read_to_string(data_dir.join(STORE_URL_FILE)) {
            Ok(url) => Store::connect(url.trim(), data_dir).await,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Store::sqlite(data_dir).await,
            Err(e) => Err(StoreError::Config(format!("{STORE_URL_FILE}: {e}"))),
        }
    }

    /// Opens the embedded SQLite store in `data_dir`.
    pub async fn sqlite(data_dir: &Path) -> Result<Store, StoreError> {
        let store = Arc::new(sql::sqlite::open(data_dir).await?);
        Ok(Store {
            #[cfg(any(test, feature = "testing"))]
            sqlite: Some(store.clone()),
            backend: store,
        })
    }

    /// Opens the store at `url`: `postgres://…` (PostgreSQL, migrated if
    /// needed), or `sqlite` for the embedded one in `data_dir`.
    pub async fn connect(url: &str, data_dir: &Path) -> Result<Store, StoreError> {
        if url == "sqlite" {
            return Store::sqlite(data_dir).await;
        }
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::Config(format!(
                "unsupported store {:?}: use postgres://USER@HOST:PORT/DATABASE or sqlite",
                redact_url(url)
            )));
        }
        let store = sql::postgres::open(url, data_dir).await?;
        Ok(Store {
            #[cfg(any(test, feature = "testing"))]
            sqlite: None,
            backend: Arc::new(store),
        })
    }

    /// The SQLite pool, for tests that look at the tables themselves.
    #[cfg(any(test, feature = "testing"))]
    pub fn history_pool(&self) -> &sqlx::SqlitePool {
        self.sqlite.as_ref().expect("an SQLite store").pool()
    }

    /// Moves pre-0019 metric history (SQLite only; runs at open).
    #[cfg(any(test, feature = "testing"))]
    pub async fn migrate_legacy_history(&self) -> Result<usize, StoreError> {
        let sqlite = self.sqlite.as_ref().expect("an SQLite store");
        sqlite.migrate_legacy_history().await
    }
}

/// Opens the store at `url` (see [`Store::connect`]) and has `data_dir`
/// remember it: `postgres://…` in [`STORE_URL_FILE`] (owner-only, as the URL
/// may hold a password), `sqlite` by removing that file.
pub async fn remember_and_connect(url: &str, data_dir: &Path) -> Result<Store, StoreError> {
    let store = Store::connect(url, data_dir).await?;
    let file = data_dir.join(STORE_URL_FILE);
    if url == "sqlite" {
        match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(StoreError::Config(format!("{}: {e}", file.display())));
            }
            _ => {}
        }
    } else {
        fsutil::write_private(&file, url.as_bytes())
            .map_err(|e| StoreError::Config(format!("{}: {e}", file.display())))?;
    }
    Ok(store)
}

/// `url` without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}@{}", &url[..scheme + 3], user, &url[at + 1..])
        }
        _ => url.to_string(),
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

/// Text an agent sent, as stored: a NUL (which PostgreSQL's `text` refuses,
/// failing the whole transaction) becomes U+FFFD, on every backend alike.
pub(crate) fn agent_text(text: &str) -> std::borrow::Cow<'_, str> {
    match text.contains('\0') {
        true => text.replace('\0', "\u{fffd}").into(),
        false => text.into(),
    }
}

#[cfg(test)]
pub(crate) mod suite;
#[cfg(test)]
mod tests;
