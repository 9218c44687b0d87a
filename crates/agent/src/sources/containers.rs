//! Containers over the Docker Engine API on a unix socket (Docker, or
//! Podman's compatible service): an inventory, then the event stream.
//!
//! An event names one container; the source re-inspects just that one (or
//! removes it if it is gone). With Podman logging events to a file, the
//! source also follows that file (`eventlog.rs`): Podman's API delivers
//! events 60–250 ms late, the file has them at once. An event read there is
//! handled at once and its API copy skipped. When the socket disappears or
//! the stream breaks, the source says so, clears its containers — stale
//! containers are never shown as live — and resyncs from scratch when the
//! API is back.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use twinbay_proto::Str;

use bollard::Docker;
use bollard::models::{ContainerInspectResponse, ContainerStatsResponse, EventMessage};
use bollard::query_parameters::{
    EventsOptionsBuilder, ListContainersOptionsBuilder, StatsOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use twinbay_proto::model::{Container, ContainerSample, Keyed, NodeState, SourceStatus};

use crate::backoff::{Backoff, random_unit};

pub mod eventlog;

pub const SOURCE: &str = "containers";
const API_TIMEOUT_SECS: u64 = 10;
/// How long an event handled from the log file waits for its copy from the API.
const SEEN_FOR: Duration = Duration::from_secs(30);
/// More events waiting for their copy than this and the oldest are forgotten.
const MAX_SEEN: usize = 1024;

/// Where to look for the Engine API, in order: `configured`, `DOCKER_HOST`
/// (a `unix://` one), Docker's socket, the user's and the system's Podman socket.
pub fn candidate_sockets(
    configured: Option<&str>,
    docker_host: Option<&str>,
    runtime_dir: Option<&str>,
) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let unix = |s: &str| s.strip_prefix("unix://").unwrap_or(s).to_string();
    if let Some(c) = configured {
        out.push(PathBuf::from(unix(c)));
    }
    if let Some(h) = docker_host.filter(|h| h.starts_with("unix://") || h.starts_with('/')) {
        out.push(PathBuf::from(unix(h)));
    }
    out.push(PathBuf::from("/var/run/docker.sock"));
    if let Some(dir) = runtime_dir {
        out.push(PathBuf::from(dir).join("podman/podman.sock"));
    }
    out.push(PathBuf::from("/run/podman/podman.sock"));
    out
}

/// The twin's view of one inspected container.
pub fn from_inspect(c: &ContainerInspectResponse) -> Option<Container> {
    let id = c.id.clone()?;
    let config = c.config.as_ref();
    let labels: BTreeMap<String, String> = config
        .and_then(|c| c.labels.clone())
        .map(|l| l.into_iter().collect())
        .unwrap_or_default();
    let state = c.state.as_ref();
    let enum_str = |v: serde_json::Value| v.as_str().map(str::to_string);
    let mut ports: Vec<String> = c
        .network_settings
        .as_ref()
        .and_then(|n| n.ports.as_ref())
        .map(|ports| {
            ports
                .iter()
                .flat_map(|(inside, bindings)| {
                    bindings.iter().flatten().map(move |b| {
                        let ip = b
                            .host_ip
                            .as_deref()
                            .filter(|ip| !ip.is_empty())
                            .unwrap_or("0.0.0.0");
                        format!("{ip}:{}->{inside}", b.host_port.as_deref().unwrap_or(""))
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    ports.sort();
    Some(Container {
        name: c
            .name
            .clone()
            .unwrap_or_default()
            .trim_start_matches('/')
            .into(),
        image: config
            .and_then(|c| c.image.clone())
            .or_else(|| c.image.clone())
            .unwrap_or_default()
            .into(),
        // The inspect's top-level `Image` is the id the container was created from.
        image_id: c
            .image
            .clone()
            .filter(|i| i.starts_with("sha256:") || i.len() == 64)
            .map(Str::from),
        state: state
            .and_then(|s| s.status)
            .and_then(|s| enum_str(serde_json::to_value(s).ok()?))
            .unwrap_or_else(|| "unknown".into())
            .into(),
        health: state
            .and_then(|s| s.health.as_ref())
            .and_then(|h| h.status)
            .and_then(|s| enum_str(serde_json::to_value(s).ok()?))
            .filter(|s| !s.is_empty() && s != "none")
            .map(Str::from),
        exit_code: state.and_then(|s| s.exit_code),
        restart_count: c.restart_count.unwrap_or(0).max(0) as u32,
        compose_project: labels
            .get("com.docker.compose.project")
            .or_else(|| labels.get("io.podman.compose.project"))
            .map(Str::from),
        compose_service: labels
            .get("com.docker.compose.service")
            .or_else(|| labels.get("io.podman.compose.service"))
            .map(Str::from),
        created: c.created.clone().filter(|t| !t.is_empty()),
        started_at: state
            .and_then(|s| s.started_at.clone())
            .filter(|t| !t.is_empty() && !t.starts_with("0001-")),
        ports,
        labels: labels
            .into_iter()
            .map(|(k, v)| (Str::from(k), Str::from(v)))
            .collect(),
        id,
    })
}

/// The container an event is about, if it is about one.
pub fn event_container(e: &EventMessage) -> Option<(String, String)> {
    let typ = serde_json::to_value(e.typ?).ok()?;
    if typ.as_str()? != "container" {
        return None;
    }
    Some((
        e.actor.as_ref()?.id.clone()?,
        e.action.clone().unwrap_or_default(),
    ))
}

/// Applies what an event itself says (`start`, `die` with its exit code,
/// `pause`, `unpause`) to the container, so the twin changes the moment the
/// event arrives; the re-inspect that follows fills in the rest. Returns
/// whether anything changed.
pub fn apply_event(c: &mut Container, action: &str, e: &EventMessage) -> bool {
    let attrs = e.actor.as_ref().and_then(|a| a.attributes.as_ref());
    let exit_code = attrs
        .and_then(|a| a.get("exitCode").or_else(|| a.get("containerExitCode")))
        .and_then(|v| v.parse::<i64>().ok());
    let before = c.clone();
    match action {
        "start" | "unpause" | "restart" => c.state = "running".into(),
        "die" => {
            c.state = "exited".into();
            c.exit_code = exit_code.or(c.exit_code);
        }
        "pause" => c.state = "paused".into(),
        _ => {}
    }
    *c != before
}

/// CPU percent (of one core) and memory from one stats reading and the
/// previous CPU counters of the same container.
pub fn stats_sample(
    id: &str,
    s: &ContainerStatsResponse,
    prev: Option<(u64, u64)>,
) -> (ContainerSample, Option<(u64, u64)>) {
    let cpu = s.cpu_stats.as_ref();
    let total = cpu
        .and_then(|c| c.cpu_usage.as_ref())
        .and_then(|u| u.total_usage);
    let system = cpu.and_then(|c| c.system_cpu_usage);
    let cpus = cpu.and_then(|c| c.online_cpus).unwrap_or(1).max(1) as f64;
    let now = total.zip(system);
    let cpu_pct = match (now, prev) {
        (Some((t, sys)), Some((pt, psys))) if sys > psys && t >= pt => {
            (t - pt) as f64 / (sys - psys) as f64 * cpus * 100.0
        }
        _ => 0.0,
    };
    let mem = s.memory_stats.as_ref();
    let mem_bytes = mem.and_then(|m| m.usage).unwrap_or(0);
    (
        ContainerSample {
            id: id.to_string(),
            cpu_pct: cpu_pct as f32,
            mem_bytes,
            mem_limit: mem.and_then(|m| m.limit).unwrap_or(0),
        },
        now,
    )
}

/// Runs the container source until `cancel`.
pub async fn run(
    configured_socket: Option<String>,
    interval: Duration,
    state: Arc<watch::Sender<NodeState>>,
    stats: Arc<Mutex<Vec<ContainerSample>>>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        let candidates = candidate_sockets(
            configured_socket.as_deref(),
            std::env::var("DOCKER_HOST").ok().as_deref(),
            std::env::var("XDG_RUNTIME_DIR").ok().as_deref(),
        );
        let reason = match candidates.iter().find(|p| p.exists()) {
            None => format!(
                "no Docker or Podman socket (looked at {})",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(socket) => {
                match session(socket, interval, &state, &stats, &cancel, &mut backoff).await {
                    Ok(()) => return,
                    Err(reason) => reason,
                }
            }
        };
        set_unavailable(&state, &stats, &reason);
        tracing::debug!(reason, "container source unavailable");
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_delay(random_unit())) => {}
        }
    }
}

fn set_status(state: &watch::Sender<NodeState>, status: SourceStatus) {
    state.send_if_modified(|s| {
        let changed = s.sources.get(SOURCE) != Some(&status);
        s.sources.insert(SOURCE.into(), status);
        changed
    });
}

fn set_unavailable(
    state: &watch::Sender<NodeState>,
    stats: &Mutex<Vec<ContainerSample>>,
    reason: &str,
) {
    stats.lock().unwrap_or_else(|e| e.into_inner()).clear();
    state.send_if_modified(|s| {
        let status = SourceStatus {
            name: SOURCE.into(),
            available: false,
            reason: Some(reason.into()),
        };
        let changed = !s.containers.is_empty() || s.sources.get(SOURCE) != Some(&status);
        s.containers.clear();
        s.sources.insert(SOURCE.into(), status);
        changed
    });
}

/// One connection to the API: inventory, then events until it breaks.
/// `Ok` only when cancelled.
async fn session(
    socket: &std::path::Path,
    interval: Duration,
    state: &watch::Sender<NodeState>,
    stats: &Mutex<Vec<ContainerSample>>,
    cancel: &CancellationToken,
    backoff: &mut Backoff,
) -> Result<(), String> {
    let docker = Docker::connect_with_unix(
        &socket.to_string_lossy(),
        API_TIMEOUT_SECS,
        bollard::API_DEFAULT_VERSION,
    )
    .map_err(|e| format!("{}: {e}", socket.display()))?;
    docker
        .ping()
        .await
        .map_err(|e| format!("{}: {e}", socket.display()))?;
    // Subscribe first, then list: nothing that happens in between is missed.
    let filters = HashMap::from([("type".to_string(), vec!["container".to_string()])]);
    let mut events = docker.events(Some(
        EventsOptionsBuilder::default().filters(&filters).build(),
    ));
    let mut fast = FastPath::start(socket).await;
    let list = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default().all(true).build(),
        ))
        .await
        .map_err(|e| format!("listing containers: {e}"))?;
    let mut inventory = BTreeMap::new();
    for summary in list {
        let Some(id) = summary.id else { continue };
        if let Some(c) = inspect(&docker, &id).await? {
            inventory.insert(c.key(), Box::new(c));
        }
    }
    state.send_if_modified(|s| {
        let changed = s.containers != inventory;
        s.containers = inventory;
        changed
    });
    set_status(
        state,
        SourceStatus {
            name: SOURCE.into(),
            available: true,
            reason: Some(fast.mode().into()),
        },
    );
    backoff.reset();
    tracing::info!(socket = %socket.display(), events = fast.mode(), "watching containers");

    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prev_cpu: HashMap<String, (u64, u64)> = HashMap::new();
    // Inspections and stats run beside the loop, never in it: an event that
    // comes meanwhile is applied at once.
    let mut inspections = Inspections::default();
    let mut reading: Option<BoxFuture<Reading>> = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            event = events.next() => match event {
                None => return Err("the event stream ended".into()),
                Some(Err(e)) => return Err(format!("the event stream broke: {e}")),
                Some(Ok(event)) => {
                    let Some((id, action)) = event_container(&event) else { continue };
                    if fast.seen.take(&id, &action, event.time_nano) {
                        tracing::debug!(id, action, "container event, already handled from the log file");
                        continue;
                    }
                    // First what the event says, at once; then the details.
                    state.send_if_modified(|s| s.containers.get_mut(&id).is_some_and(|c| apply_event(c, &action, &event)));
                    tracing::debug!(id, action, "container event");
                    inspections.want(&docker, id);
                }
            },
            _ = fast.woken() => {
                let Some(ids) = fast.read(state) else {
                    set_status(state, SourceStatus { name: SOURCE.into(), available: true, reason: Some(fast.mode().into()) });
                    continue;
                };
                for id in ids {
                    inspections.want(&docker, id);
                }
            },
            (id, stale, current) = inspections.done() => {
                // One container that cannot be inspected (the engine can
                // fail one mid-restart) keeps its last record until its next
                // event: ending the session would clear every container and
                // resolve and re-raise their alerts.
                let current = match current {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(id, error = %e, "inspect failed; keeping the last record");
                        inspections.start_next(&docker);
                        continue;
                    }
                };
                // An event came while it ran: its answer may predate the
                // event; the next inspection (queued) has the last word.
                if !stale {
                    state.send_if_modified(|s| match current {
                        Some(c) => s.containers.insert(c.key(), Box::new(c.clone())).as_deref() != Some(&c),
                        None => s.containers.remove(&id).is_some(),
                    });
                }
                inspections.start_next(&docker);
            },
            _ = ticker.tick(), if reading.is_none() => {
                let running: Vec<String> = state.borrow().containers.values().filter(|c| c.state == "running").map(|c| c.id.clone()).collect();
                reading = Some(Box::pin(read_stats(docker.clone(), running, std::mem::take(&mut prev_cpu))));
            },
            (samples, counters) = ready(&mut reading) => {
                reading = None;
                prev_cpu = counters;
                *stats.lock().unwrap_or_else(|e| e.into_inner()) = samples;
            }
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Reading = (Vec<ContainerSample>, HashMap<String, (u64, u64)>);
type Inspected = Result<Option<Container>, String>;

/// The output of `f` when there is one; never without.
async fn ready<T>(f: &mut Option<BoxFuture<T>>) -> T {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// One stats reading of each running container.
async fn read_stats(
    docker: Docker,
    running: Vec<String>,
    mut prev_cpu: HashMap<String, (u64, u64)>,
) -> Reading {
    prev_cpu.retain(|id, _| running.contains(id));
    let mut samples = Vec::with_capacity(running.len());
    for id in running {
        let options = StatsOptionsBuilder::default()
            .stream(false)
            .one_shot(true)
            .build();
        let Some(Ok(s)) = docker.stats(&id, Some(options)).next().await else {
            continue;
        };
        let (sample, counters) = stats_sample(&id, &s, prev_cpu.get(&id).copied());
        if let Some(c) = counters {
            prev_cpu.insert(id, c);
        }
        samples.push(sample);
    }
    (samples, prev_cpu)
}

/// Containers to re-inspect, one at a time, each queued once.
#[derive(Default)]
struct Inspections {
    queue: VecDeque<String>,
    /// The one running: its container, whether an event came meanwhile.
    running: Option<(String, bool, BoxFuture<Inspected>)>,
}

impl Inspections {
    fn want(&mut self, docker: &Docker, id: String) {
        if let Some((running, stale, _)) = &mut self.running
            && *running == id
        {
            *stale = true;
        }
        if !self.queue.contains(&id) {
            self.queue.push_back(id);
        }
        self.start_next(docker);
    }

    fn start_next(&mut self, docker: &Docker) {
        if self.running.is_some() {
            return;
        }
        if let Some(id) = self.queue.pop_front() {
            let (docker, for_id) = (docker.clone(), id.clone());
            let f = Box::pin(async move { inspect(&docker, &for_id).await });
            self.running = Some((id, false, f));
        }
    }

    /// The running inspection's container, staleness and answer.
    async fn done(&mut self) -> (String, bool, Inspected) {
        let Some((_, _, f)) = &mut self.running else {
            return std::future::pending().await;
        };
        let out = f.await;
        let (id, stale, _) = self.running.take().expect("running");
        (id, stale, out)
    }
}

/// Podman's events log file, followed: the fast path beside the API's
/// event stream (`eventlog.rs`).
struct FastPath {
    /// The file and its inotify watch, or why the API's stream is used alone.
    tail: Result<(eventlog::Tail, eventlog::Watch), String>,
    wake: Arc<Notify>,
    seen: Seen,
}

impl FastPath {
    async fn start(socket: &std::path::Path) -> FastPath {
        let wake = Arc::new(Notify::new());
        let tail = match eventlog::find(socket).await {
            // The watch first: nothing written after the open is missed.
            Ok(path) => eventlog::Watch::new(&path, wake.clone())
                .map_err(|e| format!("{}: {e}", path.display()))
                .and_then(|w| {
                    eventlog::Tail::open(&path)
                        .map(|t| (t, w))
                        .map_err(|e| format!("{}: {e}", path.display()))
                }),
            Err(e) => Err(e),
        };
        if let Err(why) = &tail {
            tracing::debug!(why, "container events from the engine API only");
        }
        FastPath {
            tail,
            wake,
            seen: Seen::default(),
        }
    }

    /// What the source status says about where events come from.
    fn mode(&self) -> String {
        match &self.tail {
            Ok((t, _)) => format!("events: podman log file ({})", t.path().display()),
            Err(why) => format!("events: engine API ({why})"),
        }
    }

    /// Until the log file changes (forever without one).
    async fn woken(&self) {
        match self.tail {
            Ok(_) => self.wake.notified().await,
            Err(_) => std::future::pending().await,
        }
    }

    /// Applies what the new events say and returns the containers they name,
    /// each once; `None` when the file cannot be read any more (the API's
    /// stream carries on alone).
    fn read(&mut self, state: &watch::Sender<NodeState>) -> Option<Vec<String>> {
        let (tail, _) = self.tail.as_mut().ok()?;
        let (events, more) = match tail.read() {
            Ok(r) => r,
            Err(e) => {
                let why = format!("{}: {e}", tail.path().display());
                tracing::info!(why, "podman's events log unreadable; engine API only");
                self.tail = Err(why);
                return None;
            }
        };
        if more {
            self.wake.notify_one();
        }
        let mut ids: Vec<String> = Vec::new();
        for event in events.iter().filter_map(eventlog::LogEvent::to_message) {
            let Some((id, action)) = event_container(&event) else {
                continue;
            };
            tracing::debug!(id, action, "container event from the log file");
            state.send_if_modified(|s| {
                s.containers
                    .get_mut(&id)
                    .is_some_and(|c| apply_event(c, &action, &event))
            });
            self.seen.add(&id, &action, event.time_nano);
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Some(ids)
    }
}

/// Events handled from the log file whose copy from the API has not come
/// yet, oldest first: each copy is then skipped, once. A copy is known by its
/// container, action and time (to the nanosecond, the same in both).
#[derive(Debug, Default)]
struct Seen {
    events: VecDeque<(String, String, Option<i64>, Instant)>,
}

impl Seen {
    /// Forgets what is older than [`SEEN_FOR`], and the oldest beyond `keep`.
    fn prune(&mut self, now: Instant, keep: usize) {
        while self.events.len() > keep
            || self
                .events
                .front()
                .is_some_and(|(_, _, _, at)| now.duration_since(*at) > SEEN_FOR)
        {
            self.events.pop_front();
        }
    }

    fn add(&mut self, id: &str, action: &str, time_nano: Option<i64>) {
        let now = Instant::now();
        self.prune(now, MAX_SEEN - 1);
        self.events
            .push_back((id.to_string(), action.to_string(), time_nano, now));
    }

    /// Whether `id`'s `action` at `time_nano` was handled already (and
    /// forgets it). Without a time on either side, the oldest such action.
    fn take(&mut self, id: &str, action: &str, time_nano: Option<i64>) -> bool {
        if self.events.is_empty() {
            return false;
        }
        self.prune(Instant::now(), MAX_SEEN);
        match self.events.iter().position(|(i, a, t, _)| {
            i == id && a == action && (t.is_none() || time_nano.is_none() || *t == time_nano)
        }) {
            Some(at) => {
                self.events.remove(at);
                true
            }
            None => false,
        }
    }
}

/// Inspects one container: `Ok(None)` if it no longer exists.
async fn inspect(docker: &Docker, id: &str) -> Result<Option<Container>, String> {
    match docker.inspect_container(id, None).await {
        Ok(c) => Ok(from_inspect(&c)),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(format!("inspecting {id}: {e}")),
    }
}

#[cfg(test)]
mod tests;
