//! Searching the audit trail (admins only).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};

use super::ApiError;
use super::auth::Auth;
use crate::HubState;
use crate::audit::Entry;
use crate::store::{AuditQuery, Role};

/// The audit trail, newest first: sign-ins (failed ones too), sign-outs,
/// enrollments, token creation. Every entry carries `prev_hash` and `hash`
/// (the chain `twinbay ctl audit verify` checks).
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, body = Vec<Entry>),
        (status = 401, description = "Not authenticated"),
        (status = 403, description = "Not an admin"),
    )
)]
pub async fn search(
    State(hub): State<Arc<HubState>>,
    Auth(principal): Auth,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Vec<Entry>>, ApiError> {
    if principal.role < Role::Admin {
        return Err(ApiError::Forbidden("the audit trail is for admins".into()));
    }
    Ok(Json(hub.store.audit_search(&query).await?))
}
