//! Metric history: samples are queued off the hot path and appended as one
//! compact row per (node, sample time); closed windows are sealed into
//! chunks and rolled up into 1 min / 15 min / 1 h buckets (min, avg, max);
//! history is trimmed by age per tier and by a cap on disk use.
//!
//! The link calls [`History::record`], which never waits: when the bounded
//! queue is full the batch is dropped and counted. One writer task owns the
//! queue; one maintenance task seals, rolls up and enforces retention as
//! reconcilers (idempotent, periodic). The storage layout is in
//! `store/history.rs`, the encodings in `history/codec.rs`.

pub mod series;

pub use twinbay_store::history::{codec, rollup};

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use twinbay_proto::model::Sample;

pub use series::{Resolution, Retention, TIERS};

use crate::store::{Bucket, Dictionary, SampleWrite, Store, StoreError, millis, now_ms};

/// Batches the writer may fall behind by before new ones wait (agents'
/// links, [`History::record_waiting`]) or are dropped (everyone else):
/// about 16 s of a 10,000-agent fleet's samples at a 5 s interval, so the
/// surge of a whole fleet connecting at once (every agent's full sync
/// written meanwhile) fits; a few tens of MiB while full.
const QUEUE: usize = 32_768;
/// How long an agent's link waits for room in a full queue before its batch
/// is dropped: long enough to ride out a fleet's reconnect surge, short of
/// the agent's own send timeout.
const RECORD_WAIT: Duration = Duration::from_secs(5);
/// Most samples written in one transaction: enough to amortize a commit,
/// few enough that an agent enrolling meanwhile waits milliseconds, not
/// a second, for its turn to write.
const MAX_SAMPLES_PER_TX: usize = 1_000;

/// How long the state journal is kept by default.
pub const JOURNAL_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Clone)]
pub struct HistoryConfig {
    pub retention: Retention,
    /// Cap on the database's size on disk; the oldest history goes first.
    pub max_bytes: u64,
    /// How often closed windows are sealed and rolled up.
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
    /// Batches that found the queue full and waited for room.
    pub waits: AtomicU64,
    /// Writes that failed (their batches are lost).
    pub write_failures: AtomicU64,
    /// Values written (a sample holds about 40).
    pub points_written: AtomicU64,
    pub samples_written: AtomicU64,
    /// Milliseconds from a batch's arrival to its commit, for the last write.
    pub write_lag_ms: AtomicI64,
}

/// Nodes (by history key) that have rows not yet sealed, and the oldest
/// row time written since they were last sealed.
type Pending = Arc<Mutex<HashMap<i64, i64>>>;

/// The handle the rest of the hub uses.
#[derive(Debug, Clone)]
pub struct History {
    tx: mpsc::Sender<(Instant, String, Vec<Sample>)>,
    pub stats: Arc<HistoryStats>,
    pub config: HistoryConfig,
}

impl History {
    /// Starts the writer and the maintenance task; both stop (after a last
    /// write) when `stop` fires. Among replicas (`leadership`: whether this
    /// one holds the singleton lease), each seals and rolls up what it wrote,
    /// and only the leader enforces retention and the size cap.
    pub fn spawn(
        store: Store,
        config: HistoryConfig,
        leadership: Option<tokio::sync::watch::Receiver<bool>>,
        stop: CancellationToken,
    ) -> (History, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stats = Arc::new(HistoryStats::default());
        let pending = Pending::default();
        let writer = Writer {
            store: store.clone(),
            dict: Dictionary::default(),
            stats: stats.clone(),
            pending: pending.clone(),
        };
        let maintenance = Maintenance {
            store,
            config: config.clone(),
            pending,
            leadership,
        };
        let task = tokio::spawn(async move {
            // Both stop on `stop`; the writer first drains what is queued.
            // Nothing needs a last roll-up: rows are kept until sealed, and
            // the buckets of open windows are computed when asked.
            let writing = tokio::spawn(writer.run(rx, stop.clone()));
            maintenance.run(stop).await;
            let _ = writing.await;
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

    /// Queues a node's samples, waiting up to [`RECORD_WAIT`] for room when
    /// the writer is behind: the caller (an agent's link) stops reading
    /// meanwhile, so the agent's own buffer holds what would otherwise be
    /// lost. Dropped and counted only past that.
    pub async fn record_waiting(&self, node_id: &str, samples: Vec<Sample>) {
        let batch = (Instant::now(), node_id.to_string(), samples);
        let batch = match self.tx.try_send(batch) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.stats.dropped_batches.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(mpsc::error::TrySendError::Full(batch)) => batch,
        };
        self.stats.waits.fetch_add(1, Ordering::Relaxed);
        if self.tx.send_timeout(batch, RECORD_WAIT).await.is_err() {
            self.stats.dropped_batches.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Batches waiting to be written.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Answers a range query: each series' points at `resolution`, from
    /// no earlier than that resolution's retention.
    pub async fn query(
        &self,
        store: &Store,
        node_id: &str,
        names: &[String],
        resolution: Resolution,
        from: i64,
        to: i64,
    ) -> Result<Vec<(String, Vec<Bucket>)>, StoreError> {
        let r = &self.config.retention;
        let (tier, keep) = match resolution {
            Resolution::Raw => (None, r.raw),
            Resolution::Tier(t) => (Some(t), r.tiers[rollup::tier_index(t)]),
        };
        let from = from.max(now_ms().saturating_sub(millis(keep)));
        store.history_points(node_id, names, tier, from, to).await
    }
}

struct Writer {
    store: Store,
    /// Node keys and series indexes already known.
    dict: Dictionary,
    stats: Arc<HistoryStats>,
    pending: Pending,
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
            let mut samples = first.2.len();
            let mut batches = vec![first];
            while samples < MAX_SAMPLES_PER_TX {
                match rx.try_recv() {
                    Ok(b) => {
                        samples += b.2.len();
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
        let samples: Vec<SampleWrite> = batches
            .into_iter()
            .flat_map(|(_, node, samples)| {
                samples.into_iter().map(move |s| SampleWrite {
                    node: node.clone(),
                    ts: s.ts_ms,
                    values: series::flatten(&s),
                })
            })
            .collect();
        if samples.is_empty() {
            return Ok(());
        }
        let points: usize = samples.iter().map(|s| s.values.len()).sum();
        let touched = self.store.append_samples(&mut self.dict, &samples).await?;
        {
            let mut pending = lock(&self.pending);
            for (node, oldest) in touched {
                let at = pending.entry(node).or_insert(oldest);
                *at = (*at).min(oldest);
            }
        }
        self.stats
            .points_written
            .fetch_add(points as u64, Ordering::Relaxed);
        self.stats
            .samples_written
            .fetch_add(samples.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Maintenance {
    store: Store,
    config: HistoryConfig,
    pending: Pending,
    /// `None`: alone, so leading.
    leadership: Option<tokio::sync::watch::Receiver<bool>>,
}

/// How long ended commands (and their output) are kept.
pub const COMMANDS_KEPT_FOR: Duration = Duration::from_secs(90 * 24 * 3600);
/// How many ended commands are kept per host, newest first.
pub const COMMANDS_KEPT_PER_HOST: u32 = 1000;

impl Maintenance {
    async fn run(self, stop: CancellationToken) {
        // Rows a previous run left unsealed.
        match self.store.history_pending().await {
            Ok(rows) => {
                let mut pending = lock(&self.pending);
                for (node, oldest) in rows {
                    let at = pending.entry(node).or_insert(oldest);
                    *at = (*at).min(oldest);
                }
            }
            Err(e) => self.log(Err(e), "reading unsealed history"),
        }
        let mut rollups = tokio::time::interval(self.config.rollup_every);
        let mut retention = tokio::time::interval(self.config.retention_every);
        for t in [&mut rollups, &mut retention] {
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = rollups.tick() => self.log(self.roll_up(now_ms()).await, "rolling up history"),
                _ = retention.tick() => {
                    // The store is shared: one replica prunes it.
                    if self.leadership.as_ref().is_none_or(|l| *l.borrow()) {
                        self.log(self.enforce_retention(now_ms()).await, "enforcing history retention");
                    }
                }
            }
        }
    }

    fn log(&self, result: Result<(), StoreError>, what: &str) {
        if let Err(e) = result {
            tracing::error!(error = %crate::report(&e), "{what} failed");
        }
    }

    /// Seals the rows of closed windows into chunks, then rolls every tier
    /// up over the windows `now` has closed.
    async fn roll_up(&self, now: i64) -> Result<(), StoreError> {
        let before = rollup::floor(
            now.saturating_sub(crate::store::HISTORY_GRACE_MS),
            rollup::window_ms(rollup::RAW),
        );
        let due: Vec<(i64, i64)> = lock(&self.pending)
            .iter()
            .filter(|(_, oldest)| **oldest < before)
            .map(|(node, oldest)| (*node, *oldest))
            .collect();
        for group in due.chunks(crate::store::HISTORY_SEAL_PER_TX) {
            let nodes: Vec<i64> = group.iter().map(|(node, _)| *node).collect();
            let sealed = self.store.seal_history(&nodes, before).await?;
            let mut pending = lock(&self.pending);
            for ((node, remaining), (_, seen)) in sealed.into_iter().zip(group) {
                // A row written meanwhile moved the mark: keep it for next time.
                if pending.get(&node) != Some(seen) {
                    continue;
                }
                if remaining {
                    pending.insert(node, before);
                } else {
                    pending.remove(&node);
                }
            }
        }
        self.store.roll_up_history(now).await?;
        Ok(())
    }

    /// Deletes by age, then, while over the cap, the oldest raw history
    /// and then the oldest of each tier, a tenth at a time.
    pub async fn enforce_retention(&self, now: i64) -> Result<(), StoreError> {
        let r = &self.config.retention;
        let ago = |d: Duration| now.saturating_sub(millis(d));
        // The partitions ahead (PostgreSQL): a failure only leaves samples
        // in the DEFAULT partition until the next run.
        if let Err(e) = self.store.keep_history_partitions(now).await {
            tracing::warn!(error = %crate::report(&e), "making history partitions failed");
        }
        self.store
            .delete_history_before(rollup::RAW, ago(r.raw))
            .await?;
        for (tier, keep) in TIERS.iter().zip(r.tiers) {
            self.store.delete_history_before(*tier, ago(keep)).await?;
        }
        // Command history lives by the same clock: by age and by count per host.
        self.store
            .prune_commands(ago(COMMANDS_KEPT_FOR), COMMANDS_KEPT_PER_HOST)
            .await?;
        // So does the state journal (keeping each node's checkpoint at the cut).
        self.store
            .prune_journal(ago(self.config.journal_retention))
            .await?;
        self.store.compact().await?;
        for level in rollup::LEVELS {
            while self.store.disk_bytes() > self.config.max_bytes {
                // Drop the oldest tenth of what is left of this level.
                let Some(cut) = self.store.oldest_tenth_cut(level).await? else {
                    break;
                };
                if self.store.delete_history_before(level, cut).await? == 0 {
                    break;
                }
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
