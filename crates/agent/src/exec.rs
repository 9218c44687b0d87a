//! The executor: runs what the hub asks, if the agent's policy allows it.
//!
//! [`Executor::start`] checks the command against the [`Policy`] (the same
//! check the hub made, made again here because the agent has the last word),
//! then runs it in its own task: an action as an argv ([`process`]), its
//! path arguments first resolved on this host ([`paths`]: a symlink that
//! leaves its directory is refused), a lifecycle verb through the engine or
//! systemd ([`lifecycle`]). Output and
//! results go through one bounded channel to the link, which batches them
//! into frames; a slow link slows the readers, never the agent.

pub mod backup;
pub mod lifecycle;
pub mod output;
pub mod paths;
pub mod policy;
pub mod process;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use twinbay_proto::backup::{BackupSource, RestoreTarget};
use twinbay_proto::command::{
    Command, CommandResult, Op, Policy, Refusal, Status, Stream, TargetKind, Verb,
};

pub use output::Event;
use output::Sink;
use process::Ended;

/// Commands one agent runs at once; more are refused until one ends.
pub const MAX_RUNNING: usize = 16;
/// Output of lifecycle verbs is not capped by a policy; logs stream on.
const LIFECYCLE_CAP: u64 = u64::MAX;

/// The agent's side of commands: its policy, what runs, and the channel to the link.
pub struct Executor {
    policy: policy::Loaded,
    container_socket: Option<String>,
    running: Mutex<HashMap<String, CancellationToken>>,
    events: mpsc::Sender<Event>,
    /// Fired by `restart` on the agent itself.
    restart: CancellationToken,
    started: Instant,
    /// Where backups upload to: set by the link once the hub welcomed it.
    uploader: Mutex<Option<backup::Uploader>>,
    /// How `update` installs a release, and where it leaves the trial.
    updater: Mutex<Option<(crate::update::Updater, crate::update::TrialSlot)>>,
}

/// What the link holds: the executor and the receiving end of its events.
pub struct Channel {
    pub executor: Arc<Executor>,
    pub events: mpsc::Receiver<Event>,
}

impl Executor {
    pub fn channel(
        policy: policy::Loaded,
        container_socket: Option<String>,
        restart: CancellationToken,
    ) -> Channel {
        let (events, rx) = mpsc::channel(64);
        Channel {
            executor: Arc::new(Executor {
                policy,
                container_socket,
                running: Mutex::new(HashMap::new()),
                events,
                restart,
                started: Instant::now(),
                uploader: Mutex::new(None),
                updater: Mutex::new(None),
            }),
            events: rx,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy.policy
    }

    /// The hub to upload backups to (the link's, with the agent's key).
    pub fn set_uploader(&self, uploader: backup::Uploader) {
        *self.uploader.lock().unwrap_or_else(|e| e.into_inner()) = Some(uploader);
    }

    /// Lets `update` install releases (an agent that is its own process).
    pub fn set_updater(&self, updater: crate::update::Updater, slot: crate::update::TrialSlot) {
        *self.updater.lock().unwrap_or_else(|e| e.into_inner()) = Some((updater, slot));
    }

    /// Starts `cmd` if the policy allows it; a refusal is answered at once.
    pub fn start(self: &Arc<Self>, cmd: Command) {
        let refuse = |error: String| {
            tracing::warn!(id = cmd.id, actor = cmd.actor, error, "refused a command");
            let result = CommandResult {
                id: cmd.id.clone(),
                status: Status::Refused,
                exit_code: None,
                error: Some(error),
                duration_ms: 0,
                truncated: false,
            };
            let events = self.events.clone();
            tokio::spawn(async move {
                let _ = events.send(Event::Result(result)).await;
            });
        };
        if let Err(refusal) = cmd.op.authorize(self.policy(), cmd.role) {
            return refuse(refusal.to_string());
        }
        let cancel = CancellationToken::new();
        {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            if running.contains_key(&cmd.id) {
                return refuse(format!("a command with id {} is already running", cmd.id));
            }
            if running.len() >= MAX_RUNNING {
                return refuse(format!(
                    "{MAX_RUNNING} commands are running on this agent already; try again when one ends"
                ));
            }
            running.insert(cmd.id.clone(), cancel.clone());
        }
        tracing::info!(
            id = cmd.id,
            actor = cmd.actor,
            what = cmd.op.summary(),
            "running a command"
        );
        let this = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let cap = match &cmd.op {
                Op::Action { name, .. }
                | Op::Backup {
                    source: BackupSource::Action { name, .. },
                    ..
                }
                | Op::Restore {
                    target: RestoreTarget::Action { name, .. },
                    ..
                } => this.policy().actions[name].output_cap,
                Op::Backup { .. } | Op::Restore { .. } => policy::DEFAULT_OUTPUT_CAP,
                Op::Lifecycle { .. } => LIFECYCLE_CAP,
            };
            let mut sink = Sink::new(&cmd.id, this.events.clone(), cancel.clone(), cap);
            let ended = this.run(&cmd, &mut sink, &cancel).await;
            let result = CommandResult {
                id: cmd.id.clone(),
                status: ended.status,
                exit_code: ended.exit_code,
                error: ended.error,
                duration_ms: started.elapsed().as_millis() as u64,
                truncated: sink.truncated(),
            };
            this.running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&cmd.id);
            if result.status == Status::Running {
                // An update on trial: its result comes on the next link.
                tracing::info!(id = cmd.id, "the update's result follows its trial");
                return;
            }
            tracing::info!(id = cmd.id, status = %result.status, exit_code = ?result.exit_code, "command ended");
            // Sent even after a cancel: the hub wants to know it ended.
            let _ = this.events.send(Event::Result(result)).await;
        });
    }

    async fn run(&self, cmd: &Command, sink: &mut Sink, cancel: &CancellationToken) -> Ended {
        match &cmd.op {
            Op::Action { name, args } => {
                let spec = &self.policy().actions[name];
                let env = &self.policy.run[name];
                // The argv again, now with path arguments resolved on this
                // host; off the runtime's threads, as a slow mount may stall.
                let bind = {
                    let (spec, args) = (spec.clone(), args.clone());
                    tokio::task::spawn_blocking(move || {
                        spec.bind_with(&args, |under, value| {
                            paths::resolve(under, value).map_err(|e| e.to_string())
                        })
                    })
                };
                let argv = match bind.await {
                    Ok(Ok(argv)) => argv,
                    Ok(Err(e)) => {
                        let error = Refusal::BadArgument(e).to_string();
                        tracing::warn!(id = cmd.id, actor = cmd.actor, error, "refused a command");
                        return Ended {
                            status: Status::Refused,
                            exit_code: None,
                            error: Some(error),
                        };
                    }
                    Err(e) => {
                        return Ended {
                            status: Status::Failed,
                            exit_code: None,
                            error: Some(format!("resolving the arguments failed: {e}")),
                        };
                    }
                };
                process::run(
                    process::Spec {
                        argv: &argv,
                        cwd: &env.cwd,
                        env: &env.env,
                        timeout: Some(Duration::from_secs(spec.timeout_secs)),
                    },
                    sink,
                    cancel,
                )
                .await
            }
            Op::Backup { source, .. } => self.backup(cmd, source, sink, cancel).await,
            Op::Restore { target, .. } => {
                let source = match target {
                    RestoreTarget::Dir { path } => BackupSource::Dir {
                        path: path.clone(),
                        exclude: Vec::new(),
                    },
                    RestoreTarget::Volume { name } => BackupSource::Volume {
                        name: name.clone(),
                        exclude: Vec::new(),
                    },
                    RestoreTarget::Action { name, args } => BackupSource::Action {
                        name: name.clone(),
                        args: args.clone(),
                    },
                };
                self.backup(cmd, &source, sink, cancel).await
            }
            Op::Lifecycle {
                verb: Verb::Update,
                version,
                arch,
                ..
            } => {
                let version = version.as_deref().unwrap_or_default();
                let arch = arch.as_deref().unwrap_or(std::env::consts::ARCH);
                self.update(&cmd.id, version, arch, sink).await
            }
            Op::Lifecycle {
                target,
                verb,
                lines,
                follow,
                ..
            } => {
                let req = lifecycle::Request {
                    target,
                    verb: *verb,
                    lines: *lines,
                    follow: *follow,
                };
                match target.kind {
                    TargetKind::Container => {
                        lifecycle::container(self.container_socket.as_deref(), req, sink, cancel)
                            .await
                    }
                    TargetKind::Unit | TargetKind::UserUnit => {
                        lifecycle::unit(req, sink, cancel).await
                    }
                    TargetKind::Agent => self.agent(req, sink, cancel).await,
                }
            }
        }
    }

    /// A backup: the producer's argv (paths resolved on this host), then
    /// the run and upload ([`backup::run`]).
    async fn backup(
        &self,
        cmd: &Command,
        source: &BackupSource,
        sink: &mut Sink,
        cancel: &CancellationToken,
    ) -> Ended {
        let refused = |error: String| {
            tracing::warn!(id = cmd.id, actor = cmd.actor, error, "refused a backup");
            Ended {
                status: Status::Refused,
                exit_code: None,
                error: Some(error),
            }
        };
        let no_env = std::collections::BTreeMap::new();
        let root_dir = std::path::PathBuf::from("/");
        let producer = match source {
            BackupSource::Dir { path, exclude } => {
                let roots = self
                    .policy()
                    .backup
                    .as_ref()
                    .map(|b| b.roots.clone())
                    .unwrap_or_default();
                let path = path.clone();
                let resolved = tokio::task::spawn_blocking(move || {
                    let mut last = format!("{path:?} is under no backup root");
                    for root in roots {
                        let root_trim = root.trim_end_matches('/');
                        let inside = path == root_trim
                            || path
                                .strip_prefix(root_trim)
                                .is_some_and(|rest| rest.starts_with('/'));
                        if !inside {
                            continue;
                        }
                        match paths::resolve(&root, &path) {
                            Ok(p) => return Ok(p),
                            Err(e) => last = format!("path {e}"),
                        }
                    }
                    Err(last)
                })
                .await;
                let resolved = match resolved {
                    Ok(Ok(p)) => p,
                    Ok(Err(e)) => return refused(e),
                    Err(e) => return refused(format!("resolving the path failed: {e}")),
                };
                let restore = matches!(cmd.op, Op::Restore { .. });
                backup::tar_producer(restore, &resolved, exclude, &root_dir, &no_env)
            }
            BackupSource::Volume { name, exclude } => {
                let allowed = self
                    .policy()
                    .backup
                    .as_ref()
                    .is_some_and(|b| b.allows_volume(name));
                if !allowed {
                    return refused(format!("volume {name:?} is not in backup.volumes"));
                }
                let resolved =
                    match backup::volume_dir(self.container_socket.as_deref(), name).await {
                        Ok(p) => p,
                        Err(e) => return refused(e),
                    };
                let restore = matches!(cmd.op, Op::Restore { .. });
                backup::tar_producer(restore, &resolved, exclude, &root_dir, &no_env)
            }
            BackupSource::Action { name, args } => {
                let spec = &self.policy().actions[name];
                let env = &self.policy.run[name];
                let bind = {
                    let (spec, args) = (spec.clone(), args.clone());
                    tokio::task::spawn_blocking(move || {
                        spec.bind_with(&args, |under, value| {
                            paths::resolve(under, value).map_err(|e| e.to_string())
                        })
                    })
                };
                let argv = match bind.await {
                    Ok(Ok(argv)) => argv,
                    Ok(Err(e)) => return refused(Refusal::BadArgument(e).to_string()),
                    Err(e) => return refused(format!("resolving the arguments failed: {e}")),
                };
                backup::Producer {
                    argv,
                    cwd: &env.cwd,
                    env: &env.env,
                    timeout: Duration::from_secs(spec.timeout_secs),
                }
            }
        };
        let uploader = self
            .uploader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if matches!(cmd.op, Op::Restore { .. }) {
            backup::restore(uploader, &cmd.id, producer, sink, cancel).await
        } else {
            backup::run(uploader, &cmd.id, producer, sink, cancel).await
        }
    }

    /// `update`: download, verify and swap in a release, then hand the
    /// trial to the agent's outer loop (its result follows the trial, on
    /// the next link: `Status::Running` here means "not yet").
    async fn update(&self, id: &str, version: &str, arch: &str, sink: &mut Sink) -> Ended {
        let refused = |error: String| {
            tracing::warn!(id, version, error, "refused an update");
            Ended {
                status: Status::Refused,
                exit_code: None,
                error: Some(error),
            }
        };
        let Some((updater, slot)) = self
            .updater
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        else {
            return refused("this agent does not update itself".into());
        };
        let uploader = self
            .uploader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(up) = uploader else {
            return Ended {
                status: Status::Failed,
                exit_code: None,
                error: Some("the agent is not connected to a hub to update from".into()),
            };
        };
        let mut lines = Vec::new();
        let installed = crate::update::install(&updater, &up, id, version, arch, &mut |l| {
            tracing::info!(id, "{}", l.trim_end());
            lines.push(l)
        })
        .await;
        for l in lines {
            let _ = sink.text(Stream::Stdout, &l).await;
        }
        match installed {
            Ok(trial) => {
                let _ = sink
                    .text(
                        Stream::Stdout,
                        &format!(
                            "installed {version} (previous binary kept as {}); trying it for up to {}\n",
                            trial.prev.display(),
                            humantime::format_duration(updater.config.health_window)
                        ),
                    )
                    .await;
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(trial);
                // Give the output a moment to leave, then stop link and sources.
                let restart = self.restart.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    restart.cancel();
                });
                Ended {
                    status: Status::Running,
                    exit_code: None,
                    error: None,
                }
            }
            Err(crate::update::Refused::Refused(e)) => refused(e),
            Err(crate::update::Refused::Failed(e)) => Ended {
                status: Status::Failed,
                exit_code: None,
                error: Some(e),
            },
        }
    }

    /// The verbs on the agent itself.
    async fn agent(
        &self,
        req: lifecycle::Request<'_>,
        sink: &mut Sink,
        cancel: &CancellationToken,
    ) -> Ended {
        let text = match req.verb {
            Verb::Version => {
                let dir = self
                    .updater
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .map(|(u, _)| u.state_dir.clone());
                let version = match dir {
                    Some(dir) => crate::update::running_version(&dir),
                    None => crate::VERSION.to_string(),
                };
                format!("twinbay agent {version}\n")
            }
            Verb::Status => {
                let rss = std::fs::read_to_string("/proc/self/status")
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find(|l| l.starts_with("VmRSS:"))
                            .map(|l| l["VmRSS:".len()..].trim().to_string())
                    })
                    .unwrap_or_else(|| "?".into());
                format!(
                    "twinbay agent {}: running\npid: {}\nuptime: {}\nmemory: {rss}\npolicy: {} ({} actions)\ncommands running: {}\n",
                    crate::VERSION,
                    std::process::id(),
                    humantime::format_duration(Duration::from_secs(
                        self.started.elapsed().as_secs()
                    )),
                    self.policy
                        .source
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "built-in defaults".into()),
                    self.policy().actions.len(),
                    self.running.lock().unwrap_or_else(|e| e.into_inner()).len(),
                )
            }
            Verb::Restart => {
                // Answer first; the restart closes the link this result travels on.
                let restart = self.restart.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    restart.cancel();
                });
                "restarting: the agent rereads its policy, restarts its sources and reconnects\n"
                    .to_string()
            }
            Verb::Logs => {
                let (last, mut live) =
                    crate::logbuf::tail(req.lines.unwrap_or(lifecycle::DEFAULT_LOG_LINES) as usize);
                let mut text = last.join("\n");
                if !text.is_empty() {
                    text.push('\n');
                }
                if sink.text(Stream::Stdout, &text).await.is_err() {
                    return cancelled();
                }
                if req.follow {
                    loop {
                        let line = tokio::select! {
                            _ = cancel.cancelled() => return cancelled(),
                            line = live.recv() => line,
                        };
                        match line {
                            Ok(line) => {
                                if sink
                                    .text(Stream::Stdout, &format!("{line}\n"))
                                    .await
                                    .is_err()
                                {
                                    return cancelled();
                                }
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                                let _ = sink
                                    .text(Stream::Stderr, &format!("[{n} lines skipped]\n"))
                                    .await;
                            }
                            Err(_) => break,
                        }
                    }
                }
                String::new()
            }
            Verb::Start | Verb::Stop => {
                return Ended {
                    status: Status::Refused,
                    exit_code: None,
                    error: Some("the agent cannot start or stop itself".into()),
                };
            }
            Verb::Update => {
                return Ended {
                    status: Status::Refused,
                    exit_code: None,
                    error: Some("update needs a version".into()),
                };
            }
        };
        if sink.text(Stream::Stdout, &text).await.is_err() {
            return cancelled();
        }
        Ended {
            status: Status::Ok,
            exit_code: Some(0),
            error: None,
        }
    }

    /// Stops one command (its process group, or its stream).
    pub fn cancel(&self, id: &str) {
        if let Some(token) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
        {
            tracing::info!(id, "cancelling a command");
            token.cancel();
        }
    }

    /// Stops everything: the hub that asked is gone.
    pub fn cancel_all(&self) {
        for token in self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            token.cancel();
        }
    }

    /// How many commands run now.
    pub fn running(&self) -> usize {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

fn cancelled() -> Ended {
    Ended {
        status: Status::Cancelled,
        exit_code: None,
        error: None,
    }
}

#[cfg(test)]
mod tests;
