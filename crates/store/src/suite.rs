//! The shared store test suite: every test function runs against SQLite and
//! against PostgreSQL, so a behaviour cannot differ by backend (Quickwit's
//! `metastore_test_suite!` is the model).
//!
//! A test is an `async fn name(f: &Fixture)`; list it in
//! `store_test_suite!` and it becomes `…::sqlite::name` and
//! `…::postgres::name`. Each PostgreSQL test gets a database of its own on
//! the server at `TWINBAY_TEST_POSTGRES` (default: the local one), dropped
//! when the fixture goes, even after a failed assertion.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::Connection;

use super::Store;

#[cfg(test)]
mod agentless;
#[cfg(test)]
mod alerts;
#[cfg(test)]
mod audit;
#[cfg(test)]
mod auth;
#[cfg(test)]
mod backups;
#[cfg(test)]
mod collation;
#[cfg(test)]
mod commands;
#[cfg(test)]
mod events;
#[cfg(test)]
mod files;
#[cfg(test)]
mod history;
#[cfg(test)]
mod journal;
#[cfg(test)]
mod layout;
#[cfg(test)]
mod nodes;
#[cfg(test)]
mod rollouts;
#[cfg(test)]
mod schedules;
#[cfg(test)]
mod settings;
#[cfg(test)]
mod ssh;
#[cfg(test)]
mod users;

/// The server that PostgreSQL tests create their databases on.
pub(crate) fn admin_url() -> String {
    std::env::var("TWINBAY_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// One test's store, and where it lives.
pub(crate) struct Fixture {
    pub store: Store,
    /// The data dir (the SQLite file, or the PostgreSQL URL it remembers).
    pub dir: PathBuf,
    /// The test's own PostgreSQL database, if on PostgreSQL.
    database: Option<String>,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn fresh_dir(backend: &str, name: &str) -> PathBuf {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "twinbay-suite-{backend}-{name}-{}-{n}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
    let cut = base
        .rfind('/')
        .filter(|&i| i > "postgres://".len())
        .unwrap_or(base.len());
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{}/{database}{query}", &base[..cut])
}

impl Fixture {
    pub async fn sqlite(name: &str) -> Fixture {
        let dir = fresh_dir("sqlite", name);
        let store = Store::sqlite(&dir).await.expect("open SQLite");
        Fixture {
            store,
            dir,
            database: None,
        }
    }

    pub async fn postgres(name: &str) -> Fixture {
        // `C` sorts text by bytes, as SQLite does.
        Fixture::postgres_with(name, "LC_COLLATE 'C' LC_CTYPE 'C'").await
    }

    /// A PostgreSQL database created with `locale` (its default collation).
    pub async fn postgres_with(name: &str, locale: &str) -> Fixture {
        let dir = fresh_dir("postgres", name);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let short: String = name.chars().take(30).collect();
        let database = format!("twinbay_t_{short}_{}_{n}", std::process::id());
        let admin = admin_url();
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin}: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE \"{database}\" TEMPLATE template0 ENCODING 'UTF8' {locale}"
        )))
        .execute(&mut conn)
        .await
        .expect("create the test database");
        conn.close().await.ok();
        let url = with_database(&admin, &database);
        std::fs::write(dir.join(super::STORE_URL_FILE), &url).unwrap();
        let store = Store::open(&dir).await.expect("open PostgreSQL");
        Fixture {
            store,
            dir,
            database: Some(database),
        }
    }

    /// Runs `sql` on the database itself, beside the store (as an older
    /// hub, or a person with a SQL shell, would).
    pub async fn raw(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match &self.database {
            None => {
                sqlx::raw_sql(sql)
                    .execute(self.store.history_pool())
                    .await
                    .expect("raw SQL on SQLite");
            }
            Some(database) => {
                let url = with_database(&admin_url(), database);
                let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
                sqlx::raw_sql(sql)
                    .execute(&mut conn)
                    .await
                    .expect("raw SQL on PostgreSQL");
                conn.close().await.ok();
            }
        }
    }

    /// A connection to the test's own PostgreSQL database, to look at its
    /// catalog (PostgreSQL fixtures only).
    pub async fn pg(&self) -> sqlx::PgConnection {
        let database = self.database.as_ref().expect("a PostgreSQL fixture");
        let url = with_database(&admin_url(), database);
        sqlx::PgConnection::connect(&url).await.expect("connect")
    }

    /// The same store opened again (as a restarted hub, or another replica).
    pub async fn reopen(&self) -> Store {
        Store::open(&self.dir).await.expect("reopen")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let Some(database) = self.database.take() else {
            return;
        };
        // A runtime of its own: drop runs inside the test's runtime, which
        // cannot be blocked on.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin_url()).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await?;
                conn.close().await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
            .map_err(|e| std::io::Error::other(e.to_string()))
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop a test database: {dropped:?}");
        }
    }
}

/// A person's audit record for `action`.
pub(crate) fn rec(action: &str) -> crate::audit::Record {
    use crate::audit::{ActorKind, Outcome, Record};
    Record::new(ActorKind::User, "admin", action, Outcome::Ok)
}

/// The audit chain verifies; returns how many entries it holds.
pub(crate) async fn chain_holds(store: &Store) -> u64 {
    match store.audit_verify(None).await.expect("read the trail") {
        Ok((n, _)) => n,
        Err(broken) => panic!("the audit chain is broken: {broken}"),
    }
}

/// The audit actions recorded, oldest first.
pub(crate) async fn audit_actions(store: &Store) -> Vec<(String, String)> {
    let q = super::AuditQuery {
        limit: Some(1000),
        ..Default::default()
    };
    let mut found = store
        .audit_search(&q, None)
        .await
        .expect("search the trail");
    found.reverse();
    found.into_iter().map(|e| (e.action, e.target)).collect()
}

/// Runs each listed `async fn(&Fixture)` once per backend.
macro_rules! store_test_suite {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let f = $crate::suite::Fixture::sqlite(stringify!($test)).await;
                    super::$test(&f).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let f = $crate::suite::Fixture::postgres(stringify!($test)).await;
                    super::$test(&f).await;
                }
            )+
        }
    };
}
pub(crate) use store_test_suite;

#[test]
fn a_database_name_replaces_the_one_in_the_url() {
    assert_eq!(
        with_database("postgres://u@h:5432/postgres", "t1"),
        "postgres://u@h:5432/t1"
    );
    assert_eq!(
        with_database("postgres://u@h/postgres?sslmode=disable", "t1"),
        "postgres://u@h/t1?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h", "t1"), "postgres://u@h/t1");
}
