//! What each subcommand does: build the pieces, run them, stop them cleanly.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tokio_util::sync::CancellationToken;
use twinbay_agent::AgentConfig;
use twinbay_agent::cli::shutdown_on_signal;
use twinbay_agent::sim::SimConfig;
use twinbay_hub::store::Role;
use twinbay_hub::{FirstAdmin, HubConfig, RunningHub};

use crate::args::{
    ApiTokenCommand, AuditCommand, Command, CtlArgs, CtlCommand, HubArgs, JoinTokenCommand,
    RoleArg, SimArgs, UpArgs, VerbArgs,
};

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Up(args) => {
            // Interactive: the sign-in lines stay readable; a summary a
            // minute says the fleet is alive (`-v` for the full log).
            init_logging(if args.verbose {
                "info"
            } else {
                "warn,twinbay::summary=info"
            });
            multi_thread()?.block_on(up(*args))
        }
        Command::Hub(args) => {
            // rmcp says "info" for every MCP session's start and end.
            init_logging("info,rmcp=warn");
            multi_thread()?.block_on(hub(args))
        }
        Command::Agent(crate::args::AgentArgs {
            command: Some(crate::args::AgentCommand::Install(args)),
            ..
        }) => crate::install::run(args),
        Command::Agent(args) => {
            crate::handover::exec_lean_agent()?;
            init_logging("info");
            twinbay_agent::cli::run_until_signal(args.run, None)
                .map_err(|e| anyhow!(twinbay_agent::error::report(&e)))
        }
        Command::Ctl(args) => {
            init_logging("warn");
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(ctl(args))
        }
        Command::Sim(args) => {
            // Thousands of links retrying after a hub restart would flood the
            // log with one warning each; say only what is unusual.
            init_logging("info,twinbay_agent::link=error");
            multi_thread()?.block_on(sim(args))
        }
        Command::Mcp(args) => crate::mcp::run(args),
    }
}

/// Raises the soft limit on open files to the hard one: a hub holds one
/// socket per agent and UI client, a simulator one per simulated agent.
fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(error = %e, "could not raise the open files limit");
        }
    }
}

/// Heap memory freed but kept that makes a trim worth it even without a
/// surge: glibc returns memory only from the top of each heap, and a fleet's
/// turnover (full syncs, snapshots) leaves holes below.
const FREE_WORTH_TRIMMING: u64 = 64 << 20;

/// The heap counts for the hub's `memory` report.
fn heap_probe() -> Option<twinbay_hub::memory::HeapStats> {
    crate::allocator::heap_stats()
        .map(|(in_use, free)| twinbay_hub::memory::HeapStats { in_use, free })
}

/// After a surge of connections ends (an attack, a fleet that reconnected),
/// gives the memory they used back to the system: checked every 10 s, and
/// again at each of the next checks for a minute, because pages that the
/// connections' buffers shared with the fleet's allocations made meanwhile
/// become free only as the fleet's state turns over. Between surges, trims
/// whenever more than [`FREE_WORTH_TRIMMING`] is free. Installs the heap
/// probe the hub's status reports.
async fn release_memory_after_surges(
    connections: twinbay_hub::server::Connections,
    stop: CancellationToken,
) {
    /// Connections gone since the last check that make a trim worth it (~10 MiB).
    const SURGE: usize = 500;
    /// Checks after a surge that trim again (10 s apart).
    const SETTLING: u32 = 6;
    twinbay_hub::memory::set_heap_probe(heap_probe);
    let mut settling = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
        let (peak, now) = connections.take_peak();
        if peak >= now + SURGE {
            settling = SETTLING + 1;
        }
        let free = heap_probe().map_or(0, |h| h.free);
        if settling > 0 || free > FREE_WORTH_TRIMMING {
            settling = settling.saturating_sub(1);
            let _ = tokio::task::spawn_blocking(crate::allocator::release_free_memory).await;
            tracing::debug!(peak, now, free, "returned free memory to the system");
        }
    }
}

/// A line about the fleet 5 s after start, then a minute apart when it changed.
async fn summarise(state: std::sync::Arc<twinbay_hub::HubState>, stop: CancellationToken) {
    let mut wait = Duration::from_secs(5);
    let mut last = String::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = Duration::from_secs(60);
        let line = twinbay_hub::summary(&state);
        if line != last {
            tracing::info!(target: "twinbay::summary", "{line}");
            last = line;
        }
    }
}

fn multi_thread() -> Result<tokio::runtime::Runtime> {
    raise_open_files_limit();
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only for a person at a terminal (and not with NO_COLOR).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(|| twinbay_agent::logbuf::Tee)
        .try_init();
}

/// `$XDG_DATA_HOME/twinbay`, else `~/.local/share/twinbay`.
fn default_data_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("twinbay"));
    }
    let home = std::env::var_os("HOME").ok_or_else(|| anyhow!("no HOME; pass --data-dir"))?;
    Ok(PathBuf::from(home).join(".local/share/twinbay"))
}

fn data_dir(given: Option<PathBuf>) -> Result<PathBuf> {
    given.map(Ok).unwrap_or_else(default_data_dir)
}

fn hub_config(
    listen: SocketAddr,
    data_dir: PathBuf,
    history: &crate::args::HistoryArgs,
    access: &crate::args::AccessArgs,
    connections: &crate::args::ConnectionArgs,
    gateway: &crate::args::GatewayArgs,
    alerts: &crate::args::AlertArgs,
) -> Result<HubConfig> {
    Ok(HubConfig {
        listen,
        data_dir,
        store: None,
        bus: None,
        public_url: None,
        tls_cert: None,
        tls_key: None,
        heartbeat: Duration::from_secs(5),
        admin_password: std::env::var(twinbay_hub::ADMIN_PASSWORD_ENV).ok(),
        history: history.config(),
        trusted_proxies: access.trusted_proxies.clone(),
        allowed_hosts: access.allowed_hosts.clone(),
        connections: connections.config(),
        gateway: gateway.config()?,
        alerts: alerts.config(),
        mcp: access.mcp,
        backup_store: None,
        backup_credentials: None,
        update_keys: access.update_keys()?,
        // This binary re-execs itself for `restart` and runs update trials
        // (`finish_lifecycle`); its log writer keeps the recent lines.
        lifecycle: twinbay_hub::lifecycle::LifecycleConfig {
            log_tail: Some(|n| twinbay_agent::logbuf::tail(n).0),
            health_window: twinbay_hub::lifecycle::DEFAULT_HEALTH_WINDOW,
            managed: true,
        },
    })
}

/// Before a hub starts: a trial of an update that a kill interrupted is
/// rolled back, and the previous binary run again.
fn recover_interrupted_update(data_dir: &Path) -> Result<()> {
    if let Some(exe) = twinbay_hub::lifecycle::recover_interrupted(data_dir) {
        let err = twinbay_hub::lifecycle::exec_self(&exe);
        return Err(anyhow!(
            "cannot run the previous binary {}: {err}",
            exe.display()
        ));
    }
    Ok(())
}

/// After the hub stopped: a restart or an update asked through the API.
/// Returns only if nothing was asked (or an exec failed).
async fn finish_lifecycle(
    state: &twinbay_hub::HubState,
    data_dir: &Path,
    listen: SocketAddr,
) -> Result<()> {
    use twinbay_hub::lifecycle::{self, Action};
    match state.lifecycle.take() {
        None => Ok(()),
        Some(Action::Restart) => {
            let exe = lifecycle::exe().ok_or_else(|| anyhow!("cannot tell this executable"))?;
            tracing::info!("restarting the hub");
            Err(anyhow!("cannot restart: {}", lifecycle::exec_self(exe)))
        }
        Some(Action::Update(trial)) => {
            let window = state.lifecycle.health_window;
            let err = lifecycle::run_trial(data_dir, listen, window, trial).await;
            Err(anyhow!("cannot run the hub again after its update: {err}"))
        }
    }
}

fn print_first_admin(hub: &RunningHub) {
    match &hub.first_admin {
        FirstAdmin::Generated(password) => println!(
            "Created user admin with password {password}\n  (shown only this once; set {} before the first start to choose it)",
            twinbay_hub::ADMIN_PASSWORD_ENV
        ),
        FirstAdmin::FromEnv => println!(
            "Created user admin with the password from {}",
            twinbay_hub::ADMIN_PASSWORD_ENV
        ),
        FirstAdmin::Existing => {}
    }
}

async fn up(args: UpArgs) -> Result<()> {
    let data_dir = data_dir(args.data_dir)?;
    recover_interrupted_update(&data_dir)?;
    let shutdown = shutdown_on_signal();
    let hub = twinbay_hub::start(
        hub_config(
            args.listen,
            data_dir.clone(),
            &args.history,
            &args.access,
            &args.connections,
            &args.gateway,
            &args.alerts,
        )?,
        shutdown.clone(),
    )
    .await?;
    tokio::spawn(release_memory_after_surges(
        hub.state.connections.clone(),
        shutdown.clone(),
    ));

    // The local agent dials the hub over loopback, through the real link.
    let local = local_address(hub.local_addr);
    let hub_url = format!("https://{local}");
    let agent_dir = data_dir.join("agent");
    let join = if twinbay_agent::identity::Identity::is_enrolled_in(&agent_dir) {
        None
    } else {
        Some(hub.join_string(&hub_url, Duration::from_secs(600)).await?)
    };
    let agent_config = AgentConfig {
        state_dir: agent_dir,
        join,
        policy: args.sources.policy.clone(),
        sources: args.sources.config(),
        hub_override: vec![hub_url.clone()],
        // Inside `twinbay up` the agent is not its own binary to swap.
        update: Default::default(),
    };
    // A bad policy file stops `up` before anything starts.
    twinbay_agent::load_policy(&agent_config).map_err(|e| anyhow!(twinbay_hub::report(&e)))?;
    let agent_cancel = shutdown.child_token();
    let agent = tokio::spawn(twinbay_agent::run(agent_config, agent_cancel));
    if let Some(n) = args.demo {
        let join = demo_join(&hub, &data_dir, &hub_url).await?;
        // The first few hosts run a reverse proxy (demo.rs); the simulator
        // invents the rest after them.
        let proxies = crate::demo::proxies(n as usize);
        tokio::spawn(crate::demo::run(
            join.clone(),
            vec![hub_url.clone()],
            proxies,
            shutdown.child_token(),
        ));
        let mut config = SimConfig::new(join, n as usize - proxies);
        config.first_index = proxies;
        config.hub_override = vec![hub_url.clone()];
        let cancel = shutdown.child_token();
        tokio::spawn(async move {
            if let Err(e) = twinbay_agent::sim::run(config, cancel).await {
                tracing::error!(error = %twinbay_hub::report(&e), "the demo fleet stopped");
            }
        });
    }

    let browse = if local.ip().is_loopback() {
        format!("http://{local}")
    } else {
        hub.public_url.clone()
    };
    println!("twinbay is up: open {browse}");
    print_first_admin(&hub);
    println!(
        "Add a host: twinbay ctl --data-dir {} join-token create",
        data_dir.display()
    );
    println!(
        "  then on that host: twinbay agent --join <string> --state-dir ~/.local/state/twinbay-agent"
    );
    println!("Press Ctrl-C to stop. Warnings and a summary a minute follow (-v for the full log).");
    tokio::spawn(summarise(hub.state.clone(), shutdown.clone()));

    let agent_result = agent.await;
    if !shutdown.is_cancelled() {
        // The local agent stopped on its own: say why, keep the hub serving.
        match agent_result {
            Ok(Err(e)) => {
                tracing::error!(error = %twinbay_hub::report(&e), "the local agent stopped")
            }
            Ok(Ok(())) => {}
            Err(e) => tracing::error!(error = %e, "the local agent crashed"),
        }
    }
    shutdown.cancelled().await;
    let (state, listen) = (hub.state.clone(), hub.local_addr);
    hub.wait().await;
    finish_lifecycle(&state, &data_dir, listen).await
}

/// The demo fleet's join string, kept in the data dir so that the simulated
/// hosts (whose keys derive from it) are the same nodes on every start.
async fn demo_join(hub: &RunningHub, data_dir: &Path, hub_url: &str) -> Result<String> {
    let path = data_dir.join("agent").join("demo-join");
    if let Ok(join) = std::fs::read_to_string(&path) {
        return Ok(join.trim().to_string());
    }
    let join = hub
        .join_string(hub_url, Duration::from_secs(365 * 86_400))
        .await?;
    // The local agent creates its dir too, concurrently: whoever comes first.
    if let Some(dir) = path.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, &join).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(join)
}

async fn sim(args: SimArgs) -> Result<()> {
    let shutdown = shutdown_on_signal();
    let config = SimConfig {
        interval: args.interval,
        churn_per_min: args.churn,
        ramp_per_sec: args.ramp,
        first_index: args.first_index,
        ..SimConfig::new(
            twinbay_agent::cli::join_string(args.join, args.join_file.as_deref())?
                .unwrap_or_default(),
            args.agents as usize,
        )
    };
    eprintln!(
        "twinbay sim: {} simulated agents, every {:?}, {} changes per agent per minute; Ctrl-C stops",
        config.agents, config.interval, config.churn_per_min
    );
    twinbay_agent::sim::run(config, shutdown)
        .await
        .map_err(|e| anyhow!(twinbay_hub::report(&e)))
}

/// Where a local client reaches a hub listening on `addr`.
fn local_address(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

async fn hub(args: HubArgs) -> Result<()> {
    let data_dir = data_dir(args.data_dir)?;
    recover_interrupted_update(&data_dir)?;
    let shutdown = shutdown_on_signal();
    let mut config = hub_config(
        args.listen,
        data_dir.clone(),
        &args.history,
        &args.access,
        &args.connections,
        &args.gateway,
        &args.alerts,
    )?;
    config.store = args.store;
    config.bus = args.bus;
    config.public_url = args.public_url;
    config.backup_store = args.backup_store;
    config.backup_credentials = args.backup_credentials;
    config.tls_cert = args.tls_cert;
    config.tls_key = args.tls_key;
    config.heartbeat = args.heartbeat;
    config.lifecycle.health_window = args.update_health_window;
    let hub = twinbay_hub::start(config, shutdown.clone()).await?;
    tokio::spawn(release_memory_after_surges(
        hub.state.connections.clone(),
        shutdown.clone(),
    ));
    println!(
        "twinbay hub listening on {} (agents dial {})",
        hub.local_addr, hub.public_url
    );
    println!("TLS certificate {}", hub.fingerprint);
    print_first_admin(&hub);
    shutdown.cancelled().await;
    let (state, listen) = (hub.state.clone(), hub.local_addr);
    hub.wait().await;
    finish_lifecycle(&state, &data_dir, listen).await
}

async fn verb(data_dir: &Path, a: VerbArgs, verb: &str) -> Result<String> {
    let op = lifecycle(&a.target, verb)?;
    remote_command(data_dir, a.remote, &a.node, op).await
}

/// `container:web`, `unit:nginx.service`, `user_unit:x.service`, `agent`, or a bare name.
fn lifecycle(target: &str, verb: &str) -> Result<serde_json::Value> {
    const UNIT_TYPES: &[&str] = &[
        ".service", ".timer", ".socket", ".mount", ".target", ".path", ".slice", ".scope",
    ];
    let (kind, name) = match target.split_once(':') {
        _ if target == "agent" => ("agent", ""),
        Some((kind, name)) => {
            let kind = twinbay_proto::command::TargetKind::parse(kind).ok_or_else(|| {
                anyhow!("{kind:?} is not a target kind (container, unit, user_unit, agent)")
            })?;
            (kind.as_str(), name)
        }
        None if UNIT_TYPES.iter().any(|t| target.ends_with(t)) => ("unit", target),
        None => ("container", target),
    };
    Ok(serde_json::json!({"op": "lifecycle", "verb": verb, "target": {"kind": kind, "name": name}}))
}

/// Runs `op` on `node` through the hub's API, streams its output, and
/// exits with the remote exit code.
async fn remote_command(
    data_dir: &Path,
    remote: crate::args::RemoteArgs,
    node: &str,
    op: serde_json::Value,
) -> Result<String> {
    let client = remote_client(data_dir, &remote).await?;
    let wait = u32::try_from(remote.wait.as_secs()).unwrap_or(u32::MAX);
    let code = client.run(node, op, wait).await?;
    std::process::exit(i32::from(code));
}

/// The API client for `remote`: its `--hub`, else the hub of `data_dir`.
pub(crate) async fn remote_client(
    data_dir: &Path,
    remote: &crate::args::RemoteArgs,
) -> Result<crate::remote::Remote> {
    crate::remote::Remote::locate(
        remote.hub.clone(),
        remote.fingerprint.clone(),
        remote.token.clone(),
        Some(data_dir),
    )
    .await
}

async fn ctl(args: CtlArgs) -> Result<()> {
    let data_dir = data_dir(args.data_dir)?;
    let out = match args.command {
        CtlCommand::Exec(a) => {
            let mut kv = serde_json::Map::new();
            for arg in &a.args {
                let (k, v) = arg
                    .split_once('=')
                    .ok_or_else(|| anyhow!("{arg:?} is not KEY=VALUE"))?;
                kv.insert(k.to_string(), serde_json::Value::String(v.to_string()));
            }
            let op = serde_json::json!({"op": "action", "name": a.action, "args": kv});
            remote_command(&data_dir, a.remote, &a.node, op).await?
        }
        CtlCommand::Logs(a) => {
            let mut op = lifecycle(&a.target, "logs")?;
            op["lines"] = a.lines.into();
            op["follow"] = a.follow.into();
            remote_command(&data_dir, a.remote, &a.node, op).await?
        }
        CtlCommand::Status(a) => verb(&data_dir, a, "status").await?,
        CtlCommand::Start(a) => verb(&data_dir, a, "start").await?,
        CtlCommand::Stop(a) => verb(&data_dir, a, "stop").await?,
        CtlCommand::Restart(a) => verb(&data_dir, a, "restart").await?,
        CtlCommand::Version(a) => verb(&data_dir, a, "version").await?,
        CtlCommand::Files(a) => crate::files::run(&data_dir, a).await?,
        CtlCommand::Routes(a) => crate::routes::run(&data_dir, a).await?,
        CtlCommand::Schedules(a) => crate::schedules::run(&data_dir, a).await?,
        CtlCommand::Alerts(a) => crate::alerts::run(&data_dir, a).await?,
        CtlCommand::Backup(a) => crate::backup::run(&data_dir, a).await?,
        CtlCommand::Release(a) => crate::release::run(&data_dir, a).await?,
        CtlCommand::Host(a) => crate::past::host(&data_dir, a).await?,
        CtlCommand::Ssh(a) => crate::ssh::ssh(&data_dir, a).await?,
        CtlCommand::Changes(a) => crate::past::changes(&data_dir, a).await?,
        CtlCommand::Hub(a) => crate::hubctl::run(&data_dir, a).await?,
        CtlCommand::JoinToken(JoinTokenCommand::Create { ttl, hub_url }) => {
            twinbay_hub::admin::create_join_string(&data_dir, ttl, hub_url.as_deref())
                .await
                .map_err(|e| anyhow!(twinbay_hub::report(&e)))
                .context("creating a join token")?
        }
        CtlCommand::ApiToken(ApiTokenCommand::Create {
            role,
            name,
            ttl,
            groups,
            read_only,
        }) => {
            let groups: Vec<String> = groups
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let role = match role {
                RoleArg::Viewer => Role::Viewer,
                RoleArg::Operator => Role::Operator,
                RoleArg::Admin => Role::Admin,
            };
            let groups = (!groups.is_empty()).then_some(groups.as_slice());
            twinbay_hub::admin::create_api_token(&data_dir, role, &name, ttl, groups, read_only)
                .await
                .map_err(|e| anyhow!(twinbay_hub::report(&e)))
                .context("creating an API token")?
        }
        CtlCommand::ApiToken(ApiTokenCommand::Revoke { id }) => {
            twinbay_hub::admin::revoke_api_token(&data_dir, id)
                .await
                .map_err(|e| anyhow!(twinbay_hub::report(&e)))
                .context("revoking an API token")?;
            format!("revoked API token {id}")
        }
        CtlCommand::Audit(AuditCommand::Verify {
            expect_head,
            head_file,
        }) => verify_audit(&data_dir, expect_head, head_file.as_deref()).await?,
    };
    println!("{out}");
    Ok(())
}

/// `ctl audit verify`: the chain, and that it holds the expected head (the
/// one given, else the one the hub recorded in the data dir).
async fn verify_audit(
    data_dir: &Path,
    expect_head: Option<twinbay_hub::audit::Expected>,
    head_file: Option<&Path>,
) -> Result<String> {
    use twinbay_hub::admin::ExpectHead;
    use twinbay_hub::audit::Broken;
    let expect = match (expect_head, head_file) {
        (Some(hash), _) => ExpectHead::Hash(hash),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let head = serde_json::from_str(&text).map_err(|e| {
                anyhow!(
                    "{} is not a head from GET /api/v1/audit/head: {e}",
                    file.display()
                )
            })?;
            ExpectHead::Signed(head)
        }
        (None, None) => ExpectHead::Recorded,
    };
    let recorded = matches!(expect, ExpectHead::Recorded);
    let given = match &expect {
        ExpectHead::Hash(_) | ExpectHead::Signed(_) => " and holds the expected head",
        ExpectHead::Recorded => "",
    };
    match twinbay_hub::admin::verify_audit(data_dir, expect)
        .await
        .map_err(|e| anyhow!(twinbay_hub::report(&e)))?
    {
        Ok((count, Some((id, hash)))) => Ok(format!(
            "audit trail intact{given}: {count} entries; head #{id} sha256:{hash}"
        )),
        Ok((_, None)) => Ok(format!("audit trail intact{given}: no entries yet")),
        Err(broken @ Broken::Cut { .. }) if recorded => Err(anyhow!(
            "audit trail broken: {broken} (the hub recorded that head in {})",
            twinbay_hub::audit::anchor::HEAD_FILE
        )),
        Err(broken) => Err(anyhow!("audit trail broken: {broken}")),
    }
}
