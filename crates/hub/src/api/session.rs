//! Signing in and out with a username and password.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::ApiError;
use super::auth::{Auth, SESSION_COOKIE, session_cookie};
use crate::HubState;
use crate::server::Peer;
use crate::store::{PrincipalKind, Role};

/// How long a session lasts.
const SESSION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    /// The user's name, or `token` for an API token.
    pub username: String,
    pub role: Role,
}

/// Signs in; sets an HttpOnly, SameSite=Strict session cookie.
#[utoipa::path(
    post,
    path = "/api/v1/session",
    tag = "session",
    security(()),
    request_body = Credentials,
    responses(
        (status = 200, description = "Signed in", body = Me),
        (status = 401, description = "Wrong username or password"),
    )
)]
pub async fn sign_in(
    State(hub): State<Arc<HubState>>,
    peer: Option<axum::Extension<Peer>>,
    body: Result<Json<Credentials>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(creds) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let principal = hub
        .store
        .check_password(&creds.username, &creds.password)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("invalid username or password".into()))?;
    let PrincipalKind::User { id, username } = principal.kind else {
        unreachable!("passwords belong to users");
    };
    let token = hub.store.create_session(id, SESSION_TTL).await?;
    let secure = if peer.is_some_and(|p| p.tls) {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_TTL.as_secs()
    );
    let mut response = Json(Me {
        username,
        role: principal.role,
    })
    .into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("cookie is ASCII"),
    );
    Ok(response)
}

/// Who am I?
#[utoipa::path(
    get,
    path = "/api/v1/session",
    tag = "session",
    responses((status = 200, body = Me), (status = 401, description = "Not signed in"))
)]
pub async fn whoami(Auth(principal): Auth) -> Json<Me> {
    let username = match principal.kind {
        PrincipalKind::User { username, .. } => username,
        PrincipalKind::Token { .. } => "token".into(),
    };
    Json(Me {
        username,
        role: principal.role,
    })
}

/// Signs out: ends the session and clears the cookie.
#[utoipa::path(
    delete,
    path = "/api/v1/session",
    tag = "session",
    responses((status = 204, description = "Signed out"), (status = 401, description = "Not signed in"))
)]
pub async fn sign_out(
    State(hub): State<Arc<HubState>>,
    _auth: Auth,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = session_cookie(&headers) {
        hub.store.delete_session(token).await?;
    }
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok((
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            HeaderValue::from_str(&clear).expect("ASCII"),
        )],
    )
        .into_response())
}
