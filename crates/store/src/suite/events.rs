//! The event timeline.

use crate::suite::{Fixture, store_test_suite};
use crate::timeline::Event;

store_test_suite!(
    events_are_read_newest_first_before_a_time,
    an_agents_link_is_its_last_word
);

fn event(node: &str, ts: i64, kind: &str, target: &str) -> Event {
    Event {
        node_id: node.into(),
        ts,
        kind: kind.into(),
        target: target.into(),
        detail: serde_json::json!({"image": "nginx:1.27", "exit": 137, "why": "ünïcode ✓"}),
    }
}

async fn events_are_read_newest_first_before_a_time(f: &Fixture) {
    let store = f.store.clone();
    store.insert_events(&[]).await.unwrap();
    // More than one statement's worth, in one call.
    let many: Vec<Event> = (0..450)
        .map(|i| {
            event(
                if i % 3 == 0 { "n1" } else { "n2" },
                10_000 + i,
                "port.opened",
                &i.to_string(),
            )
        })
        .collect();
    store.insert_events(&many).await.unwrap();
    let all = store.events(None, i64::MAX, 1000).await.unwrap();
    assert_eq!(all.len(), 450);
    assert_eq!(all[0], many[449]);
    assert!(all.windows(2).all(|w| w[0].ts > w[1].ts));
    let n1 = store.events(Some("n1"), i64::MAX, 1000).await.unwrap();
    assert_eq!(n1.len(), 150);
    assert!(n1.iter().all(|e| e.node_id == "n1"));
    // Strictly before `before`, at most `limit`.
    let page = store.events(Some("n2"), 10_005, 3).await.unwrap();
    let ts: Vec<i64> = page.iter().map(|e| e.ts).collect();
    assert_eq!(ts, [10_004, 10_002, 10_001]);
    // At most a negative number: none (SQLite read -1 as no limit at all,
    // PostgreSQL refused it).
    assert!(store.events(None, i64::MAX, -1).await.unwrap().is_empty());
    assert!(store.events(None, i64::MAX, 0).await.unwrap().is_empty());
    assert!(
        store
            .events(Some("n3"), i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // The same time: the later written first.
    store
        .insert_events(&[
            event("n3", 5, "unit.failed", "a"),
            event("n3", 5, "unit.failed", "b"),
        ])
        .await
        .unwrap();
    let same: Vec<String> = store
        .events(Some("n3"), 6, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.target)
        .collect();
    assert_eq!(same, ["b", "a"]);
    assert_eq!(
        store.events(Some("n3"), 6, 10).await.unwrap()[0].detail["exit"],
        137
    );
}

async fn an_agents_link_is_its_last_word(f: &Fixture) {
    let store = f.store.clone();
    assert_eq!(store.agent_link_at("n1", i64::MAX).await.unwrap(), None);
    store
        .insert_events(&[
            event("n1", 100, "agent.connected", ""),
            event("n1", 150, "container.died", "web"),
            event("n1", 200, "agent.disconnected", ""),
            event("n1", 300, "agent.connected", ""),
            event("n2", 250, "agent.disconnected", ""),
            event("n1", 300, "agent.disconnected", ""),
        ])
        .await
        .unwrap();
    assert_eq!(store.agent_link_at("n1", 99).await.unwrap(), None);
    assert_eq!(
        store.agent_link_at("n1", 100).await.unwrap(),
        Some((100, true))
    );
    assert_eq!(
        store.agent_link_at("n1", 199).await.unwrap(),
        Some((100, true))
    );
    assert_eq!(
        store.agent_link_at("n1", 250).await.unwrap(),
        Some((200, false))
    );
    // Two at the same time: the later written wins.
    assert_eq!(
        store.agent_link_at("n1", 1_000).await.unwrap(),
        Some((300, false))
    );
    assert_eq!(
        store.agent_link_at("n2", 1_000).await.unwrap(),
        Some((250, false))
    );
}
