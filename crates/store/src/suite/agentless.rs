//! Collection runs of agentless hosts.

use crate::suite::{Fixture, store_test_suite};
use crate::*;

store_test_suite!(collection_runs_are_read_newest_first_and_bounded);

fn run(node: &str, started_ms: i64) -> CollectionRun {
    CollectionRun {
        node_id: node.into(),
        started_ms,
        duration_ms: 1_234,
        outcome: "partial".into(),
        commands: vec![
            CommandRun {
                name: "df".into(),
                argv: vec!["df".into(), "-P".into()],
                ms: 12,
                outcome: "ok".into(),
                error: None,
            },
            CommandRun {
                name: "ss-tcp".into(),
                argv: vec!["ss".into(), "-tln".into()],
                ms: 3,
                outcome: "failed".into(),
                error: Some("permission denied — ✓".into()),
            },
        ],
    }
}

async fn collection_runs_are_read_newest_first_and_bounded(f: &Fixture) {
    let store = f.store.clone();
    assert!(store.collection_runs("n1", 10).await.unwrap().is_empty());
    store
        .record_collection_run(&run("n1", 1_000))
        .await
        .unwrap();
    store
        .record_collection_run(&run("n2", 1_500))
        .await
        .unwrap();
    store
        .record_collection_run(&run("n1", 2_000))
        .await
        .unwrap();
    let runs = store.collection_runs("n1", 10).await.unwrap();
    assert_eq!(runs, [run("n1", 2_000), run("n1", 1_000)]);
    assert_eq!(
        store.collection_runs("n1", 1).await.unwrap(),
        [run("n1", 2_000)]
    );
    assert_eq!(store.collection_runs("n2", 10).await.unwrap().len(), 1);
    assert!(store.collection_runs("n1", -1).await.unwrap().is_empty());

    // Each node keeps its newest KEEP_RUNS: a full history, written at
    // once beside the store, then two more runs.
    let values: Vec<String> = (0..KEEP_RUNS)
        .map(|i| format!("('n1', {}, 1, 'ok', '[]')", 10_000 + i))
        .collect();
    f.raw(&format!(
        "INSERT INTO agentless_runs (node_id, started_ms, duration_ms, outcome, commands) VALUES {}",
        values.join(", ")
    ))
    .await;
    store
        .record_collection_run(&run("n1", 90_000))
        .await
        .unwrap();
    store
        .record_collection_run(&run("n1", 90_001))
        .await
        .unwrap();
    let runs = store.collection_runs("n1", 10 * KEEP_RUNS).await.unwrap();
    assert_eq!(runs.len() as i64, KEEP_RUNS);
    assert_eq!(runs[0], run("n1", 90_001));
    assert_eq!(runs[1], run("n1", 90_000));
    // The oldest went: the two stored first and the two oldest raw ones.
    assert_eq!(runs.last().unwrap().started_ms, 10_002);
    assert!(runs[2..].iter().all(|r| r.commands.is_empty()));
    assert_eq!(store.collection_runs("n2", 10).await.unwrap().len(), 1);
}
