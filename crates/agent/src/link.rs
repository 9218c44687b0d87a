//! The agent's one connection to the hub: dial out, prove identity, sync.
//!
//! [`run`] keeps a session alive: it dials the hub (TLS with a pinned
//! certificate, or plain `ws://` on loopback only), answers the hub's
//! challenge, sends a full sync and then, as sources report, differences,
//! metric batches and heartbeats. When the session ends it waits a jittered,
//! growing delay and dials again; every new session starts with a full sync.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Bytes;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_util::sync::CancellationToken;
use twinbay_proto::codec::decode_hub_frame;
use twinbay_proto::command::{CommandResult, OutputChunk, Status};
use twinbay_proto::message::{
    AgentMessage, ErrorCode, FILE_CHUNK_BYTES, FileChunk, Hello, HubMessage, MAX_FILE_CONTENT,
    NeededFile,
};
use twinbay_proto::model::NodeState;
use twinbay_proto::{MAX_FRAME_BYTES, PROTOCOL_VERSION, link_proof_message};

use crate::backoff::{Backoff, random_unit};
use crate::buffer::SampleBuffer;
use crate::error::report;
use crate::exec::{self, Event};
use crate::identity::Identity;
use crate::sources::files::{self, FileKey, FilesGeneration};
use crate::{AgentError, tls};

mod sent;

use sent::Sent;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Samples per metrics frame; far below the frame limit.
const MAX_BATCH: usize = 256;

/// Any byte stream a WebSocket can run over: TCP or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub type HubSocket = WebSocketStream<Box<dyn Io>>;

/// Where to dial for a hub URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ws_url: String,
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// Turns a hub URL (`https://hub:7780`, `wss://…`, or `ws://127.0.0.1:7780`
/// on loopback only) into the agent endpoint to dial.
pub fn endpoint(hub: &str) -> Result<Endpoint, AgentError> {
    let bad = |reason: &str| AgentError::HubUrl {
        url: hub.to_string(),
        reason: reason.to_string(),
    };
    let uri: http::Uri = hub.parse().map_err(|_| bad("not a URL"))?;
    let tls = match uri.scheme_str() {
        Some("https" | "wss") => true,
        Some("http" | "ws") => false,
        _ => return Err(bad("scheme must be https, wss, or (on loopback) ws")),
    };
    let host = uri.host().ok_or_else(|| bad("no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if !tls && !is_loopback(&host) {
        return Err(bad(
            "plain ws:// is allowed only to a loopback address; use https://",
        ));
    }
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    let prefix = uri.path().trim_end_matches('/');
    let scheme = if tls { "wss" } else { "ws" };
    Ok(Endpoint {
        ws_url: format!("{scheme}://{authority}{prefix}/api/v1/agent/connect"),
        host,
        port,
        tls,
    })
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Opens a WebSocket to the hub, refusing any certificate but the pinned one.
pub async fn connect(hub: &str, fingerprint: &str) -> Result<HubSocket, AgentError> {
    connect_path(hub, fingerprint, "/api/v1/agent/connect").await
}

/// [`connect`], to another agent endpoint of the hub (a backup upload).
pub async fn connect_path(
    hub: &str,
    fingerprint: &str,
    path: &str,
) -> Result<HubSocket, AgentError> {
    let mut ep = endpoint(hub)?;
    if let Some(base) = ep.ws_url.strip_suffix("/api/v1/agent/connect") {
        ep.ws_url = format!("{base}{path}");
    }
    let io_err = |source| AgentError::Connect {
        url: hub.to_string(),
        source,
    };
    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((ep.host.as_str(), ep.port)),
    )
    .await
    .map_err(|_| AgentError::Timeout(CONNECT_TIMEOUT))?
    .map_err(io_err)?;
    tcp.set_nodelay(true).map_err(io_err)?;
    let io: Box<dyn Io> = if ep.tls {
        let connector =
            tokio_rustls::TlsConnector::from(Arc::new(tls::pinned_client_config(fingerprint)));
        let name = ServerName::try_from(ep.host.clone()).map_err(|_| AgentError::HubUrl {
            url: hub.to_string(),
            reason: "host is not a valid server name".into(),
        })?;
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, tcp))
            .await
            .map_err(|_| AgentError::Timeout(HANDSHAKE_TIMEOUT))?
            .map_err(|e| match tls::pin_mismatch(&e) {
                Some(m) => AgentError::PinMismatch {
                    expected: m.expected.clone(),
                    actual: m.actual.clone(),
                },
                None => io_err(e),
            })?;
        Box::new(stream)
    } else {
        Box::new(tcp)
    };
    // The hub says little (acks, errors): small buffers keep an agent (and
    // thousands of simulated ones) light; larger frames still fit, the
    // buffers grow as needed.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES));
    let (ws, _response) =
        tokio_tungstenite::client_async_with_config(ep.ws_url.as_str(), io, Some(config)).await?;
    Ok(ws)
}

/// What the link needs to send watched files' content when the hub asks.
#[derive(Debug, Clone)]
pub struct FileReader {
    pub key: FileKey,
    pub content_cap: u64,
    /// The files source's count of changes to the twin's files: while it
    /// stands still the link does not compare them. `None`: every time.
    pub generation: Option<Arc<FilesGeneration>>,
}

/// Keeps a session with the hub alive until `cancel` fires or the hub
/// refuses this agent for good.
pub async fn run(
    mut identity: Identity,
    mut state: watch::Receiver<NodeState>,
    samples: Arc<SampleBuffer>,
    mut commands: Option<exec::Channel>,
    files: Option<FileReader>,
    cancel: CancellationToken,
) -> Result<(), AgentError> {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut attempt = 0usize;
    loop {
        let hubs = &identity.enrollment.hubs;
        let hub = hubs[attempt % hubs.len().max(1)].clone();
        attempt += 1;
        let fingerprint = identity.enrollment.fingerprint.clone();
        let result = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = connect(&hub, &fingerprint) => match r {
                Ok(ws) => {
                    let mut session = Session {
                        hub: &hub,
                        identity: &mut identity,
                        state: &mut state,
                        samples: &samples,
                        backoff: &mut backoff,
                        commands: &mut commands,
                        files: files.as_ref(),
                        cancel: &cancel,
                    };
                    let result = session.run(ws).await;
                    // The hub that asked for them is gone (it marks them lost).
                    if let Some(c) = &commands {
                        c.executor.cancel_all();
                    }
                    result
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(()) => return Ok(()),
            Err(e) if e.is_permanent(identity.is_enrolled()) => return Err(e),
            Err(e) => tracing::warn!(hub, error = %report(&e), "link to hub down; will retry"),
        }
        let delay = backoff.next_delay(random_unit());
        tracing::debug!(?delay, "waiting before reconnecting");
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

struct Session<'a> {
    hub: &'a str,
    identity: &'a mut Identity,
    state: &'a mut watch::Receiver<NodeState>,
    samples: &'a SampleBuffer,
    backoff: &'a mut Backoff,
    commands: &'a mut Option<exec::Channel>,
    files: Option<&'a FileReader>,
    cancel: &'a CancellationToken,
}

impl Session<'_> {
    /// One connection's life. `Ok` means we were cancelled; every other end is an error.
    async fn run(&mut self, ws: HubSocket) -> Result<(), AgentError> {
        let (mut tx, mut rx) = ws.split();
        let nonce = match recv(&mut rx).await? {
            HubMessage::Challenge { nonce, .. } => nonce,
            other => return Err(unexpected(other)),
        };
        let hello = AgentMessage::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            agent_version: match (self.identity.state_dir(), self.identity.simulated) {
                (Some(dir), false) => crate::update::running_version(dir),
                _ => self
                    .identity
                    .pretended_version
                    .clone()
                    .unwrap_or_else(|| crate::VERSION.to_string()),
            },
            public_key: self.identity.public_key_b64(),
            signature: self.identity.sign_b64(&link_proof_message(&nonce)),
            node_id: self.identity.enrollment.node_id.clone(),
            join_token: self.identity.enrollment.join_token.clone(),
            capabilities: vec!["metrics.host".into()],
            simulated: self.identity.simulated,
            policy: self.commands.as_ref().map(|c| c.executor.policy().clone()),
        });
        send(&mut tx, &hello).await?;
        let (node_id, heartbeat_secs) = match recv(&mut rx).await? {
            HubMessage::Welcome {
                node_id,
                heartbeat_secs,
            } => (node_id, heartbeat_secs.max(1)),
            other => return Err(unexpected(other)),
        };
        self.identity.record_enrollment(&node_id)?;
        if let Some(c) = self.commands.as_ref() {
            c.executor.set_uploader(exec::backup::Uploader {
                hub: self.hub.to_string(),
                fingerprint: self.identity.enrollment.fingerprint.clone(),
                node_id: node_id.clone(),
                key: self.identity.signing_key(),
            });
        }
        self.backoff.reset();
        tracing::info!(node_id, "connected to hub");

        let mut seq = 1u64;
        let mut sent = Sent::new(self.files.and_then(|f| f.generation.clone()));
        self.send_full(&mut tx, seq, &mut sent).await?;
        self.flush_samples(&mut tx).await?;
        if !self.identity.simulated
            && let Some(dir) = self.identity.state_dir()
        {
            // A trial child says it is healthy: link up, hello accepted,
            // sources started (they run before the link).
            crate::update::report_healthy();
            // How the last update ended, if the hub has not heard yet.
            if let Some(report) = crate::update::pending_report(dir) {
                tracing::info!(
                    version = report.version,
                    ok = report.ok,
                    "reporting the update"
                );
                send(&mut tx, &AgentMessage::UpdateReport(report.clone())).await?;
                crate::update::clear_report(dir, &report);
            }
        }

        let period = Duration::from_secs(u64::from(heartbeat_secs));
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut output = OutputBatch::default();
        // Files whose content the hub asked for, sent at a pace it takes.
        let mut wanted: VecDeque<NeededFile> = VecDeque::new();
        let mut file_pace = Pace::new(FILE_FRAMES_PER_SEC, FILE_FRAME_BURST);
        loop {
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => {
                    let _ = tx.send(Message::Close(None)).await;
                    return Ok(());
                }
                frame = rx.next() => match frame {
                    None | Some(Ok(Message::Close(_))) => return Err(AgentError::Closed),
                    Some(Err(e)) => return Err(e.into()),
                    Some(Ok(Message::Text(text))) => match decode_hub_frame(text.as_bytes()) {
                        Ok(HubMessage::Ack { seq }) => tracing::trace!(seq, "hub applied"),
                        Ok(HubMessage::Error { code: ErrorCode::ResyncRequired, message, .. }) => {
                            tracing::info!(reason = message, "hub asked for a full resync");
                            seq += 1;
                            self.send_full(&mut tx, seq, &mut sent).await?;
                        }
                        Ok(HubMessage::Error { code, message, fatal: true }) => {
                            return Err(AgentError::Refused { code, message });
                        }
                        Ok(HubMessage::Error { code, message, .. }) => {
                            tracing::warn!(?code, message, "hub reported an error");
                        }
                        Ok(HubMessage::Command(cmd)) => match self.commands.as_ref() {
                            Some(c) => c.executor.start(cmd),
                            None if self.identity.simulated => {
                                let pretence = crate::sim::pretend(&cmd);
                                if let Some(chunk) = pretence.output {
                                    let msg = AgentMessage::CommandOutput { chunks: vec![chunk] };
                                    send(&mut tx, &msg).await?;
                                }
                                send(&mut tx, &AgentMessage::CommandResult(pretence.result)).await?;
                                if let Some(version) = pretence.restart_as {
                                    self.identity.pretended_version = Some(version.clone());
                                    return Err(AgentError::SimulatedRestart(version));
                                }
                            }
                            None => {
                                let refused = CommandResult {
                                    id: cmd.id,
                                    status: Status::Refused,
                                    exit_code: None,
                                    error: Some("this agent runs no commands".into()),
                                    duration_ms: 0,
                                    truncated: false,
                                };
                                send(&mut tx, &AgentMessage::CommandResult(refused)).await?;
                            }
                        },
                        Ok(HubMessage::Cancel { id }) => {
                            if let Some(c) = self.commands.as_ref() {
                                c.executor.cancel(&id);
                            }
                        }
                        Ok(HubMessage::NeedFiles { files }) => wanted.extend(files),
                        Ok(other) => tracing::debug!(?other, "ignoring unexpected message"),
                        Err(e) => tracing::warn!(error = %e, "undecodable frame from hub"),
                    },
                    Some(Ok(_)) => {}
                },
                changed = self.state.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    // Diffed against the twin in place: no copy of the whole
                    // node per change, only of what changed.
                    let changes = sent.diff(&self.state.borrow_and_update());
                    if !changes.is_empty() {
                        seq += 1;
                        let msg = AgentMessage::SyncDiff { seq, changes };
                        send(&mut tx, &msg).await?;
                        let AgentMessage::SyncDiff { changes, .. } = msg else {
                            unreachable!("built above")
                        };
                        if !sent.sent(changes) {
                            // Only a diff the hub refuses as well fails here.
                            sent.reset(&self.state.borrow());
                        }
                    }
                }
                _ = self.samples.notify.notified() => self.flush_samples(&mut tx).await?,
                event = next_event(self.commands) => match event {
                    Some(Event::Output(chunk)) => {
                        let full = output.push(chunk);
                        if full {
                            output.flush(&mut tx).await?;
                        }
                    }
                    Some(Event::Result(result)) => {
                        output.flush(&mut tx).await?;
                        send(&mut tx, &AgentMessage::CommandResult(result)).await?;
                    }
                    None => {}
                },
                _ = sleep_until(output.due), if output.due.is_some() => output.flush(&mut tx).await?,
                _ = tokio::time::sleep_until(file_pace.ready_at(tokio::time::Instant::now())), if !wanted.is_empty() => {
                    if let Some(want) = wanted.pop_front() {
                        let frames = self.send_file(&mut tx, want).await?;
                        file_pace.spend(frames, tokio::time::Instant::now());
                    }
                    if wanted.is_empty() {
                        // A thousand requests leave no thousand-slot buffer behind.
                        wanted = VecDeque::new();
                    }
                }
                _ = heartbeat.tick() => {
                    send(&mut tx, &AgentMessage::Heartbeat { ts_ms: crate::now_ms() }).await?;
                }
            }
        }
    }

    /// A full sync of the twin as it is now, serialized from the twin itself
    /// (no copy of it).
    async fn send_full(
        &mut self,
        tx: &mut Sink,
        seq: u64,
        sent: &mut Sent,
    ) -> Result<(), AgentError> {
        let text = {
            let now = self.state.borrow_and_update();
            sent.reset(&now);
            serde_json::to_string(&SyncFull {
                kind: "sync_full",
                seq,
                state: &now,
            })
            .expect("agent messages always serialize")
        };
        send_text(tx, text).await
    }

    /// Sends the content the hub asked for: only files in the watched set
    /// (never a path the hub merely names), only the version asked for
    /// (a changed file's new version comes through the diff), redacted.
    /// Returns how many frames it sent.
    async fn send_file(&self, tx: &mut Sink, want: NeededFile) -> Result<usize, AgentError> {
        let Some(reader) = self.files else {
            return Ok(0);
        };
        let watched = self.state.borrow().files.get(&want.path).cloned();
        let Some(file) = watched.filter(|f| f.ships_content()) else {
            tracing::debug!(
                path = want.path,
                "hub asked for a file that is not watched (or whose content does not travel)"
            );
            return Ok(0);
        };
        let (key, cap, sha) = (reader.key.clone(), reader.content_cap, want.sha256.clone());
        let text = tokio::task::spawn_blocking(move || files::read_content(&file, &sha, cap, &key))
            .await
            .ok()
            .flatten();
        let Some(text) = text.filter(|t| t.len() as u64 <= MAX_FILE_CONTENT) else {
            tracing::debug!(path = want.path, "asked-for version is gone; skipping");
            return Ok(0);
        };
        let mut frames = 0;
        for (offset, data) in files::chunks(&text, FILE_CHUNK_BYTES) {
            let chunk = FileChunk {
                path: want.path.clone(),
                sha256: want.sha256.clone(),
                offset: offset as u64,
                total: text.len() as u64,
                data: data.to_string(),
            };
            send(tx, &AgentMessage::FileChunk(chunk)).await?;
            frames += 1;
        }
        Ok(frames)
    }

    async fn flush_samples(&self, tx: &mut Sink) -> Result<(), AgentError> {
        loop {
            let batch = self.samples.take(MAX_BATCH);
            if batch.is_empty() {
                return Ok(());
            }
            let msg = AgentMessage::Metrics { samples: batch };
            if let Err(e) = send(tx, &msg).await {
                if let AgentMessage::Metrics { samples } = msg {
                    self.samples.put_back(samples);
                }
                return Err(e);
            }
        }
    }
}

/// The hub takes 20 frames a second from an agent, with bursts of 200, and
/// drops what comes faster (`hub/src/link/throttle.rs`): a dropped diff
/// costs a full resync, a dropped file chunk a version without content.
/// File content, asked for by the thousand when a host is first seen,
/// keeps to most of that and leaves the rest to diffs, samples and heartbeats.
const FILE_FRAMES_PER_SEC: f64 = 12.0;
const FILE_FRAME_BURST: f64 = 100.0;

/// A token bucket: when the next frame may go.
#[derive(Debug)]
struct Pace {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: tokio::time::Instant,
}

impl Pace {
    fn new(rate: f64, burst: f64) -> Pace {
        Pace {
            rate,
            burst,
            tokens: burst,
            last: tokio::time::Instant::now(),
        }
    }

    fn refill(&mut self, now: tokio::time::Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    fn ready_at(&mut self, now: tokio::time::Instant) -> tokio::time::Instant {
        self.refill(now);
        if self.tokens >= 1.0 {
            now
        } else {
            now + Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }

    /// `frames` went (a large file's chunks may overdraw: the next waits longer).
    fn spend(&mut self, frames: usize, now: tokio::time::Instant) {
        self.refill(now);
        self.tokens -= frames as f64;
    }
}

/// Command output waiting to go: gathered for [`OUTPUT_DELAY`] (or up to
/// [`OUTPUT_FRAME_BYTES`]) so a chatty command costs a few frames a second.
#[derive(Default)]
struct OutputBatch {
    chunks: Vec<OutputChunk>,
    bytes: usize,
    due: Option<tokio::time::Instant>,
}

const OUTPUT_DELAY: Duration = Duration::from_millis(100);
const OUTPUT_FRAME_BYTES: usize = 256 * 1024;

impl OutputBatch {
    /// Adds a chunk (joined to the last if it continues it); true when the batch is full.
    fn push(&mut self, chunk: OutputChunk) -> bool {
        self.bytes += chunk.data.len();
        match self.chunks.last_mut() {
            Some(last) if last.id == chunk.id && last.stream == chunk.stream => {
                last.data.push_str(&chunk.data)
            }
            _ => self.chunks.push(chunk),
        }
        self.due
            .get_or_insert_with(|| tokio::time::Instant::now() + OUTPUT_DELAY);
        self.bytes >= OUTPUT_FRAME_BYTES
    }

    async fn flush(&mut self, tx: &mut Sink) -> Result<(), AgentError> {
        self.due = None;
        self.bytes = 0;
        if self.chunks.is_empty() {
            return Ok(());
        }
        let chunks = std::mem::take(&mut self.chunks);
        send(tx, &AgentMessage::CommandOutput { chunks }).await
    }
}

async fn next_event(commands: &mut Option<exec::Channel>) -> Option<Event> {
    match commands {
        Some(c) => c.events.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(due: Option<tokio::time::Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

type Sink = futures_util::stream::SplitSink<HubSocket, Message>;
type Stream = futures_util::stream::SplitStream<HubSocket>;

/// Larger messages go as WebSocket fragments of this size (RFC 6455 5.4; the
/// hub's WebSocket joins them): the socket's write buffer keeps the capacity
/// of the largest frame it ever held, and a full sync of 2,000 watched files
/// is ~1 MB. So does the hub's read buffer, once per connected agent
/// (~18 KiB each with 16 KiB fragments): small fragments keep it small.
const FRAGMENT_BYTES: usize = 4 * 1024;

/// [`AgentMessage::SyncFull`] as it goes on the wire, borrowing the state.
#[derive(serde::Serialize)]
struct SyncFull<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    seq: u64,
    state: &'a NodeState,
}

async fn send(tx: &mut Sink, msg: &AgentMessage) -> Result<(), AgentError> {
    let text = serde_json::to_string(msg).expect("agent messages always serialize");
    send_text(tx, text).await
}

async fn send_text(tx: &mut Sink, text: String) -> Result<(), AgentError> {
    let sent = async {
        if text.len() <= FRAGMENT_BYTES {
            return tx.send(Message::text(text)).await;
        }
        for frame in fragments(text) {
            tx.feed(Message::Frame(frame)).await?;
            // One fragment in the buffer at a time.
            tx.flush().await?;
        }
        Ok(())
    };
    tokio::time::timeout(SEND_TIMEOUT, sent)
        .await
        .map_err(|_| AgentError::Timeout(SEND_TIMEOUT))??;
    Ok(())
}

/// A text message as WebSocket fragments of at most [`FRAGMENT_BYTES`]
/// (a text frame, continuations, the last one final). The payloads share
/// the text's bytes.
fn fragments(text: String) -> Vec<Frame> {
    let bytes = Bytes::from(text.into_bytes());
    let n = bytes.len().div_ceil(FRAGMENT_BYTES).max(1);
    (0..n)
        .map(|i| {
            let end = ((i + 1) * FRAGMENT_BYTES).min(bytes.len());
            let opcode = if i == 0 { Data::Text } else { Data::Continue };
            Frame::message(
                bytes.slice(i * FRAGMENT_BYTES..end),
                OpCode::Data(opcode),
                i + 1 == n,
            )
        })
        .collect()
}

/// The next hub message during the handshake; a hub error becomes [`AgentError::Refused`].
async fn recv(rx: &mut Stream) -> Result<HubMessage, AgentError> {
    loop {
        let frame = tokio::time::timeout(HANDSHAKE_TIMEOUT, rx.next())
            .await
            .map_err(|_| AgentError::Timeout(HANDSHAKE_TIMEOUT))?;
        match frame {
            None | Some(Ok(Message::Close(_))) => return Err(AgentError::Closed),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(Message::Text(text))) => {
                return match decode_hub_frame(text.as_bytes()) {
                    Ok(HubMessage::Error { code, message, .. }) => {
                        Err(AgentError::Refused { code, message })
                    }
                    Ok(msg) => Ok(msg),
                    Err(e) => Err(AgentError::Protocol(e.to_string())),
                };
            }
            Some(Ok(_)) => continue,
        }
    }
}

fn unexpected(msg: HubMessage) -> AgentError {
    AgentError::Protocol(format!("unexpected message during handshake: {msg:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_hub_urls_to_agent_endpoints() {
        let ep = endpoint("https://hub.lan:7780").unwrap();
        assert_eq!(ep.ws_url, "wss://hub.lan:7780/api/v1/agent/connect");
        assert!(ep.tls);
        assert_eq!((ep.host.as_str(), ep.port), ("hub.lan", 7780));

        let ep = endpoint("https://proxy.example/twinbay/").unwrap();
        assert_eq!(
            ep.ws_url,
            "wss://proxy.example/twinbay/api/v1/agent/connect"
        );
        assert_eq!(ep.port, 443);

        let ep = endpoint("ws://[::1]:7780").unwrap();
        assert_eq!(ep.host, "::1");
        assert!(!ep.tls);
        assert!(endpoint("http://localhost:7780").is_ok());
    }

    type Agent = (
        WebSocketStream<tokio::net::TcpStream>,
        CancellationToken,
        tokio::task::JoinHandle<Result<(), AgentError>>,
    );

    /// A hub of one test: an agent with `state` connected and welcomed.
    async fn connected_agent(rx: watch::Receiver<NodeState>, reader: Option<FileReader>) -> Agent {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let join = twinbay_proto::join::JoinString {
            hub: format!("ws://{addr}"),
            token: "t".into(),
            fp: String::new(),
            update_keys: Vec::new(),
            more_hubs: Vec::new(),
        };
        let identity = Identity::simulated(ed25519_dalek::SigningKey::from_bytes(&[3; 32]), &join);
        let cancel = CancellationToken::new();
        let agent = tokio::spawn(run(
            identity,
            rx,
            Arc::new(SampleBuffer::new(16)),
            None,
            reader,
            cancel.clone(),
        ));
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        ws.send(to_agent(&HubMessage::Challenge {
            protocol: PROTOCOL_VERSION,
            hub_version: "test".into(),
            nonce: "n".into(),
        }))
        .await
        .unwrap();
        let _hello = ws.next().await.unwrap().unwrap();
        ws.send(to_agent(&HubMessage::Welcome {
            node_id: "node".into(),
            heartbeat_secs: 30,
        }))
        .await
        .unwrap();
        (ws, cancel, agent)
    }

    fn to_agent(m: &HubMessage) -> Message {
        Message::text(serde_json::to_string(m).unwrap())
    }

    /// A hub of one test: handshake, then `need_files`; returns the chunks
    /// the agent sent until it went quiet.
    async fn ask_for_files(
        state: NodeState,
        key: FileKey,
        wanted: Vec<NeededFile>,
    ) -> Vec<FileChunk> {
        let reader = FileReader {
            key,
            content_cap: files::DEFAULT_CONTENT_CAP,
            generation: None,
        };
        let (_tx, rx) = watch::channel(state);
        let (mut ws, cancel, agent) = connected_agent(rx, Some(reader)).await;
        ws.send(to_agent(&HubMessage::NeedFiles { files: wanted }))
            .await
            .unwrap();
        let mut chunks = Vec::new();
        while let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(500), ws.next()).await
        {
            let msg: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
            if msg["type"] == "file_chunk" {
                let chunk: FileChunk = serde_json::from_value(msg).unwrap();
                chunk.validate().unwrap();
                chunks.push(chunk);
            }
        }
        cancel.cancel();
        let _ = agent.await;
        chunks
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sends_redacted_content_of_watched_files_only() {
        use crate::sources::files::{Origin, scan};
        let dir = std::env::temp_dir().join(format!("twinbay-link-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = FileKey::from_bytes([5; 32]);
        let big = dir.join("big.conf");
        let text = format!("API_TOKEN=abc\n{}é\n", "x".repeat(FILE_CHUNK_BYTES));
        std::fs::write(&big, &text).unwrap();
        let unwatched = dir.join("other.conf");
        std::fs::write(&unwatched, "not for the hub\n").unwrap();
        let file = scan::scan(&big, Origin::Watch, files::DEFAULT_CONTENT_CAP, &key, false).file;
        let sha = file.sha256.clone().unwrap();
        let mut state = NodeState::default();
        state.files.insert(file.path.clone(), file);
        let plain_sha = |p: &std::path::Path| {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
        };
        let wanted = vec![
            NeededFile {
                path: unwatched.to_str().unwrap().into(),
                sha256: plain_sha(&unwatched),
            },
            NeededFile {
                path: "/etc/passwd".into(),
                sha256: plain_sha(std::path::Path::new("/etc/passwd")),
            },
            NeededFile {
                path: big.to_str().unwrap().into(),
                sha256: "0".repeat(64),
            },
            NeededFile {
                path: big.to_str().unwrap().into(),
                sha256: sha.clone(),
            },
        ];
        let chunks = ask_for_files(state.clone(), key.clone(), wanted).await;
        assert_eq!(
            chunks.len(),
            2,
            "only the watched file, at the asked version"
        );
        assert!(
            chunks
                .iter()
                .all(|c| c.path == big.to_str().unwrap() && c.sha256 == sha)
        );
        let joined: String = chunks.iter().map(|c| c.data.as_str()).collect();
        assert_eq!(
            joined,
            format!(
                "API_TOKEN={}\n{}é\n",
                key.marker("abc"),
                "x".repeat(FILE_CHUNK_BYTES)
            )
        );
        assert_eq!(chunks[1].offset, chunks[0].data.len() as u64);
        assert_eq!(chunks[0].total, joined.len() as u64);

        // Changed since: nothing (its new version comes through the diff).
        std::fs::write(&big, "API_TOKEN=new\n").unwrap();
        let wanted = vec![NeededFile {
            path: big.to_str().unwrap().into(),
            sha256: sha,
        }];
        assert!(ask_for_files(state, key, wanted).await.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn large_messages_go_as_fragments_of_the_same_text() {
        let text = format!("{{\"x\":\"{}é\"}}", "a".repeat(3 * FRAGMENT_BYTES));
        let frames = fragments(text.clone());
        assert_eq!(frames.len(), 4);
        let mut joined = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let h = f.header();
            assert!(f.payload().len() <= FRAGMENT_BYTES);
            assert_eq!(h.is_final, i == 3, "only the last one is final");
            let want = if i == 0 { Data::Text } else { Data::Continue };
            assert_eq!(h.opcode, OpCode::Data(want));
            joined.extend_from_slice(f.payload());
        }
        assert_eq!(joined, text.as_bytes());
        assert_eq!(fragments(String::new()).len(), 1);
    }

    /// A full sync far larger than one fragment arrives at a WebSocket
    /// server as one message, whole; later changes come as diffs of only
    /// what changed since the last one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_full_sync_arrives_whole_and_then_only_diffs() {
        use twinbay_proto::diff::Change;
        use twinbay_proto::message::AgentMessage;
        use twinbay_proto::model::WatchedFile;
        let mut state = NodeState::default();
        for i in 0..2_000 {
            let path = format!("/etc/footprint/site-{i}.conf");
            let file = WatchedFile {
                path: path.clone(),
                sha256: Some(format!("{i:064x}")),
                origin: "watch".into(),
                ..Default::default()
            };
            state.files.insert(path, file);
        }
        let (tx, rx) = watch::channel(state.clone());
        let (mut ws, cancel, agent) = connected_agent(rx, None).await;
        let mut next = async || loop {
            let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .expect("the agent sends")
                .unwrap()
                .unwrap();
            if let Message::Text(t) = frame {
                match serde_json::from_str::<AgentMessage>(t.as_str()).unwrap() {
                    AgentMessage::Metrics { .. } | AgentMessage::Heartbeat { .. } => {}
                    msg => return (t.len(), msg),
                }
            }
        };
        let (len, full) = next().await;
        assert!(len > 10 * FRAGMENT_BYTES, "{len} bytes");
        let AgentMessage::SyncFull { seq: 1, state: got } = full else {
            panic!("{full:?}")
        };
        assert_eq!(*got, state);

        let edit = |n: u32| {
            move |s: &mut NodeState| {
                let f = s.files.get_mut("/etc/footprint/site-7.conf").unwrap();
                f.sha256 = Some(format!("{n:064}"));
            }
        };
        let keys = |msg: AgentMessage| match msg {
            AgentMessage::SyncDiff { seq, changes } => {
                let keys: Vec<String> = changes
                    .into_iter()
                    .map(|c| match c {
                        Change::Upsert { key, .. } | Change::Remove { key, .. } => key,
                        Change::Host { .. } => "host".into(),
                    })
                    .collect();
                (seq, keys)
            }
            other => panic!("{other:?}"),
        };
        tx.send_modify(|s| {
            edit(1)(s);
            s.files.remove("/etc/footprint/site-9.conf");
        });
        let (seq, first) = keys(next().await.1);
        assert_eq!(seq, 2);
        assert_eq!(
            first,
            ["/etc/footprint/site-9.conf", "/etc/footprint/site-7.conf"]
        );
        // Only the new edit: what was sent before is not sent again.
        tx.send_modify(edit(2));
        let (seq, second) = keys(next().await.1);
        assert_eq!(seq, 3);
        assert_eq!(second, ["/etc/footprint/site-7.conf"]);
        cancel.cancel();
        let _ = agent.await;
    }

    #[test]
    fn file_content_keeps_within_the_hubs_frame_budget() {
        let t0 = tokio::time::Instant::now();
        let mut pace = Pace::new(FILE_FRAMES_PER_SEC, FILE_FRAME_BURST);
        pace.last = t0;
        // Two thousand one-frame files, each sent as soon as allowed.
        let mut at = t0;
        let mut sent = Vec::new();
        for _ in 0..2_000 {
            at = pace.ready_at(at);
            pace.spend(1, at);
            sent.push(at);
        }
        // The hub's bucket (20 a second, bursts of 200) never runs dry even
        // with a diff, a sample batch and a heartbeat each second besides.
        let (rate, burst) = (20.0, 200.0);
        let mut tokens: f64 = burst;
        let mut last = t0;
        let mut others = t0;
        for at in sent {
            while others <= at {
                tokens = (tokens + (others - last).as_secs_f64() * rate).min(burst) - 3.0;
                last = others;
                others += Duration::from_secs(1);
            }
            tokens = (tokens + (at - last).as_secs_f64() * rate).min(burst) - 1.0;
            last = at;
            assert!(tokens >= 0.0, "dropped at {:?}", at - t0);
        }
        let took = (at - t0).as_secs_f64();
        let expected = (2_000.0 - FILE_FRAME_BURST) / FILE_FRAMES_PER_SEC;
        assert!((took - expected).abs() < 1.0, "{took} s");
        // A large file's chunks overdraw: the next one waits for them.
        let mut pace = Pace::new(FILE_FRAMES_PER_SEC, 1.0);
        pace.last = t0;
        pace.spend(6, t0);
        let wait = pace.ready_at(t0) - t0;
        assert!(
            (wait.as_secs_f64() - 6.0 / FILE_FRAMES_PER_SEC).abs() < 1e-6,
            "{wait:?}"
        );
    }

    #[test]
    fn a_borrowed_full_sync_is_the_protocols() {
        let mut state = NodeState::default();
        state.host.hostname = "h".into();
        let file = twinbay_proto::model::WatchedFile {
            path: "/etc/a".into(),
            ..Default::default()
        };
        state.files.insert(file.path.clone(), file);
        let borrowed = serde_json::to_value(SyncFull {
            kind: "sync_full",
            seq: 7,
            state: &state,
        })
        .unwrap();
        let owned = serde_json::to_value(AgentMessage::SyncFull {
            seq: 7,
            state: Box::new(state),
        })
        .unwrap();
        assert_eq!(borrowed, owned);
    }

    #[test]
    fn refuses_plain_websockets_off_loopback() {
        let err = endpoint("ws://192.0.2.7:7780").unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
        assert!(endpoint("ftp://hub").is_err());
        assert!(endpoint("not a url").is_err());
    }
}
