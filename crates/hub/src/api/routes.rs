//! The fleet's reverse-proxy routes (the twins' `routes`), each with the
//! state of what it leads to on the proxy's host.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use twinbay_proto::model::{ProxyProvider, RouteTarget};

use super::auth::Auth;
use crate::HubState;
use crate::twin::routes::{TargetState, target_state};

/// One route of one proxy, where it leads and whether that is up.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RouteEntry {
    /// The node the proxy runs on.
    pub node_id: String,
    /// That node's hostname.
    pub node_name: String,
    pub provider: ProxyProvider,
    /// `host` for a proxy on the host itself, else its container's name.
    pub instance: String,
    /// The public name (empty for a catch-all).
    pub host: String,
    /// The path prefix matched.
    pub path: String,
    /// Where requests go, as the proxy's configuration writes it.
    pub upstream: String,
    pub tls: bool,
    /// What the upstream is on the proxy's host.
    pub target: RouteTarget,
    /// The target's state now: `running`, `stopped`, `missing`, `external`
    /// or `unknown`.
    pub target_state: TargetState,
    /// The target is stopped or missing: the route leads nowhere.
    pub broken: bool,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoutesQuery {
    /// Only routes whose public name contains this (case-insensitive).
    pub host: Option<String>,
    /// `true`: only broken routes (target stopped or missing); `false`: only
    /// the others.
    pub broken: Option<bool>,
    /// Only the routes of this node.
    pub node: Option<String>,
}

/// Every route of every proxy the caller may see, by public name and path.
#[utoipa::path(get, path = "/api/v1/routes", tag = "routes",
    params(RoutesQuery),
    responses((status = 200, body = Vec<RouteEntry>), (status = 400, description = "Bad query"), (status = 401, description = "Not authenticated")))]
pub async fn list(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Query(q): Query<RoutesQuery>,
) -> Json<Vec<RouteEntry>> {
    let needle = q.host.as_deref().map(str::to_lowercase);
    let mut out = Vec::new();
    hub.twin.for_each(|n| {
        if !who.sees(&n.state.host.labels) || q.node.as_ref().is_some_and(|id| *id != n.id) {
            return;
        }
        for r in n.state.routes.values() {
            if needle
                .as_ref()
                .is_some_and(|s| !r.host.to_lowercase().contains(s.as_str()))
            {
                continue;
            }
            let state = target_state(&r.target, &n.state);
            if q.broken.is_some_and(|b| b != state.broken()) {
                continue;
            }
            out.push(RouteEntry {
                node_id: n.id.clone(),
                node_name: n.state.host.hostname.clone(),
                provider: r.provider,
                instance: r.instance.clone(),
                host: r.host.clone(),
                path: r.path.clone(),
                upstream: r.upstream.clone(),
                tls: r.tls,
                target: r.target.clone(),
                target_state: state,
                broken: state.broken(),
            });
        }
    });
    out.sort_by(|a, b| {
        (&a.host, &a.path, &a.node_name, &a.node_id, &a.instance).cmp(&(
            &b.host,
            &b.path,
            &b.node_name,
            &b.node_id,
            &b.instance,
        ))
    });
    Json(out)
}
