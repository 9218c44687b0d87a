//! Metric history: samples are queued off the hot path, written in batches,
//! rolled up into 1 min / 15 min / 1 h buckets (min, avg, max), and trimmed
//! by age per tier and by a cap on disk use.
//!
//! The link calls [`History::record`], which never waits: when the bounded
//! queue is full the batch is dropped and counted. One writer task owns the
//! queue; one maintenance task runs rollups and retention as reconcilers
//! (idempotent, periodic).

pub mod series;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use twinbay_proto::model::Sample;

pub use series::{Resolution, Retention, TIERS};

use crate::store::{Bucket, PointWrite, Store, StoreError, now_ms};

/// Batches the writer may fall behind by before new ones are dropped.
const QUEUE: usize = 8192;
/// Most points written in one transaction: enough to amortize a commit,
/// few enough that an agent enrolling meanwhile waits milliseconds, not
/// a second, for its turn to write.
const MAX_POINTS_PER_TX: usize = 5_000;

/// How long the state journal is kept by default.
pub const JOURNAL_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Clone)]
pub struct HistoryConfig {
    pub retention: Retention,
    /// Cap on the database's size on disk; the oldest history goes first.
    pub max_bytes: u64,
    /// How often rollups are brought up to date.
    pub rollup_every: Duration,
    /// How often retention and the cap are enforced.
    pub retention_every: Duration,
    /// How long the state journal (the twin's past) is kept.
    pub journal_retention: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            retention: Retention::default(),
            max_bytes: 2 << 30,
            rollup_every: Duration::from_secs(30),
            retention_every: Duration::from_secs(300),
            journal_retention: JOURNAL_RETENTION,
        }
    }
}

/// Counters the hub exposes about history writing.
#[derive(Debug, Default)]
pub struct HistoryStats {
    pub dropped_batches: AtomicU64,
    /// Writes that failed (their batches are lost).
    pub write_failures: AtomicU64,
    pub points_written: AtomicU64,
    /// Milliseconds from a batch's arrival to its commit, for the last write.
    pub write_lag_ms: AtomicI64,
}

/// The handle the rest of the hub uses.
#[derive(Debug, Clone)]
pub struct History {
    tx: mpsc::Sender<(Instant, String, Vec<Sample>)>,
    pub stats: Arc<HistoryStats>,
    pub config: HistoryConfig,
}

impl History {
    /// Starts the writer and the maintenance task; both stop (after a last
    /// write) when `stop` fires.
    pub fn spawn(
        store: Store,
        config: HistoryConfig,
        stop: CancellationToken,
    ) -> (History, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stats = Arc::new(HistoryStats::default());
        let dirty_from = Arc::new(AtomicI64::new(i64::MAX));
        let writer = Writer {
            store: store.clone(),
            ids: HashMap::new(),
            stats: stats.clone(),
            dirty_from: dirty_from.clone(),
        };
        let maintenance = Maintenance {
            store,
            config: config.clone(),
            dirty_from,
        };
        let task = tokio::spawn(async move {
            // Both stop on `stop`; the writer first drains what is queued, and
            // the last rollup runs after it.
            let writing = tokio::spawn(writer.run(rx, stop.clone()));
            maintenance.run(stop, writing).await;
        });
        (History { tx, stats, config }, task)
    }

    /// Queues a node's samples for writing. Never waits.
    pub fn record(&self, node_id: &str, samples: Vec<Sample>) {
        if self
            .tx
            .try_send((Instant::now(), node_id.to_string(), samples))
            .is_err()
        {
            self.stats.dropped_batches.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Batches waiting to be written.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Answers a range query: each series' points at `resolution`.
    pub async fn query(
        &self,
        store: &Store,
        node_id: &str,
        names: &[String],
        resolution: Resolution,
        from: i64,
        to: i64,
    ) -> Result<Vec<(String, Vec<Bucket>)>, StoreError> {
        let tier = match resolution {
            Resolution::Raw => None,
            Resolution::Tier(t) => Some(t),
        };
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            out.push((
                name.clone(),
                store.series_points(node_id, name, tier, from, to).await?,
            ));
        }
        Ok(out)
    }
}

/// A node's samples, flattened: (node, [(ts, [(series name, value)])]).
type NodeValues = (String, Vec<(i64, Vec<(String, f64)>)>);

struct Writer {
    store: Store,
    /// (node, series name) → series id.
    ids: HashMap<(String, String), i64>,
    stats: Arc<HistoryStats>,
    /// The oldest point written since the last rollup.
    dirty_from: Arc<AtomicI64>,
}

impl Writer {
    /// Writes until `stop`, then drains what is queued and returns.
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<(Instant, String, Vec<Sample>)>,
        stop: CancellationToken,
    ) {
        loop {
            let first = tokio::select! {
                biased;
                batch = rx.recv() => match batch {
                    Some(batch) => batch,
                    None => return,
                },
                _ = stop.cancelled() => match rx.try_recv() {
                    Ok(batch) => batch,
                    Err(_) => return,
                },
            };
            let mut batches = vec![first];
            let mut points: usize = batches[0].2.len() * 32;
            while points < MAX_POINTS_PER_TX {
                match rx.try_recv() {
                    Ok(b) => {
                        points += b.2.len() * 32;
                        batches.push(b);
                    }
                    Err(_) => break,
                }
            }
            let oldest_arrival = batches
                .iter()
                .map(|b| b.0)
                .min()
                .unwrap_or_else(Instant::now);
            if let Err(e) = self.write(batches).await {
                // Samples are history, not state: log, count, carry on.
                tracing::error!(error = %crate::report(&e), "writing metric history failed");
                self.stats.write_failures.fetch_add(1, Ordering::Relaxed);
            }
            self.stats.write_lag_ms.store(
                oldest_arrival.elapsed().as_millis() as i64,
                Ordering::Relaxed,
            );
        }
    }

    async fn write(
        &mut self,
        batches: Vec<(Instant, String, Vec<Sample>)>,
    ) -> Result<(), StoreError> {
        let flat: Vec<NodeValues> = batches
            .into_iter()
            .map(|(_, node, samples)| {
                let values = samples
                    .iter()
                    .map(|s| (s.ts_ms, series::flatten(s)))
                    .collect();
                (node, values)
            })
            .collect();
        // Series seen for the first time (a new node, disk or container) are
        // created together, in one transaction.
        let mut missing: HashSet<(String, String)> = HashSet::new();
        for (node, samples) in &flat {
            for (_, values) in samples {
                for (name, _) in values {
                    let key = (node.clone(), name.clone());
                    if !self.ids.contains_key(&key) {
                        missing.insert(key);
                    }
                }
            }
        }
        if !missing.is_empty() {
            let missing: Vec<_> = missing.into_iter().collect();
            let ids = self.store.series_ids(&missing).await?;
            self.ids.extend(ids);
        }
        let mut rows = Vec::new();
        for (node, samples) in flat {
            for (ts, values) in samples {
                for (name, value) in values {
                    let Some(&series_id) = self.ids.get(&(node.clone(), name)) else {
                        continue;
                    };
                    rows.push(PointWrite {
                        series_id,
                        ts,
                        value,
                    });
                }
            }
        }
        // In key order, one transaction sweeps the points table once instead
        // of hopping between the pages of thousands of series.
        rows.sort_unstable_by_key(|r| (r.series_id, r.ts));
        self.store.insert_points(&rows).await?;
        if let Some(oldest) = rows.iter().map(|r| r.ts).min() {
            self.dirty_from.fetch_min(oldest, Ordering::Relaxed);
        }
        self.stats
            .points_written
            .fetch_add(rows.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

struct Maintenance {
    store: Store,
    config: HistoryConfig,
    dirty_from: Arc<AtomicI64>,
}

/// How long ended commands (and their output) are kept.
pub const COMMANDS_KEPT_FOR: Duration = Duration::from_secs(90 * 24 * 3600);
/// How many ended commands are kept per host, newest first.
pub const COMMANDS_KEPT_PER_HOST: u32 = 1000;

impl Maintenance {
    async fn run(self, stop: CancellationToken, writer: JoinHandle<()>) {
        let mut rollups = tokio::time::interval(self.config.rollup_every);
        let mut retention = tokio::time::interval(self.config.retention_every);
        for t in [&mut rollups, &mut retention] {
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = rollups.tick() => self.log(self.roll_up().await, "rolling up history"),
                _ = retention.tick() => self.log(self.enforce_retention().await, "enforcing history retention"),
            }
        }
        let _ = writer.await;
        self.log(self.roll_up().await, "rolling up history");
    }

    fn log(&self, result: Result<(), StoreError>, what: &str) {
        if let Err(e) = result {
            tracing::error!(error = %crate::report(&e), "{what} failed");
        }
    }

    /// Recomputes every bucket touched since the last run, the open ones included.
    async fn roll_up(&self) -> Result<(), StoreError> {
        let from = self.dirty_from.swap(i64::MAX, Ordering::Relaxed);
        if from == i64::MAX {
            return Ok(());
        }
        // Never recompute from raw points that retention already removed.
        let raw_horizon = now_ms().saturating_sub(crate::store::millis(self.config.retention.raw));
        let from = from.max(raw_horizon);
        let to = now_ms() + 1;
        let mut source = None;
        for tier in TIERS {
            self.store.rollup(tier, source, from, to).await?;
            source = Some(tier);
        }
        Ok(())
    }

    /// Deletes by age, then, while over the cap, the oldest raw points and
    /// then the oldest rollups, a slice at a time.
    pub async fn enforce_retention(&self) -> Result<(), StoreError> {
        let now = now_ms();
        let r = &self.config.retention;
        let ago = |d: Duration| now.saturating_sub(crate::store::millis(d));
        let tiers: Vec<(u32, i64)> = TIERS
            .iter()
            .zip(r.tiers)
            .map(|(t, keep)| (*t, ago(keep)))
            .collect();
        self.store.delete_history_before(ago(r.raw), &tiers).await?;
        // Command history lives by the same clock: by age and by count per host.
        self.store
            .prune_commands(ago(COMMANDS_KEPT_FOR), COMMANDS_KEPT_PER_HOST)
            .await?;
        // So does the state journal (keeping each node's checkpoint at the cut).
        self.store
            .prune_journal(ago(self.config.journal_retention))
            .await?;
        self.store.compact().await?;
        for level in [None, Some(60), Some(900), Some(3600)] {
            while self.store.disk_bytes() > self.config.max_bytes {
                // Drop the oldest tenth of what is left of this level.
                let Some(cut) = self.store.oldest_tenth_cut(level).await? else {
                    break;
                };
                match level {
                    None => self.store.delete_history_before(cut, &[]).await?,
                    Some(tier) => {
                        self.store
                            .delete_history_before(i64::MIN, &[(tier, cut)])
                            .await?
                    }
                };
                self.store.compact().await?;
            }
        }
        // The twin's past goes last, the oldest tenth at a time.
        while self.store.disk_bytes() > self.config.max_bytes {
            let Some(oldest) = self.store.journal_oldest().await? else {
                break;
            };
            let cut = oldest + (now - oldest).max(10) / 10;
            if self.store.prune_journal(cut).await? == 0 {
                break;
            }
            self.store.compact().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
