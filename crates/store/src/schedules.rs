//! Schedules and their runs (`schedules.rs` runs them). A run that reached
//! the host is `dispatched` here; its outcome is its command's, read by a
//! join, so the two can never disagree.

use serde::{Deserialize, Serialize};

use super::{Role, StoreError};
use crate::audit::Record;

/// Runs kept per schedule; older ones are removed as new ones come.
pub const KEEP_RUNS: i64 = 200;

/// Where a schedule runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum ScheduleTarget {
    /// One host, by node id.
    Node(String),
    /// Every host whose labels match this `key=value` selector.
    Group(String),
}

impl ScheduleTarget {
    /// Whether a host with these labels is (one of) the target.
    pub fn matches(
        &self,
        node_id: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> bool {
        match self {
            ScheduleTarget::Node(id) => id == node_id,
            ScheduleTarget::Group(selector) => selector
                .split_once('=')
                .is_some_and(|(k, v)| labels.get(k).is_some_and(|l| l == v)),
        }
    }
}

impl std::fmt::Display for ScheduleTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScheduleTarget::Node(id) => write!(f, "node {id}"),
            ScheduleTarget::Group(g) => write!(f, "group {g}"),
        }
    }
}

/// A schedule as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ScheduleRecord {
    pub id: i64,
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub target: ScheduleTarget,
    /// The body each run sends, as `POST /api/v1/nodes/{id}/commands` takes it.
    #[schema(value_type = Object)]
    pub command: serde_json::Value,
    pub enabled: bool,
    /// `forbid`, `allow` or `replace`.
    pub overlap: String,
    pub jitter_secs: u32,
    /// Catch-up grace; absent: one period, at most an hour.
    pub grace_secs: Option<u32>,
    /// The role runs are checked with (the creator's or last editor's).
    pub role: Role,
    pub created_by: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// The next slot, before each host's jitter; absent when disabled or broken.
    pub next_run_ms: Option<i64>,
    pub last_run_ms: Option<i64>,
    /// Why the schedule cannot run, if it cannot.
    pub schedule_error: Option<String>,
    /// How the latest slot went over all its hosts: the first outcome that
    /// is neither `ok` nor `running` (`failed`, `skipped`, …), else
    /// `running`, else `ok`; absent before the first run.
    pub last_outcome: Option<String>,
}

/// What a create or an edit writes.
#[derive(Debug, Clone)]
pub struct NewSchedule {
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub target: ScheduleTarget,
    pub command: serde_json::Value,
    pub enabled: bool,
    pub overlap: String,
    pub jitter_secs: u32,
    pub grace_secs: Option<u32>,
    pub role: Role,
    pub by: String,
    pub next_run_ms: Option<i64>,
}

/// One run on one host.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunRecord {
    pub id: i64,
    pub schedule_id: i64,
    pub node_id: String,
    /// The slot it was for.
    pub slot_ms: i64,
    /// The command's status once sent (`running`, `ok`, `failed`, `refused`,
    /// `timed_out`, `cancelled`, `lost`), else `skipped`, `missed` or
    /// `failed` (it never reached the host).
    pub status: String,
    pub command_id: Option<String>,
    /// `slot`, `catch_up` or `manual`.
    pub trigger: String,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    pub duration_ms: Option<i64>,
    pub exit_code: Option<i64>,
    /// Why it was skipped, missed or failed.
    pub reason: Option<String>,
}

/// A run to record.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub schedule_id: i64,
    pub node_id: &'a str,
    pub slot_ms: i64,
    /// `dispatched`, `skipped`, `missed` or `failed`.
    pub status: &'a str,
    pub command_id: Option<&'a str>,
    pub trigger: &'a str,
    pub reason: Option<&'a str>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct ScheduleRow {
    id: i64,
    name: String,
    cron: String,
    timezone: String,
    target: String,
    command: String,
    enabled: bool,
    overlap: String,
    jitter_secs: i64,
    grace_secs: Option<i64>,
    role: String,
    created_by: String,
    created_ms: i64,
    updated_ms: i64,
    next_run_ms: Option<i64>,
    last_run_ms: Option<i64>,
    schedule_error: Option<String>,
}

pub(crate) fn schedule(r: ScheduleRow) -> Result<ScheduleRecord, StoreError> {
    let bad = |what: &str| StoreError::Damaged(format!("schedule {}: bad {what}", r.id));
    Ok(ScheduleRecord {
        target: serde_json::from_str(&r.target).map_err(|_| bad("target"))?,
        command: serde_json::from_str(&r.command).map_err(|_| bad("command"))?,
        role: Role::parse(&r.role).ok_or_else(|| bad("role"))?,
        jitter_secs: u32::try_from(r.jitter_secs).unwrap_or(0),
        grace_secs: r.grace_secs.and_then(|g| u32::try_from(g).ok()),
        id: r.id,
        name: r.name,
        cron: r.cron,
        timezone: r.timezone,
        enabled: r.enabled,
        overlap: r.overlap,
        created_by: r.created_by,
        created_ms: r.created_ms,
        updated_ms: r.updated_ms,
        next_run_ms: r.next_run_ms,
        last_run_ms: r.last_run_ms,
        schedule_error: r.schedule_error,
        last_outcome: None,
    })
}

/// The outcome of a slot from its runs' statuses (see `last_outcome`).
pub fn outcome<'a>(statuses: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut seen = None;
    for s in statuses {
        match s {
            "ok" => {
                seen.get_or_insert("ok");
            }
            "running" => seen = Some("running"),
            bad => return Some(bad.to_string()),
        }
    }
    seen.map(String::from)
}

pub(crate) type RunRow = (
    i64,
    i64,
    String,
    i64,
    String,
    Option<String>,
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

pub(crate) fn run(
    (
        id,
        schedule_id,
        node_id,
        slot_ms,
        status,
        command_id,
        trigger,
        started_ms,
        finished_ms,
        reason,
        cmd_status,
        cmd_ended,
        exit_code,
    ): RunRow,
) -> RunRecord {
    let (status, finished_ms, reason) = match status.as_str() {
        // A command pruned from the history: its run outlived it.
        "dispatched" => (
            cmd_status.unwrap_or_else(|| "lost".into()),
            cmd_ended,
            reason,
        ),
        _ => (status, finished_ms, reason),
    };
    RunRecord {
        id,
        schedule_id,
        node_id,
        slot_ms,
        status,
        command_id,
        trigger,
        started_ms,
        duration_ms: finished_ms.map(|f| f - started_ms),
        finished_ms,
        exit_code,
        reason,
    }
}

#[async_trait::async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Every schedule, with how its latest slot went.
    async fn schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError>;

    async fn schedule(&self, id: i64) -> Result<Option<ScheduleRecord>, StoreError>;

    /// Adds a schedule, audited with `record` (its target set here).
    async fn add_schedule(&self, s: &NewSchedule, record: Record) -> Result<i64, StoreError>;

    /// Replaces a schedule's definition (its runs stay); false if there is none.
    async fn update_schedule(
        &self,
        id: i64,
        s: &NewSchedule,
        record: Record,
    ) -> Result<bool, StoreError>;

    /// Removes a schedule and its runs; false if there was none.
    async fn remove_schedule(&self, id: i64, record: Record) -> Result<bool, StoreError>;

    /// Notes the scheduler's view of a schedule as it was when last
    /// saved at `updated_ms`: the next slot, the last run (kept when
    /// `None`) and the error that stops it (cleared by `None`). False (and
    /// nothing written) if it was edited or removed since.
    async fn note_schedule(
        &self,
        id: i64,
        updated_ms: i64,
        next_run_ms: Option<i64>,
        last_run_ms: Option<i64>,
        error: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// Notes a run by hand at `at` (the next slot stays).
    async fn note_schedule_ran(&self, id: i64, at: i64) -> Result<(), StoreError>;

    /// Records a run and drops the schedule's runs beyond [`KEEP_RUNS`].
    async fn add_schedule_run(&self, r: &NewRun<'_>) -> Result<i64, StoreError>;

    /// A schedule's runs, newest first, with their commands' outcomes.
    async fn schedule_runs(
        &self,
        schedule_id: i64,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError>;

    /// The command of the newest run of a schedule on a host that reached it.
    async fn last_schedule_command(
        &self,
        schedule_id: i64,
        node_id: &str,
    ) -> Result<Option<String>, StoreError>;
}

#[cfg(test)]
mod tests;
