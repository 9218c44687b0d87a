//! The fleet as a graph (`topology.rs` derives it from the twin on each
//! request), and what depends on one of its elements.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;

use super::auth::Auth;
use super::error::ApiError;
use crate::HubState;
use crate::topology::{Builder, Graph, HostInput, Impact};

/// The graph the caller may see: hosts outside its host groups are left out.
fn graph(hub: &HubState, who: &crate::store::Principal) -> Graph {
    let mut b = Builder::new(&hub.gateways.statuses());
    hub.twin.for_each(|n| {
        if who.sees(&n.state.host.labels) {
            b.host(&HostInput {
                id: &n.id,
                connected: n.connected,
                state: &n.state,
                sample: n.resources.as_ref(),
            });
        }
    });
    b.finish()
}

/// Internet → gateway → proxy → route → container or port → host, with
/// units and published ports; edges carry the link's load where known.
#[utoipa::path(
    get,
    path = "/api/v1/topology",
    tag = "topology",
    responses((status = 200, body = Graph), (status = 401, description = "Not authenticated"))
)]
pub async fn get(State(hub): State<Arc<HubState>>, Auth(who): Auth) -> Json<Graph> {
    Json(graph(&hub, &who))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImpactQuery {
    /// An element's id, as in the graph (`host:NODE`, `container:NODE:ID`, …).
    pub id: String,
}

/// What stops working if this element goes down: every element that
/// depends on it, the routes among them and their public names.
#[utoipa::path(
    get,
    path = "/api/v1/topology/impact",
    tag = "topology",
    params(ImpactQuery),
    responses((status = 200, body = Impact), (status = 400, description = "Bad query"),
        (status = 401, description = "Not authenticated"), (status = 404, description = "No such element"))
)]
pub async fn impact(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Query(q): Query<ImpactQuery>,
) -> Result<Json<Impact>, ApiError> {
    crate::topology::impact(&graph(&hub, &who), &q.id)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no element {:?} in the topology", q.id)))
}
