//! Topology diffs for the live stream: a client that watches the topology
//! gets the whole graph once, then only what changed, so the network map
//! never reads the graph again while it is open.
//!
//! The graph is kept in parts (the [`global`] part, and one
//! [`host_part`] per host, independent of each other): when the twin says
//! which nodes changed, only their parts are derived again and compared
//! with the last ones ([`diff`]). Changes are coalesced for
//! [`COALESCE`] and the work is done only while someone watches. One
//! update is derived and serialized for all clients; a client limited to
//! host groups gets the parts of the hosts it may see.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::diff::{GraphDiff, diff};
use super::{Graph, GraphEdge, GraphNode, HostInput, global, host_part};
use crate::HubState;
use crate::gateway::GatewayStatus;

/// How long changes gather before the parts are derived again.
pub const COALESCE: Duration = Duration::from_millis(250);
/// Gateways are polled, not pushed: how often their status is compared.
const GATEWAY_CHECK: Duration = Duration::from_secs(1);
/// Updates a slow client may fall behind by before it is sent the whole graph again.
const BUFFER: usize = 64;

/// One step of the graph: the parts that changed, each with its diff.
pub struct Update {
    pub version: u64,
    /// `None` for the global part, else the host's node id.
    pub parts: Vec<(Option<String>, GraphDiff)>,
    /// The whole update as the stream sends it to a client that sees every host.
    pub json: Utf8Bytes,
}

#[derive(Default)]
pub struct Feed {
    inner: Mutex<Inner>,
    tx: Option<broadcast::Sender<Arc<Update>>>,
}

#[derive(Default)]
struct Inner {
    /// Whether the parts are current (they are not kept while nobody watches).
    fresh: bool,
    version: u64,
    entry: String,
    global: Graph,
    hosts: BTreeMap<String, Graph>,
}

#[derive(Serialize)]
struct Full<'a> {
    r#type: &'static str,
    version: u64,
    nodes: Vec<&'a GraphNode>,
    edges: Vec<&'a GraphEdge>,
}

#[derive(Serialize)]
struct Step<'a> {
    r#type: &'static str,
    version: u64,
    #[serde(flatten)]
    diff: &'a GraphDiff,
}

impl Feed {
    pub fn new() -> Feed {
        Feed {
            inner: Mutex::default(),
            tx: Some(broadcast::channel(BUFFER).0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn watchers(&self) -> usize {
        self.tx
            .as_ref()
            .map_or(0, broadcast::Sender::receiver_count)
    }

    /// The whole graph of the hosts `sees` admits (as the stream's
    /// `topology` message) and a subscription to every later update.
    pub fn watch(
        &self,
        hub: &HubState,
        sees: impl Fn(&str) -> bool,
    ) -> (
        Utf8Bytes,
        HashMap<String, bool>,
        broadcast::Receiver<Arc<Update>>,
    ) {
        let mut inner = self.lock();
        if !inner.fresh {
            let statuses = hub.gateways.statuses();
            rebuild(&mut inner, hub, &statuses);
            inner.fresh = true;
        }
        let rx = self
            .tx
            .as_ref()
            .expect("a feed made by Feed::new")
            .subscribe();
        let (json, known) = full(&inner, sees);
        (json, known, rx)
    }

    /// Derives the parts of the hosts that changed (all of them after the
    /// gateways changed) and sends what differs.
    fn refresh(&self, hub: &HubState) {
        let changed = hub.twin.take_topology_changes();
        if self.watchers() == 0 {
            self.lock().fresh = false;
            return;
        }
        let statuses = hub.gateways.statuses();
        let (global_now, entry) = global(&statuses);
        let mut inner = self.lock();
        let mut parts = Vec::new();
        if !inner.fresh || inner.entry != entry {
            let old_global = std::mem::take(&mut inner.global);
            let old_hosts = std::mem::take(&mut inner.hosts);
            rebuild(&mut inner, hub, &statuses);
            push(&mut parts, None, diff(&old_global, &inner.global));
            let ids: HashSet<&String> = old_hosts.keys().chain(inner.hosts.keys()).collect();
            let empty = Graph::default();
            for id in ids {
                let old = old_hosts.get(id).unwrap_or(&empty);
                let new = inner.hosts.get(id).unwrap_or(&empty);
                push(&mut parts, Some(id), diff(old, new));
            }
            inner.fresh = true;
        } else {
            push(&mut parts, None, diff(&inner.global, &global_now));
            inner.global = global_now;
            for id in changed {
                let new = hub
                    .twin
                    .read(&id, |n| {
                        host_part(
                            &HostInput {
                                id: &n.id,
                                connected: n.connected,
                                state: &n.state,
                                sample: n.resources.as_ref(),
                            },
                            &inner.entry,
                        )
                    })
                    .unwrap_or_default();
                let old = inner.hosts.remove(&id).unwrap_or_default();
                push(&mut parts, Some(&id), diff(&old, &new));
                if !new.nodes.is_empty() {
                    inner.hosts.insert(id, new);
                }
            }
        }
        if parts.is_empty() {
            return;
        }
        inner.version += 1;
        let mut all = GraphDiff::default();
        for (_, d) in &parts {
            all.extend(d);
        }
        let update = Update {
            version: inner.version,
            json: step_json(inner.version, &all),
            parts,
        };
        if let Some(tx) = &self.tx {
            let _ = tx.send(Arc::new(update));
        }
    }

    /// The whole graph again, for a client that fell behind or whose view changed.
    pub fn resend(&self, sees: impl Fn(&str) -> bool) -> (Utf8Bytes, HashMap<String, bool>) {
        full(&self.lock(), sees)
    }
}

fn push(parts: &mut Vec<(Option<String>, GraphDiff)>, owner: Option<&String>, d: GraphDiff) {
    if !d.is_empty() {
        parts.push((owner.cloned(), d));
    }
}

/// Every part derived again from the twin and the gateways.
fn rebuild(inner: &mut Inner, hub: &HubState, statuses: &[GatewayStatus]) {
    let (g, entry) = global(statuses);
    let mut hosts = BTreeMap::new();
    hub.twin.for_each(|n| {
        hosts.insert(
            n.id.clone(),
            host_part(
                &HostInput {
                    id: &n.id,
                    connected: n.connected,
                    state: &n.state,
                    sample: n.resources.as_ref(),
                },
                &entry,
            ),
        );
    });
    inner.global = g;
    inner.entry = entry;
    inner.hosts = hosts;
}

/// The whole graph of the hosts `sees` admits, and which hosts those were.
fn full(inner: &Inner, sees: impl Fn(&str) -> bool) -> (Utf8Bytes, HashMap<String, bool>) {
    let known: HashMap<String, bool> = inner
        .hosts
        .keys()
        .map(|id| (id.clone(), sees(id)))
        .collect();
    let parts = std::iter::once(&inner.global).chain(
        inner
            .hosts
            .iter()
            .filter(|(id, _)| known[id.as_str()])
            .map(|(_, g)| g),
    );
    let mut msg = Full {
        r#type: "topology",
        version: inner.version,
        nodes: Vec::new(),
        edges: Vec::new(),
    };
    for g in parts {
        msg.nodes.extend(&g.nodes);
        msg.edges.extend(&g.edges);
    }
    let json = serde_json::to_string(&msg)
        .expect("the topology serializes")
        .into();
    (json, known)
}

/// The stream's `topology_diff` message.
pub fn step_json(version: u64, d: &GraphDiff) -> Utf8Bytes {
    serde_json::to_string(&Step {
        r#type: "topology_diff",
        version,
        diff: d,
    })
    .expect("a topology diff serializes")
    .into()
}

/// What one watching client is sent of an update.
pub enum ClientStep {
    Send(Utf8Bytes),
    /// Nothing it may see changed.
    Nothing,
    /// A host came into or went out of its view: send it the whole graph again.
    Resync,
}

/// What a client is sent of `update`: all of it, or, for a client limited
/// to host groups, the parts of the hosts it sees. `known` holds which
/// hosts it saw (from [`Feed::watch`] on).
pub fn for_client(
    update: &Update,
    known: Option<&mut HashMap<String, bool>>,
    sees: impl Fn(&str) -> bool,
) -> ClientStep {
    let Some(known) = known else {
        return ClientStep::Send(update.json.clone());
    };
    let mut d = GraphDiff::default();
    for (owner, part) in &update.parts {
        match owner {
            None => d.extend(part),
            Some(id) => {
                let now = sees(id);
                // A host that is new since the client's graph: its first
                // part is the whole of it.
                let before = *known.entry(id.clone()).or_insert(now);
                if before != now {
                    return ClientStep::Resync;
                }
                if now {
                    d.extend(part);
                }
            }
        }
    }
    if d.is_empty() {
        ClientStep::Nothing
    } else {
        ClientStep::Send(step_json(update.version, &d))
    }
}

/// Keeps the feed current while the hub runs: woken by the twin's changes
/// (coalesced) and once a second for the gateways.
pub async fn run(hub: Arc<HubState>, stop: CancellationToken) {
    let mut gateways = tokio::time::interval(GATEWAY_CHECK);
    gateways.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = hub.twin.topology_changed() => {}
            _ = gateways.tick() => {}
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(COALESCE) => {}
        }
        hub.topology.refresh(&hub);
    }
}
