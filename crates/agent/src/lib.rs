//! The twinbay agent: watches this host and pushes every change to the hub.
//!
//! Sources ([`sources`]) sample the host into a [`watch`] channel of the
//! node's state and a bounded [`buffer::SampleBuffer`] of metrics. The link
//! ([`link`]) dials out to the hub, proves the agent's identity
//! ([`identity`]), sends a full sync and then only differences. While the hub
//! is unreachable, samples wait in the buffer and the link retries with
//! jittered exponential backoff ([`backoff`]). The agent never listens on a port.
#![forbid(unsafe_code)]

pub mod backoff;
pub mod buffer;
pub mod cli;
pub mod error;
pub mod exec;
pub mod identity;
pub mod link;
pub mod logbuf;
pub mod sim;
pub mod sources;
pub mod tls;
pub mod update;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use twinbay_proto::model::NodeState;

pub use error::AgentError;

/// The agent's version, reported to the hub.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Where the agent keeps its key and enrollment.
    pub state_dir: PathBuf,
    /// A join string, needed only until the agent has enrolled.
    pub join: Option<String>,
    /// What the sources collect, and how often.
    pub sources: sources::SourceConfig,
    /// Hub URLs to dial instead of the enrolled ones.
    pub hub_override: Vec<String>,
    /// The policy file (see `docs/commands.md`); `STATE_DIR/policy.yaml` if absent.
    pub policy: Option<PathBuf>,
    /// How the agent updates itself (off unless it is its own process).
    pub update: update::UpdateConfig,
}

/// Runs the agent until `cancel` fires or the hub refuses it for good. A
/// `restart` command runs it again from the start (policy, sources, link);
/// so does an `update`, after the new binary's trial ([`update::trial`],
/// which execs the new binary when it is healthy).
pub async fn run(config: AgentConfig, cancel: CancellationToken) -> Result<(), AgentError> {
    // Which file runs, before any update renames another over it.
    let _ = update::exe();
    // A trial a kill interrupted: put the previous binary back and run it.
    if config.update.enabled
        && let Some(exe) = update::recover_interrupted(&config.state_dir)
    {
        use std::os::unix::process::CommandExt;
        let mut args = std::env::args_os();
        let argv0 = args.next().unwrap_or_else(|| exe.clone().into());
        let err = std::process::Command::new(&exe)
            .arg0(argv0)
            .args(args)
            .exec();
        tracing::error!(error = %err, "cannot run the previous binary; running on");
    }
    loop {
        let restart = cancel.child_token();
        let trial: update::TrialSlot = Default::default();
        let ran = run_once(&config, restart.clone(), trial.clone()).await;
        // A swapped-in binary gets its trial (or is rolled back) whatever
        // ended the run.
        let trial = trial.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(trial) = trial {
            update::trial(
                &config.state_dir,
                config.update.health_window,
                trial,
                &cancel,
            )
            .await;
            if cancel.is_cancelled() {
                return Ok(());
            }
            tracing::info!("the update was rolled back; the agent runs on");
            continue;
        }
        ran?;
        if cancel.is_cancelled() || !restart.is_cancelled() {
            return Ok(());
        }
        tracing::info!("agent restarting, as asked");
    }
}

/// The policy the agent runs with: `--policy`, else `STATE_DIR/policy.yaml`
/// if it exists, else the defaults.
pub fn load_policy(config: &AgentConfig) -> Result<exec::policy::Loaded, AgentError> {
    let default = exec::policy::default_path(&config.state_dir);
    match &config.policy {
        Some(path) => exec::policy::load(path),
        None if default.exists() => exec::policy::load(&default),
        None => Ok(exec::policy::Loaded::default()),
    }
    .map_err(AgentError::Policy)
}

async fn run_once(
    config: &AgentConfig,
    cancel: CancellationToken,
    trial: update::TrialSlot,
) -> Result<(), AgentError> {
    let policy = load_policy(config)?;
    let mut files_config = config.sources.files.clone();
    files_config
        .watch
        .extend(policy.watch.paths.iter().cloned());
    files_config
        .exclude
        .extend(policy.watch.exclude.iter().cloned());
    let mut identity =
        identity::Identity::load_or_enroll(&config.state_dir, config.join.as_deref())?;
    identity.override_hubs(config.hub_override.clone());
    // The first round runs before the link, so the first full sync is whole.
    let mut collectors = sources::Collectors::new("/", &config.sources);
    let mut initial = NodeState::default();
    let first = collectors.collect(now_ms(), &mut initial)?;
    let (state_tx, state_rx) = watch::channel(initial);
    let state_tx = Arc::new(state_tx);
    let samples = Arc::new(buffer::SampleBuffer::new(buffer::DEFAULT_CAPACITY));
    samples.push(first);
    let container_stats = Arc::new(std::sync::Mutex::new(Vec::new()));
    let commands = exec::Executor::channel(
        policy,
        config.sources.container_socket.clone(),
        cancel.clone(),
    );
    commands.executor.set_updater(
        update::Updater {
            config: config.update.clone(),
            state_dir: config.state_dir.clone(),
            enrolled_keys: identity.enrollment.update_keys.clone(),
        },
        trial,
    );

    let containers = tokio::spawn(sources::containers::run(
        config.sources.container_socket.clone(),
        config.sources.interval,
        state_tx.clone(),
        container_stats.clone(),
        cancel.clone(),
    ));
    // The files source says when a unit's file changed (the units source
    // reads that unit again).
    let (unit_files_tx, unit_files_rx) = watch::channel(sources::files::UnitFiles::new());
    let units: Vec<_> = [sources::units::Bus::System, sources::units::Bus::User]
        .into_iter()
        .map(|bus| {
            tokio::spawn(sources::units::run(
                bus,
                config.sources.units.clone(),
                state_tx.clone(),
                unit_files_rx.clone(),
                cancel.clone(),
            ))
        })
        .collect();
    let generation = Arc::new(sources::files::FilesGeneration::default());
    let file_reader = link::FileReader {
        key: identity.file_key(),
        content_cap: files_config.content_cap,
        generation: Some(generation.clone()),
    };
    let files = tokio::spawn(sources::files::run(
        files_config,
        identity.file_key(),
        state_tx.clone(),
        sources::files::Signals {
            unit_files: unit_files_tx,
            generation,
        },
        cancel.clone(),
    ));
    let routes = tokio::spawn(sources::routes::run(
        config.sources.routes.clone(),
        state_tx.clone(),
        cancel.clone(),
    ));
    let sampler = tokio::spawn(sources::run(
        collectors,
        config.sources.clone(),
        state_tx,
        samples.clone(),
        container_stats,
        cancel.clone(),
    ));
    let result = link::run(
        identity,
        state_rx,
        samples,
        Some(commands),
        Some(file_reader),
        cancel.clone(),
    )
    .await;
    cancel.cancel();
    let _ = sampler.await;
    let _ = files.await;
    let _ = routes.await;
    let _ = containers.await;
    for task in units {
        let _ = task.await;
    }
    result
}

/// Wall-clock time in unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
