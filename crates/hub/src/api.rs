//! The HTTP surface: REST API, UI stream, agent endpoint, UI files, health and metrics.

pub mod access;
pub(crate) mod alerts;
mod audit;
pub(crate) mod auth;
pub(crate) mod backups;
pub(crate) mod body;
pub mod client;
pub(crate) mod collections;
pub(crate) mod commands;
mod error;
mod events;
pub(crate) mod files;
mod gateway;
pub(crate) mod history;
mod hub;
mod layout;
mod nodes;
mod openapi;
pub mod past;
mod releases;
mod rollouts;
mod routes;
pub(crate) mod schedules;
mod session;
mod ssh;
mod status;
mod stream;
mod tokens;
pub(crate) mod topology;
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
pub use stream::projections::Projections as StreamProjections;
pub use stream::shared::Collections as StreamCollections;
pub use stream::summaries::{Feed as StreamSummaries, run as run_stream_summaries};

use crate::server::Peer;
use crate::{HubState, metrics as exposition};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "twinbay hub API",
        description = "The live twin of every machine. Authenticate with `Authorization: Bearer <API token>` \
                       (`twinbay ctl api-token create`) or the session cookie from `POST /api/v1/session`. \
                       Errors are `{\"error\": {\"code\", \"message\"}}`."
    ),
    modifiers(&SecuritySchemes),
    components(schemas(error::ErrorBody, error::ErrorDetail)),
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
        .routes(routes!(past::node_changes))
        .routes(routes!(past::fleet_changes))
        .routes(routes!(history::range))
        .routes(routes!(collections::runs))
        .routes(routes!(history::series))
        .routes(routes!(events::node_events))
        .routes(routes!(events::fleet_events))
        .routes(routes!(files::list))
        .routes(routes!(files::history))
        .routes(routes!(files::diff))
        .routes(routes!(files::changes))
        .routes(routes!(audit::search))
        .routes(routes!(audit::signed_head))
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
        .routes(routes!(hub::logs))
        .routes(routes!(hub::update))
        .routes(routes!(hub::restart))
        .routes(routes!(gateway::status))
        .routes(routes!(topology::get))
        .routes(routes!(topology::impact))
        .routes(routes!(layout::get, layout::put))
        .routes(routes!(alerts::list))
        .routes(routes!(alerts::add_channel, alerts::channels))
        .routes(routes!(alerts::remove_channel))
        .routes(routes!(alerts::test_channel))
        .routes(routes!(alerts::add_rule, alerts::rules))
        .routes(routes!(alerts::remove_rule, alerts::update_rule))
        .routes(routes!(alerts::ack))
        .routes(routes!(alerts::add_silence, alerts::silences))
        .routes(routes!(alerts::expire_silence))
        .routes(routes!(routes::list))
        .routes(routes!(schedules::create, schedules::list))
        .routes(routes!(
            schedules::get_one,
            schedules::update,
            schedules::remove
        ))
        .routes(routes!(schedules::run_now))
        .routes(routes!(schedules::runs))
        .routes(routes!(schedules::preview))
        .routes(routes!(stream::stream))
        .routes(routes!(crate::link::agent_socket))
        .routes(routes!(crate::backups::transfer::upload_socket))
        .routes(routes!(releases::agent_download))
        .routes(routes!(crate::backups::restore::download_socket))
        .routes(routes!(backups::list))
        .routes(routes!(backups::download))
        .routes(routes!(backups::verify))
        .routes(routes!(backups::prune))
        .routes(routes!(releases::publish, releases::list))
        .routes(routes!(releases::download))
        .routes(routes!(rollouts::create, rollouts::list))
        .routes(routes!(rollouts::get_one))
        .routes(routes!(rollouts::pause_one))
        .routes(routes!(rollouts::resume))
        .routes(routes!(rollouts::abort))
        .routes(routes!(ssh::get_identity))
        .routes(routes!(ssh::add, ssh::list))
        .routes(routes!(ssh::get_one, ssh::remove))
        .routes(routes!(ssh::check))
        .split_for_parts()
}

/// A page size from a query: `default` when absent, refused outside 1..=`max`
/// (as the OpenAPI description says), never silently clamped.
pub(crate) fn limit(asked: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    match asked {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::BadRequest(format!(
            "limit: {n} is not between 1 and {max}"
        ))),
    }
}

/// The whole application.
pub fn router(hub: Arc<HubState>) -> Router {
    let (api, openapi) = api_routes();
    let openapi = Arc::new(
        serde_json::to_string_pretty(&openapi::exact(&openapi))
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
        .nest_service("/mcp", crate::mcp::service(hub.clone()))
        .merge(crate::ui::routes())
        .fallback(crate::ui::not_found)
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(plain_http_guard))
        .layer(middleware::from_fn_with_state(
            hub.clone(),
            client::identify,
        ))
        .layer(middleware::map_response(security_headers))
        .with_state(hub)
}

/// Every API error is the documented JSON error, whichever layer made it:
/// an extractor's rejection (a bad query or path, a missing WebSocket
/// upgrade) or the router's 405 arrive as plain text and leave as JSON with
/// their status (and `Allow`, `Retry-After`, … headers) kept.
async fn json_errors(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !api || is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let message = match text.is_empty() {
        true => status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase(),
        false => text,
    };
    let mut json = ApiError::from_status(status, message).into_response();
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(value) = parts.headers.get(&name) {
            json.headers_mut().insert(name, value.clone());
        }
    }
    json
}

/// Which nodes a scrape of `/metrics` carries (see [`exposition::NodeSelection`]).
#[derive(Debug, Default, serde::Deserialize)]
struct MetricsQuery {
    nodes: Option<String>,
    shard: Option<String>,
    node: Option<String>,
}

/// Prometheus exposition. Open without credentials to a local scraper: a
/// loopback peer that is not a proxy forwarding someone else and asked for
/// one of the hub's names. Anyone else needs an API token (or a session) that
/// sees every host; a caller that presents credentials is always checked.
async fn metrics(State(hub): State<Arc<HubState>>, request: Request) -> Result<Response, ApiError> {
    let peer = request.extensions().get::<Peer>().copied();
    let client = request.extensions().get::<client::Client>().copied();
    let local = peer.is_some_and(|p| p.addr.ip().is_loopback())
        && client.is_some_and(|c| !c.proxied)
        && hub
            .network
            .allowed_hosts
            .allows_request(request.headers(), request.uri());
    let credentials = request.headers().contains_key(header::AUTHORIZATION)
        || auth::session_cookie(request.headers()).is_some();
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .cloned()
        .unwrap_or(HeaderValue::from_static(""));
    // Checked after the caller: a stranger learns nothing from a 400.
    let nodes = axum::extract::Query::<MetricsQuery>::try_from_uri(request.uri())
        .map_err(|e| e.body_text())
        .and_then(|q| {
            exposition::NodeSelection::parse(
                q.nodes.as_deref(),
                q.shard.as_deref(),
                q.node.as_deref(),
            )
        });
    if !local || credentials {
        let (mut parts, _) = request.into_parts();
        let who = auth::authenticate(&hub, &mut parts).await?;
        if who.groups.is_some() {
            return Err(ApiError::Forbidden(
                "/metrics shows every host; this caller is limited to host groups".into(),
            ));
        }
    }
    let nodes = nodes.map_err(|e| ApiError::BadRequest(format!("/metrics: {e}")))?;
    // Rendering walks the fleet (every node's series by default): on a
    // blocking thread, not in front of the async workers' other tasks.
    let body = {
        let hub = hub.clone();
        tokio::task::spawn_blocking(move || {
            hub.metrics.render(
                &hub.twin,
                &hub.history,
                hub.store.disk_bytes(),
                &hub.connections.counts(),
                &nodes,
            )
        })
        .await
        .expect("rendering /metrics does not panic")
    };
    // Prometheus asks for OpenMetrics; everyone else (promtool, curl) gets
    // the classic text format.
    let openmetrics = accept
        .to_str()
        .is_ok_and(|a| a.contains("application/openmetrics-text"));
    Ok(if openmetrics {
        ([(header::CONTENT_TYPE, exposition::OPENMETRICS_TEXT)], body).into_response()
    } else {
        let text = exposition::to_prometheus_text(&body);
        ([(header::CONTENT_TYPE, exposition::PROMETHEUS_TEXT)], text).into_response()
    })
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
