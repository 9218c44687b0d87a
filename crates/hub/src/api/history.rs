//! History of a node's metrics: raw points and rollups over a time range.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};

use super::ApiError;
use super::auth::Auth;
use super::nodes::require_node;
use crate::HubState;
use crate::history::Resolution;
use crate::store::now_ms;

/// The sample interval assumed when choosing a resolution.
const RAW_STEP: Duration = Duration::from_secs(5);
const DEFAULT_MAX_POINTS: u64 = 1500;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// Comma-separated series names (see `/series`); default `cpu,mem_used`.
    pub series: Option<String>,
    /// Start, unix milliseconds; default an hour before `to`.
    pub from: Option<i64>,
    /// End, unix milliseconds; default now.
    pub to: Option<i64>,
    /// `raw`, `1m`, `15m`, `1h` or `auto` (default): the finest that has the
    /// data and gives at most `max_points` per series.
    pub resolution: Option<String>,
    pub max_points: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RangeResponse {
    pub node: String,
    /// The resolution that answered: `raw`, `1m`, `15m` or `1h`.
    pub resolution: String,
    pub from: i64,
    pub to: i64,
    pub series: Vec<SeriesPoints>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SeriesPoints {
    pub name: String,
    /// `[ts_ms, min, avg, max]`; raw points have min = avg = max.
    #[schema(value_type = Vec<Vec<f64>>)]
    pub points: Vec<[f64; 4]>,
}

/// A node's metric history over a time range.
#[utoipa::path(
    get,
    path = "/api/v1/nodes/{id}/metrics",
    tag = "history",
    params(("id" = String, Path, description = "Node id"), RangeQuery),
    responses(
        (status = 200, body = RangeResponse),
        (status = 400, description = "Bad range or resolution"),
        (status = 401, description = "Not authenticated"),
        (status = 404, description = "No such node"),
    )
)]
pub async fn range(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Query(q): Query<RangeQuery>,
) -> Result<Json<RangeResponse>, ApiError> {
    require_node(&hub, &id, &who)?;
    let now = now_ms();
    let to = q.to.unwrap_or(now);
    let from = q.from.unwrap_or(to - 3_600_000);
    if from > to {
        return Err(ApiError::BadRequest("from must not be after to".into()));
    }
    let names: Vec<String> = q
        .series
        .as_deref()
        .unwrap_or("cpu,mem_used")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if names.is_empty() || names.len() > 64 {
        return Err(ApiError::BadRequest("name between 1 and 64 series".into()));
    }
    let max_points = q.max_points.unwrap_or(DEFAULT_MAX_POINTS).clamp(1, 100_000);
    let resolution = match q.resolution.as_deref().unwrap_or("auto") {
        "auto" => {
            let ms = |v: i64| Duration::from_millis(v.max(0) as u64);
            Resolution::auto(
                ms(to - from),
                ms(now - from),
                RAW_STEP,
                &hub.history.config.retention,
                max_points,
            )
        }
        other => Resolution::parse(other).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unknown resolution {other:?}; use raw, 1m, 15m, 1h or auto"
            ))
        })?,
    };
    let series = hub
        .history
        .query(&hub.store, &id, &names, resolution, from, to)
        .await?;
    Ok(Json(RangeResponse {
        node: id,
        resolution: resolution.name().into(),
        from,
        to,
        series: series
            .into_iter()
            .map(|(name, points)| SeriesPoints { name, points })
            .collect(),
    }))
}

/// The names of every series a node has history for.
#[utoipa::path(
    get,
    path = "/api/v1/nodes/{id}/series",
    tag = "history",
    params(("id" = String, Path, description = "Node id")),
    responses((status = 200, body = Vec<String>), (status = 401, description = "Not authenticated"), (status = 404, description = "No such node"))
)]
pub async fn series(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<String>>, ApiError> {
    require_node(&hub, &id, &who)?;
    Ok(Json(hub.store.series_names(&id).await?))
}
