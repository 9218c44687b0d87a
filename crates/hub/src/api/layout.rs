//! The physical layout (`layout.rs`): read by anyone, replaced whole by
//! admins, naming the version the edit started from.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::ApiError;
use super::auth::Auth;
use super::body::JsonBody;
use crate::HubState;
use crate::audit::{Outcome, Record};
use crate::layout::{self, Layout, Site};
use crate::store::{PutLayout, StoreError};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LayoutView {
    /// Counts saved edits; send it back with an edit (0: never saved).
    pub version: i64,
    pub sites: Vec<Site>,
    /// Hosts (node ids) the caller may see that no rack holds yet.
    pub unplaced: Vec<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LayoutEdit {
    /// The version this edit started from (409 if another edit came first).
    pub version: i64,
    #[serde(default)]
    pub sites: Vec<Site>,
}

async fn view(hub: &HubState, who: &crate::store::Principal) -> Result<LayoutView, ApiError> {
    let (version, doc) = hub.store.layout().await?;
    let mut layout: Layout = match doc {
        Some(doc) => serde_json::from_str(&doc)
            .map_err(|e| StoreError::Damaged(format!("the layout does not parse: {e}")))?,
        None => Layout::default(),
    };
    let visible = |id: &str| hub.twin.check(id, |n| who.sees(&n.state.host.labels));
    if who.groups.is_some() {
        layout.retain_devices(|id| visible(id));
    }
    let placed = layout.placed();
    let mut unplaced = Vec::new();
    hub.twin.for_each(|n| {
        if who.sees(&n.state.host.labels) && !placed.contains(n.id.as_str()) {
            unplaced.push(n.id.clone());
        }
    });
    unplaced.sort();
    Ok(LayoutView {
        version,
        sites: layout.sites,
        unplaced,
    })
}

/// Sites → rooms → racks → devices (hosts at U positions), and the hosts no
/// rack holds yet.
#[utoipa::path(get, path = "/api/v1/layout", tag = "layout",
    responses((status = 200, body = LayoutView), (status = 401, description = "Not authenticated")))]
pub async fn get(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
) -> Result<Json<LayoutView>, ApiError> {
    Ok(Json(view(&hub, &who).await?))
}

/// Replaces the layout (admins). Refused whole, with the reason, when it
/// does not hold together (overlapping devices, a rack outside its room, a
/// host placed twice); 409 when another edit was saved since `version`.
#[utoipa::path(put, path = "/api/v1/layout", tag = "layout", request_body = LayoutEdit,
    responses((status = 200, body = LayoutView), (status = 400, description = "Invalid layout"),
        (status = 401, description = "Not authenticated"), (status = 403, description = "Needs admin"),
        (status = 409, description = "Another edit was saved first")))]
pub async fn put(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    body: Result<JsonBody<LayoutEdit>, ApiError>,
) -> Result<Json<LayoutView>, ApiError> {
    let JsonBody(edit) = body?;
    let (base, edit) = (edit.version, Layout { sites: edit.sites });
    layout::validate(&edit).map_err(ApiError::BadRequest)?;
    let doc = serde_json::to_string(&edit)
        .map_err(|e| StoreError::Damaged(format!("the layout does not serialise: {e}")))?;
    let racks: usize = edit
        .sites
        .iter()
        .flat_map(|s| &s.rooms)
        .map(|r| r.racks.len())
        .sum();
    let record = Record::by(&who, "layout.update", Outcome::Ok).detail(&format!(
        "{} sites, {racks} racks, {} hosts placed",
        edit.sites.len(),
        edit.placed().len()
    ));
    match hub.store.put_layout(base, &doc, &record).await? {
        PutLayout::Stored(_) => Ok(Json(view(&hub, &who).await?)),
        PutLayout::Conflict(now) => Err(ApiError::Conflict(format!(
            "the layout was changed since version {} (it is at {now}): reload and edit again",
            base
        ))),
    }
}
