//! Proxy routes at the hub, driven by a hand-written agent: `GET
//! /api/v1/routes` follows the target container from running to stopped to
//! missing, the UI stream carries each change, a caller limited to another
//! host group sees none, and `twinbay ctl routes` shows the same.

use serde_json::Value;
use twinbay_proto::diff::{Change, Collection, Item};
use twinbay_proto::message::{AgentMessage, HubMessage};
use twinbay_proto::model::{Container, Keyed, NodeState, Port, ProxyProvider, Route, RouteTarget};

use crate::harness::*;

fn container(id: &str, name: &str, state: &str) -> Container {
    Container {
        id: id.into(),
        name: name.into(),
        image: "ghcr.io/immich-app/immich-server:release".into(),
        state: state.into(),
        exit_code: (state != "running").then_some(0),
        ..Default::default()
    }
}

fn route(host: &str, upstream: &str, target: RouteTarget) -> Route {
    Route {
        provider: ProxyProvider::Caddy,
        instance: "host".into(),
        host: host.into(),
        path: "/".into(),
        upstream: upstream.into(),
        tls: true,
        target,
    }
}

/// The routes the viewer gets for `query`, as (host, target_state, broken).
fn routes(hub: &Hub, token: &str, query: &str) -> Vec<(String, String, bool)> {
    let (status, body) = hub.get(&format!("/api/v1/routes{query}"), token);
    assert_eq!(status, 200, "{body}");
    body.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["host"].as_str().unwrap().to_string(),
                r["target_state"].as_str().unwrap().to_string(),
                r["broken"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// The next stream `diff` of `node` that touches `collection`.
async fn next_diff<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    node: &str,
    collection: &str,
) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let msg = next_json(ws).await;
        if msg["type"] == "diff"
            && msg["id"] == node
            && msg["changes"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["collection"] == collection))
        {
            return msg;
        }
    }
}

/// Skips acks until the hub has applied `seq`.
async fn acked(raw: &mut RawAgent, seq: u64) {
    loop {
        match raw.recv().await {
            HubMessage::Ack { seq: s } if s >= seq => return,
            HubMessage::Ack { .. } => continue,
            other => panic!("expected an ack, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_follow_their_target_live_and_by_host_group() {
    let dir = temp_dir("routes-api");
    let hub = Hub::start(&dir);
    let viewer = hub.token("viewer");
    let (mut raw, node) = RawAgent::enroll(&hub.join()).await;

    let mut state = NodeState::default();
    state.host.hostname = "edge-1".into();
    state.host.labels.insert("site".into(), "home".into());
    state
        .containers
        .insert("c1".into(), container("c1", "immich", "running").into());
    let grafana = Port {
        protocol: "tcp".into(),
        address: "127.0.0.1".into(),
        port: 3000,
        process: Some("grafana".into()),
        ..Default::default()
    };
    state.ports.insert(grafana.key(), grafana.clone());
    let photos = route(
        "photos.example.org",
        "immich:2283",
        RouteTarget::Container {
            id: "c1".into(),
            name: "immich".into(),
        },
    );
    for r in [
        photos.clone(),
        route(
            "grafana.example.org",
            "http://127.0.0.1:3000",
            RouteTarget::Port { key: grafana.key() },
        ),
        route(
            "ha.example.org",
            "http://192.168.1.20:8123",
            RouteTarget::External,
        ),
        route("odd.example.org", "$backend", RouteTarget::Unknown),
    ] {
        state.routes.insert(r.key(), r);
    }
    raw.send(&AgentMessage::SyncFull {
        seq: 1,
        state: Box::new(state),
    })
    .await;
    acked(&mut raw, 1).await;

    let all = tokio::task::block_in_place(|| routes(&hub, &viewer, ""));
    let expect =
        |host: &str, state: &str, broken: bool| (host.to_string(), state.to_string(), broken);
    assert_eq!(
        all,
        [
            expect("grafana.example.org", "running", false),
            expect("ha.example.org", "external", false),
            expect("odd.example.org", "unknown", false),
            expect("photos.example.org", "running", false),
        ]
    );
    // The whole item: where it is, what it says, what it leads to.
    let (_, body) = tokio::task::block_in_place(|| hub.get("/api/v1/routes?host=PHOTOS", &viewer));
    let item = &body[0];
    assert_eq!(body.as_array().unwrap().len(), 1, "{body}");
    assert_eq!(item["node_id"], node.as_str());
    assert_eq!(item["node_name"], "edge-1");
    assert_eq!(item["provider"], "caddy");
    assert_eq!(item["instance"], "host");
    assert_eq!(item["path"], "/");
    assert_eq!(item["upstream"], "immich:2283");
    assert_eq!(item["tls"], true);
    assert_eq!(item["target"]["kind"], "container");
    assert_eq!(item["target"]["id"], "c1");
    assert_eq!(item["target"]["name"], "immich");
    assert_eq!(item["target_state"], "running");
    assert!(tokio::task::block_in_place(|| routes(&hub, &viewer, "?broken=true")).is_empty());

    // A UI stream, from here on.
    let mut ui = stream(hub.addr, &viewer).await;
    let snapshot = next_json(&mut ui).await;
    assert_eq!(snapshot["type"], "snapshot");
    let twin = snapshot["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == node.as_str())
        .unwrap()
        .clone();
    assert_eq!(twin["routes"][photos.key()]["upstream"], "immich:2283");

    // The container exits: the route is broken, its target stopped.
    raw.send(&AgentMessage::SyncDiff {
        seq: 2,
        changes: vec![Change::upsert(Item::Containers(
            container("c1", "immich", "exited").into(),
        ))],
    })
    .await;
    acked(&mut raw, 2).await;
    let diff = next_diff(&mut ui, &node, "containers").await;
    assert_eq!(diff["changes"][0]["value"]["state"], "exited");
    let broken = tokio::task::block_in_place(|| routes(&hub, &viewer, "?broken=true"));
    assert_eq!(broken, [expect("photos.example.org", "stopped", true)]);
    assert_eq!(
        tokio::task::block_in_place(|| routes(&hub, &viewer, "?broken=false")).len(),
        3
    );

    // It is removed, and the port closes: both missing.
    raw.send(&AgentMessage::SyncDiff {
        seq: 3,
        changes: vec![
            Change::Remove {
                collection: Collection::Containers,
                key: "c1".into(),
            },
            Change::Remove {
                collection: Collection::Ports,
                key: grafana.key(),
            },
        ],
    })
    .await;
    acked(&mut raw, 3).await;
    let broken = tokio::task::block_in_place(|| routes(&hub, &viewer, "?broken=true"));
    assert_eq!(
        broken,
        [
            expect("grafana.example.org", "missing", true),
            expect("photos.example.org", "missing", true),
        ]
    );

    // A route changes: the stream carries it as a diff of `routes`.
    let moved = Route {
        upstream: "immich-server:2283".into(),
        ..photos.clone()
    };
    raw.send(&AgentMessage::SyncDiff {
        seq: 4,
        changes: vec![Change::upsert(Item::Routes(moved.clone()))],
    })
    .await;
    let diff = next_diff(&mut ui, &node, "routes").await;
    let change = &diff["changes"][0];
    assert_eq!(change["op"], "upsert");
    assert_eq!(change["key"], photos.key());
    assert_eq!(change["value"]["upstream"], "immich-server:2283");
    acked(&mut raw, 4).await;
    let (_, body) = tokio::task::block_in_place(|| hub.get("/api/v1/routes?host=photos", &viewer));
    assert_eq!(body[0]["upstream"], "immich-server:2283");

    // A viewer limited to another group sees none; one in this group all.
    let elsewhere = hub.ctl(&[
        "api-token",
        "create",
        "--role",
        "viewer",
        "--group",
        "site=office",
    ]);
    let here = hub.ctl(&[
        "api-token",
        "create",
        "--role",
        "viewer",
        "--group",
        "site=home",
    ]);
    tokio::task::block_in_place(|| {
        assert!(routes(&hub, &elsewhere, "").is_empty());
        assert_eq!(routes(&hub, &here, "").len(), 4);
        assert_eq!(routes(&hub, &here, &format!("?node={node}")).len(), 4);
        assert!(routes(&hub, &here, "?node=n_other").is_empty());
    });

    // A query that does not parse is refused, as JSON.
    for bad in ["?broken=maybe", "?broken="] {
        let (status, body) =
            tokio::task::block_in_place(|| hub.get(&format!("/api/v1/routes{bad}"), &viewer));
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{body}");
    }
    // Without credentials: 401.
    let (status, _) =
        tokio::task::block_in_place(|| http(hub.addr, "GET", "/api/v1/routes", &[], "").unwrap());
    assert_eq!(status, 401);

    // The CLI: a table, the broken ones marked; --broken only those.
    let ctl = |args: &[&str]| {
        tokio::task::block_in_place(|| {
            let out = std::process::Command::new(BIN)
                .args(["ctl", "--data-dir"])
                .arg(&hub.dir)
                .args(args)
                .env("TWINBAY_TOKEN", &viewer)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "ctl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        })
    };
    let table = ctl(&["routes"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5, "{table}");
    assert!(lines[0].starts_with("ROUTE"), "{table}");
    let photos_line = lines.iter().find(|l| l.contains("photos")).unwrap();
    assert!(
        photos_line.contains("https://photos.example.org/ → immich-server:2283")
            && photos_line.contains("container immich")
            && photos_line.contains("missing (broken)")
            && photos_line.contains("edge-1 (caddy host)"),
        "{table}"
    );
    let broken = ctl(&["routes", "--broken"]);
    assert_eq!(broken.lines().count(), 3, "{broken}");
    assert!(!broken.contains("ha.example.org"), "{broken}");
}
