use std::path::PathBuf;
use std::time::Duration;

use super::*;

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("twinbay-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn a_join_token_enrolls_exactly_one_key() {
    let dir = tempdir("enroll");
    let store = Store::open(&dir).await.unwrap();
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
    let store = Store::open(&dir).await.unwrap();
    assert_eq!(
        store.node_key(&node).await.unwrap().as_deref(),
        Some("key-a")
    );
    store.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_token_spent_on_a_simulated_fleet_enrolls_only_simulated_agents() {
    let dir = tempdir("fleet");
    let store = Store::open(&dir).await.unwrap();
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
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn api_tokens_and_sessions_authenticate_with_their_role() {
    let dir = tempdir("auth");
    let store = Store::open(&dir).await.unwrap();
    let token = store.create_api_token(Role::Viewer, "ci").await.unwrap();
    let p = store.api_token_principal(&token).await.unwrap().unwrap();
    assert_eq!(p.role, Role::Viewer);
    assert_eq!(store.api_token_principal("tbk_wrong").await.unwrap(), None);

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
    std::fs::remove_dir_all(&dir).unwrap();
}
