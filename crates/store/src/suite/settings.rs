//! Settings: one value per key.

use crate::suite::{Fixture, store_test_suite};
use crate::*;

store_test_suite!(a_setting_is_replaced_and_unknown_ones_are_none);

async fn a_setting_is_replaced_and_unknown_ones_are_none(f: &Fixture) {
    let store = f.store.clone();
    assert_eq!(store.setting(settings::PUBLIC_URL).await.unwrap(), None);
    store
        .set_setting(settings::PUBLIC_URL, "https://hub.example:8443")
        .await
        .unwrap();
    store
        .set_setting(settings::UPDATE_KEYS, "key one\nkey two ✓")
        .await
        .unwrap();
    store
        .set_setting(settings::PUBLIC_URL, "https://hub2.example")
        .await
        .unwrap();
    assert_eq!(
        store
            .setting(settings::PUBLIC_URL)
            .await
            .unwrap()
            .as_deref(),
        Some("https://hub2.example")
    );
    assert_eq!(
        store
            .setting(settings::UPDATE_KEYS)
            .await
            .unwrap()
            .as_deref(),
        Some("key one\nkey two ✓")
    );
    store
        .set_setting(settings::TLS_FINGERPRINT, "")
        .await
        .unwrap();
    assert_eq!(
        store
            .setting(settings::TLS_FINGERPRINT)
            .await
            .unwrap()
            .as_deref(),
        Some("")
    );
    assert_eq!(store.setting("nope").await.unwrap(), None);
    store.close().await;
    let store = f.reopen().await;
    assert_eq!(
        store
            .setting(settings::PUBLIC_URL)
            .await
            .unwrap()
            .as_deref(),
        Some("https://hub2.example")
    );
    store.close().await;
}
