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
use std::pin::Pin;

use super::StoreError;
use crate::history::codec::Columns;

pub mod codec;
pub(crate) mod maintain;
pub mod rollup;

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
    pub(crate) nodes: HashMap<String, NodeNames>,
}

#[derive(Debug)]
pub(crate) struct NodeNames {
    pub(crate) key: i64,
    pub(crate) names: HashMap<String, u32>,
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
pub(crate) enum Want<'a> {
    All,
    Some(&'a [u32]),
}

impl Want<'_> {
    pub(crate) fn has(&self, idx: u32) -> bool {
        match self {
            Want::All => true,
            Want::Some(list) => list.contains(&idx),
        }
    }
}

/// Each series' points in time order, by dictionary index.
pub(crate) type Points = BTreeMap<u32, Vec<(i64, Columns)>>;

/// `[rolled_60, rolled_900, rolled_3600]` of a node.
pub(crate) type Rolled = [i64; 3];

#[async_trait::async_trait]
pub trait HistoryStore: Send + Sync {
    /// Appends samples as rows, in one transaction; a repeated (node, time)
    /// replaces the earlier sample. Nodes and series seen for the first time
    /// are added to the dictionary in the same transaction. Returns, per
    /// node key written, its oldest sample time.
    async fn append_samples(
        &self,
        dict: &mut Dictionary,
        samples: &[SampleWrite],
    ) -> Result<HashMap<i64, i64>, StoreError>;

    /// Names of every series of `node_id`.
    async fn series_names(&self, node_id: &str) -> Result<Vec<String>, StoreError>;

    /// Points of one series in `[from, to]`: raw (`tier` None) or rolled up.
    async fn series_points(
        &self,
        node_id: &str,
        name: &str,
        tier: Option<u32>,
        from: i64,
        to: i64,
    ) -> Result<Vec<Bucket>, StoreError>;

    /// Points of each named series in `[from, to]`, in the order asked; a
    /// series the node does not have is empty.
    async fn history_points(
        &self,
        node_id: &str,
        names: &[String],
        tier: Option<u32>,
        from: i64,
        to: i64,
    ) -> Result<Vec<(String, Vec<Bucket>)>, StoreError>;

    /// What the history holds, by level (`-1` for unsealed rows, `0` for raw
    /// chunks, else a tier): `(level, blobs, bytes)`.
    async fn history_usage(&self) -> Result<Vec<(i64, i64, i64)>, StoreError>;

    /// Bytes the database takes on disk: the file and its write-ahead log.
    fn disk_bytes(&self) -> u64;

    /// Hands freed pages back to the file system and truncates the WAL.
    async fn compact(&self) -> Result<(), StoreError>;
}

pub(crate) type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, sqlx::Error>> + Send + 'a>>;
