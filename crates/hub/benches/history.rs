//! History write throughput and range-query latency on real SQLite.
//!
//! One node, a day of 5 s samples of a realistic host (~40 series), written
//! through the store as the writer does, rolled up, then queried the ways the
//! UI will. Prints numbers; asserts nothing.

use std::time::{Duration, Instant};

use twinbay_hub::history::series::flatten;
use twinbay_hub::store::{PointWrite, Store, now_ms};
use twinbay_proto::model::{DiskSample, NetSample, Sample};

const STEP_MS: i64 = 5_000;
const SAMPLES: i64 = 24 * 3600 * 1000 / STEP_MS;

fn sample(ts_ms: i64, i: i64) -> Sample {
    let wave = |p: i64| ((i % p) as f64 / p as f64) * 100.0;
    Sample {
        ts_ms,
        cpu_pct: wave(97) as f32,
        load1: wave(13) as f32 / 10.0,
        mem_total: 16 << 30,
        mem_used: (8 << 30) + (i as u64 % 1000) * 1_000_000,
        cores: (0..8).map(|c| wave(31 + c) as f32).collect(),
        disks: ["/", "/srv"]
            .iter()
            .map(|m| DiskSample {
                mount: m.to_string(),
                total: 1 << 40,
                used: 1 << 39,
                read_bps: wave(7) * 1e4,
                write_bps: wave(11) * 1e4,
            })
            .collect(),
        nets: ["eth0", "wg0"]
            .iter()
            .map(|n| NetSample {
                iface: n.to_string(),
                rx_bps: wave(17) * 1e5,
                tx_bps: wave(19) * 1e5,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[tokio::main]
async fn main() {
    let dir = std::env::temp_dir().join(format!("twinbay-bench-history-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::open(&dir).await.unwrap();
    let end = now_ms();
    let start = end - SAMPLES * STEP_MS;

    let names: Vec<String> = flatten(&sample(0, 0)).into_iter().map(|(n, _)| n).collect();
    let wanted: Vec<(String, String)> = names
        .iter()
        .map(|n| ("n_bench".to_string(), n.clone()))
        .collect();
    let ids: std::collections::HashMap<String, i64> = store
        .series_ids(&wanted)
        .await
        .unwrap()
        .into_iter()
        .map(|((_, name), id)| (name, id))
        .collect();
    let t = Instant::now();
    let mut written = 0usize;
    // Batches as the writer makes them: about a minute of samples at a time.
    for chunk in (0..SAMPLES).collect::<Vec<_>>().chunks(12) {
        let rows: Vec<PointWrite> = chunk
            .iter()
            .flat_map(|i| {
                let ts = start + i * STEP_MS;
                flatten(&sample(ts, *i))
                    .into_iter()
                    .map(move |(name, value)| (name, ts, value))
            })
            .map(|(name, ts, value)| PointWrite {
                series_id: ids[&name],
                ts,
                value,
            })
            .collect();
        written += rows.len();
        store.insert_points(&rows).await.unwrap();
    }
    let write = t.elapsed();

    let t = Instant::now();
    let mut source = None;
    for tier in [60, 900, 3600] {
        store.rollup(tier, source, start, end + 1).await.unwrap();
        source = Some(tier);
    }
    let rollup = t.elapsed();

    let time = |label: &'static str, tier: Option<u32>, span_ms: i64| {
        let store = store.clone();
        async move {
            let mut best = Duration::MAX;
            let mut points = 0;
            for _ in 0..20 {
                let t = Instant::now();
                points = store
                    .series_points("n_bench", "cpu", tier, end - span_ms, end)
                    .await
                    .unwrap()
                    .len();
                best = best.min(t.elapsed());
            }
            println!(
                "  {label:<28} {points:>6} points   {:>8.2} ms",
                best.as_secs_f64() * 1000.0
            );
        }
    };
    println!(
        "history bench: 1 node, {} series, {SAMPLES} samples (24 h at 5 s)",
        names.len()
    );
    println!(
        "  write                        {written} points in {:.2} s = {:.0} points/s",
        write.as_secs_f64(),
        written as f64 / write.as_secs_f64()
    );
    println!(
        "  rollup (1m, 15m, 1h) of 24 h {:.2} s",
        rollup.as_secs_f64()
    );
    println!("  range query, one series (best of 20):");
    time("raw, last 1 h", None, 3_600_000).await;
    time("raw, last 24 h", None, 86_400_000).await;
    time("1m rollup, last 24 h", Some(60), 86_400_000).await;
    time("15m rollup, last 24 h", Some(900), 86_400_000).await;
    println!(
        "  database on disk             {:.1} MiB",
        store.disk_bytes() as f64 / (1 << 20) as f64
    );
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
