//! Container event latency, measured end to end with real Podman.
//!
//! Starts and stops one container in a loop and, for every transition,
//! measures from Podman's own event timestamp to (a) the hub applying the
//! diff (`applied_ms` on the stream) and (b) a WebSocket API client
//! receiving it. Prints p50/p95/p99/max. Run: `bash bench/event-latency/run.sh`
//! (which sets up Podman first); TRANSITIONS=200 by default.

#[path = "../tests/e2e/harness.rs"]
mod harness;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use harness::*;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

const IMAGE: &str = "localhost/twinbay-busybox:latest";

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn percentiles(label: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "  {label:<34} {:>7.1} {:>7.1} {:>7.1} {:>7.1}   (n={})",
        at(0.50),
        at(0.95),
        at(0.99),
        v[v.len() - 1],
        v.len()
    );
}

#[tokio::main]
async fn main() {
    let transitions: usize = std::env::var("TRANSITIONS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(200);
    let dir = std::env::temp_dir().join(format!("twinbay-event-latency-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("podman.sock");
    let _podman = podman_service(&socket);
    let hub = Hub::start(&dir.join("hub"));
    let token = hub.token("viewer");
    let sock = socket.to_str().unwrap().to_string();
    let _agent = agent_with(
        Some(&hub.join()),
        &dir.join("agent"),
        &["--container-socket", &sock],
    );
    let addr = hub.addr;

    // Podman's own event times, and when its API delivers them: the agent
    // listens to the same stream, so the difference is Podman's share.
    let (tx, podman_events) = mpsc::channel::<(String, String, f64, f64)>();
    let mut api = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    api.write_all(
        b"GET /v1.41/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D HTTP/1.1\r\nHost: d\r\n\r\n",
    )
    .unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(api).lines().map_while(Result::ok) {
            let delivered = now_ms();
            let Ok(e) = serde_json::from_str::<Value>(line.trim()) else {
                continue;
            };
            let (Some(id), Some(action), Some(ns)) = (
                e["id"].as_str(),
                e["Action"].as_str(),
                e["timeNano"].as_i64(),
            ) else {
                continue;
            };
            let _ = tx.send((
                id.to_string(),
                action.to_string(),
                ns as f64 / 1e6,
                delivered,
            ));
        }
    });

    let mut ws = stream(addr, &token).await;
    // Timestamp stream messages the moment they arrive, on a task of their
    // own: the loop below blocks in the podman CLI, and a diff often arrives
    // before the CLI returns.
    let (ws_tx, ws_rx) = mpsc::channel::<(f64, Value)>();
    tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            let recv_ms = now_ms();
            if let Message::Text(text) = msg
                && let Ok(v) = serde_json::from_str::<Value>(text.as_str())
            {
                let _ = ws_tx.send((recv_ms, v));
            }
        }
    });

    let name = format!("tb-latency-{}", std::process::id());
    let cid = run(Command::new("podman").args([
        "create",
        "--name",
        &name,
        IMAGE,
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do sleep 0.05; done",
    ]));
    // (state the twin reaches, Podman action that causes it) → samples
    let mut applied = Vec::new();
    let mut received = Vec::new();
    let mut delivery = Vec::new();
    let mut hub_to_client = Vec::new();
    let mut podman_times: HashMap<(String, String), (f64, f64)> = HashMap::new();
    let started = Instant::now();
    for i in 0..transitions {
        let (verb, action, state) = if i % 2 == 0 {
            ("start", "start", "running")
        } else {
            ("stop", "die", "exited")
        };
        let mut cmd = Command::new("podman");
        cmd.arg(verb);
        if verb == "stop" {
            cmd.args(["-t", "2"]);
        }
        run(cmd.arg(&name));
        // The diff that brings the container to `state`.
        let (applied_ms, recv_ms) = loop {
            let (recv_ms, e) = ws_rx
                .recv_timeout(Duration::from_secs(10))
                .expect("a diff in time");
            if e["type"] != "diff" {
                continue;
            }
            let hit = e["changes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["key"] == cid.as_str() && c["value"]["state"] == state);
            if hit {
                break (e["applied_ms"].as_f64().unwrap(), recv_ms);
            }
        };
        let (podman_ms, delivered_ms) = loop {
            if let Some(t) = podman_times.remove(&(cid.clone(), action.to_string())) {
                break t;
            }
            let (id, act, t, delivered) = podman_events
                .recv_timeout(Duration::from_secs(10))
                .expect("podman's event");
            podman_times.insert((id, act), (t, delivered));
        };
        podman_times.clear();
        applied.push(applied_ms - podman_ms);
        received.push(recv_ms - podman_ms);
        delivery.push(delivered_ms - podman_ms);
        hub_to_client.push(recv_ms - applied_ms);
    }
    let elapsed = started.elapsed();
    let _ = Command::new("podman")
        .args(["rm", "-f", "-t", "0", &name])
        .output();
    println!(
        "event-latency: {transitions} container transitions (start/stop) with Podman in {:.0} s",
        elapsed.as_secs_f64()
    );
    println!("  from Podman's event timestamp, ms       p50     p95     p99     max");
    percentiles("(a) hub applied the change", applied);
    percentiles("(b) WebSocket client received it", received);
    percentiles("    hub applied -> client received", hub_to_client);
    println!("  for reference, ms (each API listener is served on its own schedule)");
    percentiles("Podman's API delivering an event", delivery);
    let _ = std::fs::remove_dir_all(&dir);
}
