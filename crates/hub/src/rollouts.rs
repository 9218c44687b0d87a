//! Rollouts: a signed release sent to many agents in stages (docs/updates.md).
//!
//! The rules are pure ([`plan`]: batches, the next step, what a command's
//! progress means). [`run`] is the hub task: every half second (or at once
//! when the API changes a rollout) it reads the `update` commands of the
//! active rollout's hosts, sends the update to the hosts whose turn it is
//! (each one an ordinary `update` command: the same record, audit and
//! agent-side checks as `POST /api/v1/nodes/{id}/commands`), and halts or
//! ends the rollout by the rules. Each change is stored (the rollout whole,
//! as JSON) and sent on the UI stream as `{"type": "rollout", …}`. One
//! rollout is active at a time.

pub mod plan;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use twinbay_proto::command::{Command, Op, Status, Target as CommandTarget, TargetKind, Verb};

use crate::HubState;
use crate::audit::{ActorKind, Outcome, Record};
use crate::store::{CommandRecord, Role, StoreError, now_ms};
pub use plan::{Batch, Counts, HostState, RolloutHost, State, Step};
pub use twinbay_store::rollouts::{Everyone, Rollout, Target};

/// How often the task looks at the active rollout.
const TICK: Duration = Duration::from_millis(500);

/// What starts a rollout (checked by the API).
#[derive(Debug, Clone)]
pub struct Spec {
    pub version: String,
    pub target: Target,
    pub canaries: u32,
    pub batch: Batch,
    pub pause_between_ms: u64,
    pub max_failures: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The active rollout, and the bell that wakes the task.
#[derive(Debug, Default)]
pub struct Rollouts {
    active: Mutex<Option<Rollout>>,
    wake: Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Rollouts {
    /// The active rollout, if any.
    pub fn active(&self) -> Option<Rollout> {
        lock(&self.active).clone()
    }
}

/// Finds the hosts of `spec` and starts the rollout.
pub async fn start(hub: &HubState, spec: Spec, by: &str) -> Result<Rollout, RolloutError> {
    led_here(hub)?;
    let releases = hub
        .releases
        .list()
        .await
        .map_err(|e| RolloutError::Store(StoreError::Damaged(e.to_string())))?;
    let arches: Vec<String> = releases
        .iter()
        .filter(|m| m.version == spec.version)
        .map(|m| m.arch.clone())
        .collect();
    if arches.is_empty() {
        return Err(RolloutError::NotFound(format!(
            "the hub has no release {} (publish it first)",
            spec.version
        )));
    }
    if let Target::Nodes { nodes } = &spec.target
        && let Some(missing) = nodes.iter().find(|n| !hub.twin.check(n, |_| true))
    {
        return Err(RolloutError::NotFound(format!("no host {missing}")));
    }
    let now = now_ms();
    // Connected real agents first: the canaries should be hosts that can answer.
    let mut found: Vec<(bool, bool, RolloutHost)> = Vec::new();
    hub.twin.for_each(|n| {
        if !spec.target.matches(&n.id, &n.state.host.labels) {
            return;
        }
        let (state, reason) = if n.agent_version == spec.version {
            (
                HostState::Skipped,
                Some(format!("already on {}", spec.version)),
            )
        } else if !n.simulated && !arches.iter().any(|a| *a == n.state.host.arch) {
            let arch = if n.state.host.arch.is_empty() {
                "?"
            } else {
                &n.state.host.arch
            };
            (
                HostState::Skipped,
                Some(format!("no release {} for {arch}", spec.version)),
            )
        } else {
            (HostState::Pending, None)
        };
        found.push((
            !n.connected,
            n.simulated,
            RolloutHost {
                node_id: n.id.clone(),
                hostname: n.state.host.hostname.clone(),
                stage: String::new(),
                batch: 0,
                state,
                from_version: n.agent_version.clone(),
                command_id: None,
                reason,
                simulated: n.simulated,
                updated_ms: now,
            },
        ));
    });
    if found.is_empty() {
        return Err(RolloutError::Invalid(format!(
            "no host matches {}",
            spec.target
        )));
    }
    found.sort_by(|a, b| {
        (a.2.state != HostState::Pending, a.0, a.1, &a.2.node_id).cmp(&(
            b.2.state != HostState::Pending,
            b.0,
            b.1,
            &b.2.node_id,
        ))
    });
    let mut hosts: Vec<RolloutHost> = found.into_iter().map(|(_, _, h)| h).collect();
    plan::assign(&mut hosts, spec.canaries, spec.batch);
    let rollout = Rollout {
        id: crate::credentials::new_token("ro_")
            .chars()
            .take(16)
            .collect(),
        version: spec.version,
        target: spec.target,
        canaries: spec.canaries,
        batch: spec.batch,
        pause_between_ms: spec.pause_between_ms,
        max_failures: spec.max_failures,
        state: State::Running,
        reason: None,
        created_ms: now,
        created_by: by.to_string(),
        updated_ms: now,
        finished_ms: None,
        counts: Counts::of(&hosts),
        hosts,
    };
    {
        let mut active = lock(&hub.rollouts.active);
        if let Some(a) = active.as_ref() {
            return Err(RolloutError::Conflict(format!(
                "rollout {} ({}) is still active ({}): abort it or let it end first",
                a.id,
                a.version,
                a.state.as_str()
            )));
        }
        *active = Some(rollout.clone());
    }
    if let Err(e) = hub.store.save_rollout(&rollout).await {
        *lock(&hub.rollouts.active) = None;
        return Err(e.into());
    }
    announce(hub, &rollout);
    hub.rollouts.wake.notify_one();
    Ok(rollout)
}

/// Among hub replicas, the leading one drives rollouts and holds the
/// active one: starting or steering one elsewhere is refused with where to go.
fn led_here(hub: &HubState) -> Result<(), RolloutError> {
    if hub.leads() {
        return Ok(());
    }
    let leader = hub
        .replicas
        .as_ref()
        .and_then(|r| r.leader_url())
        .unwrap_or_else(|| "the leading replica (GET /api/v1/hub)".into());
    Err(RolloutError::Conflict(format!(
        "rollouts are driven by the leading hub replica: ask {leader}"
    )))
}

/// What a person may do to a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Pause,
    Resume,
    Abort,
}

/// Pauses, resumes or aborts the active rollout `id`.
pub async fn control(hub: &HubState, id: &str, what: Control) -> Result<Rollout, RolloutError> {
    led_here(hub)?;
    let changed = apply_control(hub, id, what)?;
    let Some(changed) = changed else {
        return match hub.store.rollout(id).await? {
            Some(r) => Err(RolloutError::Conflict(format!(
                "rollout {id} is {}: it can no longer change",
                r.state.as_str()
            ))),
            None => Err(RolloutError::NotFound(format!("no rollout {id}"))),
        };
    };
    hub.store.save_rollout(&changed).await?;
    announce(hub, &changed);
    hub.rollouts.wake.notify_one();
    Ok(changed)
}

/// The change itself, under the lock; `None` if `id` is not the active rollout.
fn apply_control(hub: &HubState, id: &str, what: Control) -> Result<Option<Rollout>, RolloutError> {
    {
        let mut active = lock(&hub.rollouts.active);
        let Some(r) = active.as_mut().filter(|r| r.id == id) else {
            return Ok(None);
        };
        let now = now_ms();
        match (what, r.state) {
            (Control::Pause, State::Running) => r.state = State::Paused,
            (Control::Resume, State::Paused) => r.state = State::Running,
            (Control::Abort, _) => {
                r.state = State::Aborted;
                r.reason = Some("aborted".into());
                r.finished_ms = Some(now);
                for h in r
                    .hosts
                    .iter_mut()
                    .filter(|h| !h.state.finished() && !h.state.in_flight())
                {
                    h.state = HostState::Skipped;
                    h.reason = Some("the rollout was aborted".into());
                    h.updated_ms = now;
                }
            }
            (Control::Pause, _) | (Control::Resume, _) => {
                return Err(RolloutError::Conflict(format!(
                    "rollout {id} is {}",
                    r.state.as_str()
                )));
            }
        }
        r.updated_ms = now;
        r.counts = Counts::of(&r.hosts);
        let changed = r.clone();
        if !changed.state.active() {
            *active = None;
        }
        Ok(Some(changed))
    }
}

/// Every kept rollout, newest first (the active one as it is now).
pub async fn list(hub: &HubState) -> Result<Vec<Rollout>, StoreError> {
    let mut all = hub.store.rollouts().await?;
    if let Some(a) = hub.rollouts.active() {
        for r in all.iter_mut().filter(|r| r.id == a.id) {
            *r = a.clone();
        }
    }
    Ok(all)
}

/// One rollout: the active one as it is now, else as stored.
pub async fn get(hub: &HubState, id: &str) -> Result<Option<Rollout>, StoreError> {
    match hub.rollouts.active().filter(|a| a.id == id) {
        Some(a) => Ok(Some(a)),
        None => hub.store.rollout(id).await,
    }
}

fn announce(hub: &HubState, r: &Rollout) {
    let _ = hub.twin.stream().send(crate::twin::view::rollout_event(r));
}

/// The hub task: drives the active rollout until `stop` fires.
pub async fn run(hub: Arc<HubState>, stop: CancellationToken) {
    // Among replicas, one drives rollouts.
    if !hub.lead(&stop).await {
        return;
    }
    // A rollout the last hub left active goes on; updates it had in flight
    // ended as lost when that hub stopped (read from the store below).
    match hub.store.rollouts().await {
        Ok(all) => {
            if let Some(r) = all.into_iter().find(|r| r.state.active()) {
                *lock(&hub.rollouts.active) = Some(r);
            }
        }
        Err(e) => tracing::error!(error = %crate::report(&e), "could not read rollouts"),
    }
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = hub.rollouts.wake.notified() => {}
            _ = tokio::time::sleep(TICK) => {}
        }
        if !hub.leads() {
            continue;
        }
        if let Err(e) = round(&hub).await {
            tracing::warn!(error = %crate::report(&e), "rollout round failed; trying again");
        }
    }
}

/// One look at the active rollout: read progress, take the next step, store
/// and announce what changed.
async fn round(hub: &HubState) -> Result<(), StoreError> {
    let Some(mut r) = hub.rollouts.active() else {
        return Ok(());
    };
    let before = r.clone();
    let now = now_ms();
    let mut audits = Vec::new();
    // Progress of the hosts updating now.
    for h in r.hosts.iter_mut().filter(|h| h.state.in_flight()) {
        let Some(id) = h.command_id.clone() else {
            continue;
        };
        let (status, output, error) = match hub.commands.watch(&id) {
            Some(w) => {
                let text: String = w.output.iter().map(|o| o.data.as_str()).collect();
                (w.record.status, text, w.record.error)
            }
            None => match hub.store.command(&id).await? {
                Some((rec, out)) => {
                    let text: String = out.iter().map(|o| o.data.as_str()).collect();
                    (rec.status, text, rec.error)
                }
                None => (
                    Status::Lost,
                    String::new(),
                    Some("the command is gone".into()),
                ),
            },
        };
        let (state, reason) = plan::progress(status, &output, error.as_deref());
        if state != h.state {
            h.state = state;
            h.reason = reason;
            h.updated_ms = now;
            if state.finished() {
                audits.push(host_audit(&r.id, &r.version, h));
            }
        }
    }
    if r.state == State::Running {
        // Hosts removed meanwhile are skipped; waiting ones whose agent is back go now.
        let mut due: Vec<usize> = Vec::new();
        for (i, h) in r.hosts.iter_mut().enumerate() {
            if h.state.finished() || h.state.in_flight() {
                continue;
            }
            if !hub.twin.check(&h.node_id, |_| true) {
                h.state = HostState::Skipped;
                h.reason = Some("the host was removed".into());
                h.updated_ms = now;
            } else if h.state == HostState::Waiting && connected(hub, &h.node_id) {
                due.push(i);
            }
        }
        match plan::next(&r.hosts, r.max_failures, r.pause_between_ms, now) {
            Step::Start(hosts) => due.extend(hosts),
            Step::Halt(why) => {
                r.state = State::Halted;
                r.reason = Some(why);
                r.finished_ms = Some(now);
                due.clear();
            }
            Step::Done => {
                r.state = State::Done;
                r.reason = None;
                r.finished_ms = Some(now);
            }
            Step::Idle => {}
        }
        due.sort_unstable();
        due.dedup();
        for i in due {
            let h = &mut r.hosts[i];
            send_update(hub, &r.id, &r.version, h, now).await?;
        }
        let waiting = r
            .hosts
            .iter()
            .filter(|h| h.state == HostState::Waiting)
            .count();
        if r.state == State::Running {
            r.reason = (waiting > 0
                && r.hosts
                    .iter()
                    .all(|h| h.state.finished() || h.state == HostState::Waiting))
            .then(|| format!("waiting for {waiting} offline hosts to come back"));
        }
    }
    r.counts = Counts::of(&r.hosts);
    if r == before {
        return Ok(());
    }
    r.updated_ms = now;
    let ended = !r.state.active();
    {
        let mut active = lock(&hub.rollouts.active);
        // A person may have paused or aborted it meanwhile: theirs wins for the state.
        match active.as_ref() {
            Some(a) if a.id == r.id && a.state != before.state => {
                r.state = a.state;
                r.reason = a.reason.clone();
                r.finished_ms = a.finished_ms;
            }
            Some(a) if a.id == r.id => {}
            _ => return Ok(()),
        }
        *active = (!ended && r.state.active()).then(|| r.clone());
    }
    hub.store.save_rollout(&r).await?;
    if r.state != before.state && !r.state.active() {
        let outcome = if r.state == State::Done {
            Outcome::Ok
        } else {
            Outcome::Failed
        };
        let detail = format!(
            "{} {}: {} healthy, {} failed, {} rolled back, {} skipped{}",
            r.id,
            r.version,
            r.counts.healthy,
            r.counts.failed,
            r.counts.rolled_back,
            r.counts.skipped,
            r.reason
                .as_deref()
                .map(|w| format!("; {w}"))
                .unwrap_or_default()
        );
        audits.push(
            Record::new(
                ActorKind::Hub,
                "rollouts",
                &format!("rollout.{}", r.state.as_str()),
                outcome,
            )
            .target(&format!("rollout:{}", r.id))
            .detail(&detail),
        );
    }
    for a in audits {
        hub.store.audit(a).await?;
    }
    announce(hub, &r);
    Ok(())
}

fn connected(hub: &HubState, node: &str) -> bool {
    hub.twin.check(node, |n| n.connected) && crate::commands::reachable(hub, node)
}

fn host_audit(rollout: &str, version: &str, h: &RolloutHost) -> Record {
    let outcome = match h.state {
        HostState::Healthy => Outcome::Ok,
        HostState::Skipped => Outcome::Denied,
        _ => Outcome::Failed,
    };
    let state = serde_json::to_value(h.state)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let mut detail = format!(
        "{rollout}: {} {} → {version}: {state}",
        h.hostname, h.from_version
    );
    if let Some(why) = &h.reason {
        detail.push_str(&format!(" ({why})"));
    }
    Record::new(ActorKind::Hub, "rollouts", "rollout.host", outcome)
        .target(&format!("node:{}", h.node_id))
        .detail(&detail)
}

/// Sends `update` to one host, or marks it waiting (offline) or failed
/// (its agent takes no commands).
async fn send_update(
    hub: &HubState,
    rollout: &str,
    version: &str,
    h: &mut RolloutHost,
    now: i64,
) -> Result<(), StoreError> {
    h.updated_ms = now;
    if !connected(hub, &h.node_id) {
        h.state = HostState::Waiting;
        h.reason = Some("offline: updated when its agent is back".into());
        return Ok(());
    }
    let op = Op::Lifecycle {
        target: CommandTarget {
            kind: TargetKind::Agent,
            name: String::new(),
        },
        verb: Verb::Update,
        lines: None,
        follow: false,
        version: Some(version.to_string()),
        arch: None,
    };
    let actor = format!("rollout:{rollout}");
    let audit = |outcome: Outcome, detail: String| {
        Record::new(ActorKind::Hub, &actor, "command.run", outcome)
            .target(&format!("node:{}", h.node_id))
            .detail(&detail)
    };
    // A real agent's policy has the last word (the agent checks it again);
    // a simulated one has none and pretends (it says so in its output).
    let policy = hub.twin.read(&h.node_id, |n| n.policy.clone()).flatten();
    if !h.simulated {
        let refusal = match &policy {
            None => Some("the host's agent runs no commands".to_string()),
            Some(p) => op
                .authorize(p, Role::Admin)
                .err()
                .map(|r| format!("refused: {r}")),
        };
        if let Some(why) = refusal {
            hub.store
                .audit(audit(
                    Outcome::Denied,
                    format!("{}: {why} ({rollout})", op.summary()),
                ))
                .await?;
            h.state = HostState::Failed;
            h.reason = Some(why);
            return Ok(());
        }
    }
    let summary = op.summary().chars().take(300).collect::<String>();
    let record = CommandRecord {
        id: crate::credentials::new_token("cmd_")
            .chars()
            .take(24)
            .collect(),
        node_id: h.node_id.clone(),
        op: op.clone(),
        summary: summary.clone(),
        actor: actor.clone(),
        actor_kind: ActorKind::Hub.as_str().into(),
        role_needed: Role::Operator,
        status: Status::Running,
        exit_code: None,
        error: None,
        started_ms: now,
        ended_ms: None,
        duration_ms: None,
        truncated: false,
    };
    hub.store.insert_command(&record).await?;
    hub.store
        .audit(audit(
            Outcome::Ok,
            format!("{} {summary} ({rollout})", record.id),
        ))
        .await?;
    let cmd = Command {
        id: record.id.clone(),
        role: Role::Admin,
        actor,
        op,
    };
    h.command_id = Some(record.id.clone());
    if let Err(e) = crate::commands::dispatch(hub, record.clone(), cmd).await {
        let mut failed = record;
        failed.end(Status::Failed, None, Some(e.to_string()), now_ms());
        hub.store.finish_command(&failed, &[]).await?;
        h.state = HostState::Waiting;
        h.reason = Some(format!(
            "not sent ({e}): tried again when its agent is back"
        ));
        h.command_id = None;
        return Ok(());
    }
    h.state = HostState::Downloading;
    h.reason = None;
    Ok(())
}
