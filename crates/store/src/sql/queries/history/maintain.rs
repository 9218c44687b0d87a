//! `history/maintain`: the queries (compiled once per backend, see `store/sql.rs`).

use super::history::level_points;
use super::*;
use crate::history::codec::{self, Columns, SeriesData};
use crate::history::maintain::*;
use crate::history::rollup::{self, RAW};
use crate::history::*;
use crate::*;
use std::collections::BTreeMap;

async fn seal_node(conn: &mut Conn, node: i64, before: i64) -> Result<(), sqlx::Error> {
    let rows: Vec<(i64, Vec<u8>)> =
        query_as("SELECT ts, data FROM history_rows WHERE node = ? AND ts < ? ORDER BY ts")
            .bind(node)
            .bind(before)
            .fetch_all(&mut *conn)
            .await?;
    let Some(oldest) = rows.first().map(|r| r.0) else {
        return Ok(());
    };
    let window = rollup::window_ms(RAW);
    let mut windows: BTreeMap<i64, Points> = BTreeMap::new();
    for (ts, data) in rows {
        match codec::decode_row(&data) {
            Ok(values) => {
                let series = windows.entry(rollup::floor(ts, window)).or_default();
                for (idx, v) in values {
                    series
                        .entry(idx)
                        .or_default()
                        .push((ts, [v, 0.0, 0.0, 0.0]));
                }
            }
            Err(e) => tracing::warn!(node, ts, error = %e, "dropping a damaged history row"),
        }
    }
    for (start, series) in windows {
        write_merged(conn, node, RAW, start, series).await?;
    }
    query("DELETE FROM history_rows WHERE node = ? AND ts < ?")
        .bind(node)
        .bind(before)
        .execute(&mut *conn)
        .await?;
    // Samples older than a tier's mark arrived late: that tier is computed
    // from them again (and rolled up again) from their bucket on.
    let at = |tier: u32| rollup::floor(oldest, rollup::width_ms(tier));
    query(
        "UPDATE history_nodes SET
           rolled_60 = CASE WHEN rolled_60 < ?1 THEN rolled_60 ELSE ?1 END,
           rolled_900 = CASE WHEN rolled_900 < ?2 THEN rolled_900 ELSE ?2 END,
           rolled_3600 = CASE WHEN rolled_3600 < ?3 THEN rolled_3600 ELSE ?3 END
         WHERE id = ?4",
    )
    .bind(at(60))
    .bind(at(900))
    .bind(at(3600))
    .bind(node)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Recomputes `tier`'s buckets in `[from, to)` from the finer level and
/// moves the node's mark to `to`. Buckets the finer level no longer has
/// (retention took it) are kept as they are.
async fn roll_node(
    conn: &mut Conn,
    node: i64,
    tier: u32,
    from: i64,
    to: i64,
    rolled: Rolled,
) -> Result<(), sqlx::Error> {
    let finer = rollup::finer(tier);
    let fine = level_points(conn, node, finer, Want::All, from, to - 1, rolled).await?;
    let (width, window) = (rollup::width_ms(tier), rollup::window_ms(tier));
    let mut windows: BTreeMap<i64, Points> = BTreeMap::new();
    for (idx, points) in fine {
        for bucket in rollup::aggregate(&points, finer == RAW, width) {
            windows
                .entry(rollup::floor(bucket.0, window))
                .or_default()
                .entry(idx)
                .or_default()
                .push(bucket);
        }
    }
    for (start, series) in windows {
        write_merged(conn, node, tier, start, series).await?;
    }
    let update = match tier {
        60 => "UPDATE history_nodes SET rolled_60 = ? WHERE id = ?",
        900 => "UPDATE history_nodes SET rolled_900 = ? WHERE id = ?",
        _ => "UPDATE history_nodes SET rolled_3600 = ? WHERE id = ?",
    };
    query(update)
        .bind(to)
        .bind(node)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Writes a window's chunk, putting `new` into the chunk already there.
pub(super) async fn write_merged(
    conn: &mut Conn,
    node: i64,
    level: u32,
    start: i64,
    new: Points,
) -> Result<(), sqlx::Error> {
    let existing: Option<Vec<u8>> =
        query_scalar("SELECT data FROM history_chunks WHERE node = ? AND tier = ? AND start = ?")
            .bind(node)
            .bind(i64::from(level))
            .bind(start)
            .fetch_optional(&mut *conn)
            .await?;
    let mut all: BTreeMap<u32, Vec<(i64, Columns)>> = BTreeMap::new();
    if let Some(blob) = existing {
        match codec::decode_chunk(&blob) {
            Ok((_, old)) => all.extend(old.into_iter().map(|s| (s.idx, s.points))),
            Err(e) => {
                tracing::warn!(node, level, start, error = %e, "replacing a damaged history chunk")
            }
        }
    }
    for (idx, points) in new {
        let old = all.remove(&idx).unwrap_or_default();
        all.insert(idx, rollup::merge(old, points));
    }
    let series: Vec<SeriesData> = all
        .into_iter()
        .map(|(idx, points)| SeriesData { idx, points })
        .collect();
    let columns = if level == RAW { 1 } else { 4 };
    query(
        "INSERT INTO history_chunks (node, tier, start, data) VALUES (?, ?, ?, ?)
         ON CONFLICT (node, tier, start) DO UPDATE SET data = excluded.data",
    )
    .bind(node)
    .bind(i64::from(level))
    .bind(start)
    .bind(codec::encode_chunk(columns, &series))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait::async_trait]
impl crate::HistoryMaintenance for Sql<Db> {
    async fn history_pending(&self) -> Result<Vec<(i64, i64)>, StoreError> {
        Ok(
            query_as("SELECT node, MIN(ts) FROM history_rows GROUP BY node")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn seal_history(
        &self,
        nodes: &[i64],
        before: i64,
    ) -> Result<Vec<(i64, bool)>, StoreError> {
        let mut tx = self.write_tx().await?;
        let mut out = Vec::with_capacity(nodes.len());
        for &node in nodes {
            seal_node(&mut tx, node, before).await?;
            let remaining: bool = query_scalar(
                "SELECT EXISTS (SELECT 1 FROM history_rows WHERE node = ? AND ts >= ?)",
            )
            .bind(node)
            .bind(before)
            .fetch_one(&mut *tx)
            .await?;
            out.push((node, remaining));
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn roll_up_history(&self, now: i64) -> Result<u64, StoreError> {
        let closed = rollup::floor(now.saturating_sub(GRACE_MS), rollup::window_ms(60));
        self.roll_history(|tier, rolled| match tier {
            60 => closed,
            900 => rollup::floor(rolled[0], rollup::window_ms(900)),
            _ => rollup::floor(rolled[1], rollup::window_ms(3600)),
        })
        .await
    }

    async fn delete_history_before(&self, level: u32, before: i64) -> Result<u64, StoreError> {
        let before = match rollup::coarser(level) {
            Some(tier) => {
                let before = rollup::floor(before, rollup::width_ms(tier));
                self.roll_history(|t, _| if t == tier { before } else { i64::MIN })
                    .await?;
                before
            }
            None => before,
        };
        // Whole partitions first (PostgreSQL): one DROP each, not a DELETE
        // of every row; the DELETEs below take the rest. If that fails (a
        // reader held the table too long), the DELETEs take it all.
        let mut deleted = match drop_history_partitions(self, level, before).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(level, error = %e, "dropping expired history partitions failed");
                0
            }
        };
        let _turn = self.write_turn().await;
        if level == RAW {
            deleted += query("DELETE FROM history_rows WHERE ts < ?")
                .bind(before)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        deleted += query("DELETE FROM history_chunks WHERE tier = ? AND start <= ?")
            .bind(i64::from(level))
            .bind(before.saturating_sub(rollup::window_ms(level)))
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(deleted)
    }

    async fn keep_history_partitions(&self, now: i64) -> Result<usize, StoreError> {
        Ok(history_partitions(self, now).await?)
    }

    async fn oldest_tenth_cut(&self, level: u32) -> Result<Option<i64>, StoreError> {
        let start: Option<i64> = query_scalar(
            "SELECT start FROM history_chunks WHERE tier = ?1 ORDER BY start
             LIMIT 1 OFFSET (SELECT COUNT(*) / 10 FROM history_chunks WHERE tier = ?1)",
        )
        .bind(i64::from(level))
        .fetch_optional(&self.pool)
        .await?;
        if let Some(start) = start {
            return Ok(Some(start + rollup::window_ms(level)));
        }
        if level != RAW {
            return Ok(None);
        }
        let ts: Option<i64> = query_scalar(
            "SELECT ts FROM history_rows ORDER BY ts
             LIMIT 1 OFFSET (SELECT COUNT(*) / 10 FROM history_rows)",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(ts.map(|ts| rollup::ceil(ts + 1, rollup::width_ms(60))))
    }
}

impl Sql<Db> {
    /// Brings each node's tiers up to `target(tier, rolled)`, finest first.
    async fn roll_history(&self, target: impl Fn(u32, &Rolled) -> i64) -> Result<u64, StoreError> {
        let nodes: Vec<(i64, i64, i64, i64)> =
            query_as("SELECT id, rolled_60, rolled_900, rolled_3600 FROM history_nodes")
                .fetch_all(&self.pool)
                .await?;
        let mut steps = 0u64;
        let mut tx = None;
        let mut in_tx = 0;
        for (node, a, b, c) in nodes {
            let mut rolled: Rolled = [a, b, c];
            for tier in [60, 900, 3600] {
                let i = rollup::tier_index(tier);
                let goal = target(tier, &rolled);
                let window = rollup::window_ms(tier);
                while rolled[i] < goal {
                    let to = goal.min(rollup::floor(rolled[i], window) + WINDOWS_PER_STEP * window);
                    if tx.is_none() {
                        tx = Some(self.write_tx().await?);
                    }
                    let Some(conn) = tx.as_mut() else {
                        break;
                    };
                    roll_node(conn, node, tier, rolled[i], to, rolled).await?;
                    rolled[i] = to;
                    steps += 1;
                    in_tx += 1;
                    if in_tx >= STEPS_PER_TX {
                        if let Some(done) = tx.take() {
                            done.commit().await?;
                        }
                        in_tx = 0;
                    }
                }
            }
        }
        if let Some(done) = tx.take() {
            done.commit().await?;
        }
        Ok(steps)
    }
}
