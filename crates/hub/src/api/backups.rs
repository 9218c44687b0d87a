//! Backups: the catalog, downloads (streamed, with ranges), verify and prune.
//! A backup is run through the commands API (`{"op":"backup", …}` on
//! `POST /api/v1/nodes/{id}/commands`), so a schedule can run one too.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;

use super::ApiError;
use super::auth::Auth;
use super::body::JsonBody;
use super::nodes::require_node;
use crate::HubState;
use crate::audit::{Outcome, Record};
use crate::backups::objects::ObjectError;
use crate::backups::{BackupError, PruneReport, VerifyReport};
use crate::store::{BackupRecord, Principal};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this node's backups.
    pub node: Option<String>,
    /// Only this job's backups.
    pub job: Option<String>,
    /// At most this many, newest first (default 500, at most 5000).
    #[param(minimum = 1, maximum = 5000)]
    pub limit: Option<u32>,
}

fn visible(hub: &HubState, who: &Principal, node_id: &str) -> bool {
    require_node(hub, node_id, who).is_ok()
}

fn backup_error(e: BackupError) -> ApiError {
    match e {
        BackupError::Store(e) => ApiError::Internal(e),
        BackupError::Object(ObjectError::NotFound(k)) => {
            ApiError::Conflict(format!("the artifact {k} is missing from storage"))
        }
        BackupError::Object(e) => {
            ApiError::Other(StatusCode::INTERNAL_SERVER_ERROR, crate::report(&e))
        }
    }
}

/// The backups the caller may see (their host groups), newest first.
#[utoipa::path(
    get,
    path = "/api/v1/backups",
    tag = "backups",
    params(ListQuery),
    responses(
        (status = 200, body = Vec<BackupRecord>),
        (status = 400, description = "A bad query"),
    )
)]
pub async fn list(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<BackupRecord>>, ApiError> {
    let limit = super::limit(q.limit, 500, 5000)?;
    let rows = hub
        .store
        .backups(q.node.as_deref(), q.job.as_deref(), limit)
        .await?;
    Ok(Json(
        rows.into_iter()
            .filter(|b| visible(&hub, &who, &b.node_id))
            .collect(),
    ))
}

async fn readable(hub: &HubState, who: &Principal, id: &str) -> Result<BackupRecord, ApiError> {
    let missing = || {
        ApiError::NotFound(format!(
            "no backup {:?}",
            id.chars().take(64).collect::<String>()
        ))
    };
    let b = hub.store.backup(id).await?.ok_or_else(missing)?;
    if !visible(hub, who, &b.node_id) {
        return Err(missing());
    }
    Ok(b)
}

/// A restore may stream only a complete backup the caller may see (an
/// operator's role is checked against the agent's policy, as for any command).
pub(super) async fn restorable(
    hub: &HubState,
    who: &Principal,
    backup_id: &str,
) -> Result<(), ApiError> {
    let b = readable(hub, who, backup_id).await?;
    if b.status != "complete" {
        return Err(ApiError::Conflict(format!(
            "backup {} is {}: a verify found other bytes",
            b.id, b.status
        )));
    }
    Ok(())
}

/// A single byte range from a `Range` header: `None` for the whole object
/// (no header, or one this does not serve, such as several ranges), or
/// `Err` when it cannot be satisfied.
fn range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        // The last `b` bytes.
        (true, false) => {
            let n: u64 = b.parse().map_err(|_| ())?;
            if n == 0 || size == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size)
        }
        (false, true) => {
            let start: u64 = a.parse().map_err(|_| ())?;
            (start, size)
        }
        (false, false) => {
            let start: u64 = a.parse().map_err(|_| ())?;
            let last: u64 = b.parse().map_err(|_| ())?;
            if last < start {
                return Err(());
            }
            (start, (last + 1).min(size))
        }
        (true, true) => return Ok(None),
    };
    if parsed.0 >= size {
        return Err(());
    }
    Ok(Some(parsed))
}

/// The artifact (zstd-compressed), streamed from storage. Answers `Range`
/// requests for one range (206); the ETag and `Digest` carry its SHA-256.
#[utoipa::path(
    get,
    path = "/api/v1/backups/{id}/download",
    tag = "backups",
    params(("id" = String, Path, description = "Backup id")),
    responses(
        (status = 200, content_type = "application/zstd", description = "The whole artifact"),
        (status = 206, content_type = "application/zstd", description = "The range asked for"),
        (status = 403, description = "Needs the operator role"),
        (status = 404, description = "No such backup"),
        (status = 409, description = "The artifact is missing from storage"),
        (status = 416, description = "The range is outside the artifact"),
    )
)]
pub async fn download(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let b = readable(&hub, &who, &id).await?;
    let objects = hub.backups.objects();
    let size = objects
        .size(&b.object_key)
        .await
        .map_err(|e| backup_error(e.into()))?;
    let etag = format!("\"{}\"", b.sha256);
    let digest = hex::decode(&b.sha256)
        .map(|d| {
            format!(
                "sha-256={}",
                base64::engine::general_purpose::STANDARD.encode(d)
            )
        })
        .unwrap_or_default();
    let (status, start, end) = match range(&headers, size) {
        Ok(None) => (StatusCode::OK, 0, size),
        Ok(Some((s, e))) => (StatusCode::PARTIAL_CONTENT, s, e),
        Err(()) => {
            let mut response = ApiError::Other(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("the range is outside the artifact ({size} bytes)"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(response);
        }
    };
    let stream = objects
        .read(&b.object_key, start, end)
        .await
        .map_err(|e| backup_error(e.into()))?;
    hub.store
        .audit(
            Record::by(&who, "backup.download", Outcome::Ok)
                .target(&format!("node:{}", b.node_id))
                .detail(&format!(
                    "{} job {} bytes {start}-{end}/{size}",
                    b.id, b.job
                )),
        )
        .await?;
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    let h = response.headers_mut();
    let value = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zstd"),
    );
    h.insert(header::CONTENT_LENGTH, value(&(end - start).to_string()));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, value(&etag));
    h.insert("digest", value(&digest));
    h.insert(
        header::CONTENT_DISPOSITION,
        value(&format!(
            "attachment; filename=\"{}\"",
            crate::backups::file_name(&b)
        )),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            header::CONTENT_RANGE,
            value(&format!("bytes {start}-{}/{size}", end - 1)),
        );
    }
    Ok(response)
}

/// Reads the artifact back and re-hashes it; a mismatch marks it `corrupt`.
#[utoipa::path(
    post,
    path = "/api/v1/backups/{id}/verify",
    tag = "backups",
    params(("id" = String, Path, description = "Backup id")),
    responses(
        (status = 200, body = VerifyReport, description = "`ok` says whether the bytes match"),
        (status = 403, description = "Needs the operator role"),
        (status = 404, description = "No such backup"),
        (status = 409, description = "The artifact is missing from storage"),
    )
)]
pub async fn verify(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<Json<VerifyReport>, ApiError> {
    let b = readable(&hub, &who, &id).await?;
    let result = hub.backups.verify(&b).await;
    let (outcome, detail) = match &result {
        Ok(r) if r.ok => (Outcome::Ok, format!("{}: sha256 matches", b.id)),
        Ok(r) => (
            Outcome::Failed,
            format!(
                "{}: sha256 {} is not {}",
                b.id, r.sha256_actual, r.sha256_expected
            ),
        ),
        Err(e) => (Outcome::Failed, format!("{}: {e}", b.id)),
    };
    hub.store
        .audit(
            Record::by(&who, "backup.verify", outcome)
                .target(&format!("node:{}", b.node_id))
                .detail(&detail),
        )
        .await?;
    result.map(Json).map_err(backup_error)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PruneRequest {
    /// Only this node's jobs (default: every node the caller sees).
    #[serde(default)]
    pub node: Option<String>,
    /// Only this job.
    #[serde(default)]
    pub job: Option<String>,
}

/// Applies each job's retention now and says what it removed.
#[utoipa::path(
    post,
    path = "/api/v1/backups/prune",
    tag = "backups",
    request_body = PruneRequest,
    responses(
        (status = 200, body = Vec<PruneReport>, description = "Per job: what stays (with the reason) and what went"),
        (status = 400, description = "A bad body"),
        (status = 403, description = "Needs the operator role"),
    )
)]
pub async fn prune(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    JsonBody(req): JsonBody<PruneRequest>,
) -> Result<Json<Vec<PruneReport>>, ApiError> {
    let jobs = hub.store.backup_jobs().await?;
    let mut reports = Vec::new();
    for (node_id, job) in jobs {
        if req.node.as_ref().is_some_and(|n| *n != node_id)
            || req.job.as_ref().is_some_and(|j| *j != job)
            || !visible(&hub, &who, &node_id)
        {
            continue;
        }
        let report = hub
            .backups
            .prune(&node_id, &job)
            .await
            .map_err(backup_error)?;
        let ids: Vec<&str> = report.removed.iter().map(|d| d.id.as_str()).collect();
        hub.store
            .audit(
                Record::by(&who, "backup.prune", Outcome::Ok)
                    .target(&format!("node:{node_id}"))
                    .detail(&format!(
                        "job {job} ({}): removed {}",
                        report.rules,
                        if ids.is_empty() {
                            "nothing".to_string()
                        } else {
                            ids.join(", ")
                        }
                    )),
            )
            .await?;
        reports.push(report);
    }
    Ok(Json(reports))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(r: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(r).unwrap());
        h
    }

    #[test]
    fn ranges() {
        assert_eq!(range(&HeaderMap::new(), 10), Ok(None));
        assert_eq!(range(&with("bytes=0-3"), 10), Ok(Some((0, 4))));
        assert_eq!(range(&with("bytes=5-"), 10), Ok(Some((5, 10))));
        assert_eq!(range(&with("bytes=-3"), 10), Ok(Some((7, 10))));
        assert_eq!(range(&with("bytes=-30"), 10), Ok(Some((0, 10))));
        assert_eq!(range(&with("bytes=8-100"), 10), Ok(Some((8, 10))));
        assert_eq!(range(&with("bytes=10-"), 10), Err(()));
        assert_eq!(range(&with("bytes=5-2"), 10), Err(()));
        assert_eq!(range(&with("bytes=0-1,4-5"), 10), Ok(None));
        assert_eq!(range(&with("items=0-1"), 10), Ok(None));
    }
}
