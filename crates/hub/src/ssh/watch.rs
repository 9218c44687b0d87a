//! Agentless hosts over SSH: the pool as the collector's [`Runner`], and
//! the collectors' lives (started when such a host is added and at every
//! hub start, stopped when it is removed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::SshError;
use super::hosts::SshHost;
use super::pool::Pool;
use crate::HubState;
use crate::agentless::runner::RunFuture;
use crate::agentless::{self, ExecOutput, RunError, Runner};
use crate::store::StoreError;

/// How often an agentless host is read unless it was added with another interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// The shortest interval a host may be given.
pub const MIN_INTERVAL_SECS: u64 = 2;

/// One host's commands through the pool's connection to it.
pub struct SshRunner {
    pool: Pool,
    host: String,
}

impl Runner for SshRunner {
    fn run<'a>(
        &'a self,
        argv: &'a [String],
        timeout: Duration,
        max_output: usize,
    ) -> RunFuture<'a> {
        Box::pin(async move {
            match self.pool.exec(&self.host, argv, timeout, max_output).await {
                Ok(out) if out.truncated => Err(RunError::TooLarge(max_output)),
                Ok(out) => Ok(ExecOutput {
                    status: out.status,
                    stdout: out.stdout,
                    stderr: out.stderr,
                    duration: out.duration,
                }),
                Err(e) => Err(run_error(e)),
            }
        })
    }
}

/// What the collector makes of the pool's refusal: anything about reaching
/// or trusting the host makes it unreachable (its sources say why).
fn run_error(e: SshError) -> RunError {
    match e {
        SshError::Timeout(d) => RunError::Timeout(d),
        e @ SshError::Channel(_) => RunError::Failed(e.to_string()),
        e => RunError::Unreachable(e.to_string()),
    }
}

/// The collectors that run, by SSH host id.
#[derive(Default)]
pub struct Collectors(Mutex<HashMap<String, agentless::Handle>>);

/// The node an agentless SSH host shows as.
pub fn node_id(host: &SshHost) -> String {
    host.node_id.clone().unwrap_or_else(|| host.id.clone())
}

/// Starts reading `host` (agentless) into the twin: makes its node (once)
/// and its collector. A collector already running is left as it is.
pub async fn begin(hub: &Arc<HubState>, host: &SshHost) -> Result<(), StoreError> {
    if !host.agentless {
        return Ok(());
    }
    let node = node_id(host);
    hub.store
        .add_agentless_node(&node, &format!("ssh-host:{}", host.id))
        .await?;
    if host.node_id.is_none() {
        hub.ssh
            .update(&hub.store, &host.id, |h| h.node_id = Some(node.clone()))
            .await?;
    }
    // Among replicas the leader reads every agentless host; the others
    // mirror what it publishes.
    if !hub.leads() {
        hub.tell_replicas(crate::replicas::wire::Changed::SshHosts);
        return Ok(());
    }
    let interval = host
        .interval_secs
        .map(|s| Duration::from_secs(s.max(MIN_INTERVAL_SECS)))
        .unwrap_or(DEFAULT_INTERVAL);
    let mut running = hub.ssh.collectors.0.lock().unwrap();
    if running.get(&host.id).is_some_and(|h| !h.is_finished()) {
        return Ok(());
    }
    let runner = Arc::new(SshRunner {
        pool: hub.ssh.pool.clone(),
        host: host.id.clone(),
    });
    running.insert(
        host.id.clone(),
        agentless::start(hub.clone(), &node, runner, interval),
    );
    Ok(())
}

/// Stops reading host `id`, if it was read.
pub async fn end(hub: &HubState, id: &str) {
    let handle = hub.ssh.collectors.0.lock().unwrap().remove(id);
    if let Some(h) = handle {
        h.stop().await;
    }
}

/// Reads what the store holds now, and nothing else: a collector for each
/// agentless host (put in the pool first, if another replica added it),
/// none for a host that is gone. At the start of a hub alone; among
/// replicas, when this one comes to lead and when another adds or removes
/// a host.
pub async fn sync(hub: &Arc<HubState>) {
    let hosts = match hub.store.ssh_hosts().await {
        Ok(hosts) => hosts,
        Err(e) => {
            tracing::error!(error = %crate::report(&e), "cannot read the SSH hosts");
            return;
        }
    };
    let wanted: Vec<&SshHost> = hosts.iter().filter(|h| h.agentless).collect();
    let gone: Vec<String> = hub
        .ssh
        .collectors
        .0
        .lock()
        .unwrap()
        .keys()
        .filter(|id| !wanted.iter().any(|h| &h.id == *id))
        .cloned()
        .collect();
    for id in gone {
        end(hub, &id).await;
        hub.ssh.pool.remove(&id);
    }
    for h in wanted {
        if !hub.ssh.pool.knows(&h.id) {
            match hub.ssh.entry(h) {
                Ok(entry) => hub.ssh.pool.register(&h.id, entry),
                Err(e) => {
                    tracing::warn!(host = h.id, error = %e, "an SSH host cannot be used");
                    continue;
                }
            }
        }
        if let Err(e) = begin(hub, h).await {
            tracing::error!(host = h.id, error = %crate::report(&e), "cannot start reading an agentless host");
        }
    }
}

/// Stops every collector (this replica no longer leads).
pub async fn end_all(hub: &HubState) {
    let ids: Vec<String> = hub
        .ssh
        .collectors
        .0
        .lock()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for id in ids {
        end(hub, &id).await;
    }
}
