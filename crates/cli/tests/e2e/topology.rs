//! The fleet as a graph and the physical layout, through the API, with a
//! simulated fleet: who sees what, impact, edits with versions and audit.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topology_and_the_layout() {
    let dir = temp_dir("topology");
    let hub = Hub::start(&dir);
    let admin = hub.token("admin");
    let viewer = hub.token("viewer");
    let _sim = sim(&hub.join(), 6, &["--interval", "1s"], &dir.join("sim.log"));
    tokio::task::block_in_place(|| hub.wait_connected(&admin, 6, Duration::from_secs(30)));
    let ids: BTreeSet<String> = hub
        .nodes(&admin)
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();

    // Every host is in the graph, behind the internet (no gateway configured).
    let (status, g) = hub.get("/api/v1/topology", &viewer);
    assert_eq!(status, 200, "{g}");
    let nodes = g["nodes"].as_array().unwrap();
    let of_kind = |k: &str| nodes.iter().filter(|n| n["kind"] == k).count();
    assert_eq!(of_kind("internet"), 1);
    assert_eq!(of_kind("host"), ids.len());
    let first = ids.iter().next().unwrap();
    let host = format!("host:{first}");
    assert!(
        g["edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["from"] == "internet" && e["to"] == host.as_str() && e["kind"] == "uplink"),
        "{g}"
    );
    // What runs on a host depends on it.
    let (status, impact) = hub.get(&format!("/api/v1/topology/impact?id={host}"), &viewer);
    assert_eq!(status, 200, "{impact}");
    let on_host: BTreeSet<&str> = nodes
        .iter()
        .filter(|n| n["node_id"] == first.as_str() && n["kind"] != "host")
        .filter_map(|n| n["id"].as_str())
        .collect();
    let hit: BTreeSet<&str> = impact["elements"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        !on_host.is_empty(),
        "the simulated host runs something: {g}"
    );
    assert_eq!(hit, on_host, "{impact}");
    let (status, _) = hub.get("/api/v1/topology/impact?id=host:nope", &viewer);
    assert_eq!(status, 404);
    let (status, _) = hub.get("/api/v1/topology/impact", &viewer);
    assert_eq!(status, 400);

    // The layout: empty at first, every host unplaced.
    let (status, l) = hub.get("/api/v1/layout", &viewer);
    assert_eq!(status, 200, "{l}");
    assert_eq!(l["version"], 0);
    assert_eq!(l["unplaced"].as_array().unwrap().len(), ids.len());
    let mut hosts = ids.iter();
    let (a, b) = (hosts.next().unwrap(), hosts.next().unwrap());
    let rack = |devices: Value| {
        json!({"id": "r1", "name": "Rack 1", "height_u": 12, "x_m": 1.0, "y_m": 0.5,
               "rotation_deg": 90, "devices": devices})
    };
    let doc = |version: i64, devices: Value| {
        json!({"version": version, "sites": [{"id": "home", "name": "Home", "rooms": [
            {"id": "cellar", "name": "Cellar", "width_m": 4, "depth_m": 3, "racks": [rack(devices)]}
        ]}]})
    };
    let two =
        json!([{"node_id": a, "position_u": 1, "height_u": 2}, {"node_id": b, "position_u": 3}]);
    let (status, _) = hub.send("PUT", "/api/v1/layout", &viewer, &doc(0, two.clone()));
    assert_eq!(status, 403, "viewers do not edit");
    let (status, l) = hub.send("PUT", "/api/v1/layout", &admin, &doc(0, two.clone()));
    assert_eq!(status, 200, "{l}");
    assert_eq!(l["version"], 1);
    assert_eq!(l["unplaced"].as_array().unwrap().len(), ids.len() - 2);
    assert_eq!(
        l["sites"][0]["rooms"][0]["racks"][0]["devices"][1]["face"],
        "front"
    );
    // An edit from a stale version is refused, the layout unchanged.
    let (status, e) = hub.send("PUT", "/api/v1/layout", &admin, &doc(0, json!([])));
    assert_eq!(status, 409, "{e}");
    // Overlapping devices: refused whole, with the reason.
    let overlap =
        json!([{"node_id": a, "position_u": 1, "height_u": 2}, {"node_id": b, "position_u": 2}]);
    let (status, e) = hub.send("PUT", "/api/v1/layout", &admin, &doc(1, overlap));
    assert_eq!(status, 400);
    assert!(e.to_string().contains("overlaps"), "{e}");
    let (status, e) = hub.send(
        "PUT",
        "/api/v1/layout",
        &admin,
        &json!({"version": 1, "sites": [], "x": 1}),
    );
    assert_eq!(status, 400, "unknown fields: {e}");
    let (_, l) = hub.get("/api/v1/layout", &viewer);
    assert_eq!(l["version"], 1);
    assert_eq!(
        l["sites"][0]["rooms"][0]["racks"][0]["devices"],
        two_with_defaults(&two)
    );
    // Audited.
    let (_, audit) = hub.get("/api/v1/audit?action=layout.update", &admin);
    let entries: Vec<&Value> = audit
        .as_array()
        .or(audit["entries"].as_array())
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "layout.update")
        .collect();
    assert_eq!(entries.len(), 1, "{audit}");
    assert!(
        entries[0]["detail"]
            .as_str()
            .unwrap()
            .contains("2 hosts placed")
    );
}

fn two_with_defaults(two: &Value) -> Value {
    let mut v = two.clone();
    for d in v.as_array_mut().unwrap() {
        d["height_u"] = d.get("height_u").cloned().unwrap_or(json!(1));
        d["face"] = json!("front");
    }
    v
}

/// A graph as a client holds it: elements by id, edges by (from, to, kind).
#[derive(Debug, Default, PartialEq)]
struct Held {
    nodes: std::collections::BTreeMap<String, Value>,
    edges: std::collections::BTreeMap<(String, String, String), Value>,
}

fn edge_key(e: &Value) -> (String, String, String) {
    let s = |k: &str| e[k].as_str().unwrap().to_string();
    (s("from"), s("to"), s("kind"))
}

impl Held {
    fn of(g: &Value) -> Held {
        let mut h = Held::default();
        for n in g["nodes"].as_array().unwrap() {
            h.nodes
                .insert(n["id"].as_str().unwrap().to_string(), n.clone());
        }
        for e in g["edges"].as_array().unwrap() {
            h.edges.insert(edge_key(e), e.clone());
        }
        h
    }

    fn apply(&mut self, d: &Value) {
        for id in d["remove_nodes"].as_array().unwrap() {
            self.nodes.remove(id.as_str().unwrap());
        }
        for n in d["upsert_nodes"].as_array().unwrap() {
            self.nodes
                .insert(n["id"].as_str().unwrap().to_string(), n.clone());
        }
        for e in d["remove_edges"].as_array().unwrap() {
            self.edges.remove(&edge_key(e));
        }
        for e in d["upsert_edges"].as_array().unwrap() {
            self.edges.insert(edge_key(e), e.clone());
        }
    }
}

/// Reads the stream until no topology message came for `quiet` (or for
/// `most` in all), applying what came to `held`; returns how many diffs
/// were applied.
async fn follow<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    held: &mut Held,
    quiet: Duration,
    most: Duration,
) -> usize
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt;
    let mut diffs = 0;
    let mut last = tokio::time::Instant::now();
    let mut version = 0;
    let start = tokio::time::Instant::now();
    while last.elapsed() < quiet && start.elapsed() < most {
        let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_millis(200), ws.next()).await
        else {
            continue;
        };
        let tokio_tungstenite::tungstenite::Message::Text(text) = msg else {
            continue;
        };
        let v: Value = serde_json::from_str(text.as_str()).unwrap();
        match v["type"].as_str() {
            Some("topology") => {
                *held = Held::of(&v);
                version = v["version"].as_u64().unwrap();
                last = tokio::time::Instant::now();
            }
            Some("topology_diff") => {
                let n = v["version"].as_u64().unwrap();
                assert!(n > version, "versions only grow: {n} after {version}");
                version = n;
                held.apply(&v);
                diffs += 1;
                last = tokio::time::Instant::now();
            }
            _ => {}
        }
    }
    diffs
}

/// A client watching the topology on the stream gets the graph once, then
/// diffs; applied, they give the graph the API derives. A client limited
/// to a host group gets only its hosts' parts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_diffs_on_the_stream() {
    use futures_util::SinkExt;
    let dir = temp_dir("topology-stream");
    let hub = Hub::start(&dir);
    let admin = hub.token("admin");
    let sim = sim(
        &hub.join(),
        8,
        &["--interval", "1s", "--churn", "50"],
        &dir.join("sim.log"),
    );
    tokio::task::block_in_place(|| hub.wait_connected(&admin, 8, Duration::from_secs(30)));
    let site = {
        let first = hub.nodes(&admin)[0]["id"].as_str().unwrap().to_string();
        let (_, twin) = hub.get(&format!("/api/v1/nodes/{first}"), &admin);
        twin["host"]["labels"]["site"].as_str().unwrap().to_string()
    };
    let scoped = hub.ctl(&[
        "api-token",
        "create",
        "--role",
        "viewer",
        "--group",
        &format!("site={site}"),
    ]);

    let watch =
        tokio_tungstenite::tungstenite::Message::text(r#"{"type":"watch","topology":true}"#);
    let mut ws = stream(hub.addr, &admin).await;
    ws.send(watch.clone()).await.unwrap();
    let mut ws_scoped = stream(hub.addr, &scoped).await;
    ws_scoped.send(watch).await.unwrap();

    // The fleet churns: containers start and stop, samples move the loads.
    let (mut all, mut some) = (Held::default(), Held::default());
    let (a, b) = tokio::join!(
        follow(
            &mut ws,
            &mut all,
            Duration::from_secs(4),
            Duration::from_secs(5)
        ),
        follow(
            &mut ws_scoped,
            &mut some,
            Duration::from_secs(4),
            Duration::from_secs(5)
        ),
    );
    assert!(
        a > 0 && b > 0,
        "diffs arrive while the fleet changes ({a}, {b})"
    );
    drop(sim);
    let (a2, b2) = tokio::join!(
        follow(
            &mut ws,
            &mut all,
            Duration::from_secs(3),
            Duration::from_secs(30)
        ),
        follow(
            &mut ws_scoped,
            &mut some,
            Duration::from_secs(3),
            Duration::from_secs(30)
        ),
    );
    assert!(
        a2 > 0 && b2 > 0,
        "the hosts going offline is a change ({a2}, {b2})"
    );

    // Diffs applied to the first graph give what the API derives now.
    let (_, g) = hub.get("/api/v1/topology", &admin);
    assert_eq!(all, Held::of(&g));
    let (_, g) = hub.get("/api/v1/topology", &scoped);
    let expected = Held::of(&g);
    assert_eq!(some, expected);
    assert!(
        expected.nodes.len() < all.nodes.len(),
        "the group sees part of the fleet"
    );
}
