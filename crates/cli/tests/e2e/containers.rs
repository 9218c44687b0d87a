//! Issue 4: containers, live, with real Podman (scripts/podman-setup.sh).

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

fn podman(args: &[&str]) -> String {
    let out = Command::new("podman")
        .args(args)
        .output()
        .expect("podman is installed (scripts/podman-setup.sh)");
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn container<'a>(twin: &'a Value, name: &str) -> Option<&'a Value> {
    twin["containers"]
        .as_object()?
        .values()
        .find(|c| c["name"] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_lifecycle_reaches_the_twin_and_the_stream_in_order() {
    let (dir, socket, service) = podman_dir("containers");
    let hub = Hub::start(&dir.join("hub"));
    let token = hub.token("viewer");
    let sock = socket.to_str().unwrap().to_string();
    let _agent = agent_with(
        Some(&hub.join()),
        &dir.join("agent"),
        &["--container-socket", &sock],
    );
    let (id, _) = tokio::task::block_in_place(|| {
        hub.wait_twin(
            &token,
            "the node, with containers watched",
            Duration::from_secs(20),
            |twin| twin["sources"]["containers"]["available"] == true,
        )
    });
    let mut ui = stream(hub.addr, &token).await;
    next_json(&mut ui).await; // snapshot

    let name = format!("tb-e2e-{}", std::process::id());
    let twin_of = |hub: &Hub| hub.get(&format!("/api/v1/nodes/{id}"), &token).1;
    podman(&[
        "create",
        "--name",
        &name,
        IMAGE,
        "sh",
        "-c",
        "trap 'exit 7' TERM; while true; do sleep 0.1; done",
    ]);
    let created = Instant::now();
    let cid = tokio::task::block_in_place(|| {
        wait_for("the created container", Duration::from_secs(3), || {
            container(&twin_of(&hub), &name).map(|c| c["id"].as_str().unwrap().to_string())
        })
    });
    assert!(
        created.elapsed() < Duration::from_secs(1),
        "took {:?}",
        created.elapsed()
    );
    podman(&["start", &name]);
    tokio::task::block_in_place(|| {
        wait_for("the running container", Duration::from_secs(3), || {
            container(&twin_of(&hub), &name)
                .filter(|c| c["state"] == "running")
                .map(|_| ())
        })
    });
    podman(&["stop", "-t", "5", &name]);
    let stopped = tokio::task::block_in_place(|| {
        wait_for("the stopped container", Duration::from_secs(3), || {
            container(&twin_of(&hub), &name)
                .filter(|c| c["state"] == "exited")
                .cloned()
        })
    });
    assert_eq!(stopped["exit_code"], 7, "{stopped}");
    podman(&["rm", &name]);
    tokio::task::block_in_place(|| {
        wait_for(
            "the removed container to leave the twin",
            Duration::from_secs(3),
            || container(&twin_of(&hub), &name).is_none().then_some(()),
        )
    });

    // The stream saw it all, in order: created, running, exited (7), removed.
    let mut states = Vec::new();
    while states.last().map(String::as_str) != Some("removed") {
        let e = next_json(&mut ui).await;
        if e["type"] != "diff" {
            continue;
        }
        for change in e["changes"].as_array().unwrap() {
            if change["collection"] != "containers" || change["key"] != cid.as_str() {
                continue;
            }
            let state = match change["op"].as_str().unwrap() {
                "remove" => "removed".to_string(),
                _ => change["value"]["state"].as_str().unwrap().to_string(),
            };
            // Podman passes through "stopping" on its way to "exited".
            if states.last() != Some(&state) && state != "stopping" {
                states.push(state);
            }
        }
    }
    assert_eq!(states, ["created", "running", "exited", "removed"]);

    // The timeline recorded the same story, with the exit code.
    let (_, events) = hub.get(&format!("/api/v1/nodes/{id}/events"), &token);
    // (Podman's transitional "stopping" may add a container.state line.)
    let mine: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == name.as_str() && e["kind"] != "container.state")
        .collect();
    let kinds: Vec<&str> = mine
        .iter()
        .rev()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "container.created",
            "container.started",
            "container.died",
            "container.removed"
        ],
        "{events}"
    );
    assert_eq!(mine[1]["kind"], "container.died");
    assert_eq!(mine[1]["detail"]["exit_code"], 7);
    let (_, fleet) = hub.get("/api/v1/events?limit=5", &token);
    assert_eq!(fleet.as_array().unwrap().len(), 5);

    // The API service dies: the source says so, and shows no stale containers.
    podman(&[
        "run",
        "-d",
        "--name",
        &format!("{name}-keep"),
        IMAGE,
        "sleep",
        "300",
    ]);
    tokio::task::block_in_place(|| {
        wait_for("the kept container", Duration::from_secs(3), || {
            container(&twin_of(&hub), &format!("{name}-keep")).map(|_| ())
        })
    });
    drop(service);
    let twin = tokio::task::block_in_place(|| {
        wait_for(
            "the source to be unavailable",
            Duration::from_secs(5),
            || {
                let twin = twin_of(&hub);
                (twin["sources"]["containers"]["available"] == false).then_some(twin)
            },
        )
    });
    assert!(
        twin["sources"]["containers"]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    assert_eq!(
        twin["containers"].as_object().unwrap().len(),
        0,
        "no stale containers shown as live"
    );

    // It comes back: the source resyncs by itself.
    let _service = podman_service(&socket);
    tokio::task::block_in_place(|| {
        wait_for("the resync", Duration::from_secs(35), || {
            let twin = twin_of(&hub);
            (twin["sources"]["containers"]["available"] == true).then_some(())?;
            container(&twin, &format!("{name}-keep"))
                .filter(|c| c["state"] == "running")
                .map(|_| ())
        })
    });
    podman(&["rm", "-f", "-t", "0", &format!("{name}-keep")]);
}

/// Issue 15: with Podman's `file` events logger, the agent follows the log
/// file (the API delivers its events late) and says so; a stop still
/// reaches the twin, with its exit code. Speed is measured by
/// bench/event-latency, not here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_events_come_from_its_log_file() {
    let info = podman(&["info", "--format", "{{.Host.EventLogger}}"]);
    if info != "file" {
        eprintln!("skipped: Podman's event logger is {info:?}, not file");
        return;
    }
    let dir = temp_dir("containers-eventlog");
    let socket = dir.join("podman.sock");
    let _service = podman_service(&socket);
    let hub = Hub::start(&dir.join("hub"));
    let token = hub.token("viewer");
    let sock = socket.to_str().unwrap().to_string();
    let _agent = agent_with(
        Some(&hub.join()),
        &dir.join("agent"),
        &["--container-socket", &sock],
    );
    let (id, twin) = tokio::task::block_in_place(|| {
        hub.wait_twin(
            &token,
            "the node, with containers watched",
            Duration::from_secs(20),
            |twin| twin["sources"]["containers"]["available"] == true,
        )
    });
    let reason = twin["sources"]["containers"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.starts_with("events: podman log file (") && reason.contains("events.log"),
        "{reason}"
    );
    let twin_of = |hub: &Hub| hub.get(&format!("/api/v1/nodes/{id}"), &token).1;
    let name = format!("tb-e2e-log-{}", std::process::id());
    podman(&[
        "run",
        "-d",
        "--name",
        &name,
        IMAGE,
        "sh",
        "-c",
        "trap 'exit 5' TERM; while true; do sleep 0.1; done",
    ]);
    tokio::task::block_in_place(|| {
        wait_for("the running container", Duration::from_secs(5), || {
            container(&twin_of(&hub), &name)
                .filter(|c| c["state"] == "running")
                .map(|_| ())
        })
    });
    podman(&["stop", "-t", "5", &name]);
    let stopped = tokio::task::block_in_place(|| {
        wait_for("the stopped container", Duration::from_secs(5), || {
            container(&twin_of(&hub), &name)
                .filter(|c| c["state"] == "exited")
                .cloned()
        })
    });
    assert_eq!(stopped["exit_code"], 5, "{stopped}");
    podman(&["rm", &name]);
    tokio::task::block_in_place(|| {
        wait_for(
            "the removed container to leave the twin",
            Duration::from_secs(5),
            || container(&twin_of(&hub), &name).is_none().then_some(()),
        )
    });
}
