//! The hub's own work through MCP: alerts (acknowledge, silence), schedules
//! (list, run now) and backups (list). Each tool *is* its REST route's
//! handler, called with the token's principal, so the route's role (the
//! REST access table, [`allowed`]), the token's host groups and the route's
//! own audit entry (`alert.ack`, `alert_silence.create`, `schedule.run`)
//! apply exactly as they do to a REST client; the MCP call is audited
//! besides (`mcp.<tool>`, [`super::audit`]).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{Json, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::read::{allowed, resolve};
use super::{Caller, McpServer, tool_error};
use crate::api::alerts::{AckBody, NewSilenceBody};
use crate::api::auth::Auth;
use crate::api::body::JsonBody;

fn to_value(v: &impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn limit(asked: Option<u32>, default: u32, max: u32) -> Result<usize, String> {
    crate::api::limit(asked, default, max)
        .map(|n| n as usize)
        .map_err(tool_error)
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSchedulesArgs {
    /// Only this schedule, with its latest runs.
    pub id: Option<i64>,
    /// With `id`: this many of its runs, newest first (default 10, at most 200).
    #[schemars(range(min = 1, max = 200))]
    pub runs: Option<u32>,
    /// At most this many schedules (default 100, at most 500).
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ScheduleList {
    /// `id`, `name`, `cron`, `timezone`, `target`, `command`, `enabled`,
    /// `next_run_ms`, `last_run_ms`, as `GET /api/v1/schedules` answers.
    pub schedules: Vec<Value>,
    /// With `id`: its runs, newest first (`status`, `command_id`, `reason`).
    pub runs: Vec<Value>,
    /// Whether there may be more than were returned.
    pub truncated: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListBackupsArgs {
    /// Only this host's backups (node id or hostname).
    pub node: Option<String>,
    /// Only this job's backups.
    #[schemars(length(min = 1, max = 100))]
    pub job: Option<String>,
    /// At most this many, newest first (default 50, at most 500).
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BackupList {
    /// `id`, `node_id`, `job`, `sha256`, `size`, `created_ms`, `status`, as
    /// `GET /api/v1/backups` answers.
    pub backups: Vec<Value>,
    /// Whether there may be more than were returned.
    pub truncated: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AckArgs {
    /// The alert's id (from `list_alerts`).
    pub id: i64,
    /// Why, or who is on it (at most 500 characters).
    #[schemars(length(max = 500))]
    pub comment: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AlertOut {
    /// The alert as stored now: `state`, `acked_ms`, `acked_by`, `ack_comment`, …
    pub alert: Value,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceArgs {
    /// Only this rule's alerts (a rule id, as in `list_alerts`' `rule_id`).
    pub rule_id: Option<i64>,
    /// Only this host's alerts (node id or hostname): a maintenance window.
    pub node: Option<String>,
    /// Only hosts with all these labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// When it starts, unix ms (default now; at most 90 days ahead).
    pub starts_ms: Option<i64>,
    /// How long it lasts: a number and `s`, `m`, `h` or `d` (`30m`, `2h`; at most 90 days).
    #[schemars(length(min = 2, max = 7))]
    pub duration: String,
    /// Why (1 to 500 characters); shown beside the silence.
    #[schemars(length(min = 1, max = 500))]
    pub comment: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SilenceOut {
    pub id: i64,
    /// The silence as stored: matchers, `starts_ms`, `ends_ms`, `created_by`.
    pub silence: Value,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunScheduleArgs {
    /// The schedule's id (from `list_schedules`).
    pub id: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RunsOut {
    /// One per host: `node_id`, `status` (`dispatched`, `skipped` or
    /// `failed`), `command_id` (see `get_command`), `reason`.
    pub runs: Vec<Value>,
}

#[tool_router(router = ops_read_tools, vis = "pub(crate)")]
impl McpServer {
    /// Schedules whose target the token may see (cron, time zone, target,
    /// command, next and last run); with `id`, one schedule and its latest
    /// runs (each names the command it started: see `get_command`).
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn list_schedules(
        &self,
        Extension(c): Extension<Caller>,
        Parameters(a): Parameters<ListSchedulesArgs>,
    ) -> Result<Json<ScheduleList>, String> {
        allowed(&c.who, "GET", "/api/v1/schedules")?;
        let max = limit(a.limit, 100, 500)?;
        let Some(id) = a.id else {
            if a.runs.is_some() {
                return Err("bad request: runs needs the schedule's id".into());
            }
            let axum::Json(all) =
                crate::api::schedules::list(State(self.hub.clone()), Auth(c.who.clone()))
                    .await
                    .map_err(tool_error)?;
            return Ok(Json(ScheduleList {
                truncated: all.len() > max,
                schedules: all.iter().take(max).map(to_value).collect(),
                runs: Vec::new(),
            }));
        };
        allowed(&c.who, "GET", "/api/v1/schedules/{id}/runs")?;
        let runs = limit(a.runs, 10, 200)?;
        let axum::Json(schedule) =
            crate::api::schedules::get_one(State(self.hub.clone()), Auth(c.who.clone()), Path(id))
                .await
                .map_err(tool_error)?;
        let axum::Json(done) = crate::api::schedules::runs(
            State(self.hub.clone()),
            Auth(c.who.clone()),
            Path(id),
            Query(crate::api::schedules::RunsQuery {
                limit: Some(runs as u32),
            }),
        )
        .await
        .map_err(tool_error)?;
        Ok(Json(ScheduleList {
            schedules: vec![to_value(&schedule)],
            truncated: done.len() >= runs,
            runs: done.iter().map(to_value).collect(),
        }))
    }

    /// Backups of the hosts the token may see, newest first: host, job,
    /// size, SHA-256, when, status. (A backup is run with `run_command`'s
    /// policy actions or a schedule; downloads are REST only.)
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn list_backups(
        &self,
        Extension(c): Extension<Caller>,
        Parameters(a): Parameters<ListBackupsArgs>,
    ) -> Result<Json<BackupList>, String> {
        allowed(&c.who, "GET", "/api/v1/backups")?;
        let max = limit(a.limit, 50, 500)?;
        let node = match a.node.as_deref() {
            Some(n) => Some(resolve(&self.hub, &c.who, n)?),
            None => None,
        };
        let axum::Json(rows) = crate::api::backups::list(
            State(self.hub.clone()),
            Auth(c.who.clone()),
            Query(crate::api::backups::ListQuery {
                node,
                job: a.job,
                limit: Some(max as u32 + 1),
            }),
        )
        .await
        .map_err(tool_error)?;
        Ok(Json(BackupList {
            truncated: rows.len() > max,
            backups: rows.iter().take(max).map(to_value).collect(),
        }))
    }
}

#[tool_router(router = ops_act_tools, vis = "pub(crate)")]
impl McpServer {
    /// Acknowledge an active alert: it is not sent again until it resolves
    /// (its resolution still is). Needs the operator role; audited.
    #[tool(annotations(
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn acknowledge_alert(
        &self,
        Extension(c): Extension<Caller>,
        Parameters(a): Parameters<AckArgs>,
    ) -> Result<Json<AlertOut>, String> {
        allowed(&c.who, "POST", "/api/v1/alerts/{id}/ack")?;
        let body = AckBody {
            comment: a.comment.unwrap_or_default(),
        };
        let axum::Json(alert) = crate::api::alerts::ack(
            State(self.hub.clone()),
            Auth(c.who.clone()),
            Path(a.id),
            Ok(JsonBody(body)),
        )
        .await
        .map_err(tool_error)?;
        Ok(Json(AlertOut {
            alert: to_value(&alert),
        }))
    }

    /// Silence alerts for a while (a maintenance window): matching alerts are
    /// still evaluated and listed, not sent. Give at least one matcher
    /// (`rule_id`, `node` or `labels`), a `duration` and a `comment`. Needs
    /// the operator role; audited.
    #[tool(annotations(
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = false,
        open_world_hint = false
    ))]
    async fn silence_alert(
        &self,
        Extension(c): Extension<Caller>,
        Parameters(a): Parameters<SilenceArgs>,
    ) -> Result<Json<SilenceOut>, String> {
        allowed(&c.who, "POST", "/api/v1/alerts/silences")?;
        let node = match a.node.as_deref() {
            Some(n) => Some(resolve(&self.hub, &c.who, n)?),
            None => None,
        };
        let body = NewSilenceBody {
            rule_id: a.rule_id,
            node,
            labels: a.labels,
            starts_ms: a.starts_ms,
            duration: a.duration,
            comment: a.comment,
        };
        let (_, axum::Json(created)) = crate::api::alerts::add_silence(
            State(self.hub.clone()),
            Auth(c.who.clone()),
            Ok(JsonBody(body)),
        )
        .await
        .map_err(tool_error)?;
        let silence = self
            .hub
            .store
            .alert_silences()
            .await
            .ok()
            .and_then(|all| all.into_iter().find(|s| s.id == created.id))
            .map_or(Value::Null, |s| to_value(&s));
        Ok(Json(SilenceOut {
            id: created.id,
            silence,
        }))
    }

    /// Run a schedule now on each of its hosts (its next slot stays). Each
    /// run is a command under the schedule's saved role and the host's own
    /// policy; follow it with `get_command`. Needs the operator role; audited.
    #[tool(annotations(
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = false,
        open_world_hint = false
    ))]
    async fn run_schedule_now(
        &self,
        Extension(c): Extension<Caller>,
        Parameters(a): Parameters<RunScheduleArgs>,
    ) -> Result<Json<RunsOut>, String> {
        allowed(&c.who, "POST", "/api/v1/schedules/{id}/run")?;
        let (_, axum::Json(runs)) = crate::api::schedules::run_now(
            State(self.hub.clone()),
            Auth(c.who.clone()),
            Path(a.id),
        )
        .await
        .map_err(tool_error)?;
        Ok(Json(RunsOut {
            runs: runs.iter().map(to_value).collect(),
        }))
    }
}
