//! Watched files: versions, their assessment and content (see also the
//! tests in `store/files.rs`).

use sha2::{Digest, Sha256};

use crate::suite::{Fixture, store_test_suite};
use crate::*;

store_test_suite!(
    versions_read_back_whole_newest_first,
    changes_are_listed_by_risk_once_assessed,
    content_is_shared_when_plain_and_private_when_keyed,
);

fn sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn v<'a>(node: &'a str, path: &'a str, sha: Option<&'a str>, ts_ms: i64) -> NewFileVersion<'a> {
    NewFileVersion {
        node_id: node,
        path,
        ts_ms,
        sha256: sha,
        prev_sha256: None,
        change: "changed",
        state: "present",
        kind: "compose",
        content: "shipped",
        keyed: false,
        size: Some(120),
        mode: Some(0o644),
        images: None,
    }
}

async fn versions_read_back_whole_newest_first(f: &Fixture) {
    let store = f.store.clone();
    assert_eq!(store.latest_file_version("n1", "/a").await.unwrap(), None);
    assert!(store.latest_file_versions("n1").await.unwrap().is_empty());
    let images = serde_json::json!({"web": "sha256:abc", "db": "sha256:def"});
    let first = NewFileVersion {
        change: "first_seen",
        keyed: true,
        images: Some(images.clone()),
        ..v("n1", "/srv/compose.yml", Some("s1"), 1_000)
    };
    let id1 = store.insert_file_version(&first).await.unwrap();
    let got = store
        .latest_file_version("n1", "/srv/compose.yml")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got,
        FileVersion {
            id: id1,
            node_id: "n1".into(),
            path: "/srv/compose.yml".into(),
            ts_ms: 1_000,
            sha256: Some("s1".into()),
            prev_sha256: None,
            change: "first_seen".into(),
            state: "present".into(),
            kind: "compose".into(),
            content: "shipped".into(),
            keyed: true,
            size: Some(120),
            mode: Some(0o644),
            risk: None,
            summary: String::new(),
            assessment: None,
            images: Some(images),
        }
    );
    let id2 = store
        .insert_file_version(&NewFileVersion {
            prev_sha256: Some("s1"),
            ..v("n1", "/srv/compose.yml", Some("s2"), 2_000)
        })
        .await
        .unwrap();
    // Deleted: no hash, no size.
    let id3 = store
        .insert_file_version(&NewFileVersion {
            prev_sha256: Some("s2"),
            change: "deleted",
            state: "missing",
            content: "none",
            size: None,
            mode: None,
            ..v("n1", "/srv/compose.yml", None, 3_000)
        })
        .await
        .unwrap();
    // Back to the first content.
    let id4 = store
        .insert_file_version(&v("n1", "/srv/compose.yml", Some("s1"), 4_000))
        .await
        .unwrap();
    let other = store
        .insert_file_version(&v("n1", "/etc/app.env", Some("e1"), 500))
        .await
        .unwrap();
    store
        .insert_file_version(&v("n2", "/srv/compose.yml", Some("s9"), 9_000))
        .await
        .unwrap();

    let ids = |vs: Vec<FileVersion>| vs.into_iter().map(|v| v.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store
            .file_versions("n1", "/srv/compose.yml", 10)
            .await
            .unwrap()),
        [id4, id3, id2, id1]
    );
    assert_eq!(
        ids(store
            .file_versions("n1", "/srv/compose.yml", 2)
            .await
            .unwrap()),
        [id4, id3]
    );
    let deleted = store
        .file_versions("n1", "/srv/compose.yml", 2)
        .await
        .unwrap()
        .remove(1);
    assert_eq!(
        (
            deleted.sha256,
            deleted.prev_sha256.as_deref(),
            deleted.size,
            deleted.state.as_str()
        ),
        (None, Some("s2"), None, "missing")
    );
    assert_eq!(
        store
            .latest_file_version("n1", "/srv/compose.yml")
            .await
            .unwrap()
            .map(|v| v.id),
        Some(id4)
    );
    // By hash: its newest row.
    assert_eq!(
        store
            .file_version_by_sha("n1", "/srv/compose.yml", "s1")
            .await
            .unwrap()
            .map(|v| v.id),
        Some(id4)
    );
    assert_eq!(
        store
            .file_version_by_sha("n1", "/srv/compose.yml", "s2")
            .await
            .unwrap()
            .map(|v| v.id),
        Some(id2)
    );
    assert_eq!(
        store
            .file_version_by_sha("n2", "/srv/compose.yml", "s1")
            .await
            .unwrap(),
        None
    );
    // The newest of every path, by path.
    assert_eq!(
        ids(store.latest_file_versions("n1").await.unwrap()),
        [other, id4]
    );
}

async fn changes_are_listed_by_risk_once_assessed(f: &Fixture) {
    let store = f.store.clone();
    let seen = store
        .insert_file_version(&NewFileVersion {
            change: "first_seen",
            ..v("n1", "/a", Some("a0"), 1_000)
        })
        .await
        .unwrap();
    let low = store
        .insert_file_version(&v("n1", "/a", Some("a1"), 2_000))
        .await
        .unwrap();
    let high = store
        .insert_file_version(&v("n2", "/b", Some("b1"), 3_000))
        .await
        .unwrap();
    let waiting = store
        .insert_file_version(&v("n2", "/b", Some("b2"), 4_000))
        .await
        .unwrap();
    let critical = store
        .insert_file_version(&v("n1", "/c", Some("c1"), 5_000))
        .await
        .unwrap();
    let assessment = serde_json::json!({
        "findings": [{"rule": "privileged", "detail": "ünïcode ✓"}],
        "services": ["web"],
        "drift": []
    });
    for (id, risk) in [
        (seen, "high"),
        (low, "low"),
        (high, "high"),
        (critical, "critical"),
    ] {
        store
            .set_file_assessment(id, risk, &format!("{risk} change"), &assessment)
            .await
            .unwrap();
    }
    let got = store
        .latest_file_version("n1", "/c")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            got.risk.as_deref(),
            got.summary.as_str(),
            got.assessment.as_ref()
        ),
        (Some("critical"), "critical change", Some(&assessment))
    );

    let ids = |vs: Vec<FileVersion>| vs.into_iter().map(|v| v.id).collect::<Vec<_>>();
    let all = ["low", "medium", "high", "critical"];
    // Newest first; neither first looks nor versions waiting for content.
    assert_eq!(
        ids(store.file_changes(0, &all, 100).await.unwrap()),
        [critical, high, low]
    );
    assert_eq!(
        ids(store
            .file_changes(0, &["high", "critical"], 100)
            .await
            .unwrap()),
        [critical, high]
    );
    assert_eq!(
        ids(store.file_changes(3_000, &all, 100).await.unwrap()),
        [critical, high]
    );
    assert_eq!(
        ids(store.file_changes(0, &all, 1).await.unwrap()),
        [critical]
    );
    assert!(store.file_changes(0, &[], 100).await.unwrap().is_empty());
    assert!(store.file_changes(0, &all, -1).await.unwrap().is_empty());
    assert!(
        store
            .file_versions("n1", "/a", -1)
            .await
            .unwrap()
            .is_empty()
    );

    // What waits for its content, by node and hash.
    assert_eq!(
        ids(store.unassessed_file_versions("n2", "b2").await.unwrap()),
        [waiting]
    );
    assert!(
        store
            .unassessed_file_versions("n2", "b1")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .unassessed_file_versions("n1", "b2")
            .await
            .unwrap()
            .is_empty()
    );
    let twice = store
        .insert_file_version(&v("n2", "/b2", Some("b2"), 6_000))
        .await
        .unwrap();
    assert_eq!(
        ids(store.unassessed_file_versions("n2", "b2").await.unwrap()),
        [waiting, twice]
    );

    // Drift named by the newest versions only, on any node.
    let drift = serde_json::json!({"drift": [{"kind": "image", "name": "web"}]});
    store
        .set_file_assessment(high, "high", "x", &drift)
        .await
        .unwrap();
    store
        .set_file_assessment(twice, "high", "x", &drift)
        .await
        .unwrap();
    store
        .set_file_assessment(low, "low", "x", &drift)
        .await
        .unwrap();
    // Drift that is not a list is no drift.
    store
        .set_file_assessment(critical, "low", "x", &serde_json::json!({"drift": "web"}))
        .await
        .unwrap();
    let mut drifting = ids(store.drifting_file_versions().await.unwrap());
    drifting.sort();
    assert_eq!(drifting, [low, twice]);
}

async fn content_is_shared_when_plain_and_private_when_keyed(f: &Fixture) {
    let store = f.store.clone();
    let text = "services:\n  web:\n    image: nginx # ünïcode ✓\n";
    let plain = sha(text);
    assert!(!store.has_file_content("n1", &plain, false).await.unwrap());
    assert_eq!(store.file_content("n1", &plain, false).await.unwrap(), None);
    assert!(
        store
            .put_file_content("n1", &plain, false, text)
            .await
            .unwrap()
    );
    // The same content again, from another host: stored once, still there.
    assert!(
        store
            .put_file_content("n2", &plain, false, text)
            .await
            .unwrap()
    );
    assert!(store.has_file_content("n3", &plain, false).await.unwrap());
    assert_eq!(
        store
            .file_content("n3", &plain, false)
            .await
            .unwrap()
            .as_deref(),
        Some(text)
    );
    // A plain hash that is not the text's: refused.
    assert!(
        !store
            .put_file_content("n1", &sha("other"), false, text)
            .await
            .unwrap()
    );
    assert!(
        !store
            .has_file_content("n1", &sha("other"), false)
            .await
            .unwrap()
    );

    // Keyed: its node's alone, replaced when sent again.
    assert!(
        store
            .put_file_content("n1", "hmac-1", true, "A=1\n")
            .await
            .unwrap()
    );
    assert!(
        store
            .put_file_content("n1", "hmac-1", true, "A=2\n")
            .await
            .unwrap()
    );
    assert!(store.has_file_content("n1", "hmac-1", true).await.unwrap());
    assert!(!store.has_file_content("n2", "hmac-1", true).await.unwrap());
    assert!(!store.has_file_content("n1", "hmac-1", false).await.unwrap());
    assert_eq!(
        store
            .file_content("n1", "hmac-1", true)
            .await
            .unwrap()
            .as_deref(),
        Some("A=2\n")
    );
    assert_eq!(
        store.file_content("n2", "hmac-1", true).await.unwrap(),
        None
    );

    // Binary (a NUL byte), plain or keyed: refused, nothing stored, the
    // store still writable (PostgreSQL's `text` would have failed).
    let binary = "ab\0cd";
    for (sha256, keyed) in [(sha(binary), false), ("hmac-2".to_string(), true)] {
        assert!(
            !store
                .put_file_content("n1", &sha256, keyed, binary)
                .await
                .unwrap()
        );
        assert!(!store.has_file_content("n1", &sha256, keyed).await.unwrap());
    }
    assert!(
        store
            .put_file_content("n1", "hmac-2", true, "ab cd")
            .await
            .unwrap()
    );
}
