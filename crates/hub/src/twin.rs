//! The fleet's twin, in memory, and the broadcaster that tells UI clients.
//!
//! Every mutation takes the write lock briefly (never across an await),
//! changes one node, serializes the resulting event once and sends it on a
//! bounded broadcast channel while still holding the lock. A subscriber takes
//! its snapshot under the read lock and subscribes in the same breath, so it
//! sees every change after its snapshot exactly once, in order. A subscriber
//! that falls behind loses events and must take a fresh snapshot.

pub mod routes;
pub mod size;
pub(crate) mod view;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use parking_lot::{RwLock, RwLockReadGuard};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use twinbay_proto::command::Policy;
use twinbay_proto::diff::{Change, Collection, Item, apply};
use twinbay_proto::model::{NodeState, Sample, StateError};

use crate::store::{NodeRecord, NodeWrite, now_ms};
use crate::timeline::{self, Event};
pub use view::{NodeSummary, NodeView};

/// Events a slow UI client may fall behind by before it is resynced.
const EVENT_BUFFER: usize = 4096;

/// One node's live twin.
#[derive(Debug, Clone)]
pub struct NodeTwin {
    pub id: String,
    pub connected: bool,
    pub last_seen: Option<i64>,
    pub agent_version: String,
    /// Enrolled by `twinbay sim`.
    pub simulated: bool,
    /// Watched without an agent: the hub collects its twin (`agentless/`).
    pub agentless: Option<Arc<Agentless>>,
    /// The agent's pinned ed25519 key (base64), checked at every handshake.
    pub public_key: String,
    /// The last applied sequence number of the current connection.
    pub seq: Option<u64>,
    pub state: NodeState,
    /// When `state` last changed (unix ms), for the journal.
    pub state_at: i64,
    pub resources: Option<Sample>,
    /// What the connected agent allows (commands); from its hello.
    pub policy: Option<Arc<Policy>>,
    /// The hub replica the agent is connected to, when it is another one:
    /// this twin mirrors what that replica publishes (`replicas/`), and
    /// leaves storing and alerting to it.
    pub owner: Option<Arc<str>>,
    conn: Option<Conn>,
}

impl NodeTwin {
    /// A disconnected node with an empty state.
    fn new(id: &str, simulated: bool, public_key: &str) -> NodeTwin {
        NodeTwin {
            id: id.into(),
            connected: false,
            last_seen: None,
            agent_version: String::new(),
            simulated,
            agentless: None,
            public_key: public_key.into(),
            seq: None,
            state: NodeState::default(),
            state_at: 0,
            resources: None,
            policy: None,
            owner: None,
            conn: None,
        }
    }

    /// A disconnected node with an empty state, for other modules' tests.
    #[cfg(test)]
    pub fn for_tests(id: &str) -> NodeTwin {
        NodeTwin::new(id, false, "")
    }
}

/// How the hub watches an agentless host, shown with the node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Agentless {
    /// Seconds between collections.
    pub interval_secs: u64,
    /// What an agent would report that a login shell cannot.
    pub without_agent: Vec<String>,
}

#[derive(Debug, Clone)]
struct Conn {
    id: u64,
    cancel: CancellationToken,
}

/// Why a diff cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("no full sync yet on this connection")]
    NoBaseline,
    #[error("sequence gap: expected {expected}, got {got}")]
    Gap { expected: u64, got: u64 },
    #[error("invalid state")]
    Invalid(#[from] StateError),
    #[error("this connection was replaced by a newer one")]
    Stale,
}

pub struct Twin {
    /// Boxed: the table keeps up to half its slots empty as it grows, and a
    /// node's twin is a kilobyte before any of its collections.
    nodes: RwLock<HashMap<String, Box<NodeTwin>>>,
    events: broadcast::Sender<Utf8Bytes>,
    /// Timeline events for the recorder (bounded; dropped when it falls behind).
    timeline: Option<crate::recorder::TimelineQueue>,
    /// Timeline events for alert rules (`alerts/events.rs`).
    alerts: Option<crate::alerts::events::Inbox>,
    /// Nodes whose state changed since the recorder last wrote them.
    dirty: Mutex<HashSet<String>>,
    /// Nodes of which only liveness (last seen, resources) changed: written
    /// less often, and without re-serializing their whole state.
    alive: Mutex<HashSet<String>>,
    /// Nodes changed in any way since the topology feed last looked, and
    /// its wake-up.
    topology: Mutex<HashSet<String>>,
    topology_changed: tokio::sync::Notify,
    next_conn: std::sync::atomic::AtomicU64,
    /// Heap bytes of the journal's heads (the recorder's), for `memory`.
    journal_heads: std::sync::atomic::AtomicU64,
}

impl Twin {
    /// A twin holding the stored nodes, all disconnected until their agents call.
    pub fn new(records: Vec<NodeRecord>) -> Twin {
        let nodes = records
            .into_iter()
            .map(|r| {
                let node = NodeTwin {
                    last_seen: r.last_seen,
                    agent_version: r.agent_version,
                    state: r.state,
                    resources: r.resources,
                    ..NodeTwin::new(&r.id, r.simulated, &r.public_key)
                };
                (r.id, Box::new(node))
            })
            .collect();
        Twin {
            nodes: RwLock::new(nodes),
            events: broadcast::channel(EVENT_BUFFER).0,
            timeline: None,
            alerts: None,
            dirty: Mutex::new(HashSet::new()),
            alive: Mutex::new(HashSet::new()),
            topology: Mutex::new(HashSet::new()),
            topology_changed: tokio::sync::Notify::new(),
            next_conn: 1.into(),
            journal_heads: 0.into(),
        }
    }

    /// The stream's sender, for other parts of the hub that announce on it.
    pub fn stream(&self) -> broadcast::Sender<Utf8Bytes> {
        self.events.clone()
    }

    /// Sends timeline events to `tx` (the recorder) from now on.
    pub fn with_timeline(mut self, queue: crate::recorder::TimelineQueue) -> Twin {
        self.timeline = Some(queue);
        self
    }

    /// Hands timeline events to alert rules too, from now on.
    pub fn with_alerts(mut self, inbox: crate::alerts::events::Inbox) -> Twin {
        self.alerts = Some(inbox);
        self
    }

    /// Broadcasts timeline events and queues them for storage.
    pub fn emit(&self, events: Vec<Event>) {
        for e in events {
            let _ = self.events.send(view::timeline_event(&e));
            if let Some(alerts) = &self.alerts {
                alerts.timeline(&e);
            }
            if let Some(queue) = &self.timeline {
                queue.push(e);
            }
        }
    }

    /// Marks `id` connected on a new connection, cancelling any older one.
    /// Returns the connection id and a token that fires when it is replaced.
    pub fn connect(
        &self,
        id: &str,
        agent_version: &str,
        policy: Option<Policy>,
    ) -> (u64, CancellationToken) {
        self.connect_as(id, agent_version, policy, None)
    }

    fn connect_as(
        &self,
        id: &str,
        agent_version: &str,
        policy: Option<Policy>,
        owner: Option<Arc<str>>,
    ) -> (u64, CancellationToken) {
        let policy = policy.map(Arc::new);
        let conn = Conn {
            id: self
                .next_conn
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            cancel: CancellationToken::new(),
        };
        let out = (conn.id, conn.cancel.clone());
        self.mutate(id, Write::Liveness, |node, timeline| {
            if let Some(old) = node.conn.replace(conn) {
                old.cancel.cancel();
            }
            node.owner = owner.clone();
            node.connected = true;
            node.seq = None;
            node.agent_version = agent_version.to_string();
            node.policy = policy.clone();
            node.last_seen = Some(now_ms());
            timeline.push(timeline::agent_event(
                &node.id,
                now_ms(),
                true,
                &node.state.host.hostname,
            ));
            Some(Announce::Text(view::status_event(node)))
        });
        out
    }

    /// Marks `id` connected to another replica (`owner`), whose link
    /// publishes its changes; a link of this hub to the same node is
    /// cancelled (the agent moved). Returns the mirror's connection id, for
    /// the changes that follow.
    pub fn connect_mirror(
        &self,
        id: &str,
        owner: &str,
        agent_version: &str,
        policy: Option<Policy>,
    ) -> u64 {
        self.connect_as(id, agent_version, policy, Some(owner.into()))
            .0
    }

    /// The nodes whose agents are connected to this replica, with what a
    /// mirror needs to catch up: version, policy, sequence and state.
    pub fn owned_links(&self) -> Vec<(String, String, Option<Policy>, u64, NodeState)> {
        let nodes = self.nodes.read();
        nodes
            .values()
            .filter(|n| n.connected && n.owner.is_none() && n.agentless.is_none())
            .filter_map(|n| {
                let seq = n.seq?;
                Some((
                    n.id.clone(),
                    n.agent_version.clone(),
                    n.policy.as_deref().cloned(),
                    seq,
                    n.state.clone(),
                ))
            })
            .collect()
    }

    /// Marks `id` disconnected, unless a newer connection took over;
    /// returns whether it did.
    pub fn disconnect(&self, id: &str, conn_id: u64) -> bool {
        let mut done = false;
        self.mutate(id, Write::Liveness, |node, timeline| {
            if node.conn.as_ref().map(|c| c.id) != Some(conn_id) {
                return None;
            }
            done = true;
            node.conn = None;
            node.connected = false;
            node.seq = None;
            // Said here, stored by the replica that held the link.
            timeline.push(timeline::agent_event(
                &node.id,
                now_ms(),
                false,
                &node.state.host.hostname,
            ));
            Some(Announce::Text(view::status_event(node)))
        });
        done
    }

    pub fn apply_full(
        &self,
        id: &str,
        conn_id: u64,
        seq: u64,
        state: NodeState,
    ) -> Result<(), ApplyError> {
        state.validate()?;
        let mut result = Ok(());
        self.mutate(id, Write::State, |node, timeline| {
            if node.conn.as_ref().map(|c| c.id) != Some(conn_id) {
                result = Err(ApplyError::Stale);
                return None;
            }
            // A node's first state is an inventory, not news; later full syncs
            // (reconnects) report what changed while the hub was not looking.
            if node.state != NodeState::default() {
                timeline.extend(timeline::from_states(
                    &node.id,
                    now_ms(),
                    &node.state,
                    &state,
                ));
            }
            node.state = state;
            node.seq = Some(seq);
            node.last_seen = Some(now_ms());
            Some(Announce::Text(view::node_event(node)))
        });
        result
    }

    pub fn apply_diff(
        &self,
        id: &str,
        conn_id: u64,
        seq: u64,
        changes: &[Change],
    ) -> Result<(), ApplyError> {
        let mut result = Ok(());
        // The top processes change with every sample: they are news for the
        // UI, but not worth rewriting the node's stored state for.
        let write = match changes.iter().all(|c| {
            matches!(
                c,
                Change::Upsert {
                    item: Item::Processes(_),
                    ..
                }
            ) || matches!(
                c,
                Change::Remove {
                    collection: Collection::Processes,
                    ..
                }
            )
        }) {
            true => Write::Liveness,
            false => Write::State,
        };
        self.mutate(id, write, |node, timeline| {
            result = (|| {
                if node.conn.as_ref().map(|c| c.id) != Some(conn_id) {
                    return Err(ApplyError::Stale);
                }
                let last = node.seq.ok_or(ApplyError::NoBaseline)?;
                if seq != last + 1 {
                    return Err(ApplyError::Gap {
                        expected: last + 1,
                        got: seq,
                    });
                }
                let events = timeline::from_changes(&node.id, now_ms(), &node.state, changes);
                apply(&mut node.state, changes)?;
                timeline.extend(events);
                node.seq = Some(seq);
                node.last_seen = Some(now_ms());
                Ok(())
            })();
            result
                .is_ok()
                .then(|| Announce::later(move || view::diff_event(id, seq, changes)))
        });
        result
    }

    /// Takes a batch of samples; the newest becomes the node's resources.
    pub fn record_samples(&self, id: &str, samples: &[Sample]) {
        let Some(latest) = samples.iter().max_by_key(|s| s.ts_ms) else {
            return;
        };
        self.mutate(id, Write::Liveness, |node, _timeline| {
            node.resources = Some(latest.clone());
            node.last_seen = Some(now_ms());
            Some(Announce::later(move || view::metrics_event(id, latest)))
        });
    }

    /// Notes that the node is alive without telling anyone.
    pub fn touch(&self, id: &str) {
        let mut nodes = self.nodes.write();
        if let Some(node) = nodes.get_mut(id) {
            node.last_seen = Some(now_ms());
        }
    }

    /// A snapshot event of the whole fleet and a subscription to every later change.
    pub fn subscribe(&self) -> (Utf8Bytes, broadcast::Receiver<Utf8Bytes>) {
        self.subscribe_where(|_| true)
    }

    pub fn summaries(&self) -> Vec<NodeSummary> {
        self.summaries_where(|_| true)
    }

    /// The summaries of the nodes `keep` accepts.
    pub fn summaries_where(&self, keep: impl Fn(&NodeTwin) -> bool) -> Vec<NodeSummary> {
        let nodes = self.nodes.read();
        let mut out: Vec<_> = nodes
            .values()
            .map(|n| &**n)
            .filter(|n| keep(n))
            .map(NodeSummary::of)
            .collect();
        out.sort_by(|a, b| a.hostname.cmp(&b.hostname).then_with(|| a.id.cmp(&b.id)));
        out
    }

    /// Whether node `id` exists and `visible` accepts it (under the read lock).
    pub fn check(&self, id: &str, visible: impl Fn(&NodeTwin) -> bool) -> bool {
        let nodes = self.nodes.read();
        nodes.get(id).is_some_and(|n| visible(n))
    }

    /// A snapshot of the nodes `keep` accepts and a subscription to every
    /// later change (the caller filters those).
    pub fn subscribe_where(
        &self,
        keep: impl Fn(&NodeTwin) -> bool,
    ) -> (Utf8Bytes, broadcast::Receiver<Utf8Bytes>) {
        let nodes = self.nodes.read();
        let rx = self.events.subscribe();
        (
            view::snapshot_event(nodes.values().map(|n| &**n).filter(|n| keep(n))),
            rx,
        )
    }

    /// `f` of node `id`, under the read lock.
    pub fn read<T>(&self, id: &str, f: impl FnOnce(&NodeTwin) -> T) -> Option<T> {
        let nodes = self.nodes.read();
        nodes.get(id).map(|n| f(n))
    }

    pub fn view(&self, id: &str) -> Option<NodeView> {
        let nodes = self.nodes.read();
        nodes.get(id).map(|n| NodeView::of(n))
    }

    /// The estimated heap bytes of every node's twin, by part (see
    /// [`size`]).
    pub fn sizes(&self) -> size::Sizes {
        let mut total = size::Sizes::default();
        self.for_each_sliced(|node| total.add(&size::node(&node.state, node.resources.as_ref())));
        if total.parts.is_empty() {
            total.add(&size::node(&NodeState::default(), None));
        }
        total
    }

    /// Notes the heap bytes of the journal's heads (the recorder does).
    pub fn set_journal_heads_bytes(&self, bytes: u64) {
        self.journal_heads
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn journal_heads_bytes(&self) -> u64 {
        self.journal_heads
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Calls `f` with every node under the read lock (for /metrics).
    pub fn for_each(&self, mut f: impl FnMut(&NodeTwin)) {
        let nodes = self.nodes.read();
        nodes.values().for_each(|n| f(n));
    }

    /// Calls `f` with every node, taking the read lock for [`SLICE`] nodes
    /// at a time: for walks of the whole fleet that need no single moment
    /// (alert rounds, the size estimate), so agents' writes get in between
    /// instead of waiting for all 10,000 nodes. A node added meanwhile may
    /// be missed, one removed is skipped.
    ///
    /// A slice is small (under a millisecond for the costliest walk, the
    /// size estimate's): agents' frames queue behind it, and every frame
    /// needs the lock, so a slice's length is what a frame may wait.
    pub fn for_each_sliced(&self, mut f: impl FnMut(&NodeTwin)) {
        const SLICE: usize = 32;
        let ids: Vec<String> = {
            let nodes = self.nodes.read();
            nodes.keys().cloned().collect()
        };
        for slice in ids.chunks(SLICE) {
            let nodes = self.nodes.read();
            slice
                .iter()
                .filter_map(|id| nodes.get(id))
                .for_each(|n| f(n));
            // Hand the lock to a waiting writer: released plainly, this hot
            // loop took it back before the woken writer ran, and agents'
            // frames waited for the whole walk (220 ms at 10,000 hosts).
            RwLockReadGuard::unlock_fair(nodes);
        }
    }

    /// The nodes whose state changed since the last call, ready to write;
    /// with `liveness`, also those of which only liveness changed (written
    /// without their state).
    pub fn take_dirty(&self, liveness: bool) -> Vec<NodeWrite> {
        self.writes(&self.take_dirty_ids(liveness))
    }

    /// Which nodes changed since the last call: `(id, with_state)`, the
    /// nodes whose state changed first; with `liveness`, also those of which
    /// only liveness changed. [`Twin::writes`] copies them, a slice at a
    /// time, so a flush after a reconnect storm (every node dirty) never
    /// holds a copy of the whole fleet, nor the read lock for all of it.
    pub fn take_dirty_ids(&self, liveness: bool) -> Vec<(String, bool)> {
        let alive = if liveness {
            self.take_alive_ids()
        } else {
            Vec::new()
        };
        self.take_changed_ids_with(alive)
    }

    /// The nodes whose state changed since the last call, with their state,
    /// then those of `alive` (of which only liveness changed) that are not
    /// among them: `(id, with_state)`, for [`Twin::writes`].
    pub fn take_changed_ids_with(
        &self,
        alive: impl IntoIterator<Item = String>,
    ) -> Vec<(String, bool)> {
        let changed = drain(&self.dirty);
        let changed_set: HashSet<&str> = changed.iter().map(String::as_str).collect();
        let alive: Vec<(String, bool)> = alive
            .into_iter()
            .filter(|id| !changed_set.contains(id.as_str()))
            .map(|id| (id, false))
            .collect();
        drop(changed_set);
        changed
            .into_iter()
            .map(|id| (id, true))
            .chain(alive)
            .collect()
    }

    /// The nodes of which only liveness (last seen, latest resources)
    /// changed since the last call.
    pub fn take_alive_ids(&self) -> Vec<String> {
        drain(&self.alive)
    }

    /// The writes for `ids` (from [`Twin::take_dirty_ids`]): copied under the
    /// read lock, serialized after it (agents keep applying changes
    /// meanwhile). A node that is gone is skipped.
    pub fn writes(&self, ids: &[(String, bool)]) -> Vec<NodeWrite> {
        type Copy = (NodeWrite, Option<(i64, NodeState)>, Option<Sample>);
        let copies: Vec<Copy> = {
            let nodes = self.nodes.read();
            ids.iter()
                .filter_map(|(id, with_state)| {
                    let n = nodes.get(id)?;
                    let write = NodeWrite {
                        id: n.id.clone(),
                        hostname: n.state.host.hostname.clone(),
                        agent_version: n.agent_version.clone(),
                        last_seen: n.last_seen.unwrap_or(0),
                        state: None,
                        resources: None,
                        journal: None,
                    };
                    Some((
                        write,
                        with_state.then(|| (n.state_at, n.state.clone())),
                        n.resources.clone(),
                    ))
                })
                .collect()
        };
        copies
            .into_iter()
            .map(|(mut write, state, resources)| {
                write.state = state
                    .as_ref()
                    .map(|(_, s)| serde_json::to_string(s).expect("states serialize"));
                write.journal = state;
                write.resources =
                    resources.map(|r| serde_json::to_string(&r).expect("samples serialize"));
                write
            })
            .collect()
    }

    /// Marks nodes for the recorder again (after a failed write).
    pub fn mark_dirty(&self, ids: impl IntoIterator<Item = String>) {
        self.dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(ids);
    }

    /// The key pinned for node `id`, if the twin knows the node.
    pub fn pinned_key(&self, id: &str) -> Option<String> {
        let nodes = self.nodes.read();
        nodes.get(id).map(|n| n.public_key.clone())
    }

    /// The nodes changed since the last call (for the topology feed).
    pub fn take_topology_changes(&self) -> HashSet<String> {
        std::mem::take(&mut *self.topology.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Resolves once a node changed since the last [`Twin::take_topology_changes`].
    pub async fn topology_changed(&self) {
        self.topology_changed.notified().await;
    }

    /// Adds a freshly enrolled node (disconnected until its session connects).
    pub fn ensure_node(&self, id: &str, simulated: bool, public_key: &str) {
        let mut nodes = self.nodes.write();
        nodes
            .entry(id.to_string())
            .or_insert_with(|| Box::new(NodeTwin::new(id, simulated, public_key)));
    }

    /// Marks node `id` agentless (or not, with `None`) and tells the UI.
    pub fn set_agentless(&self, id: &str, agentless: Option<Agentless>) {
        let agentless = agentless.map(Arc::new);
        self.mutate(id, Write::Liveness, |node, _timeline| {
            if node.agentless == agentless {
                return None;
            }
            node.agentless = agentless;
            Some(Announce::Text(view::node_event(node)))
        });
    }

    /// Runs `f` on node `id` under the write lock; then, with the lock
    /// released, broadcasts the event `f` announced, marks the node for the
    /// recorder, and broadcasts the timeline events `f` collected.
    fn mutate<'a>(
        &self,
        id: &str,
        write: Write,
        f: impl FnOnce(&mut NodeTwin, &mut Vec<Event>) -> Option<Announce<'a>>,
    ) {
        let mut nodes = self.nodes.write();
        let Some(node) = nodes.get_mut(id) else {
            return;
        };
        let mut timeline = Vec::new();
        let announce = f(node, &mut timeline);
        if announce.is_some()
            && let Write::State = write
        {
            node.state_at = now_ms();
        }
        // A mirrored node's changes are stored and alerted on by the replica
        // that holds its link; here they are only shown.
        let mirrored = node.owner.is_some();
        if mirrored && !node.connected {
            node.owner = None;
        }
        drop(nodes);
        if mirrored {
            if let Some(announce) = announce {
                let _ = self.events.send(announce.text());
            }
            for e in timeline {
                let _ = self.events.send(view::timeline_event(&e));
                // The replica that leads alerts on every node's events.
                if let Some(alerts) = &self.alerts {
                    alerts.timeline(&e);
                }
            }
            return;
        }
        if let Some(announce) = announce {
            // No subscribers is fine: nobody is watching.
            let _ = self.events.send(announce.text());
            let set = match write {
                Write::State => &self.dirty,
                Write::Liveness => &self.alive,
            };
            let mut set = set.lock().unwrap_or_else(|e| e.into_inner());
            if !set.contains(id) {
                set.insert(id.to_string());
            }
            drop(set);
            let mut topology = self.topology.lock().unwrap_or_else(|e| e.into_inner());
            if !topology.contains(id) {
                topology.insert(id.to_string());
                self.topology_changed.notify_one();
            }
        }
        self.emit(timeline);
    }
}

/// What a mutation tells the stream.
enum Announce<'a> {
    /// Written under the twin's lock: it needs the node.
    Text(Utf8Bytes),
    /// Written once the lock is released, from what the caller holds (a
    /// sample, a diff's changes): the frequent events of a big fleet do not
    /// keep every other reader and writer waiting while they are written.
    /// The node's own link is its only writer of these, so its events still
    /// go out in order.
    Later(Box<dyn FnOnce() -> Utf8Bytes + 'a>),
}

impl<'a> Announce<'a> {
    fn later(build: impl FnOnce() -> Utf8Bytes + 'a) -> Announce<'a> {
        Announce::Later(Box::new(build))
    }

    fn text(self) -> Utf8Bytes {
        match self {
            Announce::Text(text) => text,
            Announce::Later(build) => build(),
        }
    }
}

/// What a mutation changed, for the recorder.
#[derive(Debug, Clone, Copy)]
enum Write {
    /// The node's state: its whole JSON is written again.
    State,
    /// Only liveness: last seen, agent version, resources.
    Liveness,
}

#[cfg(test)]
mod tests;

fn drain(set: &Mutex<HashSet<String>>) -> Vec<String> {
    set.lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain()
        .collect()
}
