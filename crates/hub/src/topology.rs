//! The fleet as a graph, derived from the twin and the gateway's status on
//! every request (never stored): internet → gateway → reverse proxy → route
//! → container or port → host, with units and published ports on their
//! hosts. Pure: [`derive`] and [`impact`] take plain values, so they are
//! unit-tested without a hub.
//!
//! Ids name what they stand for: `internet`, `gateway:SPEC`, `host:NODE`,
//! `container:NODE:ID`, `unit:NODE:NAME`, `port:NODE:PORT/PROTO`,
//! `proxy:NODE:PROVIDER:INSTANCE`, `route:NODE:KEY`.

pub mod diff;
pub mod feed;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use twinbay_proto::model::{
    Container, Keyed, NodeState, ProxyProvider, Route, RouteTarget, Sample,
};

use crate::gateway::{GatewayStatus, Upstream};
use crate::twin::routes::{TargetState, target_state};

/// One host of the fleet as the graph needs it.
pub struct HostInput<'a> {
    pub id: &'a str,
    pub connected: bool,
    pub state: &'a NodeState,
    /// The latest sample (interface rates).
    pub sample: Option<&'a Sample>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Graph {
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Internet,
    Gateway,
    Proxy,
    Route,
    Container,
    Unit,
    Port,
    Host,
}

/// How an element is doing, for colour: `ok`, `warn` (degraded), `down`
/// (stopped, failed, unreachable) or `unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Ok,
    Warn,
    Down,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GraphNode {
    pub id: String,
    pub kind: NodeKind,
    /// What to call it: a hostname, a container's name, a public name.
    pub label: String,
    pub health: Health,
    /// The state as its source says it (`running`, `exited`, `failed`, …).
    pub status: String,
    /// The twin node (host) it belongs to; absent for the internet and gateways.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// Traffic enters here: internet → gateway → host, with a load.
    Uplink,
    /// A gateway serves a proxy, a proxy serves its routes.
    Serves,
    /// A route sends its requests to a container or a port.
    ProxiesTo,
    /// A container, unit or proxy runs on a host (or a proxy in a container).
    RunsOn,
    /// A container publishes a port on its host.
    Publishes,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GraphEdge {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
    /// Load of the link, 0–1 (max of in and out over the link's speed);
    /// absent when the speed or the rate is unknown (never a made-up 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utilisation: Option<f64>,
    /// The larger of the two directions' rates, bits per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bps: Option<f64>,
}

/// What stops working if an element goes down.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Impact {
    /// The element asked about.
    pub id: String,
    /// Every element that depends on it (directly or not), by id.
    pub elements: Vec<String>,
    /// The routes among them.
    pub routes: Vec<String>,
    /// The public names those routes serve.
    pub names: Vec<String>,
}

pub const INTERNET: &str = "internet";

pub fn host_id(node: &str) -> String {
    format!("host:{node}")
}

fn container_id(node: &str, id: &str) -> String {
    format!("container:{node}:{id}")
}

fn provider_str(p: ProxyProvider) -> &'static str {
    match p {
        ProxyProvider::Nginx => "nginx",
        ProxyProvider::Caddy => "caddy",
        ProxyProvider::Traefik => "traefik",
    }
}

fn proxy_id(node: &str, r: &Route) -> String {
    format!("proxy:{node}:{}:{}", provider_str(r.provider), r.instance)
}

/// A NIC speed drivers report when they do not know it (`-1` as u32,
/// 65535, `u32::MAX`) is no speed.
fn known_speed_mbps(speed: Option<u32>) -> Option<u32> {
    speed.filter(|s| *s > 0 && *s != 65_535 && *s != u32::MAX)
}

/// The host's uplink load: its busiest interface (loopback and container
/// bridges aside), max(rx, tx) over its speed.
pub(crate) fn host_uplink(
    state: &NodeState,
    sample: Option<&Sample>,
) -> (Option<f64>, Option<f64>) {
    let virtual_iface = |name: &str| {
        name == "lo"
            || [
                "veth", "docker", "br-", "cni", "podman", "virbr", "flannel", "cali",
            ]
            .iter()
            .any(|p| name.starts_with(p))
    };
    let Some(sample) = sample else {
        return (None, None);
    };
    let busiest = sample
        .nets
        .iter()
        .filter(|n| !virtual_iface(&n.iface))
        .max_by(|a, b| a.rx_bps.max(a.tx_bps).total_cmp(&b.rx_bps.max(b.tx_bps)));
    let Some(net) = busiest else {
        return (None, None);
    };
    let bps = net.rx_bps.max(net.tx_bps) * 8.0;
    let speed = state
        .interfaces
        .get(&net.iface)
        .and_then(|i| known_speed_mbps(i.speed_mbps));
    let utilisation = speed.map(|mbps| (bps / (f64::from(mbps) * 1e6)).min(1.0));
    (utilisation, Some(bps))
}

/// The WAN load: the larger of up/max_up and down/max_down.
fn wan_uplink(g: &GatewayStatus) -> (Option<f64>, Option<f64>) {
    let Some(link) = g.link else {
        return (None, None);
    };
    let ratio = |now: Option<u64>, max: Option<u64>| match (now, max) {
        (Some(n), Some(m)) if m > 0 => Some((n as f64 / m as f64).min(1.0)),
        _ => None,
    };
    let u = [
        ratio(link.up_bps, link.max_up_bps),
        ratio(link.down_bps, link.max_down_bps),
    ];
    let utilisation = u.iter().flatten().copied().reduce(f64::max);
    let bps = [link.up_bps, link.down_bps]
        .iter()
        .flatten()
        .map(|b| *b as f64)
        .reduce(f64::max);
    (utilisation, bps)
}

fn container_health(c: &Container) -> Health {
    match (c.state.as_str(), c.health.as_deref()) {
        ("running", Some("unhealthy")) => Health::Warn,
        ("running", _) => Health::Ok,
        ("paused" | "restarting" | "created", _) => Health::Warn,
        ("exited" | "dead" | "stopped", _) => Health::Down,
        _ => Health::Unknown,
    }
}

fn edge(from: &str, to: &str, kind: EdgeKind) -> GraphEdge {
    GraphEdge {
        from: from.into(),
        to: to.into(),
        kind,
        utilisation: None,
        bps: None,
    }
}

/// The graph of `hosts` behind `gateways`.
pub fn derive(hosts: &[HostInput<'_>], gateways: &[GatewayStatus]) -> Graph {
    let mut b = Builder::new(gateways);
    for h in hosts {
        b.host(h);
    }
    b.finish()
}

/// The part of the graph no host owns: the internet and the gateways, and
/// the id of the element through which traffic enters (the first gateway,
/// else the internet itself).
pub fn global(gateways: &[GatewayStatus]) -> (Graph, String) {
    let mut g = Graph::default();
    g.nodes.push(GraphNode {
        id: INTERNET.into(),
        kind: NodeKind::Internet,
        label: "internet".into(),
        health: if gateways.iter().any(|g| g.upstream == Upstream::Up) {
            Health::Ok
        } else if gateways.iter().any(|g| g.upstream == Upstream::Down) {
            Health::Down
        } else {
            Health::Unknown
        },
        status: String::new(),
        node_id: None,
    });
    let mut entry = INTERNET.to_string();
    for (i, gw) in gateways.iter().enumerate() {
        let id = format!("gateway:{}", gw.spec.as_deref().unwrap_or("none"));
        g.nodes.push(GraphNode {
            id: id.clone(),
            kind: NodeKind::Gateway,
            label: gw
                .device
                .clone()
                .or_else(|| gw.public_ip.clone())
                .unwrap_or_else(|| gw.provider.clone().unwrap_or_default()),
            health: match (gw.upstream, &gw.error) {
                (Upstream::Up, _) => Health::Ok,
                (Upstream::Down, _) => Health::Down,
                (Upstream::Unknown, Some(_)) => Health::Warn,
                (Upstream::Unknown, None) => Health::Unknown,
            },
            status: match gw.upstream {
                Upstream::Up => "up",
                Upstream::Down => "down",
                Upstream::Unknown => "unknown",
            }
            .into(),
            node_id: None,
        });
        let (utilisation, bps) = wan_uplink(gw);
        g.edges.push(GraphEdge {
            utilisation,
            bps,
            ..edge(INTERNET, &id, EdgeKind::Uplink)
        });
        if i == 0 {
            entry = id;
        }
    }
    (g, entry)
}

/// One host's part of the graph: the host, its uplink from `entry`, and
/// everything that runs on it. Hosts' parts are independent of each other.
pub fn host_part(h: &HostInput<'_>, entry: &str) -> Graph {
    let mut g = Graph::default();
    add_host(&mut g, h, entry);
    g
}

/// Builds the graph one host at a time (so a caller can feed it hosts it
/// only borrows for a moment).
pub struct Builder {
    graph: Graph,
    /// Where traffic from the internet enters: the (first) gateway, else
    /// the internet itself (no gateway configured: unknown).
    entry: String,
}

impl Builder {
    pub fn new(gateways: &[GatewayStatus]) -> Builder {
        let (graph, entry) = global(gateways);
        Builder { graph, entry }
    }

    pub fn host(&mut self, h: &HostInput<'_>) {
        add_host(&mut self.graph, h, &self.entry);
    }

    pub fn finish(self) -> Graph {
        self.graph
    }
}

fn add_host(g: &mut Graph, h: &HostInput<'_>, entry: &str) {
    let host = host_id(h.id);
    let s = h.state;
    g.nodes.push(GraphNode {
        id: host.clone(),
        kind: NodeKind::Host,
        label: if s.host.hostname.is_empty() {
            h.id.to_string()
        } else {
            s.host.hostname.clone()
        },
        health: if h.connected {
            Health::Ok
        } else {
            Health::Down
        },
        status: if h.connected { "connected" } else { "offline" }.into(),
        node_id: Some(h.id.into()),
    });
    let (utilisation, bps) = host_uplink(s, h.sample);
    g.edges.push(GraphEdge {
        utilisation,
        bps,
        ..edge(entry, &host, EdgeKind::Uplink)
    });
    // An offline host's last known state is shown as unknown, not as live.
    let live = |health: Health| if h.connected { health } else { Health::Unknown };
    let mut by_name: BTreeMap<&str, &str> = BTreeMap::new();
    for c in s.containers.values() {
        let id = container_id(h.id, &c.id);
        by_name.insert(c.name.as_str(), c.id.as_str());
        g.nodes.push(GraphNode {
            id: id.clone(),
            kind: NodeKind::Container,
            label: c.name.to_string(),
            health: live(container_health(c)),
            status: c.state.to_string(),
            node_id: Some(h.id.into()),
        });
        g.edges.push(edge(&id, &host, EdgeKind::RunsOn));
        for p in &c.ports {
            let port = format!("port:{}:{p}", h.id);
            g.nodes.push(GraphNode {
                id: port.clone(),
                kind: NodeKind::Port,
                label: p.clone(),
                health: live(container_health(c)),
                status: c.state.to_string(),
                node_id: Some(h.id.into()),
            });
            g.edges.push(edge(&id, &port, EdgeKind::Publishes));
        }
    }
    for u in s.units.values() {
        let id = format!("unit:{}:{}", h.id, u.key());
        g.nodes.push(GraphNode {
            id: id.clone(),
            kind: NodeKind::Unit,
            label: u.name.to_string(),
            health: live(match u.active_state.as_str() {
                "active" => Health::Ok,
                "failed" => Health::Down,
                "activating" | "deactivating" | "reloading" => Health::Warn,
                _ => Health::Unknown,
            }),
            status: u.active_state.to_string(),
            node_id: Some(h.id.into()),
        });
        g.edges.push(edge(&id, &host, EdgeKind::RunsOn));
    }
    let mut proxies = BTreeSet::new();
    for (key, r) in &s.routes {
        let proxy = proxy_id(h.id, r);
        if proxies.insert(proxy.clone()) {
            g.nodes.push(GraphNode {
                id: proxy.clone(),
                kind: NodeKind::Proxy,
                label: format!("{} ({})", provider_str(r.provider), r.instance),
                health: live(Health::Ok),
                status: String::new(),
                node_id: Some(h.id.into()),
            });
            g.edges.push(edge(entry, &proxy, EdgeKind::Serves));
            // A proxy in a container runs on that container, else on the host.
            let on = match by_name.get(r.instance.as_str()) {
                Some(cid) => container_id(h.id, cid),
                None => host.clone(),
            };
            g.edges.push(edge(&proxy, &on, EdgeKind::RunsOn));
        }
        let id = format!("route:{}:{key}", h.id);
        let state = target_state(&r.target, s);
        g.nodes.push(GraphNode {
            id: id.clone(),
            kind: NodeKind::Route,
            label: format!("{}{}", r.host, r.path),
            health: live(match state {
                TargetState::Running | TargetState::External => Health::Ok,
                TargetState::Stopped | TargetState::Missing => Health::Down,
                TargetState::Unknown => Health::Unknown,
            }),
            status: state.as_str().into(),
            node_id: Some(h.id.into()),
        });
        g.edges.push(edge(&proxy, &id, EdgeKind::Serves));
        match &r.target {
            RouteTarget::Container { id: cid, .. } if s.containers.contains_key(cid) => {
                g.edges
                    .push(edge(&id, &container_id(h.id, cid), EdgeKind::ProxiesTo));
            }
            RouteTarget::Port { key } if s.ports.contains_key(key) => {
                // A listening port no container publishes: the host serves it.
                g.edges.push(edge(&id, &host, EdgeKind::ProxiesTo));
            }
            _ => {}
        }
    }
}

/// What depends on `id`: everything from which `id` is reached by following
/// dependencies (a route needs its proxy, its target and the way in; a
/// proxy, container, unit needs what it runs on; a port, its container; a
/// host, nothing but power — traffic to it needs the uplink, which its
/// routes name through their proxy). `None` when the graph has no `id`.
pub fn impact(graph: &Graph, id: &str) -> Option<Impact> {
    if !graph.nodes.iter().any(|n| n.id == id) {
        return None;
    }
    // needs[a] = what a needs; dependents are found by walking it backwards.
    let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for e in &graph.edges {
        let (needer, needed) = match e.kind {
            // The host does not need its uplink to run, but what is served
            // through the gateway does: proxies hang off it (Serves).
            EdgeKind::Uplink if e.from == INTERNET => (e.to.as_str(), e.from.as_str()),
            EdgeKind::Uplink => continue,
            // A proxy needs the way in; a route needs its proxy.
            EdgeKind::Serves => (e.to.as_str(), e.from.as_str()),
            // A route needs its target; a container (unit, proxy) its host.
            EdgeKind::ProxiesTo | EdgeKind::RunsOn => (e.from.as_str(), e.to.as_str()),
            // A published port needs its container.
            EdgeKind::Publishes => (e.to.as_str(), e.from.as_str()),
        };
        dependents.entry(needed).or_default().push(needer);
    }
    let mut seen = BTreeSet::new();
    let mut todo = vec![id];
    while let Some(x) = todo.pop() {
        for d in dependents.get(x).into_iter().flatten() {
            if *d != id && seen.insert(*d) {
                todo.push(d);
            }
        }
    }
    let by_id: std::collections::HashMap<&str, &GraphNode> =
        graph.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let routes: Vec<&GraphNode> = seen
        .iter()
        .filter_map(|x| by_id.get(x).copied())
        .filter(|n| n.kind == NodeKind::Route)
        .collect();
    let mut names: Vec<String> = routes
        .iter()
        .map(|n| {
            let label = &n.label;
            label.split('/').next().unwrap_or(label).to_string()
        })
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names.dedup();
    Some(Impact {
        id: id.into(),
        routes: routes.iter().map(|n| n.id.clone()).collect(),
        elements: seen.into_iter().map(String::from).collect(),
        names,
    })
}

#[cfg(test)]
mod tests;
