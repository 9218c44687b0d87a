//! Metric history, before and after issue #22, in one run on real SQLite.
//!
//! "before" is the previous layout (a row per point in `points`, a row per
//! bucket in `rollups`, migrations up to 0018) written, rolled up and read
//! with that version's SQL, kept here; "after" is this version's store
//! (rows per sample, chunks per window). Both get the same samples:
//!
//! - one node, 7 days of 5 s samples of a realistic host (~40 series, with
//!   millisecond jitter and unrounded rates, as real agents send them),
//!   written in the writer's transaction sizes, maintained as the hub does
//!   (rolled up every 30 s before; sealed and rolled up every 10 min after),
//!   then queried the ways the UI does; bytes on disk per node per day;
//! - a fleet slice: 10,000 nodes, one sample each every 5 s (2,000
//!   samples/s), six rounds written as the writer batches them;
//! - moving the "before" database forward (the migration at start).
//!
//! Prints numbers; asserts only that both answer the same. Run:
//! `cargo bench -p twinbay-hub --bench history`.

use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use twinbay_hub::history::series::{Resolution, Retention, flatten};
use twinbay_hub::store::{Dictionary, SampleWrite, Store, now_ms};
use twinbay_proto::model::{DiskSample, NetSample, Sample, TempSample};

const STEP_MS: i64 = 5_000;
const DAYS: i64 = 7;
const SAMPLES: i64 = DAYS * 24 * 3600 * 1000 / STEP_MS;
const FLEET: usize = 10_000;
const FLEET_ROUNDS: i64 = 6;

/// A tiny deterministic generator (xorshift), so both layouts get the same.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A host that drifts the way real ones do.
struct Host {
    noise: Noise,
    cpu: f64,
    mem: u64,
    disk: [u64; 2],
}

impl Host {
    fn new(seed: u64) -> Host {
        Host {
            noise: Noise(seed | 1),
            cpu: 20.0,
            mem: 8 << 30,
            disk: [200 << 30, 700 << 30],
        }
    }

    fn sample(&mut self, ts_ms: i64) -> Sample {
        let n = &mut self.noise;
        self.cpu = (self.cpu + (n.next() - 0.5) * 8.0).clamp(1.0, 99.0);
        self.mem = (self.mem as i64 + ((n.next() - 0.5) * 64.0) as i64 * 4096) as u64;
        let round1 = |v: f64| ((v * 10.0).round() / 10.0) as f32;
        let cpu = self.cpu;
        let secs = 5.0 + (n.next() - 0.5) * 0.01;
        let cores: Vec<f32> = (0..8)
            .map(|_| round1((cpu * (0.5 + n.next())).min(100.0)))
            .collect();
        let mut rate = |scale: f64| (n.next() * scale * secs).round() / secs;
        let disks = ["/", "/srv"]
            .iter()
            .zip(self.disk.iter_mut())
            .map(|(m, used)| {
                *used += (rate(1.0) * 1e5) as u64 & !4095;
                DiskSample {
                    mount: m.to_string(),
                    total: 1 << 40,
                    used: *used,
                    read_bps: rate(4e5),
                    write_bps: rate(8e5),
                }
            })
            .collect();
        let nets = ["eth0", "wg0"]
            .iter()
            .map(|i| NetSample {
                iface: i.to_string(),
                rx_bps: rate(1.25e6),
                tx_bps: rate(4e5),
                rx_errors: 3,
                ..Default::default()
            })
            .collect();
        Sample {
            ts_ms,
            cpu_pct: round1(cpu),
            load1: round1(cpu / 12.0 * (0.8 + n.next() * 0.4)),
            load5: round1(cpu / 12.0),
            load15: round1(cpu / 13.0),
            mem_total: 16 << 30,
            mem_used: self.mem,
            mem_available: (16 << 30) - self.mem,
            swap_total: 2 << 30,
            swap_used: 1 << 24,
            cores,
            cpu_mhz: Some(2400.0 + n.next() as f32 * 1200.0),
            disks,
            nets,
            temps: vec![TempSample {
                sensor: "coretemp/Package id 0".into(),
                celsius: round1(35.0 + cpu * 0.4 + n.next() * 3.0),
            }],
            ..Default::default()
        }
    }
}

/// The 5 s clock of an agent: a few milliseconds of jitter on each tick.
fn tick(start: i64, i: i64) -> i64 {
    start + i * STEP_MS + (i * 7919 % 11)
}

// ---- before: the previous layout and its SQL ----------------------------------

async fn open_old(dir: &Path) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(dir.join(twinbay_hub::store::DB_FILE))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .auto_vacuum(SqliteAutoVacuum::Incremental);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .unwrap();
    sqlx::migrate!("../store/migrations")
        .run_to(18, &pool)
        .await
        .unwrap();
    pool
}

async fn old_series_ids(
    pool: &SqlitePool,
    wanted: &[(String, String)],
) -> std::collections::HashMap<(String, String), i64> {
    let mut tx = pool.begin().await.unwrap();
    for chunk in wanted.chunks(400) {
        let mut insert = sqlx::QueryBuilder::new("INSERT OR IGNORE INTO series (node_id, name) ");
        insert.push_values(chunk, |mut row, (node, name)| {
            row.push_bind(node).push_bind(name);
        });
        insert.build().execute(&mut *tx).await.unwrap();
    }
    let rows: Vec<(i64, String, String)> = sqlx::query_as("SELECT id, node_id, name FROM series")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    rows.into_iter().map(|(id, n, s)| ((n, s), id)).collect()
}

/// The previous writer: points sorted by key, 500 per statement, one transaction.
async fn old_insert(pool: &SqlitePool, mut rows: Vec<(i64, i64, f64)>) {
    rows.sort_unstable_by_key(|r| (r.0, r.1));
    let mut tx = pool.begin().await.unwrap();
    for chunk in rows.chunks(500) {
        let mut insert =
            sqlx::QueryBuilder::new("INSERT OR REPLACE INTO points (series_id, ts, value) ");
        insert.push_values(chunk, |mut row, p| {
            row.push_bind(p.0).push_bind(p.1).push_bind(p.2);
        });
        insert.build().execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}

async fn old_rollup(pool: &SqlitePool, from: i64, to: i64) {
    let mut source = None;
    for tier in [60u32, 900, 3600] {
        let width = i64::from(tier) * 1000;
        let from = from.div_euclid(width) * width;
        match source {
            None => sqlx::query(
                "INSERT OR REPLACE INTO rollups (tier, series_id, ts, min, max, sum, count)
                 SELECT ?1, series_id, (ts / ?2) * ?2, MIN(value), MAX(value), SUM(value), COUNT(*)
                 FROM points WHERE ts >= ?3 AND ts < ?4 GROUP BY series_id, ts / ?2",
            ),
            Some(_) => sqlx::query(
                "INSERT OR REPLACE INTO rollups (tier, series_id, ts, min, max, sum, count)
                 SELECT ?1, series_id, (ts / ?2) * ?2, MIN(min), MAX(max), SUM(sum), SUM(count)
                 FROM rollups WHERE tier = ?5 AND ts >= ?3 AND ts < ?4 GROUP BY series_id, ts / ?2",
            ),
        }
        .bind(tier)
        .bind(width)
        .bind(from)
        .bind(to)
        .bind(source.unwrap_or(0))
        .execute(pool)
        .await
        .unwrap();
        source = Some(tier);
    }
}

async fn old_query(
    pool: &SqlitePool,
    node: &str,
    name: &str,
    tier: Option<u32>,
    from: i64,
    to: i64,
) -> Vec<[f64; 4]> {
    let rows: Vec<(i64, f64, f64, f64)> = match tier {
        None => sqlx::query_as(
            "SELECT p.ts, p.value, p.value, p.value FROM points p JOIN series s ON s.id = p.series_id
             WHERE s.node_id = ? AND s.name = ? AND p.ts >= ? AND p.ts <= ? ORDER BY p.ts",
        )
        .bind(node)
        .bind(name)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await
        .unwrap(),
        Some(tier) => sqlx::query_as(
            "SELECT r.ts, r.min, r.sum / r.count, r.max FROM rollups r JOIN series s ON s.id = r.series_id
             WHERE r.tier = ? AND s.node_id = ? AND s.name = ? AND r.ts >= ? AND r.ts <= ? ORDER BY r.ts",
        )
        .bind(tier)
        .bind(node)
        .bind(name)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await
        .unwrap(),
    };
    rows.into_iter()
        .map(|(ts, a, b, c)| [ts as f64, a, b, c])
        .collect()
}

fn disk_bytes(dir: &Path) -> u64 {
    ["twinbay.db", "twinbay.db-wal", "twinbay.db-shm"]
        .iter()
        .map(|f| std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0))
        .sum()
}

async fn compact(pool: &SqlitePool) {
    sqlx::query("PRAGMA incremental_vacuum")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(pool)
        .await
        .unwrap();
}

// ---- the run ----------------------------------------------------------------

struct Side {
    write: Duration,
    maintain: Duration,
    bytes: u64,
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn mib(b: f64) -> String {
    format!("{:.2} MiB", b / (1 << 20) as f64)
}

fn rate(n: f64, d: Duration) -> String {
    format!("{:.0}/s", n / d.as_secs_f64())
}

/// Best of `n` runs of `f`.
async fn best<F, Fut, T>(n: usize, mut f: F) -> (Duration, T)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..n {
        let t = Instant::now();
        let v = f().await;
        best = best.min(t.elapsed());
        out = Some(v);
    }
    (best, out.expect("ran at least once"))
}

#[tokio::main]
async fn main() {
    let base = std::env::temp_dir().join(format!("twinbay-bench-history-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (old_dir, new_dir, fleet_old, fleet_new) = (
        base.join("before"),
        base.join("after"),
        base.join("fleet-before"),
        base.join("fleet-after"),
    );
    for d in [&old_dir, &new_dir, &fleet_old, &fleet_new] {
        std::fs::create_dir_all(d).unwrap();
    }
    let end = (now_ms() / 3_600_000) * 3_600_000;
    let start = end - SAMPLES * STEP_MS;
    let node = "n_bench";
    let series = flatten(&Host::new(1).sample(0)).len();
    println!(
        "history bench: 1 node, {series} series, {SAMPLES} samples ({DAYS} days at 5 s), before and after #22\n"
    );

    // ---- before: the previous layout
    let old = open_old(&old_dir).await;
    let names: Vec<(String, String)> = flatten(&Host::new(1).sample(0))
        .into_iter()
        .map(|(n, _)| (node.to_string(), n))
        .collect();
    let ids = old_series_ids(&old, &names).await;
    let mut host = Host::new(7);
    let mut written_points = 0usize;
    let (mut write, mut maintain) = (Duration::ZERO, Duration::ZERO);
    // The previous writer took ~5,000 points (~130 samples) per transaction;
    // its maintenance rolled up what changed every 30 s (6 samples).
    let mut i = 0;
    while i < SAMPLES {
        let mut rows = Vec::new();
        let first = tick(start, i);
        for _ in 0..6 {
            if i >= SAMPLES {
                break;
            }
            let ts = tick(start, i);
            for (name, v) in flatten(&host.sample(ts)) {
                rows.push((ids[&(node.to_string(), name)], ts, v));
            }
            i += 1;
        }
        written_points += rows.len();
        let t = Instant::now();
        old_insert(&old, rows).await;
        write += t.elapsed();
        let t = Instant::now();
        old_rollup(&old, first, tick(start, i) + 1).await;
        maintain += t.elapsed();
    }
    compact(&old).await;
    let before = Side {
        write,
        maintain,
        bytes: disk_bytes(&old_dir),
    };

    // ---- after: this version's store, maintained every 10 min of samples
    let store = Store::open(&new_dir).await.unwrap();
    let mut dict = Dictionary::default();
    let mut host = Host::new(7);
    let (mut write, mut maintain) = (Duration::ZERO, Duration::ZERO);
    let mut i = 0;
    let mut key = None;
    while i < SAMPLES {
        let mut batch = Vec::new();
        for _ in 0..120 {
            if i >= SAMPLES {
                break;
            }
            let ts = tick(start, i);
            batch.push(SampleWrite {
                node: node.into(),
                ts,
                values: flatten(&host.sample(ts)),
            });
            i += 1;
        }
        let t = Instant::now();
        for b in batch.chunks(6) {
            let touched = store.append_samples(&mut dict, b).await.unwrap();
            key = key.or(touched.keys().next().copied());
        }
        write += t.elapsed();
        let now = tick(start, i) + 61_000;
        let t = Instant::now();
        if let Some(key) = key {
            store
                .seal_history(&[key], (now - 60_000) / 600_000 * 600_000)
                .await
                .unwrap();
        }
        store.roll_up_history(now).await.unwrap();
        maintain += t.elapsed();
    }
    store.compact().await.unwrap();
    let after = Side {
        write,
        maintain,
        bytes: store.disk_bytes(),
    };

    println!("{:<44} {:>16} {:>16}", "", "before", "after");
    let row = |label: &str, b: String, a: String| println!("{label:<44} {b:>16} {a:>16}");
    row(
        "write, samples/s (1 node, writer batches)",
        rate(SAMPLES as f64, before.write),
        rate(SAMPLES as f64, after.write),
    );
    row(
        "write, points/s",
        rate(written_points as f64, before.write),
        rate(written_points as f64, after.write),
    );
    row(
        "maintenance for 7 days (roll-ups / seal+roll)",
        format!("{:.2} s", before.maintain.as_secs_f64()),
        format!("{:.2} s", after.maintain.as_secs_f64()),
    );
    row(
        "bytes on disk per node per day",
        mib(before.bytes as f64 / DAYS as f64),
        mib(after.bytes as f64 / DAYS as f64),
    );
    row(
        "bytes per point (all tiers)",
        format!("{:.2}", before.bytes as f64 / written_points as f64),
        format!("{:.2}", after.bytes as f64 / written_points as f64),
    );

    // ---- queries, as the API answers them (resolution auto, 1500 points)
    let retention = Retention::default();
    let ui: Vec<String> = [
        "cpu",
        "mem_used",
        "load1",
        "net_rx_bps{eth0}",
        "net_tx_bps{eth0}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    println!("\nrange queries (best of 20), one series and the host page's five:");
    for (label, span, age) in [
        ("last 1 h", 3_600_000i64, 3_600_000i64),
        ("last 24 h", 86_400_000, 86_400_000),
        ("last 7 d", 7 * 86_400_000, 7 * 86_400_000),
        ("1 h, 3 days ago", 3_600_000, 3 * 86_400_000),
    ] {
        let to = end - age + span;
        let from = to - span;
        let d = |v: i64| Duration::from_millis(v as u64);
        // Raw retention is what it is by default, but the data was never trimmed.
        let res = Resolution::auto(d(span), d(age), d(STEP_MS), &retention, 1500);
        let tier = match res {
            Resolution::Raw => None,
            Resolution::Tier(t) => Some(t),
        };
        let (old_one, old_pts) = best(20, || old_query(&old, node, "cpu", tier, from, to)).await;
        let (new_one, new_pts) =
            best(20, || store.series_points(node, "cpu", tier, from, to)).await;
        let new_pts = new_pts.unwrap();
        // Same points; an average may differ in its last bit (SQLite sums
        // with compensation).
        assert_eq!(old_pts.len(), new_pts.len(), "{label}: as many points");
        for (o, n) in old_pts.iter().zip(&new_pts) {
            assert_eq!([o[0], o[1], o[3]], [n[0], n[1], n[3]], "{label}");
            assert!((o[2] - n[2]).abs() <= o[2].abs() * 1e-12, "{label}");
        }
        let (old_five, _) = best(20, || async {
            for name in &ui {
                old_query(&old, node, name, tier, from, to).await;
            }
        })
        .await;
        let (new_five, _) = best(20, || store.history_points(node, &ui, tier, from, to)).await;
        row(
            &format!("  {label} ({}, {} points)", res.name(), new_pts.len()),
            ms(old_one),
            ms(new_one),
        );
        row("    five series", ms(old_five), ms(new_five));
    }
    println!("\nafter, by level:");
    for (level, blobs, bytes) in store.history_usage().await.unwrap() {
        let what = match level {
            -1 => "unsealed rows".to_string(),
            0 => "raw chunks (10 min)".to_string(),
            t => format!("{t} s buckets"),
        };
        println!(
            "  {what:<22} {blobs:>7} blobs {:>12}  {:>10} per day",
            mib(bytes as f64),
            mib(bytes as f64 / DAYS as f64)
        );
    }
    store.close().await;
    old.close().await;

    // ---- moving the "before" database forward
    let t = Instant::now();
    let moved = Store::open(&old_dir).await.unwrap();
    let took = t.elapsed();
    println!(
        "\nmigration: {} points and their roll-ups moved in {:.2} s ({} points/s)",
        written_points,
        took.as_secs_f64(),
        rate(written_points as f64, took)
    );
    moved.compact().await.unwrap();
    println!(
        "  database after the move: {}",
        mib(moved.disk_bytes() as f64)
    );
    moved.close().await;

    // ---- a fleet slice
    println!(
        "\nfleet: {FLEET} nodes, one sample each per 5 s (2,000 samples/s), {FLEET_ROUNDS} rounds"
    );
    let old = open_old(&fleet_old).await;
    let store = Store::open(&fleet_new).await.unwrap();
    let mut hosts: Vec<Host> = (0..FLEET).map(|n| Host::new(n as u64 + 11)).collect();
    let nodes: Vec<String> = (0..FLEET).map(|n| format!("n{n:05}")).collect();
    let wanted: Vec<(String, String)> = nodes
        .iter()
        .flat_map(|n| names.iter().map(move |(_, s)| (n.clone(), s.clone())))
        .collect();
    let ids = old_series_ids(&old, &wanted).await;
    let mut dict = Dictionary::default();
    let fleet_start = end - 3_600_000;
    // Round 0 (untimed) names every node and series in both.
    let (mut old_write, mut new_write, mut points) = (Duration::ZERO, Duration::ZERO, 0usize);
    for round in 0..=FLEET_ROUNDS {
        let samples: Vec<SampleWrite> = hosts
            .iter_mut()
            .zip(&nodes)
            .enumerate()
            .map(|(n, (h, node))| {
                let ts = fleet_start + round * STEP_MS + (n as i64 % 5000);
                SampleWrite {
                    node: node.clone(),
                    ts,
                    values: flatten(&h.sample(ts)),
                }
            })
            .collect();
        // The previous writer: ~5,000 points per transaction.
        let t = Instant::now();
        let mut rows = Vec::new();
        for s in &samples {
            for (name, v) in &s.values {
                rows.push((ids[&(s.node.clone(), name.clone())], s.ts, *v));
            }
            if rows.len() >= 5_000 {
                old_insert(&old, std::mem::take(&mut rows)).await;
            }
        }
        old_insert(&old, rows).await;
        let old_took = t.elapsed();
        let t = Instant::now();
        for batch in samples.chunks(1_000) {
            store.append_samples(&mut dict, batch).await.unwrap();
        }
        let new_took = t.elapsed();
        if round > 0 {
            old_write += old_took;
            new_write += new_took;
            points += samples.iter().map(|s| s.values.len()).sum::<usize>();
        }
    }
    let samples = (FLEET as i64 * FLEET_ROUNDS) as f64;
    println!("{:<44} {:>16} {:>16}", "", "before", "after");
    row(
        "write, samples/s",
        rate(samples, old_write),
        rate(samples, new_write),
    );
    row(
        "write, points/s",
        rate(points as f64, old_write),
        rate(points as f64, new_write),
    );
    row(
        "share of one core at 2,000 samples/s",
        format!(
            "{:.0} %",
            2000.0 / (samples / old_write.as_secs_f64()) * 100.0
        ),
        format!(
            "{:.0} %",
            2000.0 / (samples / new_write.as_secs_f64()) * 100.0
        ),
    );
    // Sealing the fleet's first closed window, as maintenance does.
    let keys: Vec<i64> = store
        .history_pending()
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let t = Instant::now();
    for group in keys.chunks(twinbay_hub::store::HISTORY_SEAL_PER_TX) {
        store.seal_history(group, end).await.unwrap();
    }
    let sealed = t.elapsed();
    println!(
        "  sealing {} samples of {FLEET} nodes into chunks: {:.2} s ({})",
        samples as i64 + FLEET as i64,
        sealed.as_secs_f64(),
        rate(samples + FLEET as f64, sealed)
    );
    store.close().await;
    old.close().await;
    let _ = std::fs::remove_dir_all(&base);
}
