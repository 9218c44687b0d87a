//! Resource subscriptions: an assistant subscribes to `twinbay://hosts/{id}`
//! and hears `notifications/resources/updated` when that host's twin
//! changes (a diff from its agent, a resync, a connect or disconnect; not
//! each metrics sample), at most once a second per host, then reads it
//! again. Both ways MCP has: `resources/subscribe` (the 2025 revisions, one
//! session) and `subscriptions/listen` (2026-07-28). Only hosts the caller
//! sees are watched; a session's subscriptions end with it.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::HubState;

/// Notifications for one host come at most this often.
pub const EVERY: Duration = Duration::from_secs(1);
/// Hosts one session (or one listen stream) may watch.
pub const MAX_WATCHED: usize = 100;

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(borrow)]
    id: Option<&'a str>,
    #[serde(borrow)]
    node: Option<NodeId<'a>>,
}

#[derive(Deserialize)]
struct NodeId<'a> {
    id: &'a str,
}

/// The host whose twin a stream event (`twin::view`) changes, if any. The
/// metrics samples, by far the most frequent events, serialize `type`
/// first and are skipped unparsed; the rest are few.
pub fn changed(event: &str) -> Option<&str> {
    if event.starts_with(r#"{"type":"metrics","#) {
        return None;
    }
    let head: Head = serde_json::from_str(event).ok()?;
    match head.kind {
        "diff" | "status" | "node" => head.id.or(head.node.map(|n| n.id)),
        _ => None,
    }
}

/// Sends `send(uri)` when a watched host changes (`hosts`: node id → URI),
/// at most once per [`EVERY`] per URI, until `stop` or `send` fails.
pub async fn run<F, Fut>(
    hub: Arc<HubState>,
    hosts: HashMap<String, String>,
    stop: CancellationToken,
    send: F,
) where
    F: Fn(String) -> Fut,
    Fut: Future<Output = bool>,
{
    let mut rx = hub.twin.stream().subscribe();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut due = BTreeSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            event = rx.recv() => match event {
                Ok(text) => {
                    if let Some(uri) = changed(text.as_str()).and_then(|id| hosts.get(id)) {
                        due.insert(uri.clone());
                    }
                }
                // Missed events may have changed any of them.
                Err(RecvError::Lagged(_)) => due.extend(hosts.values().cloned()),
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick(), if !due.is_empty() => {
                for uri in std::mem::take(&mut due) {
                    if !send(uri).await {
                        return;
                    }
                }
            }
        }
    }
}

/// A session's `resources/subscribe` watches, by URI; ended with the
/// session (when the last handle to it goes).
#[derive(Default)]
pub struct Watches {
    by_uri: Mutex<HashMap<String, CancellationToken>>,
}

impl Watches {
    /// Starts watching `uri` (replacing a watch of it); `None` past
    /// [`MAX_WATCHED`].
    pub fn start(&self, uri: &str, parent: &CancellationToken) -> Option<CancellationToken> {
        let mut by_uri = self.by_uri.lock().unwrap_or_else(|e| e.into_inner());
        if !by_uri.contains_key(uri) && by_uri.len() >= MAX_WATCHED {
            return None;
        }
        let stop = parent.child_token();
        if let Some(old) = by_uri.insert(uri.to_string(), stop.clone()) {
            old.cancel();
        }
        Some(stop)
    }

    /// Stops watching `uri`; whether it was watched.
    pub fn stop(&self, uri: &str) -> bool {
        let mut by_uri = self.by_uri.lock().unwrap_or_else(|e| e.into_inner());
        by_uri.remove(uri).inspect(|t| t.cancel()).is_some()
    }
}

impl Drop for Watches {
    fn drop(&mut self) {
        let by_uri = self.by_uri.get_mut().unwrap_or_else(|e| e.into_inner());
        for (_, stop) in by_uri.drain() {
            stop.cancel();
        }
    }
}
