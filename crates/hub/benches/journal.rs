//! The twin's past at fleet scale: a day of state journal at churn 2/min
//! for 1,000 simulated hosts, written through the store, then one node
//! rebuilt at random moments the way `GET /nodes/{id}?at=` does. Prints
//! journal bytes per node per day and reconstruction latency; asserts
//! nothing. Knobs: NODES=1000 CHURN_PER_MIN=2 QUERIES=2000 HISTORIES=10.
//!
//! Each host's day comes from the same `Journal::prepare` the recorder
//! uses, on a realistic host (30 containers, 80 units, 20 ports, 12 watched
//! files, mounts and interfaces); HISTORIES distinct days are generated and
//! the nodes take turns with them (distinct node ids, so the table holds
//! NODES × a day of rows).

use std::time::Instant;

use twinbay_hub::journal::{Journal, Row, replay};
use twinbay_hub::store::Store;
use twinbay_proto::model::{
    Container, FileState, HostInfo, Interface, Mount, NodeState, Port, Unit, WatchedFile,
};

const DAY_MS: i64 = 24 * 3600 * 1000;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn hex(rng: &mut Rng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(b"0123456789abcdef"[rng.below(16) as usize]))
        .collect()
}

fn host(rng: &mut Rng, h: usize) -> NodeState {
    let mut s = NodeState {
        host: HostInfo {
            hostname: format!("host-{h}"),
            os: "Debian GNU/Linux 12 (bookworm)".into(),
            kernel: "6.1.0-28-amd64".into(),
            arch: "x86_64".into(),
            agent_version: "0.1.0".into(),
            boot_time: 1_764_000_000,
            cpu_cores: 8,
            labels: [("site".to_string(), "home".to_string())].into(),
        },
        ..Default::default()
    };
    for i in 0..30 {
        let c = Container {
            id: hex(rng, 64),
            name: format!("app{i}-web-1").into(),
            image: format!("ghcr.io/example/app{i}:1.{}", rng.below(9)).into(),
            state: "running".into(),
            ports: vec![format!("0.0.0.0:{}->80/tcp", 8000 + i)],
            labels: [
                ("com.docker.compose.project", format!("app{i}")),
                ("com.docker.compose.service", "web".to_string()),
                (
                    "com.docker.compose.project.config_files",
                    format!("/srv/app{i}/compose.yaml"),
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect(),
            compose_project: Some(format!("app{i}").into()),
            compose_service: Some("web".into()),
            created: Some("2026-11-30T10:00:00Z".into()),
            started_at: Some("2026-11-30T10:00:01Z".into()),
            image_id: Some(hex(rng, 64).into()),
            ..Default::default()
        };
        s.containers.insert(c.id.clone(), c.into());
    }
    for i in 0..80 {
        let u = Unit {
            name: format!("service-{i}.service").into(),
            description: format!("Service number {i}").into(),
            load_state: "loaded".into(),
            active_state: "active".into(),
            sub_state: "running".into(),
            since: Some(1_764_000_000_000),
            main_pid: Some(1000 + i),
            memory_bytes: Some(50 << 20),
            fragment_path: Some(format!("/lib/systemd/system/service-{i}.service").into()),
            ..Default::default()
        };
        s.units.insert(u.name.to_string(), u.into());
    }
    for i in 0..20u16 {
        let p = Port {
            protocol: "tcp".into(),
            address: "0.0.0.0".into(),
            port: 8000 + i,
            process: Some("conmon".into()),
            pid: Some(2000 + u32::from(i)),
        };
        s.ports.insert(format!("tcp/0.0.0.0:{}", p.port), p);
    }
    for m in ["/", "/boot", "/srv", "/var/lib/containers"] {
        s.mounts.insert(
            m.into(),
            Mount {
                path: m.into(),
                device: "/dev/nvme0n1p2".into(),
                fs_type: "ext4".into(),
                error: None,
            },
        );
    }
    for n in ["lo", "eth0", "podman0", "wg0"] {
        s.interfaces.insert(
            n.into(),
            Interface {
                name: n.into(),
                mac: Some("52:54:00:12:34:56".into()),
                up: true,
                speed_mbps: Some(1000),
                ..Default::default()
            },
        );
    }
    for i in 0..12 {
        let f = WatchedFile {
            path: format!("/srv/app{i}/compose.yaml"),
            state: FileState::Present,
            sha256: Some(hex(rng, 64)),
            size: Some(1200),
            mtime_ms: Some(1_764_000_000_000),
            origin: "compose".into(),
            ..Default::default()
        };
        s.files.insert(f.path.clone(), f);
    }
    s
}

/// One change of the kinds a host has: a container stops or starts, is
/// recreated with a new image, a unit fails or recovers, a port closes or
/// opens, a watched file gets a new version.
fn churn(rng: &mut Rng, s: &mut NodeState) {
    match rng.below(10) {
        0..=3 => {
            let key = s
                .containers
                .keys()
                .nth(rng.below(30) as usize)
                .unwrap()
                .clone();
            let c = s.containers.get_mut(&key).unwrap();
            c.state = match c.state.as_str() {
                "running" => "exited".into(),
                _ => "running".into(),
            };
            c.exit_code = (c.state == "exited").then_some(0);
        }
        4 => {
            let key = s
                .containers
                .keys()
                .nth(rng.below(30) as usize)
                .unwrap()
                .clone();
            let mut c = s.containers.remove(&key).unwrap();
            c.id = hex(rng, 64);
            c.image = format!("{}.{}", c.image, rng.below(10)).into();
            c.image_id = Some(hex(rng, 64).into());
            s.containers.insert(c.id.clone(), c);
        }
        5..=7 => {
            let key = s.units.keys().nth(rng.below(80) as usize).unwrap().clone();
            let u = s.units.get_mut(&key).unwrap();
            (u.active_state, u.sub_state) = match u.active_state.as_str() {
                "active" => ("failed".into(), "failed".into()),
                _ => ("active".into(), "running".into()),
            };
        }
        8 => {
            let port = 8000 + rng.below(20) as u16;
            let key = format!("tcp/0.0.0.0:{port}");
            if s.ports.remove(&key).is_none() {
                s.ports.insert(
                    key,
                    Port {
                        protocol: "tcp".into(),
                        address: "0.0.0.0".into(),
                        port,
                        process: Some("conmon".into()),
                        pid: Some(3000),
                    },
                );
            }
        }
        _ => {
            let key = s.files.keys().nth(rng.below(12) as usize).unwrap().clone();
            s.files.get_mut(&key).unwrap().sha256 = Some(hex(rng, 64));
        }
    }
}

/// A day of one host's journal: (ts, checkpoint, body) from `start`.
fn day(h: usize, start: i64, per_min: usize) -> Vec<(i64, bool, Vec<u8>)> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (h as u64 + 1));
    let mut state = host(&mut rng, h);
    let mut journal = Journal::new();
    let step = 60_000 / per_min as i64;
    let mut out = Vec::new();
    let mut ts = start;
    while ts < start + DAY_MS {
        if let Some((row, head)) = journal.prepare("n", ts, state.clone()) {
            out.push((row.ts, row.checkpoint, row.body));
            journal.commit([("n".to_string(), head)]);
        }
        churn(&mut rng, &mut state);
        ts += step;
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let nodes = knob("NODES", 1000);
    let per_min = knob("CHURN_PER_MIN", 2);
    let queries = knob("QUERIES", 2000);
    let histories = knob("HISTORIES", 10).max(1);
    let dir = std::env::temp_dir().join(format!("twinbay-bench-journal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::open(&dir).await.unwrap();
    let start = 1_764_720_000_000;

    let t = Instant::now();
    let days: Vec<_> = (0..histories).map(|h| day(h, start, per_min)).collect();
    let entries: usize = days.iter().map(Vec::len).sum();
    println!(
        "generated {histories} host-days through Journal::prepare: {entries} entries in {:.1} s ({:.0} µs each)",
        t.elapsed().as_secs_f64(),
        t.elapsed().as_secs_f64() * 1e6 / entries as f64
    );

    let t = Instant::now();
    let mut batch: Vec<Row> = Vec::new();
    for n in 0..nodes {
        for (ts, checkpoint, body) in &days[n % histories] {
            batch.push(Row {
                node_id: format!("n_{n:06}"),
                ts: *ts,
                checkpoint: *checkpoint,
                body: body.clone(),
            });
        }
        if batch.len() >= 20_000 || n + 1 == nodes {
            store.insert_journal(&batch).await.unwrap();
            batch.clear();
        }
    }
    let (rows, bytes) = store.journal_size(None).await.unwrap();
    let file = std::fs::metadata(dir.join(twinbay_hub::store::DB_FILE))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "wrote {nodes} nodes × a day at {per_min}/min: {rows} rows in {:.1} s; bodies {:.1} MiB, database file {:.1} MiB",
        t.elapsed().as_secs_f64(),
        bytes as f64 / 1048576.0,
        file as f64 / 1048576.0
    );
    let (one_rows, one_bytes) = store.journal_size(Some("n_000000")).await.unwrap();
    println!(
        "journal per node per day: {one_rows} entries, {:.1} KiB of bodies, {:.1} KiB on disk (file / nodes)",
        one_bytes as f64 / 1024.0,
        file as f64 / nodes as f64 / 1024.0
    );
    let checkpoint = &days[0].iter().find(|r| r.1).unwrap().2;
    let diffs: Vec<usize> = days[0].iter().filter(|r| !r.1).map(|r| r.2.len()).collect();
    println!(
        "a checkpoint: {} B compressed; a diff: {:.0} B on average",
        checkpoint.len(),
        diffs.iter().sum::<usize>() as f64 / diffs.len().max(1) as f64
    );

    let mut rng = Rng(42);
    let mut ms = Vec::with_capacity(queries);
    let mut read_rows = 0;
    for _ in 0..queries {
        let node = format!("n_{:06}", rng.below(nodes as u64));
        let at = start + rng.below(DAY_MS as u64) as i64;
        let t = Instant::now();
        let rows = store.journal_at(&node, at).await.unwrap();
        let (state, _) = replay(&node, &rows).unwrap();
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        read_rows += rows.len();
        std::hint::black_box(state);
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "reconstruction of one node at a random moment ({queries} queries, {:.1} rows each on average): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        read_rows as f64 / queries as f64,
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms[ms.len() - 1]
    );
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
