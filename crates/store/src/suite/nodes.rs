//! Nodes: join tokens, enrollment, agentless nodes, twins.

use std::time::Duration;

use twinbay_proto::model::{NodeState, Sample};

use crate::suite::{Fixture, store_test_suite};
use crate::*;

store_test_suite!(
    a_node_keeps_its_key_twin_and_journal,
    an_agentless_node_is_added_once_and_its_key_stays_unique,
    text_an_agent_sends_with_a_nul_is_stored,
);

fn write(
    id: &str,
    last_seen: i64,
    state: Option<&NodeState>,
    sample: Option<&Sample>,
) -> NodeWrite {
    NodeWrite {
        id: id.into(),
        hostname: format!("host-{last_seen}"),
        agent_version: "1.2.3".into(),
        last_seen,
        state: state.map(|s| serde_json::to_string(s).unwrap()),
        resources: sample.map(|s| serde_json::to_string(s).unwrap()),
        journal: None,
    }
}

async fn a_node_keeps_its_key_twin_and_journal(f: &Fixture) {
    let store = f.store.clone();
    let token = store
        .create_join_token(Duration::from_secs(60))
        .await
        .unwrap();
    let a = store.enroll(&token, "key-a", false).await.unwrap();
    let other = store
        .create_join_token(Duration::from_secs(60))
        .await
        .unwrap();
    let b = store.enroll(&other, "key-b", true).await.unwrap();
    assert_eq!(store.node_key("n_nobody").await.unwrap(), None);
    assert_eq!(store.node_key(&b).await.unwrap().as_deref(), Some("key-b"));

    // Freshly enrolled: no twin yet, listed by id.
    let nodes = store.nodes().await.unwrap();
    let mut ids = vec![a.clone(), b.clone()];
    ids.sort();
    assert_eq!(nodes.iter().map(|n| n.id.clone()).collect::<Vec<_>>(), ids);
    let n = nodes.iter().find(|n| n.id == a).unwrap();
    assert_eq!(
        (
            n.public_key.as_str(),
            n.agent_version.as_str(),
            n.last_seen,
            n.simulated
        ),
        ("key-a", "", None, false)
    );
    assert_eq!(n.state, NodeState::default());
    assert!(n.resources.is_none());
    assert!(nodes.iter().find(|n| n.id == b).unwrap().simulated);

    // The twin, its resources and a journal row land together.
    let mut state = NodeState::default();
    state.host.hostname = "web-1".into();
    let sample = Sample {
        ts_ms: 4_000,
        cpu_pct: 12.5,
        mem_used: 42 << 20,
        ..Default::default()
    };
    let row = crate::journal::Row {
        node_id: a.clone(),
        ts: 4_000,
        checkpoint: true,
        body: vec![0, 1, 2, 255],
    };
    store
        .save_nodes(
            &[write(&a, 5_000, Some(&state), Some(&sample))],
            std::slice::from_ref(&row),
        )
        .await
        .unwrap();
    let n = store
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.id == a)
        .unwrap();
    assert_eq!(
        (n.agent_version.as_str(), n.last_seen),
        ("1.2.3", Some(5_000))
    );
    assert_eq!(n.state, state);
    assert_eq!(n.resources, Some(sample));
    assert_eq!(store.journal_head(&a).await.unwrap(), vec![row]);

    // Only liveness changed: the twin stays, the resources go.
    store
        .save_nodes(&[write(&a, 6_000, None, None)], &[])
        .await
        .unwrap();
    // A twin without a hostname takes the stored one.
    store
        .save_nodes(&[write(&b, 7_000, Some(&NodeState::default()), None)], &[])
        .await
        .unwrap();
    let nodes = store.nodes().await.unwrap();
    let n = nodes.iter().find(|n| n.id == a).unwrap();
    assert_eq!(
        (n.last_seen, n.state.host.hostname.as_str()),
        (Some(6_000), "web-1")
    );
    assert!(n.resources.is_none());
    let n = nodes.iter().find(|n| n.id == b).unwrap();
    assert_eq!(n.state.host.hostname, "host-7000");
    crate::suite::chain_holds(&store).await;
    store.close().await;

    let store = f.reopen().await;
    let n = store
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.id == a)
        .unwrap();
    assert_eq!(n.state.host.hostname, "web-1");
    store.close().await;
}

async fn an_agentless_node_is_added_once_and_its_key_stays_unique(f: &Fixture) {
    let store = f.store.clone();
    store.add_agentless_node("ssh-1", "ssh:abc").await.unwrap();
    // Nothing if it exists: the key stays.
    store
        .add_agentless_node("ssh-1", "ssh:other")
        .await
        .unwrap();
    assert_eq!(
        store.node_key("ssh-1").await.unwrap().as_deref(),
        Some("ssh:abc")
    );
    let nodes = store.nodes().await.unwrap();
    assert_eq!(nodes.len(), 1);
    assert!(!nodes[0].simulated);
    assert_eq!(nodes[0].last_seen, None);
    // A key is pinned to one node only.
    let taken = store.add_agentless_node("ssh-2", "ssh:abc").await;
    assert!(
        matches!(&taken, Err(StoreError::Db(sqlx::Error::Database(e))) if e.is_unique_violation()),
        "{taken:?}"
    );
    let token = store
        .create_join_token(Duration::from_secs(60))
        .await
        .unwrap();
    // An agent later enrolled with that key takes the node over.
    assert_eq!(
        store.enroll(&token, "ssh:abc", false).await.unwrap(),
        "ssh-1"
    );
    assert_eq!(store.nodes().await.unwrap().len(), 1);
}

/// An agent's text may hold a NUL, which PostgreSQL's text cannot: it is
/// stored as U+FFFD on both backends, and the other nodes' writes in the
/// same transaction are not lost.
async fn text_an_agent_sends_with_a_nul_is_stored(f: &Fixture) {
    let store = f.store.clone();
    store.add_agentless_node("n_a", "key-a").await.unwrap();
    store.add_agentless_node("n_b", "key-b").await.unwrap();
    let mut bad = write("n_a", 5_000, Some(&NodeState::default()), None);
    bad.hostname = "web\0-1".into();
    bad.agent_version = "1.0\0".into();
    store
        .save_nodes(&[bad, write("n_b", 5_000, None, None)], &[])
        .await
        .unwrap();
    let nodes = store.nodes().await.unwrap();
    assert_eq!(
        (
            nodes[0].state.host.hostname.as_str(),
            nodes[0].agent_version.as_str()
        ),
        ("web\u{fffd}-1", "1.0\u{fffd}")
    );
    assert_eq!(nodes[1].last_seen, Some(5_000));

    let event = crate::timeline::Event {
        node_id: "n_a".into(),
        ts: 1,
        kind: "container.died".into(),
        target: "we\0b".into(),
        detail: serde_json::json!({"why": "a\0b"}),
    };
    store.insert_events(&[event]).await.unwrap();
    let got = store.events(Some("n_a"), i64::MAX, 10).await.unwrap();
    assert_eq!(got[0].target, "we\u{fffd}b");
    assert_eq!(got[0].detail["why"], "a\0b");

    let mut c = CommandRecord {
        id: "c1".into(),
        node_id: "n_a".into(),
        op: twinbay_proto::command::Op::Action {
            name: "x".into(),
            args: Default::default(),
        },
        summary: "action x".into(),
        actor: "alice".into(),
        actor_kind: "user".into(),
        role_needed: Role::Operator,
        status: twinbay_proto::command::Status::Running,
        exit_code: None,
        error: None,
        started_ms: 1,
        ended_ms: None,
        duration_ms: None,
        truncated: false,
    };
    store.insert_command(&c).await.unwrap();
    c.end(
        twinbay_proto::command::Status::Failed,
        None,
        Some("no such file: /tmp/a\0b".into()),
        2,
    );
    store.finish_command(&c, &[]).await.unwrap();
    let (got, _) = store.command("c1").await.unwrap().unwrap();
    assert_eq!(got.error.as_deref(), Some("no such file: /tmp/a\u{fffd}b"));
}
