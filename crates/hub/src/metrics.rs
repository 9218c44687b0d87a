//! Prometheus exposition of the hub's health and every node's latest values.
//!
//! Per-node families are rebuilt from the twin at each scrape (nodes, mounts
//! and interfaces come and go); the hub's own counters live across scrapes.
//!
//! A scrape carries every node's series while the fleet has at most
//! [`DEFAULT_MAX_NODES`] nodes; a larger fleet's default scrape carries the
//! hub's own health and the fleet's counts only, and a scraper picks the
//! nodes it wants ([`NodeSelection`]): all of them, one, or a stable shard,
//! so several scrape jobs share a big fleet.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use twinbay_proto::model::Sample;

use crate::history::History;
use crate::server::limits::{Counts, Refused};
use crate::twin::{NodeTwin, Twin};

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// The per-node gauges, by metric name (without the `twinbay_` prefix).
const NODE_GAUGES: &[(&str, &str)] = &[
    ("node_up", "1 if the node's agent is connected"),
    (
        "node_last_seen_seconds",
        "When the hub last heard from the node (unix time)",
    ),
    ("node_cpu_percent", "CPU busy, percent of all cores"),
    ("node_cpu_core_percent", "CPU busy per core, percent"),
    ("node_cpu_frequency_mhz", "Mean current CPU frequency"),
    ("node_load1", "1-minute load average"),
    ("node_load5", "5-minute load average"),
    ("node_load15", "15-minute load average"),
    ("node_memory_total_bytes", "Total memory"),
    (
        "node_memory_used_bytes",
        "Memory in use (total minus available, ZFS ARC counted as available)",
    ),
    ("node_swap_total_bytes", "Total swap"),
    ("node_swap_used_bytes", "Swap in use"),
    ("node_uptime_seconds", "Time since the node booted"),
    ("node_disk_total_bytes", "Filesystem size, per mount"),
    ("node_disk_used_bytes", "Filesystem space in use, per mount"),
    (
        "node_disk_read_bytes_per_second",
        "Reads of the mount's device",
    ),
    (
        "node_disk_write_bytes_per_second",
        "Writes of the mount's device",
    ),
    (
        "node_network_receive_bytes_per_second",
        "Received, per interface",
    ),
    (
        "node_network_transmit_bytes_per_second",
        "Sent, per interface",
    ),
    (
        "node_network_receive_errors",
        "Receive errors since the interface appeared",
    ),
    (
        "node_network_transmit_errors",
        "Transmit errors since the interface appeared",
    ),
    (
        "node_network_receive_drops",
        "Received packets dropped since the interface appeared",
    ),
    (
        "node_network_transmit_drops",
        "Sent packets dropped since the interface appeared",
    ),
    ("node_temperature_celsius", "Temperature, per hwmon sensor"),
    ("node_gpu_utilization_percent", "GPU utilisation"),
    ("node_gpu_memory_used_bytes", "GPU memory in use"),
    ("node_gpu_temperature_celsius", "GPU temperature"),
    ("node_gpu_power_watts", "GPU power draw"),
    (
        "node_latency_milliseconds",
        "TCP connect time to a configured target",
    ),
];

/// The largest fleet whose per-node series a scrape carries unasked.
pub const DEFAULT_MAX_NODES: usize = 1_000;

/// Which nodes' series one scrape carries (`GET /metrics?nodes=…`,
/// `?shard=I/N`, `?node=ID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeSelection {
    /// Every node while the fleet has at most [`DEFAULT_MAX_NODES`], else none.
    Default,
    All,
    None,
    /// The nodes whose id hashes to `index` of `of` ([`shard_of`]).
    Shard {
        index: u32,
        of: u32,
    },
    Node(String),
}

impl NodeSelection {
    /// Reads the scrape's query parameters; at most one of them may be given.
    pub fn parse(
        nodes: Option<&str>,
        shard: Option<&str>,
        node: Option<&str>,
    ) -> Result<NodeSelection, String> {
        match (nodes, shard, node) {
            (None, None, None) => Ok(NodeSelection::Default),
            (Some("all"), None, None) => Ok(NodeSelection::All),
            (Some("none"), None, None) => Ok(NodeSelection::None),
            (Some(other), None, None) => {
                Err(format!("nodes={other:?}: expected \"all\" or \"none\""))
            }
            (None, Some(shard), None) => {
                let parsed = shard.split_once('/').and_then(|(i, n)| {
                    Some((i.trim().parse::<u32>().ok()?, n.trim().parse::<u32>().ok()?))
                });
                match parsed {
                    Some((index, of)) if of > 0 && of <= 1024 && index < of => {
                        Ok(NodeSelection::Shard { index, of })
                    }
                    _ => Err(format!(
                        "shard={shard:?}: expected I/N with 0 <= I < N <= 1024, e.g. 0/4"
                    )),
                }
            }
            (None, None, Some(id)) if !id.is_empty() => Ok(NodeSelection::Node(id.to_string())),
            (None, None, Some(_)) => Err("node= needs a node id".into()),
            _ => Err("give at most one of nodes=, shard= and node=".into()),
        }
    }

    fn includes(&self, id: &str, fleet: usize) -> bool {
        match self {
            NodeSelection::Default => fleet <= DEFAULT_MAX_NODES,
            NodeSelection::All => true,
            NodeSelection::None => false,
            NodeSelection::Shard { index, of } => shard_of(id, *of) == *index,
            NodeSelection::Node(n) => n == id,
        }
    }
}

/// The shard of `of` that a node's series belong to: FNV-1a (32 bit) of its
/// id, modulo `of`. Stable across restarts and versions, so a node stays in
/// one scrape job.
pub fn shard_of(id: &str, of: u32) -> u32 {
    let hash = id.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash % of.max(1)
}

/// In the order of [`Counts::refused`].
const REFUSAL_REASONS: [Refused; 3] = [Refused::Open, Refused::Unproven, Refused::PerAddress];

pub struct Metrics {
    registry: Registry,
    /// Serializes scrapes, which rebuild the per-node families.
    scrape: Mutex<()>,
    pub agent_frames: Counter,
    pub agent_bad_frames: Counter,
    pub agent_refusals: Counter,
    pub agent_samples: Counter,
    pub agent_throttled: Counter,
    pub ui_resyncs: Counter,
    pub ui_dropped: Counter,
    pub ui_clients: Gauge,
    pub api_unauthorized: Counter,
    /// Timeline events dropped because the writer fell behind.
    pub timeline_dropped: Counter,
    nodes: Gauge,
    nodes_omitted: Gauge,
    agents_connected: Gauge,
    history_queued: Gauge,
    history_dropped: Gauge,
    history_waited: Gauge,
    history_write_failures: Gauge,
    history_points: Gauge,
    history_write_lag: FloatGauge,
    database_bytes: Gauge,
    connections_open: Gauge,
    connections_unproven: Gauge,
    connections_refused: Family<Labels, Gauge>,
    /// In the order of [`NODE_GAUGES`].
    node: Vec<Family<Labels, FloatGauge>>,
}

/// Counts a UI client while alive.
pub struct ClientGuard<'a>(&'a Gauge);

impl Drop for ClientGuard<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("twinbay");
        let m = Metrics {
            registry: Registry::default(),
            scrape: Mutex::new(()),
            agent_frames: Counter::default(),
            agent_bad_frames: Counter::default(),
            agent_refusals: Counter::default(),
            agent_samples: Counter::default(),
            agent_throttled: Counter::default(),
            ui_resyncs: Counter::default(),
            ui_dropped: Counter::default(),
            ui_clients: Gauge::default(),
            api_unauthorized: Counter::default(),
            timeline_dropped: Counter::default(),
            nodes: Gauge::default(),
            nodes_omitted: Gauge::default(),
            agents_connected: Gauge::default(),
            history_queued: Gauge::default(),
            history_dropped: Gauge::default(),
            history_waited: Gauge::default(),
            history_write_failures: Gauge::default(),
            history_points: Gauge::default(),
            history_write_lag: FloatGauge::default(),
            database_bytes: Gauge::default(),
            connections_open: Gauge::default(),
            connections_unproven: Gauge::default(),
            connections_refused: Family::default(),
            node: NODE_GAUGES.iter().map(|_| Family::default()).collect(),
        };
        registry.register(
            "agent_frames",
            "Frames applied from agents",
            m.agent_frames.clone(),
        );
        registry.register(
            "agent_bad_frames",
            "Frames from agents answered with an error",
            m.agent_bad_frames.clone(),
        );
        registry.register(
            "agent_refusals",
            "Agent connections refused at the handshake",
            m.agent_refusals.clone(),
        );
        registry.register(
            "agent_samples",
            "Metric samples received from agents",
            m.agent_samples.clone(),
        );
        registry.register(
            "agent_throttled_frames",
            "Frames dropped because an agent sent faster than its rate limit",
            m.agent_throttled.clone(),
        );
        registry.register(
            "ui_resyncs",
            "Stream clients that fell behind and were sent a fresh snapshot",
            m.ui_resyncs.clone(),
        );
        registry.register(
            "ui_dropped",
            "Stream clients dropped because they stopped taking messages",
            m.ui_dropped.clone(),
        );
        registry.register(
            "ui_clients",
            "Open UI/API stream connections",
            m.ui_clients.clone(),
        );
        registry.register(
            "api_unauthorized_requests",
            "API requests refused for missing, wrong or expired credentials",
            m.api_unauthorized.clone(),
        );
        registry.register("nodes", "Enrolled nodes", m.nodes.clone());
        registry.register(
            "metrics_nodes_omitted",
            "Nodes whose series this scrape left out (ask with ?nodes=all or ?shard=I/N)",
            m.nodes_omitted.clone(),
        );
        registry.register(
            "agents_connected",
            "Nodes whose agent is connected",
            m.agents_connected.clone(),
        );
        registry.register(
            "history_queued_batches",
            "Sample batches waiting to be written",
            m.history_queued.clone(),
        );
        registry.register(
            "history_dropped_batches",
            "Sample batches dropped because the writer fell behind",
            m.history_dropped.clone(),
        );
        registry.register(
            "history_waited_batches",
            "Sample batches that found the writer's queue full and waited for room (the agent's link paused)",
            m.history_waited.clone(),
        );
        registry.register(
            "history_write_failures",
            "History writes that failed (their samples are lost)",
            m.history_write_failures.clone(),
        );
        registry.register(
            "history_points_written",
            "Metric points written since start",
            m.history_points.clone(),
        );
        registry.register(
            "history_write_lag_seconds",
            "Queue-to-commit time of the last history write",
            m.history_write_lag.clone(),
        );
        registry.register(
            "database_bytes",
            "Size of the database on disk",
            m.database_bytes.clone(),
        );
        registry.register(
            "connections_open",
            "Client connections open (agents, UI, API)",
            m.connections_open.clone(),
        );
        registry.register(
            "connections_unproven",
            "Open connections that have not yet shown who is at the other end",
            m.connections_unproven.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections refused at accept since start, by the limit they hit",
            m.connections_refused.clone(),
        );
        for ((name, help), family) in NODE_GAUGES.iter().zip(&m.node) {
            registry.register(*name, *help, family.clone());
        }
        Metrics { registry, ..m }
    }

    /// Counts the timeline events `queue` drops as
    /// `twinbay_timeline_dropped_events`.
    pub fn with_timeline(mut self, queue: &crate::recorder::TimelineQueue) -> Metrics {
        self.timeline_dropped = queue.dropped.clone();
        self.registry.register(
            "timeline_dropped_events",
            "Timeline events dropped because the writer fell behind",
            self.timeline_dropped.clone(),
        );
        self
    }

    /// Exposes the SSH pool's counters (`twinbay_ssh_*_total`).
    pub fn with_ssh(mut self, stats: &crate::ssh::pool::Stats) -> Metrics {
        let r = &mut self.registry;
        r.register(
            "ssh_connections_opened",
            "SSH connections opened to hosts (pooled: one per host, again after a drop or idle close)",
            stats.connections_opened.clone(),
        );
        r.register(
            "ssh_connect_failures",
            "SSH connections that failed (unreachable, refused key, changed host key)",
            stats.connect_failures.clone(),
        );
        r.register(
            "ssh_commands",
            "Commands run on hosts over SSH",
            stats.commands_run.clone(),
        );
        r.register(
            "ssh_command_failures",
            "Commands over SSH that failed or exited non-zero",
            stats.command_failures.clone(),
        );
        self
    }

    /// Exposes `twinbay_audit_chain_broken`, which the store's audit anchor
    /// sets to 1 when it finds the trail cut.
    pub fn with_audit_chain(mut self, broken: Gauge) -> Metrics {
        self.registry.register(
            "audit_chain_broken",
            "1 if the audit trail no longer holds its recorded head (its tail was cut or replaced)",
            broken,
        );
        self
    }

    /// Exposes the internet gateways' `twinbay_gateway_*` gauges.
    pub fn with_gateway(mut self, gauges: &crate::gateway::Gauges) -> Metrics {
        for (name, help, family) in gauges.families() {
            self.registry.register(name, help, family);
        }
        self
    }

    /// Exposes `twinbay_alerts{alertname,node,subject,alertstate}` (as
    /// Prometheus' `ALERTS`), kept by the alert engine.
    pub fn with_alerts(mut self, alerts: &crate::alerts::Alerts) -> Metrics {
        self.registry.register(
            "alerts",
            "1 for each pending or firing alert, as Prometheus' ALERTS",
            alerts.gauge(),
        );
        self.registry.register(
            "alert_evaluation_seconds",
            "CPU time the alert engine spent evaluating rules",
            alerts.eval_seconds(),
        );
        self
    }

    pub fn ui_client(&self) -> ClientGuard<'_> {
        self.ui_clients.inc();
        ClientGuard(&self.ui_clients)
    }

    /// The exposition text, with the values of the `nodes` selected read
    /// from the twin now.
    pub fn render(
        &self,
        twin: &Twin,
        history: &History,
        database_bytes: u64,
        connections: &Counts,
        nodes: &NodeSelection,
    ) -> String {
        let _one_at_a_time = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.node.iter().for_each(Family::clear);
        let mut fleet = 0;
        twin.for_each(|_| fleet += 1);
        let (mut total, mut connected, mut omitted) = (0, 0, 0);
        twin.for_each(|node| {
            total += 1;
            connected += i64::from(node.connected);
            if nodes.includes(&node.id, fleet) {
                self.record_node(node);
            } else {
                omitted += 1;
            }
        });
        self.nodes.set(total);
        self.nodes_omitted.set(omitted);
        self.agents_connected.set(connected);
        self.history_queued.set(history.queued() as i64);
        self.history_dropped
            .set(history.stats.dropped_batches.load(Ordering::Relaxed) as i64);
        self.history_waited
            .set(history.stats.waits.load(Ordering::Relaxed) as i64);
        self.history_write_failures
            .set(history.stats.write_failures.load(Ordering::Relaxed) as i64);
        self.history_points
            .set(history.stats.points_written.load(Ordering::Relaxed) as i64);
        self.history_write_lag
            .set(history.stats.write_lag_ms.load(Ordering::Relaxed) as f64 / 1000.0);
        self.database_bytes.set(database_bytes as i64);
        self.connections_open.set(connections.open as i64);
        self.connections_unproven.set(connections.unproven as i64);
        for (reason, count) in REFUSAL_REASONS.iter().zip(connections.refused) {
            self.connections_refused
                .get_or_create(&vec![("limit".to_string(), reason.as_str().to_string())])
                .set(count as i64);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    #[cfg(test)]
    fn registry_text(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).unwrap();
        out
    }

    fn set(&self, name: &str, labels: &Labels, extra: Option<(&str, &str)>, value: f64) {
        let Some(i) = NODE_GAUGES.iter().position(|(n, _)| *n == name) else {
            debug_assert!(false, "unknown gauge {name}");
            return;
        };
        let mut labels = labels.clone();
        if let Some((k, v)) = extra {
            labels.push((k.to_string(), v.to_string()));
        }
        self.node[i].get_or_create(&labels).set(value);
    }

    fn record_node(&self, node: &NodeTwin) {
        let labels: Labels = vec![
            ("node".into(), node.id.clone()),
            ("hostname".into(), node.state.host.hostname.clone()),
        ];
        self.set(
            "node_up",
            &labels,
            None,
            f64::from(u8::from(node.connected)),
        );
        if let Some(seen) = node.last_seen {
            self.set(
                "node_last_seen_seconds",
                &labels,
                None,
                seen as f64 / 1000.0,
            );
        }
        if let Some(r) = &node.resources {
            self.record_sample(&labels, r);
        }
    }

    fn record_sample(&self, l: &Labels, r: &Sample) {
        let f = f64::from;
        self.set("node_cpu_percent", l, None, f(r.cpu_pct));
        for (i, core) in r.cores.iter().enumerate() {
            self.set(
                "node_cpu_core_percent",
                l,
                Some(("core", &i.to_string())),
                f(*core),
            );
        }
        if let Some(mhz) = r.cpu_mhz {
            self.set("node_cpu_frequency_mhz", l, None, f(mhz));
        }
        self.set("node_load1", l, None, f(r.load1));
        self.set("node_load5", l, None, f(r.load5));
        self.set("node_load15", l, None, f(r.load15));
        self.set("node_memory_total_bytes", l, None, r.mem_total as f64);
        self.set("node_memory_used_bytes", l, None, r.mem_used as f64);
        self.set("node_swap_total_bytes", l, None, r.swap_total as f64);
        self.set("node_swap_used_bytes", l, None, r.swap_used as f64);
        self.set("node_uptime_seconds", l, None, r.uptime_secs as f64);
        for d in &r.disks {
            let m = Some(("mount", d.mount.as_str()));
            self.set("node_disk_total_bytes", l, m, d.total as f64);
            self.set("node_disk_used_bytes", l, m, d.used as f64);
            self.set("node_disk_read_bytes_per_second", l, m, d.read_bps);
            self.set("node_disk_write_bytes_per_second", l, m, d.write_bps);
        }
        for n in &r.nets {
            let i = Some(("interface", n.iface.as_str()));
            self.set("node_network_receive_bytes_per_second", l, i, n.rx_bps);
            self.set("node_network_transmit_bytes_per_second", l, i, n.tx_bps);
            self.set("node_network_receive_errors", l, i, n.rx_errors as f64);
            self.set("node_network_transmit_errors", l, i, n.tx_errors as f64);
            self.set("node_network_receive_drops", l, i, n.rx_drops as f64);
            self.set("node_network_transmit_drops", l, i, n.tx_drops as f64);
        }
        for t in &r.temps {
            self.set(
                "node_temperature_celsius",
                l,
                Some(("sensor", &t.sensor)),
                f(t.celsius),
            );
        }
        for g in &r.gpus {
            let gpu = g.index.to_string();
            let g_l = Some(("gpu", gpu.as_str()));
            self.set("node_gpu_utilization_percent", l, g_l, f(g.util_pct));
            self.set("node_gpu_memory_used_bytes", l, g_l, g.mem_used as f64);
            if let Some(t) = g.temp_c {
                self.set("node_gpu_temperature_celsius", l, g_l, f(t));
            }
            if let Some(p) = g.power_w {
                self.set("node_gpu_power_watts", l, g_l, f(p));
            }
        }
        for t in &r.latency {
            if let Some(ms) = t.ms {
                self.set(
                    "node_latency_milliseconds",
                    l,
                    Some(("target", &t.target)),
                    f(ms),
                );
            }
        }
    }
}

/// The content type of [`to_prometheus_text`]'s output.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The content type of [`Metrics::render`]'s output.
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Rewrites an OpenMetrics exposition (what [`Metrics::render`] writes) in
/// the older Prometheus text format (0.0.4), for clients that do not ask for
/// OpenMetrics: `promtool check metrics`, curl, older scrapers. The two
/// differ where it matters to them: an OpenMetrics counter family `x` has
/// samples `x_total`, and the text format names the family after its
/// samples, so `# HELP`/`# TYPE` of counters take the `_total` suffix;
/// `# UNIT` and `# EOF` do not exist there.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        if let Some((prefix, rest)) = meta {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if counters.contains(name) && !name.ends_with("_total") {
                out.push_str(prefix);
                out.push_str(name);
                out.push_str("_total ");
                out.push_str(tail);
                out.push('\n');
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrapes_select_nodes_by_query() {
        use NodeSelection as S;
        assert_eq!(S::parse(None, None, None), Ok(S::Default));
        assert_eq!(S::parse(Some("all"), None, None), Ok(S::All));
        assert_eq!(S::parse(Some("none"), None, None), Ok(S::None));
        assert_eq!(
            S::parse(None, Some("1/4"), None),
            Ok(S::Shard { index: 1, of: 4 })
        );
        assert_eq!(S::parse(None, None, Some("n_1")), Ok(S::Node("n_1".into())));
        for bad in ["4/4", "1/0", "x/2", "1", "-1/2", "1/2000", ""] {
            let err = S::parse(None, Some(bad), None).unwrap_err();
            assert!(err.contains("expected I/N"), "{bad}: {err}");
        }
        assert!(S::parse(Some("some"), None, None).is_err());
        assert!(S::parse(Some("all"), Some("0/2"), None).is_err());
        assert!(S::parse(None, None, Some("")).is_err());

        assert!(S::Default.includes("n", DEFAULT_MAX_NODES));
        assert!(!S::Default.includes("n", DEFAULT_MAX_NODES + 1));
        assert!(S::All.includes("n", 1_000_000));
        assert!(!S::None.includes("n", 1));
        assert!(S::Node("a".into()).includes("a", 5) && !S::Node("a".into()).includes("b", 5));
    }

    #[test]
    fn shards_split_a_fleet_into_disjoint_even_parts() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("n_{i:016x}")).collect();
        let mut sizes = [0usize; 4];
        for id in &ids {
            let in_shards: Vec<u32> = (0..4)
                .filter(|i| NodeSelection::Shard { index: *i, of: 4 }.includes(id, ids.len()))
                .collect();
            assert_eq!(in_shards.len(), 1, "{id} is in {in_shards:?}");
            sizes[in_shards[0] as usize] += 1;
        }
        assert!(
            sizes.iter().all(|s| (2_000..3_000).contains(s)),
            "{sizes:?}"
        );
        // Stable: the published hash, not a per-process one.
        assert_eq!(shard_of("", 1 << 31), 0x811c_9dc5 % (1 << 31));
    }

    #[test]
    fn counters_are_named_after_their_samples_in_the_text_format() {
        let open = "# HELP twinbay_agent_frames Frames applied.\n\
                    # TYPE twinbay_agent_frames counter\n\
                    twinbay_agent_frames_total 3\n\
                    # HELP twinbay_nodes Enrolled nodes.\n\
                    # TYPE twinbay_nodes gauge\n\
                    # UNIT twinbay_nodes nodes\n\
                    twinbay_nodes 2\n\
                    # EOF\n";
        assert_eq!(
            to_prometheus_text(open),
            "# HELP twinbay_agent_frames_total Frames applied.\n\
             # TYPE twinbay_agent_frames_total counter\n\
             twinbay_agent_frames_total 3\n\
             # HELP twinbay_nodes Enrolled nodes.\n\
             # TYPE twinbay_nodes gauge\n\
             twinbay_nodes 2\n"
        );
    }

    #[test]
    fn every_family_of_a_real_render_has_help_and_type_under_its_sample_names() {
        let m = Metrics::new();
        m.agent_frames.inc();
        let text = to_prometheus_text(&m.registry_text());
        let mut described = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                described.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(described.contains(name), "{name} has no HELP in:\n{text}");
            }
        }
        assert!(text.contains("twinbay_agent_frames_total 1"));
        assert!(!text.contains("# EOF"));
    }
}
