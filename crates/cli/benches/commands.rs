//! Commands, end to end through real binaries: how long a command takes
//! from the API call to its result, how fast output streams from a host to
//! a client, and what the agent spends on it. Baselines on the same machine:
//! the same process run locally, and `podman exec` (how container-centric
//! peers such as Portainer and Komodo run a command). Run:
//! `bash bench/commands/run.sh` (RUNS=200 by default).

#[path = "../tests/e2e/harness.rs"]
mod harness;

use std::process::Command;
use std::time::{Duration, Instant};

use harness::*;
use serde_json::{Value, json};

const IMAGE: &str = "localhost/twinbay-busybox:latest";
const BULK_BYTES: u64 = 16_000_000;

fn percentiles(label: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "  {label:<40} {:>8.2} {:>8.2} {:>8.2} {:>8.2}   (n={})",
        at(0.50),
        at(0.95),
        at(0.99),
        v[v.len() - 1],
        v.len()
    );
}

/// CPU seconds (user + system) a process has used.
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn status_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Runs `op` with `stream: true`; returns the result record and the output bytes.
fn run(hub: &Hub, node: &str, token: &str, op: &Value) -> (Value, u64) {
    let mut body = op.clone();
    body["stream"] = json!(true);
    let (status, mut feed) = Feed::open(
        hub.addr,
        &format!("/api/v1/nodes/{node}/commands"),
        token,
        &body,
    );
    assert_eq!(status, 200);
    let mut bytes = 0;
    loop {
        let e = feed.next();
        match e["type"].as_str() {
            Some("output") => bytes += e["data"].as_str().unwrap().len() as u64,
            Some("result") => return (e["command"].clone(), bytes),
            _ => {}
        }
    }
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(200);
    let dir = std::env::temp_dir().join(format!("twinbay-bench-commands-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "actions:\n  noop:\n    argv: [\"true\"]\n  bulk:\n    argv: [sh, -c, \"yes twinbay-bench-output-line | head -c {BULK_BYTES}\"]\n    output_cap: 16MiB\n"
        ),
    )
    .unwrap();
    let socket = dir.join("podman.sock");
    let _podman = podman_service(&socket);
    let hub = Hub::start(&dir.join("hub"));
    let token = hub.token("operator");
    // The agent logs two lines per command; nobody reads them here, so they
    // go nowhere rather than into a pipe that would fill and stall it.
    let agent = Proc {
        child: Command::new(BIN)
            .args(["agent", "--join", &hub.join(), "--state-dir"])
            .arg(dir.join("agent"))
            .args(["--container-socket", socket.to_str().unwrap()])
            .args(["--policy", policy.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
        name: "agent",
    };
    let (node, _) = hub.wait_twin(&token, "the node", Duration::from_secs(20), |t| {
        t["policy"].is_object()
    });
    let name = format!("tb-bench-cmd-{}", std::process::id());
    let podman = |args: &[&str]| {
        let out = Command::new("podman").args(args).output().unwrap();
        assert!(out.status.success(), "podman {args:?}");
    };
    podman(&["run", "-d", "--name", &name, IMAGE, "sleep", "3600"]);

    println!("commands: {runs} runs each, release build, hub + agent + client on this machine");
    println!(
        "  {:<40} {:>8} {:>8} {:>8} {:>8}",
        "round trip, API call to result (ms)", "p50", "p95", "p99", "max"
    );
    let agent_status = json!({"op": "lifecycle", "target": {"kind": "agent"}, "verb": "status"});
    let noop = json!({"op": "action", "name": "noop"});
    let container_status =
        json!({"op": "lifecycle", "target": {"kind": "container", "name": name}, "verb": "status"});
    // Warm up: connections, the engine API.
    for op in [&agent_status, &noop, &container_status] {
        run(&hub, &node, &token, op);
    }
    let cpu_before = cpu_secs(&agent.pid());
    for (label, op) in [
        ("status of the agent (no process)", &agent_status),
        ("action `true` (fork + exec)", &noop),
        ("status of a container (Engine API)", &container_status),
    ] {
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            let (result, _) = run(&hub, &node, &token, op);
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(result["status"], "ok", "{result}");
        }
        percentiles(label, times);
    }
    let agent_cpu_ms = (cpu_secs(&agent.pid()) - cpu_before) * 1000.0 / (3 * runs) as f64;
    let mut local = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        assert!(Command::new("true").status().unwrap().success());
        local.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    percentiles("baseline: `true` run locally", local);
    let execs = runs.min(50);
    let mut exec = Vec::with_capacity(execs);
    for _ in 0..execs {
        let t = Instant::now();
        podman(&["exec", &name, "true"]);
        exec.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    percentiles("baseline: `podman exec NAME true`", exec);
    println!("  agent CPU per command: {agent_cpu_ms:.2} ms");

    // Throughput: 16 MB of output from the host to the client.
    let rss_before = status_kib(&agent.pid(), "VmRSS:");
    let cpu_before = cpu_secs(&agent.pid());
    let t = Instant::now();
    let (result, bytes) = run(
        &hub,
        &node,
        &token,
        &json!({"op": "action", "name": "bulk"}),
    );
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(bytes, BULK_BYTES);
    let agent_cpu = cpu_secs(&agent.pid()) - cpu_before;
    let t = Instant::now();
    assert!(
        Command::new("sh")
            .args([
                "-c",
                &format!("yes twinbay-bench-output-line | head -c {BULK_BYTES} > /dev/null")
            ])
            .status()
            .unwrap()
            .success()
    );
    let local_secs = t.elapsed().as_secs_f64();
    println!(
        "  output to the client: {:.1} MB in {secs:.2} s = {:.1} MB/s (locally to /dev/null: {local_secs:.2} s); agent CPU {agent_cpu:.2} s",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / secs
    );
    println!(
        "  agent RSS: {} KiB before, {} KiB after, peak {} KiB",
        rss_before,
        status_kib(&agent.pid(), "VmRSS:"),
        status_kib(&agent.pid(), "VmHWM:")
    );
    podman(&["rm", "-f", "-t", "0", &name]);
    let _ = std::fs::remove_dir_all(&dir);
}
