//! The state journal: checkpoints and diffs per node.

use crate::journal::Row;
use crate::suite::{Fixture, store_test_suite};
use crate::*;

store_test_suite!(
    the_journal_rebuilds_a_node_from_its_checkpoint,
    pruning_keeps_each_nodes_last_checkpoint_before_the_cut,
    many_rows_land_in_one_call,
);

fn row(node: &str, ts: i64, checkpoint: bool) -> Row {
    Row {
        node_id: node.into(),
        ts,
        checkpoint,
        body: vec![0, 255, (ts % 251) as u8, 0x28, 0xb5],
    }
}

fn times(rows: &[Row]) -> Vec<i64> {
    rows.iter().map(|r| r.ts).collect()
}

async fn the_journal_rebuilds_a_node_from_its_checkpoint(f: &Fixture) {
    let store = f.store.clone();
    assert_eq!(store.journal_oldest().await.unwrap(), None);
    assert_eq!(store.journal_size(None).await.unwrap(), (0, 0));
    let n1 = [
        row("n1", 100, true),
        row("n1", 200, false),
        row("n1", 300, false),
        row("n1", 400, true),
        row("n1", 500, false),
    ];
    store.insert_journal(&n1).await.unwrap();
    store.insert_journal(&[]).await.unwrap();
    store
        .insert_journal(&[row("n2", 250, true), row("n2", 260, false)])
        .await
        .unwrap();
    // One row per node and time.
    let twin = store.insert_journal(&[row("n1", 300, true)]).await;
    assert!(
        matches!(&twin, Err(StoreError::Db(sqlx::Error::Database(e))) if e.is_unique_violation()),
        "{twin:?}"
    );

    assert_eq!(store.journal_at("n1", 350).await.unwrap(), n1[..3].to_vec());
    assert_eq!(times(&store.journal_at("n1", 400).await.unwrap()), [400]);
    assert_eq!(times(&store.journal_at("n1", 499).await.unwrap()), [400]);
    assert!(store.journal_at("n1", 99).await.unwrap().is_empty());
    assert_eq!(store.journal_head("n1").await.unwrap(), n1[3..].to_vec());
    assert!(store.journal_head("n9").await.unwrap().is_empty());

    assert_eq!(store.journal_oldest().await.unwrap(), Some(100));
    assert_eq!(store.journal_first("n2").await.unwrap(), Some(250));
    assert_eq!(store.journal_first("n9").await.unwrap(), None);
    // `(from, to]`, oldest first.
    assert_eq!(
        store.journal_between("n1", 200, 400).await.unwrap(),
        n1[2..4].to_vec()
    );
    assert!(
        store
            .journal_between("n1", 500, 900)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.journal_nodes_between(200, 300).await.unwrap(),
        ["n1", "n2"]
    );
    assert_eq!(store.journal_nodes_between(260, 400).await.unwrap(), ["n1"]);
    assert!(
        store
            .journal_nodes_between(500, 900)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.journal_size(None).await.unwrap(), (7, 35));
    assert_eq!(store.journal_size(Some("n2")).await.unwrap(), (2, 10));
    assert_eq!(store.journal_size(Some("n9")).await.unwrap(), (0, 0));
}

async fn pruning_keeps_each_nodes_last_checkpoint_before_the_cut(f: &Fixture) {
    let store = f.store.clone();
    store
        .insert_journal(&[
            row("n1", 100, true),
            row("n1", 200, false),
            row("n1", 300, true),
            row("n1", 400, false),
            row("n2", 150, true),
            row("n2", 350, false),
            // A node without a checkpoint before the cut keeps everything.
            row("n3", 50, false),
            row("n3", 500, true),
        ])
        .await
        .unwrap();
    let state_at_cut = store.journal_at("n1", 350).await.unwrap();
    assert_eq!(store.prune_journal(350).await.unwrap(), 2);
    assert_eq!(store.prune_journal(350).await.unwrap(), 0);
    assert_eq!(store.journal_at("n1", 350).await.unwrap(), state_at_cut);
    assert_eq!(
        times(&store.journal_between("n1", 0, 1_000).await.unwrap()),
        [300, 400]
    );
    assert_eq!(
        times(&store.journal_between("n2", 0, 1_000).await.unwrap()),
        [150, 350]
    );
    assert_eq!(
        times(&store.journal_between("n3", 0, 1_000).await.unwrap()),
        [50, 500]
    );
    assert_eq!(store.journal_oldest().await.unwrap(), Some(50));
}

async fn many_rows_land_in_one_call(f: &Fixture) {
    let store = f.store.clone();
    let rows: Vec<Row> = (0..450)
        .map(|i| row("n1", 1_000 + i, i % 100 == 0))
        .collect();
    store.insert_journal(&rows).await.unwrap();
    assert_eq!(
        store.journal_between("n1", 0, i64::MAX).await.unwrap(),
        rows
    );
    assert_eq!(
        store.journal_head("n1").await.unwrap(),
        rows[400..].to_vec()
    );
    assert_eq!(
        store.journal_size(Some("n1")).await.unwrap(),
        (450, 450 * 5)
    );
}
