//! The live stream for UIs and API clients: a snapshot, then every change.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use tokio::sync::broadcast::error::RecvError;

use super::auth::Auth;
use crate::HubState;

/// A client that cannot take a message for this long is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

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
    _auth: Auth,
    ws: WebSocketUpgrade,
) -> Response {
    ws.max_message_size(64 * 1024)
        .on_upgrade(move |socket| serve(hub, socket))
}

async fn serve(hub: Arc<HubState>, mut socket: WebSocket) {
    let _client = hub.metrics.ui_client();
    let (snapshot, mut events) = hub.twin.subscribe();
    if !send(&mut socket, snapshot).await {
        return;
    }
    loop {
        tokio::select! {
            _ = hub.shutdown.cancelled() => {
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
            event = events.recv() => {
                let text = match event {
                    Ok(text) => text,
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "stream client fell behind; resyncing it");
                        let (snapshot, fresh) = hub.twin.subscribe();
                        events = fresh;
                        snapshot
                    }
                    Err(RecvError::Closed) => return,
                };
                if !send(&mut socket, text).await {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn send(socket: &mut WebSocket, text: axum::extract::ws::Utf8Bytes) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text))).await,
        Ok(Ok(()))
    )
}
