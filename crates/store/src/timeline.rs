//! The event timeline: which changes to a twin are events worth a line.
//!
//! Pure functions of the state before and the change; the twin calls them,
//! the recorder stores the result and the broadcaster sends it.

use serde::Serialize;
use serde_json::{Value, json};
use twinbay_proto::diff::{Change, Collection, Item};
use twinbay_proto::model::{Container, NodeState, Port, Unit};

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Event {
    pub node_id: String,
    /// Unix milliseconds.
    pub ts: i64,
    /// `container.started`, `container.died`, `unit.failed`, `port.opened`, `agent.connected`, …
    pub kind: String,
    /// What it happened to: a container name, a unit, a port.
    pub target: String,
    #[schema(value_type = Object)]
    pub detail: Value,
}

fn event(node_id: &str, ts: i64, kind: &str, target: &str, detail: Value) -> Event {
    Event {
        node_id: node_id.to_string(),
        ts,
        kind: kind.to_string(),
        target: target.to_string(),
        detail,
    }
}

fn container_event(
    node: &str,
    ts: i64,
    old: Option<&Container>,
    new: Option<&Container>,
) -> Option<Event> {
    match (old, new) {
        (None, Some(c)) => Some(event(
            node,
            ts,
            "container.created",
            &c.name,
            json!({"id": c.id, "image": c.image, "state": c.state}),
        )),
        (Some(c), None) => Some(event(
            node,
            ts,
            "container.removed",
            &c.name,
            json!({"id": c.id}),
        )),
        (Some(o), Some(n)) if o.state != n.state => {
            let kind = match n.state.as_str() {
                "running" => "container.started",
                "exited" | "dead" => "container.died",
                "paused" => "container.paused",
                "restarting" => "container.restarting",
                _ => "container.state",
            };
            Some(event(
                node,
                ts,
                kind,
                &n.name,
                json!({"id": n.id, "from": o.state, "to": n.state, "exit_code": n.exit_code}),
            ))
        }
        (Some(o), Some(n)) if o.health != n.health && n.health.as_deref() == Some("unhealthy") => {
            Some(event(
                node,
                ts,
                "container.unhealthy",
                &n.name,
                json!({"id": n.id}),
            ))
        }
        _ => None,
    }
}

fn unit_event(node: &str, ts: i64, old: Option<&Unit>, new: Option<&Unit>) -> Option<Event> {
    let n = new?;
    let from = old.map(|o| o.active_state.as_str());
    if from == Some(n.active_state.as_str()) {
        return None;
    }
    let kind = match n.active_state.as_str() {
        "failed" => "unit.failed",
        "active" if from.is_some() => "unit.started",
        "inactive" if from.is_some() => "unit.stopped",
        _ => return None,
    };
    Some(event(
        node,
        ts,
        kind,
        &n.name,
        json!({"from": from, "to": n.active_state, "sub_state": n.sub_state, "user": n.user}),
    ))
}

fn port_event(node: &str, ts: i64, old: Option<&Port>, new: Option<&Port>) -> Option<Event> {
    let (kind, p) = match (old, new) {
        (None, Some(p)) => ("port.opened", p),
        (Some(p), None) => ("port.closed", p),
        _ => return None,
    };
    let target = format!("{}/{}:{}", p.protocol, p.address, p.port);
    Some(event(
        node,
        ts,
        kind,
        &target,
        json!({"process": p.process, "pid": p.pid}),
    ))
}

/// Events for applying `changes` to `before`.
pub fn from_changes(node: &str, ts: i64, before: &NodeState, changes: &[Change]) -> Vec<Event> {
    changes
        .iter()
        .filter_map(|change| match change {
            Change::Upsert {
                key,
                item: Item::Containers(c),
            } => container_event(node, ts, before.containers.get(key).map(|c| &**c), Some(c)),
            Change::Upsert {
                key,
                item: Item::Units(u),
            } => unit_event(node, ts, before.units.get(key).map(|u| &**u), Some(u)),
            Change::Upsert {
                key,
                item: Item::Ports(p),
            } => port_event(node, ts, before.ports.get(key), Some(p)),
            Change::Remove {
                collection: Collection::Containers,
                key,
            } => container_event(node, ts, before.containers.get(key).map(|c| &**c), None),
            Change::Remove {
                collection: Collection::Ports,
                key,
            } => port_event(node, ts, before.ports.get(key), None),
            _ => None,
        })
        .collect()
}

/// Events for replacing `before` with `after` (a full sync, e.g. after a reconnect).
pub fn from_states(node: &str, ts: i64, before: &NodeState, after: &NodeState) -> Vec<Event> {
    from_changes(node, ts, before, &twinbay_proto::diff::diff(before, after))
}

pub fn agent_event(node: &str, ts: i64, connected: bool, hostname: &str) -> Event {
    let kind = if connected {
        "agent.connected"
    } else {
        "agent.disconnected"
    };
    event(node, ts, kind, hostname, json!({}))
}

#[cfg(test)]
mod tests {
    use twinbay_proto::diff::diff;

    use super::*;

    fn with_container(state: &str, exit_code: Option<i64>) -> NodeState {
        let mut s = NodeState::default();
        s.containers.insert(
            "c1".into(),
            Container {
                id: "c1".into(),
                name: "web".into(),
                state: state.into(),
                exit_code,
                ..Default::default()
            }
            .into(),
        );
        s
    }

    #[test]
    fn container_transitions_become_events_with_the_exit_code() {
        let running = with_container("running", None);
        let died = with_container("exited", Some(137));
        let events = from_changes("n1", 5, &running, &diff(&running, &died));
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, "container.died");
        assert_eq!(events[0].target, "web");
        assert_eq!(events[0].detail["exit_code"], 137);
        let started = from_states("n1", 6, &died, &running);
        assert_eq!(started[0].kind, "container.started");
        let gone = from_states("n1", 7, &running, &NodeState::default());
        assert_eq!(gone[0].kind, "container.removed");
        assert!(from_states("n1", 8, &running, &running).is_empty());
    }

    #[test]
    fn unit_failures_and_ports_are_events() {
        let unit = |active: &str| {
            let mut s = NodeState::default();
            s.units.insert(
                "backup.service".into(),
                Unit {
                    name: "backup.service".into(),
                    active_state: active.into(),
                    ..Default::default()
                }
                .into(),
            );
            s
        };
        let failed = from_states("n1", 1, &unit("active"), &unit("failed"));
        assert_eq!(
            (failed[0].kind.as_str(), failed[0].target.as_str()),
            ("unit.failed", "backup.service")
        );
        assert!(from_states("n1", 1, &unit("active"), &unit("active")).is_empty());

        let mut open = NodeState::default();
        let port = Port {
            protocol: "tcp".into(),
            address: "0.0.0.0".into(),
            port: 8080,
            process: Some("caddy".into()),
            pid: Some(42),
        };
        open.ports
            .insert(twinbay_proto::model::Keyed::key(&port), port);
        let opened = from_states("n1", 1, &NodeState::default(), &open);
        assert_eq!(
            (opened[0].kind.as_str(), opened[0].target.as_str()),
            ("port.opened", "tcp/0.0.0.0:8080")
        );
        assert_eq!(
            from_states("n1", 2, &open, &NodeState::default())[0].kind,
            "port.closed"
        );
    }
}
