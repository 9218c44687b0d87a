//! One slot of a schedule, on each of its hosts: resolve the target, wait
//! the host's jitter, then send the command through the commands path
//! (shape check, the agent's policy with the schedule's role, the stored
//! record, `command.run` in the audit trail by the actor `scheduler`). A
//! host that is offline, a previous run still going under `forbid`, or a
//! refusal is a recorded run with its reason, and a `schedule.missed`
//! timeline event where a run did not happen.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;
use twinbay_proto::command::{Command, Refusal, Status};

use super::plan::{self, Missed, Overlap, Start};
use super::{Job, MAX_WAIT_SECS};
use crate::HubState;
use crate::audit::{ActorKind, Outcome, Record};
use crate::store::{
    CommandRecord, NewRun, Role, ScheduleRecord, ScheduleTarget, StoreError, now_ms,
};
use crate::timeline::Event;

/// The actor of every scheduled command.
pub const ACTOR: &str = "scheduler";
/// How long a catch-up waits for a host's agent: it runs right after a
/// hub restart, before the agents have reconnected.
pub const CATCH_UP_WAIT_SECS: u32 = 60;
/// The timeline's node for a schedule's events when no host is named.
pub const NODE_ID: &str = "_scheduler";

/// How one host's run went, as recorded.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RunStarted {
    pub node_id: String,
    /// `dispatched`, `skipped` or `failed`.
    pub status: String,
    pub command_id: Option<String>,
    pub reason: Option<String>,
}

/// The hosts a target names right now (a group: every host whose labels match).
pub fn targets(hub: &HubState, target: &ScheduleTarget) -> Vec<String> {
    match target {
        ScheduleTarget::Node(id) => vec![id.clone()],
        ScheduleTarget::Group(_) => {
            let mut ids = Vec::new();
            hub.twin.for_each(|n| {
                if target.matches(&n.id, &n.state.host.labels) {
                    ids.push(n.id.clone());
                }
            });
            ids.sort();
            ids
        }
    }
}

/// Runs `slot` on every target host, each after its jitter.
pub async fn run_slot(
    hub: Arc<HubState>,
    s: ScheduleRecord,
    slot: i64,
    trigger: &'static str,
    stop: CancellationToken,
) {
    let nodes = targets(&hub, &s.target);
    if nodes.is_empty() {
        let reason = format!("no host matches {}", s.target);
        let _ = skip(&hub, &s, NODE_ID, slot, trigger, "skipped", &reason).await;
        return;
    }
    if trigger == "catch_up" {
        // Late is never silent either.
        let reason = "the hub was not running at the slot; it runs late, once, as a catch-up";
        let events = nodes
            .iter()
            .map(|n| missed_event(&s, n, slot, reason, 1))
            .collect();
        hub.twin.emit(events);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for node in nodes {
        let (hub, s, stop) = (hub.clone(), s.clone(), stop.clone());
        tasks.spawn(async move {
            let jitter = plan::jitter_ms(s.id, &node, s.jitter_secs);
            let due = slot + jitter - now_ms();
            if due > 0 {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(due as u64)) => {}
                }
            }
            if let Err(e) = run_on(&hub, &s, &node, slot, trigger).await {
                tracing::warn!(schedule = s.id, node, error = %crate::report(&e), "scheduled run not recorded");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Runs the schedule's job on one host now and records the run.
pub async fn run_on(
    hub: &HubState,
    s: &ScheduleRecord,
    node_id: &str,
    slot: i64,
    trigger: &str,
) -> Result<RunStarted, StoreError> {
    let job = match Job::parse(&s.command) {
        Ok(j) => j,
        Err(e) => return skip(hub, s, node_id, slot, trigger, "failed", &e).await,
    };
    let Job::Command { op, wait_secs } = job;
    let wait_secs = match trigger {
        "catch_up" => wait_secs.max(CATCH_UP_WAIT_SECS),
        _ => wait_secs,
    };
    // Wait for the agent as long as the body asks; then it is offline.
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(wait_secs.min(MAX_WAIT_SECS).into());
    let policy = loop {
        let Some((connected, policy, last_seen, simulated)) = hub.twin.read(node_id, |n| {
            (n.connected, n.policy.clone(), n.last_seen, n.simulated)
        }) else {
            let reason = format!("no host {node_id} (removed?)");
            return skip(hub, s, node_id, slot, trigger, "skipped", &reason).await;
        };
        if connected && crate::commands::reachable(hub, node_id) {
            match policy {
                Some(p) => break p,
                None => {
                    let why = if simulated {
                        "the host is a simulated agent; it runs no commands"
                    } else {
                        "the host's agent runs no commands"
                    };
                    return skip(hub, s, node_id, slot, trigger, "failed", why).await;
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            let since = last_seen
                .map(|t| format!(" (last seen {} s ago)", (now_ms() - t).max(0) / 1000))
                .unwrap_or_default();
            let reason = format!("the host is offline{since}");
            return skip(hub, s, node_id, slot, trigger, "skipped", &reason).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Overlap with this schedule's previous run on the host.
    let previous = hub.store.last_schedule_command(s.id, node_id).await?;
    let running = previous.as_ref().filter(|id| {
        hub.commands
            .running_record(id)
            .is_some_and(|r| r.status == Status::Running)
    });
    let overlap = Overlap::parse(&s.overlap).unwrap_or_default();
    match plan::start(overlap, running.is_some()) {
        Start::Run => {}
        Start::Skip => {
            let reason = format!(
                "the previous run ({}) is still running (overlap: forbid)",
                running.map(String::as_str).unwrap_or("?")
            );
            return skip(hub, s, node_id, slot, trigger, "skipped", &reason).await;
        }
        Start::CancelThenRun => {
            if let Some(id) = running {
                hub.commands.cancel(id);
            }
        }
    }
    let summary = op.summary().chars().take(300).collect::<String>();
    let audit = |outcome: Outcome, detail: String| {
        Record::new(ActorKind::Scheduler, ACTOR, "command.run", outcome)
            .target(&format!("node:{node_id}"))
            .detail(&format!("{detail} (schedule {} {:?})", s.id, s.name))
    };
    if let Err(refusal) = op.authorize(&policy, s.role) {
        let why = match refusal {
            Refusal::Role(_) => format!(
                "refused: {refusal} (the schedule runs as {})",
                s.role.as_str()
            ),
            _ => format!("refused: {refusal}"),
        };
        hub.store
            .audit(audit(Outcome::Denied, format!("{summary}: {why}")))
            .await?;
        return skip(hub, s, node_id, slot, trigger, "failed", &why).await;
    }
    let role_needed = op.min_role(&policy).unwrap_or(Role::Operator);
    let record = CommandRecord {
        id: crate::credentials::new_token("cmd_")
            .chars()
            .take(24)
            .collect(),
        node_id: node_id.to_string(),
        op: op.clone(),
        summary: summary.clone(),
        actor: ACTOR.into(),
        actor_kind: ActorKind::Scheduler.as_str().into(),
        role_needed,
        status: Status::Running,
        exit_code: None,
        error: None,
        started_ms: now_ms(),
        ended_ms: None,
        duration_ms: None,
        truncated: false,
    };
    hub.store.insert_command(&record).await?;
    hub.store
        .audit(audit(Outcome::Ok, format!("{} {summary}", record.id)))
        .await?;
    let cmd = Command {
        id: record.id.clone(),
        role: s.role,
        actor: ACTOR.into(),
        op,
    };
    let id = record.id.clone();
    let run = NewRun {
        schedule_id: s.id,
        node_id,
        slot_ms: slot,
        status: "dispatched",
        command_id: Some(&id),
        trigger,
        reason: None,
    };
    hub.store.add_schedule_run(&run).await?;
    if let Err(e) = crate::commands::dispatch(hub, record.clone(), cmd).await {
        let mut failed = record;
        failed.end(Status::Failed, None, Some(e.to_string()), now_ms());
        hub.store.finish_command(&failed, &[]).await?;
        return Ok(RunStarted {
            node_id: node_id.into(),
            status: "dispatched".into(),
            command_id: Some(id),
            reason: Some(e.to_string()),
        });
    }
    Ok(RunStarted {
        node_id: node_id.into(),
        status: "dispatched".into(),
        command_id: Some(id),
        reason: None,
    })
}

/// Records a run that did not reach the host, and (skipped) a
/// `schedule.missed` event.
pub async fn skip(
    hub: &HubState,
    s: &ScheduleRecord,
    node_id: &str,
    slot: i64,
    trigger: &str,
    status: &str,
    reason: &str,
) -> Result<RunStarted, StoreError> {
    hub.store
        .add_schedule_run(&NewRun {
            schedule_id: s.id,
            node_id,
            slot_ms: slot,
            status,
            command_id: None,
            trigger,
            reason: Some(reason),
        })
        .await?;
    hub.twin
        .emit(vec![missed_event(s, node_id, slot, reason, 1)]);
    tracing::info!(
        schedule = s.id,
        node_id,
        status,
        reason,
        "scheduled run did not start"
    );
    Ok(RunStarted {
        node_id: node_id.into(),
        status: status.into(),
        command_id: None,
        reason: Some(reason.into()),
    })
}

fn missed_event(s: &ScheduleRecord, node_id: &str, slot: i64, reason: &str, count: u32) -> Event {
    Event {
        node_id: node_id.into(),
        ts: now_ms(),
        kind: "schedule.missed".into(),
        target: s.name.clone(),
        detail: json!({
            "schedule_id": s.id,
            "slot_ms": slot,
            "slots": count,
            "reason": reason,
        }),
    }
}

/// Slots the hub was not there for: one `missed` run per host and a
/// `schedule.missed` event each.
pub async fn missed(
    hub: &HubState,
    s: &ScheduleRecord,
    m: Missed,
    caught_up: bool,
) -> Result<(), StoreError> {
    let slots = if m.count == 1 {
        "1 slot".to_string()
    } else {
        format!("{} slots", m.count)
    };
    let reason = format!(
        "the hub was not running at the time ({slots} from {} to {} missed{})",
        m.first_ms,
        m.last_ms,
        if caught_up {
            "; the latest one ran late as a catch-up"
        } else {
            "; past the catch-up grace"
        }
    );
    let mut nodes = targets(hub, &s.target);
    if nodes.is_empty() {
        nodes.push(NODE_ID.into());
    }
    let mut events = Vec::new();
    for node in &nodes {
        hub.store
            .add_schedule_run(&NewRun {
                schedule_id: s.id,
                node_id: node,
                slot_ms: m.last_ms,
                status: "missed",
                command_id: None,
                trigger: "slot",
                reason: Some(&reason),
            })
            .await?;
        events.push(missed_event(s, node, m.last_ms, &reason, m.count));
    }
    hub.twin.emit(events);
    tracing::warn!(schedule = s.id, count = m.count, "scheduled slots missed");
    Ok(())
}
