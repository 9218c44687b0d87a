//! Where a proxy route leads now: the state of its target in the same twin.

use serde::{Deserialize, Serialize};
use twinbay_proto::model::{NodeState, RouteTarget};

/// The state of a route's target, from the proxy host's twin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    /// The container runs, or the port still listens.
    Running,
    /// The container is there but not running (exited, created, paused, dead, …).
    Stopped,
    /// The container or port is no longer in the twin.
    Missing,
    /// The upstream is another host or the internet: not followed.
    External,
    /// The agent could not tell what the upstream is.
    Unknown,
}

impl TargetState {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Running => "running",
            TargetState::Stopped => "stopped",
            TargetState::Missing => "missing",
            TargetState::External => "external",
            TargetState::Unknown => "unknown",
        }
    }

    /// A route that leads nowhere now (its target stopped or vanished).
    pub fn broken(self) -> bool {
        matches!(self, TargetState::Stopped | TargetState::Missing)
    }
}

/// The state of `target` in `state` (the twin of the host the proxy runs on).
pub fn target_state(target: &RouteTarget, state: &NodeState) -> TargetState {
    match target {
        RouteTarget::Container { id, .. } => match state.containers.get(id) {
            Some(c) if c.state == "running" => TargetState::Running,
            Some(_) => TargetState::Stopped,
            None => TargetState::Missing,
        },
        RouteTarget::Port { key } => match state.ports.contains_key(key) {
            true => TargetState::Running,
            false => TargetState::Missing,
        },
        RouteTarget::External => TargetState::External,
        RouteTarget::Unknown => TargetState::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use twinbay_proto::model::{Container, Keyed, Port};

    use super::*;

    fn state() -> NodeState {
        let mut s = NodeState::default();
        for (id, st) in [("c1", "running"), ("c2", "exited"), ("c3", "paused")] {
            s.containers.insert(
                id.into(),
                Container {
                    id: id.into(),
                    name: format!("app-{id}").into(),
                    state: st.into(),
                    ..Container::default()
                }
                .into(),
            );
        }
        let p = Port {
            protocol: "tcp".into(),
            address: "127.0.0.1".into(),
            port: 3000,
            ..Port::default()
        };
        s.ports.insert(p.key(), p);
        s
    }

    fn container(id: &str) -> RouteTarget {
        RouteTarget::Container {
            id: id.into(),
            name: "whatever".into(),
        }
    }

    #[test]
    fn a_container_target_follows_the_container() {
        let s = state();
        assert_eq!(target_state(&container("c1"), &s), TargetState::Running);
        assert_eq!(target_state(&container("c2"), &s), TargetState::Stopped);
        assert_eq!(target_state(&container("c3"), &s), TargetState::Stopped);
        assert_eq!(target_state(&container("gone"), &s), TargetState::Missing);
    }

    #[test]
    fn a_port_target_runs_while_it_listens() {
        let s = state();
        let listening = RouteTarget::Port {
            key: "tcp/127.0.0.1:3000".into(),
        };
        let gone = RouteTarget::Port {
            key: "tcp/127.0.0.1:3001".into(),
        };
        assert_eq!(target_state(&listening, &s), TargetState::Running);
        assert_eq!(target_state(&gone, &s), TargetState::Missing);
    }

    #[test]
    fn external_and_unknown_targets_are_not_followed() {
        let s = state();
        assert_eq!(
            target_state(&RouteTarget::External, &s),
            TargetState::External
        );
        assert_eq!(
            target_state(&RouteTarget::Unknown, &s),
            TargetState::Unknown
        );
    }

    #[test]
    fn only_stopped_and_missing_are_broken() {
        use TargetState::*;
        let broken: Vec<_> = [Running, Stopped, Missing, External, Unknown]
            .into_iter()
            .filter(|s| s.broken())
            .collect();
        assert_eq!(broken, [Stopped, Missing]);
        assert_eq!(
            serde_json::to_value(Missing).unwrap(),
            serde_json::json!("missing")
        );
    }
}
