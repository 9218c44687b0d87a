use std::path::PathBuf;

use super::*;

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("twinbay-history-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn maintenance(store: &Store, config: HistoryConfig, dirty_from: i64) -> Maintenance {
    Maintenance {
        store: store.clone(),
        config,
        dirty_from: Arc::new(AtomicI64::new(dirty_from)),
    }
}

async fn fill(store: &Store, node: &str, from: i64, count: i64, step_ms: i64) -> i64 {
    let key = (node.to_string(), "cpu".to_string());
    let ids = store.series_ids(std::slice::from_ref(&key)).await.unwrap();
    let points: Vec<PointWrite> = (0..count)
        .map(|i| PointWrite {
            series_id: ids[&key],
            ts: from + i * step_ms,
            value: (i % 10) as f64,
        })
        .collect();
    store.insert_points(&points).await.unwrap();
    ids[&key]
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
    let (history, task) = History::spawn(store.clone(), config, stop.clone());
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
    tokio::time::sleep(Duration::from_millis(300)).await;
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
    let total: f64 = buckets.iter().map(|b| b[2]).sum();
    assert!(total > 0.0);
    assert_eq!(history.stats.dropped_batches.load(Ordering::Relaxed), 0);
    stop.cancel();
    drop(history);
    task.await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn tiny_retention_drops_raw_points_but_keeps_rollups() {
    let dir = tempdir("retention");
    let store = Store::open(&dir).await.unwrap();
    let now = now_ms();
    let old = now - 10 * 60_000;
    fill(&store, "n1", old, 120, 1000).await;
    fill(&store, "n1", now - 5_000, 5, 1000).await;
    let config = HistoryConfig {
        retention: Retention::parse("raw=1m").unwrap(),
        ..Default::default()
    };
    let m = maintenance(&store, config, old);
    // Roll up while the old raw points still exist, then enforce retention.
    let mut source = None;
    for tier in TIERS {
        store.rollup(tier, source, old, now + 1).await.unwrap();
        source = Some(tier);
    }
    m.enforce_retention().await.unwrap();
    let raw = store
        .series_points("n1", "cpu", None, 0, now + 1)
        .await
        .unwrap();
    assert_eq!(raw.len(), 5, "only the last minute of raw points is left");
    let minutes = store
        .series_points("n1", "cpu", Some(60), 0, now + 1)
        .await
        .unwrap();
    assert!(
        minutes.iter().any(|b| (b[0] as i64) < now - 5 * 60_000),
        "old rollups remain"
    );
    let counted: f64 = minutes.iter().map(|b| b[3]).fold(0.0, f64::max);
    assert_eq!(counted, 9.0);
    // Rolling up again after the raw points are gone must not damage old buckets.
    m.roll_up().await.unwrap();
    let again = store
        .series_points("n1", "cpu", Some(60), 0, now + 1)
        .await
        .unwrap();
    assert_eq!(again.len(), minutes.len());
    store.close().await;
}

#[tokio::test]
async fn the_size_cap_holds_and_keeps_the_newest_history() {
    let dir = tempdir("cap");
    let store = Store::open(&dir).await.unwrap();
    let now = now_ms();
    // Six nodes' worth of one-second points over the last ~14 h: all within
    // the default retention, so only the cap can remove any.
    let start = now - 50_000 * 1000;
    for chunk in 0..6 {
        fill(&store, &format!("n{chunk}"), start, 50_000, 1000).await;
    }
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
    maintenance(&store, config, i64::MAX)
        .enforce_retention()
        .await
        .unwrap();
    let after = store.disk_bytes();
    assert!(after <= cap, "{after} bytes on disk, cap {cap}");
    let newest = store
        .series_points("n5", "cpu", None, start, now)
        .await
        .unwrap();
    assert!(!newest.is_empty());
    assert_eq!(
        newest.last().unwrap()[0] as i64,
        start + 49_999 * 1000,
        "the newest point is kept"
    );
    let oldest = store
        .series_points("n0", "cpu", None, start, start + 1000)
        .await
        .unwrap();
    assert!(oldest.is_empty(), "the oldest points went first");
    store.close().await;
}
