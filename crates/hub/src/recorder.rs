//! Writes changed twins to the store, batched off the hot path.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::Store;
use crate::twin::Twin;

/// How often changed nodes are written.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Flushes every [`FLUSH_EVERY`] until `stop`, then once more.
pub async fn run(twin: Arc<Twin>, store: Store, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(FLUSH_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => flush(&twin, &store).await,
        }
    }
    flush(&twin, &store).await;
}

pub async fn flush(twin: &Twin, store: &Store) {
    let writes = twin.take_dirty();
    if writes.is_empty() {
        return;
    }
    if let Err(e) = store.save_nodes(&writes).await {
        // The twin in memory is still right: try these nodes again next time.
        tracing::error!(error = %crate::report(&e), nodes = writes.len(), "writing node state failed; will retry");
        twin.mark_dirty(writes.into_iter().map(|w| w.id));
    }
}
