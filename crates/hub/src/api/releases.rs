//! `/api/v1/releases`: publish a signed release (admin), list them, fetch one.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use twinbay_proto::release::{Manifest, ReleaseError};

use super::ApiError;
use super::auth::Auth;
use crate::HubState;
use crate::audit::{Outcome, Record};
use crate::releases::{Publish, PublishError};

/// The header that carries the `.minisig` file, base64-encoded.
pub const SIGNATURE_HEADER: &str = "x-twinbay-signature";

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PublishQuery {
    /// The release's version (`1.4.0`, `1.5.0-rc.1`).
    pub version: String,
    /// The architecture it is built for (default: the hub's).
    #[serde(default)]
    pub arch: Option<String>,
    /// Release notes shown in the UI.
    #[serde(default)]
    pub notes: Option<String>,
    /// The oldest hub version it works with.
    #[serde(default)]
    pub min_hub_version: Option<String>,
}

/// Publishes a release: the body is the binary, the `X-Twinbay-Signature`
/// header its minisign signature (the `.minisig` file, base64-encoded).
/// Refused unless the signature verifies against a trusted key.
#[utoipa::path(
    post,
    path = "/api/v1/releases",
    tag = "releases",
    params(
        PublishQuery,
        ("x-twinbay-signature" = String, Header, description = "The .minisig file, base64-encoded"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The binary"),
    responses(
        (status = 201, body = Manifest, description = "Published"),
        (status = 200, body = Manifest, description = "The same binary was published already"),
        (status = 400, description = "A bad version, architecture, signature encoding or upload"),
        (status = 403, description = "Needs the admin role"),
        (status = 409, description = "Another binary is published as this version and architecture"),
        (status = 413, description = "Larger than 256 MiB"),
        (status = 422, description = "The signature does not verify against a trusted key, or no key is trusted"),
    )
)]
pub async fn publish(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Query(q): Query<PublishQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Manifest>), ApiError> {
    let record = Record::by(&who, "release.publish", Outcome::Ok);
    let p = Publish {
        arch: q.arch.unwrap_or_else(|| std::env::consts::ARCH.to_string()),
        version: q.version,
        notes: q.notes.map(|n| n.chars().take(4000).collect()),
        min_hub_version: q.min_hub_version,
        by: record.actor.clone(),
    };
    let target = format!("release:{} {}", p.version, p.arch);
    let Some(signature) = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
        })
        .and_then(|v| String::from_utf8(v).ok())
    else {
        crate::releases::drain(body.into_data_stream()).await;
        return Err(ApiError::BadRequest(format!(
            "the {SIGNATURE_HEADER} header must hold the .minisig file, base64-encoded"
        )));
    };
    match hub
        .releases
        .publish(&p, &signature, body.into_data_stream())
        .await
    {
        Ok((manifest, new)) => {
            hub.store
                .audit(record.target(&target).detail(&format!(
                    "sha256 {} ({} bytes), signed by {}{}",
                    manifest.sha256,
                    manifest.size,
                    manifest.key,
                    if new { "" } else { "; published already" }
                )))
                .await?;
            let status = if new {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, Json(manifest)))
        }
        Err(e) => {
            let refused = matches!(
                &e,
                PublishError::Release(ReleaseError::Untrusted(_) | ReleaseError::NoKeys)
            );
            let outcome = if refused {
                Outcome::Denied
            } else {
                Outcome::Failed
            };
            hub.store
                .audit(
                    Record::by(&who, "release.publish", outcome)
                        .target(&target)
                        .detail(&e.to_string()),
                )
                .await?;
            Err(match e {
                PublishError::Release(ReleaseError::TooLarge) => {
                    ApiError::PayloadTooLarge(e.to_string())
                }
                PublishError::Release(ReleaseError::Invalid(m)) => ApiError::BadRequest(m),
                PublishError::Release(_) => {
                    ApiError::Other(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
                }
                PublishError::Exists(_) => ApiError::Conflict(e.to_string()),
                PublishError::Body(_) => ApiError::BadRequest(e.to_string()),
                PublishError::Io(io) => {
                    tracing::error!(error = %io, "storing a release failed");
                    ApiError::Other(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "storing the release failed".into(),
                    )
                }
            })
        }
    }
}

/// Every published release, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/releases",
    tag = "releases",
    responses((status = 200, body = Vec<Manifest>, description = "The releases")),
)]
pub async fn list(
    State(hub): State<Arc<HubState>>,
    Auth(_who): Auth,
) -> Result<Json<Vec<Manifest>>, ApiError> {
    let list = hub.releases.list().await.map_err(|e| {
        tracing::error!(error = %e, "listing releases failed");
        ApiError::Other(
            StatusCode::INTERNAL_SERVER_ERROR,
            "listing releases failed".into(),
        )
    })?;
    Ok(Json(list))
}

/// A release's binary (its signature in `X-Twinbay-Signature`, base64).
#[utoipa::path(
    get,
    path = "/api/v1/releases/{version}/{arch}",
    tag = "releases",
    params(
        ("version" = String, Path, description = "The release's version"),
        ("arch" = String, Path, description = "Its architecture"),
    ),
    responses(
        (status = 200, content_type = "application/octet-stream", description = "The binary"),
        (status = 403, description = "Needs the operator role"),
        (status = 404, description = "No such release"),
    )
)]
pub async fn download(
    State(hub): State<Arc<HubState>>,
    Auth(_who): Auth,
    Path((version, arch)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound(format!("no release {version} for {arch}"));
    let (path, manifest) = hub
        .releases
        .binary(&version, &arch)
        .await
        .ok_or_else(not_found)?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| not_found())?;
    let signature = tokio::fs::read(path.with_file_name("twinbay.minisig"))
        .await
        .map_err(|_| not_found())?;
    let chunks = crate::fsutil::read_stream(file, manifest.size, 64 * 1024);
    let mut response = Body::from_stream(chunks).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        "application/octet-stream".parse().expect("a header value"),
    );
    h.insert(header::CONTENT_LENGTH, manifest.size.into());
    if let Ok(v) = base64::engine::general_purpose::STANDARD
        .encode(signature)
        .parse()
    {
        h.insert(SIGNATURE_HEADER, v);
    }
    if let Ok(v) = format!("\"{}\"", manifest.sha256).parse() {
        h.insert(header::ETAG, v);
    }
    Ok(response)
}
