//! Issue 3: host resources in the twin and their history on the hub.

use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

/// Starts a hub with fast maintenance and a 1 s agent; returns them and the node id.
fn hub_and_agent(name: &str, extra: &[&str]) -> (Hub, Proc, String, String) {
    let dir = temp_dir(name);
    let mut args = vec!["--rollup-every", "1s", "--retention-every", "1s"];
    args.extend_from_slice(extra);
    let hub = Hub::start_with(&dir.join("hub"), free_port(), &args);
    let token = hub.token("viewer");
    let agent = agent(Some(&hub.join()), &dir.join("agent"));
    let id = wait_for("the agent, synced", Duration::from_secs(5), || {
        hub.nodes(&token)
            .into_iter()
            .find(|n| n["connected"] == true && n["resources"].is_object())
    })["id"]
        .as_str()
        .unwrap()
        .to_string();
    (hub, agent, token, id)
}

fn range(hub: &Hub, token: &str, id: &str, query: &str) -> Value {
    let (status, body) = hub.get(&format!("/api/v1/nodes/{id}/metrics?{query}"), token);
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn history_keeps_raw_points_and_rollups_for_a_real_agent() {
    let (hub, _agent, token, id) = hub_and_agent("history", &[]);
    let (_, twin) = hub.get(&format!("/api/v1/nodes/{id}"), &token);
    let iface = twin["interfaces"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .expect("an interface")
        .clone();
    assert!(twin["mounts"]["/"].is_object(), "{}", twin["mounts"]);
    assert!(!twin["processes"].as_object().unwrap().is_empty());
    assert!(
        twin["resources"]["disks"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
    );
    // Every source says whether it works here, and if not, why.
    for source in [
        "host",
        "disks",
        "network",
        "processes",
        "ports",
        "temperatures",
        "gpu",
        "smart",
    ] {
        let s = &twin["sources"][source];
        assert!(
            s["available"] == true || s["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{source}: {s}"
        );
    }
    if !std::path::Path::new("/proc/driver/nvidia").exists() {
        assert!(
            twin["sources"]["gpu"]["reason"]
                .as_str()
                .unwrap()
                .starts_with("NVML not available")
        );
    }

    std::thread::sleep(Duration::from_secs(8));
    let series = format!("cpu,mem_used,disk_used{{/}},net_rx_bps{{{iface}}}");
    let raw = range(
        &hub,
        &token,
        &id,
        &format!("series={series}&resolution=raw"),
    );
    assert_eq!(raw["resolution"], "raw");
    for s in raw["series"].as_array().unwrap() {
        let points = s["points"].as_array().unwrap();
        assert!(
            points.len() >= 6,
            "{} has {} raw points",
            s["name"],
            points.len()
        );
    }
    let mem = &raw["series"][1]["points"];
    assert!(
        mem[0][1].as_f64().unwrap() > 0.0,
        "memory in use is a real number"
    );

    let rolled = range(&hub, &token, &id, &format!("series={series}&resolution=1m"));
    assert_eq!(rolled["resolution"], "1m");
    for s in rolled["series"].as_array().unwrap() {
        let buckets = s["points"].as_array().unwrap();
        assert!(!buckets.is_empty(), "{} has no 1m rollup", s["name"]);
        for b in buckets {
            let (min, avg, max) = (
                b[1].as_f64().unwrap(),
                b[2].as_f64().unwrap(),
                b[3].as_f64().unwrap(),
            );
            assert!(
                min <= avg && avg <= max,
                "{}: {min} ≤ {avg} ≤ {max}",
                s["name"]
            );
        }
    }
    // Prometheus sees the same values, labelled.
    let (status, metrics) = http(hub.addr, "GET", "/metrics", &[], "").unwrap();
    assert_eq!(status, 200);
    let has = |prefix: &str| metrics.lines().any(|l| l.starts_with(prefix));
    assert!(
        has(&format!("twinbay_node_disk_used_bytes{{node=\"{id}\""))
            && metrics.contains("mount=\"/\""),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("interface=\"{iface}\"")),
        "{metrics}"
    );
    assert!(has("twinbay_history_points_written "));
    assert!(has("twinbay_history_dropped_batches 0"));
    // The series list names what a UI can chart.
    let (_, names) = hub.get(&format!("/api/v1/nodes/{id}/series"), &token);
    assert!(names.as_array().unwrap().iter().any(|n| n == "load1"));
    // Bad queries are clear 400s.
    assert_eq!(
        hub.get(&format!("/api/v1/nodes/{id}/metrics?resolution=5m"), &token)
            .0,
        400
    );
    assert_eq!(
        hub.get(&format!("/api/v1/nodes/{id}/metrics?from=10&to=5"), &token)
            .0,
        400
    );
    assert_eq!(hub.get("/api/v1/nodes/n_nope/metrics", &token).0, 404);
}

#[test]
fn a_listener_shows_up_in_ports_with_its_process_and_goes_away() {
    let (hub, _agent, token, id) = hub_and_agent("ports", &[]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let key = format!("tcp/127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let seen = wait_for("the listener in the twin", Duration::from_secs(5), || {
        let (_, twin) = hub.get(&format!("/api/v1/nodes/{id}"), &token);
        twin["ports"].get(&key).cloned()
    });
    // One 1 s interval, plus the trip to the hub.
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(seen["pid"], std::process::id());
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    assert_eq!(seen["process"], comm.trim());

    drop(listener);
    wait_for(
        "the closed listener to leave the twin",
        Duration::from_secs(5),
        || {
            let (_, twin) = hub.get(&format!("/api/v1/nodes/{id}"), &token);
            twin["ports"].get(&key).is_none().then_some(())
        },
    );
}

#[test]
fn tiny_retention_drops_old_raw_points_keeps_rollups_and_stays_under_the_cap() {
    let (hub, _agent, token, id) = hub_and_agent(
        "retention",
        &[
            "--history-retention",
            "raw=3s",
            "--history-max-size",
            "4MiB",
        ],
    );
    std::thread::sleep(Duration::from_secs(8));
    let now = twinbay_agent::now_ms();
    let raw = range(&hub, &token, &id, "series=cpu&resolution=raw&from=0");
    let points = raw["series"][0]["points"].as_array().unwrap();
    let oldest = points.first().expect("recent raw points remain")[0]
        .as_f64()
        .unwrap() as i64;
    // Raw is kept 3 s, enforced every 1 s: nothing older than ~5 s is left of 8 s of samples.
    assert!(
        now - oldest <= 5_500,
        "oldest raw point is {} ms old",
        now - oldest
    );
    assert!(points.len() <= 6, "{} raw points", points.len());
    let rolled = range(&hub, &token, &id, "series=cpu&resolution=1m&from=0");
    assert!(
        !rolled["series"][0]["points"].as_array().unwrap().is_empty(),
        "rollups remain"
    );

    let db: u64 = ["twinbay.db", "twinbay.db-wal", "twinbay.db-shm"]
        .iter()
        .map(|f| {
            std::fs::metadata(hub.dir.join(f))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum();
    assert!(db <= 4 << 20, "database uses {db} bytes");
}
