//! Rollouts (`rollouts.rs` drives them): an admin starts, pauses, resumes
//! and aborts one; anyone reads them (a caller limited to host groups sees
//! only its hosts' rows).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::ApiError;
use super::auth::Auth;
use super::body::JsonBody;
use crate::HubState;
use crate::audit::{Outcome, Record};
use crate::rollouts::{self, Batch, Control, Rollout, RolloutError, Spec, Target};
use crate::store::Principal;

/// The longest pause between batches.
const MAX_PAUSE: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutBody {
    /// A published release's version.
    #[schema(min_length = 1, max_length = 64)]
    pub version: String,
    /// `"all"`, `{"group": "k=v"}` or `{"nodes": [id, …]}` (default all).
    #[serde(default)]
    pub target: Option<Target>,
    /// Hosts updated first, alone (default 1, at most 100).
    #[serde(default)]
    #[schema(maximum = 100)]
    pub canaries: Option<u32>,
    /// Hosts per batch after the canaries: a number or `"25%"` (default `"25%"`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub batch: Option<Batch>,
    /// A pause between batches: `"30s"`, `"5m"` or milliseconds (default none, at most a day).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub pause_between: Option<serde_json::Value>,
    /// Failures allowed after the canaries before it halts (default 0).
    #[serde(default)]
    pub max_failures: Option<u32>,
}

fn pause(v: Option<&serde_json::Value>) -> Result<u64, ApiError> {
    let bad = |why: String| ApiError::BadRequest(format!("pause_between: {why}"));
    let d = match v {
        None | Some(serde_json::Value::Null) => return Ok(0),
        Some(serde_json::Value::Number(n)) => Duration::from_millis(
            n.as_u64()
                .ok_or_else(|| bad("milliseconds, a whole number ≥ 0".into()))?,
        ),
        Some(serde_json::Value::String(s)) => humantime::parse_duration(s.trim())
            .map_err(|e| bad(format!("{e} (say \"30s\" or \"5m\")")))?,
        Some(_) => return Err(bad("\"30s\", \"5m\" or milliseconds".into())),
    };
    if d > MAX_PAUSE {
        return Err(bad("at most 24h".into()));
    }
    Ok(d.as_millis() as u64)
}

fn api_error(e: RolloutError) -> ApiError {
    match e {
        RolloutError::Invalid(m) => ApiError::BadRequest(m),
        RolloutError::NotFound(m) => ApiError::NotFound(m),
        RolloutError::Conflict(m) => ApiError::Conflict(m),
        RolloutError::Store(e) => ApiError::Internal(e),
    }
}

/// Only the hosts a caller limited to groups may see.
fn visible(hub: &HubState, who: &Principal, mut r: Rollout) -> Rollout {
    if who.groups.is_some() {
        r.hosts.retain(|h| {
            hub.twin
                .check(&h.node_id, |n| who.sees(&n.state.host.labels))
        });
        r.counts = rollouts::Counts::of(&r.hosts);
    }
    r
}

async fn audited(
    hub: &HubState,
    who: &Principal,
    action: &str,
    target: &str,
    result: Result<Rollout, RolloutError>,
) -> Result<Rollout, ApiError> {
    let (outcome, detail) = match &result {
        Ok(r) => (
            Outcome::Ok,
            format!(
                "{} to {}: {} hosts, {} canaries, batch {}, now {}",
                r.version,
                r.target,
                r.hosts.len(),
                r.canaries,
                serde_json::to_string(&r.batch).unwrap_or_default(),
                r.state.as_str()
            ),
        ),
        Err(RolloutError::Store(_)) => (Outcome::Failed, "the store failed".to_string()),
        Err(e) => (Outcome::Denied, e.to_string()),
    };
    let target = match &result {
        Ok(r) => format!("rollout:{}", r.id),
        Err(_) => target.to_string(),
    };
    hub.store
        .audit(
            Record::by(who, action, outcome)
                .target(&target)
                .detail(&detail),
        )
        .await
        .map_err(ApiError::Internal)?;
    result.map_err(api_error)
}

/// Starts rolling a release out to the fleet.
#[utoipa::path(
    post,
    path = "/api/v1/rollouts",
    tag = "rollouts",
    request_body = RolloutBody,
    responses(
        (status = 201, body = Rollout, description = "Started"),
        (status = 400, description = "A bad body, or no host matches"),
        (status = 404, description = "No such release or host"),
        (status = 409, description = "Another rollout is active"),
    )
)]
pub async fn create(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    body: Result<JsonBody<RolloutBody>, ApiError>,
) -> Result<(StatusCode, Json<Rollout>), ApiError> {
    let spec = match body.and_then(|JsonBody(b)| spec(b)) {
        Ok(s) => s,
        Err(e) => {
            let record = Record::by(&who, "rollout.start", Outcome::Denied)
                .target("rollouts")
                .detail(&e.to_string());
            hub.store.audit(record).await.map_err(ApiError::Internal)?;
            return Err(e);
        }
    };
    let result = rollouts::start(&hub, spec, &who.name()).await;
    let r = audited(&hub, &who, "rollout.start", "rollouts", result).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

fn spec(b: RolloutBody) -> Result<Spec, ApiError> {
    let version = b.version.trim().to_string();
    if version.is_empty() || version.len() > 64 {
        return Err(ApiError::BadRequest("version: 1 to 64 characters".into()));
    }
    let canaries = b.canaries.unwrap_or(1);
    if canaries > 100 {
        return Err(ApiError::BadRequest("canaries: at most 100".into()));
    }
    let target = b.target.unwrap_or(Target::All(rollouts::Everyone::All));
    match &target {
        Target::Group { group } if !group.contains('=') => {
            return Err(ApiError::BadRequest(
                "target.group: a key=value label selector".into(),
            ));
        }
        Target::Nodes { nodes } if nodes.is_empty() || nodes.len() > 10_000 => {
            return Err(ApiError::BadRequest(
                "target.nodes: 1 to 10,000 node ids".into(),
            ));
        }
        _ => {}
    }
    Ok(Spec {
        version,
        target,
        canaries,
        batch: b.batch.unwrap_or(Batch::Percent(25)),
        pause_between_ms: pause(b.pause_between.as_ref())?,
        max_failures: b.max_failures.unwrap_or(0),
    })
}

/// Every kept rollout, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/rollouts",
    tag = "rollouts",
    responses((status = 200, body = Vec<Rollout>, description = "The rollouts")),
)]
pub async fn list(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
) -> Result<Json<Vec<Rollout>>, ApiError> {
    let all = rollouts::list(&hub).await.map_err(ApiError::Internal)?;
    Ok(Json(
        all.into_iter().map(|r| visible(&hub, &who, r)).collect(),
    ))
}

/// One rollout.
#[utoipa::path(
    get,
    path = "/api/v1/rollouts/{id}",
    tag = "rollouts",
    params(("id" = String, Path, description = "Rollout id")),
    responses(
        (status = 200, body = Rollout, description = "The rollout"),
        (status = 404, description = "No such rollout"),
    )
)]
pub async fn get_one(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<Json<Rollout>, ApiError> {
    let r = rollouts::get(&hub, &id)
        .await
        .map_err(ApiError::Internal)?
        .ok_or_else(|| ApiError::NotFound(format!("no rollout {id}")))?;
    Ok(Json(visible(&hub, &who, r)))
}

async fn control(
    hub: Arc<HubState>,
    who: Principal,
    id: String,
    what: Control,
    action: &str,
) -> Result<Json<Rollout>, ApiError> {
    let result = rollouts::control(&hub, &id, what).await;
    Ok(Json(
        audited(&hub, &who, action, &format!("rollout:{id}"), result).await?,
    ))
}

/// Pauses a running rollout: updates in flight finish, no new ones start.
#[utoipa::path(
    post,
    path = "/api/v1/rollouts/{id}/pause",
    tag = "rollouts",
    params(("id" = String, Path, description = "Rollout id")),
    responses(
        (status = 200, body = Rollout, description = "Paused"),
        (status = 404, description = "No such rollout"),
        (status = 409, description = "Not running"),
    )
)]
pub async fn pause_one(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<Json<Rollout>, ApiError> {
    control(hub, who, id, Control::Pause, "rollout.pause").await
}

/// Resumes a paused rollout.
#[utoipa::path(
    post,
    path = "/api/v1/rollouts/{id}/resume",
    tag = "rollouts",
    params(("id" = String, Path, description = "Rollout id")),
    responses(
        (status = 200, body = Rollout, description = "Running again"),
        (status = 404, description = "No such rollout"),
        (status = 409, description = "Not paused"),
    )
)]
pub async fn resume(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<Json<Rollout>, ApiError> {
    control(hub, who, id, Control::Resume, "rollout.resume").await
}

/// Aborts a rollout: hosts not yet sent the update are skipped; updates in
/// flight finish (an agent on trial decides for itself).
#[utoipa::path(
    post,
    path = "/api/v1/rollouts/{id}/abort",
    tag = "rollouts",
    params(("id" = String, Path, description = "Rollout id")),
    responses(
        (status = 200, body = Rollout, description = "Aborted"),
        (status = 404, description = "No such rollout"),
        (status = 409, description = "Already finished"),
    )
)]
pub async fn abort(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<Json<Rollout>, ApiError> {
    control(hub, who, id, Control::Abort, "rollout.abort").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_parse_with_clear_errors() {
        assert_eq!(pause(None).unwrap(), 0);
        assert_eq!(pause(Some(&serde_json::json!("30s"))).unwrap(), 30_000);
        assert_eq!(pause(Some(&serde_json::json!(1500))).unwrap(), 1500);
        assert!(pause(Some(&serde_json::json!("soon"))).is_err());
        assert!(pause(Some(&serde_json::json!(-1))).is_err());
        assert!(pause(Some(&serde_json::json!("2d"))).is_err());
        assert!(pause(Some(&serde_json::json!([1]))).is_err());
    }
}
