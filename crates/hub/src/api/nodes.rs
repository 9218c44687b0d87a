//! The fleet and each node's twin.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};

use super::ApiError;
use super::auth::Auth;
use crate::HubState;
use crate::store::Principal;
use crate::twin::{NodeSummary, NodeView};

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

/// One node's whole twin.
#[utoipa::path(
    get,
    path = "/api/v1/nodes/{id}",
    tag = "nodes",
    params(("id" = String, Path, description = "Node id, e.g. `n_3f9a1c2b7d4e`")),
    responses(
        (status = 200, body = NodeView),
        (status = 401, description = "Not authenticated"),
        (status = 404, description = "No such node"),
    )
)]
pub async fn get_one(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<Json<NodeView>, ApiError> {
    require_node(&hub, &id, &who)?;
    hub.twin.view(&id).map(Json).ok_or_else(|| no_node(&id))
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
