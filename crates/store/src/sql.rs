//! The SQL backends: one set of queries (`sql/queries/`), compiled once for
//! SQLite (`sql/sqlite.rs`) and once for PostgreSQL (`sql/postgres.rs`).
//!
//! Each backend module names its database as `Db` and includes the query
//! files with `#[path]`, so the queries are written once and type-checked
//! against both drivers, with no runtime `Any` layer. The queries use the
//! SQL both dialects share; `?` placeholders are renumbered for PostgreSQL
//! (`postgres::query`), and what has no common form (`PRAGMA`, vacuuming,
//! the audit lock) is a small function of each backend.

// Loading each query file twice, once per backend, is the point.
#[allow(clippy::duplicate_mod)]
pub mod postgres;
#[allow(clippy::duplicate_mod)]
pub mod sqlite;

use std::path::PathBuf;
use std::sync::Arc;

use sqlx::{Database, Pool};

use crate::audit::anchor::Anchor;
use crate::audit::head::Head;

/// A store on one SQL database.
pub struct Sql<DB: Database> {
    pub(crate) pool: Pool<DB>,
    /// The database file (SQLite only): its size is the store's disk use.
    pub(crate) path: Option<PathBuf>,
    /// Writers take turns here, in order, before they take a connection:
    /// SQLite has one write lock, and writers waiting on it inside the
    /// database would hold every pooled connection (starving readers, such
    /// as agent handshakes) and retry with growing sleeps. On PostgreSQL it
    /// keeps one replica's writers from queueing inside the server.
    pub(crate) writer: Arc<tokio::sync::Mutex<()>>,
    /// The audit head recorded outside the database (`audit/anchor.rs`).
    pub(crate) anchor: Arc<Anchor>,
    /// Bumped whenever a credential may have lost or changed its access
    /// (a session ended, a token revoked, a user's role, groups or password
    /// changed, a user removed): long-lived streams check theirs again.
    pub(crate) access: Arc<tokio::sync::watch::Sender<u64>>,
}

impl<DB: Database> Sql<DB> {
    pub(crate) fn new(pool: Pool<DB>, path: Option<PathBuf>, anchor: Anchor) -> Self {
        Sql {
            pool,
            path,
            writer: Arc::new(tokio::sync::Mutex::new(())),
            anchor: Arc::new(anchor),
            access: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }

    pub(crate) fn access_changed(&self) {
        self.access.send_modify(|generation| *generation += 1);
    }

    /// Waits for this hub's turn to write, for a statement that writes
    /// outside a write transaction.
    pub(crate) async fn write_turn(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.writer.clone().lock_owned().await
    }
}

/// A write transaction holding the hub's turn to write (see each backend's
/// `write_tx`).
pub(crate) struct WriteTx<DB: Database> {
    pub(crate) tx: sqlx::Transaction<'static, DB>,
    pub(crate) _turn: tokio::sync::OwnedMutexGuard<()>,
    pub(crate) anchor: Arc<Anchor>,
    /// The audit head to record once this commits (set by `audit::append_in`).
    pub(crate) audit_head: Option<Head>,
}

impl<DB: Database> WriteTx<DB> {
    /// Commits, then records a new audit head (still in turn, so in order).
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await?;
        if let Some(head) = &self.audit_head {
            self.anchor.record(head);
        }
        Ok(())
    }
}

impl<DB: Database> std::ops::Deref for WriteTx<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl<DB: Database> std::ops::DerefMut for WriteTx<DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}
