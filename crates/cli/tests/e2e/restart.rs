//! Acceptance 2: restarts lose nothing; silent or dead agents show as disconnected.

use std::time::{Duration, Instant};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_comes_back_after_a_hub_restart_and_nothing_is_lost() {
    let dir = temp_dir("restart");
    let hub_dir = dir.join("hub");
    let hub = Hub::start(&hub_dir);
    let port = hub.addr.port();
    let token = hub.token("viewer");
    let spare_join = hub.join();
    let agent = agent(Some(&hub.join()), &dir.join("agent"));
    let id = tokio::task::block_in_place(|| {
        wait_for("the agent to connect", Duration::from_secs(5), || {
            hub.nodes(&token)
                .into_iter()
                .find(|n| n["connected"] == true)
        })
    })["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Kill the hub without warning, start it again on the same data dir.
    hub.proc.signal("-KILL");
    drop(hub);
    let hub = Hub::start_on(&hub_dir, port);
    tokio::task::block_in_place(|| {
        wait_for(
            "the agent to reconnect by itself",
            Duration::from_secs(20),
            || {
                hub.node(&token, &id).filter(|n| {
                    n["connected"] == true && n["resources"]["mem_total"].as_u64() > Some(0)
                })
            },
        )
    });
    // The API token, the node, the admin account and the unused join token survived.
    assert_eq!(hub.nodes(&token).len(), 1);
    let login = format!(r#"{{"username":"admin","password":"{ADMIN_PASSWORD}"}}"#);
    let (status, _) = http(
        hub.addr,
        "POST",
        "/api/v1/session",
        &[("Content-Type", "application/json")],
        &login,
    )
    .unwrap();
    assert_eq!(status, 200);
    let (_raw, spare_id) = RawAgent::enroll(&spare_join).await;
    assert_ne!(spare_id, id);

    // A frozen agent stops sending heartbeats (1 s here): disconnected within 3.
    agent.signal("-STOP");
    let frozen = Instant::now();
    tokio::task::block_in_place(|| {
        wait_for(
            "the silent node to be disconnected",
            Duration::from_secs(5),
            || hub.node(&token, &id).filter(|n| n["connected"] == false),
        )
    });
    assert!(
        frozen.elapsed() <= Duration::from_millis(3000 + 500),
        "took {:?}",
        frozen.elapsed()
    );

    // Thawed, it notices the hub hung up and comes back on its own.
    agent.signal("-CONT");
    tokio::task::block_in_place(|| {
        wait_for(
            "the thawed agent to reconnect",
            Duration::from_secs(20),
            || hub.node(&token, &id).filter(|n| n["connected"] == true),
        )
    });

    // A killed agent's connection drops at once.
    agent.signal("-KILL");
    let killed = Instant::now();
    tokio::task::block_in_place(|| {
        wait_for(
            "the dead node to be disconnected",
            Duration::from_secs(5),
            || hub.node(&token, &id).filter(|n| n["connected"] == false),
        )
    });
    assert!(killed.elapsed() <= Duration::from_secs(3));
}

#[test]
fn a_terminated_hub_stops_cleanly_and_keeps_the_last_state() {
    let dir = temp_dir("sigterm");
    let hub_dir = dir.join("hub");
    let hub = Hub::start(&hub_dir);
    let port = hub.addr.port();
    let token = hub.token("viewer");
    let _agent = agent(Some(&hub.join()), &dir.join("agent"));
    let before = wait_for("a sample", Duration::from_secs(5), || {
        hub.nodes(&token)
            .into_iter()
            .find(|n| n["resources"]["ts_ms"].as_i64().is_some())
    });
    hub.proc.signal("-TERM");
    let Hub { proc, .. } = hub;
    let out = proc.wait_exit(Duration::from_secs(10));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Restarted with no agent: the node is there, disconnected, with its last numbers.
    std::thread::sleep(Duration::from_millis(200));
    let _ = std::process::Command::new("kill")
        .args(["-STOP", &_agent.pid()])
        .status();
    let hub = Hub::start_on(&hub_dir, port);
    let node = hub
        .nodes(&token)
        .into_iter()
        .next()
        .expect("the node was kept");
    assert_eq!(node["id"], before["id"]);
    assert_eq!(node["connected"], false);
    assert!(node["resources"]["mem_total"].as_u64() > Some(0));
    assert_eq!(node["hostname"], before["hostname"]);
}
