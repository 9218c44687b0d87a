use twinbay_proto::command::{Op, Status};

use super::*;
use crate::CommandRecord;
use crate::audit::{ActorKind, Outcome};
use crate::suite::{Fixture, store_test_suite};

store_test_suite!(
    schedules_round_trip_and_are_audited,
    runs_take_their_commands_outcome_and_stay_bounded,
);

fn rec(action: &str) -> Record {
    Record::new(ActorKind::User, "admin", action, Outcome::Ok)
}

fn new(name: &str, target: ScheduleTarget) -> NewSchedule {
    NewSchedule {
        name: name.into(),
        cron: "*/5 * * * *".into(),
        timezone: "Europe/Berlin".into(),
        target,
        command: serde_json::json!({"op": "action", "name": "hello"}),
        enabled: true,
        overlap: "forbid".into(),
        jitter_secs: 30,
        grace_secs: None,
        role: Role::Operator,
        by: "admin".into(),
        next_run_ms: Some(1_000),
    }
}

#[test]
fn a_slot_is_as_good_as_its_worst_host() {
    assert_eq!(outcome([]), None);
    assert_eq!(outcome(["ok", "ok"]).as_deref(), Some("ok"));
    assert_eq!(outcome(["ok", "running"]).as_deref(), Some("running"));
    assert_eq!(outcome(["running", "ok"]).as_deref(), Some("running"));
    assert_eq!(
        outcome(["ok", "failed", "skipped"]).as_deref(),
        Some("failed")
    );
}

#[test]
fn targets_serialize_as_the_api_says() {
    let t: ScheduleTarget = serde_json::from_str(r#"{"group":"site=lab"}"#).unwrap();
    assert_eq!(t, ScheduleTarget::Group("site=lab".into()));
    assert_eq!(
        serde_json::to_string(&ScheduleTarget::Node("n_1".into())).unwrap(),
        r#"{"node":"n_1"}"#
    );
    assert!(serde_json::from_str::<ScheduleTarget>(r#"{"rack":"a"}"#).is_err());
    let labels = [("site".to_string(), "lab".to_string())].into();
    assert!(t.matches("x", &labels));
    assert!(!ScheduleTarget::Group("site=home".into()).matches("x", &labels));
    assert!(ScheduleTarget::Node("x".into()).matches("x", &Default::default()));
}

async fn schedules_round_trip_and_are_audited(f: &Fixture) {
    let store = f.store.clone();
    let id = store
        .add_schedule(
            &new("dump", ScheduleTarget::Node("n_1".into())),
            rec("schedule.create"),
        )
        .await
        .unwrap();
    let s = store.schedule(id).await.unwrap().unwrap();
    assert_eq!(s.name, "dump");
    assert_eq!(s.target, ScheduleTarget::Node("n_1".into()));
    assert_eq!(s.command["name"], "hello");
    assert_eq!(
        (s.jitter_secs, s.role, s.next_run_ms),
        (30, Role::Operator, Some(1_000))
    );

    let at = store.schedule(id).await.unwrap().unwrap().updated_ms;
    assert!(
        store
            .note_schedule(id, at, Some(2_000), Some(1_000), Some("broken"))
            .await
            .unwrap()
    );
    assert!(
        store
            .note_schedule(id, at, Some(3_000), None, None)
            .await
            .unwrap()
    );
    // A note from before an edit is not written.
    assert!(
        !store
            .note_schedule(id, at - 1, Some(9_000), None, None)
            .await
            .unwrap()
    );
    let s = store.schedule(id).await.unwrap().unwrap();
    assert_eq!(
        (s.next_run_ms, s.last_run_ms, s.schedule_error),
        (Some(3_000), Some(1_000), None)
    );

    let mut changed = new("dump2", ScheduleTarget::Group("site=lab".into()));
    changed.enabled = false;
    assert!(
        store
            .update_schedule(id, &changed, rec("schedule.update"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .update_schedule(id + 1, &changed, rec("schedule.update"))
            .await
            .unwrap()
    );
    let s = store.schedule(id).await.unwrap().unwrap();
    assert_eq!((s.name.as_str(), s.enabled), ("dump2", false));
    assert_eq!(store.schedules().await.unwrap().len(), 1);

    assert!(
        store
            .remove_schedule(id, rec("schedule.delete"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove_schedule(id, rec("schedule.delete"))
            .await
            .unwrap()
    );
    assert!(store.schedule(id).await.unwrap().is_none());
    let trail = store
        .audit_search(&crate::AuditQuery::default(), None)
        .await
        .unwrap();
    let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
    for a in ["schedule.create", "schedule.update", "schedule.delete"] {
        assert_eq!(
            actions.iter().filter(|x| **x == a).count(),
            1,
            "{a}: {actions:?}"
        );
    }
}

async fn runs_take_their_commands_outcome_and_stay_bounded(f: &Fixture) {
    let store = f.store.clone();
    let id = store
        .add_schedule(
            &new("s", ScheduleTarget::Group("g=1".into())),
            rec("schedule.create"),
        )
        .await
        .unwrap();
    let mut cmd = CommandRecord {
        id: "cmd_a".into(),
        node_id: "n_1".into(),
        op: Op::Action {
            name: "hello".into(),
            args: Default::default(),
        },
        summary: "action hello".into(),
        actor: "scheduler".into(),
        actor_kind: "scheduler".into(),
        role_needed: Role::Operator,
        status: Status::Running,
        exit_code: None,
        error: None,
        started_ms: 10,
        ended_ms: None,
        duration_ms: None,
        truncated: false,
    };
    store.insert_command(&cmd).await.unwrap();
    let run = |status, command_id, node_id| NewRun {
        schedule_id: id,
        node_id,
        slot_ms: 5,
        status,
        command_id,
        trigger: "slot",
        reason: None,
    };
    store
        .add_schedule_run(&run("dispatched", Some("cmd_a"), "n_1"))
        .await
        .unwrap();
    store
        .add_schedule_run(&NewRun {
            reason: Some("the host is offline"),
            ..run("skipped", None, "n_2")
        })
        .await
        .unwrap();
    let runs = store.schedule_runs(id, 10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        (runs[0].status.as_str(), runs[0].reason.as_deref()),
        ("skipped", Some("the host is offline"))
    );
    assert!(runs[0].finished_ms.is_some());
    assert_eq!(
        (runs[1].status.as_str(), runs[1].command_id.as_deref()),
        ("running", Some("cmd_a"))
    );
    assert_eq!(
        store
            .last_schedule_command(id, "n_1")
            .await
            .unwrap()
            .as_deref(),
        Some("cmd_a")
    );
    assert_eq!(store.last_schedule_command(id, "n_2").await.unwrap(), None);

    // The latest slot (5): one host running, one skipped.
    let s = store.schedule(id).await.unwrap().unwrap();
    assert_eq!(s.last_outcome.as_deref(), Some("skipped"));
    cmd.end(Status::Ok, Some(0), None, 50);
    store.finish_command(&cmd, &[]).await.unwrap();
    let runs = store.schedule_runs(id, 10).await.unwrap();
    assert_eq!(
        (
            runs[1].status.as_str(),
            runs[1].finished_ms,
            runs[1].exit_code
        ),
        ("ok", Some(50), Some(0))
    );

    for _ in 0..KEEP_RUNS + 20 {
        store
            .add_schedule_run(&run("missed", None, "n_3"))
            .await
            .unwrap();
    }
    let all = store.schedule_runs(id, 1000).await.unwrap();
    assert_eq!(all.len() as i64, KEEP_RUNS);
    // Removing the schedule removes its runs.
    assert!(
        store
            .remove_schedule(id, rec("schedule.delete"))
            .await
            .unwrap()
    );
    assert!(store.schedule_runs(id, 10).await.unwrap().is_empty());
}
