//! The audit trail: appending, searching, the head and verification.

use crate::audit::head::Head;
use crate::audit::{ActorKind, Expected, Outcome, Record};
use crate::suite::{Fixture, store_test_suite};
use crate::*;

store_test_suite!(
    entries_chain_from_the_genesis_and_read_back_whole,
    the_trail_is_searched_newest_first_by_every_filter,
    a_scope_reads_its_own_entries_and_its_hosts,
    verification_holds_the_expected_head,
    two_replicas_writing_at_once_keep_one_chain,
);

async fn entries_chain_from_the_genesis_and_read_back_whole(f: &Fixture) {
    let store = f.store.clone();
    assert_eq!(store.audit_head().await.unwrap(), Head::empty());
    assert_eq!(store.audit_verify(None).await.unwrap().unwrap(), (0, None));
    assert_eq!(store.audit_hash_at(1).await.unwrap(), None);

    let mut record = Record::new(ActorKind::User, "alice", "user.create", Outcome::Ok)
        .target("user:7")
        .detail("created bob (viewer) — ünïcode ✓");
    record.address = "192.0.2.1".into();
    record.user_agent = "curl/8.0".into();
    let first = store.audit(record.clone()).await.unwrap();
    assert_eq!(first.id, 1);
    assert_eq!(first.prev_hash, Head::empty().hash);
    let second = store
        .audit(Record::new(
            ActorKind::Agent,
            "n_1",
            "node.enroll",
            Outcome::Failed,
        ))
        .await
        .unwrap();
    assert_eq!(
        (second.id, second.prev_hash.as_str()),
        (2, first.hash.as_str())
    );
    assert_eq!(
        store.audit_head().await.unwrap(),
        Head {
            id: 2,
            hash: second.hash.clone()
        }
    );
    assert_eq!(
        store.audit_hash_at(1).await.unwrap().as_deref(),
        Some(first.hash.as_str())
    );
    assert_eq!(store.audit_hash_at(3).await.unwrap(), None);

    // Read back exactly as written.
    let found = store
        .audit_search(&AuditQuery::default(), None)
        .await
        .unwrap();
    assert_eq!(found, vec![second.clone(), first.clone()]);
    let e = &found[1];
    assert_eq!(
        (
            e.actor.as_str(),
            e.actor_kind.as_str(),
            e.address.as_str(),
            e.user_agent.as_str(),
            e.action.as_str(),
            e.target.as_str(),
            e.outcome.as_str(),
            e.detail.as_str()
        ),
        (
            "alice",
            "user",
            "192.0.2.1",
            "curl/8.0",
            "user.create",
            "user:7",
            "ok",
            "created bob (viewer) — ünïcode ✓"
        )
    );
    assert_eq!(
        store.audit_verify(None).await.unwrap().unwrap(),
        (2, Some((2, second.hash.clone())))
    );
    store.close().await;

    // Another handle (a restarted hub) continues the same chain.
    let store = f.reopen().await;
    let third = store
        .audit(Record::new(
            ActorKind::User,
            "alice",
            "user.delete",
            Outcome::Ok,
        ))
        .await
        .unwrap();
    assert_eq!((third.id, third.prev_hash), (3, second.hash));
    assert_eq!(crate::suite::chain_holds(&store).await, 3);
    store.close().await;
}

async fn the_trail_is_searched_newest_first_by_every_filter(f: &Fixture) {
    let store = f.store.clone();
    let entries = [
        ("alice", "session.sign_in", "", Outcome::Ok),
        ("bob", "session.sign_in", "", Outcome::Denied),
        ("alice", "user.create", "user:2", Outcome::Ok),
        ("alice", "session.sign_out", "", Outcome::Ok),
        ("token:1", "command.run", "n_1", Outcome::Failed),
        ("bob", "sessions", "n_1", Outcome::Ok),
    ];
    let records: Vec<Record> = entries
        .iter()
        .map(|(actor, action, target, outcome)| {
            Record::new(ActorKind::User, actor, action, *outcome).target(target)
        })
        .collect();
    store.audit_many(&records).await.unwrap();
    let ids = |q: AuditQuery| {
        let store = store.clone();
        async move {
            store
                .audit_search(&q, None)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect::<Vec<i64>>()
        }
    };
    assert_eq!(ids(AuditQuery::default()).await, [6, 5, 4, 3, 2, 1]);
    let q = |f: fn(&mut AuditQuery)| {
        let mut q = AuditQuery::default();
        f(&mut q);
        q
    };
    assert_eq!(ids(q(|q| q.actor = Some("alice".into()))).await, [4, 3, 1]);
    assert_eq!(
        ids(q(|q| q.action = Some("session.sign_in".into()))).await,
        [2, 1]
    );
    // A prefix ending in `.`: every action under it, not `sessions`.
    assert_eq!(
        ids(q(|q| q.action = Some("session.".into()))).await,
        [4, 2, 1]
    );
    assert_eq!(
        ids(q(|q| q.action = Some("session".into()))).await,
        [0i64; 0]
    );
    assert_eq!(ids(q(|q| q.target = Some("n_1".into()))).await, [6, 5]);
    assert_eq!(ids(q(|q| q.outcome = Some("denied".into()))).await, [2]);
    assert_eq!(ids(q(|q| q.before = Some(4))).await, [3, 2, 1]);
    assert_eq!(ids(q(|q| q.limit = Some(2))).await, [6, 5]);
    // Out of range limits are clamped, not refused.
    assert_eq!(ids(q(|q| q.limit = Some(0))).await, [6]);
    assert_eq!(ids(q(|q| q.limit = Some(5000))).await.len(), 6);
    let all = AuditQuery {
        actor: Some("alice".into()),
        action: Some("session.".into()),
        target: Some(String::new()),
        outcome: Some("ok".into()),
        before: Some(4),
        limit: Some(10),
    };
    assert_eq!(ids(all).await, [1]);
    assert_eq!(crate::suite::chain_holds(&store).await, 6);

    // A prefix beyond ASCII is counted in characters, as `substr` counts.
    store
        .audit(Record::new(
            ActorKind::User,
            "bob",
            "räume.leeren",
            Outcome::Ok,
        ))
        .await
        .unwrap();
    assert_eq!(ids(q(|q| q.action = Some("räume.".into()))).await, [7]);
    assert_eq!(ids(q(|q| q.action = Some("räu.".into()))).await, [0i64; 0]);
}

async fn a_scope_reads_its_own_entries_and_its_hosts(f: &Fixture) {
    let store = f.store.clone();
    let records = [
        ("carol", "session.sign_in", ""),
        ("admin", "command.run", "n_lab"),
        ("admin", "command.run", "n_prod"),
        ("admin", "node.label", "node:n_lab"),
        ("dave", "session.sign_in", ""),
        ("admin", "node.label", "n_\"quoted\" ünï ✓"),
    ]
    .map(|(actor, action, target)| {
        Record::new(ActorKind::User, actor, action, Outcome::Ok).target(target)
    });
    store.audit_many(&records).await.unwrap();
    let scope = AuditScope {
        actor: "carol".into(),
        targets: vec![
            "carol".into(),
            "n_lab".into(),
            "node:n_lab".into(),
            "n_\"quoted\" ünï ✓".into(),
        ],
    };
    let found = store
        .audit_search(&AuditQuery::default(), Some(&scope))
        .await
        .unwrap();
    let ids: Vec<i64> = found.iter().map(|e| e.id).collect();
    assert_eq!(ids, [6, 4, 2, 1]);
    // Combined with the other filters.
    let q = AuditQuery {
        action: Some("command.".into()),
        ..Default::default()
    };
    let found = store.audit_search(&q, Some(&scope)).await.unwrap();
    assert_eq!(found.iter().map(|e| e.id).collect::<Vec<_>>(), [2]);
    // No hosts: only its own entries.
    let alone = AuditScope {
        actor: "dave".into(),
        targets: vec![],
    };
    let found = store
        .audit_search(&AuditQuery::default(), Some(&alone))
        .await
        .unwrap();
    assert_eq!(found.iter().map(|e| e.id).collect::<Vec<_>>(), [5]);
}

async fn verification_holds_the_expected_head(f: &Fixture) {
    let store = f.store.clone();
    // The genesis is in every chain, even an empty one.
    let genesis = Expected {
        id: Some(0),
        hash: Head::empty().hash,
    };
    assert!(
        store
            .audit_verify(Some(genesis.clone()))
            .await
            .unwrap()
            .is_ok()
    );
    let mut heads = Vec::new();
    for i in 0..3 {
        let e = store
            .audit(Record::new(ActorKind::User, "alice", "x.y", Outcome::Ok).detail(&i.to_string()))
            .await
            .unwrap();
        heads.push(e);
    }
    let at = |e: &crate::audit::Entry, id: Option<i64>| Expected {
        id,
        hash: e.hash.clone(),
    };
    let last = Some((3, heads[2].hash.clone()));
    assert_eq!(
        store
            .audit_verify(Some(at(&heads[1], Some(2))))
            .await
            .unwrap(),
        Ok((3, last.clone()))
    );
    assert_eq!(
        store.audit_verify(Some(at(&heads[2], None))).await.unwrap(),
        Ok((3, last.clone()))
    );
    assert!(store.audit_verify(Some(genesis)).await.unwrap().is_ok());
    // A head the chain does not hold: cut or replaced.
    let foreign = Expected {
        id: Some(2),
        hash: heads[0].hash.clone(),
    };
    let broken = store
        .audit_verify(Some(foreign))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(broken, crate::audit::Broken::Cut { .. }),
        "{broken}"
    );
    assert_eq!(broken.id(), 4);
}

async fn two_replicas_writing_at_once_keep_one_chain(f: &Fixture) {
    let one = f.store.clone();
    let two = f.reopen().await;
    let write = |store: Store, who: &'static str| async move {
        for i in 0..15 {
            let r = Record::new(ActorKind::User, who, "x.y", Outcome::Ok).detail(&i.to_string());
            if i % 3 == 0 {
                store.audit_many(&[r.clone(), r]).await.unwrap();
            } else {
                store.audit(r).await.unwrap();
            }
        }
    };
    tokio::join!(write(one.clone(), "one"), write(two.clone(), "two"));
    assert_eq!(crate::suite::chain_holds(&one).await, 40);
    assert_eq!(
        one.audit_head().await.unwrap(),
        two.audit_head().await.unwrap()
    );
    assert_eq!(one.audit_head().await.unwrap().id, 40);
    // Neither found the trail cut by the other's entries.
    assert_eq!(one.anchor().broken(), None);
    assert_eq!(two.anchor().broken(), None);
    two.close().await;
}
