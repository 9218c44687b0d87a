use std::path::PathBuf;

use twinbay_proto::message::ErrorCode;

/// Everything that stops the agent or one of its connections.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("agent state in {path}")]
    State {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("agent state file {path} is damaged: {reason}")]
    StateDamaged { path: PathBuf, reason: String },
    #[error(
        "this agent is not enrolled yet: pass --join with a string from `twinbay ctl join-token create`"
    )]
    NotEnrolled,
    #[error("bad join string")]
    Join(#[from] twinbay_proto::join::JoinError),
    #[error("bad hub URL {url:?}: {reason}")]
    HubUrl { url: String, reason: String },
    #[error("reading host state")]
    Host(#[from] std::io::Error),
    #[error("connecting to {url}")]
    Connect {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the hub's certificate is not the pinned one (expected {expected}, got {actual}): refusing to talk to it"
    )]
    PinMismatch { expected: String, actual: String },
    #[error("websocket")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("the hub refused this agent ({code:?}): {message}")]
    Refused { code: ErrorCode, message: String },
    #[error("protocol violation by the hub: {0}")]
    Protocol(String),
    #[error("the hub did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("the hub closed the connection")]
    Closed,
    /// A simulated agent "restarts" on its pretended new version.
    #[error("reconnecting as version {0} (a simulated update)")]
    SimulatedRestart(String),
    #[error("policy file {0}")]
    Policy(String),
    #[error("cannot read the join file {}: {reason}", path.display())]
    JoinFile { path: PathBuf, reason: String },
    #[error("no HOME; pass --state-dir")]
    NoStateDir,
}

impl AgentError {
    /// Whether retrying cannot help, so the agent should stop.
    pub fn is_permanent(&self, enrolled: bool) -> bool {
        match self {
            AgentError::Refused { code, .. } => matches!(
                code,
                ErrorCode::InvalidToken | ErrorCode::AuthFailed | ErrorCode::UnsupportedProtocol
            ),
            // Before enrollment nothing else could have told us the right pin.
            AgentError::PinMismatch { .. } => !enrolled,
            AgentError::HubUrl { .. }
            | AgentError::State { .. }
            | AgentError::StateDamaged { .. }
            | AgentError::NotEnrolled
            | AgentError::Join(_)
            | AgentError::Policy(_)
            | AgentError::JoinFile { .. }
            | AgentError::NoStateDir => true,
            _ => false,
        }
    }
}

pub use twinbay_proto::report;
