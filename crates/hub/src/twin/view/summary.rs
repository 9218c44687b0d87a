//! A host in one line: what the fleet-wide screens show of it (Overview,
//! Hosts, World, Updates), for the stream's summary view
//! (`/api/v1/stream?view=summary`, `api/stream/summaries.rs`).
//!
//! A summary is the host's [`Shape`] (who it is, whether it is connected,
//! how many containers, units and routes it has and which of them fail)
//! and its [`Pulse`] (when it was last heard and a few headline numbers).
//! The shape changes rarely and is sent as soon as it does; the pulse
//! changes with every sample and is sent at a bounded rate.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use twinbay_proto::command::Policy;
use twinbay_proto::model::{Container, NodeState, RouteTarget, Sample, Unit};

use crate::twin::NodeTwin;
use crate::twin::routes::target_state;

/// Problems named per host at most (the counts say how many there are).
pub const ATTENTION_MAX: usize = 5;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostSummary {
    pub id: String,
    #[serde(flatten)]
    pub shape: Shape,
    #[serde(flatten)]
    pub pulse: Pulse,
}

/// What a host is and how it fares, without its live numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shape {
    pub hostname: String,
    pub connected: bool,
    pub agent_version: String,
    /// Enrolled by `twinbay sim`.
    pub simulated: bool,
    /// Watched without an agent: its interval and what it lacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agentless: Option<Arc<crate::twin::Agentless>>,
    pub os: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// What the agent allows (the lists offer its verbs, the backups
    /// screen its producers); shared by every host with the same one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<Arc<Policy>>,
    pub containers: u32,
    pub containers_running: u32,
    pub containers_failing: u32,
    pub units: u32,
    pub units_failed: u32,
    pub ports: u32,
    pub routes: u32,
    pub routes_broken: u32,
    /// Sources that cannot run on this host, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources_down: Vec<SourceDown>,
    /// The first [`ATTENTION_MAX`] failing containers, failed units and
    /// broken routes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attention: Vec<Problem>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceDown {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A failing container, a failed unit or a broken route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// `container`, `unit` or `route`.
    pub kind: &'static str,
    /// Its key in the twin's collection.
    pub key: String,
    /// The container's or unit's name; a route's public URL.
    pub name: String,
    /// `unhealthy`, `exited`, `dead`, `restarting`; `failed`; a route's
    /// target state (`stopped`, `missing`).
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Where a broken route leads (its container's name or its upstream).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// When the host was last heard, and its headline numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pulse {
    pub last_seen: Option<i64>,
    pub resources: Option<Headline>,
}

/// A few numbers of the latest sample, rounded to what a screen shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Headline {
    pub ts_ms: i64,
    pub cpu_pct: f32,
    pub load1: f32,
    pub mem_used: u64,
    pub mem_total: u64,
    pub uptime_secs: u64,
    /// Received plus sent over every interface but loopback, bytes/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net_bps: Option<f64>,
    /// The fullest filesystem, percent used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_pct: Option<f32>,
    /// The hottest sensor or GPU, °C.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temp_c: Option<f32>,
    /// The busiest real interface, bits/s, and its share of the link's speed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uplink_bps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uplink_util: Option<f64>,
}

impl HostSummary {
    pub fn of(n: &NodeTwin) -> HostSummary {
        HostSummary {
            id: n.id.clone(),
            shape: Shape::of(n),
            pulse: Pulse::of(n),
        }
    }
}

impl Pulse {
    /// The numbers alone, for a host whose shape is known not to have
    /// changed (only samples came): much cheaper than [`HostSummary::of`].
    pub fn of(n: &NodeTwin) -> Pulse {
        Pulse {
            last_seen: n.last_seen,
            resources: n.resources.as_ref().map(|s| Headline::of(s, &n.state)),
        }
    }
}

impl Shape {
    fn of(n: &NodeTwin) -> Shape {
        let s = &n.state;
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let mut attention = Vec::new();
        let mut note = |p: Problem| {
            if attention.len() < ATTENTION_MAX {
                attention.push(p);
            }
        };
        let mut containers_failing = 0;
        for (key, c) in &s.containers {
            if container_failing(c) {
                containers_failing += 1;
                note(Problem {
                    kind: "container",
                    key: key.clone(),
                    name: c.name.to_string(),
                    state: match c.health.as_deref() {
                        Some("unhealthy") => "unhealthy".into(),
                        _ => c.state.to_string(),
                    },
                    exit_code: c.exit_code,
                    target: None,
                });
            }
        }
        let mut units_failed = 0;
        for (key, u) in &s.units {
            if unit_failed(u) {
                units_failed += 1;
                note(Problem {
                    kind: "unit",
                    key: key.clone(),
                    name: u.name.to_string(),
                    state: u.active_state.to_string(),
                    exit_code: None,
                    target: None,
                });
            }
        }
        let mut routes_broken = 0;
        for (key, r) in &s.routes {
            let state = target_state(&r.target, s);
            if state.broken() {
                routes_broken += 1;
                let path = if r.path.is_empty() || r.path == "/" {
                    ""
                } else {
                    &r.path
                };
                note(Problem {
                    kind: "route",
                    key: key.clone(),
                    name: format!(
                        "{}://{}{path}",
                        if r.tls { "https" } else { "http" },
                        if r.host.is_empty() { "*" } else { &r.host },
                    ),
                    state: state.as_str().into(),
                    exit_code: None,
                    target: Some(match &r.target {
                        RouteTarget::Container { name, .. } => name.clone(),
                        _ => r.upstream.clone(),
                    }),
                });
            }
        }
        Shape {
            hostname: s.host.hostname.clone(),
            connected: n.connected,
            agent_version: n.agent_version.clone(),
            simulated: n.simulated,
            agentless: n.agentless.clone(),
            os: s.host.os.to_string(),
            labels: s.host.labels.clone(),
            policy: n.policy.clone(),
            containers: count(s.containers.len()),
            containers_running: count(
                s.containers
                    .values()
                    .filter(|c| c.state == "running")
                    .count(),
            ),
            containers_failing,
            units: count(s.units.len()),
            units_failed,
            ports: count(s.ports.len()),
            routes: count(s.routes.len()),
            routes_broken,
            sources_down: s
                .sources
                .values()
                .filter(|s| !s.available)
                .map(|s| SourceDown {
                    name: s.name.to_string(),
                    reason: s.reason.as_deref().map(String::from),
                })
                .collect(),
            attention,
        }
    }
}

/// As the UI's `containerFailing`: unhealthy, dead, restarting, or exited
/// with an error.
pub fn container_failing(c: &Container) -> bool {
    c.health.as_deref() == Some("unhealthy")
        || c.state == "dead"
        || c.state == "restarting"
        || (c.state == "exited" && c.exit_code.is_some_and(|code| code != 0))
}

pub fn unit_failed(u: &Unit) -> bool {
    u.active_state == "failed"
}

/// `x` to one decimal: what a screen shows, and shorter on the wire.
fn tenth(x: f32) -> f32 {
    (x * 10.0).round() / 10.0
}

impl Headline {
    pub fn of(s: &Sample, state: &NodeState) -> Headline {
        let nets: Vec<_> = s.nets.iter().filter(|n| n.iface != "lo").collect();
        let net_bps = (!s.nets.is_empty()).then(|| {
            nets.iter()
                .map(|n| n.rx_bps + n.tx_bps)
                .sum::<f64>()
                .round()
        });
        let disk_pct = s
            .disks
            .iter()
            .filter(|d| d.total > 0)
            .map(|d| (100.0 * d.used as f64 / d.total as f64) as f32)
            .max_by(f32::total_cmp)
            .map(tenth);
        let temp_c = s
            .temps
            .iter()
            .map(|t| t.celsius)
            .chain(s.gpus.iter().filter_map(|g| g.temp_c))
            .max_by(f32::total_cmp)
            .map(tenth);
        let (uplink_util, uplink_bps) = crate::topology::host_uplink(state, Some(s));
        Headline {
            ts_ms: s.ts_ms,
            cpu_pct: tenth(s.cpu_pct),
            load1: (s.load1 * 100.0).round() / 100.0,
            mem_used: s.mem_used,
            mem_total: s.mem_total,
            uptime_secs: s.uptime_secs,
            net_bps,
            disk_pct,
            temp_c,
            uplink_bps: uplink_bps.map(f64::round),
            uplink_util: uplink_util.map(|u| (u * 1000.0).round() / 1000.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use twinbay_proto::model::{DiskSample, NetSample, Route, SourceStatus};

    use super::*;

    fn node() -> NodeTwin {
        let mut n = NodeTwin::for_tests("n1");
        n.connected = true;
        n.state.host.hostname = "web-1".into();
        n.state.host.labels.insert("env".into(), "prod".into());
        for (id, state, exit) in [
            ("a", "running", None),
            ("b", "exited", Some(0)),
            ("c", "exited", Some(137)),
            ("d", "dead", None),
        ] {
            n.state.containers.insert(
                id.into(),
                Container {
                    id: id.into(),
                    name: format!("ctr-{id}").into(),
                    state: state.into(),
                    exit_code: exit,
                    ..Container::default()
                }
                .into(),
            );
        }
        n.state.units.insert(
            "x.service".into(),
            Unit {
                name: "x.service".into(),
                active_state: "failed".into(),
                ..Unit::default()
            }
            .into(),
        );
        n.state.routes.insert(
            "r1".into(),
            Route {
                host: "app.example.org".into(),
                tls: true,
                target: RouteTarget::Container {
                    id: "c".into(),
                    name: "ctr-c".into(),
                },
                ..Route::default()
            },
        );
        n.state.sources.insert(
            "gpu".into(),
            SourceStatus {
                name: "gpu".into(),
                available: false,
                reason: Some("no GPU".into()),
            },
        );
        n
    }

    #[test]
    fn counts_and_names_what_fails() {
        let s = HostSummary::of(&node()).shape;
        assert_eq!((s.containers, s.containers_running), (4, 1));
        assert_eq!(s.containers_failing, 2, "exit 137 and dead; exit 0 is fine");
        assert_eq!((s.units, s.units_failed), (1, 1));
        assert_eq!((s.routes, s.routes_broken), (1, 1));
        let names: Vec<_> = s.attention.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["ctr-c", "ctr-d", "x.service", "https://app.example.org"]
        );
        assert_eq!(s.attention[3].target.as_deref(), Some("ctr-c"));
        assert_eq!(s.attention[3].state, "stopped");
        assert_eq!(s.sources_down[0].reason.as_deref(), Some("no GPU"));
        assert_eq!(s.labels["env"], "prod");
    }

    #[test]
    fn names_at_most_a_few_problems() {
        let mut n = node();
        for i in 0..20 {
            n.state.units.insert(
                format!("u{i}.service"),
                Unit {
                    name: format!("u{i}.service").into(),
                    active_state: "failed".into(),
                    ..Unit::default()
                }
                .into(),
            );
        }
        let s = HostSummary::of(&n).shape;
        assert_eq!(s.units_failed, 21);
        assert_eq!(s.attention.len(), ATTENTION_MAX);
    }

    #[test]
    fn headline_rounds_and_sums() {
        let mut n = node();
        n.resources = Some(Sample {
            ts_ms: 1000,
            cpu_pct: 12.345,
            load1: 0.666,
            mem_used: 1,
            mem_total: 4,
            nets: vec![
                NetSample {
                    iface: "lo".into(),
                    rx_bps: 1e6,
                    tx_bps: 1e6,
                    ..NetSample::default()
                },
                NetSample {
                    iface: "eth0".into(),
                    rx_bps: 100.4,
                    tx_bps: 50.0,
                    ..NetSample::default()
                },
            ],
            disks: vec![
                DiskSample {
                    mount: "/".into(),
                    total: 100,
                    used: 25,
                    ..DiskSample::default()
                },
                DiskSample {
                    mount: "/data".into(),
                    total: 3,
                    used: 2,
                    ..DiskSample::default()
                },
            ],
            ..Sample::default()
        });
        let h = HostSummary::of(&n).pulse.resources.unwrap();
        assert_eq!(h.cpu_pct, 12.3);
        assert_eq!(h.load1, 0.67);
        assert_eq!(h.net_bps, Some(150.0), "loopback is not traffic");
        assert_eq!(h.disk_pct, Some(66.7));
        assert_eq!(h.uplink_bps, Some(803.0));
        assert_eq!(h.temp_c, None);
        let json = serde_json::to_string(&HostSummary::of(&n)).unwrap();
        assert!(
            json.starts_with(r#"{"id":"n1","hostname":"web-1","#),
            "{json}"
        );
        assert!(!json.contains("temp_c"), "absent numbers are left out");
    }
}
