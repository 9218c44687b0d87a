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

/// The download socket for one agent update: the release its `update`
/// command names, streamed from the hub's copy.
#[utoipa::path(
    get,
    path = "/api/v1/agent/releases/{id}",
    tag = "agents",
    params(
        ("id" = String, Path, description = "The update command's id"),
        AgentDownloadQuery
    ),
    description = "WebSocket on which an agent downloads the release it updates to (authentication happens inside it, as on the link): an offer (manifest and signature), then the binary in frames.",
    responses((status = 101, description = "Switching to the download protocol"))
)]
pub async fn agent_download(
    State(hub): State<Arc<HubState>>,
    Path(id): Path<String>,
    Query(q): Query<AgentDownloadQuery>,
    admission: Option<axum::Extension<crate::server::Admission>>,
    ws: axum::extract::WebSocketUpgrade,
) -> Response {
    use twinbay_proto::backup::CHUNK_BYTES;
    let admission = admission.map(|axum::Extension(a)| a);
    ws.read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(CHUNK_BYTES * 2)
        .max_frame_size(CHUNK_BYTES * 2)
        .on_upgrade(move |socket| serve_agent(hub, id, q.arch, socket, admission))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AgentDownloadQuery {
    /// The agent's architecture, for a command that named none.
    #[serde(default)]
    pub arch: Option<String>,
}

async fn serve_agent(
    hub: Arc<HubState>,
    command_id: String,
    agent_arch: Option<String>,
    socket: axum::extract::ws::WebSocket,
    admission: Option<crate::server::Admission>,
) {
    use axum::extract::ws::Message;
    use futures_util::StreamExt;
    use twinbay_proto::backup::CHUNK_BYTES;
    use twinbay_proto::command::{Op, Verb};
    use twinbay_proto::message::{ErrorCode, HubMessage};

    use crate::audit::ActorKind;
    use crate::backups::transfer::{command_socket, refuse, send_text};

    let _tracked = hub.sessions.token();
    let Some((node_id, mut socket, record)) =
        command_socket(&hub, &command_id, socket, admission).await
    else {
        return;
    };
    let Some(Op::Lifecycle {
        verb: Verb::Update,
        version: Some(version),
        arch,
        ..
    }) = record.as_ref().map(|r| &r.op)
    else {
        return refuse(
            socket,
            ErrorCode::InvalidState,
            "no running update of this node has that id",
        )
        .await;
    };
    // The command's arch, else the one the agent says it is.
    let Some(arch) = arch.clone().or(agent_arch) else {
        return refuse(socket, ErrorCode::InvalidState, "which arch? (?arch=)").await;
    };
    let Some((path, manifest)) = hub.releases.binary(version, &arch).await else {
        return refuse(
            socket,
            ErrorCode::InvalidState,
            &format!("the hub has no release {version} for {arch}"),
        )
        .await;
    };
    let (file, signature) = match (
        tokio::fs::File::open(&path).await,
        tokio::fs::read_to_string(path.with_file_name("twinbay.minisig")).await,
    ) {
        (Ok(f), Ok(s)) => (f, s),
        _ => {
            return refuse(
                socket,
                ErrorCode::Internal,
                &format!("the hub cannot read release {version} for {arch}"),
            )
            .await;
        }
    };
    let welcome = HubMessage::Welcome {
        node_id: node_id.clone(),
        heartbeat_secs: hub.heartbeat.as_secs().max(1) as u32,
    };
    let offer = twinbay_proto::release::Offer {
        manifest: manifest.clone(),
        signature,
    };
    let sent: Result<(), String> = async {
        for text in [
            serde_json::to_string(&welcome).expect("serializes"),
            serde_json::to_string(&offer).expect("serializes"),
        ] {
            send_text(&mut socket, text)
                .await
                .map_err(|e| format!("the agent went away: {e}"))?;
        }
        // Each frame is written before the next is read: a slow agent
        // holds the reading back (TCP), the hub holds one frame.
        let chunks = crate::fsutil::read_stream(file, manifest.size, CHUNK_BYTES);
        let mut chunks = std::pin::pin!(chunks);
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| format!("reading the release: {e}"))?;
            socket
                .send(Message::Binary(chunk))
                .await
                .map_err(|e| format!("the agent went away: {e}"))?;
        }
        Ok(())
    }
    .await;
    let (outcome, detail) = match &sent {
        Ok(()) => (
            Outcome::Ok,
            format!(
                "{command_id}: sent release {version} for {arch} ({} bytes)",
                manifest.size
            ),
        ),
        Err(e) => (
            Outcome::Failed,
            format!("{command_id}: release {version} for {arch}: {e}"),
        ),
    };
    let audit = Record::new(ActorKind::Agent, &node_id, "release.download", outcome)
        .target(&format!("node:{node_id}"))
        .detail(&detail);
    if let Err(e) = hub.store.audit(audit).await {
        tracing::error!(error = %crate::report(&e), "could not audit a release download");
    }
    let _ = socket.send(Message::Close(None)).await;
    // Let the agent read to the end before the socket goes.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), socket.recv()).await;
}
