//! Metric history in SQLite: raw points, rollup tiers, retention and a size cap.

use std::collections::HashMap;
use std::path::PathBuf;

use super::{Store, StoreError};

/// One point to write.
#[derive(Debug, Clone, PartialEq)]
pub struct PointWrite {
    pub series_id: i64,
    pub ts: i64,
    pub value: f64,
}

/// A bucket (or a raw point, where min = avg = max): `[ts, min, avg, max]`.
pub type Bucket = [f64; 4];

impl Store {
    /// Ids of the series `wanted` (node id, series name), creating those
    /// that are new, all in one transaction.
    pub async fn series_ids(
        &self,
        wanted: &[(String, String)],
    ) -> Result<HashMap<(String, String), i64>, StoreError> {
        const ROWS_PER_STATEMENT: usize = 400;
        let mut tx = self.write_tx().await?;
        let mut ids = HashMap::with_capacity(wanted.len());
        for chunk in wanted.chunks(ROWS_PER_STATEMENT) {
            let mut insert =
                sqlx::QueryBuilder::new("INSERT OR IGNORE INTO series (node_id, name) ");
            insert.push_values(chunk, |mut row, (node, name)| {
                row.push_bind(node).push_bind(name);
            });
            insert.build().execute(&mut *tx).await?;
        }
        let mut nodes: Vec<&String> = wanted.iter().map(|(node, _)| node).collect();
        nodes.sort();
        nodes.dedup();
        for node in nodes {
            let rows: Vec<(i64, String)> =
                sqlx::query_as("SELECT id, name FROM series WHERE node_id = ?")
                    .bind(node)
                    .fetch_all(&mut *tx)
                    .await?;
            ids.extend(
                rows.into_iter()
                    .map(|(id, name)| ((node.clone(), name), id)),
            );
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// Writes points in one transaction; a repeated (series, ts) replaces the old value.
    pub async fn insert_points(&self, points: &[PointWrite]) -> Result<(), StoreError> {
        // Multi-row statements: one round trip per few hundred points.
        const ROWS_PER_STATEMENT: usize = 500;
        let mut tx = self.write_tx().await?;
        for chunk in points.chunks(ROWS_PER_STATEMENT) {
            let mut insert =
                sqlx::QueryBuilder::new("INSERT OR REPLACE INTO points (series_id, ts, value) ");
            insert.push_values(chunk, |mut row, p| {
                row.push_bind(p.series_id)
                    .push_bind(p.ts)
                    .push_bind(p.value);
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Recomputes the `tier`-second buckets that start in `[from, to)` from
    /// raw points (`source` = None) or from a finer tier. Idempotent.
    pub async fn rollup(
        &self,
        tier: u32,
        source: Option<u32>,
        from: i64,
        to: i64,
    ) -> Result<u64, StoreError> {
        let width = i64::from(tier) * 1000;
        let (from, to) = (from.div_euclid(width) * width, to);
        let _turn = self.write_turn().await;
        let result = match source {
            None => {
                sqlx::query(
                    "INSERT OR REPLACE INTO rollups (tier, series_id, ts, min, max, sum, count)
                     SELECT ?1, series_id, (ts / ?2) * ?2, MIN(value), MAX(value), SUM(value), COUNT(*)
                     FROM points WHERE ts >= ?3 AND ts < ?4 GROUP BY series_id, ts / ?2",
                )
                .bind(tier)
                .bind(width)
                .bind(from)
                .bind(to)
                .execute(&self.pool)
                .await?
            }
            Some(finer) => {
                sqlx::query(
                    "INSERT OR REPLACE INTO rollups (tier, series_id, ts, min, max, sum, count)
                     SELECT ?1, series_id, (ts / ?2) * ?2, MIN(min), MAX(max), SUM(sum), SUM(count)
                     FROM rollups WHERE tier = ?5 AND ts >= ?3 AND ts < ?4 GROUP BY series_id, ts / ?2",
                )
                .bind(tier)
                .bind(width)
                .bind(from)
                .bind(to)
                .bind(finer)
                .execute(&self.pool)
                .await?
            }
        };
        Ok(result.rows_affected())
    }

    /// Deletes raw points older than `raw_before` and rollups of each tier
    /// older than its cutoff.
    pub async fn delete_history_before(
        &self,
        raw_before: i64,
        tiers_before: &[(u32, i64)],
    ) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        let mut deleted = sqlx::query("DELETE FROM points WHERE ts < ?")
            .bind(raw_before)
            .execute(&self.pool)
            .await?
            .rows_affected();
        for (tier, before) in tiers_before {
            deleted += sqlx::query("DELETE FROM rollups WHERE tier = ? AND ts < ?")
                .bind(tier)
                .bind(before)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(deleted)
    }

    /// Bytes the database takes on disk: the file and its write-ahead log.
    pub fn disk_bytes(&self) -> u64 {
        let size = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let db = self.path.clone();
        size(db.clone()) + size(db.with_extension("db-wal")) + size(db.with_extension("db-shm"))
    }

    /// Hands freed pages back to the file system and truncates the WAL.
    pub async fn compact(&self) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query("PRAGMA incremental_vacuum")
            .execute(&self.pool)
            .await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The timestamp before which the oldest tenth of the raw points (or of
    /// one rollup tier's buckets) lies; `None` when there is nothing left.
    pub async fn oldest_tenth_cut(&self, tier: Option<u32>) -> Result<Option<i64>, StoreError> {
        let row: (Option<i64>,) = match tier {
            None => {
                sqlx::query_as(
                    "SELECT (SELECT ts FROM points ORDER BY ts
                             LIMIT 1 OFFSET (SELECT COUNT(*) / 10 FROM points)) + 1",
                )
                .fetch_one(&self.pool)
                .await?
            }
            Some(t) => {
                sqlx::query_as(
                    "SELECT (SELECT ts FROM rollups WHERE tier = ?1 ORDER BY ts
                             LIMIT 1 OFFSET (SELECT COUNT(*) / 10 FROM rollups WHERE tier = ?1)) + 1",
                )
                .bind(t)
                .fetch_one(&self.pool)
                .await?
            }
        };
        Ok(row.0)
    }

    /// Names of every series of `node_id`.
    pub async fn series_names(&self, node_id: &str) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT name FROM series WHERE node_id = ? ORDER BY name")
                .bind(node_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Points of one series in `[from, to]`: raw (`tier` None) or rolled up.
    pub async fn series_points(
        &self,
        node_id: &str,
        name: &str,
        tier: Option<u32>,
        from: i64,
        to: i64,
    ) -> Result<Vec<Bucket>, StoreError> {
        let rows: Vec<(i64, f64, f64, f64)> = match tier {
            None => {
                sqlx::query_as(
                    "SELECT p.ts, p.value, p.value, p.value FROM points p JOIN series s ON s.id = p.series_id
                     WHERE s.node_id = ? AND s.name = ? AND p.ts >= ? AND p.ts <= ? ORDER BY p.ts",
                )
                .bind(node_id)
                .bind(name)
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool)
                .await?
            }
            Some(tier) => {
                sqlx::query_as(
                    "SELECT r.ts, r.min, r.sum / r.count, r.max FROM rollups r JOIN series s ON s.id = r.series_id
                     WHERE r.tier = ? AND s.node_id = ? AND s.name = ? AND r.ts >= ? AND r.ts <= ? ORDER BY r.ts",
                )
                .bind(tier)
                .bind(node_id)
                .bind(name)
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool)
                .await?
            }
        };
        Ok(rows
            .into_iter()
            .map(|(ts, min, avg, max)| [ts as f64, min, avg, max])
            .collect())
    }
}
