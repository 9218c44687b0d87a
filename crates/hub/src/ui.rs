//! The web UI (`web/`), built by `build.rs` and embedded in the binary.
//!
//! Content-hashed files under `/assets/` are cached for a year; `index.html`
//! is revalidated on every load, so a new hub version shows at once. The
//! single-page app's own URLs (`/hosts/…`, `/containers`, …) all answer with
//! `index.html`; `/api/*`, `/healthz` and `/metrics` keep their own routes,
//! and any other path is the API's ordinary 404.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::HubState;
use crate::api::ApiError;

/// One built file of the UI.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    /// Content-hashed name: safe to cache for ever.
    pub immutable: bool,
    pub body: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// The screens of the single-page app (see `web/src/Shell.tsx`).
const SPA_ROUTES: &[&str] = &[
    "/",
    "/signin",
    "/hosts",
    "/hosts/{id}",
    "/containers",
    "/units",
    "/routes",
    "/schedules",
    "/backups",
    "/events",
    "/changes",
    "/network",
    "/world",
    "/audit",
    "/alerts",
    "/updates",
    "/ssh",
    "/settings",
    "/settings/{tab}",
];

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

fn serve(asset: &'static Asset) -> Response {
    let cache = match asset.immutable {
        true => "public, max-age=31536000, immutable",
        false => "no-cache",
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        asset.body,
    )
        .into_response()
}

async fn index() -> Response {
    serve(find("/index.html").expect("build.rs checks that index.html exists"))
}

async fn built_file(Path(file): Path<String>) -> Result<Response, ApiError> {
    find(&format!("/assets/{file}"))
        .map(serve)
        .ok_or_else(|| ApiError::NotFound(format!("no asset {file:?}")))
}

/// What no route answers: a browser navigating to a mistyped address gets
/// the app (which shows "no such page") with status 404; API clients, and
/// anything under `/api/` or `/assets/`, the JSON error.
pub async fn not_found(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let app_path = !path.starts_with("/api/") && !path.starts_with("/assets/");
    if (method == Method::GET || method == Method::HEAD) && wants_html && app_path {
        let mut page = index().await;
        *page.status_mut() = StatusCode::NOT_FOUND;
        return page;
    }
    ApiError::NotFound("no such route".into()).into_response()
}

pub fn routes() -> Router<Arc<HubState>> {
    let mut router = Router::new().route("/assets/{*file}", get(built_file));
    for route in SPA_ROUTES {
        router = router.route(route, get(index));
    }
    // Files from web/public (favicon), at the top level.
    for asset in ASSETS
        .iter()
        .filter(|a| !a.immutable && a.path != "/index.html")
    {
        router = router.route(asset.path, get(move || async move { serve(asset) }));
    }
    router
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_ui_is_embedded() {
        let index = find("/index.html").expect("index.html");
        let html = std::str::from_utf8(index.body).expect("utf-8");
        assert!(html.contains("<div id=\"app\">"));
        // The CSP allows no inline script: every script is a file of ours.
        assert!(!html.contains("<script>"), "no inline script");
        let script = html
            .split("src=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("a script tag");
        let js = find(script).expect("the script index.html loads is embedded");
        assert!(js.immutable && js.content_type.starts_with("text/javascript"));
        assert!(find("/favicon.svg").is_some());
        // Installable on a phone's home screen: the manifest and its icons.
        let manifest = find("/manifest.webmanifest").expect("the web app manifest");
        assert_eq!(manifest.content_type, "application/manifest+json");
        let manifest: serde_json::Value = serde_json::from_slice(manifest.body).unwrap();
        for icon in manifest["icons"].as_array().unwrap() {
            let src = icon["src"].as_str().unwrap();
            assert!(find(src).is_some(), "{src} is embedded");
        }
        assert!(html.contains("rel=\"manifest\""));
        assert!(find("/apple-touch-icon.png").is_some());
    }
}
