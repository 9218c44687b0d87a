//! Prometheus exposition of the hub's health and every node's latest values.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::twin::Twin;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    node: String,
    hostname: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

pub struct Metrics {
    registry: Registry,
    /// Serializes scrapes, which rebuild the per-node families.
    scrape: Mutex<()>,
    pub agent_frames: Counter,
    pub agent_bad_frames: Counter,
    pub agent_refusals: Counter,
    ui_clients: Gauge,
    nodes: Gauge,
    agents_connected: Gauge,
    node_up: Family<NodeLabels, Gauge>,
    node_last_seen: Family<NodeLabels, FloatGauge>,
    node_cpu: Family<NodeLabels, FloatGauge>,
    node_load1: Family<NodeLabels, FloatGauge>,
    node_mem_total: Family<NodeLabels, Gauge>,
    node_mem_used: Family<NodeLabels, Gauge>,
    node_swap_used: Family<NodeLabels, Gauge>,
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
            ui_clients: Gauge::default(),
            nodes: Gauge::default(),
            agents_connected: Gauge::default(),
            node_up: Family::default(),
            node_last_seen: Family::default(),
            node_cpu: Family::default(),
            node_load1: Family::default(),
            node_mem_total: Family::default(),
            node_mem_used: Family::default(),
            node_swap_used: Family::default(),
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
            "ui_clients",
            "Open UI/API stream connections",
            m.ui_clients.clone(),
        );
        registry.register("nodes", "Enrolled nodes", m.nodes.clone());
        registry.register(
            "agents_connected",
            "Nodes whose agent is connected",
            m.agents_connected.clone(),
        );
        registry.register(
            "node_up",
            "1 if the node's agent is connected",
            m.node_up.clone(),
        );
        registry.register(
            "node_last_seen_seconds",
            "When the hub last heard from the node (unix time)",
            m.node_last_seen.clone(),
        );
        registry.register(
            "node_cpu_percent",
            "CPU busy, percent of all cores",
            m.node_cpu.clone(),
        );
        registry.register("node_load1", "1-minute load average", m.node_load1.clone());
        registry.register(
            "node_memory_total_bytes",
            "Total memory",
            m.node_mem_total.clone(),
        );
        registry.register(
            "node_memory_used_bytes",
            "Memory in use (total minus available)",
            m.node_mem_used.clone(),
        );
        registry.register(
            "node_swap_used_bytes",
            "Swap in use",
            m.node_swap_used.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn ui_client(&self) -> ClientGuard<'_> {
        self.ui_clients.inc();
        ClientGuard(&self.ui_clients)
    }

    /// The exposition text, with per-node values read from the twin now.
    pub fn render(&self, twin: &Twin) -> String {
        let _one_at_a_time = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.node_up.clear();
        for family in [&self.node_last_seen, &self.node_cpu, &self.node_load1] {
            family.clear();
        }
        for family in [
            &self.node_mem_total,
            &self.node_mem_used,
            &self.node_swap_used,
        ] {
            family.clear();
        }
        let (mut total, mut connected) = (0, 0);
        twin.for_each(|node| {
            total += 1;
            connected += i64::from(node.connected);
            let labels = NodeLabels {
                node: node.id.clone(),
                hostname: node.state.host.hostname.clone(),
            };
            self.node_up
                .get_or_create(&labels)
                .set(i64::from(node.connected));
            if let Some(seen) = node.last_seen {
                self.node_last_seen
                    .get_or_create(&labels)
                    .set(seen as f64 / 1000.0);
            }
            if let Some(r) = &node.resources {
                self.node_cpu
                    .get_or_create(&labels)
                    .set(f64::from(r.cpu_pct));
                self.node_load1
                    .get_or_create(&labels)
                    .set(f64::from(r.load1));
                self.node_mem_total
                    .get_or_create(&labels)
                    .set(r.mem_total as i64);
                self.node_mem_used
                    .get_or_create(&labels)
                    .set(r.mem_used as i64);
                self.node_swap_used
                    .get_or_create(&labels)
                    .set(r.swap_used as i64);
            }
        });
        self.nodes.set(total);
        self.agents_connected.set(connected);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
