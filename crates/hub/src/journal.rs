//! The twin's past: a per-node journal of state changes (pure parts).
//!
//! When the recorder writes a node's state it also appends what changed
//! since the last journaled state of that node: a [`Entry::Diff`] (proto's
//! diff, without the top processes, which churn with every sample), or a
//! [`Entry::Checkpoint`] (the whole state) at the node's first entry and
//! after every [`CHECKPOINT_EVERY`] diffs, so any moment is one checkpoint
//! plus at most that many diffs away. Entries are zstd-compressed JSON.
//!
//! [`Journal`] keeps the last journaled state of each node it wrote (or
//! loaded back from the store after a restart); [`Journal::prepare`] turns a
//! node's new state into a row and the head to keep once that row is
//! committed. [`replay`] rebuilds a state from a checkpoint and its diffs;
//! `changes.rs` describes what changed between two moments.

pub mod changes;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use twinbay_proto::diff::{Change, apply, diff};
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
    Diff { changes: Vec<Change> },
}

/// A row of the journal table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub node_id: String,
    /// Unix ms; strictly increasing per node.
    pub ts: i64,
    pub checkpoint: bool,
    /// zstd of the entry's JSON.
    pub body: Vec<u8>,
}

/// Why a stored entry cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal entry of node {node} at {ts}: {why}")]
    Damaged { node: String, ts: i64, why: String },
    #[error("no journal of node {0} before that moment")]
    Before(String),
}

/// The last journaled state of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub state: NodeState,
    pub ts: i64,
    /// Diffs written since the last checkpoint.
    pub since_checkpoint: u32,
}

/// The state as the journal keeps it: without the top processes.
pub fn journaled(mut state: NodeState) -> NodeState {
    state.processes.clear();
    state
}

pub fn encode(entry: &Entry) -> Vec<u8> {
    let json = serde_json::to_vec(entry).expect("journal entries serialize");
    zstd::bulk::compress(&json, ZSTD_LEVEL).expect("zstd compresses into memory")
}

/// Most bytes an entry may decompress to (a full state stays well below).
const MAX_ENTRY: usize = 256 << 20;

pub fn decode(row: &Row) -> Result<Entry, JournalError> {
    let damaged = |why: String| JournalError::Damaged {
        node: row.node_id.clone(),
        ts: row.ts,
        why,
    };
    let json = zstd::bulk::decompress(&row.body, MAX_ENTRY).map_err(|e| damaged(e.to_string()))?;
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
                apply(&mut state, &changes).map_err(|e| JournalError::Damaged {
                    node: node.into(),
                    ts: row.ts,
                    why: e.to_string(),
                })?
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
    Ok(Head {
        state,
        ts,
        since_checkpoint: rows.iter().skip(1).filter(|r| !r.checkpoint).count() as u32,
    })
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
        let (checkpoint, ts, since) = match self.heads.get(node) {
            Some(head) => {
                if head.state == state {
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
        let (body, state) = match checkpoint {
            true => {
                let entry = Entry::Checkpoint {
                    state: Box::new(state),
                };
                let body = encode(&entry);
                let Entry::Checkpoint { state } = entry else {
                    unreachable!()
                };
                (body, *state)
            }
            false => {
                let changes = diff(&self.heads[node].state, &state);
                (encode(&Entry::Diff { changes }), state)
            }
        };
        let row = Row {
            node_id: node.to_string(),
            ts,
            checkpoint,
            body,
        };
        Some((
            row,
            Head {
                state,
                ts,
                since_checkpoint: since,
            },
        ))
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

#[cfg(test)]
mod tests;
