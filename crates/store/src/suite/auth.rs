//! Sign-in: passwords, sessions and API tokens.

use std::time::Duration;

use crate::suite::{Fixture, store_test_suite};
use crate::*;

store_test_suite!(
    a_password_opens_a_session_until_it_is_deleted_or_ends,
    api_tokens_are_listed_newest_first_and_revoked_once,
    an_idle_session_ends_and_a_used_one_lives_on,
);

async fn a_password_opens_a_session_until_it_is_deleted_or_ends(f: &Fixture) {
    let store = f.store.clone();
    assert_eq!(store.user_count().await.unwrap(), 0);
    let id = store
        .create_user("alice", "s3cret-pass", Role::Operator)
        .await
        .unwrap();
    assert_eq!(store.user_count().await.unwrap(), 1);
    // A name is taken once; the database says so.
    let twin = store.create_user("alice", "other-pass", Role::Admin).await;
    assert!(
        matches!(&twin, Err(StoreError::Db(sqlx::Error::Database(e))) if e.is_unique_violation()),
        "{twin:?}"
    );
    assert_eq!(store.user_count().await.unwrap(), 1);

    let who = store
        .check_password("alice", "s3cret-pass")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        who,
        Principal {
            kind: PrincipalKind::User {
                id,
                username: "alice".into()
            },
            role: Role::Operator,
            groups: None,
            read_only: false,
        }
    );
    assert_eq!(store.session_principal("nope").await.unwrap(), None);
    let cookie = store
        .create_session(id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        store.session_principal(&cookie).await.unwrap(),
        Some(who.clone())
    );
    // Asked again (no write needed within the minute).
    assert_eq!(store.session_principal(&cookie).await.unwrap(), Some(who));
    let ended = store.create_session(id, Duration::ZERO).await.unwrap();
    assert_eq!(store.session_principal(&ended).await.unwrap(), None);

    let mut rx = store.access_changes();
    rx.borrow_and_update();
    store.delete_session(&cookie).await.unwrap();
    assert!(rx.has_changed().unwrap());
    assert_eq!(store.session_principal(&cookie).await.unwrap(), None);
    store.close().await;

    // Accounts survive a restart; sessions that ended stay ended.
    let store = f.reopen().await;
    assert!(
        store
            .check_password("alice", "s3cret-pass")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.session_principal(&cookie).await.unwrap(), None);
    store.close().await;
}

async fn api_tokens_are_listed_newest_first_and_revoked_once(f: &Fixture) {
    let store = f.store.clone();
    let plain = store.create_api_token(Role::Admin, "ci").await.unwrap();
    assert!(plain.starts_with("tbk_"));
    let (timed_id, timed) = store
        .mint_api_token(Role::Viewer, "dash", Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    let (_, expired) = store
        .mint_api_token(Role::Viewer, "old", Some(Duration::ZERO))
        .await
        .unwrap();
    let groups = vec!["site=lab".to_string()];
    let (scoped_id, scoped) = store
        .mint_scoped_api_token(Role::Operator, "lab-bot", None, Some(&groups), true)
        .await
        .unwrap();

    let p = store.api_token_principal(&plain).await.unwrap().unwrap();
    assert_eq!(
        (p.role, p.groups.clone(), p.read_only),
        (Role::Admin, None, false)
    );
    assert!(matches!(p.kind, PrincipalKind::Token { .. }));
    let p = store.api_token_principal(&timed).await.unwrap().unwrap();
    assert_eq!(p.kind, PrincipalKind::Token { id: timed_id });
    assert_eq!(store.api_token_principal(&expired).await.unwrap(), None);
    let p = store.api_token_principal(&scoped).await.unwrap().unwrap();
    assert_eq!(
        (p.kind, p.role, p.groups, p.read_only),
        (
            PrincipalKind::Token { id: scoped_id },
            Role::Operator,
            Some(groups.clone()),
            true
        )
    );
    assert_eq!(store.api_token_principal("tbk_nope").await.unwrap(), None);

    let listed = store.api_tokens().await.unwrap();
    let names: Vec<&str> = listed.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["lab-bot", "old", "dash", "ci"]);
    let dash = &listed[2];
    assert_eq!(dash.id, timed_id);
    assert_eq!(dash.role, Role::Viewer);
    assert_eq!(
        dash.expires_at.unwrap() - dash.created_at,
        3_600_000,
        "{dash:?}"
    );
    assert_eq!(listed[3].expires_at, None);
    assert_eq!(
        (listed[0].groups.clone(), listed[0].read_only),
        (Some(groups), true)
    );
    assert!(listed.iter().all(|t| t.revoked_at.is_none()));

    // A use is noted beside the request.
    let mut noted = false;
    for _ in 0..100 {
        let tokens = store.api_tokens().await.unwrap();
        if tokens
            .iter()
            .find(|t| t.id == timed_id)
            .unwrap()
            .last_used
            .is_some()
        {
            noted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(noted, "the token's last use is noted");

    let mut rx = store.access_changes();
    rx.borrow_and_update();
    assert!(store.revoke_api_token(timed_id).await.unwrap());
    assert!(rx.has_changed().unwrap());
    assert!(!store.revoke_api_token(timed_id).await.unwrap());
    assert!(!store.revoke_api_token(scoped_id + 100).await.unwrap());
    assert_eq!(store.api_token_principal(&timed).await.unwrap(), None);
    let t = store
        .api_tokens()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.id == timed_id)
        .unwrap();
    assert!(t.revoked_at.is_some());
}

async fn an_idle_session_ends_and_a_used_one_lives_on(f: &Fixture) {
    let store = f.store.clone();
    // Only an account has sessions.
    assert!(
        store
            .create_session(42, Duration::from_secs(60))
            .await
            .is_err()
    );
    let id = store
        .create_user("bob", "pw-bob-1234", Role::Viewer)
        .await
        .unwrap();
    let idle = store
        .create_session(id, Duration::from_secs(7 * 24 * 3600))
        .await
        .unwrap();
    let used = store
        .create_session(id, Duration::from_secs(7 * 24 * 3600))
        .await
        .unwrap();
    let idle_ms = crate::millis(crate::auth::SESSION_IDLE);
    // Both started two minutes ago.
    f.raw("UPDATE sessions SET created_at = created_at - 120000")
        .await;
    // One is used now: its last use is noted.
    assert!(store.session_principal(&used).await.unwrap().is_some());
    // Then time passes: started long ago, the unused one is idle.
    f.raw(&format!(
        "UPDATE sessions SET created_at = created_at - {idle_ms}"
    ))
    .await;
    assert_eq!(store.session_principal(&idle).await.unwrap(), None);
    assert!(store.session_principal(&used).await.unwrap().is_some());
}
