//! How the twin looks from outside: API views and stream events (JSON).

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use serde_json::json;
use twinbay_proto::command::Policy;
use twinbay_proto::diff::{Change, Collection};
use twinbay_proto::model::{NodeState, Sample};

use super::NodeTwin;

pub mod summary;

/// A node's whole twin: its connection, latest resources, and everything
/// the agent reports (`host`, `containers`, `units`, `ports`, `sources`,
/// `interfaces`, `mounts`, `processes`) at the top level.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeView {
    pub id: String,
    pub hostname: String,
    pub connected: bool,
    /// Last time the hub heard from the agent, unix milliseconds.
    pub last_seen: Option<i64>,
    pub agent_version: String,
    /// Enrolled by `twinbay sim`, not a real machine.
    pub simulated: bool,
    /// Watched without an agent (its interval, what it lacks); null for agents.
    pub agentless: Option<super::Agentless>,
    /// Last applied sequence number of the current connection.
    pub seq: Option<u64>,
    /// The latest sample of resources.
    pub resources: Option<Sample>,
    /// What the agent allows: lifecycle verbs and actions (absent when it runs none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    #[serde(flatten)]
    pub state: NodeState,
}

impl NodeView {
    pub fn of(n: &NodeTwin) -> NodeView {
        NodeView {
            id: n.id.clone(),
            hostname: n.state.host.hostname.clone(),
            connected: n.connected,
            last_seen: n.last_seen,
            agent_version: n.agent_version.clone(),
            simulated: n.simulated,
            agentless: n.agentless.as_deref().cloned(),
            seq: n.seq,
            resources: n.resources.clone(),
            policy: n.policy.as_deref().cloned(),
            state: n.state.clone(),
        }
    }
}

/// A node in the fleet list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeSummary {
    pub id: String,
    pub hostname: String,
    pub connected: bool,
    pub last_seen: Option<i64>,
    pub agent_version: String,
    /// Enrolled by `twinbay sim`, not a real machine.
    pub simulated: bool,
    /// Watched without an agent (its interval, what it lacks); null for agents.
    pub agentless: Option<super::Agentless>,
    pub os: String,
    pub resources: Option<Sample>,
    pub containers: usize,
    pub units: usize,
    pub ports: usize,
}

impl NodeSummary {
    pub fn of(n: &NodeTwin) -> NodeSummary {
        NodeSummary {
            id: n.id.clone(),
            hostname: n.state.host.hostname.clone(),
            connected: n.connected,
            last_seen: n.last_seen,
            agent_version: n.agent_version.clone(),
            simulated: n.simulated,
            agentless: n.agentless.as_deref().cloned(),
            os: n.state.host.os.to_string(),
            resources: n.resources.clone(),
            containers: n.state.containers.len(),
            units: n.state.units.len(),
            ports: n.state.ports.len(),
        }
    }
}

/// Serializes a stream event straight to text (no intermediate JSON tree:
/// this runs for every change of every node).
fn text(event: &impl Serialize) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(event).expect("stream events serialize"))
}

/// [`NodeView`], borrowed: serializing a node copies nothing first.
#[derive(Serialize)]
struct NodeViewRef<'a> {
    id: &'a str,
    hostname: &'a str,
    connected: bool,
    last_seen: Option<i64>,
    agent_version: &'a str,
    simulated: bool,
    agentless: Option<&'a super::Agentless>,
    seq: Option<u64>,
    resources: Option<&'a Sample>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<&'a Policy>,
    #[serde(flatten)]
    state: &'a NodeState,
}

impl<'a> NodeViewRef<'a> {
    fn of(n: &'a NodeTwin) -> Self {
        NodeViewRef {
            id: &n.id,
            hostname: &n.state.host.hostname,
            connected: n.connected,
            last_seen: n.last_seen,
            agent_version: &n.agent_version,
            simulated: n.simulated,
            agentless: n.agentless.as_deref(),
            seq: n.seq,
            resources: n.resources.as_ref(),
            policy: n.policy.as_deref(),
            state: &n.state,
        }
    }
}

#[derive(Serialize)]
struct SnapshotEvent<'a> {
    r#type: &'static str,
    nodes: Vec<NodeViewRef<'a>>,
}

pub fn snapshot_event<'a>(nodes: impl Iterator<Item = &'a NodeTwin>) -> Utf8Bytes {
    text(&SnapshotEvent {
        r#type: "snapshot",
        nodes: nodes.map(NodeViewRef::of).collect(),
    })
}

#[derive(Serialize)]
struct NodeEvent<'a> {
    r#type: &'static str,
    node: NodeViewRef<'a>,
}

pub fn node_event(n: &NodeTwin) -> Utf8Bytes {
    text(&NodeEvent {
        r#type: "node",
        node: NodeViewRef::of(n),
    })
}

#[derive(Serialize)]
struct StatusEvent<'a> {
    r#type: &'static str,
    id: &'a str,
    connected: bool,
    last_seen: Option<i64>,
    agent_version: &'a str,
    policy: Option<&'a Policy>,
}

/// `{"type":"status","id",…}`: `type` and `id` lead, as in `diff` and
/// `metrics` (the stream reads them without parsing the rest).
pub fn status_event(n: &NodeTwin) -> Utf8Bytes {
    text(&StatusEvent {
        r#type: "status",
        id: &n.id,
        connected: n.connected,
        last_seen: n.last_seen,
        agent_version: &n.agent_version,
        policy: n.policy.as_deref(),
    })
}

#[derive(Serialize)]
struct DiffEvent<'a> {
    r#type: &'static str,
    id: &'a str,
    seq: u64,
    applied_ms: i64,
    changes: &'a [Change],
}

/// `applied_ms` is when the hub applied the diff (for latency measurements).
pub fn diff_event(id: &str, seq: u64, changes: &[Change]) -> Utf8Bytes {
    diff_event_at(id, seq, crate::store::now_ms(), changes)
}

/// A `diff` event applied at `applied_ms` (a part of one, for the stream).
pub fn diff_event_at(id: &str, seq: u64, applied_ms: i64, changes: &[Change]) -> Utf8Bytes {
    text(&DiffEvent {
        r#type: "diff",
        id,
        seq,
        applied_ms,
        changes,
    })
}

#[derive(Serialize)]
struct MetricsEvent<'a> {
    r#type: &'static str,
    id: &'a str,
    sample: &'a Sample,
}

pub fn metrics_event(id: &str, sample: &Sample) -> Utf8Bytes {
    text(&MetricsEvent {
        r#type: "metrics",
        id,
        sample,
    })
}

/// A command started or ended (`crate::commands`).
pub fn command_event(c: &crate::store::CommandRecord) -> Utf8Bytes {
    text(&json!({ "type": "command", "command": c }))
}

pub fn rollout_event(r: &crate::rollouts::Rollout) -> Utf8Bytes {
    text(&json!({ "type": "rollout", "rollout": r }))
}

pub fn timeline_event(e: &crate::timeline::Event) -> Utf8Bytes {
    text(&json!({ "type": "event", "event": e }))
}

/// The collections a fleet-wide screen may watch on the summary stream.
pub const FLEET_COLLECTIONS: [Collection; 4] = [
    Collection::Containers,
    Collection::Units,
    Collection::Ports,
    Collection::Routes,
];

/// One node's part of a `collection` message.
#[derive(Serialize)]
struct CollectionPart<'a> {
    id: &'a str,
    hostname: &'a str,
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<&'a Policy>,
    items: CollectionRef<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum CollectionRef<'a> {
    Containers(&'a std::collections::BTreeMap<String, Box<twinbay_proto::model::Container>>),
    Units(&'a std::collections::BTreeMap<String, Box<twinbay_proto::model::Unit>>),
    Ports(&'a std::collections::BTreeMap<String, twinbay_proto::model::Port>),
    Routes(&'a std::collections::BTreeMap<String, twinbay_proto::model::Route>),
}

impl<'a> CollectionRef<'a> {
    fn of(state: &'a NodeState, c: Collection) -> Option<(CollectionRef<'a>, bool)> {
        Some(match c {
            Collection::Containers => (
                CollectionRef::Containers(&state.containers),
                state.containers.is_empty(),
            ),
            Collection::Units => (CollectionRef::Units(&state.units), state.units.is_empty()),
            Collection::Ports => (CollectionRef::Ports(&state.ports), state.ports.is_empty()),
            Collection::Routes => (
                CollectionRef::Routes(&state.routes),
                state.routes.is_empty(),
            ),
            _ => return None,
        })
    }
}

/// One node's part of a `collection` message for `c` (`None` for a
/// collection no fleet screen watches, or an empty one when `skip_empty`).
pub fn collection_part(n: &NodeTwin, c: Collection, skip_empty: bool) -> Option<String> {
    let (items, empty) = CollectionRef::of(&n.state, c)?;
    if skip_empty && empty {
        return None;
    }
    let part = CollectionPart {
        id: &n.id,
        hostname: &n.state.host.hostname,
        seq: n.seq,
        policy: n.policy.as_deref(),
        items,
    };
    Some(serde_json::to_string(&part).expect("stream events serialize"))
}

/// `{"type":"collection","collection":C,"snapshot":S,"nodes":[{"id",
/// "hostname","seq","policy","items":{KEY: ITEM}}]}` of the parts from
/// [`collection_part`]; a snapshot replaces every node's part, else only
/// the nodes named.
pub fn collection_event(c: Collection, snapshot: bool, parts: &[String]) -> Utf8Bytes {
    let mut out = format!(
        r#"{{"type":"collection","collection":"{}","snapshot":{snapshot},"nodes":["#,
        c.as_str()
    );
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(part);
    }
    out.push_str("]}");
    Utf8Bytes::from(out)
}
