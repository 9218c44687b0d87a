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
