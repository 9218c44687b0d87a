//! A rollout as the store keeps it and the API shows it: its target, its
//! hosts and where each is in its update (the rules that move them are the
//! hub's `rollouts/plan.rs`).

use serde::{Deserialize, Serialize};

/// Which hosts a rollout updates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[schema(as = RolloutTarget)]
pub enum Target {
    /// `"all"`: every host.
    All(Everyone),
    /// Every host whose labels match this `key=value` selector.
    Group { group: String },
    /// These hosts, by node id.
    Nodes { nodes: Vec<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = RolloutTargetAll)]
pub enum Everyone {
    All,
}

impl Target {
    /// Whether the host `id` with `labels` is one of these.
    pub fn matches(&self, id: &str, labels: &std::collections::BTreeMap<String, String>) -> bool {
        match self {
            Target::All(_) => true,
            Target::Group { group } => group
                .split_once('=')
                .is_some_and(|(k, v)| labels.get(k).is_some_and(|l| l == v)),
            Target::Nodes { nodes } => nodes.iter().any(|n| n == id),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::All(_) => write!(f, "all hosts"),
            Target::Group { group } => write!(f, "group {group}"),
            Target::Nodes { nodes } => write!(f, "{} named hosts", nodes.len()),
        }
    }
}

/// A rollout as the API shows it and the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rollout {
    pub id: String,
    pub version: String,
    pub target: Target,
    pub canaries: u32,
    /// Hosts per batch after the canaries: a number, or a percentage (`"25%"`).
    #[schema(value_type = Object)]
    pub batch: Batch,
    pub pause_between_ms: u64,
    /// Failures (failed or rolled back) allowed before it halts; a failed
    /// canary always halts it.
    pub max_failures: u32,
    pub state: State,
    /// Why it halted, was aborted, or what it waits for.
    pub reason: Option<String>,
    pub created_ms: i64,
    pub created_by: String,
    pub updated_ms: i64,
    pub finished_ms: Option<i64>,
    pub counts: Counts,
    pub hosts: Vec<RolloutHost>,
}

/// Where a host is in its update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = RolloutHostState)]
pub enum HostState {
    /// Its batch has not started.
    Pending,
    /// Its batch started while its agent was offline: it goes when the agent is back.
    Waiting,
    Downloading,
    Verifying,
    /// Verified and swapped; on trial (the health window).
    Restarting,
    Healthy,
    /// The new binary failed its trial and the agent restored the old one.
    RolledBack,
    Failed,
    /// Not updated: already on the version, no release for its arch, or removed.
    Skipped,
}

impl HostState {
    pub fn finished(self) -> bool {
        matches!(
            self,
            HostState::Healthy | HostState::RolledBack | HostState::Failed | HostState::Skipped
        )
    }

    pub fn failure(self) -> bool {
        matches!(self, HostState::RolledBack | HostState::Failed)
    }

    pub fn in_flight(self) -> bool {
        matches!(
            self,
            HostState::Downloading | HostState::Verifying | HostState::Restarting
        )
    }

    /// Settled for its batch: the next batch need not wait for it.
    pub fn settled(self) -> bool {
        self.finished() || self == HostState::Waiting
    }
}

/// A rollout's own state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = RolloutState)]
pub enum State {
    Running,
    /// Paused by a person: hosts already updating finish, no new ones start.
    Paused,
    /// Stopped by its own rule (a canary failed, too many failures).
    Halted,
    Aborted,
    Done,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Paused => "paused",
            State::Halted => "halted",
            State::Aborted => "aborted",
            State::Done => "done",
        }
    }

    /// Running or paused: it may still update hosts.
    pub fn active(self) -> bool {
        matches!(self, State::Running | State::Paused)
    }
}

/// How many hosts a batch takes: a number, or a percentage of the hosts
/// after the canaries (`"25%"`), at least one either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    Count(u32),
    Percent(u32),
}

impl Batch {
    /// `"25%"`, `"3"`; the message is for people.
    pub fn parse(s: &str) -> Result<Batch, String> {
        let s = s.trim();
        let (digits, percent) = match s.strip_suffix('%') {
            Some(d) => (d.trim(), true),
            None => (s, false),
        };
        let n: u32 = digits.parse().map_err(|_| {
            format!("batch: a number of hosts or a percentage (\"25%\"), not {s:?}")
        })?;
        match (percent, n) {
            (_, 0) => Err("batch: at least 1".into()),
            (true, 1..=100) => Ok(Batch::Percent(n)),
            (true, _) => Err("batch: a percentage from 1% to 100%".into()),
            (false, _) => Ok(Batch::Count(n)),
        }
    }

    /// Hosts per batch when `rest` hosts follow the canaries.
    pub fn size(self, rest: usize) -> usize {
        match self {
            Batch::Count(n) => n as usize,
            Batch::Percent(p) => (rest * p as usize).div_ceil(100),
        }
        .max(1)
    }
}

impl Serialize for Batch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Batch::Count(n) => s.serialize_u32(*n),
            Batch::Percent(p) => s.serialize_str(&format!("{p}%")),
        }
    }
}

impl<'de> Deserialize<'de> for Batch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Batch, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Batch::parse(&n.to_string()),
            Raw::Text(s) => Batch::parse(&s),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// One host of a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RolloutHost {
    pub node_id: String,
    pub hostname: String,
    /// `canary` or `batch`.
    pub stage: String,
    /// 0 for the canaries, then 1, 2, …
    pub batch: u32,
    pub state: HostState,
    /// The agent's version when the rollout began.
    pub from_version: String,
    /// Its `update` command, once sent.
    pub command_id: Option<String>,
    /// Why it failed, rolled back or was skipped.
    pub reason: Option<String>,
    /// A simulated agent (`twinbay sim`): it pretends to update.
    pub simulated: bool,
    pub updated_ms: i64,
}

/// Hosts in each state, for progress bars.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = RolloutCounts)]
pub struct Counts {
    pub pending: u32,
    pub waiting: u32,
    /// Downloading, verifying or restarting.
    pub updating: u32,
    pub healthy: u32,
    pub failed: u32,
    pub rolled_back: u32,
    pub skipped: u32,
}

impl Counts {
    pub fn of(hosts: &[RolloutHost]) -> Counts {
        let mut c = Counts::default();
        for h in hosts {
            let slot = match h.state {
                HostState::Pending => &mut c.pending,
                HostState::Waiting => &mut c.waiting,
                HostState::Downloading | HostState::Verifying | HostState::Restarting => {
                    &mut c.updating
                }
                HostState::Healthy => &mut c.healthy,
                HostState::Failed => &mut c.failed,
                HostState::RolledBack => &mut c.rolled_back,
                HostState::Skipped => &mut c.skipped,
            };
            *slot += 1;
        }
        c
    }
}
