//! Agentless hosts: the hub fills their twin by running a fixed registry of
//! commands over a [`Runner`] (SSH in production, `ssh*`; a local process
//! in tests) every interval.
//!
//! - `registry.rs`: the commands (argv, timeout, TTL, parser, twin part),
//!   variants for BusyBox/old systemd, "where present" detection.
//! - `runner.rs`: the [`Runner`] trait, [`LocalRunner`].
//! - `assemble.rs` (pure): results → `NodeState` + `Sample`.
//! - `collector.rs`: the per-host task, feeding the twin as a link does and
//!   recording every run (`store/agentless.rs`).
//!
//! The node is shown `agentless` (with its interval and what an agent would
//! add) in the API and UI.

pub mod assemble;
mod collector;
pub mod registry;
pub mod runner;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use runner::{ExecOutput, LocalRunner, RunError, Runner};

use crate::HubState;
use crate::history::History;
use crate::store::Store;
use crate::twin::{Agentless, Twin};

/// The default time between collections.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

/// How one host is collected.
#[derive(Debug, Clone)]
pub struct Config {
    pub interval: Duration,
    /// Files watched by `stat` + `sha256sum` (absolute paths).
    pub watch: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interval: DEFAULT_INTERVAL,
            watch: Vec::new(),
        }
    }
}

/// What a collector writes to: the hub's twin, history and store, and
/// the other hub replicas (which mirror the host as they mirror agents).
#[derive(Clone)]
pub struct Sink {
    pub twin: Arc<Twin>,
    pub history: History,
    pub store: Store,
    pub replicas: Option<Arc<crate::replicas::Replicas>>,
}

impl Sink {
    pub fn of(hub: &HubState) -> Sink {
        Sink {
            twin: hub.twin.clone(),
            history: hub.history.clone(),
            store: hub.store.clone(),
            replicas: hub.replicas.clone(),
        }
    }

    /// Hands what was applied to the twin to the other replicas, as an
    /// agent's link hands on its frames (`message` is made only if there
    /// are replicas).
    fn publish(
        &self,
        node_id: &str,
        message: impl FnOnce() -> twinbay_proto::message::AgentMessage,
    ) {
        if let Some(replicas) = &self.replicas {
            match serde_json::to_vec(&message()) {
                Ok(frame) => replicas.frame(node_id, &frame),
                Err(e) => tracing::warn!(node_id, error = %e, "cannot encode an agentless frame"),
            }
        }
    }
}

/// What a collector did, for a bench and `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Commands run on the host (probes included).
    pub commands: AtomicU64,
    /// Of those, the ones that did not reach an exit status.
    pub failures: AtomicU64,
    /// Collection runs.
    pub runs: AtomicU64,
}

impl Counters {
    pub fn commands(&self) -> u64 {
        self.commands.load(Ordering::Relaxed)
    }
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// A running collector.
pub struct Handle {
    pub node_id: String,
    pub counters: Arc<Counters>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Handle {
    /// Stops collecting; the node shows disconnected (its twin stays).
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }

    /// Whether the task ended (stopped, hub shutdown, or an agent took over).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Starts collecting node `node_id` every `interval` through `runner`.
/// The node must be enrolled (the SSH side creates it); it is added to the
/// twin if the twin does not know it yet. Stops with [`Handle::stop`] or
/// the hub's shutdown.
pub fn start(
    hub: Arc<HubState>,
    node_id: &str,
    runner: Arc<dyn Runner>,
    interval: Duration,
) -> Handle {
    start_with(
        Sink::of(&hub),
        hub.shutdown.child_token(),
        node_id,
        runner,
        Config {
            interval,
            ..Config::default()
        },
    )
}

/// [`start`] with its parts given: what to write to, when to stop, and the config.
pub fn start_with(
    sink: Sink,
    cancel: CancellationToken,
    node_id: &str,
    runner: Arc<dyn Runner>,
    config: Config,
) -> Handle {
    let config = Config {
        interval: config.interval.max(Duration::from_secs(1)),
        ..config
    };
    sink.twin.ensure_node(node_id, false, "");
    sink.twin.set_agentless(
        node_id,
        Some(Agentless {
            interval_secs: config.interval.as_secs(),
            without_agent: registry::WITHOUT_AGENT
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }),
    );
    let counters = Arc::new(Counters::default());
    let host = collector::Host::new(node_id.to_string(), runner, config, counters.clone());
    let task = tokio::spawn(collector::run(host, sink, cancel.clone()));
    Handle {
        node_id: node_id.to_string(),
        counters,
        cancel,
        task,
    }
}

#[cfg(test)]
mod tests;
