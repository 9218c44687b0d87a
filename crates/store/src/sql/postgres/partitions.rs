//! Time partitions of the metric history (PostgreSQL only; the tables are
//! made in `migrations-postgres/0001_init.sql`).
//!
//! `history_rows` (by `ts`) and each tier of `history_chunks` (by `start`)
//! are range-partitioned by week, with a DEFAULT partition each so that an
//! insert never fails. Upkeep ([`history_partitions`]) makes this week's and
//! next week's partitions, and one for any week that has rows in DEFAULT,
//! moving those rows into it; retention ([`drop_history_partitions`], from
//! `delete_history_before`) drops the partitions wholly before its cut, so
//! only the partly expired week is deleted from row by row.
//!
//! Both run in a write transaction, whose advisory lock makes replicas take
//! turns; each reads the catalog again once it has the lock. Where the
//! tables are not declaratively partitioned (TimescaleDB hypertables, which
//! manage their own chunks) both do nothing.

use std::collections::BTreeSet;

use sqlx::AssertSqlSafe;

use super::{Conn, Db, Sql};
use crate::history::rollup::{self, RAW};

/// One partition per week (UTC, counted from the epoch, so weeks start on a
/// Thursday). Raw history is kept two days by default, so its tables hold
/// two or three weeks; the 1 h tier's 400 days are about 58 partitions.
/// A day would multiply the partitions (400 for the 1 h tier alone) for
/// little gain; a month would leave raw history, the bulk of the data,
/// deleted row by row almost always.
pub const PARTITION_MS: i64 = 7 * 86_400_000;

/// A range-partitioned history table.
struct Table {
    name: &'static str,
    column: &'static str,
    level: u32,
    /// Chunks: a row covers a window from its time (retention takes it once
    /// the whole window is before the cut); rows: a row is one time.
    windows: bool,
}

const TABLES: [Table; 5] = [
    Table {
        name: "history_rows",
        column: "ts",
        level: RAW,
        windows: false,
    },
    Table {
        name: "history_chunks_0",
        column: "start",
        level: RAW,
        windows: true,
    },
    Table {
        name: "history_chunks_60",
        column: "start",
        level: 60,
        windows: true,
    },
    Table {
        name: "history_chunks_900",
        column: "start",
        level: 900,
        windows: true,
    },
    Table {
        name: "history_chunks_3600",
        column: "start",
        level: 3600,
        windows: true,
    },
];

/// Weeks found in a DEFAULT partition given a partition of their own per
/// run, at most (a clock far off can scatter samples over many).
const MOVE_WEEKS: i64 = 64;
/// Times outside this (± ~285,000 years) stay in DEFAULT.
const SANE_MS: i64 = 1 << 53;

/// How long a partition change waits for a table lock (readers hold one
/// for their transaction) before giving up until the next run, rather than
/// queueing every reader behind it.
const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '5s'";

/// One partition and its range `[from, to)`.
#[derive(Debug)]
struct Partition {
    name: String,
    from: i64,
    to: i64,
}

/// Makes the partitions of `now`'s week and the next, and of each week that
/// has rows in a DEFAULT partition (moving them in). Returns how many it made.
pub(crate) async fn history_partitions(store: &Sql<Db>, now: i64) -> Result<usize, sqlx::Error> {
    let mut tx = store.write_tx().await?;
    sqlx::query(LOCK_TIMEOUT).execute(&mut *tx).await?;
    let mut made = 0;
    let week = rollup::floor(now, PARTITION_MS);
    for table in &TABLES {
        let Some(existing) = partitions(&mut tx, table.name).await? else {
            continue;
        };
        let mut weeks = BTreeSet::from([week, week.saturating_add(PARTITION_MS)]);
        let stray: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT DISTINCT {c} - mod(mod({c}, {PARTITION_MS}) + {PARTITION_MS}, {PARTITION_MS})
             FROM \"{t}_default\" WHERE {c} BETWEEN {lo} AND {SANE_MS} LIMIT {MOVE_WEEKS}",
            c = table.column,
            t = table.name,
            lo = -SANE_MS,
        )))
        .fetch_all(&mut *tx)
        .await?;
        weeks.extend(stray);
        for from in weeks {
            let to = from.saturating_add(PARTITION_MS);
            if existing.iter().any(|p| p.from < to && from < p.to) {
                continue;
            }
            let Some(name) = partition_name(table.name, from) else {
                continue;
            };
            create(&mut tx, table, &name, from, to).await?;
            made += 1;
        }
    }
    tx.commit().await?;
    Ok(made)
}

/// Makes the partition `[from, to)` of `table`. PostgreSQL refuses to add a
/// partition whose range has rows in DEFAULT: those are moved into a table
/// of its own first, which is then attached, all in the caller's transaction.
async fn create(
    conn: &mut Conn,
    table: &Table,
    name: &str,
    from: i64,
    to: i64,
) -> Result<(), sqlx::Error> {
    let (t, c) = (table.name, table.column);
    let in_range = format!("{c} >= {from} AND {c} < {to}");
    let stray: bool = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT EXISTS (SELECT 1 FROM \"{t}_default\" WHERE {in_range})"
    )))
    .fetch_one(&mut *conn)
    .await?;
    let statements = if stray {
        format!(
            "CREATE TABLE \"{name}\" (LIKE {t} INCLUDING DEFAULTS);
             WITH moved AS (DELETE FROM \"{t}_default\" WHERE {in_range} RETURNING *)
             INSERT INTO \"{name}\" SELECT * FROM moved;
             ALTER TABLE {t} ATTACH PARTITION \"{name}\" FOR VALUES FROM ({from}) TO ({to});"
        )
    } else {
        format!(
            "CREATE TABLE IF NOT EXISTS \"{name}\" PARTITION OF {t}
             FOR VALUES FROM ({from}) TO ({to})"
        )
    };
    sqlx::raw_sql(AssertSqlSafe(statements))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Drops the partitions of `level` that `delete_history_before(level,
/// before)` would empty: rows wholly before `before`, chunks whose windows
/// all end by then. Returns the rows they held.
pub(crate) async fn drop_history_partitions(
    store: &Sql<Db>,
    level: u32,
    before: i64,
) -> Result<u64, sqlx::Error> {
    let mut tx = store.write_tx().await?;
    sqlx::query(LOCK_TIMEOUT).execute(&mut *tx).await?;
    let mut dropped = 0u64;
    for table in TABLES.iter().filter(|t| t.level == level) {
        // A chunk goes when start <= before - window, i.e. start < cut.
        let cut = match table.windows {
            true => before
                .saturating_sub(rollup::window_ms(level))
                .saturating_add(1),
            false => before,
        };
        let Some(existing) = partitions(&mut tx, table.name).await? else {
            continue;
        };
        for p in existing.into_iter().filter(|p| p.to <= cut) {
            let rows: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM \"{}\"",
                p.name
            )))
            .fetch_one(&mut *tx)
            .await?;
            sqlx::raw_sql(AssertSqlSafe(format!(
                "ALTER TABLE {t} DETACH PARTITION \"{p}\"; DROP TABLE \"{p}\";",
                t = table.name,
                p = p.name,
            )))
            .execute(&mut *tx)
            .await?;
            dropped += u64::try_from(rows).unwrap_or(0);
        }
    }
    tx.commit().await?;
    Ok(dropped)
}

/// The range partitions of `table`, or `None` when it is not declaratively
/// partitioned (a TimescaleDB hypertable).
async fn partitions(conn: &mut Conn, table: &str) -> Result<Option<Vec<Partition>>, sqlx::Error> {
    let partitioned: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass($1))",
    )
    .bind(table)
    .fetch_one(&mut *conn)
    .await?;
    if !partitioned {
        return Ok(None);
    }
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid)
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = to_regclass($1)",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Some(
        rows.into_iter()
            .filter_map(|(name, bound)| {
                let (from, to) = range_bound(&bound)?;
                Some(Partition { name, from, to })
            })
            .collect(),
    ))
}

/// `[from, to)` of `FOR VALUES FROM ('a') TO ('b')`; `None` for DEFAULT
/// (or a bound with MINVALUE / MAXVALUE, which the hub never makes).
fn range_bound(expr: &str) -> Option<(i64, i64)> {
    let rest = expr.strip_prefix("FOR VALUES FROM ('")?;
    let (from, rest) = rest.split_once("') TO ('")?;
    let to = rest.strip_suffix("')")?;
    Some((from.parse().ok()?, to.parse().ok()?))
}

/// `history_rows_20250102`: the table and the UTC day its week starts.
pub(crate) fn partition_name(table: &str, from: i64) -> Option<String> {
    let day = chrono::DateTime::from_timestamp_millis(from)?;
    Some(format!("{table}_{}", day.format("%Y%m%d")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_bounds_parse_and_default_has_none() {
        assert_eq!(
            range_bound("FOR VALUES FROM ('-604800000') TO ('1700000000000')"),
            Some((-604_800_000, 1_700_000_000_000))
        );
        assert_eq!(range_bound("DEFAULT"), None);
        assert_eq!(range_bound("FOR VALUES FROM (MINVALUE) TO ('5')"), None);
    }

    #[test]
    fn partitions_are_named_by_the_day_their_week_starts() {
        assert_eq!(
            partition_name("history_rows", 0).as_deref(),
            Some("history_rows_19700101")
        );
        assert_eq!(
            partition_name("history_rows", 2 * PARTITION_MS).as_deref(),
            Some("history_rows_19700115")
        );
    }
}
