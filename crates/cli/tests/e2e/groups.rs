//! Host groups: a token limited to hosts with a label sees only those,
//! everywhere (list, twin, history, events, the live stream).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_limited_to_a_host_group_sees_only_those_hosts() {
    let dir = temp_dir("groups");
    let hub = Hub::start(&dir);
    let admin = hub.token("admin");
    let _sim = sim(
        &hub.join(),
        30,
        &["--interval", "1s", "--churn", "30"],
        &dir.join("sim.log"),
    );
    hub.wait_connected(&admin, 30, Duration::from_secs(30));
    // Simulated hosts carry a `site` label; take the site of the first host.
    let twins: Vec<Value> = hub
        .nodes(&admin)
        .iter()
        .map(|n| {
            hub.get(
                &format!("/api/v1/nodes/{}", n["id"].as_str().unwrap()),
                &admin,
            )
            .1
        })
        .collect();
    let site = twins[0]["host"]["labels"]["site"]
        .as_str()
        .unwrap()
        .to_string();
    let inside: BTreeSet<String> = twins
        .iter()
        .filter(|t| t["host"]["labels"]["site"] == site.as_str())
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    let outside = twins
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .find(|id| !inside.contains(id))
        .expect("hosts at more than one site");

    let scoped = hub.ctl(&[
        "api-token",
        "create",
        "--role",
        "viewer",
        "--group",
        &format!("site={site}"),
    ]);
    let listed: BTreeSet<String> = hub
        .nodes(&scoped)
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, inside);
    let some = inside.iter().next().unwrap();
    for path in ["", "/metrics", "/series", "/events"] {
        assert_eq!(
            hub.get(&format!("/api/v1/nodes/{some}{path}"), &scoped).0,
            200,
            "{path}"
        );
        assert_eq!(
            hub.get(&format!("/api/v1/nodes/{outside}{path}"), &scoped)
                .0,
            404,
            "{path}"
        );
    }
    let (_, events) = hub.get("/api/v1/events?limit=1000", &scoped);
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .all(|e| inside.contains(e["node_id"].as_str().unwrap()))
    );
    let (_, tokens) = hub.get("/api/v1/tokens", &admin);
    assert!(
        tokens
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["groups"][0] == format!("site={site}"))
    );

    // The stream: a snapshot of the group, then only its hosts' changes.
    let mut ws = stream(hub.addr, &scoped).await;
    let snapshot = next_json(&mut ws).await;
    let snapped: BTreeSet<String> = snapshot["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(snapped, inside);
    let start = Instant::now();
    let mut seen = 0;
    while start.elapsed() < Duration::from_secs(4) {
        let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(Duration::from_secs(2), ws.next()).await
        else {
            continue;
        };
        let v: Value = serde_json::from_str(text.as_str()).unwrap();
        let id = v["id"]
            .as_str()
            .or(v["node"]["id"].as_str())
            .or(v["event"]["node_id"].as_str())
            .unwrap();
        assert!(inside.contains(id), "{id} is outside site={site}: {v}");
        seen += 1;
    }
    assert!(seen > 10, "the group's own changes still arrive ({seen})");
}
