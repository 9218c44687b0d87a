//! The live stream for UIs and API clients: a snapshot, then every change
//! (the full view), or every host in one line and full detail only of what
//! the client watches (the summary view, `summaries.rs` and `watch.rs`).

pub mod deflate;
pub mod projections;
pub mod shared;
pub mod summaries;
pub mod watch;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
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
use crate::twin::view::{collection_event, collection_part, node_event};
use deflate::frame;
use shared::Snapshot;
use summaries::Batch;
use watch::{Ask, Pass, Watching};

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

/// WebSocket. The full view (the default): `{"type":"snapshot","nodes":[…]}`
/// first, then `node`, `status`, `diff`, `metrics`, `event`, `command` (a
/// command started or ended), `rollout` and `alert` (an alert's change,
/// `{"type":"alert","id":NODE,"alert":{…}}`) messages as they happen. A
/// client that falls behind gets a fresh snapshot instead of the events it
/// missed.
///
/// `?view=summary` (what the web UI uses; sized for 10,000 hosts): every
/// host in one line, `{"type":"summaries","snapshot":true,"nodes":[{"id",
/// "hostname","connected","agent_version","simulated","os","labels","policy",
/// "containers","containers_running","containers_failing","units",
/// "units_failed","ports","routes","routes_broken","sources_down",
/// "attention","last_seen","resources":{"ts_ms","cpu_pct","load1",
/// "mem_used","mem_total","uptime_secs","net_bps","disk_pct","temp_c",
/// "uplink_bps","uplink_util"}}],"pulses":[]}`; then, at most once a
/// second, `summaries` messages with `"snapshot":false`: in `nodes` the
/// hosts whose shape changed (connected, counts, what fails), in `pulses`
/// `{"id","last_seen","resources"}` of hosts whose numbers alone changed
/// (each host at most once a second, and 1,000 pulses a second over the
/// fleet: one per host every 10 s at 10,000 hosts). `event`, `command`, `rollout` and
/// `alert` messages come as in the full view. Full detail only on request:
/// `{"type":"watch","node":ID}` sends `{"type":"node","node":{…}}` (the
/// whole twin, as `GET /api/v1/nodes/{id}`) and then that host's `diff`,
/// `metrics` and `status` messages, until `{"type":"unwatch","node":ID}`
/// (64 hosts at most at once); `{"type":"watch","collection":C}` (C one of
/// `containers`, `units`, `ports`, `routes`) sends `{"type":"collection",
/// "collection":C,"snapshot":true,"nodes":[{"id","hostname","seq","policy",
/// "items":{KEY:ITEM}}]}` of every host with such items, then `diff`
/// messages holding only the changes to the watched collections, `status`
/// messages, and a `collection` message with `"snapshot":false` for a host
/// that synced anew, until `{"type":"unwatch","collection":C}`. A `diff`
/// whose `seq` is not above the `seq` a client last got for that host is
/// one it already has.
///
/// In both views, `{"type":"watch","topology":true}` also sends the
/// topology: `{"type":"topology","version",…,"nodes","edges"}` at once,
/// then `topology_diff` messages (`upsert_nodes`, `remove_nodes`,
/// `upsert_edges`, `remove_edges`) as it changes; `"topology":false` stops
/// them. `?compress=deflate` sends every message of 4 KiB or more as a
/// binary frame holding the JSON in zlib format (a browser inflates it
/// with `DecompressionStream("deflate")`). When the caller's session ends
/// or token is revoked the stream closes with code 4001; when its role or
/// host groups change, with 4002 (reconnect).
#[utoipa::path(
    get,
    path = "/api/v1/stream",
    tag = "stream",
    params(StreamQuery),
    responses(
        (status = 101, description = "Switching to the event stream"),
        (status = 400, description = "An unknown `view` or `compress`", body = super::error::ErrorBody),
        (status = 401, description = "Not authenticated"),
    )
)]
pub async fn stream(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Query(query): Query<StreamQuery>,
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
        .on_upgrade(move |socket| serve(hub, socket, who, credential, query))
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// `full` (the default): every host's whole twin and every change;
    /// `summary`: every host in one line, full detail only of what the
    /// client watches.
    view: Option<StreamView>,
    /// `deflate`: large messages as zlib-compressed binary frames.
    compress: Option<StreamCompress>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum StreamView {
    Full,
    Summary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum StreamCompress {
    Deflate,
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

/// What a summary-view client holds besides the full view's state.
struct Summary {
    batches: broadcast::Receiver<Arc<Batch>>,
    watching: Watching,
}

async fn serve(
    hub: Arc<HubState>,
    mut socket: WebSocket,
    who: Principal,
    credential: Credential,
    query: StreamQuery,
) {
    let compress = query.compress == Some(StreamCompress::Deflate);
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
    // A moment after `events` began: a shared snapshot begun later holds
    // every change the client was not sent.
    let mut since = Instant::now();
    let (first, mut events, mut summary) = match query.view {
        Some(StreamView::Summary) => {
            let events = hub.twin.stream().subscribe();
            since = Instant::now();
            let (snapshot, batches) = subscribe_summaries(&hub, &who, compress).await;
            let summary = Summary {
                batches,
                watching: Watching::default(),
            };
            (snapshot, events, Some(summary))
        }
        _ => {
            let (snapshot, events) = subscribe(&hub, &who, compress).await;
            (snapshot, events, None)
        }
    };
    let mut batch = vec![first];
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
                let mut texts = Vec::new();
                let mut lagged = None;
                match event {
                    Ok(text) => texts.push(text),
                    Err(RecvError::Lagged(missed)) => lagged = Some(missed),
                    Err(RecvError::Closed) => return,
                }
                // Take what else is waiting: a busy fleet costs one flush per
                // batch, not one per event.
                while lagged.is_none() && texts.len() < MAX_BATCH {
                    match events.try_recv() {
                        Ok(text) => texts.push(text),
                        Err(TryRecvError::Lagged(missed)) => lagged = Some(missed),
                        Err(_) => break,
                    }
                }
                for text in texts {
                    match &summary {
                        None if visible(&hub, &who, &text) => batch.push(frame(text, compress)),
                        None => {}
                        Some(s) => {
                            // Most events are about hosts nobody here
                            // watches: a glance drops them.
                            let pass = s.watching.pass(text.as_str());
                            if pass == Pass::Drop || !visible(&hub, &who, &text) {
                                continue;
                            }
                            for text in for_summary(&hub, &s.watching, pass, text) {
                                batch.push(frame(text, compress));
                            }
                        }
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
                    tracing::debug!(missed, "stream client fell behind; resyncing it");
                    hub.metrics.ui_resyncs.inc();
                    match &mut summary {
                        None => {
                            let (snapshot, fresh) = subscribe(&hub, &who, compress).await;
                            events = fresh;
                            batch.push(snapshot);
                        }
                        Some(s) => {
                            // Summaries come their own way; only what the
                            // client watches in full is sent again.
                            events = hub.twin.stream().subscribe();
                            since = Instant::now();
                            let (snapshot, fresh) =
                                subscribe_summaries(&hub, &who, compress).await;
                            s.batches = fresh;
                            batch.push(snapshot);
                            batch.extend(watched_again(&hub, &who, &s.watching, since, compress));
                        }
                    }
                }
            }
            news = next_batch(&mut summary) => {
                let Some(s) = summary.as_mut() else { continue };
                match news {
                    Ok(b) if who.groups.is_none() => batch.push(b.whole.frame(compress)),
                    Ok(b) => {
                        if let Some(part) = b.part(|id| sees(&hub, &who, id)) {
                            batch.push(frame(part, compress));
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        let (snapshot, fresh) = subscribe_summaries(&hub, &who, compress).await;
                        s.batches = fresh;
                        batch.push(snapshot);
                    }
                    Err(RecvError::Closed) => return,
                }
            }
            update = next_update(&mut topology) => {
                let Some(watch) = topology.as_mut() else { continue };
                match update {
                    Ok(update) if update.version <= watch.version => {}
                    Ok(update) => {
                        match for_client(&update, watch.known.as_mut(), |id| sees(&hub, &who, id)) {
                            ClientStep::Send(text) => batch.push(frame(text, compress)),
                            ClientStep::Nothing => {}
                            ClientStep::Resync => batch.push(frame(watch.resync(&hub, &who), compress)),
                        }
                        watch.version = watch.version.max(update.version);
                    }
                    Err(RecvError::Lagged(_)) => batch.push(frame(watch.resync(&hub, &who), compress)),
                    Err(RecvError::Closed) => topology = None,
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Text(text))) => match watch::ask(&text) {
                    Some(Ask::Topology(on)) => {
                        topology = on.then(|| {
                            let (json, watch) = Watch::start(&hub, &who);
                            batch.push(frame(json, compress));
                            watch
                        });
                    }
                    Some(ask) => {
                        // Full detail is asked for on the summary view only:
                        // the full view has it all already.
                        let Some(s) = summary.as_mut() else { continue };
                        if s.watching.set(&ask) {
                            batch.extend(started(&hub, &who, &ask, since, compress));
                        }
                    }
                    None => {}
                },
                Some(Ok(_)) => {}
            },
        }
    }
}

/// The summaries `who` may see as a frame, and the subscription to later
/// batches. On a blocking thread: the first snapshot after a batch is the
/// whole fleet's summaries serialized and compressed (8.6 MB of JSON at
/// 10,000 hosts), which on an async worker held up the tasks behind it.
async fn subscribe_summaries(
    hub: &Arc<HubState>,
    who: &Principal,
    compress: bool,
) -> (Message, broadcast::Receiver<Arc<Batch>>) {
    let (hub, who) = (hub.clone(), who.clone());
    tokio::task::spawn_blocking(move || {
        if who.groups.is_none() {
            let (snapshot, rx) = hub.summaries.subscribe_everyone(&hub.twin);
            return (snapshot.frame(compress), rx);
        }
        let (text, rx) = hub
            .summaries
            .subscribe(&hub.twin, |s| who.sees(&s.shape.labels));
        (frame(text, compress), rx)
    })
    .await
    .expect("subscribing to the summaries does not panic")
}

async fn next_batch(summary: &mut Option<Summary>) -> Result<Arc<Batch>, RecvError> {
    match summary {
        Some(s) => s.batches.recv().await,
        None => std::future::pending().await,
    }
}

/// What a summary-view client gets of one of the twin's events.
fn for_summary(hub: &HubState, watching: &Watching, pass: Pass, text: Utf8Bytes) -> Vec<Utf8Bytes> {
    match pass {
        Pass::Send => vec![text],
        Pass::Drop => Vec::new(),
        Pass::Collections => hub
            .projections
            .diff_for(&text, &watching.collections)
            .into_iter()
            .collect(),
        Pass::Resend(id) => watching
            .collections
            .iter()
            .filter_map(|c| {
                let part = hub.twin.read(&id, |n| collection_part(n, *c, false))??;
                Some(collection_event(*c, false, &[part]))
            })
            .collect(),
    }
}

/// What a client gets when it starts watching: the host's twin, or the
/// collection of every host it may see.
fn started(
    hub: &HubState,
    who: &Principal,
    ask: &Ask,
    since: Instant,
    compress: bool,
) -> Vec<Message> {
    match ask {
        Ask::Node(id, true) if sees(hub, who, id) => hub
            .twin
            .read(id, node_event)
            .map(|text| frame(text, compress))
            .into_iter()
            .collect(),
        Ask::Collection(c, true) => {
            vec![collection_snapshot(hub, who, *c, since).frame(compress)]
        }
        _ => Vec::new(),
    }
}

/// Everything a client watches, again (after it fell behind).
fn watched_again(
    hub: &HubState,
    who: &Principal,
    watching: &Watching,
    since: Instant,
    compress: bool,
) -> Vec<Message> {
    let nodes = watching
        .nodes
        .iter()
        .filter(|id| sees(hub, who, id))
        .filter_map(|id| hub.twin.read(id, node_event))
        .map(|text| frame(text, compress));
    let collections = watching
        .collections
        .iter()
        .map(|c| collection_snapshot(hub, who, *c, since).frame(compress));
    nodes.chain(collections).collect()
}

/// Collection `c` of every host `who` may see, begun after `since`: shared
/// with other clients when `who` sees every host.
fn collection_snapshot(
    hub: &HubState,
    who: &Principal,
    c: twinbay_proto::diff::Collection,
    since: Instant,
) -> Arc<Snapshot> {
    let build = || {
        let mut parts = Vec::new();
        hub.twin.for_each(|n| {
            if who.sees(&n.state.host.labels)
                && let Some(part) = collection_part(n, c, true)
            {
                parts.push(part);
            }
        });
        collection_event(c, true, &parts)
    };
    match who.groups {
        None => hub.collections.get(c, since, build),
        Some(_) => Arc::new(Snapshot::new(build())),
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

/// Whether `who` may see host `id`.
fn sees(hub: &HubState, who: &Principal, id: &str) -> bool {
    who.groups.is_none() || hub.twin.check(id, |n| who.sees(&n.state.host.labels))
}

/// A snapshot of what `who` may see as a frame, and the subscription from
/// it on; on a blocking thread (the snapshot is the whole fleet's twin).
async fn subscribe(
    hub: &Arc<HubState>,
    who: &Principal,
    compress: bool,
) -> (Message, broadcast::Receiver<Utf8Bytes>) {
    let (hub, who) = (hub.clone(), who.clone());
    tokio::task::spawn_blocking(move || {
        let (text, rx) = match who.groups {
            None => hub.twin.subscribe(),
            Some(_) => hub.twin.subscribe_where(|n| who.sees(&n.state.host.labels)),
        };
        (frame(text, compress), rx)
    })
    .await
    .expect("subscribing to the twin does not panic")
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
async fn send_batch(socket: &mut WebSocket, batch: &mut Vec<Message>) -> Sent {
    let write = async {
        for message in batch.drain(..) {
            socket.feed(message).await?;
        }
        socket.flush().await
    };
    match tokio::time::timeout(SEND_TIMEOUT, write).await {
        Ok(Ok(())) => Sent::Ok,
        Ok(Err(_)) => Sent::Gone,
        Err(_) => Sent::Stalled,
    }
}
