//! `/api/v1/hub/...`: the hub's own lifecycle (admin): its recent log
//! lines, `restart`, and `update` to a signed release (docs/updates.md).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::ApiError;
use super::auth::Auth;
use super::body::JsonBody;
use crate::HubState;
use crate::audit::{Outcome, Record};
use crate::lifecycle::{self, Action, TrialRecord, UpdateError};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// The last this many lines (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub lines: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HubLogs {
    /// Oldest first, without terminal colours.
    pub lines: Vec<String>,
}

/// The hub's own recent log lines (kept in memory by the `twinbay` binary;
/// with `twinbay up` the local agent's lines are among them).
#[utoipa::path(
    get,
    path = "/api/v1/hub/logs",
    tag = "hub",
    params(LogsQuery),
    responses((status = 200, body = HubLogs), (status = 401), (status = 403))
)]
pub async fn logs(
    State(hub): State<Arc<HubState>>,
    _auth: Auth,
    Query(q): Query<LogsQuery>,
) -> Result<Json<HubLogs>, ApiError> {
    let n = super::limit(q.lines, 100, 1000)? as usize;
    let lines = hub
        .lifecycle
        .log_tail
        .map(|tail| tail(n))
        .unwrap_or_default();
    Ok(Json(HubLogs { lines }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HubUpdate {
    /// A release published on this hub, for the hub's architecture.
    pub version: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HubAction {
    /// `restarting`, or `trial` (an update: the new binary is being tried).
    pub status: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_version: Option<String>,
    /// How long the new binary has to serve `/healthz` (updates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_window_secs: Option<u64>,
}

fn actor(record: &Record) -> String {
    format!("{}:{}", record.actor_kind.as_str(), record.actor)
}

/// Stops serving a moment after the answer went out.
fn stop_soon(hub: &Arc<HubState>) {
    let shutdown = hub.shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        shutdown.cancel();
    });
}

/// Updates the hub to a signed release from its releases dir: checked and
/// swapped in now (refused with nothing changed otherwise), then the hub
/// stops, tries the new binary and keeps it only if it serves `/healthz`
/// within the health window; else it rolls back. The outcome is audited
/// (`hub.update`) by the hub that runs next.
#[utoipa::path(
    post,
    path = "/api/v1/hub/update",
    tag = "hub",
    request_body = HubUpdate,
    responses(
        (status = 202, body = HubAction, description = "Swapped in; the trial follows"),
        (status = 400), (status = 401), (status = 403),
        (status = 404, description = "No such release for the hub's architecture"),
        (status = 409, description = "Not possible here (container, read-only binary), or a restart or update is under way"),
        (status = 422, description = "The release does not verify against the hub's trusted keys"),
    )
)]
pub async fn update(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    body: Result<JsonBody<HubUpdate>, ApiError>,
) -> Result<(StatusCode, Json<HubAction>), ApiError> {
    let JsonBody(req) = body?;
    let record = Record::by(&who, "hub.update", Outcome::Ok).target("hub");
    let arch = std::env::consts::ARCH;
    twinbay_proto::release::check_version(&req.version)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let result = start_update(&hub, &req.version, arch, &actor(&record)).await;
    let from = hub.lifecycle.version.clone();
    match result {
        Ok(window) => {
            hub.store
                .audit(record.clone().detail(&format!(
                    "{from} → {}: swapped in, on trial for {}",
                    req.version,
                    humantime::format_duration(window)
                )))
                .await?;
            stop_soon(&hub);
            Ok((
                StatusCode::ACCEPTED,
                Json(HubAction {
                    status: "trial".into(),
                    version: req.version,
                    from_version: Some(from),
                    health_window_secs: Some(window.as_secs()),
                }),
            ))
        }
        Err(e) => {
            let (outcome, err) = match e {
                UpdateError::Refused(m) => (Outcome::Denied, ApiError::Conflict(m)),
                UpdateError::NotFound(m) => (Outcome::Denied, ApiError::NotFound(m)),
                UpdateError::Invalid(m) => (
                    Outcome::Denied,
                    ApiError::Other(StatusCode::UNPROCESSABLE_ENTITY, m),
                ),
                UpdateError::Failed(m) => (
                    Outcome::Failed,
                    ApiError::Other(StatusCode::INTERNAL_SERVER_ERROR, m),
                ),
            };
            let mut r = record;
            r.outcome = outcome;
            hub.store
                .audit(r.detail(&format!("{from} → {}: {err}", req.version)))
                .await?;
            Err(err)
        }
    }
}

async fn start_update(
    hub: &Arc<HubState>,
    version: &str,
    arch: &str,
    by: &str,
) -> Result<Duration, UpdateError> {
    if let Some(why) = hub.lifecycle.update_refusal() {
        return Err(UpdateError::Refused(why));
    }
    if hub.lifecycle.busy() {
        return Err(UpdateError::Refused(
            "a restart or an update is under way".into(),
        ));
    }
    let (binary, manifest) = hub.releases.binary(version, arch).await.ok_or_else(|| {
        UpdateError::NotFound(format!("no release {version} for {arch} is published here"))
    })?;
    let exe = lifecycle::exe()
        .ok_or_else(|| UpdateError::Refused("cannot tell the hub's executable".into()))?
        .to_path_buf();
    let keys = hub.releases.keys().clone();
    let exe2 = exe.clone();
    let (sha256, prev) =
        tokio::task::spawn_blocking(move || lifecycle::install(&keys, &binary, &manifest, &exe2))
            .await
            .map_err(|e| UpdateError::Failed(e.to_string()))??;
    let trial = TrialRecord {
        version: version.to_string(),
        from_version: hub.lifecycle.version.clone(),
        sha256,
        exe,
        prev,
        pid: std::process::id(),
        by: by.to_string(),
        started_ms: crate::store::now_ms(),
    };
    let data_dir = hub.lifecycle.data_dir.clone();
    let mut state = lifecycle::load_state(&data_dir);
    state.trial = Some(trial.clone());
    if let Err(e) = lifecycle::save_state(&data_dir, &state) {
        // Without the record a kill during the trial could not be undone:
        // put the old binary back and say so.
        let _ = std::fs::rename(&trial.prev, &trial.exe);
        return Err(UpdateError::Failed(format!(
            "cannot record the trial in {}: {e}",
            data_dir.display()
        )));
    }
    if !hub.lifecycle.request(Action::Update(trial.clone())) {
        let _ = std::fs::rename(&trial.prev, &trial.exe);
        state.trial = None;
        let _ = lifecycle::save_state(&data_dir, &state);
        return Err(UpdateError::Refused(
            "a restart or an update is under way".into(),
        ));
    }
    Ok(hub.lifecycle.health_window)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HubRestart {
    /// Why, for the audit trail.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Restarts the hub: it stops serving (agents reconnect), then runs its
/// binary again in the same process (the same pid).
#[utoipa::path(
    post,
    path = "/api/v1/hub/restart",
    tag = "hub",
    request_body = HubRestart,
    responses(
        (status = 400),
        (status = 202, body = HubAction, description = "Restarting"),
        (status = 401), (status = 403),
        (status = 409, description = "A restart or an update is under way, or the hub runs inside a program that does not restart it"),
    )
)]
pub async fn restart(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    body: Result<JsonBody<HubRestart>, ApiError>,
) -> Result<(StatusCode, Json<HubAction>), ApiError> {
    let JsonBody(req) = body?;
    let mut record = Record::by(&who, "hub.restart", Outcome::Ok).target("hub");
    if let Some(reason) = &req.reason {
        record = record.detail(reason);
    }
    let refused = if !hub.lifecycle.managed {
        Some(lifecycle::NOT_MANAGED)
    } else if !hub.lifecycle.request(Action::Restart) {
        Some("a restart or an update is under way")
    } else {
        None
    };
    if let Some(why) = refused {
        let mut r = record;
        r.outcome = Outcome::Denied;
        hub.store.audit(r.detail(why)).await?;
        return Err(ApiError::Conflict(why.into()));
    }
    hub.store.audit(record).await?;
    stop_soon(&hub);
    Ok((
        StatusCode::ACCEPTED,
        Json(HubAction {
            status: "restarting".into(),
            version: hub.lifecycle.version.clone(),
            from_version: None,
            health_window_secs: None,
        }),
    ))
}
