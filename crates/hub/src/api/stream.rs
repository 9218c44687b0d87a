//! The live stream for UIs and API clients: a snapshot, then every change.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::SinkExt;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::auth::Auth;
use crate::HubState;
use crate::server::Admission;
use crate::store::Principal;

/// A client that cannot take a batch of messages for this long is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Most events written before one flush.
const MAX_BATCH: usize = 256;
/// Whole-fleet snapshots built or in flight at once, hub-wide.
pub const SNAPSHOTS_AT_ONCE: usize = 2;

/// WebSocket: `{"type":"snapshot","nodes":[…]}` first, then `node`, `status`,
/// `diff` and `metrics` events as they happen. A client that falls behind
/// gets a fresh snapshot instead of the events it missed.
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
    ws: WebSocketUpgrade,
) -> Response {
    // The caller is authenticated: this long-lived connection no longer
    // counts against the caps on unproven ones.
    if let Some(Extension(admission)) = admission {
        admission.prove();
    }
    // Clients say next to nothing: a small read buffer. Writes are batched
    // into the default write buffer and flushed once per batch.
    ws.read_buffer_size(4096)
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| serve(hub, socket, who))
}

async fn serve(hub: Arc<HubState>, mut socket: WebSocket, who: Principal) {
    let _client = hub.metrics.ui_client();
    // This client's turn to hold a whole-fleet snapshot, while it is built and sent.
    let Ok(permit) = hub.snapshots.acquire().await else {
        return;
    };
    let mut snapshot_turn = Some(permit);
    let (snapshot, mut events) = subscribe(&hub, &who);
    let mut batch = vec![snapshot];
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
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
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

/// The node an event is about: `id`, `node.id` or `event.node_id`.
#[derive(serde::Deserialize)]
struct About {
    id: Option<String>,
    node: Option<AboutNode>,
    event: Option<AboutEvent>,
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
        .or(about.event.map(|e| e.node_id));
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
