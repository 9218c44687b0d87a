//! The twin of one node: what it is, what runs there and how it is doing.
//!
//! Collections are maps keyed by each item's natural key ([`Keyed::key`]), so
//! diffs can name an item by collection and key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The state an agent reports, apart from the numeric samples that travel in
/// [`crate::message::AgentMessage::Metrics`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeState {
    pub host: HostInfo,
    #[serde(default)]
    pub containers: BTreeMap<String, Container>,
    #[serde(default)]
    pub units: BTreeMap<String, Unit>,
    #[serde(default)]
    pub ports: BTreeMap<String, Port>,
    /// Sources (collectors) by name; an unavailable one says why.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceStatus>,
}

/// Who the node is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostInfo {
    pub hostname: String,
    /// Pretty OS name, e.g. "Debian GNU/Linux 12 (bookworm)".
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub kernel: String,
    #[serde(default)]
    pub arch: String,
    #[serde(default)]
    pub agent_version: String,
    /// Boot time, unix seconds.
    #[serde(default)]
    pub boot_time: i64,
    #[serde(default)]
    pub cpu_cores: u32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Container {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub image: String,
    /// created, running, paused, restarting, exited, dead
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub health: Option<String>,
    #[serde(default)]
    pub exit_code: Option<i64>,
    #[serde(default)]
    pub restart_count: u32,
    #[serde(default)]
    pub ports: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub compose_project: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Unit {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub load_state: String,
    #[serde(default)]
    pub active_state: String,
    #[serde(default)]
    pub sub_state: String,
    /// When the unit entered its active state, unix seconds.
    #[serde(default)]
    pub since: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Port {
    /// tcp, tcp6, udp, udp6
    pub protocol: String,
    pub address: String,
    pub port: u16,
    #[serde(default)]
    pub process: Option<String>,
    #[serde(default)]
    pub pid: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SourceStatus {
    pub name: String,
    pub available: bool,
    #[serde(default)]
    pub reason: Option<String>,
}

/// One numeric sample of the host's basic resources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sample {
    /// When the agent took the sample, unix milliseconds.
    pub ts_ms: i64,
    /// CPU busy over the last interval, percent of all cores (0–100).
    pub cpu_pct: f32,
    pub load1: f32,
    pub load5: f32,
    pub load15: f32,
    pub mem_total: u64,
    pub mem_used: u64,
    pub mem_available: u64,
    pub swap_total: u64,
    pub swap_used: u64,
    pub uptime_secs: u64,
}

impl Sample {
    /// Checks that every number is finite and not negative. JSON numbers past
    /// `f32::MAX` decode to infinity, which JSON cannot carry back out.
    pub fn validate(&self) -> Result<(), String> {
        let floats = [
            ("cpu_pct", self.cpu_pct),
            ("load1", self.load1),
            ("load5", self.load5),
            ("load15", self.load15),
        ];
        for (name, value) in floats {
            if !value.is_finite() || value < 0.0 {
                return Err(format!("{name} must be a finite number ≥ 0, not {value}"));
            }
        }
        Ok(())
    }
}

/// An item that lives in a keyed collection of [`NodeState`].
pub trait Keyed {
    fn key(&self) -> String;
}

impl Keyed for Container {
    fn key(&self) -> String {
        self.id.clone()
    }
}

impl Keyed for Unit {
    fn key(&self) -> String {
        self.name.clone()
    }
}

impl Keyed for Port {
    fn key(&self) -> String {
        format!("{}/{}:{}", self.protocol, self.address, self.port)
    }
}

impl Keyed for SourceStatus {
    fn key(&self) -> String {
        self.name.clone()
    }
}

/// Why a reported state is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("{collection} entry {key:?} does not match its item's key {expected:?}")]
    KeyMismatch {
        collection: &'static str,
        key: String,
        expected: String,
    },
    #[error("{collection} has {len} entries, more than the limit of {limit}")]
    TooMany {
        collection: &'static str,
        len: usize,
        limit: usize,
    },
}

/// The most items one collection may hold.
pub const MAX_COLLECTION_LEN: usize = 50_000;

impl NodeState {
    /// Checks that every collection is keyed by its items' keys and within limits.
    pub fn validate(&self) -> Result<(), StateError> {
        check_collection("containers", &self.containers)?;
        check_collection("units", &self.units)?;
        check_collection("ports", &self.ports)?;
        check_collection("sources", &self.sources)
    }
}

fn check_collection<T: Keyed>(
    collection: &'static str,
    map: &BTreeMap<String, T>,
) -> Result<(), StateError> {
    if map.len() > MAX_COLLECTION_LEN {
        return Err(StateError::TooMany {
            collection,
            len: map.len(),
            limit: MAX_COLLECTION_LEN,
        });
    }
    for (key, item) in map {
        let expected = item.key();
        if *key != expected {
            return Err(StateError::KeyMismatch {
                collection,
                key: key.clone(),
                expected,
            });
        }
    }
    Ok(())
}
