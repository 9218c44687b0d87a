//! The hub's end of an agent's WebSocket: authenticate, then apply what it says.
//!
//! A session: send a challenge, verify the agent's hello ([`handshake`]),
//! register the connection with the twin, then read frames until the agent
//! goes away, falls silent for three heartbeat intervals, sends too many bad
//! frames in a row, or the hub shuts down. Bad frames are answered with an
//! error frame and the session goes on.

pub(crate) mod handshake;
mod throttle;

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use tokio_util::sync::CancellationToken;
use twinbay_proto::codec::decode_agent_frame;
use twinbay_proto::diff::{Change, Item};
use twinbay_proto::message::{AgentMessage, ErrorCode, Hello, HubMessage};
use twinbay_proto::model::Sample;
use twinbay_proto::{MAX_FRAME_BYTES, PROTOCOL_VERSION};

use crate::HubState;

/// How long an agent that went away to update itself has to report back
/// (its health window is a minute by default, its reconnect backoff 30 s).
const UPDATE_RETURN: Duration = Duration::from_secs(600);
use crate::audit::{ActorKind, Outcome, Record};
use crate::server::Admission;
use crate::twin::ApplyError;

/// A link's WebSocket reads at most this much at a time. Its read buffer
/// makes room for a whole frame beyond what it holds when a frame begins, so
/// short reads keep it near one frame (4 KiB fragments: ~5 KiB a link),
/// where 4 KiB reads doubled it to 8–12 KiB.
const READ_BUFFER: usize = 1024;
/// How long an agent has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Bad frames in a row after which the hub hangs up.
const MAX_BAD_FRAMES: u32 = 16;
/// Most samples one metrics frame may carry.
const MAX_SAMPLES_PER_FRAME: usize = 1024;

/// The agent endpoint. Frames up to twice the protocol limit reach the
/// decoder, which refuses those over the limit with a clear error; larger
/// ones end the connection with close code 1009.
#[utoipa::path(
    get,
    path = "/api/v1/agent/connect",
    tag = "agents",
    description = "WebSocket for agents (the agent protocol; authentication happens inside it).",
    responses((status = 101, description = "Switching to the agent protocol"))
)]
pub async fn agent_socket(
    State(hub): State<Arc<HubState>>,
    admission: Option<Extension<Admission>>,
    ws: WebSocketUpgrade,
) -> Response {
    let admission = admission.map(|Extension(a)| a);
    // Thousands of agents stay connected: small buffers (they grow for the
    // rare large frame) keep each link a few KiB instead of 256 KiB.
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(MAX_FRAME_BYTES * 2)
        .max_frame_size(MAX_FRAME_BYTES * 2)
        .on_upgrade(move |socket| session(hub, socket, admission))
}

/// `admission` is the connection's place under the caps on unproven
/// connections: given up once the agent has proved who it is.
async fn session(hub: Arc<HubState>, mut socket: WebSocket, admission: Option<Admission>) {
    let _tracked = hub.sessions.token();
    // Boxed: what the handshake's awaits hold (the store's queries) is given
    // back once it is over, instead of sitting in every agent's session for
    // as long as it stays connected.
    let Some((node_id, hello)) = Box::pin(admit(&hub, &mut socket)).await else {
        return;
    };
    if let Some(admission) = admission {
        admission.prove();
    }
    let (conn, replaced) = register(&hub, &node_id, hello);
    let mut commands = hub.commands.attach(&node_id, conn);
    let heartbeat = hub.heartbeat;
    let welcome = HubMessage::Welcome {
        node_id: node_id.clone(),
        heartbeat_secs: heartbeat.as_secs().max(1) as u32,
    };
    if send(&mut socket, &welcome).await.is_ok() {
        let mut conn_state = Connection {
            hub: &hub,
            node_id: &node_id,
            conn,
            bad_frames: 0,
            bucket: throttle::Bucket::new(std::time::Instant::now()),
            command_bucket: throttle::Bucket::new(std::time::Instant::now()),
            samples: None,
        };
        let silence = heartbeat * 3;
        loop {
            let frame = tokio::select! {
                _ = hub.shutdown.cancelled() => {
                    close(&mut socket, 1001, "hub shutting down").await;
                    break;
                }
                _ = replaced.cancelled() => {
                    close(&mut socket, 1008, "replaced by a newer connection").await;
                    break;
                }
                frame = tokio::time::timeout(silence, socket.recv()) => frame,
                Some(command) = commands.recv() => {
                    if send(&mut socket, &command).await.is_err() {
                        break;
                    }
                    continue;
                }
            };
            let reply = match frame {
                Err(_) => {
                    tracing::warn!(node_id, ?silence, "agent went silent");
                    close(&mut socket, 1001, "no heartbeat").await;
                    break;
                }
                Ok(None) | Ok(Some(Ok(Message::Close(_)))) => break,
                Ok(Some(Err(e))) => {
                    tracing::info!(node_id, error = %e, "agent connection failed");
                    close(&mut socket, 1009, "frame over the size limit or broken").await;
                    break;
                }
                Ok(Some(Ok(Message::Text(text)))) => {
                    if is_command_frame(text.as_bytes()) {
                        let wait = conn_state.command_bucket.pace(
                            std::time::Instant::now(),
                            throttle::COMMAND_RATE,
                            throttle::COMMAND_BURST,
                        );
                        if !wait.is_zero() {
                            conn_state.hub.metrics.agent_throttled.inc();
                            tokio::time::sleep(wait).await;
                        }
                    }
                    conn_state.handle(text.as_bytes())
                }
                Ok(Some(Ok(Message::Binary(_)))) => conn_state.bad(
                    ErrorCode::BadFrame,
                    "binary frames are not part of the protocol".into(),
                ),
                Ok(Some(Ok(_))) => None,
            };
            // Samples wait for room in the history queue here, so a writer
            // that falls behind slows this agent's link (its frames wait in
            // the socket, its samples in its own buffer) instead of losing
            // history.
            if let Some(samples) = conn_state.samples.take() {
                hub.history.record_waiting(&node_id, samples).await;
            }
            if let Some(reply) = reply {
                let fatal = matches!(reply, HubMessage::Error { fatal: true, .. });
                if send(&mut socket, &reply).await.is_err() || fatal {
                    break;
                }
            }
        }
    }
    // An agent that goes away to update itself answers on its next link;
    // one that never does loses its command after a while.
    for id in hub.commands.detach(&node_id, conn) {
        let hub = hub.clone();
        tokio::spawn(async move {
            tokio::time::sleep(UPDATE_RETURN).await;
            hub.commands
                .expire(&id, "the agent did not report back from its update in time");
        });
    }
    // Only when this link was still the node's (not replaced by a newer
    // one, here or on another replica).
    if hub.twin.disconnect(&node_id, conn)
        && let Some(replicas) = &hub.replicas
    {
        replicas.disconnected(&node_id);
    }
    tracing::info!(node_id, "agent disconnected");
}

/// Connects an admitted agent to the twin; the hello ends here, not with
/// the session.
fn register(hub: &HubState, node_id: &str, hello: Hello) -> (u64, CancellationToken) {
    // Only a node enrolled just now is new to the twin, and then `simulated`
    // is what the store recorded for it.
    hub.twin
        .ensure_node(node_id, hello.simulated, &hello.public_key);
    tracing::info!(
        node_id,
        agent_version = hello.agent_version,
        "agent connected"
    );
    if let Some(replicas) = &hub.replicas {
        replicas.connected(
            node_id,
            &hello.agent_version,
            hello.policy.as_ref(),
            hub.twin
                .read(node_id, |n| n.simulated)
                .unwrap_or(hello.simulated),
            &hello.public_key,
            None,
        );
    }
    hub.twin
        .connect(node_id, &hello.agent_version, hello.policy)
}

/// The handshake: a challenge, the agent's hello, its proof. `None` when the
/// agent was refused (it has been told why) or went away.
async fn admit(hub: &HubState, socket: &mut WebSocket) -> Option<(String, Hello)> {
    let nonce = crate::credentials::new_token("");
    let challenge = HubMessage::Challenge {
        protocol: PROTOCOL_VERSION,
        hub_version: crate::VERSION.to_string(),
        nonce: nonce.clone(),
    };
    send(socket, &challenge).await.ok()?;
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(Message::Text(text)))) => match decode_agent_frame(text.as_bytes()) {
            Ok(AgentMessage::Hello(hello)) => hello,
            Ok(_) => return refuse(socket, ErrorCode::UnexpectedMessage, "say hello first").await,
            Err(e) => return refuse(socket, e.code(), &e.to_string()).await,
        },
        Ok(_) => return None,
        Err(_) => return refuse(socket, ErrorCode::UnexpectedMessage, "no hello in time").await,
    };
    match handshake::verify(&hub.store, &hub.twin, &hello, &nonce).await {
        Ok(id) => Some((id, hello)),
        Err(e) => {
            tracing::warn!(error = %e, node_id = hello.node_id.as_deref().unwrap_or("-"), "refused an agent");
            hub.metrics.agent_refusals.inc();
            if let handshake::HandshakeError::Enroll(reason) = &e {
                let record = Record::new(ActorKind::Agent, "-", "node.enroll", Outcome::Denied)
                    .detail(&reason.to_string());
                if let Err(e) = hub.store.audit(record).await {
                    tracing::error!(error = %crate::report(&e), "could not audit a refused enrollment");
                }
            }
            refuse(socket, e.code(), &e.to_string()).await
        }
    }
}

struct Connection<'a> {
    hub: &'a HubState,
    node_id: &'a str,
    conn: u64,
    bad_frames: u32,
    bucket: throttle::Bucket,
    command_bucket: throttle::Bucket,
    /// A metrics frame's samples, for the session to queue for history.
    samples: Option<Vec<Sample>>,
}

impl Connection<'_> {
    /// Hands an applied frame to the other replicas, if any.
    fn publish(&self, frame: &[u8]) {
        if let Some(replicas) = &self.hub.replicas {
            replicas.frame(self.node_id, frame);
        }
    }

    /// Applies one text frame; returns what to answer, if anything.
    fn handle(&mut self, bytes: &[u8]) -> Option<HubMessage> {
        // Command output and results are paced by the session loop instead
        // (they must not be lost); the rest is dropped over its budget.
        let verdict = if is_command_frame(bytes) {
            throttle::Verdict::Take
        } else {
            self.bucket.frame(std::time::Instant::now())
        };
        match verdict {
            throttle::Verdict::Take => {}
            throttle::Verdict::Drop => {
                self.hub.metrics.agent_throttled.inc();
                return None;
            }
            throttle::Verdict::DropAndTell => {
                self.hub.metrics.agent_throttled.inc();
                tracing::warn!(
                    node_id = self.node_id,
                    "agent over its frame rate; dropping frames"
                );
                return Some(HubMessage::error(
                    ErrorCode::RateLimited,
                    format!(
                        "more than {} frames/s (bursts of {}): frames are dropped; slow down",
                        throttle::RATE,
                        throttle::BURST
                    ),
                    false,
                ));
            }
        }
        let twin = &self.hub.twin;
        let msg = match decode_agent_frame(bytes) {
            Ok(msg) => msg,
            Err(e) => return self.bad(e.code(), e.to_string()),
        };
        self.hub.metrics.agent_frames.inc();
        let reply = match msg {
            AgentMessage::SyncFull { seq, state } => {
                let files: Vec<_> = state.files.values().cloned().collect();
                match twin.apply_full(self.node_id, self.conn, seq, *state) {
                    Ok(()) => {
                        self.publish(bytes);
                        for file in &files {
                            self.hub.files.seen(self.node_id, file);
                        }
                        Some(HubMessage::Ack { seq })
                    }
                    Err(e) => return self.bad(ErrorCode::InvalidState, crate::report(&e)),
                }
            }
            AgentMessage::SyncDiff { seq, changes } => {
                match twin.apply_diff(self.node_id, self.conn, seq, &changes) {
                    Ok(()) => {
                        self.publish(bytes);
                        for change in &changes {
                            match change {
                                Change::Upsert {
                                    item: Item::Files(file),
                                    ..
                                } => self.hub.files.seen(self.node_id, file),
                                Change::Upsert {
                                    item: Item::Units(unit),
                                    ..
                                } if unit.need_daemon_reload => {
                                    self.hub.files.unit_needs_reload(self.node_id, unit)
                                }
                                _ => {}
                            }
                        }
                        Some(HubMessage::Ack { seq })
                    }
                    Err(ApplyError::Stale) => None,
                    Err(e) => {
                        tracing::info!(node_id = self.node_id, error = %crate::report(&e), "asking agent to resync");
                        return self.bad(ErrorCode::ResyncRequired, crate::report(&e));
                    }
                }
            }
            AgentMessage::Metrics { samples } if samples.len() > MAX_SAMPLES_PER_FRAME => {
                return self.bad(
                    ErrorCode::BadFrame,
                    format!(
                        "{} samples in one frame, more than {MAX_SAMPLES_PER_FRAME}",
                        samples.len()
                    ),
                );
            }
            AgentMessage::Metrics { samples } => {
                self.hub.metrics.agent_samples.inc_by(samples.len() as u64);
                twin.record_samples(self.node_id, &samples);
                self.publish(bytes);
                self.samples = Some(samples);
                None
            }
            AgentMessage::Heartbeat { .. } => {
                twin.touch(self.node_id);
                None
            }
            AgentMessage::CommandOutput { chunks } => {
                self.hub.commands.output(self.node_id, chunks);
                None
            }
            AgentMessage::CommandResult(result) => {
                self.hub.commands.finish(self.node_id, result);
                None
            }
            AgentMessage::FileChunk(chunk) => {
                self.hub.files.receive(self.node_id, chunk);
                None
            }
            AgentMessage::UpdateReport(report) => {
                self.update_report(report);
                None
            }
            AgentMessage::Hello(_) => {
                return self.bad(ErrorCode::UnexpectedMessage, "already said hello".into());
            }
        };
        self.bad_frames = 0;
        reply
    }

    /// How an agent's update ended: a timeline event, an audit entry, and
    /// the `update` command's result.
    fn update_report(&self, report: twinbay_proto::message::UpdateReport) {
        let kind = if report.ok {
            "agent.updated"
        } else {
            "agent.update_failed"
        };
        tracing::info!(
            node_id = self.node_id,
            version = report.version,
            ok = report.ok,
            reason = report.reason.as_deref().unwrap_or(""),
            "agent update reported"
        );
        self.hub.twin.emit(vec![crate::timeline::Event {
            node_id: self.node_id.to_string(),
            ts: crate::store::now_ms(),
            kind: kind.into(),
            target: "agent".into(),
            detail: serde_json::json!({
                "version": report.version,
                "from_version": report.from_version,
                "reason": report.reason,
                "command_id": report.command_id,
            }),
        }]);
        let mut detail = format!("{} → {}", report.from_version, report.version);
        if let Some(reason) = &report.reason {
            detail.push_str(&format!(": {reason}"));
        }
        let outcome = if report.ok {
            Outcome::Ok
        } else {
            Outcome::Failed
        };
        let audit = Record::new(ActorKind::Agent, self.node_id, "agent.update", outcome)
            .target(&format!("node:{}", self.node_id))
            .detail(&detail);
        let store = self.hub.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.audit(audit).await {
                tracing::error!(error = %crate::report(&e), "could not audit an agent update");
            }
        });
        if let Some(id) = report.command_id {
            let (status, exit_code) = if report.ok {
                (twinbay_proto::command::Status::Ok, Some(0))
            } else {
                (twinbay_proto::command::Status::Failed, None)
            };
            self.hub.commands.finish(
                self.node_id,
                twinbay_proto::command::CommandResult {
                    id,
                    status,
                    exit_code,
                    error: (!report.ok)
                        .then(|| report.reason.unwrap_or_else(|| "the update failed".into())),
                    duration_ms: 0,
                    truncated: false,
                },
            );
        }
    }

    /// An error answer; fatal once the agent has sent too many bad frames in a row.
    fn bad(&mut self, code: ErrorCode, message: String) -> Option<HubMessage> {
        self.hub.metrics.agent_bad_frames.inc();
        self.bad_frames += 1;
        let fatal = self.bad_frames >= MAX_BAD_FRAMES;
        tracing::debug!(
            node_id = self.node_id,
            ?code,
            message,
            fatal,
            "bad frame from agent"
        );
        Some(HubMessage::error(code, message, fatal))
    }
}

/// Command output or a command result (the agent writes the type first).
fn is_command_frame(bytes: &[u8]) -> bool {
    bytes.starts_with(br#"{"type":"command_"#) || bytes.starts_with(br#"{"type":"update_report""#)
}

async fn send(socket: &mut WebSocket, msg: &HubMessage) -> Result<(), axum::Error> {
    let text = serde_json::to_string(msg).expect("hub messages always serialize");
    socket.send(Message::Text(text.into())).await
}

/// Tells the agent why it is refused and closes; `None`, for [`admit`].
async fn refuse<T>(socket: &mut WebSocket, code: ErrorCode, message: &str) -> Option<T> {
    let _ = send(socket, &HubMessage::error(code, message, true)).await;
    close(socket, 1008, "refused").await;
    None
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}
