//! Acceptance 1: an agent enrolls, shows up connected with real numbers, and
//! the stream delivers its changes within a second.

use std::time::{Duration, Instant};

use twinbay_proto::diff::{Change, Item};
use twinbay_proto::message::{AgentMessage, HubMessage};
use twinbay_proto::model::{HostInfo, NodeState, SourceStatus};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_appears_connected_and_streams_changes_live() {
    let dir = temp_dir("live");
    let hub = Hub::start(&dir.join("hub"));
    let token = hub.token("viewer");
    let join = hub.join();
    let mut ui = stream(hub.addr, &token).await;
    let snapshot = next_json(&mut ui).await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["nodes"].as_array().unwrap().len(), 0);

    let started = Instant::now();
    let _agent = agent(Some(&join), &dir.join("agent"));
    let node = tokio::task::block_in_place(|| {
        wait_for(
            "the node to be connected with memory",
            Duration::from_secs(2),
            || {
                hub.nodes(&token).into_iter().find(|n| {
                    n["connected"] == true && n["resources"]["mem_total"].as_u64() > Some(0)
                })
            },
        )
    });
    let id = node["id"].as_str().unwrap().to_string();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!node["hostname"].as_str().unwrap().is_empty());
    assert!(node["resources"]["mem_used"].as_u64().unwrap() > 0);

    // The whole twin, by id.
    let (status, twin) = hub.get(&format!("/api/v1/nodes/{id}"), &token);
    assert_eq!(status, 200);
    assert_eq!(twin["id"], id.as_str());
    assert!(twin["host"]["kernel"].as_str().unwrap().len() > 1);
    for collection in ["containers", "units", "ports", "sources"] {
        assert!(twin[collection].is_object(), "{collection} in {twin}");
    }

    // Three fresh samples, each on the stream within 1 s of being taken.
    let mut seen = 0;
    while seen < 3 {
        let event = next_json(&mut ui).await;
        if event["type"] != "metrics" || event["id"] != id.as_str() {
            continue;
        }
        let taken = event["sample"]["ts_ms"].as_i64().unwrap();
        let lag = twinbay_agent::now_ms() - taken;
        assert!(
            (0..1000).contains(&lag),
            "sample arrived {lag} ms after it was taken"
        );
        seen += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_diffs_reach_the_twin_and_the_stream_in_order() {
    let dir = temp_dir("diffs");
    let hub = Hub::start(&dir.join("hub"));
    let token = hub.token("viewer");
    let (mut raw, id) = RawAgent::enroll(&hub.join()).await;
    let mut ui = stream(hub.addr, &token).await;
    next_json(&mut ui).await; // snapshot

    let mut state = NodeState {
        host: HostInfo {
            hostname: "raw-host".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    raw.send(&AgentMessage::SyncFull {
        seq: 1,
        state: Box::new(state.clone()),
    })
    .await;
    assert_eq!(raw.recv().await, HubMessage::Ack { seq: 1 });

    let source = SourceStatus {
        name: "containers".into(),
        available: false,
        reason: Some("no Docker or Podman socket".into()),
    };
    let changes = vec![Change::upsert(Item::Sources(source.clone()))];
    let sent = Instant::now();
    raw.send(&AgentMessage::SyncDiff {
        seq: 2,
        changes: changes.clone(),
    })
    .await;
    assert_eq!(raw.recv().await, HubMessage::Ack { seq: 2 });
    let event = loop {
        let e = next_json(&mut ui).await;
        if e["type"] == "diff" {
            break e;
        }
    };
    assert!(sent.elapsed() < Duration::from_secs(1));
    assert_eq!(event["id"], id.as_str());
    assert_eq!(event["seq"], 2);
    assert_eq!(event["changes"][0]["collection"], "sources");

    // The same diff again is refused as a gap, and changes nothing.
    raw.send(&AgentMessage::SyncDiff { seq: 2, changes }).await;
    match raw.recv().await {
        HubMessage::Error { code, .. } => {
            assert_eq!(code, twinbay_proto::message::ErrorCode::ResyncRequired)
        }
        other => panic!("{other:?}"),
    }
    state.sources.insert(source.name.to_string(), source);
    let (_, twin) = hub.get(&format!("/api/v1/nodes/{id}"), &token);
    assert_eq!(twin["hostname"], "raw-host");
    assert_eq!(twin["sources"]["containers"]["available"], false);
    assert_eq!(twin["seq"], 2);
}
