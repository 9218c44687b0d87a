//! Sources watch one part of the host each; [`Collectors`] runs them all
//! once per interval and assembles the node's state and one sample.
//!
//! A source that cannot work here (no hwmon, no permission) says so in the
//! twin's `sources` collection, and the others carry on.

pub mod containers;
pub mod disks;
pub mod files;
pub mod gpu;
pub mod host;
pub mod latency;
pub mod net;
pub mod ports;
pub mod processes;
pub mod routes;
pub mod smart;
pub mod temps;
pub mod units;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use twinbay_proto::Str;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use twinbay_proto::model::{Keyed, NodeState, Sample, SourceStatus};

use crate::buffer::SampleBuffer;

/// The units that travel by default (failed ones always do).
pub const DEFAULT_UNITS: &str = "*.service,*.timer";

/// What to collect and how often.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub interval: Duration,
    /// How many processes to report, by CPU and by memory each.
    pub top_processes: usize,
    /// `host:port` targets whose TCP connect time is measured.
    pub latency_targets: Vec<String>,
    /// How often to read disk health with smartctl (it wakes sleeping disks).
    pub smart_every: Duration,
    /// The Docker/Podman API socket, if not in one of the usual places.
    pub container_socket: Option<String>,
    /// Which systemd units travel (failed ones always do).
    pub units: units::UnitFilter,
    /// Labels of this host (`group=web`), for finding it and for scoping
    /// who may see it.
    pub labels: BTreeMap<String, String>,
    /// Watched configuration files (`--watch`, discovered compose and unit files).
    pub files: files::FilesConfig,
    /// Reverse proxies whose routes to read (nginx, Caddy, Traefik).
    pub routes: routes::RoutesConfig,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            interval: Duration::from_secs(5),
            top_processes: 10,
            latency_targets: Vec::new(),
            smart_every: Duration::from_secs(600),
            container_socket: None,
            units: units::UnitFilter::parse(DEFAULT_UNITS).expect("the default unit filter parses"),
            labels: BTreeMap::new(),
            files: files::FilesConfig::default(),
            routes: routes::RoutesConfig::default(),
        }
    }
}

/// Every source, reading the host's files under one root.
#[derive(Debug)]
pub struct Collectors {
    host: host::HostSource,
    disks: disks::DiskSource,
    net: net::NetSource,
    processes: processes::ProcessSource,
    ports: ports::PortSource,
    temps: temps::TempSource,
    gpu: Result<gpu::GpuSource, String>,
    labels: BTreeMap<String, String>,
}

impl Collectors {
    pub fn new(root: impl Into<PathBuf>, config: &SourceConfig) -> Collectors {
        let root = root.into();
        Collectors {
            host: host::HostSource::new(&root),
            disks: disks::DiskSource::new(&root),
            net: net::NetSource::new(&root),
            processes: processes::ProcessSource::new(&root, config.top_processes),
            ports: ports::PortSource::new(&root),
            temps: temps::TempSource::new(&root),
            gpu: gpu::GpuSource::open(),
            labels: config.labels.clone(),
        }
    }

    /// One round: updates `state` in place and returns the sample. Fails only
    /// if the basic host files cannot be read.
    pub fn collect(&mut self, now_ms: i64, state: &mut NodeState) -> std::io::Result<Sample> {
        let reading = self.host.sample(now_ms)?;
        state.host = reading.host;
        state.host.labels = self.labels.clone();
        let mut sample = reading.sample;
        let mut sources = BTreeMap::new();
        let mut status = |name: &str, result: Result<(), String>| {
            let s = SourceStatus {
                name: name.into(),
                available: result.is_ok(),
                reason: result.err().map(Str::from),
            };
            sources.insert(s.key(), s);
        };
        status("host", Ok(()));

        match self.disks.sample(now_ms) {
            Ok((mounts, disks)) => {
                state.mounts = keyed(mounts);
                sample.disks = disks;
                status("disks", Ok(()));
            }
            Err(e) => status("disks", Err(e.to_string())),
        }
        match self.net.sample(now_ms) {
            Ok((interfaces, nets)) => {
                state.interfaces = keyed(interfaces);
                sample.nets = nets;
                status("network", Ok(()));
            }
            Err(e) => status("network", Err(e.to_string())),
        }
        match self.processes.sample(now_ms) {
            Ok(top) => {
                state.processes = keyed(top);
                status("processes", Ok(()));
            }
            Err(e) => status("processes", Err(e.to_string())),
        }
        match self.ports.sample() {
            Ok(ports) => {
                state.ports = keyed(ports);
                status("ports", Ok(()));
            }
            Err(e) => status("ports", Err(e.to_string())),
        }
        sample.temps = self.temps.sample();
        status(
            "temperatures",
            if sample.temps.is_empty() {
                Err("no hwmon temperature sensors".into())
            } else {
                Ok(())
            },
        );
        match self.gpu.as_ref().map(gpu::GpuSource::sample) {
            Ok(Ok(gpus)) => {
                sample.gpus = gpus;
                status("gpu", Ok(()));
            }
            Ok(Err(e)) => status("gpu", Err(e)),
            Err(e) => status("gpu", Err(e.clone())),
        }
        // Sources the host owns; others (containers, units) keep their entries.
        for (name, s) in sources {
            state.sources.insert(name, s);
        }
        Ok(sample)
    }
}

/// The process directories under `ROOT/proc`, with their pids.
pub fn pid_dirs(
    root: &std::path::Path,
) -> std::io::Result<impl Iterator<Item = (u32, std::fs::DirEntry)>> {
    Ok(std::fs::read_dir(root.join("proc"))?
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((pid, entry))
        }))
}

fn keyed<T: Keyed>(items: Vec<T>) -> BTreeMap<String, T> {
    items.into_iter().map(|i| (i.key(), i)).collect()
}

/// Copies what the host sources own from `src` into `dst` (other sources,
/// such as containers, write their own parts concurrently); says whether
/// anything changed.
fn merge_host_parts(dst: &mut NodeState, src: NodeState) -> bool {
    fn take<T: PartialEq>(dst: &mut T, src: T) -> bool {
        let changed = *dst != src;
        if changed {
            *dst = src;
        }
        changed
    }
    let mut changed = take(&mut dst.host, src.host);
    changed |= take(&mut dst.mounts, src.mounts);
    changed |= take(&mut dst.interfaces, src.interfaces);
    changed |= take(&mut dst.processes, src.processes);
    changed |= take(&mut dst.ports, src.ports);
    changed |= take(&mut dst.disk_health, src.disk_health);
    for (name, status) in src.sources {
        if dst.sources.get(&name) != Some(&status) {
            dst.sources.insert(name, status);
            changed = true;
        }
    }
    changed
}

/// Samples the host every interval: state changes go to the watch channel
/// (the link sends their diff), samples to the buffer.
pub async fn run(
    mut collectors: Collectors,
    config: SourceConfig,
    state: Arc<watch::Sender<NodeState>>,
    samples: Arc<SampleBuffer>,
    container_stats: Arc<std::sync::Mutex<Vec<twinbay_proto::model::ContainerSample>>>,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let probe_timeout = (config.interval / 2).min(Duration::from_secs(2));
    let mut next_smart = tokio::time::Instant::now();
    let mut disk_health = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let mut next = NodeState::default();
        let mut sample = match collectors.collect(crate::now_ms(), &mut next) {
            Ok(sample) => sample,
            Err(e) => {
                tracing::warn!(error = %e, "sampling the host failed");
                continue;
            }
        };
        if !config.latency_targets.is_empty() {
            sample.latency = latency::probe(&config.latency_targets, probe_timeout).await;
        }
        if tokio::time::Instant::now() >= next_smart {
            next_smart += config.smart_every;
            disk_health = Some(smart::read_all().await);
        }
        let smart_status = match &disk_health {
            Some(Ok(disks)) => {
                next.disk_health = keyed(disks.clone());
                Some(Ok(()))
            }
            Some(Err(reason)) => Some(Err(reason.clone())),
            None => None,
        };
        if let Some(result) = smart_status {
            next.sources.insert(
                "smart".into(),
                SourceStatus {
                    name: "smart".into(),
                    available: result.is_ok(),
                    reason: result.err().map(Str::from),
                },
            );
        }
        sample.containers = container_stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        state.send_if_modified(|s| merge_host_parts(s, next));
        samples.push(sample);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_round_on_this_machine_fills_the_twin() {
        let mut collectors = Collectors::new("/", &SourceConfig::default());
        let mut state = NodeState::default();
        collectors.collect(1_000, &mut state).unwrap();
        let sample = collectors.collect(2_000, &mut state).unwrap();
        assert!(!state.host.hostname.is_empty());
        assert!(state.mounts.contains_key("/"), "{:?}", state.mounts.keys());
        assert!(!state.interfaces.is_empty() || state.sources["network"].available);
        assert!(!state.processes.is_empty());
        assert!(state.sources["host"].available);
        assert!(sample.disks.iter().any(|d| d.mount == "/"));
        state.validate().unwrap();
        sample.validate().unwrap();
    }
}
