use twinbay_proto::model::{Interface, NetSample, Port, Unit};

use super::*;
use crate::gateway::Link;

fn container(id: &str, name: &str, state: &str, ports: &[&str]) -> Container {
    Container {
        id: id.into(),
        name: name.into(),
        state: state.into(),
        ports: ports.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    }
}

fn route(host: &str, upstream: &str, target: RouteTarget) -> Route {
    Route {
        provider: ProxyProvider::Nginx,
        instance: "host".into(),
        host: host.into(),
        path: "/".into(),
        upstream: upstream.into(),
        tls: true,
        target,
    }
}

fn keyed<T: Keyed, V: From<T>>(items: Vec<T>) -> BTreeMap<String, V> {
    items.into_iter().map(|i| (i.key(), i.into())).collect()
}

fn iface(name: &str, speed: Option<u32>) -> Interface {
    Interface {
        name: name.into(),
        up: true,
        speed_mbps: speed,
        ..Default::default()
    }
}

fn sample(nets: &[(&str, f64, f64)]) -> Sample {
    Sample {
        nets: nets
            .iter()
            .map(|(iface, rx, tx)| NetSample {
                iface: iface.to_string(),
                rx_bps: *rx,
                tx_bps: *tx,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// Host A: nginx with a route to its running container `immich` and one to
/// a container on host B (external to A); host B: a stopped container.
fn fleet() -> (NodeState, Sample, NodeState, Sample, GatewayStatus) {
    let mut a = NodeState::default();
    a.host.hostname = "alpha".into();
    a.containers = keyed(vec![container(
        "c1",
        "immich",
        "running",
        &["127.0.0.1:2283->2283/tcp"],
    )]);
    a.units = keyed(vec![Unit {
        name: "nginx.service".into(),
        active_state: "active".into(),
        ..Default::default()
    }]);
    a.ports = keyed(vec![Port {
        protocol: "tcp".into(),
        address: "0.0.0.0".into(),
        port: 9000,
        ..Default::default()
    }]);
    a.routes = keyed(vec![
        route(
            "photos.example.org",
            "http://127.0.0.1:2283",
            RouteTarget::Container {
                id: "c1".into(),
                name: "immich".into(),
            },
        ),
        route(
            "wiki.example.org",
            "http://10.0.0.2:3000",
            RouteTarget::External,
        ),
        route(
            "admin.example.org",
            "http://127.0.0.1:9000",
            RouteTarget::Port {
                key: "tcp/0.0.0.0:9000".into(),
            },
        ),
    ]);
    a.interfaces = keyed(vec![iface("eth0", Some(1000)), iface("lo", None)]);
    // 25 MB/s in on eth0: 200 Mbit/s of 1,000.
    let sa = sample(&[("eth0", 25e6, 1e6), ("lo", 9e9, 9e9)]);
    let mut b = NodeState::default();
    b.host.hostname = "beta".into();
    b.containers = keyed(vec![container("c2", "wiki", "exited", &[])]);
    b.routes = keyed(vec![route(
        "old.example.org",
        "http://wiki:3000",
        RouteTarget::Container {
            id: "c2".into(),
            name: "wiki".into(),
        },
    )]);
    // A speed the driver does not know (65535): unknown, never 0 %.
    b.interfaces = keyed(vec![iface("enp1s0", Some(65_535))]);
    let sb = sample(&[("enp1s0", 1e6, 1e6)]);
    let gw = GatewayStatus {
        provider: Some("upnp".into()),
        spec: Some("upnp".into()),
        public_ip: Some("203.0.113.7".into()),
        upstream: Upstream::Up,
        link: Some(Link {
            max_up_bps: Some(40_000_000),
            max_down_bps: Some(200_000_000),
            up_bps: Some(4_000_000),
            down_bps: Some(150_000_000),
        }),
        ..Default::default()
    };
    (a, sa, b, sb, gw)
}

fn graph() -> Graph {
    let (a, sa, b, sb, gw) = fleet();
    let hosts = [
        HostInput {
            id: "A",
            connected: true,
            state: &a,
            sample: Some(&sa),
        },
        HostInput {
            id: "B",
            connected: true,
            state: &b,
            sample: Some(&sb),
        },
    ];
    derive(&hosts, &[gw])
}

fn node<'a>(g: &'a Graph, id: &str) -> &'a GraphNode {
    g.nodes
        .iter()
        .find(|n| n.id == id)
        .unwrap_or_else(|| panic!("no node {id}"))
}

fn edge_of<'a>(g: &'a Graph, from: &str, to: &str) -> &'a GraphEdge {
    g.edges
        .iter()
        .find(|e| e.from == from && e.to == to)
        .unwrap_or_else(|| panic!("no edge {from} → {to}"))
}

#[test]
fn the_path_from_the_internet_to_a_container() {
    let g = graph();
    let gw = "gateway:upnp";
    let proxy = "proxy:A:nginx:host";
    let photos = "route:A:nginx/host/photos.example.org/";
    assert_eq!(node(&g, INTERNET).health, Health::Ok);
    assert_eq!(node(&g, gw).label, "203.0.113.7");
    assert_eq!(edge_of(&g, INTERNET, gw).kind, EdgeKind::Uplink);
    assert_eq!(edge_of(&g, gw, "host:A").kind, EdgeKind::Uplink);
    assert_eq!(edge_of(&g, gw, proxy).kind, EdgeKind::Serves);
    assert_eq!(edge_of(&g, proxy, "host:A").kind, EdgeKind::RunsOn);
    assert_eq!(edge_of(&g, proxy, photos).kind, EdgeKind::Serves);
    assert_eq!(
        edge_of(&g, photos, "container:A:c1").kind,
        EdgeKind::ProxiesTo
    );
    assert_eq!(
        edge_of(&g, "container:A:c1", "host:A").kind,
        EdgeKind::RunsOn
    );
    assert_eq!(
        edge_of(&g, "container:A:c1", "port:A:127.0.0.1:2283->2283/tcp").kind,
        EdgeKind::Publishes
    );
    assert_eq!(node(&g, photos).status, "running");
    assert_eq!(node(&g, photos).health, Health::Ok);
    // An external target has no edge on to this fleet.
    let wiki = "route:A:nginx/host/wiki.example.org/";
    assert_eq!(node(&g, wiki).status, "external");
    assert!(
        !g.edges
            .iter()
            .any(|e| e.from == wiki && e.kind == EdgeKind::ProxiesTo)
    );
    // A port target: the host serves it.
    let admin = "route:A:nginx/host/admin.example.org/";
    assert_eq!(edge_of(&g, admin, "host:A").kind, EdgeKind::ProxiesTo);
    assert_eq!(node(&g, "unit:A:nginx.service").kind, NodeKind::Unit);
}

#[test]
fn a_stopped_target_breaks_its_route() {
    let g = graph();
    let old = "route:B:nginx/host/old.example.org/";
    assert_eq!(node(&g, old).status, "stopped");
    assert_eq!(node(&g, old).health, Health::Down);
    assert_eq!(node(&g, "container:B:c2").health, Health::Down);
    // Gone from the twin altogether: missing, and no edge to nowhere.
    let (_, _, mut b, _, _) = fleet();
    b.containers.clear();
    let r = b.routes.values().next().unwrap();
    assert_eq!(target_state(&r.target, &b), TargetState::Missing);
}

#[test]
fn utilisation_over_known_speeds_only() {
    let g = graph();
    // Host A: eth0 (lo is never the uplink): 25 MB/s = 200 Mbit/s of 1 Gbit/s.
    let a = edge_of(&g, "gateway:upnp", "host:A");
    assert!((a.utilisation.unwrap() - 0.2).abs() < 1e-9, "{a:?}");
    assert_eq!(a.bps, Some(200e6));
    // Host B: 65535 is "unknown" from the driver: no utilisation, a rate still.
    let b = edge_of(&g, "gateway:upnp", "host:B");
    assert_eq!(b.utilisation, None);
    assert_eq!(b.bps, Some(8e6));
    // The WAN: down 150 of 200 Mbit/s beats up 4 of 40.
    let wan = edge_of(&g, INTERNET, "gateway:upnp");
    assert!((wan.utilisation.unwrap() - 0.75).abs() < 1e-9, "{wan:?}");
    for speed in [None, Some(0), Some(65_535), Some(u32::MAX)] {
        assert_eq!(known_speed_mbps(speed), None, "{speed:?}");
    }
    assert_eq!(known_speed_mbps(Some(2500)), Some(2500));
}

#[test]
fn impact_names_what_depends_on_an_element() {
    let g = graph();
    // Host A down: its container, unit, port, proxy and all three routes.
    let i = impact(&g, "host:A").unwrap();
    assert_eq!(
        i.names,
        vec![
            "admin.example.org",
            "photos.example.org",
            "wiki.example.org"
        ]
    );
    assert!(i.elements.contains(&"container:A:c1".to_string()));
    assert!(i.elements.contains(&"unit:A:nginx.service".to_string()));
    assert!(i.elements.contains(&"proxy:A:nginx:host".to_string()));
    assert!(!i.elements.iter().any(|e| e.contains(":B")), "{i:?}");
    // The container: only the route to it (and the port it publishes).
    let i = impact(&g, "container:A:c1").unwrap();
    assert_eq!(i.names, vec!["photos.example.org"]);
    assert_eq!(
        i.elements,
        vec![
            "port:A:127.0.0.1:2283->2283/tcp".to_string(),
            "route:A:nginx/host/photos.example.org/".to_string()
        ]
    );
    // The gateway: every public name of the fleet, no host.
    let i = impact(&g, "gateway:upnp").unwrap();
    assert_eq!(i.names.len(), 4, "{i:?}");
    assert!(!i.elements.iter().any(|e| e.starts_with("host:")));
    // A route: nothing depends on it.
    let i = impact(&g, "route:B:nginx/host/old.example.org/").unwrap();
    assert!(i.elements.is_empty());
    assert!(impact(&g, "host:nope").is_none());
}

#[test]
fn no_gateway_and_offline_hosts_say_unknown() {
    let (a, sa, _, _, _) = fleet();
    let hosts = [HostInput {
        id: "A",
        connected: false,
        state: &a,
        sample: Some(&sa),
    }];
    let g = derive(&hosts, &[]);
    assert_eq!(node(&g, INTERNET).health, Health::Unknown);
    assert_eq!(edge_of(&g, INTERNET, "host:A").kind, EdgeKind::Uplink);
    assert_eq!(node(&g, "host:A").health, Health::Down);
    assert_eq!(node(&g, "container:A:c1").health, Health::Unknown);
    assert!(!g.nodes.iter().any(|n| n.kind == NodeKind::Gateway));
}

/// The live feed keeps the graph in parts; together they are the graph
/// the API derives, and a host's change touches only that host's part.
#[test]
fn the_parts_make_the_whole_and_a_change_stays_in_its_host() {
    let (mut a, sa, b, sb, gw) = fleet();
    let (global_part, entry) = global(std::slice::from_ref(&gw));
    let part = |id: &str, state: &NodeState, sample: &Sample| {
        host_part(
            &HostInput {
                id,
                connected: true,
                state,
                sample: Some(sample),
            },
            &entry,
        )
    };
    let (pa, pb) = (part("A", &a, &sa), part("B", &b, &sb));
    let mut whole = global_part.clone();
    for p in [&pa, &pb] {
        whole.nodes.extend(p.nodes.iter().cloned());
        whole.edges.extend(p.edges.iter().cloned());
    }
    assert_eq!(whole, graph());

    // A's container stops: only A's part changes, and only that container,
    // its published port and the route to it (their health and status).
    for c in a.containers.values_mut() {
        c.state = "exited".into();
    }
    let d = diff::diff(&pa, &part("A", &a, &sa));
    assert!(d.remove_nodes.is_empty() && d.remove_edges.is_empty());
    assert!(!d.upsert_nodes.is_empty());
    assert!(
        d.upsert_nodes
            .iter()
            .all(|n| n.node_id.as_deref() == Some("A") && n.health == Health::Down),
        "{:?}",
        d.upsert_nodes
    );
    let mut kinds: Vec<NodeKind> = d.upsert_nodes.iter().map(|n| n.kind).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [NodeKind::Route, NodeKind::Container, NodeKind::Port]
    );
    assert!(d.upsert_edges.is_empty());
}
