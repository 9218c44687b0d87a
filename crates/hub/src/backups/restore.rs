//! The agent's download socket for one restore run: the stored artifact,
//! streamed as it is read from storage (binary frames), then its SHA-256
//! and size, which the agent checks against what it received.

use std::sync::Arc;

use axum::Extension;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use futures_util::StreamExt;
use twinbay_proto::backup::{CHUNK_BYTES, RestoreEnd};
use twinbay_proto::command::Op;
use twinbay_proto::message::{ErrorCode, HubMessage};

use super::transfer::{command_socket, refuse, send_text};
use crate::HubState;
use crate::audit::{ActorKind, Outcome, Record};
use crate::server::Admission;

/// The download endpoint for one restore run.
#[utoipa::path(
    get,
    path = "/api/v1/agent/restores/{id}",
    tag = "agents",
    params(("id" = String, Path, description = "The restore command's id")),
    description = "WebSocket on which an agent downloads the artifact it restores (authentication happens inside it, as on the link).",
    responses((status = 101, description = "Switching to the download protocol"))
)]
pub async fn download_socket(
    State(hub): State<Arc<HubState>>,
    Path(id): Path<String>,
    admission: Option<Extension<Admission>>,
    ws: WebSocketUpgrade,
) -> Response {
    let admission = admission.map(|Extension(a)| a);
    ws.read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(CHUNK_BYTES * 2)
        .max_frame_size(CHUNK_BYTES * 2)
        .on_upgrade(move |socket| serve(hub, id, socket, admission))
}

async fn serve(
    hub: Arc<HubState>,
    command_id: String,
    socket: WebSocket,
    admission: Option<Admission>,
) {
    let _tracked = hub.sessions.token();
    let Some((node_id, mut socket, record)) =
        command_socket(&hub, &command_id, socket, admission).await
    else {
        return;
    };
    let Some(Op::Restore { backup_id, .. }) = record.as_ref().map(|r| &r.op) else {
        return refuse(
            socket,
            ErrorCode::InvalidState,
            "no running restore of this node has that id",
        )
        .await;
    };
    let backup = match hub.store.backup(backup_id).await {
        Ok(Some(b)) => b,
        _ => {
            return refuse(socket, ErrorCode::InvalidState, "no such backup").await;
        }
    };
    let welcome = HubMessage::Welcome {
        node_id: node_id.clone(),
        heartbeat_secs: hub.heartbeat.as_secs().max(1) as u32,
    };
    if send_text(
        &mut socket,
        serde_json::to_string(&welcome).expect("serializes"),
    )
    .await
    .is_err()
    {
        return;
    }
    let objects = hub.backups.objects();
    let sent: Result<(), String> = async {
        let size = objects
            .size(&backup.object_key)
            .await
            .map_err(|e| crate::report(&e))?;
        let mut stream = objects
            .read(&backup.object_key, 0, size)
            .await
            .map_err(|e| crate::report(&e))?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| format!("reading the artifact: {e}"))?;
            socket
                .send(Message::Binary(chunk))
                .await
                .map_err(|e| format!("the agent went away: {e}"))?;
        }
        let end = RestoreEnd {
            sha256: backup.sha256.clone(),
            size: backup.size,
        };
        send_text(
            &mut socket,
            serde_json::to_string(&end).expect("serializes"),
        )
        .await
        .map_err(|e| format!("the agent went away: {e}"))
    }
    .await;
    let (outcome, detail) = match &sent {
        Ok(()) => (
            Outcome::Ok,
            format!("{command_id}: sent {} ({} bytes)", backup.id, backup.size),
        ),
        Err(e) => (Outcome::Failed, format!("{command_id}: {}: {e}", backup.id)),
    };
    let audit = Record::new(ActorKind::Agent, &node_id, "backup.restore", outcome)
        .target(&format!("node:{node_id}"))
        .detail(&detail);
    if let Err(e) = hub.store.audit(audit).await {
        tracing::error!(error = %crate::report(&e), "could not audit a restore download");
    }
    // Wait for the agent to close, so the last frames are not cut off.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), socket.recv()).await;
}
