//! The per-host task: every interval, run the registry's due commands
//! through the [`Runner`], keep each result for its TTL, and feed the twin
//! like an agent's link would (connect, full sync then diffs, samples to
//! the twin and history, disconnect when the host cannot be reached).
//! Reads of the twin (API, UI, MCP) never reach this task: they see the
//! last result, so they cannot cause commands.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use twinbay_collect::files;

use super::assemble::{self, Assembler, Outcome, Results, Taken};
use super::registry::{self, Command, MAX_OUTPUT, PRESENCE_TTL, Parsed};
use super::runner::{RunError, Runner};
use super::{Config, Counters, Sink};
use crate::store::{CollectionRun, CommandRun, now_ms};
use twinbay_proto::message::AgentMessage;
use twinbay_proto::model::Sample;

/// What the task knows about its host between runs.
pub(super) struct Host {
    pub node_id: String,
    pub runner: Arc<dyn Runner>,
    pub config: Config,
    pub counters: Arc<Counters>,
    results: Results,
    /// When each result was taken (monotonic), for its TTL.
    taken_at: HashMap<&'static str, Instant>,
    /// Whether a program is on the host, and since when we know.
    presence: HashMap<&'static str, (bool, Instant)>,
    /// The variant that worked last, per command.
    chosen: HashMap<&'static str, usize>,
    assembler: Assembler,
    link: Option<Link>,
}

struct Link {
    conn: u64,
    seq: u64,
    replaced: CancellationToken,
}

/// Ends a run early: the host cannot be reached.
struct Unreachable(String);

fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let t: String = text.trim().chars().take(120).collect();
    if t.is_empty() { "no output".into() } else { t }
}

impl Host {
    pub fn new(
        node_id: String,
        runner: Arc<dyn Runner>,
        config: Config,
        counters: Arc<Counters>,
    ) -> Host {
        Host {
            node_id,
            runner,
            config,
            counters,
            results: Results::new(),
            taken_at: HashMap::new(),
            presence: HashMap::new(),
            chosen: HashMap::new(),
            assembler: Assembler::default(),
            link: None,
        }
    }

    async fn exec(
        &self,
        argv: &[String],
        timeout: Duration,
    ) -> Result<super::ExecOutput, RunError> {
        self.counters.commands.fetch_add(1, Ordering::Relaxed);
        let out = self.runner.run(argv, timeout, MAX_OUTPUT).await;
        if out.is_err() {
            self.counters.failures.fetch_add(1, Ordering::Relaxed);
        }
        out
    }

    /// Whether `program` is on the host (cached for [`PRESENCE_TTL`]).
    async fn present(&mut self, program: &'static str) -> Result<bool, Unreachable> {
        if let Some((yes, at)) = self.presence.get(program)
            && at.elapsed() < PRESENCE_TTL
        {
            return Ok(*yes);
        }
        let yes = match self
            .exec(&registry::presence_probe(program), Duration::from_secs(10))
            .await
        {
            Ok(out) => out.status == Some(0),
            Err(RunError::Unreachable(why)) => return Err(Unreachable(why)),
            Err(_) => false,
        };
        self.presence.insert(program, (yes, Instant::now()));
        Ok(yes)
    }

    /// Runs one command, trying its variants; the last one that worked first.
    async fn run_command(
        &mut self,
        cmd: &'static Command,
    ) -> Result<(Outcome, CommandRun), Unreachable> {
        let started = Instant::now();
        let first = self.chosen.get(cmd.name).copied().unwrap_or(0);
        let order = std::iter::once(first).chain((0..cmd.variants.len()).filter(|i| *i != first));
        let mut errors = Vec::new();
        let mut absent = Vec::new();
        let mut argv_tried = Vec::new();
        for i in order {
            let variant = &cmd.variants[i];
            if let Some(program) = variant.requires
                && !self.present(program).await?
            {
                if !absent.contains(&program) {
                    absent.push(program);
                }
                continue;
            }
            let argv: Vec<String> = variant.argv.iter().map(|s| s.to_string()).collect();
            argv_tried = argv.clone();
            let out = match self.exec(&argv, cmd.timeout).await {
                Ok(out) => out,
                Err(RunError::Unreachable(why)) => return Err(Unreachable(why)),
                Err(e) => {
                    errors.push(format!("{}: {e}", variant.argv.join(" ")));
                    continue;
                }
            };
            let partial = variant.partial_ok && !out.stdout.is_empty();
            if out.status != Some(0) && !partial {
                let status = out
                    .status
                    .map_or("a signal".to_string(), |s| format!("exit {s}"));
                errors.push(format!(
                    "{}: {status}: {}",
                    variant.argv.join(" "),
                    excerpt(&out.stderr)
                ));
                continue;
            }
            match (variant.parse)(&String::from_utf8_lossy(&out.stdout)) {
                Ok(parsed) => {
                    self.chosen.insert(cmd.name, i);
                    return Ok((
                        Outcome::Ok(parsed),
                        record(cmd.name, argv, started, "ok", None),
                    ));
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        if errors.is_empty() {
            let why = absent.join(", ");
            let outcome = format!("no {why}");
            return Ok((
                Outcome::Absent(outcome.clone()),
                record(cmd.name, argv_tried, started, "absent", Some(outcome)),
            ));
        }
        let why = errors.join("; ");
        Ok((
            Outcome::Failed(why.clone()),
            record(cmd.name, argv_tried, started, "failed", Some(why)),
        ))
    }

    /// `stat` and `sha256sum` of the watched files.
    async fn run_files(&mut self) -> Result<(Outcome, Vec<CommandRun>), Unreachable> {
        let [stat_argv, sum_argv] = registry::file_commands(&self.config.watch);
        let mut runs = Vec::new();
        let mut outputs = Vec::new();
        for argv in [stat_argv, sum_argv] {
            let started = Instant::now();
            let out = match self.exec(&argv, Duration::from_secs(20)).await {
                Ok(out) => out,
                Err(RunError::Unreachable(why)) => return Err(Unreachable(why)),
                Err(e) => {
                    runs.push(record(
                        "files",
                        argv,
                        started,
                        "failed",
                        Some(e.to_string()),
                    ));
                    return Ok((Outcome::Failed(e.to_string()), runs));
                }
            };
            // Both exit 1 when a file is missing and still print the others.
            runs.push(record("files", argv, started, "ok", None));
            outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let parsed = files::stat(&outputs[0]).and_then(|s| Ok((s, files::sha256sum(&outputs[1])?)));
        Ok(match parsed {
            Ok((stats, sums)) => (
                Outcome::Ok(Parsed::Files(files::watched(
                    &self.config.watch,
                    &stats,
                    &sums,
                ))),
                runs,
            ),
            Err(e) => (Outcome::Failed(e.to_string()), runs),
        })
    }

    /// One collection: the due commands, then the twin. Returns the run's record.
    pub async fn collect(&mut self, sink: &Sink) -> CollectionRun {
        let started_ms = now_ms();
        let started = Instant::now();
        self.counters.runs.fetch_add(1, Ordering::Relaxed);
        let mut commands = Vec::new();
        let mut unreachable = None;
        for cmd in registry::commands() {
            let due = self
                .taken_at
                .get(cmd.name)
                .is_none_or(|at| at.elapsed() >= cmd.ttl);
            if !due {
                continue;
            }
            match self.run_command(cmd).await {
                Ok((outcome, run)) => {
                    self.results.insert(
                        cmd.name,
                        Taken {
                            outcome,
                            at_ms: now_ms(),
                        },
                    );
                    self.taken_at.insert(cmd.name, Instant::now());
                    commands.push(run);
                }
                Err(Unreachable(why)) => {
                    unreachable = Some(why);
                    break;
                }
            }
        }
        if unreachable.is_none() && !self.config.watch.is_empty() {
            match self.run_files().await {
                Ok((outcome, runs)) => {
                    self.results.insert(
                        "files",
                        Taken {
                            outcome,
                            at_ms: now_ms(),
                        },
                    );
                    commands.extend(runs);
                }
                Err(Unreachable(why)) => unreachable = Some(why),
            }
        }
        let outcome = match &unreachable {
            Some(why) => {
                self.feed_unreachable(sink, why);
                "unreachable"
            }
            None => {
                self.feed(sink);
                let failed = commands.iter().any(|c| c.outcome == "failed");
                let ok = commands.iter().any(|c| c.outcome == "ok");
                match (failed, ok) {
                    (false, _) => "ok",
                    (true, false) => "failed",
                    (true, true) => "partial",
                }
            }
        };
        if unreachable.is_some() {
            // Ask again once it is back: programs may have changed meanwhile.
            self.presence.clear();
            self.taken_at.clear();
        }
        CollectionRun {
            node_id: self.node_id.clone(),
            started_ms,
            duration_ms: started.elapsed().as_millis() as i64,
            outcome: outcome.into(),
            commands: match unreachable {
                Some(why) => {
                    let mut c = commands;
                    c.push(CommandRun {
                        name: "connect".into(),
                        argv: Vec::new(),
                        ms: 0,
                        outcome: "unreachable".into(),
                        error: Some(why),
                    });
                    c
                }
                None => commands,
            },
        }
    }

    /// Whether an agent took the node over (its connection replaced ours).
    pub fn replaced(&self) -> Option<CancellationToken> {
        self.link.as_ref().map(|l| l.replaced.clone())
    }

    fn feed(&mut self, sink: &Sink) {
        let twin = &sink.twin;
        let last = twin
            .read(&self.node_id, |n| n.state.clone())
            .unwrap_or_default();
        let (state, sample) = self.assembler.build(&self.results, &last, now_ms());
        let link = match &mut self.link {
            Some(link) => link,
            None => {
                let (conn, replaced) = twin.connect(&self.node_id, "", None);
                if let Some(replicas) = &sink.replicas {
                    let agentless = twin
                        .read(&self.node_id, |n| n.agentless.as_deref().cloned())
                        .flatten();
                    replicas.connected(&self.node_id, "", None, false, "", agentless);
                }
                let link = self.link.insert(Link {
                    conn,
                    seq: 0,
                    replaced,
                });
                link.seq = 1;
                let shared = sink.replicas.is_some().then(|| state.clone());
                match twin.apply_full(&self.node_id, conn, 1, state) {
                    Ok(()) => sink.publish(&self.node_id, || AgentMessage::SyncFull {
                        seq: 1,
                        state: Box::new(shared.unwrap_or_default()),
                    }),
                    Err(e) => {
                        tracing::warn!(node_id = self.node_id, error = %crate::report(&e), "agentless state refused")
                    }
                }
                Self::record(sink, &self.node_id, sample);
                return;
            }
        };
        let changes = twinbay_proto::diff::diff(&last, &state);
        if !changes.is_empty() {
            link.seq += 1;
            if let Err(e) = twin.apply_diff(&self.node_id, link.conn, link.seq, &changes) {
                tracing::warn!(node_id = self.node_id, error = %crate::report(&e), "agentless diff refused; full sync next run");
                Self::disconnect(sink, &self.node_id, link.conn);
                self.link = None;
                return;
            }
            let seq = link.seq;
            sink.publish(&self.node_id, || AgentMessage::SyncDiff { seq, changes });
        } else {
            twin.touch(&self.node_id);
        }
        Self::record(sink, &self.node_id, sample);
    }

    /// A run's sample: into the twin and history, and to the other replicas.
    fn record(sink: &Sink, node_id: &str, sample: Option<Sample>) {
        if let Some(sample) = sample {
            sink.twin
                .record_samples(node_id, std::slice::from_ref(&sample));
            sink.publish(node_id, || AgentMessage::Metrics {
                samples: vec![sample.clone()],
            });
            sink.history.record(node_id, vec![sample]);
        }
    }

    /// The node shows disconnected, here and, if the link was still its
    /// own, on the other replicas.
    fn disconnect(sink: &Sink, node_id: &str, conn: u64) {
        if sink.twin.disconnect(node_id, conn)
            && let Some(replicas) = &sink.replicas
        {
            replicas.disconnected(node_id);
        }
    }

    fn feed_unreachable(&mut self, sink: &Sink, why: &str) {
        let Some(link) = self.link.take() else {
            tracing::info!(
                node_id = self.node_id,
                reason = why,
                "agentless host unreachable"
            );
            return;
        };
        let twin = &sink.twin;
        let last = twin
            .read(&self.node_id, |n| n.state.clone())
            .unwrap_or_default();
        let reason = format!("host unreachable: {why}");
        let down = assemble::unreachable(&last, &reason);
        let changes = twinbay_proto::diff::diff(&last, &down);
        if !changes.is_empty()
            && twin
                .apply_diff(&self.node_id, link.conn, link.seq + 1, &changes)
                .is_ok()
        {
            let seq = link.seq + 1;
            sink.publish(&self.node_id, || AgentMessage::SyncDiff { seq, changes });
        }
        Self::disconnect(sink, &self.node_id, link.conn);
    }

    /// Leaves the twin as an agent's going away would.
    pub fn close(&mut self, sink: &Sink) {
        if let Some(link) = self.link.take() {
            Self::disconnect(sink, &self.node_id, link.conn);
        }
    }
}

fn record(
    name: &str,
    argv: Vec<String>,
    started: Instant,
    outcome: &str,
    error: Option<String>,
) -> CommandRun {
    CommandRun {
        name: name.into(),
        argv,
        ms: started.elapsed().as_millis() as u64,
        outcome: outcome.into(),
        error,
    }
}

/// The task: collects now and every interval until `cancel`, or until an
/// agent takes the node over.
pub(super) async fn run(mut host: Host, sink: Sink, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(host.config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let replaced = host.replaced().unwrap_or_default();
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = replaced.cancelled(), if host.link.is_some() => {
                tracing::info!(node_id = host.node_id, "an agent connected for this agentless host; collection stops");
                host.link = None;
                return;
            }
            _ = tick.tick() => {}
        }
        let run = tokio::select! {
            _ = cancel.cancelled() => break,
            run = host.collect(&sink) => run,
        };
        if let Err(e) = sink.store.record_collection_run(&run).await {
            tracing::warn!(node_id = host.node_id, error = %crate::report(&e), "could not record a collection run");
        }
    }
    host.close(&sink);
}
