//! The agent's upload socket for one backup run.
//!
//! The agent dials `GET /api/v1/agent/backups/{command_id}` with the same
//! TLS pin as its link and proves its key the same way (challenge, signed
//! hello; never a join token here). The run must be a `backup` command that
//! is running on that agent's node, and only one upload per run is taken.
//! Then binary frames carry the compressed artifact: each is hashed,
//! counted and written to the object store before the next is read, so TCP
//! holds the agent back when storage is slower than the producer. The last
//! frame ([`TransferEnd`]) says how the producer ended and what the agent
//! sent; the object is kept only if the producer exited 0 and both hashes
//! and sizes agree, else it is removed and the run fails with the reason.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use sha2::{Digest, Sha256};
use twinbay_proto::PROTOCOL_VERSION;
use twinbay_proto::backup::{CHUNK_BYTES, TransferEnd, TransferReply};
use twinbay_proto::codec::decode_agent_frame;
use twinbay_proto::command::{Op, Status};
use twinbay_proto::message::{AgentMessage, ErrorCode, HubMessage};

use super::{Backups, file_key};
use crate::HubState;
use crate::audit::{ActorKind, Outcome, Record};
use crate::server::Admission;
use crate::store::{BackupRecord, now_ms};

/// How long an agent has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest silence between two frames of an upload.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The upload endpoint for one backup run.
#[utoipa::path(
    get,
    path = "/api/v1/agent/backups/{id}",
    tag = "agents",
    params(("id" = String, Path, description = "The backup command's id")),
    description = "WebSocket on which an agent uploads a backup artifact (authentication happens inside it, as on the link).",
    responses((status = 101, description = "Switching to the upload protocol"))
)]
pub async fn upload_socket(
    State(hub): State<Arc<HubState>>,
    Path(id): Path<String>,
    admission: Option<Extension<Admission>>,
    ws: WebSocketUpgrade,
) -> Response {
    let admission = admission.map(|Extension(a)| a);
    ws.read_buffer_size(64 * 1024)
        .write_buffer_size(0)
        .max_message_size(CHUNK_BYTES * 2)
        .max_frame_size(CHUNK_BYTES * 2)
        .on_upgrade(move |socket| upload(hub, id, socket, admission))
}

pub(crate) async fn send_text(socket: &mut WebSocket, text: String) -> Result<(), axum::Error> {
    socket.send(Message::Text(text.into())).await
}

pub(crate) async fn refuse(mut socket: WebSocket, code: ErrorCode, message: &str) {
    let msg = HubMessage::error(code, message, true);
    let _ = send_text(
        &mut socket,
        serde_json::to_string(&msg).expect("serializes"),
    )
    .await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 1008,
            reason: Utf8Bytes::from_static("refused"),
        })))
        .await;
}

async fn upload(
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
    let Some(record) = record else {
        return refuse(
            socket,
            ErrorCode::InvalidState,
            "no running backup of this node has that id",
        )
        .await;
    };
    let Op::Backup { job, source, keep } = &record.op else {
        return refuse(
            socket,
            ErrorCode::InvalidState,
            "that command is not a backup",
        )
        .await;
    };
    let Some(_claim) = hub.backups.claim(&command_id) else {
        return refuse(
            socket,
            ErrorCode::InvalidState,
            "an upload for this backup is under way",
        )
        .await;
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
    let backup_id: String = crate::credentials::new_token("bk_")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(24)
        .collect();
    let mut b = BackupRecord {
        id: backup_id.clone(),
        node_id: node_id.clone(),
        job: job.clone(),
        command_id: command_id.clone(),
        source: source.summary(),
        object_key: file_key(&node_id, job, &backup_id),
        sha256: String::new(),
        size: 0,
        created_ms: now_ms(),
        status: "complete".into(),
        retention: String::new(),
        verified_ms: None,
    };
    let started = std::time::Instant::now();
    let reply = match receive(&hub.backups, &mut socket, &hub, &mut b).await {
        Ok(()) => match hub.store.insert_backup(&b, keep.as_ref()).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = hub.backups.objects().delete(&b.object_key).await;
                Err(format!(
                    "the hub could not record the backup: {}",
                    crate::report(&e)
                ))
            }
        },
        Err(reason) => Err(reason),
    };
    let (outcome, detail, msg) = match &reply {
        Ok(()) => (
            Outcome::Ok,
            format!(
                "{} {}: {} bytes, sha256 {} in {:.1}s",
                b.id,
                record.summary,
                b.size,
                b.sha256,
                started.elapsed().as_secs_f64()
            ),
            TransferReply::Stored {
                backup_id: b.id.clone(),
                sha256: b.sha256.clone(),
                size: b.size,
            },
        ),
        Err(reason) => (
            Outcome::Failed,
            format!("{command_id} {}: {reason}", record.summary),
            TransferReply::Failed {
                reason: reason.clone(),
            },
        ),
    };
    if reply.is_ok() {
        tracing::info!(node_id, job, id = b.id, size = b.size, "backup stored");
        // Before the answer, so the run ends with its job pruned.
        prune_after(&hub, &node_id, job).await;
    }
    let _ = send_text(
        &mut socket,
        serde_json::to_string(&msg).expect("serializes"),
    )
    .await;
    if reply.is_err() {
        // The agent may still be sending: let it read the reason (it looks
        // between frames) instead of cutting it off mid-frame.
        let drain = async {
            while let Some(Ok(frame)) = socket.recv().await {
                if !matches!(frame, Message::Binary(_)) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), drain).await;
    }
    let _ = socket.send(Message::Close(None)).await;
    let audit = Record::new(ActorKind::Agent, &node_id, "backup.store", outcome)
        .target(&format!("node:{node_id}"))
        .detail(&detail);
    if let Err(e) = hub.store.audit(audit).await {
        tracing::error!(error = %crate::report(&e), "could not audit a backup upload");
    }
}

/// Prunes a job after a backup, auditing what went.
pub(crate) async fn prune_after(hub: &HubState, node_id: &str, job: &str) {
    match hub.backups.prune(node_id, job).await {
        Ok(report) if report.removed.is_empty() => {}
        Ok(report) => {
            let ids: Vec<&str> = report.removed.iter().map(|d| d.id.as_str()).collect();
            let audit = Record::new(
                ActorKind::Scheduler,
                "retention",
                "backup.prune",
                Outcome::Ok,
            )
            .target(&format!("node:{node_id}"))
            .detail(&format!(
                "job {job} ({}): removed {}",
                report.rules,
                ids.join(", ")
            ));
            if let Err(e) = hub.store.audit(audit).await {
                tracing::error!(error = %crate::report(&e), "could not audit a prune");
            }
        }
        Err(e) => tracing::error!(node_id, job, error = %crate::report(&e), "pruning failed"),
    }
}

/// Receives the artifact into the store; `Err` is the reason the run failed
/// (nothing is left in the store then).
async fn receive(
    backups: &Backups,
    socket: &mut WebSocket,
    hub: &HubState,
    b: &mut BackupRecord,
) -> Result<(), String> {
    let mut writer = backups
        .objects()
        .create(&b.object_key)
        .await
        .map_err(|e| format!("the hub cannot store it: {}", crate::report(&e)))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let end: Result<TransferEnd, String> = loop {
        let frame = tokio::select! {
            _ = hub.shutdown.cancelled() => break Err("the hub shut down during the upload".into()),
            f = tokio::time::timeout(IDLE_TIMEOUT, socket.recv()) => f,
        };
        match frame {
            Err(_) => {
                break Err(format!(
                    "the upload stalled for {} s",
                    IDLE_TIMEOUT.as_secs()
                ));
            }
            Ok(None) | Ok(Some(Ok(Message::Close(_)))) => {
                break Err("the agent's upload broke off before its end".into());
            }
            Ok(Some(Err(e))) => break Err(format!("the upload broke: {e}")),
            Ok(Some(Ok(Message::Binary(data)))) => {
                hasher.update(&data);
                size += data.len() as u64;
                if let Err(e) = writer.write(&data).await {
                    break Err(format!("the hub cannot store it: {}", crate::report(&e)));
                }
            }
            Ok(Some(Ok(Message::Text(text)))) => {
                break serde_json::from_str::<TransferEnd>(text.as_str())
                    .map_err(|e| format!("the agent's end frame is not valid: {e}"));
            }
            Ok(Some(Ok(_))) => {}
        }
    };
    let sha256 = hex::encode(hasher.finalize());
    let verdict = end.and_then(|end| judge(&end, &sha256, size));
    match verdict {
        Ok(()) => {
            writer
                .finish()
                .await
                .map_err(|e| format!("the hub cannot store it: {}", crate::report(&e)))?;
            b.sha256 = sha256;
            b.size = size;
            Ok(())
        }
        Err(reason) => {
            writer.abort().await;
            Err(reason)
        }
    }
}

/// Whether the run is complete: the producer exited 0 and the agent sent
/// what the hub received.
fn judge(end: &TransferEnd, sha256: &str, size: u64) -> Result<(), String> {
    let tail = end.stderr_tail.trim();
    let tail = if tail.is_empty() {
        String::new()
    } else {
        format!(": {tail}")
    };
    if let Some(e) = &end.error {
        return Err(format!("{e}{tail}"));
    }
    match end.exit_code {
        Some(0) => {}
        Some(code) => return Err(format!("the producer exited with code {code}{tail}")),
        None => return Err(format!("the producer was killed{tail}")),
    }
    if end.size != size || !end.sha256.eq_ignore_ascii_case(sha256) {
        return Err(format!(
            "the upload was damaged: the agent sent {} bytes (sha256 {}), the hub received {size} (sha256 {sha256})",
            end.size, end.sha256
        ));
    }
    Ok(())
}

/// An agent's side socket for command `command_id` (a backup upload, a
/// restore, a release download): the agent proved its key ([`handshake`]),
/// with the command's record if it is running on that agent's own node.
pub(crate) async fn command_socket(
    hub: &HubState,
    command_id: &str,
    socket: WebSocket,
    admission: Option<Admission>,
) -> Option<(String, WebSocket, Option<crate::store::CommandRecord>)> {
    let (node_id, socket) = handshake(hub, socket, admission).await?;
    let record = hub
        .commands
        .running_record(command_id)
        .filter(|r| r.node_id == node_id && r.status == Status::Running);
    Some((node_id, socket, record))
}

/// The agent's proof of who it is on an upload or restore socket: the link's
/// challenge and signed hello, for an enrolled node only. `None` when it
/// failed (the socket was answered and closed).
pub(crate) async fn handshake(
    hub: &HubState,
    mut socket: WebSocket,
    admission: Option<Admission>,
) -> Option<(String, WebSocket)> {
    let nonce = crate::credentials::new_token("");
    let challenge = HubMessage::Challenge {
        protocol: PROTOCOL_VERSION,
        hub_version: crate::VERSION.to_string(),
        nonce: nonce.clone(),
    };
    let text = serde_json::to_string(&challenge).expect("serializes");
    send_text(&mut socket, text).await.ok()?;
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(Message::Text(text)))) => match decode_agent_frame(text.as_bytes()) {
            Ok(AgentMessage::Hello(hello)) => hello,
            Ok(_) => {
                refuse(socket, ErrorCode::UnexpectedMessage, "say hello first").await;
                return None;
            }
            Err(e) => {
                refuse(socket, e.code(), &e.to_string()).await;
                return None;
            }
        },
        Ok(_) => return None,
        Err(_) => {
            refuse(socket, ErrorCode::UnexpectedMessage, "no hello in time").await;
            return None;
        }
    };
    if hello.node_id.is_none() || hello.join_token.is_some() {
        refuse(
            socket,
            ErrorCode::AuthFailed,
            "this needs an enrolled agent's node id (and no join token)",
        )
        .await;
        return None;
    }
    match crate::link::handshake::verify(&hub.store, &hub.twin, &hello, &nonce).await {
        Ok(node_id) => {
            if let Some(admission) = admission {
                admission.prove();
            }
            Some((node_id, socket))
        }
        Err(e) => {
            tracing::warn!(error = %e, "refused an agent's backup socket");
            refuse(socket, e.code(), &e.to_string()).await;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(exit: Option<i32>, sha: &str, size: u64) -> TransferEnd {
        TransferEnd {
            exit_code: exit,
            error: None,
            stderr_tail: "pg_dump: error: connection failed\n".into(),
            sha256: sha.into(),
            size,
        }
    }

    #[test]
    fn complete_only_with_exit_zero_and_matching_hash() {
        assert_eq!(judge(&end(Some(0), "ab", 3), "ab", 3), Ok(()));
        assert_eq!(
            judge(&end(Some(1), "ab", 3), "ab", 3).unwrap_err(),
            "the producer exited with code 1: pg_dump: error: connection failed"
        );
        assert!(
            judge(&end(None, "ab", 3), "ab", 3)
                .unwrap_err()
                .contains("killed")
        );
        assert!(
            judge(&end(Some(0), "ab", 3), "cd", 3)
                .unwrap_err()
                .contains("damaged")
        );
        assert!(
            judge(&end(Some(0), "ab", 3), "ab", 4)
                .unwrap_err()
                .contains("damaged")
        );
    }
}
