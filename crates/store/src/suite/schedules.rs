//! Schedules and their runs (see also `store/schedules/tests.rs`).

use twinbay_proto::command::{Op, Status};

use crate::suite::{Fixture, chain_holds, rec, store_test_suite};
use crate::*;

store_test_suite!(
    schedules_list_their_latest_slots_outcome,
    a_run_by_hand_notes_the_time_and_keeps_the_next_slot,
    a_slots_outcome_is_its_first_bad_host,
);

fn new(name: &str, target: ScheduleTarget) -> NewSchedule {
    NewSchedule {
        name: name.into(),
        cron: "0 3 * * *".into(),
        timezone: "UTC".into(),
        target,
        command: serde_json::json!({"op": "action", "name": "backup", "args": {"db": "app"}}),
        enabled: true,
        overlap: "allow".into(),
        jitter_secs: u32::MAX,
        grace_secs: Some(600),
        role: Role::Admin,
        by: "alice".into(),
        next_run_ms: None,
    }
}

fn command(id: &str, node: &str) -> CommandRecord {
    CommandRecord {
        id: id.into(),
        node_id: node.into(),
        op: Op::Action {
            name: "backup".into(),
            args: Default::default(),
        },
        summary: "action backup".into(),
        actor: "scheduler".into(),
        actor_kind: "scheduler".into(),
        role_needed: Role::Admin,
        status: Status::Running,
        exit_code: None,
        error: None,
        started_ms: 100,
        ended_ms: None,
        duration_ms: None,
        truncated: false,
    }
}

fn run<'a>(
    schedule_id: i64,
    slot_ms: i64,
    node_id: &'a str,
    status: &'a str,
    command_id: Option<&'a str>,
) -> NewRun<'a> {
    NewRun {
        schedule_id,
        node_id,
        slot_ms,
        status,
        command_id,
        trigger: "slot",
        reason: None,
    }
}

async fn schedules_list_their_latest_slots_outcome(f: &Fixture) {
    let store = f.store.clone();
    assert!(store.schedules().await.unwrap().is_empty());
    assert_eq!(store.schedule(1).await.unwrap(), None);
    let a = store
        .add_schedule(
            &new("a", ScheduleTarget::Node("n_1".into())),
            rec("schedule.create"),
        )
        .await
        .unwrap();
    let b = store
        .add_schedule(
            &new("b", ScheduleTarget::Group("site=lab".into())),
            rec("schedule.create"),
        )
        .await
        .unwrap();
    let c = store
        .add_schedule(
            &new("c", ScheduleTarget::Group("site=lab".into())),
            rec("schedule.create"),
        )
        .await
        .unwrap();
    let s = store.schedule(a).await.unwrap().unwrap();
    assert_eq!(
        (
            s.cron.as_str(),
            s.timezone.as_str(),
            s.enabled,
            s.overlap.as_str(),
            s.jitter_secs,
            s.grace_secs,
            s.role,
            s.created_by.as_str(),
            s.next_run_ms,
            s.last_run_ms,
            s.last_outcome.clone()
        ),
        (
            "0 3 * * *",
            "UTC",
            true,
            "allow",
            u32::MAX,
            Some(600),
            Role::Admin,
            "alice",
            None,
            None,
            None
        )
    );
    assert_eq!(s.command["args"]["db"], "app");
    assert_eq!(s.created_ms, s.updated_ms);

    // a: an old slot failed, the latest is fine (one host still running).
    store
        .insert_command(&command("c_old", "n_1"))
        .await
        .unwrap();
    let mut old = command("c_old", "n_1");
    old.end(Status::Failed, Some(1), None, 200);
    store.finish_command(&old, &[]).await.unwrap();
    store
        .add_schedule_run(&run(a, 1_000, "n_1", "dispatched", Some("c_old")))
        .await
        .unwrap();
    store.insert_command(&command("c_ok", "n_1")).await.unwrap();
    let mut ok = command("c_ok", "n_1");
    ok.end(Status::Ok, Some(0), None, 300);
    store.finish_command(&ok, &[]).await.unwrap();
    store
        .add_schedule_run(&run(a, 2_000, "n_1", "dispatched", Some("c_ok")))
        .await
        .unwrap();
    // b: its latest slot's command was pruned away: lost.
    store
        .add_schedule_run(&run(b, 2_000, "n_2", "dispatched", Some("c_gone")))
        .await
        .unwrap();
    let listed = store.schedules().await.unwrap();
    let outcomes: Vec<(i64, Option<&str>)> = listed
        .iter()
        .map(|s| (s.id, s.last_outcome.as_deref()))
        .collect();
    assert_eq!(outcomes, [(a, Some("ok")), (b, Some("lost")), (c, None)]);
    let runs = store.schedule_runs(b, 10).await.unwrap();
    assert_eq!(
        (
            runs[0].status.as_str(),
            runs[0].finished_ms,
            runs[0].exit_code
        ),
        ("lost", None, None)
    );
    let runs = store.schedule_runs(a, 1).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (
            runs[0].slot_ms,
            runs[0].status.as_str(),
            runs[0].exit_code,
            runs[0].finished_ms
        ),
        (2_000, "ok", Some(0), Some(300))
    );
    assert_eq!(runs[0].duration_ms, Some(300 - runs[0].started_ms));
    assert!(store.schedule_runs(999, 10).await.unwrap().is_empty());
    assert_eq!(
        store
            .last_schedule_command(a, "n_1")
            .await
            .unwrap()
            .as_deref(),
        Some("c_ok")
    );
    assert_eq!(store.last_schedule_command(999, "n_1").await.unwrap(), None);
    chain_holds(&store).await;
}

async fn a_run_by_hand_notes_the_time_and_keeps_the_next_slot(f: &Fixture) {
    let store = f.store.clone();
    let mut s = new("a", ScheduleTarget::Node("n_1".into()));
    s.next_run_ms = Some(50_000);
    s.grace_secs = None;
    let id = store
        .add_schedule(&s, rec("schedule.create"))
        .await
        .unwrap();
    store.note_schedule_ran(id, 7_000).await.unwrap();
    store.note_schedule_ran(999, 7_000).await.unwrap();
    let got = store.schedule(id).await.unwrap().unwrap();
    assert_eq!(
        (got.next_run_ms, got.last_run_ms, got.grace_secs),
        (Some(50_000), Some(7_000), None)
    );
    store
        .add_schedule_run(&NewRun {
            trigger: "manual",
            reason: Some("by alice"),
            ..run(id, 7_000, "n_1", "failed", None)
        })
        .await
        .unwrap();
    let runs = store.schedule_runs(id, 10).await.unwrap();
    assert_eq!(
        (
            runs[0].trigger.as_str(),
            runs[0].status.as_str(),
            runs[0].reason.as_deref()
        ),
        ("manual", "failed", Some("by alice"))
    );
    assert_eq!(runs[0].duration_ms, Some(0));
    assert_eq!(
        store
            .schedule(id)
            .await
            .unwrap()
            .unwrap()
            .last_outcome
            .as_deref(),
        Some("failed")
    );
    // An edit clears the error and keeps the runs.
    assert!(
        store
            .note_schedule(id, got.updated_ms, Some(60_000), None, Some("bad cron"))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .schedule(id)
            .await
            .unwrap()
            .unwrap()
            .schedule_error
            .as_deref(),
        Some("bad cron")
    );
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    assert!(
        store
            .update_schedule(
                id,
                &new("a2", ScheduleTarget::Node("n_1".into())),
                rec("schedule.update")
            )
            .await
            .unwrap()
    );
    let got = store.schedule(id).await.unwrap().unwrap();
    assert_eq!(
        (got.name.as_str(), got.schedule_error, got.last_run_ms),
        ("a2", None, Some(7_000))
    );
    assert!(got.updated_ms > got.created_ms);
    assert_eq!(store.schedule_runs(id, 10).await.unwrap().len(), 1);
}

async fn a_slots_outcome_is_its_first_bad_host(f: &Fixture) {
    let store = f.store.clone();
    // Runs belong to a schedule.
    assert!(
        store
            .add_schedule_run(&run(42, 1, "n_1", "missed", None))
            .await
            .is_err()
    );
    let id = store
        .add_schedule(
            &new("a", ScheduleTarget::Group("g=1".into())),
            rec("schedule.create"),
        )
        .await
        .unwrap();
    store.insert_command(&command("c1", "n_1")).await.unwrap();
    let mut c1 = command("c1", "n_1");
    c1.end(Status::Ok, Some(0), None, 200);
    store.finish_command(&c1, &[]).await.unwrap();
    store.insert_command(&command("c3", "n_3")).await.unwrap();
    let mut c3 = command("c3", "n_3");
    c3.end(Status::Failed, Some(2), None, 200);
    store.finish_command(&c3, &[]).await.unwrap();
    // Many hosts in one slot, written in this order.
    let slot = [
        ("n_1", "dispatched", Some("c1")),
        ("n_2", "skipped", None),
        ("n_3", "dispatched", Some("c3")),
        ("n_4", "missed", None),
        ("n_5", "dispatched", Some("c_gone")),
    ];
    for (node, status, command_id) in slot {
        store
            .add_schedule_run(&run(id, 5_000, node, status, command_id))
            .await
            .unwrap();
    }
    let statuses: Vec<String> = store
        .schedule_runs(id, 10)
        .await
        .unwrap()
        .into_iter()
        .rev()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, ["ok", "skipped", "failed", "missed", "lost"]);
    let expected = crate::schedules::outcome(statuses.iter().map(String::as_str));
    assert_eq!(expected.as_deref(), Some("skipped"));
    let s = store.schedule(id).await.unwrap().unwrap();
    assert_eq!(s.last_outcome, expected);
}
