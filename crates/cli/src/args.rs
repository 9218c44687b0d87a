//! The command line, as clap sees it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "twinbay",
    version,
    about = "A live digital twin of every machine in your homelab or fleet"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub and an agent for this machine, UI included (the all-in-one default).
    Up(Box<UpArgs>),
    /// Run the hub.
    Hub(HubArgs),
    /// Run the agent: watch this host and push its twin to a hub.
    Agent(AgentArgs),
    /// Administer a hub's data dir: join tokens, API tokens.
    Ctl(CtlArgs),
    /// Run simulated agents against a hub (demos and load tests).
    Sim(SimArgs),
    /// An MCP server on stdio for AI assistants, relaying to a hub's /mcp.
    Mcp(crate::mcp::McpArgs),
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Address to serve the UI, API and agents on (HTTPS and, on loopback, HTTP).
    #[arg(long, default_value = "127.0.0.1:7780")]
    pub listen: SocketAddr,
    /// Where the hub keeps its database, certificate and the local agent's key.
    #[arg(long, env = "TWINBAY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// What the local agent collects.
    #[command(flatten)]
    pub sources: SourceArgs,
    #[command(flatten)]
    pub history: HistoryArgs,
    #[command(flatten)]
    pub access: AccessArgs,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    #[command(flatten)]
    pub alerts: AlertArgs,
    /// Also run this many simulated hosts (labelled simulated), to see the UI with a fleet.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub demo: Option<u32>,
    /// Log every event (each agent connecting, each request refused…), not
    /// only warnings and a one-line summary a minute. `RUST_LOG` overrides both.
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct HubArgs {
    #[arg(long, default_value = "127.0.0.1:7780")]
    pub listen: SocketAddr,
    #[arg(long, env = "TWINBAY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where the hub keeps its records: `postgres://USER[:PASSWORD]@HOST:PORT/DB`
    /// (hub replicas share it) or `sqlite` (the embedded file in the data
    /// dir). The data dir remembers it, so `twinbay ctl` opens the same
    /// store; by default, the remembered one, else SQLite.
    #[arg(long, env = "TWINBAY_STORE")]
    pub store: Option<String>,
    /// `nats://HOST:PORT` (JetStream enabled): join the other hub replicas
    /// on the same --store; each serves the whole fleet's twin.
    #[arg(long, env = "TWINBAY_BUS")]
    pub bus: Option<String>,
    /// The URL agents should dial (put in join strings); defaults to the listen address.
    #[arg(long)]
    pub public_url: Option<String>,
    /// PEM certificate chain to serve instead of the self-signed one.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Agent heartbeat interval; three silent intervals mark a node disconnected.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub heartbeat: Duration,
    #[command(flatten)]
    pub history: HistoryArgs,
    #[command(flatten)]
    pub access: AccessArgs,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    #[command(flatten)]
    pub alerts: AlertArgs,
    /// Where backup artifacts go: `s3://BUCKET?endpoint=URL&region=R` (any
    /// S3-compatible store); by default a directory in the data dir.
    #[arg(long, env = "TWINBAY_BACKUP_STORE")]
    pub backup_store: Option<String>,
    /// A file of `AWS_ACCESS_KEY_ID=…` and `AWS_SECRET_ACCESS_KEY=…` lines for
    /// --backup-store (else they come from the environment).
    #[arg(long, requires = "backup_store")]
    pub backup_credentials: Option<PathBuf>,
    /// How long the new binary of a hub update has to serve /healthz before
    /// the hub rolls back to the previous one.
    #[arg(long, env = "TWINBAY_UPDATE_HEALTH_WINDOW", default_value = "60s", value_parser = parse_duration)]
    pub update_health_window: Duration,
}

/// How alert notifications are grouped (see README, "Alerts").
#[derive(Debug, Args)]
pub struct AlertArgs {
    /// How long the first alert of a rule on a host waits for others to
    /// join its notification.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub alert_group_wait: Duration,
    /// How long after a group's notification new firing alerts wait.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub alert_group_interval: Duration,
    /// How often an alert still firing is sent again.
    #[arg(long, default_value = "4h", value_parser = parse_duration)]
    pub alert_repeat_interval: Duration,
}

impl AlertArgs {
    pub fn config(&self) -> twinbay_hub::alerts::AlertConfig {
        twinbay_hub::alerts::AlertConfig {
            group_wait: self.alert_group_wait,
            group_interval: self.alert_group_interval,
            repeat_interval: self.alert_repeat_interval,
        }
    }
}

/// The internet gateway the hub polls for the public address and the
/// upstream's state (see README, "Internet gateway").
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// A router to ask (repeat for several; the first is the primary):
    /// `upnp` (found by SSDP), `upnp:http://ROUTER:PORT/rootDesc.xml`,
    /// `fritzbox://USER@HOST[:PORT][?tls]` (TR-064 with a password, else its
    /// IGD), `unifi://[USER@]HOST[:PORT][?site=NAME]` (an API key, or USER's
    /// password) or `probe:HOST:PORT` (TCP reachability only). HTTPS ones
    /// take `&fingerprint=sha256:HEX` or, insecure, `&insecure-tls`.
    #[arg(long = "gateway", value_name = "SPEC")]
    pub gateways: Vec<twinbay_hub::gateway::Spec>,
    /// Time between polls of each gateway.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub gateway_interval: Duration,
    /// How long one poll may take before it counts as failed.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub gateway_timeout: Duration,
    /// A file holding the router's password or API key (fritzbox, unifi);
    /// else the TWINBAY_GATEWAY_PASSWORD environment variable. Never on the
    /// command line.
    #[arg(long, value_name = "FILE")]
    pub gateway_password_file: Option<PathBuf>,
}

/// The environment variable that holds the gateway's password.
pub const GATEWAY_PASSWORD_ENV: &str = "TWINBAY_GATEWAY_PASSWORD";

impl GatewayArgs {
    pub fn config(&self) -> anyhow::Result<twinbay_hub::gateway::GatewayConfig> {
        let password = match &self.gateway_password_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("--gateway-password-file {}: {e}", path.display())
                })?;
                Some(text.trim_end_matches(['\r', '\n']).to_string())
            }
            None => std::env::var(GATEWAY_PASSWORD_ENV).ok(),
        }
        .filter(|p| !p.is_empty())
        .map(twinbay_hub::gateway::Secret);
        Ok(twinbay_hub::gateway::GatewayConfig {
            specs: self.gateways.clone(),
            interval: self.gateway_interval,
            timeout: self.gateway_timeout,
            password,
        })
    }
}

/// Whom the hub believes about clients, and which names it answers to.
#[derive(Debug, Args)]
pub struct AccessArgs {
    /// A reverse proxy in front of the hub (an address or CIDR; repeat for
    /// several): its `Forwarded`/`X-Forwarded-For` header names the client,
    /// for sign-in lockouts, the audit trail and `/metrics`.
    #[arg(long = "trusted-proxy", value_name = "CIDR", value_parser = parse_cidr)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// A name browsers use to reach the hub, besides the public URL's host,
    /// this machine's hostname, IP addresses and localhost (repeat for
    /// several; `*.example.org` for any subdomain). Other names get no session.
    #[arg(long = "allowed-host", value_name = "NAME", value_parser = parse_host_name)]
    pub allowed_hosts: Vec<String>,
    /// The MCP server at /mcp: `on`, `read-only` (no tools that act) or `off`.
    #[arg(long, value_name = "MODE", default_value = "on")]
    pub mcp: twinbay_hub::mcp::Mode,
    /// A minisign public key that releases must be signed with (`RW…`, or
    /// the path of a `minisign.pub` file; repeat for several). Without one
    /// the hub accepts no release.
    #[arg(
        long = "update-key",
        value_name = "KEY|FILE",
        env = "TWINBAY_UPDATE_KEYS",
        value_delimiter = ','
    )]
    pub update_keys: Vec<String>,
}

impl AccessArgs {
    /// The trusted update keys, each read from its file when it names one.
    pub fn update_keys(&self) -> anyhow::Result<twinbay_proto::release::TrustedKeys> {
        let mut texts = Vec::new();
        for k in &self.update_keys {
            let path = std::path::Path::new(k);
            texts.push(match path.is_file() {
                true => std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("--update-key {k}: {e}"))?,
                false => k.clone(),
            });
        }
        twinbay_proto::release::TrustedKeys::parse(texts.iter().map(String::as_str))
            .map_err(|e| anyhow::anyhow!("--update-key: {e}"))
    }
}

/// `10.0.0.0/8`, `::1/128`, or a bare address (one host).
fn parse_cidr(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<ipnet::IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<std::net::IpAddr>()
        .map(ipnet::IpNet::from)
        .map_err(|_| format!("{s:?} is not an address or CIDR (try 127.0.0.1 or 10.0.0.0/8)"))
}

/// A DNS name, maybe with a leading `*.`.
fn parse_host_name(s: &str) -> Result<String, String> {
    let name = s.strip_prefix("*.").unwrap_or(s);
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    match ok {
        true => Ok(s.to_ascii_lowercase()),
        false => Err(format!(
            "{s:?} is not a host name (try hub.example.org or *.example.org)"
        )),
    }
}

/// How many connections the hub holds, and how long a client may take to
/// send a request (see docs/security.md, "Connection limits").
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// Connections that have not yet authenticated (agents and UI streams
    /// leave the count once they have), at once; default: half the open
    /// files limit after a reserve for the store, at most 16384.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
    /// The same, from one client address (an IPv6 /64 counts as one); a
    /// reverse proxy in front is one address for all its clients.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections_per_ip: u64,
    /// Time from connecting to a complete request head (TLS handshake
    /// included), and that an idle keep-alive connection stays open.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,
}

impl ConnectionArgs {
    pub fn config(&self) -> twinbay_hub::ConnectionConfig {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        twinbay_hub::ConnectionConfig {
            max_connections: self.max_connections.map(size),
            max_connections_per_ip: size(self.max_connections_per_ip),
            header_timeout: self.header_timeout,
        }
    }
}

/// How much metric history the hub keeps.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// How long each resolution is kept: `raw=48h,1m=14d,15m=90d,1h=400d` (any subset).
    #[arg(long, value_parser = parse_retention, default_value = "raw=48h")]
    pub history_retention: twinbay_hub::history::Retention,
    /// Cap on the database's size on disk (`500MiB`, `2GiB`); the oldest history goes first.
    #[arg(long, value_parser = parse_bytes, default_value = "2GiB")]
    pub history_max_size: u64,
    /// How often rollups are brought up to date.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub rollup_every: Duration,
    /// How often retention and the size cap are enforced.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub retention_every: Duration,
    /// How long the state journal (each host's past: `GET /api/v1/nodes/{id}?at=`) is kept.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    pub journal_retention: Duration,
}

impl HistoryArgs {
    pub fn config(&self) -> twinbay_hub::history::HistoryConfig {
        twinbay_hub::history::HistoryConfig {
            retention: self.history_retention,
            max_bytes: self.history_max_size,
            rollup_every: self.rollup_every,
            retention_every: self.retention_every,
            journal_retention: self.journal_retention,
        }
    }
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub command: Option<AgentCommand>,
    #[command(flatten)]
    pub run: twinbay_agent::cli::RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Copy this binary to a user-writable place and run the agent from it
    /// as a systemd user service (see docs/install.md).
    Install(crate::install::InstallArgs),
}

pub use twinbay_agent::cli::{SourceArgs, parse_duration, parse_label, parse_watch};

#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The hub's data dir.
    #[arg(long, env = "TWINBAY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// One-time tokens that enroll an agent.
    #[command(subcommand)]
    JoinToken(JoinTokenCommand),
    /// Tokens for scripts and integrations.
    #[command(subcommand)]
    ApiToken(ApiTokenCommand),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Run an action from a host's policy: `exec NODE ACTION [KEY=VALUE…]`.
    Exec(ExecArgs),
    /// Show the logs of a container, a unit or the agent (`-f` follows).
    Logs(LogsArgs),
    /// A container's, unit's or the agent's state.
    Status(VerbArgs),
    /// Start a container or unit.
    Start(VerbArgs),
    /// Stop a container or unit.
    Stop(VerbArgs),
    /// Restart a container, a unit or the agent.
    Restart(VerbArgs),
    /// A container's image, systemd's or the agent's version.
    Version(VerbArgs),
    /// Watched files: `files NODE` lists them; `files history NODE PATH`,
    /// `files diff NODE PATH [--from SHA] [--to SHA]`.
    Files(FilesArgs),
    /// The fleet's reverse-proxy routes and the state of what each leads to.
    Routes(RoutesArgs),
    /// Schedules: `list`, `add`, `rm`, `run` (now), `runs`.
    Schedules(crate::schedules::SchedulesArgs),
    /// Alerts: `list`, `ack`, `silence`, `silences`, `channels`, `rules`.
    Alerts(crate::alerts::AlertsArgs),
    /// Backups: run one on a host, list, download, verify, prune.
    Backup(BackupArgs),
    /// Signed releases: `publish` one (admin), `list` them.
    Release(crate::release::ReleaseArgs),
    /// A host's containers, units, ports, files and routes, now or as they
    /// were (`--at '2026-12-01 03:12'`, UTC unless an offset is given).
    Host(crate::past::HostArgs),
    /// The hub's SSH side (admin): `identity` (its public key), `list` (hosts added over SSH).
    Ssh(crate::ssh::SshArgs),
    /// What changed (`--since 2h`, or `--from T [--to T]`), per host and
    /// subject, each with every step.
    Changes(crate::past::ChangesArgs),
    /// The hub itself (admin): `status`, `version`, `logs`, `update VERSION`, `restart`.
    Hub(crate::hubctl::HubCtlArgs),
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub command: BackupCommand,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back up a directory (`--dir`) or a producer action's output
    /// (`--action NAME [KEY=VALUE…]`) of a host into the hub.
    Run {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Node id or hostname.
        node: String,
        /// The job (its backups are kept together by the retention).
        #[arg(long)]
        job: String,
        /// A directory under one of the agent policy's backup roots.
        #[arg(long, conflicts_with_all = ["action", "volume"])]
        dir: Option<String>,
        /// A container volume named in the agent policy's `backup.volumes`.
        #[arg(long, conflicts_with = "action")]
        volume: Option<String>,
        /// Leave out paths matching this glob (repeatable; with --dir or --volume).
        #[arg(long)]
        exclude: Vec<String>,
        /// A policy action marked `producer` (its stdout is the artifact).
        #[arg(long)]
        action: Option<String>,
        /// The action's arguments, `KEY=VALUE`.
        #[arg(value_name = "KEY=VALUE", requires = "action")]
        args: Vec<String>,
        #[arg(long, default_value_t = 0)]
        keep_last: u32,
        #[arg(long, default_value_t = 0)]
        keep_hourly: u32,
        #[arg(long, default_value_t = 0)]
        keep_daily: u32,
        #[arg(long, default_value_t = 0)]
        keep_weekly: u32,
        #[arg(long, default_value_t = 0)]
        keep_monthly: u32,
        #[arg(long, default_value_t = 0)]
        keep_yearly: u32,
    },
    /// The catalog, newest first.
    List {
        #[command(flatten)]
        remote: RemoteArgs,
        #[arg(long)]
        node: Option<String>,
        #[arg(long)]
        job: Option<String>,
    },
    /// Stream an artifact into a file (its SHA-256 checked on the way).
    Download {
        #[command(flatten)]
        remote: RemoteArgs,
        id: String,
        /// The file to write (default: the name the hub gives).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Stream a backup back to a host: untar into `--dir` (under a backup
    /// root) or into a consumer action's stdin (`--action NAME [KEY=VALUE…]`).
    Restore {
        #[command(flatten)]
        remote: RemoteArgs,
        /// The backup's id.
        id: String,
        /// Node id or hostname to restore on.
        node: String,
        #[arg(long, conflicts_with_all = ["action", "volume"])]
        dir: Option<String>,
        /// A container volume named in the agent policy's `backup.volumes`.
        #[arg(long, conflicts_with = "action")]
        volume: Option<String>,
        #[arg(long)]
        action: Option<String>,
        #[arg(value_name = "KEY=VALUE", requires = "action")]
        args: Vec<String>,
    },
    /// Have the hub re-read and re-hash an artifact.
    Verify {
        #[command(flatten)]
        remote: RemoteArgs,
        id: String,
    },
    /// Apply the jobs' retention now; says what went.
    Prune {
        #[command(flatten)]
        remote: RemoteArgs,
        #[arg(long)]
        node: Option<String>,
        #[arg(long)]
        job: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct RoutesArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Only broken routes (their container stopped or gone, their port closed).
    #[arg(long)]
    pub broken: bool,
    /// Only routes whose public name contains this.
    #[arg(long)]
    pub host: Option<String>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct FilesArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Node id or hostname: list what it watches.
    #[arg(required = true)]
    pub node: Option<String>,
    #[command(subcommand)]
    pub command: Option<FilesCommand>,
}

#[derive(Debug, Subcommand)]
pub enum FilesCommand {
    /// A file's versions, newest first, with their risk.
    History {
        #[command(flatten)]
        remote: RemoteArgs,
        node: String,
        path: String,
    },
    /// The unified diff between two versions (default: the last two).
    Diff {
        #[command(flatten)]
        remote: RemoteArgs,
        node: String,
        path: String,
        /// The older version's sha256 (or a prefix of it).
        #[arg(long)]
        from: Option<String>,
        /// The newer version's sha256 (or a prefix of it).
        #[arg(long)]
        to: Option<String>,
    },
}

/// How to reach a running hub's API.
#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// The hub's URL; by default the public URL of the hub in --data-dir.
    #[arg(long, env = "TWINBAY_HUB")]
    pub hub: Option<String>,
    /// The hub certificate's SHA-256 fingerprint (the `fp` of a join string);
    /// read from --data-dir when not given.
    #[arg(long, env = "TWINBAY_FINGERPRINT")]
    pub fingerprint: Option<String>,
    /// An API token (`twinbay ctl api-token create --role operator`).
    #[arg(long, env = "TWINBAY_TOKEN", hide_env_values = true)]
    pub token: String,
    /// If the host's agent is not connected, wait this long for it.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub wait: Duration,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Node id or hostname.
    pub node: String,
    /// The action's name in the host's policy.
    pub action: String,
    /// Arguments, `KEY=VALUE`.
    #[arg(value_name = "KEY=VALUE")]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Node id or hostname.
    pub node: String,
    /// `container:NAME`, `unit:NAME`, `user_unit:NAME` or `agent`; a bare
    /// name is a unit if it ends in a unit type (`.service`, …), else a container.
    pub target: String,
    /// Keep printing new lines until Ctrl-C.
    #[arg(short, long)]
    pub follow: bool,
    /// How many past lines.
    #[arg(short = 'n', long, default_value_t = 100)]
    pub lines: u32,
}

#[derive(Debug, Args)]
pub struct VerbArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Node id or hostname.
    pub node: String,
    /// `container:NAME`, `unit:NAME`, `user_unit:NAME` or `agent`.
    pub target: String,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; name the first entry that was changed or removed,
    /// or a tail cut since the head recorded in the data dir (or the one given).
    Verify {
        /// Fail unless the chain still holds this head: `sha256:HEX` as
        /// `verify` prints it, or the `hash` of `GET /api/v1/audit/head`.
        /// Entries after it are fine (the trail grew).
        #[arg(long, value_name = "SHA", value_parser = parse_head, conflicts_with = "head_file")]
        expect_head: Option<twinbay_hub::audit::Expected>,
        /// Like --expect-head, from a head saved from `GET /api/v1/audit/head`;
        /// its signature is checked with the hub's audit key first.
        #[arg(long, value_name = "FILE")]
        head_file: Option<PathBuf>,
    },
}

fn parse_head(s: &str) -> Result<twinbay_hub::audit::Expected, String> {
    twinbay_hub::audit::Expected::parse(s)
}

#[derive(Debug, Subcommand)]
pub enum JoinTokenCommand {
    /// Print a join string (hub URL, one-time token, certificate pin).
    Create {
        /// How long the token stays valid.
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        ttl: Duration,
        /// The hub URL to put in the string, if not the hub's own public URL.
        #[arg(long)]
        hub_url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiTokenCommand {
    /// Print a new API token (shown only once).
    Create {
        #[arg(long, value_enum)]
        role: RoleArg,
        /// A name to recognise the token by.
        #[arg(long, default_value = "")]
        name: String,
        /// Expire the token after this long (never, if not given).
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<Duration>,
        /// Limit the token to hosts with this label, `KEY=VALUE` (repeat for
        /// several; a host needs one of them).
        #[arg(long = "group", value_name = "KEY=VALUE", value_parser = parse_label)]
        groups: Vec<(String, String)>,
        /// Reads only, whatever the role: the API refuses its writes and MCP
        /// lists no act tools to it (a good start for an AI assistant).
        #[arg(long)]
        read_only: bool,
    },
    /// Revoke a token at once (its id is in `GET /api/v1/tokens`).
    Revoke { id: i64 },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Viewer,
    Operator,
    Admin,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// The join string from `twinbay ctl join-token create`; it enrolls the
    /// whole simulated fleet (and then no real agent). Or --join-file, or
    /// the TWINBAY_JOIN environment variable.
    #[arg(
        long,
        env = "TWINBAY_JOIN",
        required_unless_present = "join_file",
        conflicts_with = "join_file"
    )]
    pub join: Option<String>,
    /// A file holding the join string.
    #[arg(long, value_name = "FILE")]
    pub join_file: Option<PathBuf>,
    /// How many agents to simulate.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub agents: u32,
    /// How often each simulated host samples and changes.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub interval: Duration,
    /// State changes (container restarts, ports, unit failures) per agent per minute.
    #[arg(long, default_value_t = 1.0, value_parser = parse_churn)]
    pub churn: f64,
    /// Agents started per second.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub ramp: u32,
    /// Number the simulated agents from here (to run several sims on one token).
    #[arg(long, default_value_t = 0)]
    pub first_index: usize,
}

fn parse_churn(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a rate ≥ 0 (changes per agent per minute)"
        )),
    }
}

fn parse_retention(s: &str) -> Result<twinbay_hub::history::Retention, String> {
    twinbay_hub::history::Retention::parse(s)
}

/// `1048576`, `512KiB`, `500MiB`, `2GiB` (also KB/MB/GB as powers of 1000).
fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 2GiB"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(format!("unknown unit {other:?}; use KiB, MiB or GiB")),
    };
    let bytes = n
        .checked_mul(factor)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    if bytes < 1 << 20 {
        return Err("the history size cap must be at least 1MiB".into());
    }
    Ok(bytes)
}
