//! The twin's past, read from the state journal (`journal.rs`): a node as
//! it was at a moment (`GET /nodes/{id}?at=`), the topology then
//! (`GET /topology?at=`), and what changed between two moments, per node and
//! fleet-wide. The same access rules as the views of now: a node outside
//! the caller's host groups (as its labels say now) is as good as absent.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};

use super::ApiError;
use super::auth::Auth;
use super::nodes::require_node;
use crate::HubState;
use crate::journal::changes::{SubjectChanges, describe};
use crate::journal::{Entry, JournalError, decode, parse_time, replay};
use crate::store::{Principal, StoreError, now_ms};
use crate::topology::{Builder, Graph, HostInput};
use crate::twin::NodeView;

/// The longest range `changes` reads.
pub const MAX_RANGE_MS: i64 = 7 * 24 * 3600 * 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AtQuery {
    /// A past moment: unix milliseconds or RFC 3339 (`2026-12-01T03:12:00Z`).
    /// Absent: now.
    pub at: Option<String>,
}

/// A node as it was: the same fields as now, with the moment asked for.
/// `connected` and `last_seen` come from the timeline's agent events
/// (connected then: `last_seen` is the moment itself); `resources`, `seq`,
/// `policy` and the top `processes` are not kept for the past.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PastNodeView {
    #[serde(flatten)]
    pub node: NodeView,
    /// The moment asked for, unix ms.
    pub at: i64,
    /// When the state shown was recorded (the last change at or before `at`).
    pub recorded_at: i64,
    /// When this node's record starts (its oldest entry still kept): the
    /// earliest moment that can be asked for.
    pub first_recorded: i64,
}

/// A node now, or as it was when `at` is given.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum NodeAnswer {
    Now(NodeView),
    Then(PastNodeView),
}

/// A query's moment, or a 400 that says what is wrong with it.
pub(super) fn moment(name: &str, s: &str) -> Result<i64, ApiError> {
    let t = parse_time(s).map_err(|e| ApiError::BadRequest(format!("{name}: {e}")))?;
    if t > now_ms() + 60_000 {
        return Err(ApiError::BadRequest(format!(
            "{name}: {} is in the future",
            rfc3339(t)
        )));
    }
    Ok(t)
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

fn damaged(e: JournalError) -> ApiError {
    ApiError::Internal(StoreError::Damaged(e.to_string()))
}

/// Node `id` (the caller may see it) as it was at `at`.
pub(crate) async fn node_at(hub: &HubState, id: &str, at: i64) -> Result<PastNodeView, ApiError> {
    let rows = hub.store.journal_at(id, at).await?;
    if rows.is_empty() {
        return Err(ApiError::NotFound(
            match hub.store.journal_first(id).await? {
                Some(first) => format!(
                    "node {id:?} has no recorded state at {}: its record starts at {}",
                    rfc3339(at),
                    rfc3339(first)
                ),
                None => format!("node {id:?} has no recorded state yet"),
            },
        ));
    }
    let (state, recorded_at) = replay(id, &rows).map_err(damaged)?;
    let first_recorded = hub.store.journal_first(id).await?.unwrap_or(recorded_at);
    let (connected, last_seen) = match hub.store.agent_link_at(id, at).await? {
        Some((_, true)) => (true, Some(at)),
        Some((ts, false)) => (false, Some(ts)),
        None => (false, None),
    };
    let (simulated, agentless) = hub
        .twin
        .read(id, |n| (n.simulated, n.agentless.as_deref().cloned()))
        .unwrap_or_default();
    Ok(PastNodeView {
        node: NodeView {
            id: id.to_string(),
            hostname: state.host.hostname.clone(),
            connected,
            last_seen,
            agent_version: state.host.agent_version.to_string(),
            simulated,
            agentless,
            seq: None,
            resources: None,
            policy: None,
            state,
        },
        at,
        recorded_at,
        first_recorded,
    })
}

/// The graph as it was at `at`: the hosts the caller may see, each as the
/// journal had it then (hosts not recorded yet are left out); gateways as
/// they are now (their past is not kept).
pub(super) async fn graph_at(hub: &HubState, who: &Principal, at: i64) -> Result<Graph, ApiError> {
    let mut ids = Vec::new();
    hub.twin.for_each(|n| {
        if who.sees(&n.state.host.labels) {
            ids.push(n.id.clone());
        }
    });
    ids.sort();
    let mut hosts = Vec::new();
    for id in ids {
        let rows = hub.store.journal_at(&id, at).await?;
        if rows.is_empty() {
            continue;
        }
        let (state, _) = replay(&id, &rows).map_err(damaged)?;
        let connected = matches!(hub.store.agent_link_at(&id, at).await?, Some((_, true)));
        hosts.push((id, connected, state));
    }
    let mut b = Builder::new(&hub.gateways.statuses());
    for (id, connected, state) in &hosts {
        b.host(&HostInput {
            id,
            connected: *connected,
            state,
            sample: None,
        });
    }
    Ok(b.finish())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Range {
    /// From this moment: unix milliseconds or RFC 3339.
    pub from: String,
    /// Up to this moment (default now); at most 7 days after `from`.
    pub to: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FleetRange {
    /// From this moment: unix milliseconds or RFC 3339.
    pub from: String,
    /// Up to this moment (default now); at most 7 days after `from`.
    pub to: Option<String>,
    /// Only this node.
    pub node: Option<String>,
}

pub(crate) fn bounds(from: &str, to: Option<&str>) -> Result<(i64, i64), ApiError> {
    let from = moment("from", from)?;
    let to = match to {
        Some(to) => moment("to", to)?,
        None => now_ms(),
    };
    if to < from {
        return Err(ApiError::BadRequest(format!(
            "to ({}) is before from ({})",
            rfc3339(to),
            rfc3339(from)
        )));
    }
    if to - from > MAX_RANGE_MS {
        return Err(ApiError::BadRequest(
            "the range is longer than 7 days: ask for a shorter one".into(),
        ));
    }
    Ok((from, to))
}

/// What changed on one node between two moments.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeChanges {
    pub node_id: String,
    pub hostname: String,
    /// When the state compared against was recorded: at or before `from`,
    /// or the node's first record when that came later; absent when
    /// nothing was recorded by `to`.
    pub since: Option<i64>,
    /// Per subject (host first, then containers, units, ports, …).
    pub subjects: Vec<SubjectChanges>,
}

/// What changed across the fleet between two moments.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FleetChanges {
    pub from: i64,
    pub to: i64,
    /// The nodes with changes, by id.
    pub nodes: Vec<NodeChanges>,
}

/// `ms` as `2026-12-03 14:03:12` (UTC).
pub fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| ms.to_string())
}

impl FleetChanges {
    /// The list as lines to read (`ctl changes`, MCP `what_changed`): per
    /// host, each subject with its summary, then every step with its time.
    pub fn text(&self) -> String {
        let mut out = format!(
            "What changed from {} to {} UTC",
            utc(self.from),
            utc(self.to)
        );
        if self.nodes.is_empty() {
            out.push_str(": nothing.\n");
            return out;
        }
        out.push_str(":\n");
        for node in &self.nodes {
            out.push_str(&format!("\n{} ({})\n", node.hostname, node.node_id));
            for s in &node.subjects {
                out.push_str(&format!("  {}: {}\n", s.subject, s.summary));
                for t in &s.transitions {
                    out.push_str(&format!("    {}  {}\n", utc(t.ts), t.change));
                }
            }
        }
        out
    }
}

pub(crate) async fn changes_of(
    hub: &HubState,
    id: &str,
    from: i64,
    to: i64,
) -> Result<NodeChanges, ApiError> {
    let base = hub.store.journal_at(id, from).await?;
    let mut rows = hub.store.journal_between(id, from, to).await?.into_iter();
    let hostname = hub
        .twin
        .read(id, |n| n.state.host.hostname.clone())
        .unwrap_or_default();
    let (state, since) = match base.is_empty() {
        false => replay(id, &base).map_err(damaged)?,
        true => match rows.next() {
            Some(first) => replay(id, std::slice::from_ref(&first)).map_err(damaged)?,
            None => {
                return Ok(NodeChanges {
                    node_id: id.to_string(),
                    hostname,
                    since: None,
                    subjects: Vec::new(),
                });
            }
        },
    };
    let steps = rows
        .map(|r| decode(&r).map(|e: Entry| (r.ts, e)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(damaged)?;
    Ok(NodeChanges {
        node_id: id.to_string(),
        hostname,
        since: Some(since),
        subjects: describe(state, steps),
    })
}

/// What changed on a node between two moments, grouped by subject:
/// `container web: image nginx:1.25 → nginx:1.27, state running → exited`,
/// `port tcp/0.0.0.0:8443: opened`, `unit backup.service: active_state active → failed`,
/// `file /etc/nginx/nginx.conf: version changed`, each with every step.
#[utoipa::path(
    get,
    path = "/api/v1/nodes/{id}/changes",
    tag = "nodes",
    params(("id" = String, Path, description = "Node id"), Range),
    responses(
        (status = 200, body = NodeChanges),
        (status = 400, description = "A moment that does not parse, or a range backwards or over 7 days"),
        (status = 401, description = "Not authenticated"),
        (status = 404, description = "No such node"),
    )
)]
pub async fn node_changes(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Query(q): Query<Range>,
) -> Result<Json<NodeChanges>, ApiError> {
    require_node(&hub, &id, &who)?;
    let (from, to) = bounds(&q.from, q.to.as_deref())?;
    Ok(Json(changes_of(&hub, &id, from, to).await?))
}

/// What changed across the fleet (the nodes the caller may see) between
/// two moments, per node and subject.
#[utoipa::path(
    get,
    path = "/api/v1/changes",
    tag = "nodes",
    params(FleetRange),
    responses(
        (status = 200, body = FleetChanges),
        (status = 400, description = "A moment that does not parse, or a range backwards or over 7 days"),
        (status = 401, description = "Not authenticated"),
        (status = 404, description = "No such node (with `node`)"),
    )
)]
pub async fn fleet_changes(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Query(q): Query<FleetRange>,
) -> Result<Json<FleetChanges>, ApiError> {
    let (from, to) = bounds(&q.from, q.to.as_deref())?;
    let ids = match &q.node {
        Some(id) => {
            require_node(&hub, id, &who)?;
            vec![id.clone()]
        }
        None => {
            let mut ids = hub.store.journal_nodes_between(from, to).await?;
            ids.retain(|id| hub.twin.check(id, |n| who.sees(&n.state.host.labels)));
            ids
        }
    };
    let mut nodes = Vec::new();
    for id in ids {
        let changes = changes_of(&hub, &id, from, to).await?;
        if !changes.subjects.is_empty() {
            nodes.push(changes);
        }
    }
    Ok(Json(FleetChanges { from, to, nodes }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::changes::Transition;

    #[test]
    fn the_change_list_reads_per_host_and_subject_with_every_step() {
        let t0 = 1_764_731_520_000; // 2025-12-03T03:12:00Z
        let list = FleetChanges {
            from: t0,
            to: t0 + 3_600_000,
            nodes: vec![NodeChanges {
                node_id: "n_1".into(),
                hostname: "web-1".into(),
                since: Some(t0),
                subjects: vec![SubjectChanges {
                    subject: "container web".into(),
                    collection: "containers".into(),
                    name: "web".into(),
                    summary: "state running → exited".into(),
                    transitions: vec![Transition {
                        ts: t0 + 61_000,
                        change: "state running → exited".into(),
                    }],
                }],
            }],
        };
        assert_eq!(
            list.text(),
            "What changed from 2025-12-03 03:12:00 to 2025-12-03 04:12:00 UTC:\n\
             \n\
             web-1 (n_1)\n  \
             container web: state running → exited\n    \
             2025-12-03 03:13:01  state running → exited\n"
        );
        let none = FleetChanges {
            nodes: vec![],
            ..list
        };
        assert_eq!(
            none.text(),
            "What changed from 2025-12-03 03:12:00 to 2025-12-03 04:12:00 UTC: nothing.\n"
        );
    }
}
