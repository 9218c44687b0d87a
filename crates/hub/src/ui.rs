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
use axum::http::{HeaderValue, header};
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
    "/events",
    "/audit",
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
    }
}
