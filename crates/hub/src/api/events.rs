//! The event timeline, per node and fleet-wide, newest first.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use super::ApiError;
use super::auth::Auth;
use super::nodes::require_node;
use crate::HubState;
use crate::timeline::Event;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Only events before this time (unix ms); for paging back.
    pub before: Option<i64>,
    /// At most this many (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

impl Page {
    fn bounds(&self) -> Result<(i64, i64), ApiError> {
        Ok((
            self.before.unwrap_or(i64::MAX),
            i64::from(super::limit(self.limit, 100, 1000)?),
        ))
    }
}

/// One node's timeline: containers started and died, units failed, ports
/// opened and closed, the agent connected and disconnected.
#[utoipa::path(
    get,
    path = "/api/v1/nodes/{id}/events",
    tag = "events",
    params(("id" = String, Path, description = "Node id"), Page),
    responses((status = 200, body = Vec<Event>), (status = 401, description = "Not authenticated"), (status = 404, description = "No such node"))
)]
pub async fn node_events(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<Event>>, ApiError> {
    require_node(&hub, &id, &who)?;
    let (before, limit) = page.bounds()?;
    Ok(Json(hub.store.events(Some(&id), before, limit).await?))
}

/// The whole fleet's timeline.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    params(Page),
    responses((status = 200, body = Vec<Event>), (status = 401, description = "Not authenticated"))
)]
pub async fn fleet_events(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Query(page): Query<Page>,
) -> Result<Json<Vec<Event>>, ApiError> {
    let (before, limit) = page.bounds()?;
    let mut events = hub.store.events(None, before, limit).await?;
    if who.groups.is_some() {
        events.retain(|e| {
            hub.twin
                .check(&e.node_id, |n| who.sees(&n.state.host.labels))
        });
    }
    Ok(Json(events))
}
