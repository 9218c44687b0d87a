//! Acceptance: history made by the previous layout (a row per point, a row
//! per bucket; migrations up to 0018, written and rolled up with that
//! version's SQL) opens, moves forward and answers every query unchanged.

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode};

use super::*;

const OLD_SCHEMA_VERSION: i64 = 18;

/// The previous version's writes: `series_ids`, `insert_points`, `rollup`.
async fn write_old(pool: &SqlitePool, node: &str, name: &str, points: &[(i64, f64)]) {
    sqlx::query("INSERT OR IGNORE INTO series (node_id, name) VALUES (?, ?)")
        .bind(node)
        .bind(name)
        .execute(pool)
        .await
        .unwrap();
    let id: i64 = sqlx::query_scalar("SELECT id FROM series WHERE node_id = ? AND name = ?")
        .bind(node)
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap();
    for chunk in points.chunks(500) {
        let mut insert =
            sqlx::QueryBuilder::new("INSERT OR REPLACE INTO points (series_id, ts, value) ");
        insert.push_values(chunk, |mut row, (ts, v)| {
            row.push_bind(id).push_bind(*ts).push_bind(*v);
        });
        insert.build().execute(pool).await.unwrap();
    }
}

async fn roll_up_old(pool: &SqlitePool, from: i64, to: i64) {
    let mut source = None;
    for tier in [60u32, 900, 3600] {
        let width = i64::from(tier) * 1000;
        let from = from.div_euclid(width) * width;
        match source {
            None => sqlx::query(
                "INSERT OR REPLACE INTO rollups (tier, series_id, ts, min, max, sum, count)
                 SELECT ?1, series_id, (ts / ?2) * ?2, MIN(value), MAX(value), SUM(value), COUNT(*)
                 FROM points WHERE ts >= ?3 AND ts < ?4 GROUP BY series_id, ts / ?2",
            ),
            Some(_) => sqlx::query(
                "INSERT OR REPLACE INTO rollups (tier, series_id, ts, min, max, sum, count)
                 SELECT ?1, series_id, (ts / ?2) * ?2, MIN(min), MAX(max), SUM(sum), SUM(count)
                 FROM rollups WHERE tier = ?5 AND ts >= ?3 AND ts < ?4 GROUP BY series_id, ts / ?2",
            ),
        }
        .bind(tier)
        .bind(width)
        .bind(from)
        .bind(to)
        .bind(source.unwrap_or(0))
        .execute(pool)
        .await
        .unwrap();
        source = Some(tier);
    }
}

/// The previous version's `series_points`.
async fn read_old(
    pool: &SqlitePool,
    node: &str,
    name: &str,
    tier: Option<u32>,
    from: i64,
    to: i64,
) -> Vec<[f64; 4]> {
    let rows: Vec<(i64, f64, f64, f64)> = match tier {
        None => sqlx::query_as(
            "SELECT p.ts, p.value, p.value, p.value FROM points p JOIN series s ON s.id = p.series_id
             WHERE s.node_id = ? AND s.name = ? AND p.ts >= ? AND p.ts <= ? ORDER BY p.ts",
        )
        .bind(node)
        .bind(name)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await
        .unwrap(),
        Some(tier) => sqlx::query_as(
            "SELECT r.ts, r.min, r.sum / r.count, r.max FROM rollups r JOIN series s ON s.id = r.series_id
             WHERE r.tier = ? AND s.node_id = ? AND s.name = ? AND r.ts >= ? AND r.ts <= ? ORDER BY r.ts",
        )
        .bind(tier)
        .bind(node)
        .bind(name)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await
        .unwrap(),
    };
    rows.into_iter()
        .map(|(ts, min, avg, max)| [ts as f64, min, avg, max])
        .collect()
}

const NAMES: [&str; 4] = ["cpu", "mem_used", "disk_used{/srv}", "net_rx_bps{eth0}"];

/// Real-looking values: a gauge with one decimal, byte counts, a rate.
fn value(name: &str, i: i64) -> f64 {
    match name {
        "cpu" => (((i * 7919) % 1000) as f64 / 10.0 * 10.0).round() / 10.0,
        "mem_used" => (6_442_450_944 + (i % 97) * 1_048_576) as f64,
        "disk_used{/srv}" => (1_099_511_627_776 / 2 + i * 4096) as f64,
        _ => 125_000.0 * (1.0 + (i as f64 * 0.1).sin()),
    }
}

#[tokio::test]
async fn history_of_the_previous_layout_moves_forward_and_answers_unchanged() {
    let dir = tempdir("legacy");
    let options = SqliteConnectOptions::new()
        .filename(dir.join(crate::store::DB_FILE))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .auto_vacuum(SqliteAutoVacuum::Incremental);
    let pool = SqlitePool::connect_with(options).await.unwrap();
    sqlx::migrate!("../store/migrations")
        .run_to(OLD_SCHEMA_VERSION, &pool)
        .await
        .unwrap();
    // Six hours of 5 s samples for two nodes, the second with a gap, and a
    // third node whose raw points retention already removed.
    let t0 = t0() - 3 * 3_600_000;
    let end = t0 + 6 * 3_600_000;
    for (node, skip) in [("n_a", 0..0), ("n_b", 1000..2000), ("n_c", 0..4320)] {
        for name in NAMES {
            let points: Vec<(i64, f64)> = (0..4320)
                .filter(|i| !skip.contains(i) || node == "n_c")
                .map(|i| (t0 + i * 5000 + 13, value(name, i)))
                .collect();
            write_old(&pool, node, name, &points).await;
        }
    }
    roll_up_old(&pool, t0, end + 1).await;
    sqlx::query(
        "DELETE FROM points WHERE series_id IN (SELECT id FROM series WHERE node_id = 'n_c')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let ranges = [
        (None, end - 3_600_000, end),
        (None, t0 + 4_000_000, t0 + 9_000_000),
        (Some(60), t0, end),
        (Some(60), t0 + 5_000_000, t0 + 5_500_000),
        (Some(900), t0 - 86_400_000, end),
        (Some(3600), 0, end + 86_400_000),
    ];
    let mut before = Vec::new();
    for node in ["n_a", "n_b", "n_c"] {
        for name in NAMES {
            for (tier, from, to) in ranges {
                before.push(read_old(&pool, node, name, tier, from, to).await);
            }
        }
    }
    let empty: Vec<usize> = (0..before.len())
        .filter(|i| before[*i].is_empty())
        .collect();
    // n_b's gap in the narrow minute range, and n_c's two raw ranges.
    assert_eq!(
        empty,
        vec![27, 33, 39, 45, 48, 49, 54, 55, 60, 61, 66, 67],
        "only the gap and n_c's raw points are empty"
    );
    pool.close().await;

    let started = std::time::Instant::now();
    let store = Store::open(&dir).await.unwrap();
    let took = started.elapsed();
    let mut after = Vec::new();
    for node in ["n_a", "n_b", "n_c"] {
        for name in NAMES {
            for (tier, from, to) in ranges {
                after.push(
                    store
                        .series_points(node, name, tier, from, to)
                        .await
                        .unwrap(),
                );
            }
        }
    }
    assert_eq!(after.len(), before.len());
    for (i, (a, b)) in after.iter().zip(&before).enumerate() {
        assert_eq!(a, b, "query {i} answers differently after the move");
    }
    let mut names = store.series_names("n_b").await.unwrap();
    names.sort();
    let mut want: Vec<&str> = NAMES.to_vec();
    want.sort();
    assert_eq!(names, want);
    let old_tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('points', 'rollups', 'series')",
    )
    .fetch_one(store.history_pool())
    .await
    .unwrap();
    assert_eq!(old_tables, 0, "the old tables are gone");
    println!(
        "moved 3 nodes × {} series × 6 h (≈ {} points) in {:.0} ms",
        NAMES.len(),
        2 * 4 * 4320,
        took.as_secs_f64() * 1000.0
    );

    // New samples carry on where the old ones stopped, and the buckets that
    // were final stay as they were.
    let mut dict = Dictionary::default();
    let next: Vec<SampleWrite> = (0..24)
        .map(|i| SampleWrite {
            node: "n_a".into(),
            ts: end + 5000 + i * 5000,
            values: vec![("cpu".into(), 50.0)],
        })
        .collect();
    store.append_samples(&mut dict, &next).await.unwrap();
    maintain(&store, end + 2 * 3_600_000).await;
    let hours = store
        .series_points("n_a", "cpu", Some(3600), 0, end - 1)
        .await
        .unwrap();
    assert_eq!(hours, before[5]);
    let raw = store
        .series_points("n_a", "cpu", None, end, end + 3_600_000)
        .await
        .unwrap();
    assert_eq!(raw.len(), 24);
    store.close().await;
    // Opening again moves nothing twice.
    let store = Store::open(&dir).await.unwrap();
    assert_eq!(store.migrate_legacy_history().await.unwrap(), 0);
    store.close().await;
}
