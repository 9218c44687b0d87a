//! The physical layout document.

use crate::suite::{Fixture, audit_actions, chain_holds, rec, store_test_suite};
use crate::*;

store_test_suite!(
    the_layout_moves_on_by_version_and_refuses_stale_writes,
    of_two_replicas_saving_the_same_version_one_wins,
);

async fn the_layout_moves_on_by_version_and_refuses_stale_writes(f: &Fixture) {
    let store = f.store.clone();
    assert_eq!(store.layout().await.unwrap(), (0, None));
    // Stale: nobody saved version 3.
    assert_eq!(
        store
            .put_layout(3, "{}", &rec("layout.update"))
            .await
            .unwrap(),
        PutLayout::Conflict(0)
    );
    let doc = r#"{"rooms":[{"name":"Küche ✓","racks":[]}]}"#;
    assert_eq!(
        store
            .put_layout(0, doc, &rec("layout.update"))
            .await
            .unwrap(),
        PutLayout::Stored(1)
    );
    assert_eq!(store.layout().await.unwrap(), (1, Some(doc.to_string())));
    assert_eq!(
        store
            .put_layout(1, "{\"v\":2}", &rec("layout.update"))
            .await
            .unwrap(),
        PutLayout::Stored(2)
    );
    assert_eq!(
        store
            .put_layout(1, "{\"v\":3}", &rec("layout.update"))
            .await
            .unwrap(),
        PutLayout::Conflict(2)
    );
    assert_eq!(store.layout().await.unwrap(), (2, Some("{\"v\":2}".into())));
    // Only the saves were audited.
    assert_eq!(audit_actions(&store).await.len(), 2);
    chain_holds(&store).await;
    store.close().await;

    // Another replica sees the same version.
    let other = f.reopen().await;
    assert_eq!(
        other
            .put_layout(1, "{}", &rec("layout.update"))
            .await
            .unwrap(),
        PutLayout::Conflict(2)
    );
    assert_eq!(other.layout().await.unwrap().0, 2);
    other.close().await;
}

async fn of_two_replicas_saving_the_same_version_one_wins(f: &Fixture) {
    let one = f.store.clone();
    let two = f.reopen().await;
    let record = rec("layout.update");
    for base in 0..5 {
        let (a, b) = tokio::join!(
            one.put_layout(base, "{\"by\":1}", &record),
            two.put_layout(base, "{\"by\":2}", &record),
        );
        let mut got = [a.unwrap(), b.unwrap()];
        got.sort_by_key(|p| matches!(p, PutLayout::Conflict(_)));
        assert_eq!(
            got,
            [PutLayout::Stored(base + 1), PutLayout::Conflict(base + 1)]
        );
    }
    assert_eq!(one.layout().await.unwrap().0, 5);
    assert_eq!(chain_holds(&one).await, 5);
    two.close().await;
}
