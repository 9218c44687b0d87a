//! Who is calling: an API token (`Authorization: Bearer`) or a session cookie.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};

use super::ApiError;
use crate::HubState;
use crate::store::Principal;

pub const SESSION_COOKIE: &str = "twinbay_session";

/// An authenticated caller. Taking it as a handler argument makes the route require auth.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl FromRequestParts<Arc<HubState>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        hub: &Arc<HubState>,
    ) -> Result<Self, Self::Rejection> {
        // `access::authorize` has authenticated the caller already.
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(Auth(principal.clone()));
        }
        authenticate(hub, parts).await.map(Auth)
    }
}

pub async fn authenticate(hub: &HubState, parts: &mut Parts) -> Result<Principal, ApiError> {
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "malformed Authorization header; use `Bearer <token>`".into(),
                )
            })?;
        return hub
            .store
            .api_token_principal(token)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("invalid or expired API token".into()));
    }
    let Some(session) = session_cookie(&parts.headers) else {
        return Err(ApiError::Unauthorized(
            "sign in or pass an API token".into(),
        ));
    };
    // Cookies ride along with any request the browser makes: only our own
    // names (no DNS rebinding), and for writes and WebSocket upgrades only
    // our own pages (no CSRF, no cross-site WebSocket hijacking).
    if !hub
        .network
        .allowed_hosts
        .allows_request(&parts.headers, &parts.uri)
    {
        return Err(unknown_host());
    }
    if (!is_safe(&parts.method) || is_upgrade(&parts.headers)) && !same_origin(parts) {
        return Err(ApiError::Forbidden("cross-site request refused".into()));
    }
    hub.store
        .session_principal(session)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("session expired; sign in again".into()))
}

/// The session cookie's value, if the request carries one.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

/// The refusal for a browser that asked for a name the hub does not have.
pub fn unknown_host() -> ApiError {
    ApiError::Forbidden(
        "this Host is not one of the hub's names; start the hub with --allowed-host NAME".into(),
    )
}

/// A WebSocket handshake (the browser sends no preflight for one, and a
/// GET is otherwise "safe").
fn is_upgrade(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Cookie-authenticated writes must come from our own pages: the browser's
/// `Origin` must name this host. (SameSite=Strict already stops most
/// cross-site requests; this closes the rest.)
fn same_origin(parts: &Parts) -> bool {
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()));
    let origin = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|h| h.to_str().ok());
    match (origin, host) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, origin_host)| origin_host.eq_ignore_ascii_case(host)),
        _ => false,
    }
}
