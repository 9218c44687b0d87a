//! The backup catalog and each job's retention.

use twinbay_proto::backup::Keep;

use crate::suite::{Fixture, store_test_suite};
use crate::*;

store_test_suite!(
    backups_are_listed_newest_first_by_node_and_job,
    retention_is_kept_per_job_and_pruned_rows_go,
);

fn backup(id: &str, node: &str, job: &str, created_ms: i64) -> BackupRecord {
    BackupRecord {
        id: id.into(),
        node_id: node.into(),
        job: job.into(),
        command_id: format!("cmd_{id}"),
        source: "dir /srv/data".into(),
        object_key: format!("{node}/{job}/{id}.tar.zst"),
        sha256: "ab".repeat(32),
        size: 5_000_000_000,
        created_ms,
        status: "complete".into(),
        retention: String::new(),
        verified_ms: None,
    }
}

async fn backups_are_listed_newest_first_by_node_and_job(f: &Fixture) {
    let store = f.store.clone();
    assert_eq!(store.backup("b_none").await.unwrap(), None);
    assert!(store.backup_jobs().await.unwrap().is_empty());
    let all = [
        backup("b1", "n1", "data", 1_000),
        backup("b2", "n1", "data", 2_000),
        backup("b3", "n1", "db", 2_000),
        backup("b4", "n2", "data", 3_000),
        backup("b0", "n1", "data", 2_000),
    ];
    for b in &all {
        store.insert_backup(b, None).await.unwrap();
    }
    // The id is the backup's: a second one is refused.
    let twin = store.insert_backup(&all[0], None).await;
    assert!(
        matches!(&twin, Err(StoreError::Db(sqlx::Error::Database(e))) if e.is_unique_violation()),
        "{twin:?}"
    );
    assert_eq!(store.backup("b1").await.unwrap().as_ref(), Some(&all[0]));
    let ids = |node: Option<&'static str>, job: Option<&'static str>, limit: u32| {
        let store = store.clone();
        async move {
            store
                .backups(node, job, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|b| b.id)
                .collect::<Vec<_>>()
        }
    };
    // Newest first; the same time, by id descending.
    assert_eq!(ids(None, None, 100).await, ["b4", "b3", "b2", "b0", "b1"]);
    assert_eq!(ids(Some("n1"), None, 100).await, ["b3", "b2", "b0", "b1"]);
    assert_eq!(ids(None, Some("data"), 100).await, ["b4", "b2", "b0", "b1"]);
    assert_eq!(ids(Some("n1"), Some("data"), 2).await, ["b2", "b0"]);
    assert_eq!(ids(Some("n3"), None, 100).await, Vec::<String>::new());
    assert_eq!(
        store.backup_jobs().await.unwrap(),
        [
            ("n1".to_string(), "data".to_string()),
            ("n1".into(), "db".into()),
            ("n2".into(), "data".into())
        ]
    );
}

async fn retention_is_kept_per_job_and_pruned_rows_go(f: &Fixture) {
    let store = f.store.clone();
    assert_eq!(store.backup_job_keep("n1", "data").await.unwrap(), None);
    // A new job without rules keeps everything.
    store
        .insert_backup(&backup("b1", "n1", "data", 1_000), None)
        .await
        .unwrap();
    assert_eq!(
        store.backup_job_keep("n1", "data").await.unwrap(),
        Some(Keep::default())
    );
    let keep = Keep {
        last: 2,
        daily: 7,
        monthly: 12,
        ..Default::default()
    };
    store
        .insert_backup(&backup("b2", "n1", "data", 2_000), Some(&keep))
        .await
        .unwrap();
    assert_eq!(
        store.backup_job_keep("n1", "data").await.unwrap(),
        Some(keep)
    );
    // `None` leaves the rules as they are; rules replace them.
    store
        .insert_backup(&backup("b3", "n1", "data", 3_000), None)
        .await
        .unwrap();
    assert_eq!(
        store.backup_job_keep("n1", "data").await.unwrap(),
        Some(keep)
    );
    let fewer = Keep {
        last: 1,
        ..Default::default()
    };
    store
        .insert_backup(&backup("b4", "n1", "data", 4_000), Some(&fewer))
        .await
        .unwrap();
    assert_eq!(
        store.backup_job_keep("n1", "data").await.unwrap(),
        Some(fewer)
    );
    assert_eq!(store.backup_job_keep("n1", "other").await.unwrap(), None);

    store
        .apply_prune(
            &[("b4".into(), "last".into()), ("b3".into(), "daily".into())],
            &["b1".into(), "b2".into(), "b_gone".into()],
        )
        .await
        .unwrap();
    let left: Vec<(String, String)> = store
        .backups(None, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.id, b.retention))
        .collect();
    assert_eq!(
        left,
        [
            ("b4".to_string(), "last".to_string()),
            ("b3".into(), "daily".into())
        ]
    );
    // Verified: complete, or corrupt when the bytes differ.
    store.mark_verified("b4", true, 9_000).await.unwrap();
    store.mark_verified("b3", false, 9_500).await.unwrap();
    let b4 = store.backup("b4").await.unwrap().unwrap();
    assert_eq!(
        (b4.status.as_str(), b4.verified_ms),
        ("complete", Some(9_000))
    );
    let b3 = store.backup("b3").await.unwrap().unwrap();
    assert_eq!(
        (b3.status.as_str(), b3.verified_ms),
        ("corrupt", Some(9_500))
    );
    assert_eq!(b3.size, 5_000_000_000);
}
