//! The twinbay hub: holds the fleet's twin, persists it, and serves it.
//!
//! [`start`] brings the hub up in order — data dir, TLS identity, store,
//! first admin, twin, listener — and returns a [`RunningHub`]. Connections
//! arrive in [`server`], agents speak to [`link`], people and scripts to
//! [`api`]; every change lands in the [`twin`], which broadcasts it to UI
//! streams and hands it to the [`recorder`] for the [`store`].
#![forbid(unsafe_code)]

pub mod admin;
pub mod agentless;
pub mod alerts;
pub mod api;
pub mod audit;
pub mod backups;
pub mod commands;
pub mod files;
mod fsutil;
pub mod gateway;
pub mod history;
pub mod journal;
pub mod layout;
pub mod lifecycle;
pub mod link;
pub mod lockout;
pub mod mcp;
pub mod memory;
pub mod metrics;
pub mod recorder;
pub mod releases;
pub mod replicas;
pub mod rollouts;
pub mod schedules;
pub mod server;
pub mod ssh;
pub mod tls;
pub mod topology;
pub mod twin;
mod ui;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
pub use twinbay_proto::report;
/// Persistence, the records it keeps and their pure logic (a crate of its own).
pub use twinbay_store as store;
pub use twinbay_store::{credentials, timeline};

use crate::store::{Role, Store, StoreError};

/// Locks `m`, carrying on past a panic of another holder (the data is
/// plain state that stays consistent between statements).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The public URL this hub last started with, in its data dir.
pub const PUBLIC_URL_FILE: &str = "public_url";

/// The environment variable that sets the first admin's password.
pub const ADMIN_PASSWORD_ENV: &str = "TWINBAY_ADMIN_PASSWORD";

#[derive(Debug, Clone)]
pub struct HubConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `postgres://…` (shared by replicas) or `sqlite`; `None`: what the
    /// data dir remembers, else the embedded SQLite file.
    pub store: Option<String>,
    /// `nats://HOST:PORT`: share the twin with the other replicas on the
    /// same store through this NATS server (JetStream enabled).
    pub bus: Option<String>,
    /// The URL agents dial; derived from `listen` when absent.
    pub public_url: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// How often agents send heartbeats; silent for three means disconnected.
    pub heartbeat: Duration,
    /// The first admin's password (from [`ADMIN_PASSWORD_ENV`]); random if absent.
    pub admin_password: Option<String>,
    /// Metric history: retention, size cap, maintenance cadence.
    pub history: history::HistoryConfig,
    /// Reverse proxies whose `Forwarded`/`X-Forwarded-For` name the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Names browsers may use besides the public URL's, the machine's
    /// hostname, IP addresses and `localhost` (`*.example.org` for subdomains).
    pub allowed_hosts: Vec<String>,
    /// Caps on connections and the header deadline.
    pub connections: ConnectionConfig,
    /// The internet gateways to poll (`--gateway`).
    pub gateway: gateway::GatewayConfig,
    /// Grouping and repeats of alert notifications.
    pub alerts: alerts::AlertConfig,
    /// The MCP server at `/mcp`: on, read-only or off.
    pub mcp: mcp::Mode,
    /// `s3://BUCKET?endpoint=URL&region=R`; `None`: a directory in the data dir.
    pub backup_store: Option<String>,
    /// Credentials for `backup_store` (else the environment's).
    pub backup_credentials: Option<PathBuf>,
    /// The minisign public keys releases must be signed with (`--update-key`).
    pub update_keys: twinbay_proto::release::TrustedKeys,
    /// Log lines, restart and update: what the binary running the hub offers.
    pub lifecycle: lifecycle::LifecycleConfig,
}

/// How many connections the hub holds before it refuses more, and how long
/// a client may take to send a request head (see [`server::limits`]).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionConfig {
    /// Unproven connections at once; by default derived from the open-files limit.
    pub max_connections: Option<usize>,
    /// Unproven connections at once from one address (IPv4) or /64 (IPv6).
    pub max_connections_per_ip: usize,
    pub header_timeout: Duration,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            max_connections: None,
            max_connections_per_ip: server::limits::PER_ADDRESS_DEFAULT,
            header_timeout: server::HEADER_TIMEOUT,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("{0}")]
    Config(String),
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("store")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no hub has run with data dir {0} yet: start `twinbay hub --data-dir {0}` first")]
    NotInitialized(String),
    #[error("{0}")]
    NotFound(String),
}

impl HubError {
    pub fn io(path: &Path, source: std::io::Error) -> HubError {
        HubError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What every request handler and session shares.
pub struct HubState {
    pub store: Store,
    pub twin: Arc<twin::Twin>,
    pub metrics: metrics::Metrics,
    pub heartbeat: Duration,
    pub shutdown: CancellationToken,
    /// Open agent sessions, so shutdown can wait for them to say goodbye.
    pub sessions: tokio_util::task::TaskTracker,
    pub history: history::History,
    /// Whole-fleet snapshots being built or sent to stream clients at once.
    /// A snapshot of a large fleet is large; this bounds how many exist,
    /// however many clients connect or fall behind together.
    pub snapshots: tokio::sync::Semaphore,
    /// Sign-in failures in a row, per account and address.
    pub lockout: lockout::Lockout,
    /// Commands on their way to agents, and their output.
    pub commands: commands::Commands,
    /// Trusted proxies and the hub's own names.
    pub network: api::client::NetworkPolicy,
    /// Signs the audit heads the API exports (`DATA_DIR/audit.key`).
    pub audit_key: ed25519_dalek::SigningKey,
    /// Open connections, counted against the limits.
    pub connections: server::Connections,
    /// Watched files' content on its way in.
    pub files: files::Files,
    /// The internet gateways' latest status.
    pub gateways: gateway::Gateways,
    /// Alert rules, channels and active alerts.
    pub alerts: alerts::Alerts,
    /// The topology's live diffs, for stream clients that watch it.
    pub topology: topology::feed::Feed,
    /// Every host in one line, for stream clients of the summary view.
    pub summaries: api::StreamSummaries,
    /// The parts of diffs sent to clients watching collections, shared.
    pub projections: api::StreamProjections,
    /// Whole-fleet collection snapshots, shared by the clients that watch them.
    pub collections: api::StreamCollections,
    /// Wakes the scheduler when schedules change.
    pub schedules: schedules::Scheduler,
    /// What `/mcp` serves.
    pub mcp: mcp::Mode,
    /// Backup artifacts: uploads, storage, retention.
    pub backups: Arc<backups::Backups>,
    /// Signed releases the fleet can be updated to.
    pub releases: releases::Releases,
    /// The active rollout of a release across the fleet.
    pub rollouts: rollouts::Rollouts,
    /// The hub's own process: what it runs as, restart and update.
    pub lifecycle: lifecycle::Lifecycle,
    /// The twin's last size walk, for `GET /api/v1/hub`'s `memory`.
    pub memory: memory::Walks,
    /// Hosts over SSH: the hub's key, pinned host keys, pooled connections.
    pub ssh: ssh::Ssh,
    /// The other hub replicas on the same store (`--bus`), if any.
    pub replicas: Option<Arc<replicas::Replicas>>,
}

impl HubState {
    /// Whether this hub runs the singleton work (scheduler, alert
    /// notifications, gateway polls, retention, rollouts): alone, always;
    /// among replicas, while it holds the singleton lease.
    pub fn leads(&self) -> bool {
        self.replicas.as_ref().is_none_or(|r| r.is_leader())
    }

    /// Tells the other replicas, if any, that `what` changed in the store.
    pub fn tell_replicas(&self, what: replicas::wire::Changed) {
        if let Some(replicas) = &self.replicas {
            replicas.tell(what);
        }
    }

    /// Waits until this hub leads (at once when alone); `false` when `stop`
    /// fires first.
    pub async fn lead(&self, stop: &CancellationToken) -> bool {
        let Some(replicas) = &self.replicas else {
            return true;
        };
        let mut leadership = replicas.leadership();
        tokio::select! {
            _ = stop.cancelled() => false,
            led = leadership.wait_for(|leads| *leads) => led.is_ok(),
        }
    }
}

/// What the first start did about the admin account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstAdmin {
    /// Accounts existed already.
    Existing,
    /// Created with the password from the environment.
    FromEnv,
    /// Created with this random password, shown only now.
    Generated(String),
}

pub struct RunningHub {
    pub local_addr: SocketAddr,
    pub public_url: String,
    pub fingerprint: String,
    pub first_admin: FirstAdmin,
    pub state: Arc<HubState>,
    server: JoinHandle<()>,
    recorder: JoinHandle<()>,
    history_task: JoinHandle<()>,
    recorder_stop: CancellationToken,
}

/// Starts the hub; it runs until `shutdown` fires. Bad configuration fails
/// here, before any port is bound.
pub async fn start(config: HubConfig, shutdown: CancellationToken) -> Result<RunningHub, HubError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if config.heartbeat.is_zero() {
        return Err(HubError::Config(
            "heartbeat interval must be positive".into(),
        ));
    }
    if config
        .admin_password
        .as_deref()
        .is_some_and(|p| p.trim().is_empty())
    {
        return Err(HubError::Config(format!(
            "{ADMIN_PASSWORD_ENV} is set but empty"
        )));
    }
    config.gateway.check().map_err(HubError::Config)?;
    if config.connections.header_timeout.is_zero() {
        return Err(HubError::Config("header timeout must be positive".into()));
    }
    let limits = server::Limits::derive(
        open_files_limit(),
        config.connections.max_connections,
        config.connections.max_connections_per_ip,
    )
    .map_err(HubError::Config)?;
    fsutil::create_private_dir(&config.data_dir)?;
    let tls = tls::load_or_create(
        &config.data_dir,
        config.tls_cert.as_deref(),
        config.tls_key.as_deref(),
    )?;
    let audit_key = audit::anchor::load_or_create_key(&config.data_dir)?;
    let store = match &config.store {
        Some(url) => store::remember_and_connect(url, &config.data_dir).await?,
        None => Store::open(&config.data_dir).await?,
    };
    tracing::info!(backend = store.backend(), "store open");
    let replicas = match &config.bus {
        None => None,
        Some(_) if store.backend() == "sqlite" => {
            return Err(HubError::Config(
                "--bus joins hub replicas, which share one store: give --store postgres://…".into(),
            ));
        }
        Some(url) => {
            let cluster = store
                .setting_or_insert(store::settings::CLUSTER_ID, &replicas::new_id())
                .await?;
            let replicas = replicas::Replicas::connect(url, &cluster)
                .await
                .map_err(|e| HubError::Config(e.to_string()))?;
            tracing::info!(replica = replicas.id, bus = url, "joined the hub replicas");
            Some(replicas)
        }
    };
    audit::anchor::check_at_start(&store).await?;
    let first_admin = ensure_admin(&store, config.admin_password.as_deref()).await?;
    let lost = store.lose_running_commands(store::now_ms()).await?;
    if lost > 0 {
        tracing::warn!(
            lost,
            "commands that ran when the hub stopped are marked lost"
        );
    }

    let listener = listen(config.listen).map_err(|source| HubError::Listen {
        addr: config.listen,
        source,
    })?;
    let local_addr = listener.local_addr().map_err(|source| HubError::Listen {
        addr: config.listen,
        source,
    })?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| default_public_url(local_addr));
    store
        .set_setting(store::settings::PUBLIC_URL, &public_url)
        .await?;
    // This hub's own, for `ctl` on its data dir: replicas share the setting.
    std::fs::write(config.data_dir.join(PUBLIC_URL_FILE), &public_url)
        .map_err(|e| HubError::io(&config.data_dir.join(PUBLIC_URL_FILE), e))?;
    store
        .set_setting(store::settings::TLS_FINGERPRINT, &tls.fingerprint)
        .await?;
    // For `ctl join-token create`, which puts them into join strings.
    let update_keys: Vec<&str> = config.update_keys.names().collect();
    store
        .set_setting(store::settings::UPDATE_KEYS, &update_keys.join("\n"))
        .await?;

    // The twins of many hosts repeat the same text (images, units, states):
    // deserialized once, shared from then on (`proto::text`).
    twinbay_proto::text::intern::enable();
    let (timeline, timeline_rx) = recorder::TimelineQueue::new();
    // What happens (timeline events, commands' ends) reaches alert rules too.
    let (alert_inbox, alert_happenings) = alerts::events::inbox();
    let twin = Arc::new(
        twin::Twin::new(store.nodes().await?)
            .with_timeline(timeline.clone())
            .with_alerts(alert_inbox.clone()),
    );
    // The recorder and history stop after the links, so nothing is lost.
    let recorder_stop = CancellationToken::new();
    let (history, history_task) = history::History::spawn(
        store.clone(),
        config.history.clone(),
        replicas.as_ref().map(|r| r.leadership()),
        recorder_stop.clone(),
    );
    let recorder = tokio::spawn(recorder::run(
        twin.clone(),
        store.clone(),
        timeline_rx,
        recorder_stop.clone(),
    ));
    let stream = twin.stream();
    let (files, file_jobs) = files::Files::new();
    let gateways = gateway::Gateways::new(&config.gateway);
    let alerts = alerts::Alerts::open(&config.data_dir)?;
    let (ssh, key_changes) = ssh::Ssh::open(&config.data_dir)?;
    ssh.load(&store).await?;
    let state = Arc::new(HubState {
        store: store.clone(),
        twin,
        metrics: metrics::Metrics::new()
            .with_timeline(&timeline)
            .with_audit_chain(store.anchor().gauge())
            .with_gateway(&gateways.gauges)
            .with_alerts(&alerts)
            .with_ssh(ssh.pool.counters()),
        heartbeat: config.heartbeat,
        shutdown: shutdown.clone(),
        sessions: tokio_util::task::TaskTracker::new(),
        history,
        snapshots: tokio::sync::Semaphore::new(api::SNAPSHOTS_AT_ONCE),
        lockout: lockout::Lockout::default(),
        commands: commands::Commands::new(store.clone())
            .announcing_on(stream)
            .alerting(alert_inbox),
        files,
        gateways: gateways.clone(),
        alerts,
        topology: topology::feed::Feed::new(),
        summaries: api::StreamSummaries::new(),
        projections: api::StreamProjections::default(),
        collections: api::StreamCollections::default(),
        schedules: schedules::Scheduler::default(),
        mcp: config.mcp,
        backups: Arc::new(backups::Backups::from_config(
            store.clone(),
            &config.data_dir,
            config.backup_store.as_deref(),
            config.backup_credentials.as_deref(),
        )?),
        releases: releases::Releases::open(&config.data_dir, config.update_keys.clone())?,
        rollouts: rollouts::Rollouts::default(),
        network: api::client::NetworkPolicy {
            trusted_proxies: config.trusted_proxies.clone(),
            allowed_hosts: api::client::AllowedHosts::new(
                config
                    .allowed_hosts
                    .iter()
                    .cloned()
                    .chain(api::client::url_host(&public_url))
                    .chain([hostname()]),
            ),
        },
        audit_key,
        connections: server::Connections::new(limits),
        lifecycle: lifecycle::Lifecycle::new(&config.data_dir, config.lifecycle),
        memory: memory::Walks::default(),
        ssh,
        replicas: replicas.clone(),
    });
    if let Some(replicas) = &replicas {
        replicas
            .run(state.clone(), &public_url, shutdown.clone())
            .await
            .map_err(|e| HubError::Config(e.to_string()))?;
    }
    lifecycle::report_outcome(&state, &config.data_dir).await;
    tokio::spawn(files::track(
        state.clone(),
        file_jobs,
        recorder_stop.clone(),
    ));
    tokio::spawn(topology::feed::run(state.clone(), shutdown.clone()));
    tokio::spawn(api::run_stream_summaries(state.clone(), shutdown.clone()));
    tokio::spawn(alerts::run(
        state.clone(),
        config.alerts.clone(),
        alert_happenings,
        recorder_stop.clone(),
    ));
    tokio::spawn(schedules::run(state.clone(), shutdown.clone()));
    tokio::spawn(memory::run(shutdown.clone()));
    tokio::spawn(rollouts::run(state.clone(), shutdown.clone()));
    tokio::spawn(ssh::run(state.clone(), key_changes, shutdown.clone()));
    // Gateway pollers stop with the recorder, after their last events.
    gateway::spawn(
        gateways,
        state.twin.clone(),
        &config.gateway,
        replicas.clone(),
        recorder_stop.clone(),
    );
    let app = api::router(state.clone());
    let server = tokio::spawn(server::serve(
        listener,
        app,
        tls.config.clone(),
        state.connections.clone(),
        server::ServeConfig {
            header_timeout: config.connections.header_timeout,
        },
        shutdown,
    ));
    tracing::info!(
        %local_addr,
        public_url,
        max_open = limits.max_open,
        max_unproven = limits.max_unproven,
        max_per_address = limits.max_unproven_per_address,
        "hub listening"
    );
    Ok(RunningHub {
        local_addr,
        public_url,
        fingerprint: tls.fingerprint,
        first_admin,
        state,
        server,
        recorder,
        history_task,
        recorder_stop,
    })
}

impl RunningHub {
    /// Waits for the shutdown signal, then stops in order: stop accepting,
    /// close agent links, write the last changes, close the store.
    pub async fn wait(self) {
        let _ = self.server.await;
        // Agent sessions saw the same signal; let them close and mark their nodes.
        self.state.sessions.close();
        if tokio::time::timeout(Duration::from_secs(2), self.state.sessions.wait())
            .await
            .is_err()
        {
            tracing::warn!("some agent sessions did not close in time");
        }
        self.recorder_stop.cancel();
        let _ = self.recorder.await;
        let _ = self.history_task.await;
        self.state.store.close().await;
        tracing::info!("hub stopped");
    }

    /// A join string for this hub, valid for `ttl`.
    pub async fn join_string(&self, hub_url: &str, ttl: Duration) -> Result<String, HubError> {
        let token = self.state.store.create_join_token(ttl).await?;
        Ok(twinbay_proto::join::JoinString {
            hub: hub_url.to_string(),
            token,
            fp: self.fingerprint.clone(),
            update_keys: self
                .state
                .releases
                .keys()
                .names()
                .map(String::from)
                .collect(),
            more_hubs: Vec::new(),
        }
        .encode())
    }
}

async fn ensure_admin(store: &Store, password: Option<&str>) -> Result<FirstAdmin, HubError> {
    if store.user_count().await? > 0 {
        return Ok(FirstAdmin::Existing);
    }
    let (password, first) = match password {
        Some(p) => (p.to_string(), FirstAdmin::FromEnv),
        None => {
            let p = credentials::random_password();
            (p.clone(), FirstAdmin::Generated(p))
        }
    };
    store.create_user("admin", &password, Role::Admin).await?;
    Ok(first)
}

/// Connections the kernel queues for the accept loop. A flood of clients
/// that are refused and come straight back arrives in bursts; with the
/// usual 1,024 the queue overflowed and a dropped SYN cost every other
/// client a 1 s retransmit. The kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// This process's soft limit on open files (`None`: unlimited). `twinbay
/// hub` has raised it to the hard limit before this runs.
fn open_files_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

fn default_public_url(addr: SocketAddr) -> String {
    let host = match addr.ip() {
        ip if ip.is_unspecified() => hostname(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("https://{host}:{}", addr.port())
}

/// This machine's hostname, or `localhost` if it cannot be read.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// One line about the hub for an interactive log: hosts connected, UI
/// clients, history written, connections refused and, if any, lost writes.
pub fn summary(state: &HubState) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let (mut nodes, mut connected) = (0usize, 0usize);
    state.twin.for_each(|node| {
        nodes += 1;
        connected += usize::from(node.connected);
    });
    let stats = &state.history.stats;
    let refused: u64 = state.connections.counts().refused.iter().sum();
    let mut line = format!(
        "{connected} of {nodes} hosts connected, {} UI clients, {} history points written, {refused} connections refused",
        state.metrics.ui_clients.get(),
        stats.points_written.load(Relaxed),
    );
    let failed = stats.write_failures.load(Relaxed);
    if failed > 0 {
        line.push_str(&format!(", {failed} HISTORY WRITES FAILED"));
    }
    line
}
