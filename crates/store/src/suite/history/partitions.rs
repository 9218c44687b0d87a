//! PostgreSQL only: the history tables' weekly partitions
//! (`sql/postgres/partitions.rs`). SQLite has none, so these are not in
//! the shared suite.

use sqlx::Connection;

use super::{answers, samples};
use crate::history::rollup::{RAW, floor, window_ms};
use crate::sql::postgres::partitions::{PARTITION_MS, partition_name};
use crate::suite::Fixture;
use crate::*;

const DAY: i64 = 86_400_000;

/// Each history row and chunk with the partition that holds it, and the
/// partition it belongs in.
async fn placement(conn: &mut sqlx::PgConnection) -> Vec<(String, String)> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT tableoid::regclass::text, ts FROM history_rows")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    let chunks: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT tableoid::regclass::text, tier, start FROM history_chunks")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    let week = |ts: i64| floor(ts, PARTITION_MS);
    rows.into_iter()
        .map(|(at, ts)| (at, partition_name("history_rows", week(ts)).unwrap()))
        .chain(chunks.into_iter().map(|(at, tier, start)| {
            let table = format!("history_chunks_{tier}");
            (at, partition_name(&table, week(start)).unwrap())
        }))
        .collect()
}

/// The range partitions of `table`, by name.
async fn partitions_of(conn: &mut sqlx::PgConnection, table: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = to_regclass($1) AND NOT c.relname LIKE '%default'
         ORDER BY 1",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await
    .unwrap()
}

async fn in_defaults(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM history_rows_default)
              + (SELECT COUNT(*) FROM history_chunks_0_default)
              + (SELECT COUNT(*) FROM history_chunks_60_default)
              + (SELECT COUNT(*) FROM history_chunks_900_default)
              + (SELECT COUNT(*) FROM history_chunks_3600_default)
              + (SELECT COUNT(*) FROM history_chunks_default)",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn history_is_kept_in_weekly_partitions_and_retention_drops_whole_weeks() {
    let f = Fixture::postgres("history_partitions").await;
    let store = f.store.clone();
    let mut conn = f.pg().await;
    let now = now_ms();
    let week = floor(now, PARTITION_MS);
    let tables = [
        "history_rows",
        "history_chunks_0",
        "history_chunks_60",
        "history_chunks_900",
        "history_chunks_3600",
    ];

    // Opening made this week's and next week's partitions of every table.
    for table in tables {
        assert_eq!(
            partitions_of(&mut conn, table).await,
            [
                partition_name(table, week).unwrap(),
                partition_name(table, week + PARTITION_MS).unwrap()
            ],
            "{table}"
        );
    }

    // Samples over five months: one far back, a few a week or two back, a
    // day of them now, one three weeks ahead (a clock that runs fast).
    let hour = floor(now, 3_600_000);
    let mut times = vec![
        hour - 120 * DAY,
        hour - 15 * DAY,
        hour - 15 * DAY + 60_000,
        hour - 8 * DAY,
        hour + 21 * DAY,
    ];
    times.extend((0..48).map(|i| hour - DAY + i * 1_800_000));
    times.sort();
    let mut dict = Dictionary::default();
    store
        .append_samples(&mut dict, &samples("n1", &times))
        .await
        .unwrap();
    let (from, to) = (hour - 200 * DAY, hour + 30 * DAY);
    let before = answers(&store, "n1", from, to).await;
    assert_eq!(before[0].len(), times.len());
    // The weeks without a partition went to DEFAULT; the current one not.
    let strays = in_defaults(&mut conn).await;
    assert!(strays >= 4, "{strays} rows in DEFAULT");

    // Upkeep makes their weeks' partitions and moves them in.
    let made = store.keep_history_partitions(now).await.unwrap();
    assert!(made >= 4, "{made}");
    assert_eq!(in_defaults(&mut conn).await, 0);
    for (at, belongs) in placement(&mut conn).await {
        assert_eq!(at, belongs);
    }
    assert_eq!(answers(&store, "n1", from, to).await, before);
    assert_eq!(store.keep_history_partitions(now).await.unwrap(), 0);

    // Sealed into chunks and rolled up: each chunk in its tier's week.
    let keys: Vec<i64> = store
        .history_pending()
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    store.seal_history(&keys, to).await.unwrap();
    store.roll_up_history(now).await.unwrap();
    assert!(in_defaults(&mut conn).await > 0);
    store.keep_history_partitions(now).await.unwrap();
    assert_eq!(in_defaults(&mut conn).await, 0);
    let placed = placement(&mut conn).await;
    assert!(
        placed
            .iter()
            .any(|(at, _)| at.starts_with("history_chunks_3600_"))
    );
    for (at, belongs) in placed {
        assert_eq!(at, belongs);
    }
    assert_eq!(answers(&store, "n1", from, to).await, before);

    // Retention of raw history ten days back: the weeks wholly before drop,
    // the rest is deleted; every tier reads as before, raw from the cut on.
    let cut = now - 10 * DAY;
    let expired: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM history_chunks WHERE tier = 0 AND start <= $1")
            .bind(cut - window_ms(RAW))
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let raw_weeks = partitions_of(&mut conn, "history_chunks_0").await;
    assert_eq!(
        store.delete_history_before(RAW, cut).await.unwrap(),
        expired as u64
    );
    let kept = partitions_of(&mut conn, "history_chunks_0").await;
    let far = partition_name("history_chunks_0", floor(hour - 120 * DAY, PARTITION_MS)).unwrap();
    assert!(raw_weeks.contains(&far) && !kept.contains(&far), "{kept:?}");
    for name in &raw_weeks {
        let week_end = chrono::NaiveDate::parse_from_str(&name[name.len() - 8..], "%Y%m%d")
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis()
            + PARTITION_MS;
        assert_eq!(
            kept.contains(name),
            week_end > cut - window_ms(RAW) + 1,
            "{name}"
        );
    }
    // The far 1 h week stays: its tier keeps 400 days.
    assert!(
        partitions_of(&mut conn, "history_chunks_3600")
            .await
            .contains(
                &partition_name("history_chunks_3600", floor(hour - 120 * DAY, PARTITION_MS))
                    .unwrap()
            )
    );
    let after = answers(&store, "n1", from, to).await;
    for (i, (was, now)) in before.iter().zip(&after).enumerate() {
        if i % 4 == 0 {
            // Raw: what is not before the cut.
            let kept: Vec<_> = was.iter().filter(|b| b[0] as i64 >= cut).copied().collect();
            assert_eq!(now, &kept, "series {i}");
        } else {
            assert_eq!(now, was, "series {i}");
        }
    }

    // Replicas doing upkeep and retention at once take turns.
    let other = f.reopen().await;
    let later = now + 7 * PARTITION_MS;
    let (a, b) = tokio::join!(
        store.keep_history_partitions(later),
        other.keep_history_partitions(later)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 2 * tables.len());
    let (a, b) = tokio::join!(
        store.delete_history_before(RAW, now - DAY),
        other.delete_history_before(RAW, now - DAY)
    );
    a.unwrap();
    b.unwrap();
    for table in tables {
        let names = partitions_of(&mut conn, table).await;
        for w in [later, later + PARTITION_MS] {
            assert!(names.contains(&partition_name(table, floor(w, PARTITION_MS)).unwrap()));
        }
    }
    conn.close().await.ok();
}
