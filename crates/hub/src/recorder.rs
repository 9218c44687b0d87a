//! Writes changed twins to the store, batched off the hot path.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::journal::Journal;
use crate::store::Store;
use crate::timeline::Event;
use crate::twin::Twin;

/// How often nodes whose state changed are written.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Every how many flushes the nodes of which only liveness changed (last
/// seen, latest resources) are taken to be written, a share in each of the
/// flushes until the next take: these change with every sample, and losing
/// a few seconds of them in a crash loses nothing that matters.
const LIVENESS_EVERY: u32 = 15;
/// Most nodes written in one transaction.
const NODES_PER_TX: usize = 200;

/// Timeline events that may wait for the writer: a reconnect storm of
/// 10,000 agents brings one `agent.connected` each, at once.
pub const TIMELINE_QUEUE: usize = 65_536;
/// Most events written in one transaction.
const EVENTS_PER_TX: usize = 2_000;

/// Where the twin hands timeline events to the recorder. Never waits: when
/// the writer is [`TIMELINE_QUEUE`] events behind, an event is dropped and
/// counted (`timeline_dropped_events` in `GET /api/v1/hub` and `/metrics`).
#[derive(Debug, Clone)]
pub struct TimelineQueue {
    tx: mpsc::Sender<Event>,
    pub dropped: prometheus_client::metrics::counter::Counter,
}

impl TimelineQueue {
    pub fn new() -> (TimelineQueue, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(TIMELINE_QUEUE);
        let dropped = Default::default();
        (TimelineQueue { tx, dropped }, rx)
    }

    pub fn push(&self, event: Event) {
        if self.tx.try_send(event).is_err() && self.dropped.inc() == 0 {
            tracing::warn!(
                "the timeline writer is behind; events are dropped (counted in timeline_dropped_events)"
            );
        }
    }
}

/// Flushes node state every [`FLUSH_EVERY`] and timeline events as they
/// come, until `stop`; then once more.
pub async fn run(
    twin: Arc<Twin>,
    store: Store,
    mut events: mpsc::Receiver<Event>,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(FLUSH_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u32;
    let mut journal = Journal::new();
    let mut alive = Spread::default();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {
                ticks = ticks.wrapping_add(1);
                if ticks.is_multiple_of(LIVENESS_EVERY) {
                    alive.refill(twin.take_alive_ids());
                }
                let ids = twin.take_changed_ids_with(alive.next());
                write(&twin, &store, &mut journal, &ids).await;
                twin.set_journal_heads_bytes(journal.heads_bytes().0 as u64);
            }
            Some(first) = events.recv() => write_events(&store, first, &mut events).await,
        }
    }
    while let Ok(first) = events.try_recv() {
        write_events(&store, first, &mut events).await;
    }
    alive.refill(twin.take_alive_ids());
    let ids = twin.take_changed_ids_with(alive.queue.drain(..));
    write(&twin, &store, &mut journal, &ids).await;
}

/// Writes `first` and whatever else is queued, in one transaction.
async fn write_events(store: &Store, first: Event, events: &mut mpsc::Receiver<Event>) {
    let mut batch = vec![first];
    while let Ok(e) = events.try_recv() {
        batch.push(e);
        if batch.len() >= EVENTS_PER_TX {
            break;
        }
    }
    if let Err(e) = store.insert_events(&batch).await {
        tracing::error!(error = %crate::report(&e), events = batch.len(), "writing the timeline failed");
    }
}

/// Writes the nodes whose state changed, with their journal rows; with
/// `liveness`, also those of which only liveness changed.
pub async fn flush(twin: &Twin, store: &Store, journal: &mut Journal, liveness: bool) {
    write(twin, store, journal, &twin.take_dirty_ids(liveness)).await;
}

/// The nodes of which only liveness changed, taken from the twin every
/// [`LIVENESS_EVERY`] flushes and written a share at a time over the next
/// ones: every node's latest sample at once (10,000 of them) was a burst
/// of work every 15 s that held up everything else on two cores.
#[derive(Default)]
struct Spread {
    queue: Vec<String>,
    per_flush: usize,
}

impl Spread {
    fn refill(&mut self, ids: Vec<String>) {
        self.queue.extend(ids);
        self.per_flush = self.queue.len().div_ceil(LIVENESS_EVERY as usize);
    }

    /// This flush's share.
    fn next(&mut self) -> std::vec::Drain<'_, String> {
        let n = self.per_flush.min(self.queue.len());
        self.queue.drain(..n)
    }
}

/// Writes `ids` (`(id, with_state)`), with their journal rows.
async fn write(twin: &Twin, store: &Store, journal: &mut Journal, dirty: &[(String, bool)]) {
    // A slice at a time: copied, serialized and written in one transaction,
    // so other writers (an agent enrolling) get a turn in between and the
    // hub never holds a copy of every dirty node at once.
    for ids in dirty.chunks(NODES_PER_TX) {
        let mut slice = twin.writes(ids);
        let rows = journal_rows(store, journal, &mut slice).await;
        let (rows, heads): (Vec<_>, Vec<_>) = rows.into_iter().unzip();
        match store.save_nodes(&slice, &rows).await {
            Ok(()) => journal.commit(heads),
            Err(e) => {
                // The twin in memory is still right: try these nodes again
                // next time (the journal's heads stay where they were).
                tracing::error!(error = %crate::report(&e), nodes = slice.len(), "writing node state failed; will retry");
                twin.mark_dirty(slice.iter().map(|w| w.id.clone()));
            }
        }
    }
}

/// The journal rows for the states in `writes` (taken out of them), and the
/// heads to keep once they are committed. A node the journal has not met
/// since the hub started gets its head from the store first.
async fn journal_rows(
    store: &Store,
    journal: &mut Journal,
    writes: &mut [crate::store::NodeWrite],
) -> Vec<(crate::journal::Row, (String, crate::journal::Head))> {
    let mut out = Vec::new();
    for w in writes {
        let Some((ts, state)) = w.journal.take() else {
            continue;
        };
        if !journal.knows(&w.id) {
            let head = match store.journal_head(&w.id).await {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => match crate::journal::head_of(&w.id, &rows) {
                    Ok(head) => Some(head),
                    Err(e) => {
                        // Start over with a checkpoint.
                        tracing::warn!(error = %e, "the journal's last entries do not read back");
                        None
                    }
                },
                Err(e) => {
                    tracing::error!(error = %crate::report(&e), node = w.id, "reading the journal failed; this state is not journaled");
                    continue;
                }
            };
            journal.loaded(&w.id, head);
        }
        let ts = if ts > 0 { ts } else { crate::store::now_ms() };
        if let Some((row, head)) = journal.prepare(&w.id, ts, state) {
            out.push((row, (w.id.clone(), head)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_is_written_in_shares_each_id_once_in_order() {
        let mut spread = Spread::default();
        let ids: Vec<String> = (0..31).map(|i| format!("n{i}")).collect();
        spread.refill(ids.clone());
        let mut taken = Vec::new();
        let mut flushes = 0;
        while !spread.queue.is_empty() {
            let share: Vec<String> = spread.next().collect();
            assert!(share.len() <= 3, "{share:?}");
            taken.extend(share);
            flushes += 1;
        }
        assert_eq!(taken, ids);
        // Within the 15 flushes until the next take.
        assert!(flushes <= LIVENESS_EVERY, "{flushes}");
        // Nothing left: a flush takes nothing.
        assert_eq!(spread.next().count(), 0);
    }

    fn event(i: usize) -> Event {
        Event {
            node_id: format!("n{}", i % 7),
            ts: i as i64,
            kind: "agent.connected".into(),
            target: String::new(),
            detail: serde_json::json!({"i": i}),
        }
    }

    #[tokio::test]
    async fn a_storm_bigger_than_the_queue_is_counted_and_the_rest_written_in_order() {
        let dir = std::env::temp_dir().join(format!("twinbay-recorder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir).await.unwrap();
        let (queue, mut rx) = TimelineQueue::new();
        for i in 0..TIMELINE_QUEUE + 25 {
            queue.push(event(i));
        }
        assert_eq!(queue.dropped.get(), 25);
        while let Ok(first) = rx.try_recv() {
            write_events(&store, first, &mut rx).await;
        }
        let stored = store.events(None, i64::MAX, 100_000).await.unwrap();
        assert_eq!(stored.len(), TIMELINE_QUEUE);
        // Newest first: the last event that fitted, then the ones before it.
        assert_eq!(stored[0], event(TIMELINE_QUEUE - 1));
        assert_eq!(stored[stored.len() - 1], event(0));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
