//! The fleet as a graph (`topology.rs` derives it from the twin on each
//! request), and what depends on one of its elements.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;

use super::auth::Auth;
use super::error::ApiError;
use super::past::AtQuery;
use crate::HubState;
use crate::topology::{Builder, Graph, HostInput, Impact};

/// The graph the caller may see: hosts outside its host groups are left out.
pub(crate) fn graph(hub: &HubState, who: &crate::store::Principal) -> Graph {
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
/// With `at`: the hosts as the state journal had them then (no loads;
/// gateways as they are now).
#[utoipa::path(
    get,
    path = "/api/v1/topology",
    tag = "topology",
    params(AtQuery),
    responses((status = 200, body = Graph),
        (status = 400, description = "`at` is not a time (unix ms or RFC 3339) or is in the future"),
        (status = 401, description = "Not authenticated"))
)]
pub async fn get(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Query(q): Query<AtQuery>,
) -> Result<Json<Graph>, ApiError> {
    match &q.at {
        None => Ok(Json(graph(&hub, &who))),
        Some(at) => {
            let at = super::past::moment("at", at)?;
            Ok(Json(super::past::graph_at(&hub, &who, at).await?))
        }
    }
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
