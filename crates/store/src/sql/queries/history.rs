//! `history`: the queries (compiled once per backend, see `store/sql.rs`).

use super::*;
use crate::history::codec::{self, Chunk};
use crate::history::rollup::{self, RAW};
use crate::history::*;
use crate::*;
use std::collections::HashMap;

async fn append_in(
    conn: &mut Conn,
    dict: &mut Dictionary,
    samples: &[SampleWrite],
) -> Result<HashMap<i64, i64>, sqlx::Error> {
    const ROWS_PER_STATEMENT: usize = 300;
    let mut touched: HashMap<i64, i64> = HashMap::new();
    let mut rows: Vec<(i64, i64, Vec<u8>)> = Vec::with_capacity(samples.len());
    // Nodes whose series this transaction has read (or added) itself.
    let mut current = std::collections::HashSet::new();
    for s in samples {
        if !dict.nodes.contains_key(&s.node) {
            let loaded = load_node(conn, &s.node, s.ts).await?;
            current.insert(loaded.key);
            dict.nodes.insert(s.node.clone(), loaded);
        }
        let node = dict
            .nodes
            .get_mut(&s.node)
            .ok_or(sqlx::Error::RowNotFound)?;
        let mut values = Vec::with_capacity(s.values.len());
        for (name, v) in &s.values {
            if !node.names.contains_key(name) && current.insert(node.key) {
                // Another replica (with a dictionary of its own) may have
                // added series to this node since ours was loaded: re-read
                // it here, in turn, before giving out a new index.
                let stored: Vec<(i64, String)> =
                    query_as("SELECT idx, name FROM history_series WHERE node = ?")
                        .bind(node.key)
                        .fetch_all(&mut *conn)
                        .await?;
                node.names = series_indices(stored)?
                    .into_iter()
                    .map(|(idx, name)| (name, idx))
                    .collect();
            }
            let idx = match node.names.get(name) {
                Some(idx) => *idx,
                None => {
                    let idx = node.names.len() as u32;
                    query("INSERT INTO history_series (node, idx, name) VALUES (?, ?, ?)")
                        .bind(node.key)
                        .bind(i64::from(idx))
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
    // A repeated (node, time) replaces the earlier sample; one statement
    // may not name a row twice (PostgreSQL refuses it), so the last wins here.
    let mut seen = std::collections::HashSet::new();
    let mut rows: Vec<_> = rows
        .into_iter()
        .rev()
        .filter(|(node, ts, _)| seen.insert((*node, *ts)))
        .collect();
    rows.reverse();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut insert = QueryBuilder::new("INSERT INTO history_rows (node, ts, data) ");
        insert.push_values(chunk, |mut row, (node, ts, data)| {
            row.push_bind(*node)
                .push_bind(*ts)
                .push_bind(data.as_slice());
        });
        insert.push(" ON CONFLICT (node, ts) DO UPDATE SET data = excluded.data");
        insert.build().execute(&mut *conn).await?;
    }
    Ok(touched)
}

/// A node's key and dictionary, adding the node if it is new (its tiers
/// start at the windows of its first sample).
async fn load_node(
    conn: &mut Conn,
    node_id: &str,
    first_ts: i64,
) -> Result<NodeNames, sqlx::Error> {
    let key: Option<(i64,)> = query_as("SELECT id FROM history_nodes WHERE node_id = ?")
        .bind(node_id)
        .fetch_optional(&mut *conn)
        .await?;
    let key = match key {
        Some((key,)) => key,
        None => {
            let start = |tier: u32| rollup::floor(first_ts, rollup::window_ms(tier));
            query_scalar(
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
    let names: Vec<(i64, String)> = query_as("SELECT idx, name FROM history_series WHERE node = ?")
        .bind(key)
        .fetch_all(&mut *conn)
        .await?;
    let names = series_indices(names)?;
    Ok(NodeNames {
        key,
        names: names.into_iter().map(|(idx, name)| (name, idx)).collect(),
    })
}

async fn node_key(conn: &mut Conn, node_id: &str) -> Result<Option<(i64, Rolled)>, sqlx::Error> {
    let row: Option<(i64, i64, i64, i64)> = query_as(
        "SELECT id, rolled_60, rolled_900, rolled_3600 FROM history_nodes WHERE node_id = ?",
    )
    .bind(node_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|(id, a, b, c)| (id, [a, b, c])))
}

/// The points of `level` with times in `[from, to]`: raw samples from
/// chunks and rows (a row wins over a chunk at the same time), or a tier's
/// buckets from its chunks before the node's `rolled` mark and, after it,
/// from the finer level.
pub(super) fn level_points<'a>(
    conn: &'a mut Conn,
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
            let rows: Vec<(i64, Vec<u8>)> = query_as(
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
    conn: &mut Conn,
    node: i64,
    level: u32,
    want: Want<'_>,
    from: i64,
    to: i64,
    out: &mut Points,
) -> Result<(), sqlx::Error> {
    let blobs: Vec<(i64, Vec<u8>)> = query_as(
        "SELECT start, data FROM history_chunks
         WHERE node = ? AND tier = ? AND start > ? AND start <= ? ORDER BY start",
    )
    .bind(node)
    .bind(i64::from(level))
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

#[async_trait::async_trait]
impl crate::HistoryStore for Sql<Db> {
    async fn append_samples(
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

    async fn series_names(&self, node_id: &str) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = query_as(
            "SELECT s.name FROM history_series s JOIN history_nodes n ON n.id = s.node
             WHERE n.node_id = ? ORDER BY s.name",
        )
        .bind(node_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    async fn series_points(
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

    async fn history_points(
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
        let mut tx = begin_snapshot(&self.pool).await?;
        let Some((key, rolled)) = node_key(&mut tx, node_id).await? else {
            return Ok(out);
        };
        let dict: Vec<(i64, String)> =
            query_as("SELECT idx, name FROM history_series WHERE node = ?")
                .bind(key)
                .fetch_all(&mut *tx)
                .await?;
        let dict = series_indices(dict)?;
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

    async fn history_usage(&self) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        Ok(query_as(
            "SELECT -1, COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM history_rows
             UNION ALL
             SELECT tier, COUNT(*), SUM(LENGTH(data)) FROM history_chunks GROUP BY tier
             ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    fn disk_bytes(&self) -> u64 {
        disk_bytes(self)
    }

    async fn compact(&self) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        vacuum(&self.pool).await?;
        Ok(())
    }
}

/// Series indices as stored (a 64-bit integer in both dialects) back to
/// the `u32` the chunks use.
fn series_indices(rows: Vec<(i64, String)>) -> Result<Vec<(u32, String)>, sqlx::Error> {
    rows.into_iter()
        .map(|(idx, name)| {
            u32::try_from(idx)
                .map(|idx| (idx, name))
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))
        })
        .collect()
}
