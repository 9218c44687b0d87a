//! An agentless host's collection runs (`agentless/`): what ran, when, how
//! long and how it went, newest first.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use super::ApiError;
use super::auth::Auth;
use super::nodes::require_node;
use crate::HubState;
use crate::store::{CollectionRun, KEEP_RUNS};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// How many runs, newest first (1–500, default 50).
    pub limit: Option<i64>,
}

/// An agentless host's collection runs, newest first (empty for an agent's host).
#[utoipa::path(
    get,
    path = "/api/v1/nodes/{id}/collections",
    tag = "nodes",
    params(("id" = String, Path, description = "Node id"), RunsQuery),
    responses(
        (status = 200, body = Vec<CollectionRun>),
        (status = 400, description = "Bad limit"),
        (status = 401, description = "Not authenticated"),
        (status = 404, description = "No such node"),
    )
)]
pub async fn runs(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Query(q): Query<RunsQuery>,
) -> Result<Json<Vec<CollectionRun>>, ApiError> {
    require_node(&hub, &id, &who)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=KEEP_RUNS).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {KEEP_RUNS}"
        )));
    }
    Ok(Json(hub.store.collection_runs(&id, limit).await?))
}
