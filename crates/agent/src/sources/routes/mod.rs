//! Reverse-proxy routes (`routes` source): which public name and path goes
//! where, read from the proxies on this host.
//!
//! [`nginx`] reads nginx's files (re-read when they change, through the
//! files source's inotify wiring on their directories); [`caddy`] and
//! [`traefik`] ask their admin APIs ([`http`]: plain HTTP/1.1, 2 s, 4 MiB),
//! every poll interval and when a proxy container restarts. [`target`]
//! resolves each upstream against the twin's containers and ports, again
//! whenever those change. The parsing is pure; this module does the I/O.
//!
//! The source's status names each provider's problem ("caddy: admin API at
//! http://127.0.0.1:2019 answered 500"); the others' routes stay.

pub mod caddy;
pub mod http;
pub mod nginx;
pub mod target;
pub mod traefik;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use twinbay_proto::model::{Keyed, NodeState, Route, RouteTarget, SourceStatus};

use super::files::watch::{Pending, Watches};

pub const SOURCE: &str = "routes";
pub const DEFAULT_NGINX_CONF: &str = "/etc/nginx/nginx.conf";
pub const DEFAULT_CADDY_API: &str = "http://127.0.0.1:2019";
pub const DEFAULT_POLL: Duration = Duration::from_secs(30);
/// Events closer together than this are one save.
pub const DEBOUNCE: Duration = Duration::from_millis(50);
/// Files written without pause are read at least this often.
const MAX_DEBOUNCE: Duration = Duration::from_secs(1);

/// Which proxies to read.
#[derive(Debug, Clone)]
pub struct RoutesConfig {
    /// nginx main files (`--nginx-conf`); none named: [`DEFAULT_NGINX_CONF`] if it exists.
    pub nginx_conf: Vec<PathBuf>,
    /// Caddy admin APIs (`--caddy-api`); none named: [`DEFAULT_CADDY_API`] if it answers.
    pub caddy_api: Vec<String>,
    /// Traefik APIs (`--traefik-api`); none named: those of running
    /// containers named or imaged `traefik` that publish port 8080.
    pub traefik_api: Vec<String>,
    /// How often the APIs are asked (and nginx's files re-read).
    pub poll: Duration,
}

impl Default for RoutesConfig {
    fn default() -> Self {
        RoutesConfig {
            nginx_conf: Vec::new(),
            caddy_api: Vec::new(),
            traefik_api: Vec::new(),
            poll: DEFAULT_POLL,
        }
    }
}

/// A route as a provider read it, and the `host:port` its upstream dials
/// (if known) for [`target::resolve`].
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub route: Route,
    pub dial: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Nginx,
    Caddy,
    Traefik,
}

/// One configured (or default) proxy and what was last read from it.
#[derive(Debug)]
struct Provider {
    kind: Kind,
    /// The file or API URL.
    at: String,
    /// A default location: absence is not a problem.
    default: bool,
    found: Vec<Found>,
    problem: Option<String>,
    present: bool,
}

impl Provider {
    fn new(kind: Kind, at: String, default: bool) -> Provider {
        Provider {
            kind,
            at,
            default,
            found: Vec::new(),
            problem: None,
            present: false,
        }
    }

    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Nginx => "nginx",
            Kind::Caddy => "caddy",
            Kind::Traefik => "traefik",
        }
    }
}

/// The providers a configuration names.
fn providers(config: &RoutesConfig) -> Vec<Provider> {
    let mut out = Vec::new();
    for p in &config.nginx_conf {
        out.push(Provider::new(Kind::Nginx, p.display().to_string(), false));
    }
    if config.nginx_conf.is_empty() {
        out.push(Provider::new(Kind::Nginx, DEFAULT_NGINX_CONF.into(), true));
    }
    for u in &config.caddy_api {
        out.push(Provider::new(Kind::Caddy, u.clone(), false));
    }
    if config.caddy_api.is_empty() {
        out.push(Provider::new(Kind::Caddy, DEFAULT_CADDY_API.into(), true));
    }
    for u in &config.traefik_api {
        out.push(Provider::new(Kind::Traefik, u.clone(), false));
    }
    out
}

/// Traefik APIs to ask without a `--traefik-api`: running containers named
/// or imaged `traefik` that publish its API port (8080) on the host.
pub fn discovered_traefik(state: &NodeState) -> Vec<String> {
    let mut out: Vec<String> = state
        .containers
        .values()
        .filter(|c| c.state == "running")
        .filter(|c| {
            format!("{} {}", c.name, c.image)
                .to_ascii_lowercase()
                .contains("traefik")
        })
        .flat_map(|c| &c.ports)
        .filter_map(|p| {
            let (host, inside) = p.split_once("->")?;
            (inside == "8080/tcp").then_some(())?;
            let (ip, port) = target::split(host)?;
            let ip = match ip {
                "0.0.0.0" | "" => "127.0.0.1",
                "::" => "[::1]",
                ip if ip.contains(':') => return Some(format!("http://[{ip}]:{}", port?)),
                ip => ip,
            };
            Some(format!("http://{ip}:{}", port?))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Follows the discovered Traefik APIs (named ones are kept as they are).
fn sync_discovered(providers: &mut Vec<Provider>, config: &RoutesConfig, state: &NodeState) {
    if !config.traefik_api.is_empty() {
        return;
    }
    let want = discovered_traefik(state);
    providers.retain(|p| !(p.kind == Kind::Traefik && p.default) || want.contains(&p.at));
    for url in want {
        if !providers
            .iter()
            .any(|p| p.kind == Kind::Traefik && p.at == url)
        {
            providers.push(Provider::new(Kind::Traefik, url, true));
        }
    }
}

/// What re-reading nginx needs to know: files read and directories to watch.
#[derive(Debug, Default)]
struct NginxWatch {
    files: HashSet<PathBuf>,
    glob_dirs: HashSet<PathBuf>,
}

impl NginxWatch {
    fn dirs(&self) -> BTreeSet<PathBuf> {
        let parents = self.files.iter().filter_map(|f| f.parent());
        parents
            .map(Path::to_path_buf)
            .chain(self.glob_dirs.iter().cloned())
            .filter(|d| d.is_dir())
            .collect()
    }

    fn concerns(&self, path: &Path) -> bool {
        self.files.contains(path) || path.parent().is_some_and(|d| self.glob_dirs.contains(d))
    }
}

/// Re-reads every nginx provider (blocking file I/O).
fn read_nginx(providers: &mut [Provider]) -> NginxWatch {
    let mut w = NginxWatch::default();
    for p in providers.iter_mut().filter(|p| p.kind == Kind::Nginx) {
        let path = PathBuf::from(&p.at);
        w.files.insert(path.clone());
        if p.default && !path.exists() {
            p.present = false;
            p.found.clear();
            p.problem = None;
            continue;
        }
        let loaded = nginx::load(&path);
        // A symlink (Debian's sites-enabled/x → sites-available/x) is edited
        // where it points: watch that directory too.
        let real = loaded.files.iter().filter_map(|f| f.canonicalize().ok());
        w.files.extend(real.collect::<Vec<_>>());
        w.files.extend(loaded.files.iter().cloned());
        w.glob_dirs.extend(loaded.dirs.iter().cloned());
        p.present = true;
        p.found = nginx::routes(&loaded.directives);
        p.problem = (!loaded.problems.is_empty()).then(|| loaded.problems.join("; "));
    }
    w
}

/// Asks every API provider once.
async fn poll_apis(providers: &mut [Provider], state: &watch::Sender<NodeState>) {
    for p in providers.iter_mut().filter(|p| p.kind != Kind::Nginx) {
        let instance = instance_of(&p.at, &state.borrow());
        let result = match p.kind {
            Kind::Caddy => {
                let url = format!("{}/config/", p.at.trim_end_matches('/'));
                match http::get_json(&url).await {
                    Ok((config, _)) => caddy::routes(&config, &instance),
                    Err(e) => Err(format!("admin API at {} {}", p.at, e)),
                }
            }
            Kind::Traefik => match traefik::fetch(&p.at).await {
                Ok((routers, services)) => traefik::routes(&routers, &services, &instance),
                Err(e) => Err(format!("API at {e}")),
            },
            Kind::Nginx => continue,
        };
        match result {
            Ok(found) => {
                p.present = true;
                p.found = found;
                p.problem = None;
            }
            // Nothing at a default address: no such proxy here.
            Err(e) if p.default && e.contains("cannot connect") => {
                p.present = false;
                p.found.clear();
                p.problem = None;
            }
            Err(e) => {
                p.present = true;
                p.found.clear();
                p.problem = Some(e);
            }
        }
    }
}

/// `host` when the API answers on this host itself, else the container
/// that publishes its port.
fn instance_of(api: &str, state: &NodeState) -> String {
    let authority = api
        .split_once("://")
        .map_or(api, |(_, r)| r)
        .split('/')
        .next()
        .unwrap_or_default();
    match target::resolve(Some(authority), state) {
        RouteTarget::Container { name, .. } => name,
        _ => "host".into(),
    }
}

/// The twin's routes from what the providers found, targets resolved
/// against `state`. Two routes with one key: the TLS one, else the first.
pub fn assemble<'a>(
    found: impl Iterator<Item = &'a Found>,
    state: &NodeState,
) -> BTreeMap<String, Route> {
    let mut out: BTreeMap<String, Route> = BTreeMap::new();
    for f in found {
        let mut route = f.route.clone();
        route.target = target::resolve(f.dial.as_deref(), state);
        let key = route.key();
        match out.get(&key) {
            Some(old) if old.tls || !route.tls => {}
            _ => {
                out.insert(key, route);
            }
        }
    }
    out
}

fn status(providers: &[Provider]) -> SourceStatus {
    let present: Vec<&Provider> = providers.iter().filter(|p| p.present).collect();
    let mut parts = Vec::new();
    for p in &present {
        match &p.problem {
            Some(problem) if p.found.is_empty() => parts.push(format!("{}: {problem}", p.name())),
            Some(problem) => parts.push(format!(
                "{}: {} routes, but {problem}",
                p.name(),
                p.found.len()
            )),
            None => parts.push(format!("{}: {} routes", p.name(), p.found.len())),
        }
    }
    if present.is_empty() {
        let looked: Vec<&str> = providers.iter().map(|p| p.at.as_str()).collect();
        return SourceStatus {
            name: SOURCE.into(),
            available: false,
            reason: Some(
                format!("no reverse proxy found (looked at {})", looked.join(", ")).into(),
            ),
        };
    }
    SourceStatus {
        name: SOURCE.into(),
        // Partial is still available; all of them failing is not.
        available: present
            .iter()
            .any(|p| p.problem.is_none() || !p.found.is_empty()),
        reason: Some(parts.join("; ").into()),
    }
}

/// Sets the twin's routes and the source's status; returns the
/// [`resolution_inputs`] the targets were resolved with.
fn publish(providers: &[Provider], state: &watch::Sender<NodeState>) -> String {
    let status = status(providers);
    let mut inputs = String::new();
    state.send_if_modified(|s| {
        inputs = resolution_inputs(s);
        let routes = assemble(providers.iter().flat_map(|p| &p.found), s);
        let mut changed = false;
        if s.routes != routes {
            s.routes = routes;
            changed = true;
        }
        if s.sources.get(SOURCE) != Some(&status) {
            s.sources.insert(SOURCE.into(), status);
            changed = true;
        }
        changed
    });
    inputs
}

/// What target resolution reads from the twin: when it changes, resolve again.
fn resolution_inputs(s: &NodeState) -> String {
    let mut out = s.host.hostname.clone();
    for c in s.containers.values() {
        out.push_str(&format!(
            "|{} {} {:?} {:?} {}",
            c.id, c.name, c.compose_service, c.ports, c.state
        ));
    }
    for k in s.ports.keys() {
        out.push('|');
        out.push_str(k);
    }
    out
}

/// Proxy containers and when they started: a restart means a new configuration.
fn proxy_starts(s: &NodeState) -> Vec<(String, Option<String>)> {
    s.containers
        .values()
        .filter(|c| {
            let what = format!("{} {}", c.name, c.image).to_ascii_lowercase();
            ["caddy", "traefik", "nginx"]
                .iter()
                .any(|p| what.contains(p))
        })
        .map(|c| (c.id.clone(), c.started_at.clone()))
        .collect()
}

/// Runs the routes source until `cancel`.
pub async fn run(
    config: RoutesConfig,
    state: Arc<watch::Sender<NodeState>>,
    cancel: CancellationToken,
) {
    let mut rx = state.subscribe();
    let pending = Arc::new(Pending::default());
    let mut watches: Option<Watches> = None;
    let mut providers = providers(&config);
    let mut nginx_watch = NginxWatch::default();
    let mut inputs: String;
    let mut starts = proxy_starts(&rx.borrow_and_update());
    sync_discovered(&mut providers, &config, &rx.borrow());
    let poll_every = config.poll.max(Duration::from_millis(100));
    let mut poll = tokio::time::interval_at(tokio::time::Instant::now() + poll_every, poll_every);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut read_files = true;
    let mut ask_apis = true;
    loop {
        if read_files {
            let (back, w) = match tokio::task::spawn_blocking(move || {
                let w = read_nginx(&mut providers);
                (providers, w)
            })
            .await
            {
                Ok(r) => r,
                Err(_) => return,
            };
            providers = back;
            nginx_watch = w;
            set_watches(&mut watches, &pending, &nginx_watch.dirs());
        }
        if ask_apis {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = poll_apis(&mut providers, &state) => {}
            }
        }
        // What the targets were resolved against: our own publish wakes
        // the loop once more, and finds nothing new.
        inputs = publish(&providers, &state);
        (read_files, ask_apis) = (false, false);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = poll.tick() => (read_files, ask_apis) = (true, true),
            _ = pending.notify.notified() => {
                let started = tokio::time::Instant::now();
                loop {
                    let seq = pending.seq();
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(DEBOUNCE) => {}
                    }
                    if pending.seq() == seq || started.elapsed() >= MAX_DEBOUNCE {
                        break;
                    }
                }
                let (paths, rescan) = pending.take();
                read_files = rescan || paths.iter().any(|p| nginx_watch.concerns(p));
            }
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
                let s = rx.borrow_and_update();
                let now = proxy_starts(&s);
                if now != starts {
                    starts = now;
                    sync_discovered(&mut providers, &config, &s);
                    (read_files, ask_apis) = (true, true);
                }
                if resolution_inputs(&s) == inputs && !ask_apis {
                    continue;
                }
            }
        }
    }
}

fn set_watches(watches: &mut Option<Watches>, pending: &Arc<Pending>, dirs: &BTreeSet<PathBuf>) {
    if dirs.is_empty() {
        *watches = None;
        return;
    }
    if watches.is_none() {
        match Watches::new(pending.clone()) {
            Ok(w) => *watches = Some(w),
            Err(e) => tracing::debug!(error = %e, "routes: no inotify; polling only"),
        }
    }
    if let Some(w) = watches {
        w.set(dirs);
    }
}

#[cfg(test)]
mod tests;
