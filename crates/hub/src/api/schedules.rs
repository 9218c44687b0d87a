//! Schedules (`schedules.rs` runs them): operators and admins create,
//! change, delete and run them now; anyone reads those whose target they
//! may see. A caller limited to host groups targets hosts it sees, or one
//! of its own groups.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::ApiError;
use super::auth::Auth;
use super::body::JsonBody;
use crate::HubState;
use crate::audit::{Outcome, Record};
use crate::schedules::Job;
use crate::schedules::plan::{MAX_GRACE_MS, MAX_JITTER_SECS, Overlap, Plan};
use crate::schedules::runner::{self, RunStarted};
use crate::store::{NewSchedule, Principal, RunRecord, ScheduleRecord, ScheduleTarget, now_ms};

/// Runs the preview lists.
const PREVIEW_RUNS: usize = 5;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Five fields: minute hour day-of-month month day-of-week (or `@daily`, …).
    #[schema(min_length = 1, max_length = 200)]
    pub cron: String,
    /// An IANA time zone: `UTC`, `Europe/Berlin`, …
    #[schema(min_length = 1, max_length = 64)]
    pub timezone: String,
    pub target: ScheduleTarget,
    /// What to run: a body of `POST /api/v1/nodes/{id}/commands`
    /// (`{"op":"action","name":…}` or `{"op":"lifecycle",…}`).
    #[schema(value_type = Object)]
    pub command: serde_json::Value,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// When a slot comes while the previous run on a host still runs
    /// (default `forbid`: skip it, visibly).
    #[serde(default)]
    pub overlap: Option<Overlap>,
    /// Each host starts up to this many seconds late, by a fixed amount of
    /// its own (default 0, at most 3600).
    #[serde(default)]
    #[schema(maximum = 3600)]
    pub jitter_secs: Option<u32>,
    /// How late a slot missed while the hub was down may still run once
    /// (default: one period, at most an hour; at most 3600).
    #[serde(default)]
    #[schema(maximum = 3600)]
    pub grace_secs: Option<u32>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    #[schema(min_length = 1, max_length = 200)]
    pub cron: String,
    #[schema(min_length = 1, max_length = 64)]
    pub timezone: String,
}

/// The next runs of a pattern.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Preview {
    pub timezone: String,
    /// Unix milliseconds.
    pub next_runs_ms: Vec<i64>,
    /// The same times in the zone, RFC 3339 with the zone's offset.
    pub next_runs: Vec<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// At most this many, newest first (default 50, at most 200).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

fn bad(message: String) -> ApiError {
    ApiError::BadRequest(message)
}

fn no_schedule(id: i64) -> ApiError {
    ApiError::NotFound(format!("no schedule {id}"))
}

/// Whether `who` may see (and so use) a target.
fn sees(hub: &HubState, who: &Principal, target: &ScheduleTarget) -> bool {
    match (target, &who.groups) {
        (_, None) => match target {
            ScheduleTarget::Node(id) => hub.twin.check(id, |_| true),
            ScheduleTarget::Group(_) => true,
        },
        (ScheduleTarget::Node(id), Some(_)) => {
            hub.twin.check(id, |n| who.sees(&n.state.host.labels))
        }
        (ScheduleTarget::Group(g), Some(groups)) => groups.iter().any(|s| s == g),
    }
}

/// Parses a pattern off the async workers: proving that a pattern never
/// fires searches years of dates (~0.1–0.7 s unoptimised).
async fn parse_plan(cron: &str, timezone: &str, now: i64) -> Result<Plan, ApiError> {
    let (cron, timezone) = (cron.to_string(), timezone.to_string());
    tokio::task::spawn_blocking(move || Plan::parse(&cron, &timezone, now))
        .await
        .map_err(|e| ApiError::Other(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| bad(e.to_string()))
}

/// Checks a body and makes the row it writes; `now` places the next run.
async fn check(
    hub: &HubState,
    who: &Principal,
    b: ScheduleBody,
    now: i64,
) -> Result<NewSchedule, ApiError> {
    let name = b.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(bad("name: 1 to 100 characters".into()));
    }
    let plan = parse_plan(&b.cron, &b.timezone, now).await?;
    match &b.target {
        ScheduleTarget::Node(id) if id.is_empty() || id.len() > 100 => {
            return Err(bad("target: a node id".into()));
        }
        ScheduleTarget::Group(g)
            if g.len() > 200
                || !g
                    .split_once('=')
                    .is_some_and(|(k, v)| !k.is_empty() && !v.is_empty()) =>
        {
            return Err(bad(format!("target: group {g:?} is not key=value")));
        }
        _ => {}
    }
    Job::parse(&b.command).map_err(bad)?;
    if b.jitter_secs.is_some_and(|j| j > MAX_JITTER_SECS) {
        return Err(bad(format!("jitter_secs: at most {MAX_JITTER_SECS}")));
    }
    if b.grace_secs
        .is_some_and(|g| i64::from(g) * 1000 > MAX_GRACE_MS)
    {
        return Err(bad(format!("grace_secs: at most {}", MAX_GRACE_MS / 1000)));
    }
    if !sees(hub, who, &b.target) {
        return Err(match &b.target {
            ScheduleTarget::Node(id) => ApiError::NotFound(format!("no node {id:?}")),
            ScheduleTarget::Group(g) => ApiError::Forbidden(format!(
                "group {g:?}: this caller is limited to its own host groups"
            )),
        });
    }
    let enabled = b.enabled.unwrap_or(true);
    Ok(NewSchedule {
        name: name.to_string(),
        cron: b.cron.trim().to_string(),
        timezone: b.timezone.trim().to_string(),
        target: b.target,
        command: b.command,
        enabled,
        overlap: b.overlap.unwrap_or_default().as_str().into(),
        jitter_secs: b.jitter_secs.unwrap_or(0),
        grace_secs: b.grace_secs,
        role: who.role,
        by: who.name(),
        next_run_ms: if enabled { plan.next_after(now) } else { None },
    })
}

/// A stored schedule the caller may see, else 404.
async fn visible(hub: &HubState, who: &Principal, id: i64) -> Result<ScheduleRecord, ApiError> {
    let s = hub
        .store
        .schedule(id)
        .await?
        .ok_or_else(|| no_schedule(id))?;
    match sees(hub, who, &s.target) || who.groups.is_none() {
        true => Ok(s),
        false => Err(no_schedule(id)),
    }
}

/// Adds a schedule.
#[utoipa::path(post, path = "/api/v1/schedules", tag = "schedules", request_body = ScheduleBody,
    responses((status = 201, body = ScheduleRecord, description = "Created, with `id` and `next_run_ms`"),
        (status = 400, description = "A bad pattern (or one that never fires), time zone, target or command"),
        (status = 401, description = "Not authenticated"),
        (status = 403, description = "Needs operator, or a group outside the caller's"),
        (status = 404, description = "No such node")))]
pub async fn create(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    body: Result<JsonBody<ScheduleBody>, ApiError>,
) -> Result<(StatusCode, Json<ScheduleRecord>), ApiError> {
    let JsonBody(b) = body?;
    let new = check(&hub, &who, b, now_ms()).await?;
    let record = Record::by(&who, "schedule.create", Outcome::Ok)
        .detail(&format!("{:?} {} on {}", new.name, new.cron, new.target));
    let id = hub.store.add_schedule(&new, record).await?;
    hub.schedules.changed();
    hub.tell_replicas(crate::replicas::wire::Changed::Schedules);
    let s = hub
        .store
        .schedule(id)
        .await?
        .ok_or_else(|| no_schedule(id))?;
    Ok((StatusCode::CREATED, Json(s)))
}

/// The schedules whose target the caller may see.
#[utoipa::path(get, path = "/api/v1/schedules", tag = "schedules",
    responses((status = 200, body = [ScheduleRecord]), (status = 401, description = "Not authenticated")))]
pub async fn list(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
) -> Result<Json<Vec<ScheduleRecord>>, ApiError> {
    let all = hub.store.schedules().await?;
    Ok(Json(
        all.into_iter()
            .filter(|s| who.groups.is_none() || sees(&hub, &who, &s.target))
            .collect(),
    ))
}

/// One schedule.
#[utoipa::path(get, path = "/api/v1/schedules/{id}", tag = "schedules",
    params(("id" = i64, Path, description = "Schedule id")),
    responses((status = 200, body = ScheduleRecord), (status = 401, description = "Not authenticated"),
        (status = 404, description = "No such schedule")))]
pub async fn get_one(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<i64>,
) -> Result<Json<ScheduleRecord>, ApiError> {
    Ok(Json(visible(&hub, &who, id).await?))
}

/// Replaces a schedule (enable or disable it by `enabled`); its next run is
/// placed again from now.
#[utoipa::path(put, path = "/api/v1/schedules/{id}", tag = "schedules",
    params(("id" = i64, Path, description = "Schedule id")), request_body = ScheduleBody,
    responses((status = 200, body = ScheduleRecord),
        (status = 400, description = "A bad pattern, time zone, target or command"),
        (status = 401, description = "Not authenticated"),
        (status = 403, description = "Needs operator, or a group outside the caller's"),
        (status = 404, description = "No such schedule or node")))]
pub async fn update(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<i64>,
    body: Result<JsonBody<ScheduleBody>, ApiError>,
) -> Result<Json<ScheduleRecord>, ApiError> {
    let JsonBody(b) = body?;
    let new = check(&hub, &who, b, now_ms()).await?;
    visible(&hub, &who, id).await?;
    let record = Record::by(&who, "schedule.update", Outcome::Ok).detail(&format!(
        "{:?} {} on {}{}",
        new.name,
        new.cron,
        new.target,
        if new.enabled { "" } else { " (disabled)" }
    ));
    if !hub.store.update_schedule(id, &new, record).await? {
        return Err(no_schedule(id));
    }
    hub.schedules.changed();
    hub.tell_replicas(crate::replicas::wire::Changed::Schedules);
    Ok(Json(visible(&hub, &who, id).await?))
}

/// Removes a schedule and its runs (the commands it ran stay in their hosts' history).
#[utoipa::path(delete, path = "/api/v1/schedules/{id}", tag = "schedules",
    params(("id" = i64, Path, description = "Schedule id")),
    responses((status = 204), (status = 401, description = "Not authenticated"),
        (status = 403, description = "Needs operator"), (status = 404, description = "No such schedule")))]
pub async fn remove(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let s = visible(&hub, &who, id).await?;
    let record = Record::by(&who, "schedule.delete", Outcome::Ok).detail(&format!("{:?}", s.name));
    if !hub.store.remove_schedule(id, record).await? {
        return Err(no_schedule(id));
    }
    hub.schedules.changed();
    hub.tell_replicas(crate::replicas::wire::Changed::Schedules);
    Ok(StatusCode::NO_CONTENT)
}

/// Runs a schedule now on each of its hosts (no jitter; the next slot stays).
#[utoipa::path(post, path = "/api/v1/schedules/{id}/run", tag = "schedules",
    params(("id" = i64, Path, description = "Schedule id")),
    responses((status = 202, body = [RunStarted], description = "One run per host, as recorded"),
        (status = 401, description = "Not authenticated"),
        (status = 403, description = "Needs operator"), (status = 404, description = "No such schedule")))]
pub async fn run_now(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<Vec<RunStarted>>), ApiError> {
    let s = visible(&hub, &who, id).await?;
    let now = now_ms();
    let nodes = runner::targets(&hub, &s.target);
    hub.store
        .audit(
            Record::by(&who, "schedule.run", Outcome::Ok)
                .target(&format!("schedule:{id}"))
                .detail(&format!("{:?} on {} host(s)", s.name, nodes.len())),
        )
        .await?;
    let mut started = Vec::new();
    if nodes.is_empty() {
        let reason = format!("no host matches {}", s.target);
        started.push(
            runner::skip(&hub, &s, runner::NODE_ID, now, "manual", "skipped", &reason).await?,
        );
    }
    let runs = nodes
        .iter()
        .map(|n| runner::run_on(&hub, &s, n, now, "manual"));
    for r in futures_util::future::join_all(runs).await {
        started.push(r?);
    }
    hub.store.note_schedule_ran(id, now).await?;
    Ok((StatusCode::ACCEPTED, Json(started)))
}

/// A schedule's runs, newest first: one per host and slot, with the
/// command each started (its status is the command's), or why none did.
#[utoipa::path(get, path = "/api/v1/schedules/{id}/runs", tag = "schedules",
    params(("id" = i64, Path, description = "Schedule id"), RunsQuery),
    responses((status = 200, body = [RunRecord]), (status = 400, description = "A bad limit"),
        (status = 401, description = "Not authenticated"), (status = 404, description = "No such schedule")))]
pub async fn runs(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<i64>,
    Query(q): Query<RunsQuery>,
) -> Result<Json<Vec<RunRecord>>, ApiError> {
    let limit = super::limit(q.limit, 50, 200)?;
    visible(&hub, &who, id).await?;
    Ok(Json(hub.store.schedule_runs(id, limit).await?))
}

/// The next five runs of a pattern in a time zone (the UI's cron helper).
#[utoipa::path(post, path = "/api/v1/schedules/preview", tag = "schedules", request_body = PreviewBody,
    responses((status = 200, body = Preview),
        (status = 400, description = "A bad pattern (or one that never fires) or time zone"),
        (status = 401, description = "Not authenticated")))]
pub async fn preview(
    _auth: Auth,
    body: Result<JsonBody<PreviewBody>, ApiError>,
) -> Result<Json<Preview>, ApiError> {
    let JsonBody(b) = body?;
    let now = now_ms();
    let plan = parse_plan(&b.cron, &b.timezone, now).await?;
    let next_runs_ms = plan.upcoming(now, PREVIEW_RUNS);
    let next_runs = next_runs_ms
        .iter()
        .filter_map(|t| plan.local(*t))
        .map(|t| t.to_rfc3339())
        .collect();
    Ok(Json(Preview {
        timezone: plan.timezone().name().to_string(),
        next_runs_ms,
        next_runs,
    }))
}
