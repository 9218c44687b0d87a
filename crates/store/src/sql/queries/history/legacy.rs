//! `history/legacy`: the queries (compiled once per backend, see `store/sql.rs`).

use super::history_maintain::write_merged;
use super::*;
use crate::history::rollup::{self, RAW};
use crate::history::*;
use crate::*;
use std::collections::BTreeMap;

async fn migrate_node(conn: &mut Conn, node_id: &str) -> Result<(), sqlx::Error> {
    let series: Vec<(i64, String)> =
        query_as("SELECT id, name FROM series WHERE node_id = ? ORDER BY name")
            .bind(node_id)
            .fetch_all(&mut *conn)
            .await?;
    // raw windows and each tier's windows: start → idx → points
    let mut levels: BTreeMap<u32, BTreeMap<i64, Points>> = BTreeMap::new();
    let mut newest: BTreeMap<u32, i64> = BTreeMap::new();
    let mut oldest_raw = i64::MAX;
    for (idx, (id, _)) in series.iter().enumerate() {
        let idx = idx as u32;
        let points: Vec<(i64, f64)> =
            query_as("SELECT ts, value FROM points WHERE series_id = ? ORDER BY ts")
                .bind(id)
                .fetch_all(&mut *conn)
                .await?;
        let raw = levels.entry(RAW).or_default();
        for (ts, v) in points {
            oldest_raw = oldest_raw.min(ts);
            raw.entry(rollup::floor(ts, rollup::window_ms(RAW)))
                .or_default()
                .entry(idx)
                .or_default()
                .push((ts, [v, 0.0, 0.0, 0.0]));
        }
        let buckets: Vec<(u32, i64, f64, f64, f64, i64)> = query_as(
            "SELECT tier, ts, min, max, sum, count FROM rollups WHERE series_id = ? ORDER BY tier, ts",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        for (tier, ts, min, max, sum, count) in buckets {
            if !matches!(tier, 60 | 900 | 3600) {
                continue;
            }
            let last = newest.entry(tier).or_insert(i64::MIN);
            *last = (*last).max(ts);
            levels
                .entry(tier)
                .or_default()
                .entry(rollup::floor(ts, rollup::window_ms(tier)))
                .or_default()
                .entry(idx)
                .or_default()
                .push((ts, [min, max, sum, count as f64]));
        }
    }
    // Each tier is final up to its newest bucket's end (the old hub rolled
    // up at shutdown); without buckets, from the first raw sample on.
    let start = if oldest_raw == i64::MAX {
        0
    } else {
        oldest_raw
    };
    let mark = |tier: u32| match newest.get(&tier) {
        Some(ts) => ts + rollup::width_ms(tier),
        None => rollup::floor(start, rollup::width_ms(tier)),
    };
    let key: i64 = query_scalar(
        "INSERT INTO history_nodes (node_id, rolled_60, rolled_900, rolled_3600)
         VALUES (?, ?, ?, ?) RETURNING id",
    )
    .bind(node_id)
    .bind(mark(60))
    .bind(mark(900))
    .bind(mark(3600))
    .fetch_one(&mut *conn)
    .await?;
    for (idx, (_, name)) in series.iter().enumerate() {
        query("INSERT INTO history_series (node, idx, name) VALUES (?, ?, ?)")
            .bind(key)
            .bind(idx as u32)
            .bind(name)
            .execute(&mut *conn)
            .await?;
    }
    for (level, windows) in levels {
        for (start, series) in windows {
            write_merged(conn, key, level, start, series).await?;
        }
    }
    Ok(())
}

impl Sql<Db> {
    /// Moves old per-point history forward, if there is any. Returns the
    /// number of nodes moved.
    pub(crate) async fn migrate_legacy_history(&self) -> Result<usize, StoreError> {
        let old: Option<String> =
            query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'points'")
                .fetch_optional(&self.pool)
                .await?;
        if old.is_none() {
            return Ok(0);
        }
        let nodes: Vec<String> = query_scalar(
            "SELECT DISTINCT node_id FROM series
             WHERE node_id NOT IN (SELECT node_id FROM history_nodes) ORDER BY node_id",
        )
        .fetch_all(&self.pool)
        .await?;
        if !nodes.is_empty() {
            tracing::info!(
                nodes = nodes.len(),
                "moving metric history to the compact layout"
            );
        }
        let started = std::time::Instant::now();
        for (i, node) in nodes.iter().enumerate() {
            let mut tx = self.write_tx().await?;
            migrate_node(&mut tx, node).await?;
            tx.commit().await?;
            if (i + 1) % 100 == 0 {
                tracing::info!(done = i + 1, of = nodes.len(), "moving metric history");
            }
        }
        let _turn = self.write_turn().await;
        for drop in [
            "DROP TABLE IF EXISTS points",
            "DROP TABLE IF EXISTS rollups",
            "DROP TABLE IF EXISTS series",
        ] {
            query(drop).execute(&self.pool).await?;
        }
        tracing::info!(
            nodes = nodes.len(),
            seconds = started.elapsed().as_secs_f64(),
            "metric history moved"
        );
        Ok(nodes.len())
    }
}
