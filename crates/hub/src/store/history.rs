//! Metric history in SQLite, kept the way it arrives (`history/codec.rs`):
//!
//! - `history_nodes`: a small key per node and, per rollup tier, the time
//!   before which that tier's buckets are final in chunks (`rolled_*`);
//! - `history_series`: per node, a dictionary of series names;
//! - `history_rows`: recent samples, one row per (node, sample time), the
//!   whole sample in a compact blob — what the writer appends;
//! - `history_chunks`: closed windows of one node, one blob per (node,
//!   level, window): raw samples (level 0) sealed from rows, and the 1 min,
//!   15 min and 1 h buckets rolled up from the level below.
//!
//! A query for a tier reads that tier's chunks before its `rolled_*` mark and
//! computes the buckets after it from the finer level, so the open windows
//! are never written twice. Sealing, rolling up, retention and the size cap
//! are in `history/maintain.rs`; moving the old per-point tables forward is
//! `history/legacy.rs`.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use sqlx::SqliteConnection;

use super::{Store, StoreError};
use crate::history::codec::{self, Chunk, Columns};
use crate::history::rollup::{self, RAW};

mod legacy;
mod maintain;

pub use maintain::{GRACE_MS, SEAL_PER_TX};

/// A bucket (or a raw point, where min = avg = max): `[ts, min, avg, max]`.
pub type Bucket = [f64; 4];

/// One sample to append: a node's named values at one time.
#[derive(Debug, Clone)]
pub struct SampleWrite {
    pub node: String,
    pub ts: i64,
    pub values: Vec<(String, f64)>,
}

/// The writer's cache of node keys and series indexes, so appending a
/// sample reads nothing.
#[derive(Debug, Default)]
pub struct Dictionary {
    nodes: HashMap<String, NodeNames>,
}

#[derive(Debug)]
struct NodeNames {
    key: i64,
    names: HashMap<String, u32>,
}

impl Dictionary {
    /// Nodes cached.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// Which series of a level to read.
#[derive(Debug, Clone, Copy)]
enum Want<'a> {
    All,
    Some(&'a [u32]),
}

impl Want<'_> {
    fn has(&self, idx: u32) -> bool {
        match self {
            Want::All => true,
            Want::Some(list) => list.contains(&idx),
        }
    }
}

/// Each series' points in time order, by dictionary index.
type Points = BTreeMap<u32, Vec<(i64, Columns)>>;

/// `[rolled_60, rolled_900, rolled_3600]` of a node.
type Rolled = [i64; 3];

impl Store {
    /// Appends samples as rows, in one transaction; a repeated (node, time)
    /// replaces the earlier sample. Nodes and series seen for the first time
    /// are added to the dictionary in the same transaction. Returns, per
    /// node key written, its oldest sample time.
    pub async fn append_samples(
        &self,
        dict: &mut Dictionary,
        samples: &[SampleWrite],
    ) -> Result<HashMap<i64, i64>, StoreError> {
        let mut tx = self.write_tx().await?;
        let result = append_in(&mut tx, dict, samples).await;
        let result = match result {
            Ok(touched) => tx.commit().await.map(|()| touched),
            Err(e) => Err(e),
        };
        if result.is_err() {
            // Keys and indexes given out in the failed transaction are void.
            for s in samples {
                dict.nodes.remove(&s.node);
            }
        }
        Ok(result?)
    }

    /// Names of every series of `node_id`.
    pub async fn series_names(&self, node_id: &str) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT s.name FROM history_series s JOIN history_nodes n ON n.id = s.node
             WHERE n.node_id = ? ORDER BY s.name",
        )
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
        let mut all = self
            .history_points(node_id, &[name.to_string()], tier, from, to)
            .await?;
        Ok(all.pop().map(|(_, points)| points).unwrap_or_default())
    }

    /// Points of each named series in `[from, to]`, in the order asked; a
    /// series the node does not have is empty.
    pub async fn history_points(
        &self,
        node_id: &str,
        names: &[String],
        tier: Option<u32>,
        from: i64,
        to: i64,
    ) -> Result<Vec<(String, Vec<Bucket>)>, StoreError> {
        let mut out: Vec<(String, Vec<Bucket>)> =
            names.iter().map(|n| (n.clone(), Vec::new())).collect();
        // One read transaction: a seal or roll-up that commits meanwhile
        // cannot make a point appear twice or not at all.
        let mut tx = self.pool.begin().await?;
        let Some((key, rolled)) = node_key(&mut tx, node_id).await? else {
            return Ok(out);
        };
        let dict: Vec<(u32, String)> =
            sqlx::query_as("SELECT idx, name FROM history_series WHERE node = ?")
                .bind(key)
                .fetch_all(&mut *tx)
                .await?;
        let idx_of: HashMap<&str, u32> = dict.iter().map(|(i, n)| (n.as_str(), *i)).collect();
        let wanted: Vec<u32> = names
            .iter()
            .filter_map(|n| idx_of.get(n.as_str()).copied())
            .collect();
        if wanted.is_empty() {
            return Ok(out);
        }
        let level = tier.unwrap_or(RAW);
        let points =
            level_points(&mut tx, key, level, Want::Some(&wanted), from, to, rolled).await?;
        tx.rollback().await?;
        for (name, buckets) in &mut out {
            let Some(idx) = idx_of.get(name.as_str()) else {
                continue;
            };
            if let Some(found) = points.get(idx) {
                *buckets = found
                    .iter()
                    .map(|(ts, c)| rollup::bucket(*ts, *c, level == RAW))
                    .collect();
            }
        }
        Ok(out)
    }

    /// What the history holds, by level (`-1` for unsealed rows, `0` for raw
    /// chunks, else a tier): `(level, blobs, bytes)`.
    pub async fn history_usage(&self) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT -1, COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM history_rows
             UNION ALL
             SELECT tier, COUNT(*), SUM(LENGTH(data)) FROM history_chunks GROUP BY tier",
        )
        .fetch_all(&self.pool)
        .await?)
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
}

async fn append_in(
    conn: &mut SqliteConnection,
    dict: &mut Dictionary,
    samples: &[SampleWrite],
) -> Result<HashMap<i64, i64>, sqlx::Error> {
    const ROWS_PER_STATEMENT: usize = 300;
    let mut touched: HashMap<i64, i64> = HashMap::new();
    let mut rows: Vec<(i64, i64, Vec<u8>)> = Vec::with_capacity(samples.len());
    for s in samples {
        if !dict.nodes.contains_key(&s.node) {
            let loaded = load_node(conn, &s.node, s.ts).await?;
            dict.nodes.insert(s.node.clone(), loaded);
        }
        let node = dict
            .nodes
            .get_mut(&s.node)
            .ok_or(sqlx::Error::RowNotFound)?;
        let mut values = Vec::with_capacity(s.values.len());
        for (name, v) in &s.values {
            let idx = match node.names.get(name) {
                Some(idx) => *idx,
                None => {
                    let idx = node.names.len() as u32;
                    sqlx::query("INSERT INTO history_series (node, idx, name) VALUES (?, ?, ?)")
                        .bind(node.key)
                        .bind(idx)
                        .bind(name)
                        .execute(&mut *conn)
                        .await?;
                    node.names.insert(name.clone(), idx);
                    idx
                }
            };
            values.push((idx, *v));
        }
        rows.push((node.key, s.ts, codec::encode_row(&values)));
        let oldest = touched.entry(node.key).or_insert(s.ts);
        *oldest = (*oldest).min(s.ts);
    }
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut insert =
            sqlx::QueryBuilder::new("INSERT OR REPLACE INTO history_rows (node, ts, data) ");
        insert.push_values(chunk, |mut row, (node, ts, data)| {
            row.push_bind(*node)
                .push_bind(*ts)
                .push_bind(data.as_slice());
        });
        insert.build().execute(&mut *conn).await?;
    }
    Ok(touched)
}

/// A node's key and dictionary, adding the node if it is new (its tiers
/// start at the windows of its first sample).
async fn load_node(
    conn: &mut SqliteConnection,
    node_id: &str,
    first_ts: i64,
) -> Result<NodeNames, sqlx::Error> {
    let key: Option<(i64,)> = sqlx::query_as("SELECT id FROM history_nodes WHERE node_id = ?")
        .bind(node_id)
        .fetch_optional(&mut *conn)
        .await?;
    let key = match key {
        Some((key,)) => key,
        None => {
            let start = |tier: u32| rollup::floor(first_ts, rollup::window_ms(tier));
            sqlx::query_scalar(
                "INSERT INTO history_nodes (node_id, rolled_60, rolled_900, rolled_3600)
                 VALUES (?, ?, ?, ?) RETURNING id",
            )
            .bind(node_id)
            .bind(start(60))
            .bind(start(900))
            .bind(start(3600))
            .fetch_one(&mut *conn)
            .await?
        }
    };
    let names: Vec<(u32, String)> =
        sqlx::query_as("SELECT idx, name FROM history_series WHERE node = ?")
            .bind(key)
            .fetch_all(&mut *conn)
            .await?;
    Ok(NodeNames {
        key,
        names: names.into_iter().map(|(idx, name)| (name, idx)).collect(),
    })
}

async fn node_key(
    conn: &mut SqliteConnection,
    node_id: &str,
) -> Result<Option<(i64, Rolled)>, sqlx::Error> {
    let row: Option<(i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT id, rolled_60, rolled_900, rolled_3600 FROM history_nodes WHERE node_id = ?",
    )
    .bind(node_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|(id, a, b, c)| (id, [a, b, c])))
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, sqlx::Error>> + Send + 'a>>;

/// The points of `level` with times in `[from, to]`: raw samples from
/// chunks and rows (a row wins over a chunk at the same time), or a tier's
/// buckets from its chunks before the node's `rolled` mark and, after it,
/// from the finer level.
fn level_points<'a>(
    conn: &'a mut SqliteConnection,
    node: i64,
    level: u32,
    want: Want<'a>,
    from: i64,
    to: i64,
    rolled: Rolled,
) -> Boxed<'a, Points> {
    Box::pin(async move {
        let mut out = Points::new();
        if from > to {
            return Ok(out);
        }
        if level == RAW {
            chunk_points(conn, node, RAW, want, from, to, &mut out).await?;
            let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                "SELECT ts, data FROM history_rows WHERE node = ? AND ts >= ? AND ts <= ? ORDER BY ts",
            )
            .bind(node)
            .bind(from)
            .bind(to)
            .fetch_all(&mut *conn)
            .await?;
            let mut recent = Points::new();
            for (ts, data) in rows {
                let values = match want {
                    Want::Some([one]) => codec::row_value(&data, *one)
                        .map(|v| v.map(|v| (*one, v)).into_iter().collect()),
                    _ => codec::decode_row(&data),
                };
                match values {
                    Ok(values) => {
                        for (idx, v) in values.into_iter().filter(|(i, _)| want.has(*i)) {
                            recent
                                .entry(idx)
                                .or_default()
                                .push((ts, [v, 0.0, 0.0, 0.0]));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(node, ts, error = %e, "skipping a damaged history row")
                    }
                }
            }
            for (idx, points) in recent {
                let old = out.remove(&idx).unwrap_or_default();
                out.insert(idx, rollup::merge(old, points));
            }
            return Ok(out);
        }
        let rolled_to = rolled[rollup::tier_index(level)];
        let hi = to.min(rolled_to.saturating_sub(1));
        if from <= hi {
            chunk_points(conn, node, level, want, from, hi, &mut out).await?;
        }
        let width = rollup::width_ms(level);
        let lo = rollup::ceil(from, width).max(rolled_to);
        if lo <= to {
            let finer = rollup::finer(level);
            let fine_to = rollup::floor(to, width).saturating_add(width - 1);
            let fine = level_points(conn, node, finer, want, lo, fine_to, rolled).await?;
            for (idx, points) in fine {
                let buckets = rollup::aggregate(&points, finer == RAW, width);
                out.entry(idx)
                    .or_default()
                    .extend(buckets.into_iter().filter(|(ts, _)| *ts <= to));
            }
        }
        Ok(out)
    })
}

/// Adds the points of `level`'s chunks with times in `[from, to]`.
async fn chunk_points(
    conn: &mut SqliteConnection,
    node: i64,
    level: u32,
    want: Want<'_>,
    from: i64,
    to: i64,
    out: &mut Points,
) -> Result<(), sqlx::Error> {
    let blobs: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT start, data FROM history_chunks
         WHERE node = ? AND tier = ? AND start > ? AND start <= ? ORDER BY start",
    )
    .bind(node)
    .bind(level)
    .bind(from.saturating_sub(rollup::window_ms(level)))
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    for (start, blob) in blobs {
        let decoded = Chunk::parse(&blob).and_then(|chunk| match want {
            Want::All => chunk
                .all()
                .map(|all| all.into_iter().map(|s| (s.idx, s.points)).collect()),
            Want::Some(list) => {
                let mut found = Vec::new();
                for idx in list {
                    if let Some(points) = chunk.series(*idx)? {
                        found.push((*idx, points));
                    }
                }
                Ok(found)
            }
        });
        match decoded {
            Ok(series) => {
                for (idx, points) in series {
                    out.entry(idx).or_default().extend(
                        points
                            .into_iter()
                            .filter(|(ts, _)| (from..=to).contains(ts)),
                    );
                }
            }
            Err(e) => {
                tracing::warn!(node, level, start, error = %e, "skipping a damaged history chunk")
            }
        }
    }
    Ok(())
}

#[cfg(test)]
impl Store {
    /// The pool, for tests that look at the history tables themselves.
    pub(crate) fn history_pool(&self) -> &sqlx::SqlitePool {
        &self.pool
    }
}
