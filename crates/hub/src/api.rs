//! The HTTP surface: REST API, UI stream, agent endpoint, UI files, health and metrics.

pub mod access;
mod audit;
mod auth;
mod commands;
mod error;
mod events;
mod history;
mod nodes;
mod session;
mod status;
mod stream;
mod tokens;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::SESSION_COOKIE;
pub use error::ApiError;
pub use stream::SNAPSHOTS_AT_ONCE;

use crate::HubState;
use crate::server::Peer;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "twinbay hub API",
        description = "The live twin of every machine. Authenticate with `Authorization: Bearer <API token>` \
                       (`twinbay ctl api-token create`) or the session cookie from `POST /api/v1/session`. \
                       Errors are `{\"error\": {\"code\", \"message\"}}`."
    ),
    modifiers(&SecuritySchemes),
    security(("bearer" = []), ("session" = []))
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(SESSION_COOKIE))),
        );
    }
}

/// The OpenAPI description and the routes it describes.
fn api_routes() -> (Router<Arc<HubState>>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(
            session::sign_in,
            session::whoami,
            session::sign_out
        ))
        .routes(routes!(nodes::list))
        .routes(routes!(nodes::get_one))
        .routes(routes!(history::range))
        .routes(routes!(history::series))
        .routes(routes!(events::node_events))
        .routes(routes!(events::fleet_events))
        .routes(routes!(audit::search))
        .routes(routes!(commands::run, commands::history))
        .routes(routes!(commands::get_one, commands::cancel))
        .routes(routes!(commands::output))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::update, users::remove))
        .routes(routes!(users::change_password))
        .routes(routes!(users::sign_out_everywhere))
        .routes(routes!(status::status))
        .routes(routes!(stream::stream))
        .routes(routes!(crate::link::agent_socket))
        .split_for_parts()
}

/// The whole application.
pub fn router(hub: Arc<HubState>) -> Router {
    let (api, openapi) = api_routes();
    let openapi = Arc::new(
        openapi
            .to_pretty_json()
            .expect("the OpenAPI description serializes"),
    );
    let api = api
        .route(
            "/api/v1/openapi.json",
            get(move |_: auth::Auth| async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    openapi.as_str().to_owned(),
                )
            }),
        )
        .route_layer(middleware::from_fn_with_state(
            hub.clone(),
            access::authorize,
        ));
    Router::new()
        .merge(api)
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .merge(crate::ui::routes())
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(middleware::from_fn(plain_http_guard))
        .layer(middleware::map_response(security_headers))
        .with_state(hub)
}

/// Prometheus exposition. Open to loopback (a local Prometheus or node
/// exporter textfile setup); from elsewhere it needs an API token.
async fn metrics(State(hub): State<Arc<HubState>>, request: Request) -> Result<Response, ApiError> {
    let peer = request.extensions().get::<Peer>().copied();
    if !peer.is_some_and(|p| p.addr.ip().is_loopback()) {
        let (mut parts, _) = request.into_parts();
        let who = auth::authenticate(&hub, &mut parts).await?;
        if who.groups.is_some() {
            return Err(ApiError::Forbidden(
                "/metrics shows every host; this caller is limited to host groups".into(),
            ));
        }
    }
    let body = hub.metrics.render(
        &hub.twin,
        &hub.history,
        hub.store.disk_bytes(),
        &hub.connections.counts(),
    );
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

/// Plain HTTP is for loopback (local tools, a TLS-terminating proxy in
/// front). A browser reaching the hub in plain text from elsewhere is sent
/// to HTTPS; only the health check answers there.
async fn plain_http_guard(request: Request, next: Next) -> Response {
    let Some(peer) = request.extensions().get::<Peer>().copied() else {
        return next.run(request).await;
    };
    if peer.tls || peer.addr.ip().is_loopback() || request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if host.is_empty() {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    Redirect::permanent(&format!("https://{host}{path}")).into_response()
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name: &'static str, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    );
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "no-referrer");
    set(headers, "x-frame-options", "DENY");
    response
}
