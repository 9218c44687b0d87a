//! The live stream for UIs and API clients: a snapshot, then every change.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use futures_util::SinkExt;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::auth::Auth;
use crate::HubState;
use crate::server::Admission;
use crate::store::Principal;
use crate::topology::feed::{ClientStep, Update, for_client};

/// A client that cannot take a batch of messages for this long is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Most events written before one flush.
const MAX_BATCH: usize = 256;
/// How often a stream checks that its credential still holds, besides
/// whenever one is revoked or changed on this hub.
const RECHECK: Duration = Duration::from_secs(60);
/// Close code: the session or token no longer holds; sign in again.
pub const CLOSE_ENDED: u16 = 4001;
/// Close code: the caller's role or host groups changed; reconnect for a
/// snapshot of what it may see now.
pub const CLOSE_CHANGED: u16 = 4002;
/// Whole-fleet snapshots built or in flight at once, hub-wide.
pub const SNAPSHOTS_AT_ONCE: usize = 2;

/// WebSocket: `{"type":"snapshot","nodes":[…]}` first, then `node`, `status`,
/// `diff`, `metrics`, `event`, `command` (a command started or ended) and
/// `alert` (an alert's change, `{"type":"alert","id":NODE,"alert":{…}}`)
/// messages as they happen. A client that sends `{"type":"watch",
/// "topology":true}` also gets the topology: `{"type":"topology",
/// "version",…,"nodes","edges"}` at once, then `topology_diff` messages
/// (`upsert_nodes`, `remove_nodes`, `upsert_edges`, `remove_edges`) as it
/// changes; `"topology":false` stops them. A client that falls behind
/// gets a fresh snapshot instead of the events it missed. When the caller's
/// session ends or token is revoked the stream closes with code 4001; when
/// its role or host groups change, with 4002 (reconnect).
#[utoipa::path(
    get,
    path = "/api/v1/stream",
    tag = "stream",
    responses((status = 101, description = "Switching to the event stream"), (status = 401, description = "Not authenticated"))
)]
pub async fn stream(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    admission: Option<Extension<Admission>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let credential = Credential::of(&headers);
    // The caller is authenticated: this long-lived connection no longer
    // counts against the caps on unproven ones.
    if let Some(Extension(admission)) = admission {
        admission.prove();
    }
    // Clients say next to nothing: a small read buffer. Writes are batched
    // into the default write buffer and flushed once per batch.
    ws.read_buffer_size(4096)
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| serve(hub, socket, who, credential))
}

/// What the stream was opened with, to check again later.
enum Credential {
    Token(String),
    Session(String),
    /// Cannot happen (the caller was authenticated); never rechecked.
    Unknown,
}

impl Credential {
    fn of(headers: &HeaderMap) -> Credential {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match (bearer, super::auth::session_cookie(headers)) {
            (Some(token), _) => Credential::Token(token.trim().to_string()),
            (None, Some(session)) => Credential::Session(session.to_string()),
            (None, None) => Credential::Unknown,
        }
    }

    /// Who the credential stands for now; `None` if it no longer holds.
    async fn principal(&self, hub: &HubState) -> Option<Option<Principal>> {
        let now = match self {
            Credential::Token(t) => hub.store.api_token_principal(t).await,
            Credential::Session(s) => hub.store.session_principal(s).await,
            Credential::Unknown => return None,
        };
        // A store error is no verdict: keep the stream, check again later.
        now.ok()
    }
}

/// Why the stream must close, if the credential changed: the close frame.
async fn recheck(hub: &HubState, who: &Principal, credential: &Credential) -> Option<CloseFrame> {
    match credential.principal(hub).await? {
        Some(now) if now == *who => None,
        Some(_) => Some(CloseFrame {
            code: CLOSE_CHANGED,
            reason: "your role or host groups changed; reconnect".into(),
        }),
        None => Some(CloseFrame {
            code: CLOSE_ENDED,
            reason: match credential {
                Credential::Token(_) => "the API token was revoked or has expired",
                _ => "your session ended; sign in again",
            }
            .into(),
        }),
    }
}

async fn serve(hub: Arc<HubState>, mut socket: WebSocket, who: Principal, credential: Credential) {
    let mut access = hub.store.access_changes();
    access.mark_unchanged();
    let mut recheck_timer =
        tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK);
    recheck_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let _client = hub.metrics.ui_client();
    // This client's turn to hold a whole-fleet snapshot, while it is built and sent.
    let Ok(permit) = hub.snapshots.acquire().await else {
        return;
    };
    let mut snapshot_turn = Some(permit);
    let (snapshot, mut events) = subscribe(&hub, &who);
    let mut batch = vec![snapshot];
    let mut topology: Option<Watch> = None;
    loop {
        match send_batch(&mut socket, &mut batch).await {
            Sent::Ok => {}
            Sent::Gone => return,
            Sent::Stalled => {
                tracing::info!("stream client stopped taking messages; dropped it");
                hub.metrics.ui_dropped.inc();
                return;
            }
        }
        // The snapshot is out: another client may have its turn.
        drop(snapshot_turn.take());
        tokio::select! {
            _ = hub.shutdown.cancelled() => {
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
            changed = access.changed() => {
                if changed.is_err() {
                    // The store is gone: the hub is stopping.
                    return;
                }
                if let Some(frame) = recheck(&hub, &who, &credential).await {
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    return;
                }
            }
            _ = recheck_timer.tick() => {
                if let Some(frame) = recheck(&hub, &who, &credential).await {
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    return;
                }
            }
            event = events.recv() => {
                let mut lagged = None;
                match event {
                    Ok(text) if visible(&hub, &who, &text) => batch.push(text),
                    Ok(_) => {}
                    Err(RecvError::Lagged(missed)) => lagged = Some(missed),
                    Err(RecvError::Closed) => return,
                }
                // Take what else is waiting: a busy fleet costs one flush per
                // batch, not one per event.
                while lagged.is_none() && batch.len() < MAX_BATCH {
                    match events.try_recv() {
                        Ok(text) if visible(&hub, &who, &text) => batch.push(text),
                        Ok(_) => {}
                        Err(TryRecvError::Lagged(missed)) => lagged = Some(missed),
                        Err(_) => break,
                    }
                }
                if let Some(missed) = lagged {
                    // Fell behind: what is queued is stale; a fresh snapshot
                    // replaces it, once it is this client's turn to get one.
                    batch.clear();
                    let permit = tokio::select! {
                        p = hub.snapshots.acquire() => match p {
                            Ok(p) => p,
                            Err(_) => return,
                        },
                        _ = hub.shutdown.cancelled() => return,
                    };
                    snapshot_turn = Some(permit);
                    batch.push(resync(&hub, &who, &mut events, missed));
                }
            }
            update = next_update(&mut topology) => {
                let Some(watch) = topology.as_mut() else { continue };
                match update {
                    Ok(update) if update.version <= watch.version => {}
                    Ok(update) => {
                        match for_client(&update, watch.known.as_mut(), |id| sees(&hub, &who, id)) {
                            ClientStep::Send(text) => batch.push(text),
                            ClientStep::Nothing => {}
                            ClientStep::Resync => batch.push(watch.resync(&hub, &who)),
                        }
                        watch.version = watch.version.max(update.version);
                    }
                    Err(RecvError::Lagged(_)) => batch.push(watch.resync(&hub, &who)),
                    Err(RecvError::Closed) => topology = None,
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Text(text))) => {
                    if let Some(on) = asks_topology(&text) {
                        topology = on.then(|| {
                            let (json, watch) = Watch::start(&hub, &who);
                            batch.push(json);
                            watch
                        });
                    }
                }
                Some(Ok(_)) => {}
            },
        }
    }
}

/// A client's watch on the topology: its updates, the last version it
/// was sent, and (when limited to host groups) which hosts it saw.
struct Watch {
    updates: broadcast::Receiver<Arc<Update>>,
    version: u64,
    known: Option<std::collections::HashMap<String, bool>>,
}

impl Watch {
    fn start(hub: &HubState, who: &Principal) -> (Utf8Bytes, Watch) {
        let (json, known, updates) = hub.topology.watch(hub, |id| sees(hub, who, id));
        let watch = Watch {
            updates,
            version: version_of(&json),
            known: who.groups.is_some().then_some(known),
        };
        (json, watch)
    }

    /// The whole graph again (after falling behind, or a change of view).
    fn resync(&mut self, hub: &HubState, who: &Principal) -> Utf8Bytes {
        let (json, known) = hub.topology.resend(|id| sees(hub, who, id));
        self.version = version_of(&json);
        if self.known.is_some() {
            self.known = Some(known);
        }
        json
    }
}

/// The version a `topology` message carries.
fn version_of(json: &Utf8Bytes) -> u64 {
    #[derive(serde::Deserialize)]
    struct V {
        version: u64,
    }
    serde_json::from_str::<V>(json.as_str()).map_or(0, |v| v.version)
}

async fn next_update(watch: &mut Option<Watch>) -> Result<Arc<Update>, RecvError> {
    match watch {
        Some(w) => w.updates.recv().await,
        None => std::future::pending().await,
    }
}

/// `Some(on)` when a client's message is `{"type":"watch","topology":on}`;
/// anything else a client says is ignored.
fn asks_topology(text: &str) -> Option<bool> {
    #[derive(serde::Deserialize)]
    struct Ask<'a> {
        r#type: &'a str,
        topology: Option<bool>,
    }
    let ask: Ask = serde_json::from_str(text).ok()?;
    (ask.r#type == "watch").then_some(ask.topology).flatten()
}

/// Whether `who` may see host `id`.
fn sees(hub: &HubState, who: &Principal, id: &str) -> bool {
    who.groups.is_none() || hub.twin.check(id, |n| who.sees(&n.state.host.labels))
}

/// A fresh snapshot for a client that missed `missed` events, and a new
/// subscription from that snapshot on.
fn resync(
    hub: &HubState,
    who: &Principal,
    events: &mut broadcast::Receiver<Utf8Bytes>,
    missed: u64,
) -> Utf8Bytes {
    tracing::debug!(missed, "stream client fell behind; resyncing it");
    hub.metrics.ui_resyncs.inc();
    let (snapshot, fresh) = subscribe(hub, who);
    *events = fresh;
    snapshot
}

/// A snapshot of what `who` may see, and the subscription from it on.
fn subscribe(hub: &HubState, who: &Principal) -> (Utf8Bytes, broadcast::Receiver<Utf8Bytes>) {
    match who.groups {
        None => hub.twin.subscribe(),
        Some(_) => hub.twin.subscribe_where(|n| who.sees(&n.state.host.labels)),
    }
}

/// The node an event is about: `id`, `node.id`, `event.node_id` or
/// `command.node_id`.
#[derive(serde::Deserialize)]
struct About {
    id: Option<String>,
    node: Option<AboutNode>,
    event: Option<AboutEvent>,
    command: Option<AboutEvent>,
}

#[derive(serde::Deserialize)]
struct AboutNode {
    id: String,
}

#[derive(serde::Deserialize)]
struct AboutEvent {
    node_id: String,
}

/// Whether a caller limited to host groups may see this event (everyone
/// else sees everything, without the event being looked at).
fn visible(hub: &HubState, who: &Principal, text: &Utf8Bytes) -> bool {
    if who.groups.is_none() {
        return true;
    }
    let Ok(about) = serde_json::from_str::<About>(text.as_str()) else {
        return false;
    };
    let id = about
        .id
        .or(about.node.map(|n| n.id))
        .or(about.event.map(|e| e.node_id))
        .or(about.command.map(|c| c.node_id));
    id.is_some_and(|id| hub.twin.check(&id, |n| who.sees(&n.state.host.labels)))
}

enum Sent {
    Ok,
    /// The client went away.
    Gone,
    /// The client took nothing for [`SEND_TIMEOUT`].
    Stalled,
}

/// Writes and flushes `batch` (emptying it) within [`SEND_TIMEOUT`].
async fn send_batch(socket: &mut WebSocket, batch: &mut Vec<Utf8Bytes>) -> Sent {
    let write = async {
        for text in batch.drain(..) {
            socket.feed(Message::Text(text)).await?;
        }
        socket.flush().await
    };
    match tokio::time::timeout(SEND_TIMEOUT, write).await {
        Ok(Ok(())) => Sent::Ok,
        Ok(Err(_)) => Sent::Gone,
        Err(_) => Sent::Stalled,
    }
}
