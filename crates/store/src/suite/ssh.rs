//! Hosts reached over SSH.

use std::time::Duration;

use crate::ssh::hosts::SshHost;
use crate::suite::{Fixture, store_test_suite};
use crate::*;

store_test_suite!(
    ssh_hosts_are_kept_in_order_with_unique_targets,
    a_join_token_names_the_node_it_enrolled,
);

fn host(id: &str, target: &str) -> SshHost {
    SshHost {
        id: id.into(),
        target: target.into(),
        fingerprint: "SHA256:abc".into(),
        agentless: true,
        interval_secs: Some(15),
        own_key: false,
        node_id: None,
        security: None,
        install: None,
        created_ms: 1,
    }
}

async fn ssh_hosts_are_kept_in_order_with_unique_targets(f: &Fixture) {
    let store = f.store.clone();
    assert!(store.ssh_hosts().await.unwrap().is_empty());
    store
        .save_ssh_host(&host("ssh-z", "ssh://root@z:22"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(3)).await;
    store
        .save_ssh_host(&host("ssh-a", "ssh://root@a:22"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(3)).await;
    // Changed: it keeps its place (oldest first).
    let mut z = host("ssh-z", "ssh://admin@z:2222");
    z.node_id = Some("n_z".into());
    store.save_ssh_host(&z).await.unwrap();
    let hosts = store.ssh_hosts().await.unwrap();
    let seen: Vec<(&str, &str, Option<&str>)> = hosts
        .iter()
        .map(|h| (h.id.as_str(), h.target.as_str(), h.node_id.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            ("ssh-z", "ssh://admin@z:2222", Some("n_z")),
            ("ssh-a", "ssh://root@a:22", None)
        ]
    );
    assert_eq!(hosts[1].interval_secs, Some(15));

    // Another host with a target already taken: the database refuses it.
    let twin = store.save_ssh_host(&host("ssh-b", "ssh://root@a:22")).await;
    assert!(
        matches!(&twin, Err(StoreError::Db(sqlx::Error::Database(e))) if e.is_unique_violation()),
        "{twin:?}"
    );

    assert!(store.remove_ssh_host("ssh-z").await.unwrap());
    assert!(!store.remove_ssh_host("ssh-z").await.unwrap());
    let ids: Vec<String> = store
        .ssh_hosts()
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(ids, ["ssh-a"]);
}

async fn a_join_token_names_the_node_it_enrolled(f: &Fixture) {
    let store = f.store.clone();
    let token = store
        .create_join_token(Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(store.node_by_join_token(&token).await.unwrap(), None);
    let node = store.enroll(&token, "key-a", false).await.unwrap();
    assert_eq!(store.node_by_join_token(&token).await.unwrap(), Some(node));
    assert_eq!(store.node_by_join_token("nope").await.unwrap(), None);
}
