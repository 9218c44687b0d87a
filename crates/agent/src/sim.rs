//! `twinbay sim`: many simulated agents in one process, each a real protocol client.
//!
//! Every simulated agent has its own ed25519 key, its own link to the hub
//! (the same [`crate::link`] code a real agent runs: TLS with the pinned
//! certificate, challenge and proof, full sync, then diffs, metrics and
//! heartbeats, reconnects with jittered backoff) and its own invented host
//! ([`host::SimHost`]) that changes every interval.
//!
//! Keys are derived from the join token and the agent's number, so running
//! the same command again brings back the same nodes instead of adding new
//! ones. The hub lets a join token first spent by a simulated agent enroll
//! the rest of its simulated fleet (until it expires), and never a real agent.

pub mod host;

use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use twinbay_proto::command::{
    Command, CommandResult, Op, OutputChunk, Status, Stream, TargetKind, Verb,
};
use twinbay_proto::join::JoinString;

use crate::buffer::SampleBuffer;
use crate::identity::Identity;
use crate::{AgentError, link, now_ms};
use host::SimHost;

/// Samples a simulated agent keeps while disconnected (a minute at 5 s).
const SIM_BUFFER: usize = 12;

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The join string `twinbay ctl join-token create` printed.
    pub join: String,
    /// How many agents to simulate.
    pub agents: usize,
    /// How often each agent samples and changes.
    pub interval: Duration,
    /// State changes (container restarts, ports, unit failures) per agent per minute.
    pub churn_per_min: f64,
    /// Agents started per second, so the fleet does not all dial at once.
    pub ramp_per_sec: u32,
    /// Hub URLs to dial instead of the one in the join string.
    pub hub_override: Vec<String>,
    /// Numbers the agents (and so their keys and hosts) from here on.
    pub first_index: usize,
}

impl SimConfig {
    pub fn new(join: String, agents: usize) -> SimConfig {
        SimConfig {
            join,
            agents,
            interval: Duration::from_secs(5),
            churn_per_min: 1.0,
            ramp_per_sec: 1000,
            hub_override: Vec::new(),
            first_index: 0,
        }
    }
}

/// Runs the simulated fleet until `cancel` fires. Fails at once on a bad
/// join string; a refused agent stops alone, with a warning.
pub async fn run(config: SimConfig, cancel: CancellationToken) -> Result<(), AgentError> {
    let join = JoinString::parse(&config.join)?;
    let ramp = Duration::from_secs(1) / config.ramp_per_sec.max(1);
    let churn = (config.churn_per_min * config.interval.as_secs_f64() / 60.0).clamp(0.0, 1.0);
    let mut tasks = tokio::task::JoinSet::new();
    let mut next = tokio::time::interval(ramp);
    for index in config.first_index..config.first_index + config.agents {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = next.tick() => {}
        }
        let mut identity = Identity::simulated(agent_key(&join.token, index), &join);
        identity.override_hubs(config.hub_override.clone());
        let agent = SimAgent {
            index,
            identity,
            interval: config.interval,
            churn,
            seed: seed(&join.token, index),
        };
        tasks.spawn(agent.run(cancel.clone()));
    }
    tracing::info!(agents = config.agents, "simulated agents started");
    while tasks.join_next().await.is_some() {}
    Ok(())
}

struct SimAgent {
    index: usize,
    identity: Identity,
    interval: Duration,
    churn: f64,
    seed: u64,
}

impl SimAgent {
    async fn run(self, cancel: CancellationToken) {
        let mut host = SimHost::new(self.index, self.seed, now_ms());
        let (state_tx, state_rx) = watch::channel(host.state.clone());
        let samples = Arc::new(SampleBuffer::new(SIM_BUFFER));
        let link = tokio::spawn(link::run(
            self.identity,
            state_rx,
            samples.clone(),
            None,
            None,
            cancel.clone(),
        ));
        // Agents sample at their own phase, as real hosts booted at different times do.
        let phase = self.interval.mul_f64(fastrand::f64());
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + phase, self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {
                    let (_, sample) = host.step(now_ms(), self.interval, self.churn);
                    state_tx.send_if_modified(|state| {
                        if *state == host.state {
                            return false;
                        }
                        state.clone_from(&host.state);
                        true
                    });
                    samples.push(sample);
                }
            }
        }
        match link.await {
            Ok(Err(e)) => tracing::warn!(
                agent = self.index,
                error = %crate::error::report(&e),
                "simulated agent stopped"
            ),
            Err(e) => tracing::error!(agent = self.index, error = %e, "simulated agent crashed"),
            Ok(Ok(())) => {}
        }
    }
}

/// The key of simulated agent `index` for a join token: the same every run.
pub fn agent_key(token: &str, index: usize) -> SigningKey {
    let digest = Sha256::new()
        .chain_update(b"twinbay-sim-key-v1\0")
        .chain_update(token.as_bytes())
        .chain_update((index as u64).to_le_bytes())
        .finalize();
    SigningKey::from_bytes(&digest.into())
}

fn seed(token: &str, index: usize) -> u64 {
    let digest = Sha256::new()
        .chain_update(b"twinbay-sim-host-v1\0")
        .chain_update(token.as_bytes())
        .chain_update((index as u64).to_le_bytes())
        .finalize();
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// How a simulated agent answers a command: it runs none, but pretends to
/// install an `update` (and says so), then reconnects as that version.
pub struct Pretence {
    pub output: Option<OutputChunk>,
    pub result: CommandResult,
    /// Reconnect, saying this version in the hello.
    pub restart_as: Option<String>,
}

pub fn pretend(cmd: &Command) -> Pretence {
    let refused = |why: &str| Pretence {
        output: None,
        result: CommandResult {
            id: cmd.id.clone(),
            status: Status::Refused,
            exit_code: None,
            error: Some(why.into()),
            duration_ms: 0,
            truncated: false,
        },
        restart_as: None,
    };
    let Op::Lifecycle {
        target,
        verb: Verb::Update,
        version: Some(version),
        ..
    } = &cmd.op
    else {
        return refused("this simulated agent runs no commands (it only pretends to update)");
    };
    if target.kind != TargetKind::Agent {
        return refused("only the agent itself is updated");
    }
    Pretence {
        output: Some(OutputChunk {
            id: cmd.id.clone(),
            stream: Stream::Stdout,
            data: format!(
                "simulated agent: pretends to download, verify and install {version} \
                 (nothing is downloaded or swapped)\n"
            ),
        }),
        result: CommandResult {
            id: cmd.id.clone(),
            status: Status::Ok,
            exit_code: Some(0),
            error: None,
            duration_ms: 0,
            truncated: false,
        },
        restart_as: Some(version.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_per_token_and_index() {
        let a = agent_key("tok", 1).verifying_key();
        assert_eq!(a, agent_key("tok", 1).verifying_key());
        assert_ne!(a, agent_key("tok", 2).verifying_key());
        assert_ne!(a, agent_key("other", 1).verifying_key());
    }

    fn lifecycle(verb: Verb, kind: TargetKind, version: Option<&str>) -> Command {
        Command {
            id: "c1".into(),
            role: twinbay_proto::command::Role::Admin,
            actor: "test".into(),
            op: Op::Lifecycle {
                target: twinbay_proto::command::Target {
                    kind,
                    name: String::new(),
                },
                verb,
                lines: None,
                follow: false,
                version: version.map(String::from),
                arch: None,
            },
        }
    }

    #[test]
    fn a_simulated_agent_pretends_updates_and_refuses_the_rest() {
        let p = pretend(&lifecycle(Verb::Update, TargetKind::Agent, Some("2.0.0")));
        assert_eq!(p.result.status, Status::Ok);
        assert_eq!(p.restart_as.as_deref(), Some("2.0.0"));
        assert!(p.output.unwrap().data.contains("simulated agent: pretends"));
        for cmd in [
            lifecycle(Verb::Restart, TargetKind::Agent, None),
            lifecycle(Verb::Update, TargetKind::Container, Some("2.0.0")),
            lifecycle(Verb::Update, TargetKind::Agent, None),
        ] {
            let p = pretend(&cmd);
            assert_eq!(p.result.status, Status::Refused);
            assert!(p.restart_as.is_none() && p.output.is_none());
        }
    }
}
