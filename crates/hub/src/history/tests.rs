use std::path::PathBuf;

use super::codec::Columns;
use super::*;
use crate::history::rollup::{RAW, aggregate, bucket, floor};

mod legacy;

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("twinbay-history-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn maintenance(store: &Store, config: HistoryConfig) -> Maintenance {
    Maintenance {
        store: store.clone(),
        config,
        pending: Pending::default(),
        leadership: None,
    }
}

/// Seals and rolls up as the maintenance task does at `now`, starting from
/// what the store holds (as after a restart).
async fn maintain(store: &Store, now: i64) {
    let m = maintenance(store, HistoryConfig::default());
    let pending = store.history_pending().await.unwrap();
    lock(&m.pending).extend(pending);
    m.roll_up(now).await.unwrap();
}

/// An hour boundary three hours ago: the tests' clock starts there.
fn t0() -> i64 {
    floor(now_ms(), 3_600_000) - 3 * 3_600_000
}

/// A sample of a node: a gauge, a whole-number counter and a jittery rate.
fn values(i: i64) -> Vec<(String, f64)> {
    vec![
        ("cpu".into(), ((i * 37) % 1000) as f64 / 10.0),
        (
            "mem_used".into(),
            (8i64 << 30) as f64 + (i % 17) as f64 * 4096.0,
        ),
        (
            "net_rx_bps{eth0}".into(),
            1e5 + (i as f64 * 0.37).sin() * 5e4,
        ),
    ]
}

async fn write(store: &Store, dict: &mut Dictionary, node: &str, times: &[(i64, i64)]) {
    let samples: Vec<SampleWrite> = times
        .iter()
        .map(|(ts, i)| SampleWrite {
            node: node.into(),
            ts: *ts,
            values: values(*i),
        })
        .collect();
    for batch in samples.chunks(100) {
        store.append_samples(dict, batch).await.unwrap();
    }
}

/// What every query must answer for `name`, from the samples themselves.
fn expected(times: &[(i64, i64)], name: &str, level: u32) -> Vec<[f64; 4]> {
    let mut raw: Vec<(i64, Columns)> = times
        .iter()
        .map(|(ts, i)| {
            let v = values(*i).into_iter().find(|(n, _)| n == name).unwrap().1;
            (*ts, [v, 0.0, 0.0, 0.0])
        })
        .collect();
    raw.sort_by_key(|p| p.0);
    if level == RAW {
        return raw.iter().map(|(t, c)| bucket(*t, *c, true)).collect();
    }
    let mut points = aggregate(&raw, true, 60_000);
    for tier in [900, 3600] {
        if tier > level {
            break;
        }
        points = aggregate(&points, false, i64::from(tier) * 1000);
    }
    points.iter().map(|(t, c)| bucket(*t, *c, false)).collect()
}

async fn answers(store: &Store, node: &str, from: i64, to: i64) -> Vec<Vec<[f64; 4]>> {
    let mut out = Vec::new();
    for name in ["cpu", "mem_used", "net_rx_bps{eth0}"] {
        for tier in [None, Some(60), Some(900), Some(3600)] {
            out.push(
                store
                    .series_points(node, name, tier, from, to)
                    .await
                    .unwrap(),
            );
        }
    }
    out
}

fn expected_all(times: &[(i64, i64)], from: i64, to: i64) -> Vec<Vec<[f64; 4]>> {
    let mut out = Vec::new();
    for name in ["cpu", "mem_used", "net_rx_bps{eth0}"] {
        for level in [RAW, 60, 900, 3600] {
            out.push(
                expected(times, name, level)
                    .into_iter()
                    .filter(|b| (from..=to).contains(&(b[0] as i64)))
                    .collect(),
            );
        }
    }
    out
}

#[tokio::test]
async fn samples_flow_from_record_to_query_and_roll_up() {
    let dir = tempdir("flow");
    let store = Store::open(&dir).await.unwrap();
    let stop = CancellationToken::new();
    let config = HistoryConfig {
        rollup_every: Duration::from_millis(100),
        ..Default::default()
    };
    let (history, task) = History::spawn(store.clone(), config, None, stop.clone());
    let now = now_ms();
    let samples: Vec<Sample> = (0..30)
        .map(|i| Sample {
            ts_ms: now - 30_000 + i * 1000,
            cpu_pct: i as f32,
            mem_used: 1000 + i as u64,
            ..Default::default()
        })
        .collect();
    history.record("n1", samples);
    let names = vec!["cpu".to_string(), "mem_used".to_string()];
    let mut raw = Vec::new();
    for _ in 0..50 {
        raw = history
            .query(&store, "n1", &names, Resolution::Raw, now - 60_000, now)
            .await
            .unwrap();
        if raw[0].1.len() == 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(raw[0].1.len(), 30, "all raw cpu points");
    assert_eq!(raw[1].1[29][1], 1029.0);
    let rolled = history
        .query(
            &store,
            "n1",
            &names,
            Resolution::Tier(60),
            now - 120_000,
            now,
        )
        .await
        .unwrap();
    let buckets = &rolled[0].1;
    assert!(!buckets.is_empty());
    for [_, min, avg, max] in buckets {
        assert!(min <= avg && avg <= max, "{min} {avg} {max}");
    }
    let counted: usize = buckets.len();
    assert!(counted <= 2, "30 s of samples span one or two minutes");
    assert_eq!(history.stats.dropped_batches.load(Ordering::Relaxed), 0);
    assert_eq!(history.stats.samples_written.load(Ordering::Relaxed), 30);
    stop.cancel();
    drop(history);
    task.await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn answers_do_not_depend_on_when_windows_were_sealed_and_rolled_up() {
    let dir = tempdir("sealing");
    let store = Store::open(&dir).await.unwrap();
    let t0 = t0();
    let mut dict = Dictionary::default();
    // Three hours of 5 s samples for two nodes (the second from 40 min in).
    let a: Vec<(i64, i64)> = (0..2160).map(|i| (t0 + i * 5000, i)).collect();
    let b: Vec<(i64, i64)> = (480..2160).map(|i| (t0 + i * 5000 + 7, i * 3)).collect();
    write(&store, &mut dict, "a", &a).await;
    write(&store, &mut dict, "b", &b).await;
    let (from, to) = (t0 - 3_600_000, t0 + 4 * 3_600_000);
    let want_a = expected_all(&a, from, to);
    let want_b = expected_all(&b, from, to);
    // All still rows: every tier is computed when asked.
    assert_eq!(answers(&store, "a", from, to).await, want_a);
    assert_eq!(answers(&store, "b", from, to).await, want_b);

    // Now as if the hub had run along: windows sealed and tiers rolled up
    // step by step, checked at each step.
    for minutes in [11, 62, 95, 181, 200] {
        maintain(&store, t0 + minutes * 60_000).await;
        assert_eq!(
            answers(&store, "a", from, to).await,
            want_a,
            "after {minutes} min"
        );
        assert_eq!(answers(&store, "b", from, to).await, want_b);
    }
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM history_rows")
        .fetch_one(store.history_pool())
        .await
        .unwrap();
    assert_eq!(rows, 0, "every closed window is sealed");
    let rolled: i64 = sqlx::query_scalar("SELECT rolled_60 FROM history_nodes WHERE node_id = 'a'")
        .fetch_one(store.history_pool())
        .await
        .unwrap();
    assert_eq!(
        rolled,
        t0 + 3 * 3_600_000,
        "1 min buckets final up to the last closed hour"
    );
    // A narrow range inside a sealed window.
    let one = store
        .series_points("a", "cpu", None, t0 + 600_000, t0 + 610_000)
        .await
        .unwrap();
    assert_eq!(one.len(), 3);
    assert_eq!(one[0][0] as i64, t0 + 600_000);

    // A sample that arrives late, into a sealed and rolled-up window, counts
    // in every tier once it is sealed.
    let late = (t0 + 600_000 + 2500, 99_999);
    write(&store, &mut dict, "a", &[late]).await;
    let mut with_late = a.clone();
    with_late.push(late);
    maintain(&store, t0 + 205 * 60_000).await;
    assert_eq!(
        answers(&store, "a", from, to).await,
        expected_all(&with_late, from, to)
    );
    assert_eq!(
        store.series_names("a").await.unwrap(),
        vec!["cpu", "mem_used", "net_rx_bps{eth0}"]
    );
    store.close().await;
}

#[tokio::test]
async fn a_restarted_writer_keeps_the_series_it_named() {
    let dir = tempdir("restart");
    let store = Store::open(&dir).await.unwrap();
    let t0 = t0();
    write(&store, &mut Dictionary::default(), "a", &[(t0, 1)]).await;
    // A new dictionary (a restarted hub) finds the node and its names.
    write(&store, &mut Dictionary::default(), "a", &[(t0 + 5000, 2)]).await;
    let cpu = store
        .series_points("a", "cpu", None, t0, t0 + 5000)
        .await
        .unwrap();
    assert_eq!(cpu.len(), 2);
    assert_eq!(store.series_names("a").await.unwrap().len(), 3);
    assert!(
        store
            .series_points("nobody", "cpu", None, 0, i64::MAX)
            .await
            .unwrap()
            .is_empty()
    );
    store.close().await;
}

#[tokio::test]
async fn tiny_retention_drops_raw_points_but_keeps_rollups() {
    let dir = tempdir("retention");
    let store = Store::open(&dir).await.unwrap();
    let t0 = t0();
    let mut dict = Dictionary::default();
    let old: Vec<(i64, i64)> = (0..120).map(|i| (t0 + i * 1000, i)).collect();
    let recent: Vec<(i64, i64)> = (0..5).map(|i| (t0 + 1_200_000 + i * 1000, i)).collect();
    write(&store, &mut dict, "n1", &old).await;
    maintain(&store, t0 + 660_000).await;
    write(&store, &mut dict, "n1", &recent).await;
    let now = t0 + 1_205_000;
    let config = HistoryConfig {
        retention: Retention::parse("raw=1m").unwrap(),
        ..Default::default()
    };
    let m = maintenance(&store, config);
    m.roll_up(now).await.unwrap();
    m.enforce_retention(now).await.unwrap();
    let raw = store
        .series_points("n1", "cpu", None, 0, now + 1)
        .await
        .unwrap();
    assert_eq!(raw.len(), 5, "only the last minute of raw points is left");
    let minutes = store
        .series_points("n1", "cpu", Some(60), 0, now + 1)
        .await
        .unwrap();
    assert_eq!(
        minutes[..2].to_vec(),
        expected(&old, "cpu", 60),
        "the old minutes stay, whole"
    );
    assert_eq!(minutes.len(), 3);
    // Rolling up again after the raw points are gone must not damage old buckets.
    maintain(&store, now + 3_600_000).await;
    let again = store
        .series_points("n1", "cpu", Some(60), 0, now + 1)
        .await
        .unwrap();
    assert_eq!(again, minutes);
    store.close().await;
}

#[tokio::test]
async fn the_size_cap_holds_and_keeps_the_newest_history() {
    let dir = tempdir("cap");
    let store = Store::open(&dir).await.unwrap();
    let t0 = t0();
    let mut dict = Dictionary::default();
    // Noisy values (a compact store makes small work of smooth ones):
    // eight nodes, 20 series, 2 s samples over three hours.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for n in 0..8 {
        let samples: Vec<SampleWrite> = (0..5400)
            .map(|i| SampleWrite {
                node: format!("n{n}"),
                ts: t0 + i * 2000,
                values: (0..20)
                    .map(|s| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        (format!("s{s}"), (x >> 11) as f64 / 7.0)
                    })
                    .collect(),
            })
            .collect();
        for batch in samples.chunks(500) {
            store.append_samples(&mut dict, batch).await.unwrap();
        }
    }
    let now = t0 + 3 * 3_600_000 + 120_000;
    maintain(&store, now).await;
    store.compact().await.unwrap();
    let before = store.disk_bytes();
    let cap = 2 * 1024 * 1024;
    assert!(
        before > 3 * cap,
        "the test needs a database well over the cap ({before} bytes)"
    );
    let config = HistoryConfig {
        max_bytes: cap,
        ..Default::default()
    };
    maintenance(&store, config)
        .enforce_retention(now)
        .await
        .unwrap();
    let after = store.disk_bytes();
    assert!(after <= cap, "{after} bytes on disk, cap {cap}");
    let newest = store
        .series_points("n7", "s0", None, t0, now)
        .await
        .unwrap();
    assert_eq!(
        newest.last().expect("the newest points are kept")[0] as i64,
        t0 + 5399 * 2000
    );
    let oldest = store
        .series_points("n0", "s0", None, t0, t0 + 1000)
        .await
        .unwrap();
    assert!(oldest.is_empty(), "the oldest points went first");
    // What the cap took from raw, the minutes still summarize.
    let minutes = store
        .series_points("n0", "s0", Some(60), t0, t0 + 60_000)
        .await
        .unwrap();
    assert_eq!(minutes.len(), 2);
    store.close().await;
}

#[tokio::test]
async fn an_agents_batch_waits_for_room_instead_of_being_dropped() {
    let (tx, mut rx) = mpsc::channel(1);
    let history = History {
        tx,
        stats: Arc::new(HistoryStats::default()),
        config: HistoryConfig::default(),
    };
    history.record_waiting("n1", Vec::new()).await;
    // The queue is full: the next batch waits for the writer.
    let waiting = {
        let history = history.clone();
        tokio::spawn(async move { history.record_waiting("n2", Vec::new()).await })
    };
    while history.stats.waits.load(Ordering::Relaxed) == 0 {
        tokio::task::yield_now().await;
    }
    assert!(!waiting.is_finished());
    assert_eq!(rx.recv().await.unwrap().1, "n1");
    waiting.await.unwrap();
    assert_eq!(rx.recv().await.unwrap().1, "n2");
    assert_eq!(history.stats.dropped_batches.load(Ordering::Relaxed), 0);
    // No writer at all: dropped and counted, never stuck.
    drop(rx);
    history.record_waiting("n3", Vec::new()).await;
    assert_eq!(history.stats.dropped_batches.load(Ordering::Relaxed), 1);
}
