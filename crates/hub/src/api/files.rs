//! Watched configuration files: what each host watches, each file's
//! versions, their diffs, and the fleet's recent changes.
//!
//! Metadata (paths, hashes, risk) is for viewers; content (diffs) needs
//! operator, since files can hold secrets even after redaction.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use twinbay_proto::model::WatchedFile;

use super::ApiError;
use super::auth::Auth;
use super::nodes::require_node;
use crate::HubState;
use crate::store::FileVersion;

/// A watched file as the host reports it now, with its last change.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FileEntry {
    #[serde(flatten)]
    pub file: WatchedFile,
    /// When the hub last saw it change (unix ms); absent before its first version.
    pub last_change_ms: Option<i64>,
    /// The risk of its last change (`low`, `medium`, `high`, `critical`).
    pub risk: Option<String>,
    pub summary: Option<String>,
    /// Services still running what the file said before its last change.
    #[schema(value_type = Vec<Object>)]
    pub drift: Vec<serde_json::Value>,
}

/// What a node watches: every file, present or missing, with its hash
/// (`null` when missing or unreadable) and last change.
#[utoipa::path(get, path = "/api/v1/nodes/{id}/files", tag = "files",
    params(("id" = String, Path, description = "Node id")),
    responses((status = 200, body = Vec<FileEntry>), (status = 401, description = "Not authenticated"), (status = 404, description = "No such node")))]
pub async fn list(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<FileEntry>>, ApiError> {
    require_node(&hub, &id, &who)?;
    let files = hub
        .twin
        .read(&id, |n| n.state.files.values().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    let latest = hub.store.latest_file_versions(&id).await?;
    Ok(Json(
        files
            .into_iter()
            .map(|file| {
                let last = latest
                    .iter()
                    .find(|v| v.path == file.path && v.sha256 == file.sha256);
                FileEntry {
                    last_change_ms: last.map(|v| v.ts_ms),
                    risk: last.and_then(|v| v.risk.clone()),
                    summary: last.map(|v| v.summary.clone()),
                    drift: last
                        .and_then(|v| v.assessment.as_ref()?.get("drift")?.as_array().cloned())
                        .unwrap_or_default(),
                    file,
                }
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// The file's absolute path.
    pub path: String,
    /// At most this many versions (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// One file's versions, newest first: hash, time, risk and why.
#[utoipa::path(get, path = "/api/v1/nodes/{id}/files/history", tag = "files",
    params(("id" = String, Path, description = "Node id"), HistoryQuery),
    responses((status = 200, body = Vec<FileVersion>), (status = 400, description = "Bad query"), (status = 401, description = "Not authenticated"), (status = 404, description = "No such node")))]
pub async fn history(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Vec<FileVersion>>, ApiError> {
    require_node(&hub, &id, &who)?;
    let limit = super::limit(q.limit, 100, 1000)?;
    Ok(Json(
        hub.store
            .file_versions(&id, &q.path, i64::from(limit))
            .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    /// Only changes at or after this time (unix ms; default: the last 7 days).
    pub since: Option<i64>,
    /// Only this risk or higher (default: every change).
    pub risk: Option<RiskFloor>,
    /// At most this many (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

const RISKS: [&str; 4] = ["low", "medium", "high", "critical"];

/// A risk to filter by, and everything above it.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RiskFloor {
    Low,
    Medium,
    High,
    Critical,
}

/// The fleet's recent configuration changes, newest first (first sightings
/// are not changes).
#[utoipa::path(get, path = "/api/v1/files/changes", tag = "files",
    params(ChangesQuery),
    responses((status = 200, body = Vec<FileVersion>), (status = 400, description = "Bad query"), (status = 401, description = "Not authenticated")))]
pub async fn changes(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Query(q): Query<ChangesQuery>,
) -> Result<Json<Vec<FileVersion>>, ApiError> {
    let floor = match q.risk {
        None | Some(RiskFloor::Low) => 0,
        Some(RiskFloor::Medium) => 1,
        Some(RiskFloor::High) => 2,
        Some(RiskFloor::Critical) => 3,
    };
    let limit = i64::from(super::limit(q.limit, 100, 1000)?);
    let since = q
        .since
        .unwrap_or_else(|| crate::store::now_ms().saturating_sub(7 * 86_400_000));
    let mut out = hub
        .store
        .file_changes(since, &RISKS[floor..], limit)
        .await?;
    if who.groups.is_some() {
        out.retain(|v| {
            hub.twin
                .check(&v.node_id, |n| who.sees(&n.state.host.labels))
        });
    }
    Ok(Json(out))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// The file's absolute path.
    pub path: String,
    /// The older version's sha256, or a prefix of at least 7 digits
    /// (default: the version before `to`).
    pub from: Option<String>,
    /// The newer version's sha256, or a prefix of at least 7 digits (default: the newest).
    pub to: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FileDiff {
    pub path: String,
    /// The versions compared (`null`: the file did not exist).
    pub from: Option<String>,
    pub to: Option<String>,
    /// The unified diff; empty when the two are the same.
    pub diff: String,
}

/// What changed between two versions of a file, as a unified diff (secret
/// values appear as `«redacted:…»` markers). Needs operator: content can
/// hold what redaction missed.
#[utoipa::path(get, path = "/api/v1/nodes/{id}/files/diff", tag = "files",
    params(("id" = String, Path, description = "Node id"), DiffQuery),
    responses((status = 200, body = FileDiff), (status = 400, description = "Bad query"), (status = 401, description = "Not authenticated"),
        (status = 403, description = "Needs operator"), (status = 404, description = "No such node, file, version or content"),
        (status = 409, description = "The content of a version does not travel (a secret, too large or binary: hashed only)")))]
pub async fn diff(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Result<Json<FileDiff>, ApiError> {
    require_node(&hub, &id, &who)?;
    let versions = hub.store.file_versions(&id, &q.path, 1000).await?;
    if versions.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no watched file {:?} on this node",
            q.path
        )));
    }
    let to = match &q.to {
        Some(sha) => find(&versions, sha)?,
        None => &versions[0],
    };
    let from_sha = match &q.from {
        Some(sha) => find(&versions, sha)?.sha256.clone(),
        None => to.prev_sha256.clone(),
    };
    let from = from_sha
        .as_deref()
        .and_then(|sha| versions.iter().find(|v| v.sha256.as_deref() == Some(sha)));
    let text = async |v: Option<&FileVersion>| -> Result<String, ApiError> {
        let Some(v) = v.filter(|v| v.sha256.is_some()) else {
            return Ok(String::new());
        };
        let sha = v.sha256.as_deref().unwrap_or_default();
        if v.content != "shipped" {
            return Err(ApiError::Conflict(format!(
                "version {} is hashed only ({}): its content does not leave the host",
                &sha[..12.min(sha.len())],
                v.content.replace('_', " ")
            )));
        }
        hub.store
            .file_content(&id, sha, v.keyed)
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "the content of version {} is not on the hub (yet)",
                    &sha[..12.min(sha.len())]
                ))
            })
    };
    let old = text(from).await?;
    let new = text(Some(to)).await?;
    let short = |sha: &Option<String>| sha.as_deref().map(|s| s[..12.min(s.len())].to_string());
    let (old_label, new_label) = (short(&from_sha), short(&to.sha256));
    let diff = crate::files::diff::unified(
        &q.path,
        old_label.as_ref().map(|_| old.as_str()),
        new_label.as_ref().map(|_| new.as_str()),
        old_label.as_deref().unwrap_or_default(),
        new_label.as_deref().unwrap_or_default(),
    );
    Ok(Json(FileDiff {
        path: q.path,
        from: from_sha,
        to: to.sha256.clone(),
        diff,
    }))
}

/// The version with this sha256 or unique prefix (7+ hex digits).
fn find<'a>(versions: &'a [FileVersion], sha: &str) -> Result<&'a FileVersion, ApiError> {
    if sha.len() < 7 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::BadRequest(format!(
            "{sha:?}: give a sha256, or at least its first 7 hex digits"
        )));
    }
    let mut matching = versions
        .iter()
        .filter(|v| v.sha256.as_deref().is_some_and(|s| s.starts_with(sha)));
    let first = matching
        .next()
        .ok_or_else(|| ApiError::NotFound(format!("no version {sha} of this file")))?;
    if matching.any(|v| v.sha256 != first.sha256) {
        return Err(ApiError::BadRequest(format!(
            "{sha} names more than one version; give more digits"
        )));
    }
    Ok(first)
}
