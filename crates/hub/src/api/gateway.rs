//! The internet gateway's status (`--gateway`): the first configured
//! gateway's fields at the top level, every gateway in `gateways`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::auth::Auth;
use crate::HubState;
use crate::gateway::GatewayStatus;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GatewayReport {
    /// The first configured gateway (all null and `upstream: unknown` when
    /// none is configured).
    #[serde(flatten)]
    pub primary: GatewayStatus,
    /// Every configured gateway, in the order of the `--gateway` flags.
    pub gateways: Vec<GatewayStatus>,
    /// How to configure one, when none is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// The public address and upstream state the internet gateway reports.
#[utoipa::path(
    get,
    path = "/api/v1/gateway",
    tag = "gateway",
    responses((status = 200, body = GatewayReport), (status = 401, description = "Not authenticated"))
)]
pub async fn status(State(hub): State<Arc<HubState>>, _auth: Auth) -> Json<GatewayReport> {
    let gateways = hub.gateways.statuses();
    let hint = gateways.is_empty().then(|| {
        "no gateway is configured: start the hub with --gateway upnp (or upnp:URL, \
         fritzbox://USER@HOST, unifi://HOST, probe:HOST:PORT)"
            .to_string()
    });
    Json(GatewayReport {
        primary: gateways.first().cloned().unwrap_or_default(),
        gateways,
        hint,
    })
}
