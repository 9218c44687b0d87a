//! Watched configuration files, at the hub: the content the agents send
//! (`file_chunk` frames, assembled here), asked for only when the hub lacks a
//! version (`need_files`).
//!
//! Placeholder spine: `receive` bounds what a connection may have in flight.

mod compose;
pub mod diff;
mod kv;
mod nginx;
pub mod risk;
mod unit;

use std::collections::HashMap;
use std::sync::Mutex;

use twinbay_proto::message::FileChunk;

/// Versions being assembled at once, hub-wide.
const IN_FLIGHT: usize = 256;

#[derive(Default)]
pub struct Files {
    partial: Mutex<HashMap<(String, String), Partial>>,
}

struct Partial {
    path: String,
    total: u64,
    data: String,
}

impl Files {
    /// A chunk of a version's content from `node_id`'s agent. Out-of-order,
    /// oversized or unasked-for chunks are dropped (the next `need_files`
    /// asks again).
    pub fn receive(&self, node_id: &str, chunk: FileChunk) -> Option<(String, String, String)> {
        let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        let key = (node_id.to_string(), chunk.sha256.clone());
        if chunk.offset == 0 {
            if partial.len() >= IN_FLIGHT && !partial.contains_key(&key) {
                return None;
            }
            partial.insert(
                key.clone(),
                Partial {
                    path: chunk.path.clone(),
                    total: chunk.total,
                    data: String::with_capacity(chunk.total.min(1 << 20) as usize),
                },
            );
        }
        let p = partial.get_mut(&key)?;
        if p.data.len() as u64 != chunk.offset || p.total != chunk.total || p.path != chunk.path {
            partial.remove(&key);
            return None;
        }
        p.data.push_str(&chunk.data);
        if p.data.len() as u64 == p.total {
            let done = partial.remove(&key)?;
            return Some((done.path, key.1, done.data));
        }
        None
    }
}
