//! Schedules: a command run on a cron pattern, on one host or every host of
//! a group (`docs/schedules.md`).
//!
//! The rules are pure ([`plan`]: patterns, zones, jitter, catch-up,
//! overlap). [`run`] is the hub task: it reads the schedules from the store,
//! sleeps until the earliest next slot (woken early by [`Scheduler::changed`]
//! when the API edits one), and hands each due slot to [`runner`], which
//! sends the command on every target host through the same checks, record
//! and audit as `POST /api/v1/nodes/{id}/commands`. The next slot is stored
//! before a slot runs, so a restart never repeats it; after downtime the
//! most recent passed slot runs once if it is within the grace, and every
//! other one is a `schedule.missed` timeline event.

pub mod plan;
pub mod runner;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use twinbay_proto::command::Op;

use crate::HubState;
use crate::store::{StoreError, now_ms};
use plan::Plan;

/// The longest the task sleeps without looking again (a safety net for a
/// wall clock that jumps; slots are found by time, not by counting sleeps).
const MAX_SLEEP: Duration = Duration::from_secs(300);
/// After a store error, try again this soon.
const RETRY: Duration = Duration::from_secs(5);

/// Wakes the scheduler when schedules change.
#[derive(Debug, Default)]
pub struct Scheduler {
    wake: Notify,
}

impl Scheduler {
    /// A schedule was added, changed or removed: look again now.
    pub fn changed(&self) {
        self.wake.notify_one();
    }
}

/// What a schedule runs. A commands-API body today; a backup job is the
/// next kind (`{"backup": …}`), parsed here beside it.
#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    /// `POST /api/v1/nodes/{id}/commands`'s body: a lifecycle verb or an action.
    Command { op: Op, wait_secs: u32 },
}

/// The commands API's body, as a schedule keeps it.
#[derive(Debug, Deserialize)]
struct CommandBody {
    #[serde(flatten)]
    op: Op,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    wait_secs: u32,
}

/// Longest a run waits for a disconnected agent (as the commands API).
pub const MAX_WAIT_SECS: u32 = 300;

impl Job {
    /// Checks a schedule's `command` body; the message is for people.
    pub fn parse(body: &Value) -> Result<Job, String> {
        if !body.is_object() {
            return Err("command: a JSON object, as POST /api/v1/nodes/{id}/commands takes".into());
        }
        let b: CommandBody = serde_json::from_value(body.clone()).map_err(|e| {
            format!("command: {e} (the body of POST /api/v1/nodes/{{id}}/commands)")
        })?;
        b.op.check_shape().map_err(|e| format!("command: {e}"))?;
        if b.stream {
            return Err(
                "command: \"stream\" needs a client to stream to; a schedule has none".into(),
            );
        }
        if matches!(b.op, Op::Lifecycle { follow: true, .. }) {
            return Err("command: \"follow\" never ends; a schedule cannot use it".into());
        }
        if matches!(b.op, Op::Restore { .. }) {
            return Err(
                "command: a restore overwrites a host's data; run it by hand, never on a schedule"
                    .into(),
            );
        }
        if b.wait_secs > MAX_WAIT_SECS {
            return Err(format!(
                "command: wait_secs must be at most {MAX_WAIT_SECS}"
            ));
        }
        Ok(Job::Command {
            op: b.op,
            wait_secs: b.wait_secs,
        })
    }

    pub fn summary(&self) -> String {
        match self {
            Job::Command { op, .. } => op.summary(),
        }
    }
}

/// The hub task; ends when `stop` fires.
pub async fn run(hub: Arc<HubState>, stop: CancellationToken) {
    loop {
        // Among replicas, one schedules (its state is the store's, so the
        // next leader neither repeats nor skips a slot).
        if !hub.lead(&stop).await {
            break;
        }
        let wait = match tick(&hub, &stop).await {
            Ok(Some(next)) => Duration::from_millis(u64::try_from(next - now_ms()).unwrap_or(0)),
            Ok(None) => MAX_SLEEP,
            Err(e) => {
                tracing::warn!(error = %crate::report(&e), "scheduler: reading schedules failed");
                RETRY
            }
        }
        .min(MAX_SLEEP);
        let deadline = tokio::time::Instant::now() + wait;
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = hub.schedules.wake.notified() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
    tracing::debug!("scheduler stopped");
}

/// Looks at every schedule once: runs what is due, records what was
/// missed, and returns the earliest next slot.
async fn tick(hub: &Arc<HubState>, stop: &CancellationToken) -> Result<Option<i64>, StoreError> {
    let now = now_ms();
    let mut earliest: Option<i64> = None;
    for s in hub.store.schedules().await? {
        if !s.enabled {
            continue;
        }
        let plan = match Plan::parse(&s.cron, &s.timezone, now) {
            Ok(p) => p,
            Err(e) => {
                let e = e.to_string();
                if s.schedule_error.as_deref() != Some(&e) {
                    hub.store
                        .note_schedule(s.id, s.updated_ms, None, None, Some(&e))
                        .await?;
                }
                continue;
            }
        };
        let Some(expected) = s.next_run_ms.or_else(|| plan.next_after(now)) else {
            continue;
        };
        let d = plan::due(
            &plan,
            expected,
            now,
            s.grace_secs.map(|g| i64::from(g) * 1000),
        );
        if d.run.is_some() || d.missed.is_some() || s.next_run_ms != Some(expected) {
            // The next slot is stored before this one runs: a crash in
            // between loses a run rather than repeating it.
            let error = d.next.is_none().then_some("the pattern fires no more");
            let noted = hub
                .store
                .note_schedule(s.id, s.updated_ms, d.next, d.run, error)
                .await?;
            if !noted {
                // Edited or removed meanwhile: the next look sees the new one.
                earliest = Some(now);
                continue;
            }
        }
        if let Some(m) = d.missed {
            runner::missed(hub, &s, m, d.run.is_some()).await?;
        }
        if let Some(slot) = d.run {
            let trigger = if slot == expected { "slot" } else { "catch_up" };
            tokio::spawn(runner::run_slot(
                hub.clone(),
                s.clone(),
                slot,
                trigger,
                stop.clone(),
            ));
        }
        if let Some(next) = d.next {
            earliest = Some(earliest.map_or(next, |e: i64| e.min(next)));
        }
    }
    Ok(earliest)
}
