//! The twin's past: a per-node journal of state changes (pure parts).
//!
//! When the recorder writes a node's state it also appends what changed
//! since the last journaled state of that node: a [`Entry::Diff`] (proto's
//! diff, without the top processes, which churn with every sample), or a
//! [`Entry::Checkpoint`] (the whole state) at the node's first entry and
//! after every [`CHECKPOINT_EVERY`] diffs, so any moment is one checkpoint
//! plus at most that many diffs away. Entries are zstd-compressed JSON; a
//! diff names only the fields that changed of an item that was there before
//! ([`Step::Patch`]: `{"patch":"containers","key":…,"set":{"state":"exited"}}`),
//! which keeps a typical entry to about a third of the whole item's size.
//!
//! [`Journal`] keeps the last journaled state of each node it wrote (or
//! loaded back from the store after a restart); [`Journal::prepare`] turns a
//! node's new state into a row and the head to keep once that row is
//! committed. [`replay`] rebuilds a state from a checkpoint and its diffs;
//! `changes.rs` describes what changed between two moments.

pub mod changes;

use std::cell::RefCell;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use twinbay_proto::diff::{Change, Collection, Item, apply, diff};
use twinbay_proto::model::NodeState;

/// A checkpoint after this many diffs of a node.
pub const CHECKPOINT_EVERY: u32 = 64;
/// zstd level: small entries, cheap to compress either way.
const ZSTD_LEVEL: i32 = 3;

/// One journal entry, as stored (before compression).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// The whole state (processes left out).
    Checkpoint { state: Box<NodeState> },
    /// What changed since the node's previous entry.
    Diff { changes: Vec<Step> },
}

/// One change as journaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Step {
    /// Fields of an item present before: new values, `null` for a field
    /// now absent.
    Patch {
        patch: Collection,
        key: String,
        set: Map<String, Value>,
    },
    /// Proto's change, whole.
    Change(Box<Change>),
}

/// An item of `state` as JSON.
fn item_json(state: &NodeState, c: Collection, key: &str) -> Option<Value> {
    fn json<T: Serialize>(v: Option<&T>) -> Option<Value> {
        v.map(|v| serde_json::to_value(v).expect("state items serialize"))
    }
    match c {
        Collection::Containers => json(state.containers.get(key)),
        Collection::Units => json(state.units.get(key)),
        Collection::Ports => json(state.ports.get(key)),
        Collection::Sources => json(state.sources.get(key)),
        Collection::Interfaces => json(state.interfaces.get(key)),
        Collection::Mounts => json(state.mounts.get(key)),
        Collection::Processes => json(state.processes.get(key)),
        Collection::DiskHealth => json(state.disk_health.get(key)),
        Collection::Files => json(state.files.get(key)),
        Collection::Routes => json(state.routes.get(key)),
    }
}

/// `changes` (a diff from `before`) as journal steps: an upsert of an item
/// that was there becomes a patch of its changed fields when that is smaller.
pub fn compact(before: &NodeState, changes: Vec<Change>) -> Vec<Step> {
    changes
        .into_iter()
        .map(|change| {
            let whole = |change| Step::Change(Box::new(change));
            let Change::Upsert { key, item } = &change else {
                return whole(change);
            };
            let Some(Value::Object(old)) = item_json(before, item.collection(), key) else {
                return whole(change);
            };
            let Ok(Value::Object(tagged)) = serde_json::to_value(item) else {
                return whole(change);
            };
            let Some(Value::Object(new)) = tagged.get("value") else {
                return whole(change);
            };
            let mut set = Map::new();
            for (field, value) in new {
                if old.get(field) != Some(value) {
                    set.insert(field.clone(), value.clone());
                }
            }
            for field in old.keys().filter(|f| !new.contains_key(*f)) {
                set.insert(field.clone(), Value::Null);
            }
            if set.len() * 2 > new.len() {
                return whole(change);
            }
            Step::Patch {
                patch: item.collection(),
                key: key.clone(),
                set,
            }
        })
        .collect()
}

/// Journal steps back as proto's changes, against the state they apply to.
pub fn expand(state: &NodeState, steps: Vec<Step>) -> Result<Vec<Change>, String> {
    steps
        .into_iter()
        .map(|step| match step {
            Step::Change(c) => Ok(*c),
            Step::Patch { patch, key, set } => {
                let Some(Value::Object(mut item)) = item_json(state, patch, &key) else {
                    return Err(format!(
                        "a patch of {} {key:?}, which is not there",
                        patch.as_str()
                    ));
                };
                for (field, value) in set {
                    match value {
                        Value::Null => drop(item.remove(&field)),
                        v => drop(item.insert(field, v)),
                    }
                }
                let item: Item = serde_json::from_value(serde_json::json!({
                    "collection": patch.as_str(),
                    "value": item,
                }))
                .map_err(|e| format!("a patch of {} {key:?}: {e}", patch.as_str()))?;
                Ok(Change::Upsert { key, item })
            }
        })
        .collect()
}

pub use twinbay_store::journal::Row;

/// Why a stored entry cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal entry of node {node} at {ts}: {why}")]
    Damaged { node: String, ts: i64, why: String },
    #[error("no journal of node {0} before that moment")]
    Before(String),
}

/// The last journaled state of a node, packed: the zstd of its JSON. A hub
/// keeps one per node beside the live twin, and a second decoded copy of
/// every twin was most of its memory after the twin itself; packed it is a
/// few KiB, unpacked only to write a diff.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    packed: Vec<u8>,
    pub ts: i64,
    /// Diffs written since the last checkpoint.
    pub since_checkpoint: u32,
}

impl Head {
    /// A head holding `state`.
    pub fn new(state: &NodeState, ts: i64, since_checkpoint: u32) -> Head {
        Head::from_json(&state_json(state), ts, since_checkpoint)
    }

    fn from_json(json: &[u8], ts: i64, since_checkpoint: u32) -> Head {
        let mut packed = pack(json);
        packed.shrink_to_fit();
        Head {
            packed,
            ts,
            since_checkpoint,
        }
    }

    fn json(&self) -> Vec<u8> {
        unpack(&self.packed).expect("a head packed here unpacks")
    }

    /// The state it holds.
    pub fn state(&self) -> NodeState {
        serde_json::from_slice(&self.json()).expect("a head's JSON is a state")
    }

    /// Heap bytes it holds.
    pub fn bytes(&self) -> usize {
        self.packed.capacity()
    }
}

fn state_json(state: &NodeState) -> Vec<u8> {
    serde_json::to_vec(state).expect("states serialize")
}

/// The state as the journal keeps it: without the top processes.
pub fn journaled(mut state: NodeState) -> NodeState {
    state.processes.clear();
    state
}

pub fn encode(entry: &Entry) -> Vec<u8> {
    let json = serde_json::to_vec(entry).expect("journal entries serialize");
    pack(&json)
}

/// Most bytes an entry may decompress to (a full state stays well below).
const MAX_ENTRY: usize = 256 << 20;

thread_local! {
    // One context per thread, kept: a fresh one per entry (what
    // `zstd::bulk::compress` makes) was a few percent of a 10,000-agent
    // hub's CPU.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// zstd of `json`, with its size in the frame header (what [`unpack`] reads).
fn pack(json: &[u8]) -> Vec<u8> {
    COMPRESSOR.with_borrow_mut(|c| {
        let c = match c {
            Some(c) => c,
            None => c.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("a zstd context")),
        };
        c.compress(json).expect("zstd compresses into memory")
    })
}

/// The bytes `packed` holds. The buffer is the size the frame names (it
/// was reserved at `MAX_ENTRY`, 256 MiB, for every entry before: a mapping
/// made and unmade per diff).
fn unpack(packed: &[u8]) -> Result<Vec<u8>, String> {
    let size = zstd::zstd_safe::get_frame_content_size(packed)
        .map_err(|_| "not a zstd frame".to_string())?
        .ok_or_else(|| "the zstd frame does not say its size".to_string())?;
    if size > MAX_ENTRY as u64 {
        return Err(format!("{size} bytes unpacked, more than {MAX_ENTRY}"));
    }
    DECOMPRESSOR.with_borrow_mut(|d| {
        let d = match d {
            Some(d) => d,
            None => d.insert(zstd::bulk::Decompressor::new().map_err(|e| e.to_string())?),
        };
        d.decompress(packed, size as usize)
            .map_err(|e| e.to_string())
    })
}

pub fn decode(row: &Row) -> Result<Entry, JournalError> {
    let damaged = |why: String| JournalError::Damaged {
        node: row.node_id.clone(),
        ts: row.ts,
        why,
    };
    let json = unpack(&row.body).map_err(damaged)?;
    let entry: Entry = serde_json::from_slice(&json).map_err(|e| damaged(e.to_string()))?;
    match (&entry, row.checkpoint) {
        (Entry::Checkpoint { .. }, true) | (Entry::Diff { .. }, false) => Ok(entry),
        _ => Err(damaged("entry kind does not match its row".into())),
    }
}

/// The state after `rows` (a checkpoint, then the diffs after it, in time
/// order), and the ts of the last row applied.
pub fn replay(node: &str, rows: &[Row]) -> Result<(NodeState, i64), JournalError> {
    let mut rows = rows.iter();
    let first = rows
        .next()
        .ok_or_else(|| JournalError::Before(node.into()))?;
    let Entry::Checkpoint { state } = decode(first)? else {
        return Err(JournalError::Damaged {
            node: node.into(),
            ts: first.ts,
            why: "the journal does not start with a checkpoint".into(),
        });
    };
    let mut state = *state;
    let mut ts = first.ts;
    for row in rows {
        match decode(row)? {
            Entry::Checkpoint { state: s } => state = *s,
            Entry::Diff { changes } => {
                let damaged = |why: String| JournalError::Damaged {
                    node: node.into(),
                    ts: row.ts,
                    why,
                };
                let changes = expand(&state, changes).map_err(damaged)?;
                apply(&mut state, &changes).map_err(|e| damaged(e.to_string()))?
            }
        }
        ts = row.ts;
    }
    Ok((state, ts))
}

/// The head after `rows` (a checkpoint and every diff since, as the store
/// returns the newest ones for a restart).
pub fn head_of(node: &str, rows: &[Row]) -> Result<Head, JournalError> {
    let (state, ts) = replay(node, rows)?;
    let since = rows.iter().skip(1).filter(|r| !r.checkpoint).count() as u32;
    Ok(Head::new(&state, ts, since))
}

/// The last journaled state of each node, and what to append next.
#[derive(Debug, Default)]
pub struct Journal {
    heads: HashMap<String, Head>,
    checkpoint_every: u32,
}

impl Journal {
    pub fn new() -> Journal {
        Journal::with_checkpoints_every(CHECKPOINT_EVERY)
    }

    pub fn with_checkpoints_every(n: u32) -> Journal {
        Journal {
            heads: HashMap::new(),
            checkpoint_every: n.max(1),
        }
    }

    /// Whether the node's head is known (else load it from the store first).
    pub fn knows(&self, node: &str) -> bool {
        self.heads.contains_key(node)
    }

    pub fn head(&self, node: &str) -> Option<&Head> {
        self.heads.get(node)
    }

    /// Sets a head loaded from the store (`None`: the node has no journal yet).
    pub fn loaded(&mut self, node: &str, head: Option<Head>) {
        match head {
            Some(h) => drop(self.heads.insert(node.to_string(), h)),
            None => drop(self.heads.remove(node)),
        }
    }

    /// The row that journals `state` of `node` as of `ts`, and the head to
    /// keep once it is committed ([`Journal::commit`]); `None` when nothing
    /// journaled changed. The row's ts is `ts`, or just after the node's
    /// previous row if the clock went back.
    pub fn prepare(&self, node: &str, ts: i64, state: NodeState) -> Option<(Row, Head)> {
        let state = journaled(state);
        let json = state_json(&state);
        let (checkpoint, ts, since) = match self.heads.get(node) {
            Some(head) => {
                // States serialize the same way each time (maps in key
                // order): equal JSON is an equal state.
                if head.json() == json {
                    return None;
                }
                let ts = ts.max(head.ts + 1);
                match head.since_checkpoint + 1 >= self.checkpoint_every {
                    true => (true, ts, 0),
                    false => (false, ts, head.since_checkpoint + 1),
                }
            }
            None => (true, ts, 0),
        };
        let body = match checkpoint {
            true => encode(&Entry::Checkpoint {
                state: Box::new(state),
            }),
            false => {
                let head = self.heads[node].state();
                let changes = compact(&head, diff(&head, &state));
                encode(&Entry::Diff { changes })
            }
        };
        let row = Row {
            node_id: node.to_string(),
            ts,
            checkpoint,
            body,
        };
        Some((row, Head::from_json(&json, ts, since)))
    }

    /// Heap bytes of the heads (packed states), and how many.
    pub fn heads_bytes(&self) -> (usize, usize) {
        let bytes = self.heads.values().map(Head::bytes).sum();
        (bytes, self.heads.len())
    }

    /// Keeps the heads of rows that were committed.
    pub fn commit(&mut self, heads: impl IntoIterator<Item = (String, Head)>) {
        self.heads.extend(heads);
    }
}

/// A moment in a query: unix milliseconds or RFC 3339.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty time: give unix milliseconds or RFC 3339 (2026-12-01T03:12:00Z)".into());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<i64>()
            .map_err(|_| format!("{s:?} is too large for unix milliseconds"));
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            format!(
                "{s:?} is not a time: give unix milliseconds or RFC 3339 (2026-12-01T03:12:00Z): {e}"
            )
        })
}

/// A moment as people and assistants write it, for the CLI and MCP:
/// anything [`parse_time`] takes (unix ms, RFC 3339), a date and time
/// without an offset (`2026-12-01 03:12`, `2026-12-01T03:12:30`,
/// `2026-12-01`), read as **UTC**, or a span back from `now`
/// (`2h`, `90m ago`, `1d 6h ago`).
pub fn parse_moment(s: &str, now: i64) -> Result<i64, String> {
    let s = s.trim();
    if s.is_empty() || s.bytes().all(|b| b.is_ascii_digit()) {
        return parse_time(s);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, format) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp_millis());
    }
    let span = s.strip_suffix("ago").unwrap_or(s).trim();
    let back = span
        .starts_with(|c: char| c.is_ascii_digit())
        .then(|| humantime::parse_duration(span).ok())
        .flatten();
    if let Some(d) = back {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        return Ok(now.saturating_sub(ms));
    }
    Err(format!(
        "{s:?} is not a time: give RFC 3339 (2026-12-01T03:12:00Z), \
         'YYYY-MM-DD HH:MM[:SS]' (UTC), unix milliseconds, or a span back (2h, 30m ago)"
    ))
}

#[cfg(test)]
mod tests;
