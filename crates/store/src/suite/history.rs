//! Metric history: appending, reading by tier, sealing, rolling up,
//! retention and usage.

use crate::history::codec::Columns;
use crate::history::rollup::{RAW, aggregate, bucket, floor, window_ms};
use crate::suite::{Fixture, store_test_suite};
use crate::*;

mod partitions;

store_test_suite!(
    samples_read_back_by_name_and_a_repeat_replaces,
    sealed_and_rolled_history_answers_as_the_rows_did,
    retention_cuts_the_oldest_and_keeps_the_coarser_tiers,
    replicas_with_their_own_dictionaries_add_series_to_one_node,
);

const NAMES: [&str; 2] = ["cpu", "net_rx_bps{eth0}"];

fn values(i: i64) -> Vec<(String, f64)> {
    vec![
        (NAMES[0].into(), ((i * 37) % 1000) as f64 / 10.0),
        (NAMES[1].into(), 1e5 + (i as f64 * 0.37).sin() * 5e4),
    ]
}

fn samples(node: &str, times: &[i64]) -> Vec<SampleWrite> {
    times
        .iter()
        .map(|ts| SampleWrite {
            node: node.into(),
            ts: *ts,
            values: values(*ts / 1000),
        })
        .collect()
}

/// What a query of `level` must answer, from the samples themselves.
fn expected(times: &[i64], name: &str, level: u32, from: i64, to: i64) -> Vec<Bucket> {
    let at = NAMES.iter().position(|n| *n == name).unwrap();
    let raw: Vec<(i64, Columns)> = times
        .iter()
        .map(|ts| (*ts, [values(*ts / 1000)[at].1, 0.0, 0.0, 0.0]))
        .collect();
    let points = if level == RAW {
        raw
    } else {
        let mut points = aggregate(&raw, true, 60_000);
        for tier in [900, 3600] {
            if tier <= level {
                points = aggregate(&points, false, i64::from(tier) * 1000);
            }
        }
        points
    };
    points
        .into_iter()
        .filter(|(ts, _)| (from..=to).contains(ts))
        .map(|(ts, c)| bucket(ts, c, level == RAW))
        .collect()
}

async fn answers(store: &Store, node: &str, from: i64, to: i64) -> Vec<Vec<Bucket>> {
    let mut out = Vec::new();
    for name in NAMES {
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

fn expected_all(times: &[i64], from: i64, to: i64) -> Vec<Vec<Bucket>> {
    let mut out = Vec::new();
    for name in NAMES {
        for level in [RAW, 60, 900, 3600] {
            out.push(expected(times, name, level, from, to));
        }
    }
    out
}

/// An hour boundary three hours ago.
fn t0() -> i64 {
    floor(now_ms(), 3_600_000) - 3 * 3_600_000
}

async fn samples_read_back_by_name_and_a_repeat_replaces(f: &Fixture) {
    let store = f.store.clone();
    let t0 = t0();
    assert!(store.series_names("n1").await.unwrap().is_empty());
    assert!(
        store
            .series_points("n1", "cpu", None, 0, i64::MAX)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.history_usage().await.unwrap(), [(-1, 0, 0)]);
    assert!(store.history_pending().await.unwrap().is_empty());

    let mut dict = Dictionary::default();
    let times: Vec<i64> = (0..50).map(|i| t0 + i * 10_000).collect();
    let touched = store
        .append_samples(&mut dict, &samples("n1", &times))
        .await
        .unwrap();
    assert_eq!(touched.values().copied().collect::<Vec<_>>(), [t0]);
    assert_eq!(dict.len(), 1);
    let key = *touched.keys().next().unwrap();
    assert_eq!(store.history_pending().await.unwrap(), [(key, t0)]);
    assert_eq!(
        store.series_names("n1").await.unwrap(),
        ["cpu", "net_rx_bps{eth0}"]
    );
    assert_eq!(
        store
            .series_points("n1", "cpu", None, t0, t0 + 30_000)
            .await
            .unwrap(),
        expected(&times, "cpu", RAW, t0, t0 + 30_000)
    );
    assert_eq!(
        answers(&store, "n1", t0, t0 + 600_000).await,
        expected_all(&times, t0, t0 + 600_000)
    );

    // A repeated time replaces the sample, within a batch and across them.
    let at = t0 + 20_000;
    let one = |v: f64| SampleWrite {
        node: "n1".into(),
        ts: at,
        values: vec![("cpu".into(), v)],
    };
    store
        .append_samples(&mut dict, &[one(1.0), one(2.0)])
        .await
        .unwrap();
    assert_eq!(
        store
            .series_points("n1", "cpu", None, at, at)
            .await
            .unwrap(),
        [[at as f64, 2.0, 2.0, 2.0]]
    );
    store.append_samples(&mut dict, &[one(3.5)]).await.unwrap();
    assert_eq!(
        store
            .series_points("n1", "cpu", None, at, at)
            .await
            .unwrap(),
        [[at as f64, 3.5, 3.5, 3.5]]
    );
    // The sample replaced had the other series too; it has it no longer.
    assert!(
        store
            .series_points("n1", NAMES[1], None, at, at)
            .await
            .unwrap()
            .is_empty()
    );

    // Several series at once, in the order asked; an unknown one is empty.
    let names: Vec<String> = ["net_rx_bps{eth0}", "nope", "cpu"].map(String::from).into();
    let got = store
        .history_points("n1", &names, None, t0, t0 + 10_000)
        .await
        .unwrap();
    let got: Vec<(&str, usize)> = got.iter().map(|(n, p)| (n.as_str(), p.len())).collect();
    assert_eq!(got, [("net_rx_bps{eth0}", 2), ("nope", 0), ("cpu", 2)]);
    let none = store
        .history_points("n9", &names, None, 0, i64::MAX)
        .await
        .unwrap();
    assert!(none.iter().all(|(_, p)| p.is_empty()) && none.len() == 3);
    let usage = store.history_usage().await.unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].0, -1);
    assert_eq!(usage[0].1, 50);
    assert!(usage[0].2 > 0);
    store.close().await;

    // Another hub (its own dictionary) adds a series to the same node.
    let store = f.reopen().await;
    let mut other = Dictionary::default();
    store
        .append_samples(
            &mut other,
            &[SampleWrite {
                node: "n1".into(),
                ts: t0 + 900_000,
                values: vec![("cpu".into(), 9.0), ("disk_used{/}".into(), 1e9)],
            }],
        )
        .await
        .unwrap();
    assert_eq!(
        store.series_names("n1").await.unwrap(),
        ["cpu", "disk_used{/}", "net_rx_bps{eth0}"]
    );
    assert_eq!(
        store
            .series_points("n1", "disk_used{/}", None, 0, i64::MAX)
            .await
            .unwrap(),
        [[(t0 + 900_000) as f64, 1e9, 1e9, 1e9]]
    );
    assert_eq!(
        store
            .series_points("n1", "cpu", None, t0, t0)
            .await
            .unwrap(),
        expected(&times, "cpu", RAW, t0, t0)
    );
    store.close().await;
}

async fn sealed_and_rolled_history_answers_as_the_rows_did(f: &Fixture) {
    let store = f.store.clone();
    // The 15-minute and hourly tiers are kept in day-long chunks and roll up
    // only once the minute tier passes a midnight: the samples start an hour
    // before the last one, whatever the time of day the test runs.
    let t0 = floor(now_ms(), 86_400_000) - 3_600_000;
    let now = t0 + 3 * 3_600_000;
    // Two hours and a bit of samples every 30 s, for two nodes.
    let times: Vec<i64> = (0..260).map(|i| t0 + i * 30_000).collect();
    let mut dict = Dictionary::default();
    // One call, several statements' worth of rows.
    let mut both = samples("n1", &times);
    both.extend(samples("n2", &times));
    let touched = store.append_samples(&mut dict, &both).await.unwrap();
    assert_eq!(touched.len(), 2);
    let (from, to) = (t0, now);
    let before = answers(&store, "n1", from, to).await;
    assert_eq!(before, expected_all(&times, from, to));

    let mut pending = store.history_pending().await.unwrap();
    pending.sort();
    assert_eq!(pending.len(), 2);
    assert!(pending.iter().all(|(_, oldest)| *oldest == t0));
    let keys: Vec<i64> = pending.iter().map(|(k, _)| *k).collect();
    // The first hour: rows from then on remain.
    let cut = t0 + window_ms(RAW);
    let mut sealed = store.seal_history(&keys, cut).await.unwrap();
    sealed.sort();
    assert_eq!(sealed, keys.iter().map(|k| (*k, true)).collect::<Vec<_>>());
    let mut pending = store.history_pending().await.unwrap();
    pending.sort();
    assert!(
        pending.iter().all(|(_, oldest)| *oldest == cut),
        "{pending:?}"
    );
    assert_eq!(answers(&store, "n1", from, to).await, before);

    // Everything, then the roll-ups.
    let mut sealed = store.seal_history(&keys, now).await.unwrap();
    sealed.sort();
    assert_eq!(sealed, keys.iter().map(|k| (*k, false)).collect::<Vec<_>>());
    assert!(store.history_pending().await.unwrap().is_empty());
    assert!(store.roll_up_history(now).await.unwrap() > 0);
    assert_eq!(
        store.roll_up_history(now).await.unwrap(),
        0,
        "nothing left to roll"
    );
    assert_eq!(answers(&store, "n1", from, to).await, before);
    assert_eq!(answers(&store, "n2", from, to).await, before);
    // A window inside the range.
    let (a, b) = (t0 + 1_234_567, t0 + 5_432_100);
    assert_eq!(
        answers(&store, "n1", a, b).await,
        expected_all(&times, a, b)
    );

    // Usage by level: no rows left, raw chunks and each tier.
    let usage = store.history_usage().await.unwrap();
    let levels: Vec<i64> = usage.iter().map(|u| u.0).collect();
    assert_eq!(levels, [-1, 0, 60, 900, 3600]);
    assert_eq!((usage[0].1, usage[0].2), (0, 0));
    assert!(
        usage[1..]
            .iter()
            .all(|(_, blobs, bytes)| *blobs > 0 && *bytes > 0)
    );

    // A late sample in a sealed, rolled window: its chunk is rewritten and
    // the tiers above rolled again.
    let late = t0 + 15_000;
    let touched = store
        .append_samples(&mut dict, &samples("n1", &[late]))
        .await
        .unwrap();
    let n1 = *touched.keys().next().unwrap();
    assert_eq!(store.history_pending().await.unwrap(), [(n1, late)]);
    assert_eq!(store.seal_history(&[n1], now).await.unwrap(), [(n1, false)]);
    assert!(store.roll_up_history(now).await.unwrap() > 0);
    let mut with_late = times.clone();
    with_late.insert(1, late);
    assert_eq!(
        answers(&store, "n1", from, to).await,
        expected_all(&with_late, from, to)
    );
    assert_eq!(answers(&store, "n2", from, to).await, before);

    store.compact().await.unwrap();
    if store.backend() == "sqlite" {
        assert!(store.disk_bytes() > 0);
    }
    assert_eq!(
        answers(&store, "n1", from, to).await,
        expected_all(&with_late, from, to)
    );
    store.close().await;
    let store = f.reopen().await;
    assert_eq!(
        answers(&store, "n2", a, b).await,
        expected_all(&times, a, b)
    );
    store.close().await;
}

async fn retention_cuts_the_oldest_and_keeps_the_coarser_tiers(f: &Fixture) {
    let store = f.store.clone();
    assert_eq!(store.oldest_tenth_cut(RAW).await.unwrap(), None);
    assert_eq!(store.oldest_tenth_cut(60).await.unwrap(), None);
    let t0 = t0();
    let now = t0 + 3 * 3_600_000;
    let times: Vec<i64> = (0..100).map(|i| t0 + i * 60_000).collect();
    let mut dict = Dictionary::default();
    store
        .append_samples(&mut dict, &samples("n1", &times))
        .await
        .unwrap();
    // Raw with no chunks yet: after a tenth of the rows, on a minute.
    assert_eq!(store.oldest_tenth_cut(RAW).await.unwrap(), Some(times[11]));

    let keys: Vec<i64> = store
        .history_pending()
        .await
        .unwrap()
        .iter()
        .map(|p| p.0)
        .collect();
    store.seal_history(&keys, now).await.unwrap();
    store.roll_up_history(now).await.unwrap();
    // Ten raw chunks of 10 min: the cut is the end of the second.
    assert_eq!(
        store.oldest_tenth_cut(RAW).await.unwrap(),
        Some(t0 + 2 * window_ms(RAW))
    );
    assert!(store.oldest_tenth_cut(60).await.unwrap().is_some());

    // Raw goes before the cut (rounded down to the minute); the 1 min
    // tier still answers for that time.
    let cut = t0 + 3_600_000 + 30_000;
    let gone = store.delete_history_before(RAW, cut).await.unwrap();
    assert!(gone > 0);
    let raw = store
        .series_points("n1", "cpu", None, t0, now)
        .await
        .unwrap();
    assert_eq!(raw, expected(&times, "cpu", RAW, t0 + 3_600_000, now));
    assert_eq!(
        store
            .series_points("n1", "cpu", Some(60), t0, now)
            .await
            .unwrap(),
        expected(&times, "cpu", 60, t0, now)
    );
    assert_eq!(store.delete_history_before(RAW, cut).await.unwrap(), 0);
    // The 1 min tier goes too; the 15 min one stays whole.
    assert!(store.delete_history_before(60, now).await.unwrap() > 0);
    assert!(
        store
            .series_points("n1", "cpu", Some(60), t0, t0 + 3_600_000)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .series_points("n1", "cpu", Some(900), t0, now)
            .await
            .unwrap(),
        expected(&times, "cpu", 900, t0, now)
    );
}

/// Hub replicas share the database, each with its own dictionary: a node
/// that reconnects to another replica may bring a series the first one
/// has not seen, and both must keep writing.
async fn replicas_with_their_own_dictionaries_add_series_to_one_node(f: &Fixture) {
    let one = f.store.clone();
    let two = f.reopen().await;
    let (mut d1, mut d2) = (Dictionary::default(), Dictionary::default());
    let t0 = t0();
    let sample = |ts: i64, names: &[&str]| SampleWrite {
        node: "n1".into(),
        ts,
        values: names.iter().map(|n| (n.to_string(), ts as f64)).collect(),
    };
    one.append_samples(&mut d1, &[sample(t0, &["cpu"])])
        .await
        .unwrap();
    two.append_samples(&mut d2, &[sample(t0 + 1_000, &["cpu", "disk"])])
        .await
        .unwrap();
    // Back on the first replica: one series it knows of, one it does not,
    // one new to both.
    one.append_samples(&mut d1, &[sample(t0 + 2_000, &["cpu", "disk", "gpu"])])
        .await
        .unwrap();
    two.append_samples(&mut d2, &[sample(t0 + 3_000, &["gpu", "cpu"])])
        .await
        .unwrap();
    assert_eq!(
        one.series_names("n1").await.unwrap(),
        ["cpu", "disk", "gpu"]
    );
    let at = |ts: i64| [ts as f64; 4];
    let names: Vec<String> = ["cpu", "disk", "gpu"].map(String::from).into();
    for store in [&one, &two] {
        let got = store
            .history_points("n1", &names, None, t0, t0 + 3_000)
            .await
            .unwrap();
        assert_eq!(
            got,
            [
                (
                    "cpu".to_string(),
                    vec![at(t0), at(t0 + 1_000), at(t0 + 2_000), at(t0 + 3_000)]
                ),
                ("disk".to_string(), vec![at(t0 + 1_000), at(t0 + 2_000)]),
                ("gpu".to_string(), vec![at(t0 + 2_000), at(t0 + 3_000)]),
            ]
        );
    }
    two.close().await;
}
