//! Rollouts, kept whole as JSON.

use crate::rollouts::{Batch, Counts, Everyone, HostState, Rollout, RolloutHost, State, Target};
use crate::suite::{Fixture, store_test_suite};

store_test_suite!(
    rollouts_read_back_newest_first_and_skip_what_does_not_decode,
    finished_rollouts_beyond_the_kept_ones_go,
);

fn rollout(id: &str, created_ms: i64, state: State) -> Rollout {
    Rollout {
        id: id.into(),
        version: "1.4.0".into(),
        target: Target::Group {
            group: "site=lab".into(),
        },
        canaries: 1,
        batch: Batch::Percent(25),
        pause_between_ms: 30_000,
        max_failures: 2,
        state,
        reason: None,
        created_ms,
        created_by: "alice".into(),
        updated_ms: created_ms,
        finished_ms: None,
        counts: Counts {
            pending: 1,
            ..Default::default()
        },
        hosts: vec![RolloutHost {
            node_id: "n_1".into(),
            hostname: "web-1".into(),
            stage: "canary".into(),
            batch: 0,
            state: HostState::Pending,
            from_version: "1.3.9".into(),
            command_id: None,
            reason: None,
            simulated: false,
            updated_ms: created_ms,
        }],
    }
}

async fn rollouts_read_back_newest_first_and_skip_what_does_not_decode(f: &Fixture) {
    let store = f.store.clone();
    assert!(store.rollouts().await.unwrap().is_empty());
    assert_eq!(store.rollout("ro_none").await.unwrap(), None);
    let mut a = rollout("ro_a", 1_000, State::Running);
    a.target = Target::All(Everyone::All);
    a.batch = Batch::Count(3);
    let b = rollout("ro_b", 2_000, State::Running);
    let c = rollout("ro_c", 2_000, State::Paused);
    for r in [&a, &b, &c] {
        store.save_rollout(r).await.unwrap();
    }
    assert_eq!(store.rollout("ro_a").await.unwrap(), Some(a.clone()));
    let ids: Vec<String> = store
        .rollouts()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["ro_c", "ro_b", "ro_a"]);

    // Rewritten on change: it keeps its place.
    a.state = State::Done;
    a.finished_ms = Some(9_000);
    a.reason = Some("every host is healthy ✓".into());
    a.created_ms = 99_000;
    store.save_rollout(&a).await.unwrap();
    let all = store.rollouts().await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[2], a);

    // Written by a newer hub: skipped, not an error.
    f.raw("INSERT INTO rollouts (id, created_ms, state, body) VALUES ('ro_new', 5000, 'running', '{\"id\":\"ro_new\",\"shape\":\"unknown\"}')")
        .await;
    assert_eq!(store.rollout("ro_new").await.unwrap(), None);
    assert_eq!(store.rollouts().await.unwrap().len(), 3);
}

async fn finished_rollouts_beyond_the_kept_ones_go(f: &Fixture) {
    let store = f.store.clone();
    // An old one still running stays whatever its age.
    store
        .save_rollout(&rollout("ro_running", 1, State::Running))
        .await
        .unwrap();
    store
        .save_rollout(&rollout("ro_halted", 2, State::Halted))
        .await
        .unwrap();
    for i in 0..crate::rollouts::KEEP {
        let state = [State::Done, State::Aborted][i as usize % 2];
        store
            .save_rollout(&rollout(&format!("ro_{i:04}"), 10 + i, state))
            .await
            .unwrap();
    }
    let all = store.rollouts().await.unwrap();
    assert_eq!(all.len() as i64, crate::rollouts::KEEP + 1);
    assert_eq!(all.last().unwrap().id, "ro_running");
    assert!(all.iter().all(|r| r.id != "ro_halted"));
    assert_eq!(all[0].id, format!("ro_{:04}", crate::rollouts::KEEP - 1));
}
