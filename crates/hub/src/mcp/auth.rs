//! The guard in front of `/mcp`: the Host (and a browser's Origin) must be
//! one of the hub's names, and the request must carry an API token. The
//! token is checked by the REST API's own [`authenticate`]; sessions
//! (cookies) are not accepted here, so no web page can drive an assistant's
//! tools with a signed-in browser's credentials.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::limit::Limiter;
use crate::HubState;
use crate::api::ApiError;
use crate::api::auth::{authenticate, unknown_host};
use crate::audit::{Outcome, Record};

pub async fn guard(
    hub: Arc<HubState>,
    limiter: Arc<Limiter>,
    request: Request,
    next: Next,
) -> Response {
    let hosts = &hub.network.allowed_hosts;
    if !hosts.allows_request(request.headers(), request.uri()) {
        return unknown_host().into_response();
    }
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or("?"));
    if let Some(origin) = origin {
        let host = origin.split_once("://").map(|(_, h)| h).unwrap_or("?");
        if !hosts.allows(host) {
            return ApiError::Forbidden("this Origin is not one of the hub's names".into())
                .into_response();
        }
    }
    if !request.headers().contains_key(header::AUTHORIZATION) {
        hub.metrics.api_unauthorized.inc();
        return unauthorized(ApiError::Unauthorized(
            "pass an API token: Authorization: Bearer <token>".into(),
        ));
    }
    let (mut parts, body) = request.into_parts();
    match authenticate(&hub, &mut parts).await {
        Ok(principal) => {
            // A request outside a session (a new session, or a stateless
            // call) counts against the caller's rate like a tool call, so
            // a token cannot pile up sessions.
            let actor = Record::by(&principal, "", Outcome::Ok).actor;
            if !parts.headers.contains_key("mcp-session-id")
                && let Err(wait) = limiter.take(&actor, std::time::Instant::now())
            {
                let secs = wait.as_secs().max(1);
                return ApiError::TooManyRequests("too many MCP requests".into(), secs)
                    .into_response();
            }
            parts.extensions.insert(principal);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(e) => {
            if matches!(e, ApiError::Unauthorized(_)) {
                hub.metrics.api_unauthorized.inc();
            }
            unauthorized(e)
        }
    }
}

fn unauthorized(e: ApiError) -> Response {
    let mut response = e.into_response();
    if response.status() == axum::http::StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"twinbay\""),
        );
    }
    response
}
