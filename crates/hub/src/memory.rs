//! The hub's memory, and where it goes: `memory` in `GET /api/v1/hub`.
//!
//! The resident size comes from `/proc/self/statm`; the allocator's own
//! counts (in use, free but kept) from a probe the binary installs
//! ([`set_heap_probe`]: the hub's crate has no unsafe code; the CLI asks
//! mimalloc or glibc); the twin's bytes from a size walk
//! ([`crate::twin::size`]) at most every [`WALK_EVERY`], since it reads every
//! node under the twin's read lock. [`run`] drops the shared-text pool's
//! unused strings now and then.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::twin::Twin;
use crate::twin::size::Sizes;

/// How often the twin's size walk may run: it costs ~22 µs a host (220 ms
/// of a core at 10,000 hosts), so a UI polling the hub's status does not
/// pay it on every poll.
pub const WALK_EVERY: Duration = Duration::from_secs(60);
/// How often unused shared text is dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// What the allocator says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes handed out and not freed.
    pub in_use: u64,
    /// Bytes freed but kept by the allocator (not returned to the system).
    pub free: u64,
}

static PROBE: OnceLock<fn() -> Option<HeapStats>> = OnceLock::new();

/// Installs the allocator's probe (once; later calls are ignored).
pub fn set_heap_probe(probe: fn() -> Option<HeapStats>) {
    let _ = PROBE.set(probe);
}

/// How long the allocator's counts are reused: glibc's `mallinfo2` walks
/// every free list under the arenas' locks (2 % of a 10,000-agent hub's
/// CPU when polled every second).
const HEAP_FRESH: Duration = Duration::from_secs(5);

/// The allocator's counts, when a probe is installed and answers (at most
/// [`HEAP_FRESH`] old).
pub fn heap() -> Option<HeapStats> {
    static LAST: Mutex<Option<(Instant, HeapStats)>> = Mutex::new(None);
    let probe = PROBE.get()?;
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((at, stats)) = *last
        && at.elapsed() < HEAP_FRESH
    {
        return Some(stats);
    }
    let stats = probe()?;
    *last = Some((Instant::now(), stats));
    Some(stats)
}

/// The resident set size in bytes, from a `/proc/PID/statm` text (its
/// second field, in pages).
pub fn parse_statm(text: &str, page_size: u64) -> Option<u64> {
    let pages: u64 = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
    pages.checked_mul(page_size)
}

/// This process's resident set size in bytes.
pub fn rss_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    parse_statm(&text, rustix::param::page_size() as u64)
}

/// The hub's memory, as `GET /api/v1/hub` reports it.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
#[schema(as = HubMemory)]
pub struct Memory {
    /// Resident set size of the hub's process, bytes.
    pub rss: Option<u64>,
    /// Heap bytes in use (the allocator's count: glibc's, or what mimalloc
    /// has committed; absent when the binary installed no probe).
    pub heap_in_use: Option<u64>,
    /// Heap bytes freed but still held by the allocator (0 under mimalloc,
    /// which returns free pages within milliseconds).
    pub heap_free: Option<u64>,
    /// Estimated heap bytes of all nodes' twins (state and latest sample).
    pub twin_bytes: u64,
    /// `twin_bytes` by part of the twin (containers, units, …).
    pub twin_parts: BTreeMap<String, u64>,
    /// Heap bytes of the journal's heads (each node's last journaled
    /// state, packed).
    pub journal_heads_bytes: u64,
    /// Strings in the shared-text pool, and the pool's table bytes.
    pub shared_strings: u64,
    pub shared_table_bytes: u64,
    /// Agent sessions open now (each with its TLS, WebSocket and task).
    pub agent_links: u64,
    /// When the twin was last walked (unix ms).
    pub walked_ms: i64,
}

/// The twin's last size walk, redone when older than [`WALK_EVERY`].
#[derive(Default)]
pub struct Walks {
    last: Mutex<Option<(Instant, Sizes, i64)>>,
}

impl Walks {
    /// The twin's sizes, walked now if the last walk is too old.
    pub fn twin(&self, twin: &Twin) -> (Sizes, i64) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match &*last {
            Some((at, sizes, ms)) if at.elapsed() < WALK_EVERY => (sizes.clone(), *ms),
            _ => {
                let sizes = twin.sizes();
                let ms = crate::store::now_ms();
                *last = Some((Instant::now(), sizes.clone(), ms));
                (sizes, ms)
            }
        }
    }
}

/// The hub's memory now (the twin's part at most [`WALK_EVERY`] old).
pub fn report(twin: &Twin, walks: &Walks, agent_links: usize) -> Memory {
    let heap = heap();
    let (sizes, walked_ms) = walks.twin(twin);
    let (strings, table) = twinbay_proto::text::intern::stats();
    Memory {
        rss: rss_bytes(),
        heap_in_use: heap.map(|h| h.in_use),
        heap_free: heap.map(|h| h.free),
        twin_bytes: sizes.total(),
        twin_parts: sizes
            .parts
            .iter()
            .map(|(part, bytes)| (part.to_string(), *bytes))
            .collect(),
        journal_heads_bytes: twin.journal_heads_bytes(),
        shared_strings: strings as u64,
        shared_table_bytes: table as u64,
        agent_links: agent_links as u64,
        walked_ms,
    }
}

/// Drops the shared text nothing holds any more, every [`PRUNE_EVERY`],
/// until `stop`.
pub async fn run(stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
        let dropped = tokio::task::spawn_blocking(twinbay_proto::text::intern::prune)
            .await
            .unwrap_or(0);
        if dropped > 0 {
            tracing::debug!(dropped, "dropped unused shared text");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statm_gives_resident_pages_times_the_page_size() {
        assert_eq!(
            parse_statm("1000 250 100 10 0 500 0\n", 4096),
            Some(250 * 4096)
        );
        assert_eq!(parse_statm("1000", 4096), None);
        assert_eq!(parse_statm("1000 x 1", 4096), None);
        assert_eq!(parse_statm("", 4096), None);
        assert_eq!(parse_statm("1 18446744073709551615", 4096), None);
    }

    #[test]
    fn own_rss_is_read() {
        let rss = rss_bytes().expect("Linux has /proc/self/statm");
        assert!(rss > 1 << 20, "{rss}");
    }

    #[test]
    fn the_walk_is_cached() {
        let twin = Twin::new(Vec::new());
        twin.ensure_node("n1", false, "key");
        let walks = Walks::default();
        let (first, at) = walks.twin(&twin);
        let (again, at2) = walks.twin(&twin);
        assert_eq!(first, again);
        assert_eq!(at, at2);
        let m = report(&twin, &walks, 3);
        assert_eq!(m.agent_links, 3);
        assert_eq!(m.twin_bytes, first.total());
        assert!(m.twin_parts.contains_key("containers"));
    }
}
