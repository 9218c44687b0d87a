use std::time::Duration;

use super::suite::{Fixture, store_test_suite};
use super::*;

store_test_suite!(
    a_join_token_enrolls_exactly_one_key,
    a_token_spent_on_a_simulated_fleet_enrolls_only_simulated_agents,
    api_tokens_and_sessions_authenticate_with_their_role,
    old_and_surplus_commands_are_pruned_but_running_ones_stay,
    audit_entries_in_one_batch_keep_their_order_and_the_chain,
);

async fn a_join_token_enrolls_exactly_one_key(f: &Fixture) {
    let store = f.store.clone();
    let token = store
        .create_join_token(Duration::from_secs(60))
        .await
        .unwrap();

    assert!(matches!(
        store.enroll("nope", "key-a", false).await,
        Err(EnrollError::Unknown)
    ));
    let node = store.enroll(&token, "key-a", false).await.unwrap();
    assert!(node.starts_with("n_"));
    assert_eq!(
        store.node_key(&node).await.unwrap().as_deref(),
        Some("key-a")
    );
    // The same agent retrying after a lost answer gets its node back...
    assert_eq!(store.enroll(&token, "key-a", false).await.unwrap(), node);
    // ...anyone else is refused.
    assert!(matches!(
        store.enroll(&token, "key-b", false).await,
        Err(EnrollError::Used)
    ));

    let expired = store.create_join_token(Duration::ZERO).await.unwrap();
    assert!(matches!(
        store.enroll(&expired, "key-c", false).await,
        Err(EnrollError::Expired)
    ));
    assert_eq!(store.nodes().await.unwrap().len(), 1);
    store.close().await;

    // Everything survives a reopen.
    let store = f.reopen().await;
    assert_eq!(
        store.node_key(&node).await.unwrap().as_deref(),
        Some("key-a")
    );
    store.close().await;
}

async fn a_token_spent_on_a_simulated_fleet_enrolls_only_simulated_agents(f: &Fixture) {
    let store = f.store.clone();
    let token = store
        .create_join_token(Duration::from_secs(60))
        .await
        .unwrap();
    let first = store.enroll(&token, "sim-0", true).await.unwrap();
    let second = store.enroll(&token, "sim-1", true).await.unwrap();
    assert_ne!(first, second);
    // Each simulated agent gets its own node back when it enrolls again.
    assert_eq!(store.enroll(&token, "sim-1", true).await.unwrap(), second);
    // A real agent cannot ride on a simulated fleet's token.
    assert!(matches!(
        store.enroll(&token, "real", false).await,
        Err(EnrollError::Used)
    ));
    let nodes = store.nodes().await.unwrap();
    assert_eq!(nodes.len(), 2);
    assert!(nodes.iter().all(|n| n.simulated));

    // A token spent by a real agent enrolls nobody else, simulated or not.
    let real = store
        .create_join_token(Duration::from_secs(60))
        .await
        .unwrap();
    let node = store.enroll(&real, "real", false).await.unwrap();
    assert!(matches!(
        store.enroll(&real, "sim-9", true).await,
        Err(EnrollError::Used)
    ));
    let nodes = store.nodes().await.unwrap();
    assert!(!nodes.iter().find(|n| n.id == node).unwrap().simulated);
    store.close().await;
}

async fn api_tokens_and_sessions_authenticate_with_their_role(f: &Fixture) {
    let store = f.store.clone();
    let token = store.create_api_token(Role::Viewer, "ci").await.unwrap();
    let p = store.api_token_principal(&token).await.unwrap().unwrap();
    assert_eq!(p.role, Role::Viewer);
    assert!(!p.read_only);
    assert_eq!(store.api_token_principal("tbk_wrong").await.unwrap(), None);
    // A read-only token keeps its role and says it is read-only, listed too.
    let (id, ro) = store
        .mint_scoped_api_token(Role::Operator, "assistant", None, None, true)
        .await
        .unwrap();
    let p = store.api_token_principal(&ro).await.unwrap().unwrap();
    assert_eq!((p.role, p.read_only), (Role::Operator, true));
    let listed = store.api_tokens().await.unwrap();
    let flags: Vec<(i64, bool)> = listed.iter().map(|t| (t.id, t.read_only)).collect();
    assert!(flags.contains(&(id, true)) && flags.iter().filter(|f| f.1).count() == 1);

    let uid = store
        .create_user("admin", "s3cret-pass", Role::Admin)
        .await
        .unwrap();
    assert!(
        store
            .check_password("admin", "wrong")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .check_password("ghost", "s3cret-pass")
            .await
            .unwrap()
            .is_none()
    );
    let who = store
        .check_password("admin", "s3cret-pass")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(who.role, Role::Admin);

    let cookie = store
        .create_session(uid, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(store.session_principal(&cookie).await.unwrap(), Some(who));
    store.delete_session(&cookie).await.unwrap();
    assert_eq!(store.session_principal(&cookie).await.unwrap(), None);
    store.close().await;
}

async fn old_and_surplus_commands_are_pruned_but_running_ones_stay(f: &Fixture) {
    use twinbay_proto::command::{Op, Role as CmdRole, Status};
    let store = f.store.clone();
    let command = |id: &str, node: &str, started: i64, status: Status| CommandRecord {
        id: id.into(),
        node_id: node.into(),
        op: Op::Action {
            name: "x".into(),
            args: Default::default(),
        },
        summary: "action x".into(),
        actor: "alice".into(),
        actor_kind: "user".into(),
        role_needed: CmdRole::Operator,
        status,
        exit_code: Some(0),
        error: None,
        started_ms: started,
        ended_ms: (status != Status::Running).then_some(started + 1),
        duration_ms: None,
        truncated: false,
    };
    let all = [
        command("a1", "n1", 1_000, Status::Ok),
        command("a2", "n1", 50_000, Status::Ok),
        command("a3", "n1", 60_000, Status::Failed),
        command("a4", "n1", 70_000, Status::Ok),
        command("a0", "n1", 500, Status::Running),
        command("b1", "n2", 80_000, Status::Ok),
    ];
    for c in &all {
        store.insert_command(c).await.unwrap();
        if c.status != Status::Running {
            store.finish_command(c, &[]).await.unwrap();
        }
    }
    // Older than 10 s goes (a1); then n1 keeps its newest two (a4, a3), and
    // the running one stays whatever its age.
    let gone = store.prune_commands(10_000, 2).await.unwrap();
    assert_eq!(gone, 2);
    let ids = |n: &str| {
        let store = store.clone();
        let n = n.to_string();
        async move {
            store
                .node_commands(&n, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(ids("n1").await, ["a4", "a3", "a0"]);
    assert_eq!(ids("n2").await, ["b1"]);
}

/// A batch of audit entries lands in one transaction, in order, on the one
/// hash chain (the MCP read queue writes its batches this way).
async fn audit_entries_in_one_batch_keep_their_order_and_the_chain(f: &Fixture) {
    use crate::audit::{ActorKind, Outcome, Record};
    let store = f.store.clone();
    let one = Record::new(ActorKind::Token, "token:1", "mcp.read", Outcome::Ok);
    store.audit(one.clone().detail("first")).await.unwrap();
    let batch: Vec<Record> = (0..3)
        .map(|i| one.clone().detail(&format!("batch {i}")))
        .collect();
    store.audit_many(&batch).await.unwrap();
    store.audit_many(&[]).await.unwrap();
    let q = AuditQuery {
        action: Some("mcp.read".into()),
        ..Default::default()
    };
    let found = store.audit_search(&q, None).await.unwrap();
    let details: Vec<&str> = found.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(details, ["batch 2", "batch 1", "batch 0", "first"]);
    assert!(found.windows(2).all(|w| w[0].id == w[1].id + 1));
    assert!(store.audit_verify(None).await.unwrap().is_ok());
}
