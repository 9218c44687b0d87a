//! Text sorts by its bytes, as in SQLite, also in a PostgreSQL database
//! whose default collation is a language's (as most are created).

use crate::suite::Fixture;
use crate::*;

/// Names whose order differs by collation: case, punctuation.
const NAMES: [&str; 5] = ["alice", "Bob", "a_b", "n-1", "n_2"];
const BY_BYTES: [&str; 5] = ["Bob", "a_b", "alice", "n-1", "n_2"];

/// Every listing that sorts text, as the store answers it.
async fn listings(store: &Store) -> Vec<Vec<String>> {
    for name in NAMES {
        store
            .add_user(name, "pw-long-enough", Role::Viewer)
            .await
            .unwrap();
        store
            .add_agentless_node(name, &format!("key-{name}"))
            .await
            .unwrap();
        let backup = BackupRecord {
            id: name.into(),
            node_id: name.into(),
            job: name.into(),
            command_id: "c".into(),
            source: "dir /".into(),
            object_key: name.into(),
            sha256: String::new(),
            size: 1,
            created_ms: 1,
            status: "complete".into(),
            retention: String::new(),
            verified_ms: None,
        };
        store.insert_backup(&backup, None).await.unwrap();
        store
            .insert_journal(&[crate::journal::Row {
                node_id: name.into(),
                ts: 1,
                checkpoint: true,
                body: vec![1],
            }])
            .await
            .unwrap();
        store
            .insert_file_version(&NewFileVersion {
                node_id: "n",
                path: name,
                ts_ms: 1,
                sha256: Some("s"),
                prev_sha256: None,
                change: "changed",
                state: "present",
                kind: "other",
                content: "shipped",
                keyed: false,
                size: None,
                mode: None,
                images: None,
            })
            .await
            .unwrap();
    }
    let mut dict = Dictionary::default();
    let sample = SampleWrite {
        node: "n".into(),
        ts: 1,
        values: NAMES.iter().map(|n| (n.to_string(), 1.0)).collect(),
    };
    store.append_samples(&mut dict, &[sample]).await.unwrap();
    let users = store.users().await.unwrap();
    let nodes = store.nodes().await.unwrap();
    let backups = store.backups(None, None, 10).await.unwrap();
    let files = store.latest_file_versions("n").await.unwrap();
    vec![
        users.into_iter().map(|u| u.username).collect(),
        nodes.into_iter().map(|n| n.id).collect(),
        store.series_names("n").await.unwrap(),
        store
            .backup_jobs()
            .await
            .unwrap()
            .into_iter()
            .map(|j| j.0)
            .collect(),
        // Same time: by id, descending.
        backups.into_iter().rev().map(|b| b.id).collect(),
        store.journal_nodes_between(0, 10).await.unwrap(),
        files.into_iter().map(|v| v.path).collect(),
    ]
}

#[tokio::test]
async fn text_sorts_by_bytes_whatever_the_databases_collation() {
    let sqlite = Fixture::sqlite("collation").await;
    let postgres = Fixture::postgres_with(
        "collation",
        "LOCALE 'C.UTF-8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'",
    )
    .await;
    let expected = vec![BY_BYTES.map(String::from).to_vec(); 7];
    assert_eq!(listings(&sqlite.store).await, expected, "sqlite");
    assert_eq!(listings(&postgres.store).await, expected, "postgres");
}
