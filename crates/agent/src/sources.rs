//! Sources watch one part of the host each and feed the node's state.

pub mod host;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use twinbay_proto::model::NodeState;

use crate::buffer::SampleBuffer;

/// Samples the host every `interval`: identity changes go into the state,
/// numbers into the sample buffer.
pub async fn run_host_source(
    mut source: host::HostSource,
    interval: Duration,
    state: watch::Sender<NodeState>,
    samples: Arc<SampleBuffer>,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match source.sample(crate::now_ms()) {
            Ok(reading) => {
                state.send_if_modified(|s| {
                    let changed = s.host != reading.host;
                    if changed {
                        s.host = reading.host;
                    }
                    changed
                });
                samples.push(reading.sample);
            }
            Err(e) => tracing::warn!(error = %e, "sampling the host failed"),
        }
    }
}
