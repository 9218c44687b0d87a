//! hub-replicas: three hub replicas on one PostgreSQL database and one NATS
//! server, agents spread over them, UI clients on replica A. Prints, per
//! fleet size: agents per replica, time to connect, each replica's CPU and
//! RSS, and the latency from a container start in the simulator to A's UI
//! clients, for agents on A itself and for agents on B and C (the bus hop).
//! Run: `bash bench/hub-scale/replicas.sh`. Knobs (environment):
//! PER_REPLICA=1000,3000 CLIENTS=10 STEADY_SECS=20 CHURN=2 INTERVAL=5s
//! NATS=nats-server (2.10 or newer) PG=postgres://postgres@127.0.0.1:5432

#[path = "../tests/e2e/harness.rs"]
mod harness;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use harness::*;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use twinbay_proto::join::JoinString;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn psql(sql: &str) {
    let ok = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-qAtc",
            sql,
            "postgres",
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "psql {sql}");
}

/// CPU seconds and RSS (MiB) of `pid`.
fn usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(") ").map(|p| p.1).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    ((ticks(11) + ticks(12)) / 100.0, rss_mib(pid))
}

fn percentile(sorted: &[f64], p: usize) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[(sorted.len() - 1) * p / 100]
}

fn main() {
    let sizes: Vec<usize> = std::env::var("PER_REPLICA")
        .unwrap_or_else(|_| "1000,3000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for n in sizes {
        println!("\n--- 3 replicas x {n} agents ---");
        if let Err(e) = runtime.block_on(round(n)) {
            println!("stopped at {n} agents per replica: {e}");
            break;
        }
    }
}

async fn round(n: usize) -> Result<(), String> {
    let clients: usize = env("CLIENTS", 10);
    let steady = Duration::from_secs(env("STEADY_SECS", 20));
    let churn: f64 = env("CHURN", 2.0);
    let interval: String = env("INTERVAL", "5s".to_string());
    let dir = temp_dir(&format!("replicas-{n}"));
    let db = format!("twinbay_bench_replicas_{}", std::process::id());
    psql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
    psql(&format!(
        "CREATE DATABASE {db} TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"
    ));
    let store = format!(
        "{}/{db}",
        env("PG", "postgres://postgres@127.0.0.1:5432".to_string())
    );
    let nats_port = free_port();
    let nats = Command::new(env("NATS", "nats-server".to_string()))
        .args([
            "-a",
            "127.0.0.1",
            "-p",
            &nats_port.to_string(),
            "-js",
            "-sd",
        ])
        .arg(dir.join("nats"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("nats-server: {e}"))?;
    let _nats = Proc {
        child: nats,
        name: "nats",
    };
    wait_for("NATS", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", nats_port)).ok()
    });
    let bus = format!("nats://127.0.0.1:{nats_port}");
    let args = [
        "--store",
        store.as_str(),
        "--bus",
        bus.as_str(),
        "--max-connections-per-ip",
        "100000",
    ];
    let mut hubs = Vec::new();
    for name in ["a", "b", "c"] {
        let hub_dir = dir.join(name);
        if name != "a" {
            copy_tls(&dir.join("a/tls"), &hub_dir.join("tls"));
        }
        hubs.push(Hub::start_for_fleet(&hub_dir, &args));
    }
    let token = hubs[0].token("viewer");
    let names: Vec<String> = hubs
        .iter()
        .map(|h| {
            h.status(&token)["replicas"]["this"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();

    // UI clients on A, subscribed before the fleet comes.
    let seen: Arc<Mutex<Vec<(f64, String)>>> = Arc::default();
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for _ in 0..clients {
        let mut ws = stream(hubs[0].addr, &token).await;
        let (seen, measuring) = (seen.clone(), measuring.clone());
        tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(text) = msg else { continue };
                if !measuring.load(std::sync::atomic::Ordering::Relaxed) {
                    continue;
                }
                let lat = container_start_latencies(text.as_str());
                if lat.is_empty() {
                    continue;
                }
                let node = serde_json::from_str::<Value>(text.as_str())
                    .ok()
                    .and_then(|v| v["id"].as_str().map(String::from))
                    .unwrap_or_default();
                let mut seen = seen.lock().unwrap();
                seen.extend(lat.into_iter().map(|l| (l, node.clone())));
            }
        });
    }

    let started = Instant::now();
    let mut sims = Vec::new();
    for (i, hub) in hubs.iter().enumerate() {
        let mut join = JoinString::parse(&hub.join()).unwrap();
        join.hub = hub.url();
        let log = std::fs::File::create(dir.join(format!("sim-{i}.log"))).unwrap();
        let child = Command::new(BIN)
            .args(["sim", "--join", &join.encode(), "--agents", &n.to_string()])
            .args(["--interval", &interval, "--churn", &churn.to_string()])
            .args(["--first-index", &(i * n).to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        sims.push(Proc { child, name: "sim" });
    }
    let total = 3 * n as u64;
    let within = Duration::from_secs(env("CONNECT_SECS", 60 + total / 50));
    // As far as this machine goes: past `within`, measure what connected.
    let mut seen_connected = 0;
    while started.elapsed() < within {
        if let Some(n) = tokio::task::block_in_place(|| connected(&hubs[0], &token)) {
            seen_connected = n;
            if n >= total {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let connect_secs = started.elapsed().as_secs_f64();
    if seen_connected >= total {
        println!(
            "all {total} agents connected (as A sees them) in {connect_secs:.1} s; settling 5 s"
        );
    } else {
        println!(
            "only {seen_connected} of {total} agents connected (as A sees them) after {connect_secs:.1} s; measuring those"
        );
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let dialed = tokio::task::block_in_place(|| dialed(&hubs[0], &token, n));

    let cpu0: Vec<f64> = hubs.iter().map(|h| usage(h.proc.child.id()).0).collect();
    let t0 = Instant::now();
    measuring.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut rss = [0.0f64; 3];
    while t0.elapsed() < steady {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for (i, h) in hubs.iter().enumerate() {
            rss[i] = rss[i].max(usage(h.proc.child.id()).1);
        }
    }
    measuring.store(false, std::sync::atomic::Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu1: Vec<f64> = hubs.iter().map(|h| usage(h.proc.child.id()).0).collect();
    let status = tokio::task::block_in_place(|| hubs[0].status(&token));
    let links = &status["replicas"]["links"];

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let (mut local, mut remote): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    for (ms, node) in &seen {
        match dialed.get(node) {
            Some(0) => local.push(*ms),
            Some(_) => remote.push(*ms),
            None => {}
        }
    }
    local.sort_by(f64::total_cmp);
    remote.sort_by(f64::total_cmp);
    println!("replica  agents  cpu%   MiB   KiB/agent");
    for (i, name) in names.iter().enumerate() {
        let agents = links[name].as_u64().unwrap_or(0);
        println!(
            "{}  {:>6}  {:>5.1}  {:>5.0}  {:>6.1}",
            ["A", "B", "C"][i],
            agents,
            (cpu1[i] - cpu0[i]) / secs * 100.0,
            rss[i],
            rss[i] * 1024.0 / agents.max(1) as f64
        );
    }
    println!(
        "UI on A ({clients} clients), container start to client: agents on A p50 {:.1} p99 {:.1} ms (n={}); agents on B and C p50 {:.1} p99 {:.1} ms (n={})",
        percentile(&local, 50),
        percentile(&local, 99),
        local.len(),
        percentile(&remote, 50),
        percentile(&remote, 99),
        remote.len()
    );
    println!(
        "bus messages dropped on A: {}; connected as A sees it: {}",
        status["replicas"]["dropped_messages"], status["connected"]
    );
    drop(sims);
    drop(hubs);
    psql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Node → the replica its simulator dialed (0 = A): `twinbay sim` names
/// its hosts `ROLE-INDEX`, and the simulator of replica `i` numbers from
/// `i * n`.
fn dialed(hub: &Hub, token: &str, n: usize) -> std::collections::HashMap<String, usize> {
    let (_, nodes) = hub.get("/api/v1/nodes", token);
    nodes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|node| {
            let id = node["id"].as_str()?.to_string();
            let index: usize = node["hostname"]
                .as_str()?
                .rsplit('-')
                .next()?
                .parse()
                .ok()?;
            Some((id, index / n.max(1)))
        })
        .collect()
}

/// Agents connected as `hub` sees them; `None` while it does not answer
/// (a connect surge can make it refuse a poll).
fn connected(hub: &Hub, token: &str) -> Option<u64> {
    let auth = format!("Bearer {token}");
    let (status, body) = http(
        hub.addr,
        "GET",
        "/api/v1/hub",
        &[("Authorization", &auth)],
        "",
    )
    .ok()?;
    if status != 200 {
        return None;
    }
    serde_json::from_str::<Value>(&body).ok()?["connected"].as_u64()
}

fn copy_tls(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}
