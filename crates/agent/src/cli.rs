//! The agent's command line, shared by `twinbay agent` and the lean
//! `twinbay-agent` binary that `twinbay agent` hands over to (see
//! ARCHITECTURE.md, "The agent binary"): its arguments, logging, the default
//! state dir and the run loop with signal handling.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::{AgentConfig, AgentError};

/// `twinbay agent` / `twinbay-agent`: run the agent.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The join string from `twinbay ctl join-token create` (first start
    /// only). Visible to other users in `ps`: prefer --join-file or the
    /// TWINBAY_JOIN environment variable.
    #[arg(long, env = "TWINBAY_JOIN", conflicts_with = "join_file")]
    pub join: Option<String>,
    /// A file holding the join string (first start only).
    #[arg(long, value_name = "FILE")]
    pub join_file: Option<PathBuf>,
    /// Where the agent keeps its key and enrollment.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// A minisign public key (`RW…`, or a minisign.pub file) trusted for the
    /// agent's own updates, beside those its join string gave (repeat, or
    /// comma-separate in TWINBAY_UPDATE_KEYS).
    #[arg(
        long = "update-key",
        value_name = "KEY|FILE",
        env = "TWINBAY_UPDATE_KEYS",
        value_delimiter = ','
    )]
    pub update_keys: Vec<String>,
    /// How long a new binary has to connect and report healthy after an
    /// update before the agent rolls it back.
    #[arg(
        long,
        value_name = "DURATION",
        env = "TWINBAY_UPDATE_HEALTH_WINDOW",
        default_value = "60s",
        value_parser = parse_duration
    )]
    pub update_health_window: Duration,
    #[command(flatten)]
    pub sources: SourceArgs,
}

impl RunArgs {
    /// The agent's configuration: state dir defaulted, join file read.
    pub fn config(self) -> Result<AgentConfig, AgentError> {
        let state_dir = match self.state_dir {
            Some(dir) => dir,
            None => default_state_dir()?,
        };
        Ok(AgentConfig {
            state_dir,
            join: join_string(self.join, self.join_file.as_deref())?,
            policy: self.sources.policy.clone(),
            sources: self.sources.config(),
            hub_override: Vec::new(),
            update: crate::update::UpdateConfig {
                enabled: true,
                keys: self.update_keys,
                health_window: self.update_health_window,
            },
        })
    }
}

/// How long after the start `settled` runs: the sources have all started
/// and the link has sent its first full sync.
pub const SETTLED_AFTER: Duration = Duration::from_secs(30);

/// Runs the agent on the current thread until Ctrl-C or SIGTERM, and
/// `settled` once, [`SETTLED_AFTER`] the start (the lean binary gives back
/// the code pages only its start needed).
pub fn run_until_signal(args: RunArgs, settled: Option<fn()>) -> Result<(), AgentError> {
    let config = args.config()?;
    // The agent stays small: one thread does all its work.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let shutdown = shutdown_on_signal();
            if let Some(settled) = settled {
                let stop = shutdown.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = tokio::time::sleep(SETTLED_AFTER) => settled(),
                    }
                });
            }
            crate::run(config, shutdown).await
        })
}

/// Logs to stderr and into the agent's own ring ([`crate::logbuf`]), at
/// `default` unless `RUST_LOG` says otherwise (`info`, `twinbay_agent=debug,warn`…).
pub fn init_logging(default: &str) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| s.parse::<tracing_subscriber::filter::Targets>().ok())
        .unwrap_or_else(|| default.parse().unwrap_or_default());
    // Colours only for a person at a terminal (and not with NO_COLOR).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(colour)
                .with_writer(|| crate::logbuf::Tee),
        )
        .with(filter)
        .try_init();
}

/// Fires on Ctrl-C or SIGTERM. Call inside a Tokio runtime.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let fire = token.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        tracing::info!("shutting down");
        fire.cancel();
    });
    token
}

/// `$XDG_STATE_HOME/twinbay-agent`, else `~/.local/state/twinbay-agent`.
pub fn default_state_dir() -> Result<PathBuf, AgentError> {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("twinbay-agent"));
    }
    let home = std::env::var_os("HOME").ok_or(AgentError::NoStateDir)?;
    Ok(Path::new(&home).join(".local/state/twinbay-agent"))
}

/// The join string given, or read from `file` (trimmed; empty is an error).
pub fn join_string(
    given: Option<String>,
    file: Option<&Path>,
) -> Result<Option<String>, AgentError> {
    let Some(path) = file else {
        return Ok(given);
    };
    let bad = |reason: String| AgentError::JoinFile {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let join = text.trim();
    if join.is_empty() {
        return Err(bad("it is empty".into()));
    }
    Ok(Some(join.to_string()))
}

/// What the agent collects.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// How often to sample the host.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub interval: Duration,
    /// How many processes to report, by CPU and by memory each.
    #[arg(long, default_value_t = 10)]
    pub top_processes: usize,
    /// A `host:port` whose TCP connect time to measure (repeat for several).
    #[arg(long = "latency-target", value_name = "HOST:PORT")]
    pub latency_targets: Vec<String>,
    /// How often to read disk health with smartctl, if it is installed.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub smart_every: Duration,
    /// The agent's policy file: which lifecycle verbs and actions it runs
    /// (default: STATE_DIR/policy.yaml if it exists, else built-in defaults;
    /// see docs/commands.md).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The Docker or Podman API socket, if not in a usual place
    /// (`DOCKER_HOST`, /var/run/docker.sock, the user's and the system's Podman socket).
    #[arg(long)]
    pub container_socket: Option<String>,
    /// A label for this host, `KEY=VALUE` (repeat for several); users and
    /// tokens can be limited to hosts with given labels.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Which systemd units to report, as comma-separated globs; failed units always are.
    #[arg(long, default_value = crate::sources::DEFAULT_UNITS, value_parser = parse_units)]
    pub units: crate::sources::units::UnitFilter,
    /// A configuration file, directory (its files, recursively) or glob to
    /// watch (repeat for several); compose files of running containers and
    /// unit files are watched anyway. Secrets stay on the host (see README).
    #[arg(long = "watch", value_name = "PATH", value_parser = parse_watch)]
    pub watch: Vec<String>,
    /// How often watched files are all looked at again, for changes inotify missed.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub watch_rescan: Duration,
    /// The most files the agent watches; beyond it the source says how many it skipped.
    #[arg(long, default_value_t = crate::sources::files::DEFAULT_MAX_FILES)]
    pub watch_max_files: usize,
    /// nginx's main configuration file, read with its includes for reverse-proxy
    /// routes (repeat for several; default /etc/nginx/nginx.conf if it exists).
    #[arg(long = "nginx-conf", value_name = "PATH")]
    pub nginx_conf: Vec<PathBuf>,
    /// Caddy's admin API (repeat for several; default http://127.0.0.1:2019
    /// if something answers there).
    #[arg(long = "caddy-api", value_name = "URL", value_parser = parse_api)]
    pub caddy_api: Vec<String>,
    /// Traefik's API, e.g. http://127.0.0.1:8080 (repeat for several;
    /// default: that of a running Traefik container publishing port 8080).
    #[arg(long = "traefik-api", value_name = "URL", value_parser = parse_api)]
    pub traefik_api: Vec<String>,
    /// How often the Caddy and Traefik APIs are asked for their routes.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub routes_poll: Duration,
}

/// An admin API's base URL: plain `http://host:port`.
fn parse_api(s: &str) -> Result<String, String> {
    let uri: http::Uri = s.parse().map_err(|e| format!("{e}"))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err("expected http://HOST:PORT".into());
    }
    Ok(s.trim_end_matches('/').to_string())
}

/// A path or glob, made absolute.
pub fn parse_watch(s: &str) -> Result<String, String> {
    crate::sources::files::plan::Spec::parse(s)?;
    let abs = std::path::absolute(s).map_err(|e| e.to_string())?;
    abs.into_os_string()
        .into_string()
        .map_err(|_| "not UTF-8".to_string())
}

fn parse_units(s: &str) -> Result<crate::sources::units::UnitFilter, String> {
    crate::sources::units::UnitFilter::parse(s)
}

impl SourceArgs {
    pub fn config(self) -> crate::sources::SourceConfig {
        crate::sources::SourceConfig {
            interval: self.interval,
            top_processes: self.top_processes,
            latency_targets: self.latency_targets,
            smart_every: self.smart_every,
            container_socket: self.container_socket,
            units: self.units,
            labels: self.labels.into_iter().collect(),
            files: crate::sources::files::FilesConfig {
                watch: self.watch,
                rescan: self.watch_rescan,
                max_files: self.watch_max_files,
                ..Default::default()
            },
            routes: crate::sources::routes::RoutesConfig {
                nginx_conf: self
                    .nginx_conf
                    .into_iter()
                    .map(|p| std::path::absolute(&p).unwrap_or(p))
                    .collect(),
                caddy_api: self.caddy_api,
                traefik_api: self.traefik_api,
                poll: self.routes_poll,
            },
        }
    }
}

pub fn parse_label(s: &str) -> Result<(String, String), String> {
    let ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 63
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
    };
    match s.split_once('=') {
        Some((k, v)) if ok(k) && ok(v) => Ok((k.to_string(), v.to_string())),
        _ => Err(format!(
            "{s:?} is not a label like group=web (letters, digits, . _ - /)"
        )),
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (try 5s, 10m, 1h)"))?;
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}
