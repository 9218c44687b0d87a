//! Searching the audit trail and exporting its signed head (admins only).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};

use super::ApiError;
use super::auth::Auth;
use super::error::ErrorBody;
use crate::HubState;
use crate::audit::Entry;
use crate::audit::head::SignedHead;
use crate::store::{AuditQuery, AuditScope, Principal, Role, now_ms};

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
        (status = 400, description = "A bad query (a `limit` out of range)"),
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
    super::limit(query.limit, 100, 1000)?;
    let scope = principal.groups.is_some().then(|| scope(&hub, &principal));
    Ok(Json(hub.store.audit_search(&query, scope.as_ref()).await?))
}

/// What a caller limited to host groups may read of the trail: what it did
/// itself, what was done to it, and what happened to the hosts it sees.
fn scope(hub: &HubState, who: &Principal) -> AuditScope {
    let me = crate::audit::Record::by(who, "", crate::audit::Outcome::Ok).actor;
    let mut targets = vec![me.clone()];
    hub.twin.for_each(|n| {
        if who.sees(&n.state.host.labels) {
            targets.push(format!("node:{}", n.id));
            targets.push(n.id.clone());
        }
    });
    AuditScope { actor: me, targets }
}

/// The trail's head (its newest entry), signed now with the hub's audit key.
/// Keep it somewhere the hub cannot write; later,
/// `twinbay ctl audit verify --head-file FILE` checks the signature and that
/// the chain still holds this entry (a cut or replaced tail does not).
#[utoipa::path(
    get,
    path = "/api/v1/audit/head",
    tag = "audit",
    responses(
        (status = 200, description = "The signed head", body = SignedHead),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin, or limited to host groups (the head covers every entry)", body = ErrorBody),
    )
)]
pub async fn signed_head(
    State(hub): State<Arc<HubState>>,
    Auth(principal): Auth,
) -> Result<Json<SignedHead>, ApiError> {
    if principal.role < Role::Admin {
        return Err(ApiError::Forbidden("the audit trail is for admins".into()));
    }
    if principal.groups.is_some() {
        return Err(ApiError::Forbidden(
            "the head covers the whole trail; this caller is limited to host groups".into(),
        ));
    }
    let head = hub.store.audit_head().await?;
    Ok(Json(SignedHead::sign(&hub.audit_key, &head, now_ms())))
}
