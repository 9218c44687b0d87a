//! hub-scale: how many agents one hub keeps live on this machine, and at what cost.
//!
//! For each fleet size it starts a real hub and a real `twinbay sim` as
//! separate processes, with UI stream clients subscribed to the whole fleet,
//! and prints: time to enroll and connect all agents, samples ingested per
//! second, hub CPU and RSS (and per agent), the store's write lag, and the
//! latency from a container start in the simulator (its `started_at`) to each
//! UI client. At one size it also SIGKILLs the hub and times the fleet's
//! return. Run: `bash bench/hub-scale/run.sh`. Knobs (environment):
//! AGENTS=100,1000,5000,10000 CLIENTS=20 STEADY_SECS=30 CHURN=2 INTERVAL=5s
//! RESTART_AT=1000.

#[path = "../tests/e2e/harness.rs"]
mod harness;

use std::fs::File;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use harness::*;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Default)]
struct Row {
    agents: usize,
    connect_secs: f64,
    connected: usize,
    samples_per_sec: f64,
    hub_cpu: f64,
    hub_rss_mib: f64,
    kib_per_agent: f64,
    write_lag_ms: i64,
    p50: f64,
    p99: f64,
    latencies: usize,
    /// What one UI client received per second while measuring.
    ui_kib_s: f64,
    errors: u64,
    sim_cpu: f64,
    sim_rss_mib: f64,
    restart_secs: Option<f64>,
}

fn main() {
    let sizes: Vec<usize> = std::env::var("AGENTS")
        .unwrap_or_else(|_| "100,1000,5000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let restart_at: usize = env("RESTART_AT", 1000);
    // Two workers, and the blocking status polls on the blocking pool: a UI
    // client must keep reading while the hub is slow to answer a poll, or
    // the hub drops it as stalled (what happened to all 20 in the first
    // 10,000-agent run, on one thread).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for n in sizes {
        println!("\n--- {n} agents ---");
        match runtime.block_on(round(n, n == restart_at)) {
            Ok(row) => rows.push(row),
            Err(e) => {
                println!("stopped at {n} agents: {e}");
                break;
            }
        }
        print_table(&rows);
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "\n{:>6} {:>9} {:>9} {:>9} {:>8} {:>8} {:>7} {:>8} {:>7} {:>7} {:>7} {:>8} {:>6} {:>7} {:>8} {:>9}",
        "agents",
        "connect_s",
        "connected",
        "samples/s",
        "hub_cpu%",
        "hub_MiB",
        "KiB/ag",
        "wlag_ms",
        "ui_p50",
        "ui_p99",
        "n_lat",
        "uiKiB/s",
        "errors",
        "sim_cpu%",
        "sim_MiB",
        "restart_s"
    );
    for r in rows {
        println!(
            "{:>6} {:>9.1} {:>9} {:>9.0} {:>8.1} {:>8.1} {:>7.1} {:>8} {:>7.1} {:>7.1} {:>7} {:>8.1} {:>6} {:>7.1} {:>8.1} {:>9}",
            r.agents,
            r.connect_secs,
            r.connected,
            r.samples_per_sec,
            r.hub_cpu,
            r.hub_rss_mib,
            r.kib_per_agent,
            r.write_lag_ms,
            r.p50,
            r.p99,
            r.latencies,
            r.ui_kib_s,
            r.errors,
            r.sim_cpu,
            r.sim_rss_mib,
            r.restart_secs
                .map(|s| format!("{s:.1}"))
                .unwrap_or_else(|| "-".into())
        );
    }
}

/// Where the hub's memory goes, per connected agent, from `memory` in
/// `GET /api/v1/hub`: resident, the heap in use and free, the twins (by
/// part), and the rest (per-connection state: TLS, WebSocket, tasks; the
/// store's caches; code).
fn print_memory(n: usize, status: &Value) {
    let m = &status["memory"];
    let kib = |v: &Value| v.as_u64().unwrap_or(0) as f64 / 1024.0 / n.max(1) as f64;
    let (rss, twin) = (kib(&m["rss"]), kib(&m["twin_bytes"]));
    let (in_use, free) = (kib(&m["heap_in_use"]), kib(&m["heap_free"]));
    let heads = kib(&m["journal_heads_bytes"]);
    println!(
        "memory per agent (KiB): rss {rss:.1} = heap in use {in_use:.1} (twin {twin:.1}, journal heads {heads:.1}, other {:.1}) + heap free {free:.1} + rest {:.1}; {} shared strings",
        in_use - twin - heads,
        rss - in_use - free,
        m["shared_strings"]
    );
    if let Some(parts) = m["twin_parts"].as_object() {
        let parts: Vec<String> = parts
            .iter()
            .filter(|(_, b)| b.as_u64().unwrap_or(0) > 0)
            .map(|(p, b)| format!("{p} {:.1}", kib(b)))
            .collect();
        println!("  twin per agent (KiB): {}", parts.join(", "));
    }
}

fn spawn_hub(dir: &Path, addr: SocketAddr) -> Proc {
    let log = File::create(dir.join("hub.log")).unwrap();
    let child = Command::new(BIN)
        .args(["hub", "--listen", &addr.to_string(), "--data-dir"])
        .arg(dir.join("hub"))
        .args(["--heartbeat", "5s"])
        // The simulated fleet dials from one address; real hosts would each
        // have their own, under its own cap on connections not yet
        // authenticated (a herd reconnecting after the restart is thousands).
        .args(["--max-connections-per-ip", "100000"])
        .env("TWINBAY_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let hub = Proc { child, name: "hub" };
    wait_for("the hub to serve", Duration::from_secs(20), || {
        http(addr, "GET", "/healthz", &[], "")
            .ok()
            .filter(|r| r.0 == 200)
    });
    hub
}

fn ctl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("ctl")
        .arg("--data-dir")
        .arg(dir.join("hub"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn status(addr: SocketAddr, token: &str) -> Option<Value> {
    let token = token.to_owned();
    tokio::task::spawn_blocking(move || status_blocking(addr, &token))
        .await
        .ok()
        .flatten()
}

fn status_blocking(addr: SocketAddr, token: &str) -> Option<Value> {
    let auth = format!("Bearer {token}");
    let (code, body) = http(addr, "GET", "/api/v1/hub", &[("Authorization", &auth)], "").ok()?;
    (code == 200).then(|| serde_json::from_str(&body).ok())?
}

fn field(v: &Value, name: &str) -> u64 {
    v[name].as_u64().unwrap_or(0)
}

/// CPU seconds (user + system) and RSS in MiB of a process.
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

/// The `n` slowest latencies, with when their container started (seconds
/// into the minute): many at one start is a stall before the broadcast.
fn print_slowest(seen: &[(f64, f64)], n: usize) {
    for (ms, at) in seen.iter().rev().take(n) {
        let into_minute = (at / 1000.0) % 60.0;
        println!("  slow: {ms:7.1} ms, the container started at :{into_minute:06.3}");
    }
}

/// Latencies (ms) from fresh container starts in the sim to this client
/// (not an inventory of old ones).
/// Each with its start's time (unix ms), to tell one slow start seen late by
/// every client from clients slow on their own (`SLOWEST`).
fn container_starts(text: &str, out: &mut Vec<(f64, f64)>) {
    let now = now_ms();
    out.extend(
        container_start_latencies(text)
            .into_iter()
            .filter(|ms| *ms < 60_000.0)
            .map(|ms| (ms, now - ms)),
    );
}

struct Clients {
    measuring: Arc<AtomicBool>,
    latencies: Arc<Mutex<Vec<(f64, f64)>>>,
    snapshots: Arc<AtomicU64>,
    /// Bytes the clients received, as sent (compressed frames counted
    /// compressed), while measuring.
    bytes: Arc<AtomicU64>,
    /// Streams that ended and were opened again.
    reconnects: Arc<AtomicU64>,
    /// Hosts in the summary batches the clients received while measuring
    /// (whole summaries and pulses; as the web UI's `hostUpdates`).
    summary_updates: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The stream as the web UI opens it: the summary view, compressed. Each
/// client then watches [`WATCHED`] hosts in full, as a user with host pages
/// open does (`WATCH=hosts`, the default), or the containers of the whole
/// fleet, as the Containers screen does (`WATCH=containers`: at 10,000
/// hosts a snapshot of ~225,000 containers per client). Either way a
/// container start in the sim reaches the client as a diff. `VIEW=full`
/// gives the plain stream of every change instead (what the UI used before
/// the summary view).
const SUMMARY_PATH: &str = "/api/v1/stream?view=summary&compress=deflate";
/// Hosts each client watches in full with `WATCH=hosts` (the hub's most).
const WATCHED: usize = 64;

/// Whether clients watch the fleet's containers (else [`WATCHED`] hosts).
fn watch_containers() -> bool {
    env("WATCH", String::from("hosts")) == "containers"
}

/// Watches in full the hosts of a `summaries` message that the client does
/// not watch yet, up to [`WATCHED`].
async fn watch_hosts(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    text: &str,
    watched: &mut std::collections::HashSet<String>,
) {
    use futures_util::SinkExt;
    if watched.len() >= WATCHED || !text.starts_with(r#"{"type":"summaries""#) {
        return;
    }
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return;
    };
    for id in v["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["id"].as_str())
    {
        if watched.len() >= WATCHED {
            break;
        }
        if watched.insert(id.to_owned()) {
            let ask = serde_json::json!({"type": "watch", "node": id}).to_string();
            let _ = ws.send(Message::text(ask)).await;
        }
    }
}

/// Opens one UI stream as the bench's clients do.
async fn open_client(
    addr: SocketAddr,
    token: &str,
    full: bool,
) -> Option<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>> {
    use futures_util::SinkExt;
    if full {
        return Some(stream(addr, token).await);
    }
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = stream_request_to(addr, SUMMARY_PATH)
        .header("Authorization", format!("Bearer {token}"))
        .body(())
        .ok()?;
    let mut ws = tokio_tungstenite::client_async(request, tcp).await.ok()?.0;
    if watch_containers() {
        let watch = r#"{"type":"watch","collection":"containers"}"#;
        ws.send(Message::text(watch)).await.ok()?;
    }
    Some(ws)
}

/// `count` UI clients. Like the web UI, a client whose stream ends opens it
/// again a second later; `reconnects` counts how often.
async fn clients(addr: SocketAddr, token: &str, count: usize) -> Clients {
    let full = env("VIEW", String::from("summary")) == "full";
    let c = Clients {
        measuring: Arc::new(AtomicBool::new(false)),
        latencies: Arc::new(Mutex::new(Vec::new())),
        snapshots: Arc::new(AtomicU64::new(0)),
        bytes: Arc::new(AtomicU64::new(0)),
        reconnects: Arc::new(AtomicU64::new(0)),
        summary_updates: Arc::new(AtomicU64::new(0)),
        tasks: Vec::new(),
    };
    let mut tasks = Vec::new();
    for _ in 0..count {
        let (measuring, latencies, snapshots, bytes, reconnects) = (
            c.measuring.clone(),
            c.latencies.clone(),
            c.snapshots.clone(),
            c.bytes.clone(),
            c.reconnects.clone(),
        );
        let summary_updates = c.summary_updates.clone();
        let token = token.to_owned();
        let first = open_client(addr, &token, full)
            .await
            .expect("open a UI stream");
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut ws = Some(first);
            let hosts = !full && !watch_containers();
            loop {
                let Some(mut open) = ws.take() else {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    ws = open_client(addr, &token, full).await;
                    continue;
                };
                let mut watched = std::collections::HashSet::new();
                while let Some(Ok(msg)) = open.next().await {
                    let measure = measuring.load(Ordering::Relaxed);
                    let text = match msg {
                        Message::Text(text) => {
                            if measure {
                                bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
                            }
                            text.as_str().to_owned()
                        }
                        // A compressed frame: zlib, inflated as the browser does.
                        Message::Binary(data) => {
                            if measure {
                                bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                            }
                            match miniz_oxide::inflate::decompress_to_vec_zlib(&data) {
                                Ok(raw) => String::from_utf8(raw).unwrap_or_default(),
                                Err(_) => continue,
                            }
                        }
                        _ => continue,
                    };
                    if text.starts_with("{\"nodes\"") || text.contains("\"type\":\"snapshot\"") {
                        snapshots.fetch_add(1, Ordering::Relaxed);
                    }
                    if hosts {
                        watch_hosts(&mut open, &text, &mut watched).await;
                    }
                    if measure {
                        container_starts(&text, &mut mine);
                        if text.starts_with(r#"{"type":"summaries","snapshot":false"#) {
                            // Each host's entry leads with its id.
                            let hosts = text.matches(r#"{"id":""#).count() as u64;
                            summary_updates.fetch_add(hosts, Ordering::Relaxed);
                        }
                    } else if !mine.is_empty() {
                        latencies.lock().unwrap().append(&mut mine);
                    }
                }
                reconnects.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
                ws = open_client(addr, &token, full).await;
            }
        }));
    }
    Clients { tasks, ..c }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Waits until the history writer has caught up with the connect surge
/// (fewer than [`SETTLED_QUEUE`] batches queued, twice in a row), 5 s at
/// least and [`SETTLE_MAX`] at most: the steady state is what is measured.
/// Returns the seconds it took.
async fn settle(addr: SocketAddr, token: &str) -> f64 {
    const SETTLED_QUEUE: u64 = 200;
    const SETTLE_MAX: Duration = Duration::from_secs(90);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut calm = 0;
    while start.elapsed() < SETTLE_MAX && calm < 2 {
        let queued = status(addr, token)
            .await
            .map_or(u64::MAX, |s| field(&s, "history_queued_batches"));
        calm = if queued < SETTLED_QUEUE { calm + 1 } else { 0 };
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    start.elapsed().as_secs_f64()
}

/// Warnings and errors the sim has logged so far.
fn sim_warnings(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("sim.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .count() as u64
}

async fn wait_connected(
    addr: SocketAddr,
    token: &str,
    n: usize,
    within: Duration,
) -> Result<f64, String> {
    let start = Instant::now();
    let mut last = 0;
    while start.elapsed() < within {
        if let Some(s) = status(addr, token).await {
            last = field(&s, "connected") as usize;
            if last >= n {
                return Ok(start.elapsed().as_secs_f64());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "only {last} of {n} agents connected within {within:?}"
    ))
}

async fn round(n: usize, restart: bool) -> Result<Row, String> {
    let client_count: usize = env("CLIENTS", 20);
    let steady = Duration::from_secs(env("STEADY_SECS", 30));
    let churn: f64 = env("CHURN", 2.0);
    let interval: String = env("INTERVAL", "5s".to_string());
    let dir = temp_dir(&format!("scale-{n}"));
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut hub = spawn_hub(&dir, addr);
    let join = ctl(&dir, &["join-token", "create", "--ttl", "2h"]);
    let token = ctl(&dir, &["api-token", "create", "--role", "viewer"]);
    let ui = clients(addr, &token, client_count).await;
    println!(
        "{client_count} UI clients: {}",
        match (
            env("VIEW", String::from("summary")).as_str(),
            watch_containers()
        ) {
            ("full", _) => "the full stream".to_string(),
            (_, true) => "summary view, watching the fleet's containers".to_string(),
            _ => format!("summary view, each watching {WATCHED} hosts in full"),
        }
    );
    let (_, hub_base_mib) = usage(hub.child.id());

    let sim_log = File::create(dir.join("sim.log")).unwrap();
    let started = Instant::now();
    let sim = Command::new(BIN)
        .args(["sim", "--join", &join, "--agents", &n.to_string()])
        .args(["--interval", &interval, "--churn", &churn.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(sim_log)
        .spawn()
        .unwrap();
    let sim = Proc {
        child: sim,
        name: "sim",
    };
    let within = Duration::from_secs(60 + n as u64 / 50);
    wait_connected(addr, &token, n, within).await?;
    let connect_secs = started.elapsed().as_secs_f64();
    println!("all {n} agents connected in {connect_secs:.1} s; settling");
    let settled = settle(addr, &token).await;
    println!("settled {settled:.1} s later (the history queue drained of the connect surge)");

    let before = status(addr, &token).await.ok_or("no hub status")?;
    let sim_warnings_before = sim_warnings(&dir);
    let (hub_cpu0, _) = usage(hub.child.id());
    let (sim_cpu0, _) = usage(sim.child.id());
    let t0 = Instant::now();
    ui.measuring.store(true, Ordering::Relaxed);
    let mut write_lag = 0;
    let mut hub_rss: f64 = 0.0;
    while t0.elapsed() < steady {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(s) = status(addr, &token).await {
            write_lag = write_lag.max(s["history_write_lag_ms"].as_i64().unwrap_or(0));
        }
        hub_rss = hub_rss.max(usage(hub.child.id()).1);
    }
    ui.measuring.store(false, Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "UI client reconnects (streams the hub ended) by the end of the window: {}",
        ui.reconnects.load(Ordering::Relaxed)
    );
    println!(
        "summary updates (hosts' summaries and pulses) per client: {:.0}/s",
        ui.summary_updates.load(Ordering::Relaxed) as f64
            / client_count.max(1) as f64
            / steady.as_secs_f64()
    );
    let after = status(addr, &token).await.ok_or("no hub status")?;
    let (hub_cpu1, _) = usage(hub.child.id());
    let (sim_cpu1, sim_rss) = usage(sim.child.id());
    // Let the clients hand over their latencies (they do on the next message).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut seen = std::mem::take(&mut *ui.latencies.lock().unwrap());
    seen.sort_by(|a, b| a.0.total_cmp(&b.0));
    print_slowest(&seen, env::<usize>("SLOWEST", 0));
    let lat: Vec<f64> = seen.iter().map(|(ms, _)| *ms).collect();
    let delta = |name: &str| field(&after, name).saturating_sub(field(&before, name));
    // Errors count in the measured window, as the hub's counters do; the
    // connect surge's are printed apart.
    let sim_errors = sim_warnings(&dir).saturating_sub(sim_warnings_before);
    let errors = delta("agent_bad_frames")
        + delta("agent_refusals")
        + delta("history_dropped_batches")
        + delta("ui_resyncs")
        + delta("ui_dropped")
        + sim_errors;
    println!(
        "before the window (connect surge, settling): sim warnings {sim_warnings_before}, history drops {}",
        field(&before, "history_dropped_batches")
    );
    println!(
        "errors: bad frames {}, refusals {}, history drops {}, UI resyncs {}, UI drops {}, sim warnings {sim_errors}",
        delta("agent_bad_frames"),
        delta("agent_refusals"),
        delta("history_dropped_batches"),
        delta("ui_resyncs"),
        delta("ui_dropped")
    );
    print_memory(n, &after);
    let mut row = Row {
        agents: n,
        connect_secs,
        connected: field(&after, "connected") as usize,
        samples_per_sec: delta("agent_samples") as f64 / secs,
        hub_cpu: (hub_cpu1 - hub_cpu0) / secs * 100.0,
        hub_rss_mib: hub_rss,
        kib_per_agent: (hub_rss - hub_base_mib) * 1024.0 / n as f64,
        write_lag_ms: write_lag,
        p50: percentile(&lat, 0.50),
        p99: percentile(&lat, 0.99),
        latencies: lat.len(),
        ui_kib_s: ui.bytes.load(Ordering::Relaxed) as f64
            / 1024.0
            / secs
            / client_count.max(1) as f64,
        errors,
        sim_cpu: (sim_cpu1 - sim_cpu0) / secs * 100.0,
        sim_rss_mib: sim_rss,
        restart_secs: None,
    };

    if restart {
        println!("SIGKILL the hub under {n} agents, then start it again");
        hub.signal("-KILL");
        let _ = hub.child.wait();
        let refusals_before = 0;
        hub = spawn_hub(&dir, addr);
        let back = Instant::now();
        wait_connected(addr, &token, n, Duration::from_secs(60)).await?;
        let secs = back.elapsed().as_secs_f64();
        let after = status(addr, &token).await.ok_or("no hub status")?;
        let refused = field(&after, "agent_refusals") - refusals_before;
        println!("all {n} agents back {secs:.1} s after the restart; {refused} refused handshakes");
        row.restart_secs = Some(secs);
        row.errors += refused;
    }
    for task in ui.tasks {
        task.abort();
    }
    drop(sim);
    drop(hub);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(row)
}
