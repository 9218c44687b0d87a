//! Signing in and out with a username and password.

use std::sync::Arc;
use std::time::Duration;

use super::body::JsonBody;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::ApiError;
use super::auth::{Auth, SESSION_COOKIE, session_cookie};
use super::client::Client;
use crate::HubState;
use crate::audit::{ActorKind, Outcome, Record};
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
        (status = 400, description = "Malformed credentials"),
        (status = 401, description = "Wrong username or password"),
        (status = 403, description = "The `Host` is not one of the hub's names (see `--allowed-host`)"),
        (status = 413, description = "Body too large"),
        (status = 415, description = "Not JSON"),
        (status = 429, description = "Locked out after failed sign-ins; see Retry-After"),
    )
)]
pub async fn sign_in(
    State(hub): State<Arc<HubState>>,
    peer: Option<axum::Extension<Peer>>,
    client: Option<axum::Extension<Client>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Result<JsonBody<Credentials>, ApiError>,
) -> Result<Response, ApiError> {
    // A session is only ever made for one of the hub's own names, never
    // for a page that reached it through DNS rebinding.
    if !hub.network.allowed_hosts.allows_request(&headers, &uri) {
        return Err(super::auth::unknown_host());
    }
    let JsonBody(creds) = body?;
    let address = client.map(|c| c.addr);
    let user_agent = user_agent(&headers);
    let attempt = |outcome, detail: &str| {
        let kind = match outcome {
            Outcome::Ok => ActorKind::User,
            _ => ActorKind::Anonymous,
        };
        Record::new(kind, &creds.username, "session.sign_in", outcome)
            .target(&creds.username)
            .client(
                &address.map(|a| a.to_string()).unwrap_or_default(),
                &user_agent,
            )
            .detail(detail)
    };
    let now = std::time::Instant::now();
    if let Err(wait) = hub.lockout.check(&creds.username, address, now) {
        hub.store
            .audit(attempt(Outcome::Denied, "locked out after failed sign-ins"))
            .await?;
        return Err(ApiError::TooManyRequests(
            "too many failed sign-ins; try again later".into(),
            wait.as_secs().max(1),
        ));
    }
    let Some(principal) = hub
        .store
        .check_password(&creds.username, &creds.password)
        .await?
    else {
        let failures = hub.lockout.failed(&creds.username, address, now);
        hub.store
            .audit(attempt(Outcome::Denied, "wrong username or password"))
            .await?;
        tokio::time::sleep(crate::lockout::failure_delay(failures)).await;
        return Err(ApiError::Unauthorized(
            "invalid username or password".into(),
        ));
    };
    hub.lockout.succeeded(&creds.username, address);
    let PrincipalKind::User { id, username } = principal.kind else {
        unreachable!("passwords belong to users");
    };
    let token = hub.store.create_session(id, SESSION_TTL).await?;
    hub.store.audit(attempt(Outcome::Ok, "")).await?;
    // Over TLS to us, or to a trusted proxy that says so.
    let forwarded_https = client.is_some_and(|c| c.proxied)
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let secure = if peer.is_some_and(|p| p.tls) || forwarded_https {
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
    Auth(principal): Auth,
    client: Option<axum::Extension<Client>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = session_cookie(&headers) {
        hub.store.delete_session(token).await?;
    }
    let address = client.map(|c| c.addr.to_string()).unwrap_or_default();
    let record = Record::by(&principal, "session.sign_out", Outcome::Ok);
    let target = record.actor.clone();
    hub.store
        .audit(
            record
                .target(&target)
                .client(&address, &user_agent(&headers)),
        )
        .await?;
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

/// The client's `User-Agent`, for the audit trail: bytes that are not
/// UTF-8 are replaced, and the record escapes control characters.
fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default()
}
