//! The fleet and each node's twin.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};

use super::ApiError;
use super::auth::Auth;
use super::past::{AtQuery, NodeAnswer};
use crate::HubState;
use crate::store::Principal;
use crate::twin::NodeSummary;

/// Every node, connected or not.
#[utoipa::path(
    get,
    path = "/api/v1/nodes",
    tag = "nodes",
    responses((status = 200, body = Vec<NodeSummary>), (status = 401, description = "Not authenticated"))
)]
pub async fn list(State(hub): State<Arc<HubState>>, Auth(who): Auth) -> Json<Vec<NodeSummary>> {
    Json(hub.twin.summaries_where(|n| who.sees(&n.state.host.labels)))
}

/// One node's whole twin; with `at`, as it was then (from the state
/// journal: the same fields, plus `at` and `recorded_at`).
#[utoipa::path(
    get,
    path = "/api/v1/nodes/{id}",
    tag = "nodes",
    params(("id" = String, Path, description = "Node id, e.g. `n_3f9a1c2b7d4e`"), AtQuery),
    responses(
        (status = 200, body = NodeAnswer),
        (status = 400, description = "`at` is not a time (unix ms or RFC 3339) or is in the future"),
        (status = 401, description = "Not authenticated"),
        (status = 404, description = "No such node, or nothing recorded of it by `at`"),
    )
)]
pub async fn get_one(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Query(q): Query<AtQuery>,
) -> Result<Json<NodeAnswer>, ApiError> {
    require_node(&hub, &id, &who)?;
    if let Some(at) = &q.at {
        let at = super::past::moment("at", at)?;
        return Ok(Json(NodeAnswer::Then(
            super::past::node_at(&hub, &id, at).await?,
        )));
    }
    hub.twin
        .view(&id)
        .map(|v| Json(NodeAnswer::Now(v)))
        .ok_or_else(|| no_node(&id))
}

fn no_node(id: &str) -> ApiError {
    ApiError::NotFound(format!("no node {id:?}"))
}

/// 404 unless the node exists and the caller may see it (a node outside
/// the caller's host groups is as good as absent).
pub(super) fn require_node(hub: &HubState, id: &str, who: &Principal) -> Result<(), ApiError> {
    match hub.twin.check(id, |n| who.sees(&n.state.host.labels)) {
        true => Ok(()),
        false => Err(no_node(id)),
    }
}
