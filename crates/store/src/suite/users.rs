//! People: accounts, roles, groups, passwords and their sessions.

use std::time::Duration;

use crate::suite::{Fixture, store_test_suite};
use crate::*;

store_test_suite!(
    accounts_are_listed_by_name_with_unique_names,
    roles_and_groups_change_but_never_the_last_admin,
    a_new_password_ends_every_other_session,
    sessions_end_by_user_and_expired_ones_are_purged,
);

/// Whether the store said a credential's access changed since last asked.
fn changed(rx: &mut tokio::sync::watch::Receiver<u64>) -> bool {
    let changed = rx.has_changed().unwrap();
    rx.borrow_and_update();
    changed
}

async fn accounts_are_listed_by_name_with_unique_names(f: &Fixture) {
    let store = f.store.clone();
    assert!(store.users().await.unwrap().is_empty());
    let zoe = store
        .add_user("zoe", "pw-zoe-123", Role::Viewer)
        .await
        .unwrap();
    let al = store
        .add_user("al", "pw-al-1234", Role::Admin)
        .await
        .unwrap();
    assert_ne!(zoe, al);
    let taken = store.add_user("zoe", "other-pass", Role::Admin).await;
    assert!(matches!(taken, Err(UserError::Taken)), "{taken:?}");
    let users = store.users().await.unwrap();
    let seen: Vec<(i64, &str, Role, Option<Vec<String>>)> = users
        .iter()
        .map(|u| (u.id, u.username.as_str(), u.role, u.groups.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (al, "al", Role::Admin, None),
            (zoe, "zoe", Role::Viewer, None)
        ]
    );
    assert!(users.iter().all(|u| u.created_at > 0));
    let one = store.user(zoe).await.unwrap().unwrap();
    assert_eq!((one.id, one.username.as_str()), (zoe, "zoe"));
    assert!(store.user(al + zoe + 100).await.unwrap().is_none());
    assert_eq!(store.user_count().await.unwrap(), 2);
}

async fn roles_and_groups_change_but_never_the_last_admin(f: &Fixture) {
    let store = f.store.clone();
    let mut rx = store.access_changes();
    rx.borrow_and_update();
    let admin = store
        .add_user("root", "pw-root-123", Role::Admin)
        .await
        .unwrap();
    let bob = store
        .add_user("bob", "pw-bob-1234", Role::Operator)
        .await
        .unwrap();
    let nobody = admin + bob + 100;

    // Groups: limited, then every host again.
    let groups = vec!["site=lab".to_string(), "rack=2".to_string()];
    store.set_groups(bob, Some(&groups)).await.unwrap();
    assert!(changed(&mut rx));
    assert_eq!(
        store.user(bob).await.unwrap().unwrap().groups,
        Some(groups.clone())
    );
    let p = store
        .check_password("bob", "pw-bob-1234")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.groups, Some(groups));
    store.set_groups(bob, None).await.unwrap();
    assert_eq!(store.user(bob).await.unwrap().unwrap().groups, None);
    assert!(matches!(
        store.set_groups(nobody, None).await,
        Err(UserError::NotFound)
    ));
    changed(&mut rx);

    // The only admin can be neither demoted nor removed.
    assert!(matches!(
        store.set_role(admin, Role::Viewer).await,
        Err(UserError::LastAdmin)
    ));
    assert!(matches!(
        store.remove_user(admin).await,
        Err(UserError::LastAdmin)
    ));
    assert!(!changed(&mut rx));
    assert!(matches!(
        store.set_role(nobody, Role::Viewer).await,
        Err(UserError::NotFound)
    ));
    store.set_role(bob, Role::Admin).await.unwrap();
    assert!(changed(&mut rx));
    store.set_role(admin, Role::Viewer).await.unwrap();
    assert!(changed(&mut rx));
    assert_eq!(store.user(admin).await.unwrap().unwrap().role, Role::Viewer);
    assert_eq!(store.user(bob).await.unwrap().unwrap().role, Role::Admin);

    // Removing an account ends its sessions.
    let cookie = store
        .create_session(admin, Duration::from_secs(60))
        .await
        .unwrap();
    store.remove_user(admin).await.unwrap();
    assert!(changed(&mut rx));
    assert!(store.user(admin).await.unwrap().is_none());
    assert_eq!(store.session_principal(&cookie).await.unwrap(), None);
    assert!(matches!(
        store.remove_user(admin).await,
        Err(UserError::NotFound)
    ));
    assert_eq!(store.user_count().await.unwrap(), 1);
}

async fn a_new_password_ends_every_other_session(f: &Fixture) {
    let store = f.store.clone();
    let mut rx = store.access_changes();
    let bob = store
        .add_user("bob", "old-password", Role::Viewer)
        .await
        .unwrap();
    let here = store
        .create_session(bob, Duration::from_secs(60))
        .await
        .unwrap();
    let there = store
        .create_session(bob, Duration::from_secs(60))
        .await
        .unwrap();
    rx.borrow_and_update();
    store
        .set_password(bob, "new-password", Some(&here))
        .await
        .unwrap();
    assert!(changed(&mut rx));
    assert!(store.session_principal(&here).await.unwrap().is_some());
    assert_eq!(store.session_principal(&there).await.unwrap(), None);
    assert!(
        store
            .check_password("bob", "old-password")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .check_password("bob", "new-password")
            .await
            .unwrap()
            .is_some()
    );
    // Without one to keep, every session ends.
    store
        .set_password(bob, "newer-password", None)
        .await
        .unwrap();
    assert_eq!(store.session_principal(&here).await.unwrap(), None);
    assert!(matches!(
        store.set_password(bob + 100, "x-password", None).await,
        Err(UserError::NotFound)
    ));
}

async fn sessions_end_by_user_and_expired_ones_are_purged(f: &Fixture) {
    let store = f.store.clone();
    let mut rx = store.access_changes();
    let bob = store
        .add_user("bob", "pw-bob-1234", Role::Viewer)
        .await
        .unwrap();
    let eve = store
        .add_user("eve", "pw-eve-1234", Role::Viewer)
        .await
        .unwrap();
    for _ in 0..2 {
        store
            .create_session(bob, Duration::from_secs(60))
            .await
            .unwrap();
    }
    let eves = store
        .create_session(eve, Duration::from_secs(60))
        .await
        .unwrap();
    rx.borrow_and_update();
    assert_eq!(store.end_sessions(bob).await.unwrap(), 2);
    assert!(changed(&mut rx));
    assert_eq!(store.end_sessions(bob).await.unwrap(), 0);
    assert!(store.session_principal(&eves).await.unwrap().is_some());

    // Past its end: refused at once, forgotten by the purge.
    let ended = store.create_session(bob, Duration::ZERO).await.unwrap();
    assert_eq!(store.session_principal(&ended).await.unwrap(), None);
    store.purge_sessions().await.unwrap();
    assert_eq!(store.end_sessions(bob).await.unwrap(), 0);
    assert!(store.session_principal(&eves).await.unwrap().is_some());
    assert_eq!(store.end_sessions(eve).await.unwrap(), 1);
}
