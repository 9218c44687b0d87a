//! API tokens: listed (never their secret), created (shown once), revoked. Admins only.

use std::sync::Arc;
use std::time::Duration;

use super::body::JsonBody;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::ApiError;
use super::auth::Auth;
use super::users::{check_grant, covers};
use crate::HubState;
use crate::audit::{Outcome, Record};
use crate::store::{ApiTokenInfo, Role};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewToken {
    /// A name to recognise the token by.
    #[serde(default)]
    #[schema(max_length = 100)]
    pub name: String,
    pub role: Role,
    /// Seconds until it expires (60 to 315,360,000, ten years); never when absent.
    #[serde(default)]
    #[schema(minimum = 60, maximum = 315_360_000)]
    pub ttl_secs: Option<u64>,
    /// Host groups (`key=value` label selectors) it is limited to; every
    /// host when absent.
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    /// Reads only: the API refuses its writes (any method but GET/HEAD,
    /// besides the previews that change nothing) and MCP lists no act tools
    /// to it, whatever its role. Default false.
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    pub id: i64,
    /// The token itself: shown only in this answer.
    pub token: String,
}

/// Shortest and longest lifetime a token may be given.
pub const TTL_RANGE: std::ops::RangeInclusive<u64> = 60..=10 * 365 * 24 * 3600;

/// Every API token, newest first, without its secret (for a caller limited
/// to host groups: those inside its scope).
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tokens",
    responses((status = 200, body = Vec<ApiTokenInfo>), (status = 401), (status = 403))
)]
pub async fn list(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
) -> Result<Json<Vec<ApiTokenInfo>>, ApiError> {
    let mut tokens = hub.store.api_tokens().await?;
    tokens.retain(|t| covers(&who, t.groups.as_deref()));
    Ok(Json(tokens))
}

/// Creates a token; its secret is in this answer only.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "tokens",
    request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 400), (status = 401), (status = 403))
)]
pub async fn create(
    State(hub): State<Arc<HubState>>,
    Auth(principal): Auth,
    body: Result<JsonBody<NewToken>, ApiError>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let JsonBody(new) = body?;
    if new.name.chars().count() > 100 {
        return Err(ApiError::BadRequest("name: at most 100 characters".into()));
    }
    let ttl = match new.ttl_secs {
        Some(secs) if !TTL_RANGE.contains(&secs) => {
            return Err(ApiError::BadRequest(format!(
                "ttl_secs: {secs} is not between {} (a minute) and {} (ten years)",
                TTL_RANGE.start(),
                TTL_RANGE.end()
            )));
        }
        secs => secs.map(Duration::from_secs),
    };
    let groups = super::users::check_groups(new.groups)?;
    check_grant(&principal, new.role, groups.as_deref())?;
    let (id, token) = hub
        .store
        .mint_scoped_api_token(new.role, &new.name, ttl, groups.as_deref(), new.read_only)
        .await?;
    let read_only = if new.read_only { ", read-only" } else { "" };
    hub.store
        .audit(
            Record::by(&principal, "api_token.create", Outcome::Ok)
                .target(&format!("token:{id}"))
                .detail(&format!("role {}{read_only}", new.role.as_str())),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { id, token })))
}

/// Revokes a token at once.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "tokens",
    params(("id" = i64, Path, description = "Token id")),
    responses((status = 204), (status = 401), (status = 403), (status = 404))
)]
pub async fn revoke(
    State(hub): State<Arc<HubState>>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let in_scope = hub
        .store
        .api_tokens()
        .await?
        .iter()
        .any(|t| t.id == id && covers(&principal, t.groups.as_deref()));
    if !in_scope || !hub.store.revoke_api_token(id).await? {
        return Err(ApiError::NotFound(format!("no active token {id}")));
    }
    hub.store
        .audit(
            Record::by(&principal, "api_token.revoke", Outcome::Ok).target(&format!("token:{id}")),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
