//! slow-clients: a hub under a slow-headers attack beside a real fleet.
//!
//! For each attack size it starts a real hub and a real `twinbay sim` fleet
//! as separate processes. Then it opens that many connections that send a
//! request line and one more header line every TRICKLE_SECS, never ending
//! the head, spread over ADDRESSES source addresses (127.0.0.2, …), and
//! reopens each one RETRY_MS after the hub closes it. Meanwhile it asks
//! `GET /healthz` from 127.0.0.1 every 100 ms (new connection each time) and
//! polls `GET /api/v1/hub`. It prints, before, during and AFTER_SECS after
//! the attack: `/healthz` p50/p99 and failures, agents connected, failed
//! history writes (the hub's counter and its log), the hub's RSS and open
//! files, and what the attacker saw (held, refused at once, closed later).
//! Run: `bash bench/slow-clients/run.sh`. Knobs (environment):
//! CONNS=1000,10000 ADDRESSES=8 AGENTS=100 BASE_SECS=10 HOLD_SECS=40
//! AFTER_SECS=60 TRICKLE_SECS=5 RETRY_MS=1000 RAMP=2000 (connections opened
//! per second) HUB_ARGS="" (extra `twinbay hub` flags) HUB_BIN=path (another
//! build's binary, e.g. an older one, for the hub) NOFILE=n (run the hub
//! under `prlimit --nofile=n:n`).

#[path = "../tests/e2e/harness.rs"]
mod harness;

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One phase's `/healthz` probes: latencies (ms) of answers, and failures.
#[derive(Debug, Default, Clone)]
struct Probes {
    ms: Vec<f64>,
    failed: usize,
}

impl Probes {
    fn percentile(&self, p: f64) -> f64 {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return f64::NAN;
        }
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    }

    fn show(&self) -> String {
        format!(
            "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} of {} failed",
            self.percentile(0.5),
            self.percentile(0.99),
            self.percentile(1.0),
            self.failed,
            self.ms.len() + self.failed
        )
    }
}

/// What the attacker saw.
#[derive(Debug, Default)]
struct Attack {
    /// Connections open now.
    open: AtomicUsize,
    /// Connections the hub closed within a second of connecting, unanswered.
    refused: AtomicU64,
    /// Connections the hub closed later (the deadline).
    closed_later: AtomicU64,
    /// Longest a connection was held before the hub closed it, in ms.
    longest_ms: AtomicU64,
    /// Connect errors other than a reset.
    errors: AtomicU64,
}

#[derive(Debug, Default)]
struct Row {
    conns: usize,
    addresses: usize,
    held_max: usize,
    refused: u64,
    closed_later: u64,
    longest_s: f64,
    base: Probes,
    during: Probes,
    after: Probes,
    agents: usize,
    connected_min: Option<u64>,
    connected_after: Option<u64>,
    status_failed: usize,
    unproven_max: Option<u64>,
    hist_fail: Option<u64>,
    hist_fail_log: usize,
    accept_failed_log: usize,
    rss_base: f64,
    rss_max: f64,
    rss_after: f64,
    fds_base: usize,
    fds_max: usize,
}

fn main() {
    raise_open_files_limit();
    let sizes: Vec<usize> = std::env::var("CONNS")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut rows = Vec::new();
    for n in sizes {
        println!("\n--- {n} slow connections ---");
        match round(n) {
            Ok(row) => rows.push(row),
            Err(e) => {
                println!("stopped at {n}: {e}");
                break;
            }
        }
        print_table(&rows);
    }
}

/// The attacker needs a socket per connection.
fn raise_open_files_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    );
}

fn opt(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

fn print_table(rows: &[Row]) {
    println!(
        "\n{:>6} {:>5} {:>6} {:>8} {:>7} {:>7} | {:>8} {:>8} {:>5} | {:>8} {:>8} {:>5} | {:>6} {:>6} {:>6} | {:>9} {:>8} {:>6} {:>6} | {:>7} {:>7} {:>7} {:>5} | {:>6} {:>6}",
        "conns",
        "addrs",
        "held",
        "refused",
        "closed",
        "max_s",
        "hz_p99b",
        "hz_p99",
        "hz_f",
        "hz_p99a",
        "hz_maxa",
        "hz_fa",
        "agents",
        "min",
        "after",
        "unproven",
        "hist_f",
        "log_f",
        "acc_f",
        "rss0",
        "rss_max",
        "rss_1m",
        "%",
        "fds0",
        "fdsmax",
    );
    for r in rows {
        println!(
            "{:>6} {:>5} {:>6} {:>8} {:>7} {:>7.1} | {:>8.1} {:>8.1} {:>5} | {:>8.1} {:>8.1} {:>5} | {:>6} {:>6} {:>6} | {:>9} {:>8} {:>6} {:>6} | {:>7.1} {:>7.1} {:>7.1} {:>+5.0} | {:>6} {:>6}",
            r.conns,
            r.addresses,
            r.held_max,
            r.refused,
            r.closed_later,
            r.longest_s,
            r.base.percentile(0.99),
            r.during.percentile(0.99),
            r.during.failed,
            r.after.percentile(0.99),
            r.after.percentile(1.0),
            r.after.failed,
            r.agents,
            opt(r.connected_min),
            opt(r.connected_after),
            opt(r.unproven_max),
            opt(r.hist_fail),
            r.hist_fail_log,
            r.accept_failed_log,
            r.rss_base,
            r.rss_max,
            r.rss_after,
            (r.rss_after / r.rss_base - 1.0) * 100.0,
            r.fds_base,
            r.fds_max,
        );
    }
    println!(
        "(held: attacker connections open at once, max; refused: closed unanswered within 1 s; \
         closed: closed later, max_s the longest; hz_*: /healthz p99 ms before, during (and failures), \
         after; agents: fleet size, fewest connected during, connected after; hist_f: the hub's \
         history_write_failures; log_f: 'writing metric history failed' lines in its log; \
         acc_f: 'accept failed' lines; rss in MiB, % = after vs before)"
    );
}

fn hub_bin() -> PathBuf {
    std::env::var_os("HUB_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(BIN))
}

fn spawn_hub(dir: &Path, addr: SocketAddr) -> Proc {
    let log = File::create(dir.join("hub.log")).unwrap();
    let extra: Vec<String> = std::env::var("HUB_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    let mut cmd = match std::env::var("NOFILE").ok() {
        Some(n) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--nofile={n}:{n}")).arg("--").arg(hub_bin());
            c
        }
        None => Command::new(hub_bin()),
    };
    let child = cmd
        .args(["hub", "--listen", &addr.to_string(), "--data-dir"])
        .arg(dir.join("hub"))
        .args(["--heartbeat", "5s"])
        .args(&extra)
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
    let out = Command::new(hub_bin())
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

fn status(addr: SocketAddr, token: &str) -> Option<Value> {
    let auth = format!("Bearer {token}");
    let (code, body) = http(addr, "GET", "/api/v1/hub", &[("Authorization", &auth)], "").ok()?;
    (code == 200).then(|| serde_json::from_str(&body).ok())?
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn count_lines(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// Probes `/healthz` every 100 ms into the current phase until `stop`.
fn probe(addr: SocketAddr, phases: Arc<Mutex<Vec<Probes>>>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        let ok = http(addr, "GET", "/healthz", &[], "").is_ok_and(|r| r.0 == 200);
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        {
            let mut phases = phases.lock().unwrap();
            let now = phases.last_mut().unwrap();
            if ok {
                now.ms.push(ms);
            } else {
                now.failed += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(100).saturating_sub(start.elapsed()));
    }
}

/// One slow client: connect from `source`, send a request line and then a
/// header line every `trickle`, never ending the head; when the hub closes
/// it, wait `retry` and start over.
async fn trickler(
    hub: SocketAddr,
    source: Ipv4Addr,
    attack: Arc<Attack>,
    trickle: Duration,
    retry: Duration,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        let opened = Instant::now();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((source, 0))).unwrap();
        let held = match socket.connect(hub).await {
            Ok(mut tcp) => {
                attack.open.fetch_add(1, Ordering::Relaxed);
                let held = tokio::select! {
                    _ = stop.cancelled() => None,
                    () = hold(&mut tcp, trickle) => Some(opened.elapsed()),
                };
                attack.open.fetch_sub(1, Ordering::Relaxed);
                held
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(Duration::ZERO),
            Err(_) => {
                attack.errors.fetch_add(1, Ordering::Relaxed);
                None
            }
        };
        match held {
            Some(t) if t < Duration::from_secs(1) => {
                attack.refused.fetch_add(1, Ordering::Relaxed);
            }
            Some(t) => {
                attack.closed_later.fetch_add(1, Ordering::Relaxed);
                attack
                    .longest_ms
                    .fetch_max(t.as_millis() as u64, Ordering::Relaxed);
            }
            None => {}
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(retry) => {}
        }
    }
}

/// Trickles until the hub closes the connection.
async fn hold(tcp: &mut tokio::net::TcpStream, trickle: Duration) {
    if tcp
        .write_all(b"GET / HTTP/1.1\r\nHost: hub\r\n")
        .await
        .is_err()
    {
        return;
    }
    let mut buf = [0u8; 512];
    loop {
        tokio::select! {
            read = tcp.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            _ = tokio::time::sleep(trickle) => {
                if tcp.write_all(b"X-Trickle: 1\r\n").await.is_err() {
                    return;
                }
            }
        }
    }
}

fn round(n: usize) -> Result<Row, String> {
    let addresses: usize = env("ADDRESSES", 8).clamp(1, 250);
    let agents: usize = env("AGENTS", 100);
    let base_secs: u64 = env("BASE_SECS", 10);
    let hold_secs: u64 = env("HOLD_SECS", 40);
    let after_secs: u64 = env("AFTER_SECS", 60);
    let trickle = Duration::from_secs(env("TRICKLE_SECS", 5));
    let retry = Duration::from_millis(env("RETRY_MS", 1000));
    let ramp: usize = env("RAMP", 2000).max(1);

    let dir = temp_dir(&format!("slow-{n}"));
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let hub = spawn_hub(&dir, addr);
    let pid = hub.child.id();
    let join = ctl(&dir, &["join-token", "create", "--ttl", "2h"]);
    let token = ctl(&dir, &["api-token", "create", "--role", "viewer"]);
    let _sim = sim(&join, agents, &[], &dir.join("sim.log"));
    wait_for(&format!("{agents} agents"), Duration::from_secs(60), || {
        status(addr, &token)
            .filter(|s| s["connected"].as_u64() >= Some(agents as u64))
            .map(|_| ())
    });
    println!("{agents} agents connected; settling");
    std::thread::sleep(Duration::from_secs(5));

    let mut row = Row {
        conns: n,
        addresses,
        agents,
        ..Row::default()
    };
    let phases = Arc::new(Mutex::new(vec![Probes::default()]));
    let stop_probe = Arc::new(AtomicBool::new(false));
    let prober = {
        let (phases, stop) = (phases.clone(), stop_probe.clone());
        std::thread::spawn(move || probe(addr, phases, stop))
    };
    std::thread::sleep(Duration::from_secs(base_secs));
    row.rss_base = rss_mib(pid);
    row.fds_base = fds(pid);
    println!(
        "before: RSS {:.1} MiB, {} open files, /healthz {}",
        row.rss_base,
        row.fds_base,
        phases.lock().unwrap()[0].show()
    );

    // The attack, on a runtime of its own (one thread), so the prober and
    // the status polls here are not queued behind it.
    phases.lock().unwrap().push(Probes::default());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let attack = Arc::new(Attack::default());
    let stop = CancellationToken::new();
    {
        let (attack, stop) = (attack.clone(), stop.clone());
        runtime.spawn(async move {
            let batch = (ramp / 20).max(1);
            for i in 0..n {
                if stop.is_cancelled() {
                    return;
                }
                let source = Ipv4Addr::new(127, 0, 0, 2 + (i % addresses) as u8);
                tokio::spawn(trickler(
                    addr,
                    source,
                    attack.clone(),
                    trickle,
                    retry,
                    stop.clone(),
                ));
                if (i + 1) % batch == 0 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
    }
    let start = Instant::now();
    let mut last_print = Instant::now();
    while start.elapsed() < Duration::from_secs(hold_secs) {
        std::thread::sleep(Duration::from_secs(1));
        row.held_max = row.held_max.max(attack.open.load(Ordering::Relaxed));
        row.rss_max = row.rss_max.max(rss_mib(pid));
        row.fds_max = row.fds_max.max(fds(pid));
        match status(addr, &token) {
            Some(s) => {
                let connected = s["connected"].as_u64().unwrap_or(0);
                row.connected_min = Some(row.connected_min.map_or(connected, |m| m.min(connected)));
                if let Some(u) = s["connections_unproven"].as_u64() {
                    row.unproven_max = Some(row.unproven_max.unwrap_or(0).max(u));
                }
            }
            None => row.status_failed += 1,
        }
        if last_print.elapsed() >= Duration::from_secs(10) {
            last_print = Instant::now();
            println!(
                "  {:>3} s: attacker holds {}, refused {}, closed later {}; hub RSS {:.1} MiB, {} files; agents ≥ {}",
                start.elapsed().as_secs(),
                attack.open.load(Ordering::Relaxed),
                attack.refused.load(Ordering::Relaxed),
                attack.closed_later.load(Ordering::Relaxed),
                rss_mib(pid),
                fds(pid),
                opt(row.connected_min)
            );
        }
    }
    stop.cancel();
    runtime.shutdown_timeout(Duration::from_secs(5));
    row.refused = attack.refused.load(Ordering::Relaxed);
    row.closed_later = attack.closed_later.load(Ordering::Relaxed);
    row.longest_s = attack.longest_ms.load(Ordering::Relaxed) as f64 / 1000.0;
    println!(
        "during: RSS max {:.1} MiB, {} open files max; attacker held {} at most, {} refused, {} closed later (longest {:.1} s), {} connect errors; /healthz {}; {} status polls failed",
        row.rss_max,
        row.fds_max,
        row.held_max,
        row.refused,
        row.closed_later,
        row.longest_s,
        attack.errors.load(Ordering::Relaxed),
        phases.lock().unwrap()[1].show(),
        row.status_failed
    );

    phases.lock().unwrap().push(Probes::default());
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(after_secs) {
        std::thread::sleep(Duration::from_secs(1));
        if let Some(s) = status(addr, &token) {
            let connected = s["connected"].as_u64().unwrap_or(0);
            row.connected_min = Some(row.connected_min.map_or(connected, |m| m.min(connected)));
        }
    }
    row.rss_after = rss_mib(pid);
    stop_probe.store(true, Ordering::Relaxed);
    prober.join().unwrap();
    let s = status(addr, &token).ok_or("no hub status after the attack")?;
    row.connected_after = s["connected"].as_u64();
    row.hist_fail = s["history_write_failures"].as_u64();
    let log = dir.join("hub.log");
    row.hist_fail_log = count_lines(&log, "writing metric history failed");
    row.accept_failed_log = count_lines(&log, "accept failed");
    let phases = phases.lock().unwrap().clone();
    (row.base, row.during, row.after) = (phases[0].clone(), phases[1].clone(), phases[2].clone());
    println!(
        "{after_secs} s after: RSS {:.1} MiB ({:+.0} % of before), {} open files; /healthz {}; agents connected {}; history write failures {} (log lines {}); 'accept failed' log lines {}",
        row.rss_after,
        (row.rss_after / row.rss_base - 1.0) * 100.0,
        fds(pid),
        row.after.show(),
        opt(row.connected_after),
        opt(row.hist_fail),
        row.hist_fail_log,
        row.accept_failed_log
    );
    drop(hub);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(row)
}
