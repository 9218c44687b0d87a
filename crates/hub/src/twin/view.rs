//! How the twin looks from outside: API views and stream events (JSON).

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use serde_json::json;
use twinbay_proto::command::Policy;
use twinbay_proto::diff::Change;
use twinbay_proto::model::{NodeState, Sample};

use super::NodeTwin;

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
            os: n.state.host.os.clone(),
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

pub fn status_event(n: &NodeTwin) -> Utf8Bytes {
    text(&json!({
        "type": "status",
        "id": n.id,
        "connected": n.connected,
        "last_seen": n.last_seen,
        "agent_version": n.agent_version,
        "policy": n.policy,
    }))
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
    text(&DiffEvent {
        r#type: "diff",
        id,
        seq,
        applied_ms: crate::store::now_ms(),
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

pub fn timeline_event(e: &crate::timeline::Event) -> Utf8Bytes {
    text(&json!({ "type": "event", "event": e }))
}
