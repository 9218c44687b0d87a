//! What the hub keeps and shows about a host reached over SSH.

use serde::{Deserialize, Serialize};

/// A host added over SSH.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = SshHost)]
pub struct SshHost {
    /// `ssh-…`, the hub's name for it.
    pub id: String,
    /// `ssh://USER@HOST:PORT`.
    pub target: String,
    /// The pinned host key (`SHA256:…`); a server showing another is refused.
    pub fingerprint: String,
    /// Watched by the hub over SSH instead of an agent.
    pub agentless: bool,
    /// How often an agentless host is read (seconds); 30 when not given.
    #[serde(default)]
    pub interval_secs: Option<u64>,
    /// It authenticates with its own key (given when it was added), not the hub's.
    pub own_key: bool,
    /// The node its agent enrolled as, once it has.
    #[serde(default)]
    pub node_id: Option<String>,
    /// Set when the host showed a key other than the pinned one.
    #[serde(default)]
    pub security: Option<Security>,
    /// The agent's installation: its steps and how it ended.
    #[serde(default)]
    pub install: Option<Install>,
    pub created_ms: i64,
}

/// A security problem with the host.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = SshSecurity)]
pub struct Security {
    /// `host_key_changed`: connections are refused until an admin removes
    /// the host and adds it again with the new fingerprint.
    pub state: String,
    pub pinned: String,
    pub seen: String,
    pub since_ms: i64,
}

/// The state of an installation or of one of its steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = SshStepState)]
pub enum StepState {
    Running,
    Done,
    Failed,
}

/// An agent's installation over SSH.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = SshInstall)]
pub struct Install {
    pub state: StepState,
    pub steps: Vec<Step>,
    /// What failed, when it did.
    #[serde(default)]
    pub error: Option<String>,
    /// What was undone on the host after a failure.
    #[serde(default)]
    pub undo: Option<String>,
}

/// One step: `connect`, `arch`, `copy`, `token`, `install`, `start`, `enroll`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = SshInstallStep)]
pub struct Step {
    pub name: String,
    pub state: StepState,
    /// What it did or found, in words.
    pub detail: String,
    pub started_ms: i64,
    #[serde(default)]
    pub ended_ms: Option<i64>,
}

impl Install {
    pub fn new() -> Install {
        Install {
            state: StepState::Running,
            steps: Vec::new(),
            error: None,
            undo: None,
        }
    }
}

impl Default for Install {
    fn default() -> Self {
        Install::new()
    }
}
