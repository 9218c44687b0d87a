//! What replicas tell each other, and where: subjects, headers, bodies.
//! Pure, so it is tested without a NATS server.

use serde::{Deserialize, Serialize};
use twinbay_proto::command::Policy;

/// The header naming the replica that published a message.
pub const REPLICA: &str = "Twinbay-Replica";
/// The header saying what a twin message is.
pub const KIND: &str = "Twinbay-Kind";

/// What a message on a node's twin subject is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The node's agent connected to the publisher ([`Connected`] body).
    Connected,
    /// The node's agent left the publisher (empty body).
    Disconnected,
    /// An agent frame as the agent sent it: a full sync, a diff or samples.
    Frame,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Connected => "connected",
            Kind::Disconnected => "disconnected",
            Kind::Frame => "frame",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "connected" => Kind::Connected,
            "disconnected" => Kind::Disconnected,
            "frame" => Kind::Frame,
            _ => return None,
        })
    }
}

/// The body of a [`Kind::Connected`] message: what a replica that has not
/// seen the node yet needs to show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connected {
    pub agent_version: String,
    pub policy: Option<Policy>,
    pub simulated: bool,
    pub public_key: String,
    /// Read over SSH by the replica that holds it (no agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agentless: Option<crate::twin::Agentless>,
}

/// What the leading replica keeps in memory and must read again when
/// another replica changes it in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// Schedules: the scheduler looks again now.
    Schedules,
    /// Alert rules, channels or silences: read again.
    Alerts,
    /// Hosts over SSH added or removed: the leader reads what is stored.
    SshHosts,
}

impl Changed {
    pub fn as_str(self) -> &'static str {
        match self {
            Changed::Schedules => "schedules",
            Changed::Alerts => "alerts",
            Changed::SshHosts => "ssh_hosts",
        }
    }

    pub fn parse(s: &[u8]) -> Option<Changed> {
        match s {
            b"schedules" => Some(Changed::Schedules),
            b"alerts" => Some(Changed::Alerts),
            b"ssh_hosts" => Some(Changed::SshHosts),
            _ => None,
        }
    }
}

/// A command forwarded to the replica holding its agent's link: stored and
/// audited already by the replica the client asked, which checked the
/// role and the agent's policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardedCommand {
    pub record: crate::store::CommandRecord,
    pub cmd: twinbay_proto::command::Command,
}

/// The answer to a [`ForwardedCommand`]: sent to the agent, or why not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forwarded {
    pub error: Option<String>,
}

/// What the replica running a forwarded command tells the one watching.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandNews {
    Output(crate::store::Output),
    Done(Box<crate::store::CommandRecord>),
}

/// A replica's entry in the lease bucket, refreshed while it lives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplicaInfo {
    pub id: String,
    /// The URL agents dial on it.
    pub public_url: String,
    /// Agents connected to it.
    pub agents: u64,
    /// Unix ms when it started.
    pub started_ms: i64,
}

/// The subjects and bucket names of one cluster (the replicas sharing a
/// store), so clusters on one NATS server stay apart.
#[derive(Debug, Clone)]
pub struct Names {
    cluster: String,
}

impl Names {
    /// `cluster` is made of `[a-z0-9]` (see `settings::CLUSTER_ID`).
    pub fn new(cluster: &str) -> Names {
        let cluster = cluster
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        Names { cluster }
    }

    /// A node's twin changes.
    pub fn twin(&self, node: &str) -> String {
        format!("twinbay.{}.twin.{}", self.cluster, token(node))
    }

    /// Every node's twin changes.
    pub fn twin_all(&self) -> String {
        format!("twinbay.{}.twin.*", self.cluster)
    }

    /// Asks owners to publish their nodes again (body: a node id, or empty
    /// for all), as a replica that starts or missed a change does.
    pub fn sync(&self) -> String {
        format!("twinbay.{}.sync", self.cluster)
    }

    /// Commands for the agents whose links `replica` holds (request/reply).
    pub fn commands(&self, replica: &str) -> String {
        format!("twinbay.{}.cmd.{}", self.cluster, token(replica))
    }

    /// Cancels of the forwarded commands `replica` runs (body: the id).
    pub fn cancels(&self, replica: &str) -> String {
        format!("twinbay.{}.cancel.{}", self.cluster, token(replica))
    }

    /// A forwarded command's output and end, as the replica running it
    /// publishes them ([`CommandNews`]).
    pub fn command_news(&self, id: &str) -> String {
        format!("twinbay.{}.cmdout.{}", self.cluster, token(id))
    }

    /// "This changed in the store; look again" (body: a [`Changed`] topic).
    pub fn changed(&self) -> String {
        format!("twinbay.{}.changed", self.cluster)
    }

    /// The internet gateways' statuses as the leader last polled them
    /// (body: JSON, `GET /api/v1/gateway`'s array).
    pub fn gateways(&self) -> String {
        format!("twinbay.{}.gateways", self.cluster)
    }

    /// Replica liveness and the singleton lease (entries expire).
    pub fn leases_bucket(&self) -> String {
        format!("twinbay_{}_leases", self.cluster)
    }

    /// Which replica holds each agent's link.
    pub fn owners_bucket(&self) -> String {
        format!("twinbay_{}_owners", self.cluster)
    }
}

/// `node` as one subject token (node ids are `n_` and base32; anything
/// else is escaped so it can never widen a subscription).
pub fn token(node: &str) -> String {
    node.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' => c,
            _ => '~',
        })
        .collect()
}

/// A node id from a twin subject, if it is one of this cluster's.
pub fn node_of(subject: &str) -> Option<&str> {
    let rest = subject.strip_prefix("twinbay.")?;
    let (_, rest) = rest.split_once('.')?;
    rest.strip_prefix("twin.").filter(|n| !n.is_empty())
}

/// The lease key of a replica.
pub fn replica_key(id: &str) -> String {
    format!("replica.{id}")
}

/// The singleton lease's key.
pub const LEADER_KEY: &str = "leader";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_the_cluster_and_one_node() {
        let names = Names::new("Ab3-x!");
        assert_eq!(names.twin("n_abc"), "twinbay.ab3x.twin.n_abc");
        assert_eq!(names.twin_all(), "twinbay.ab3x.twin.*");
        assert_eq!(node_of(&names.twin("n_abc")), Some("n_abc"));
        assert_eq!(names.leases_bucket(), "twinbay_ab3x_leases");
    }

    #[test]
    fn a_node_id_cannot_widen_a_subject() {
        assert_eq!(token("a.b>*c d"), "a~b~~c~d");
        assert_eq!(node_of("twinbay.c.sync"), None);
        assert_eq!(node_of("twinbay.c.twin."), None);
    }

    #[test]
    fn kinds_round_trip() {
        for k in [Kind::Connected, Kind::Disconnected, Kind::Frame] {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Kind::parse("nope"), None);
    }
}
