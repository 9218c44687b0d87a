//! The messages agent and hub exchange: JSON text frames with a `type` tag.
//!
//! A connection goes: hub sends [`HubMessage::Challenge`]; agent answers
//! [`AgentMessage::Hello`] (proof of key possession, and a join token the
//! first time); hub answers [`HubMessage::Welcome`]; agent sends
//! [`AgentMessage::SyncFull`], then [`AgentMessage::SyncDiff`]s with
//! consecutive sequence numbers, [`AgentMessage::Metrics`] batches and
//! [`AgentMessage::Heartbeat`]s. The hub acks each applied sequence number and
//! answers a bad frame with [`HubMessage::Error`].

use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandResult, OutputChunk, Policy};
use crate::diff::Change;
use crate::model::{NodeState, Sample};

/// Agent → hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    Hello(Hello),
    /// The whole state; sets the sequence baseline to `seq`.
    SyncFull {
        seq: u64,
        state: Box<NodeState>,
    },
    /// Changes since the state with sequence number `seq - 1`.
    SyncDiff {
        seq: u64,
        changes: Vec<Change>,
    },
    Metrics {
        samples: Vec<Sample>,
    },
    Heartbeat {
        #[serde(default)]
        ts_ms: i64,
    },
    /// Output of running commands, gathered for a moment (several commands
    /// and streams in one frame).
    CommandOutput {
        chunks: Vec<OutputChunk>,
    },
    /// How a command ended; the last word about it.
    CommandResult(CommandResult),
    /// Part of a watched file's content, which the hub asked for
    /// ([`HubMessage::NeedFiles`]): `data` is the UTF-8 text (secret values
    /// redacted) from byte `offset` of `total`, at most [`FILE_CHUNK_BYTES`].
    /// A version whose file changed before it was sent is not sent: the
    /// agent answers with what it has now, under that version's `sha256`.
    FileChunk(FileChunk),
    /// How an update of the agent ended (docs/updates.md): sent on the first
    /// link after the trial, by the new agent or the rolled-back old one.
    UpdateReport(UpdateReport),
}

/// How an agent's update ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateReport {
    /// The `update` command it answers, if one asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    /// The release's version.
    pub version: String,
    /// The version the agent ran before.
    pub from_version: String,
    /// `true`: the new binary passed its trial and runs now; `false`: it was
    /// rolled back (the previous binary runs again) or never installed.
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl UpdateReport {
    /// Checks the shape: a version, an id and a reason of sane lengths.
    pub fn validate(&self) -> Result<(), String> {
        crate::release::check_version(&self.version).map_err(|e| e.to_string())?;
        if self.from_version.len() > 64 {
            return Err("from_version: at most 64 bytes".into());
        }
        if self.command_id.as_ref().is_some_and(|id| id.len() > 128) {
            return Err("command_id: at most 128 bytes".into());
        }
        if self.reason.as_ref().is_some_and(|r| r.len() > 4096) {
            return Err("reason: at most 4096 bytes".into());
        }
        Ok(())
    }
}

/// The most content bytes in one [`AgentMessage::FileChunk`] (well inside
/// [`crate::MAX_FRAME_BYTES`] even when every byte needs escaping as `\uXXXX`).
pub const FILE_CHUNK_BYTES: usize = 128 * 1024;

/// The largest file content that may travel, whatever an agent's own cap.
pub const MAX_FILE_CONTENT: u64 = 8 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileChunk {
    pub path: String,
    /// The version, as in the twin's [`crate::model::WatchedFile::sha256`].
    pub sha256: String,
    pub offset: u64,
    pub total: u64,
    pub data: String,
}

impl FileChunk {
    /// Checks the shape: an absolute path, a hex SHA-256, a chunk within
    /// [`FILE_CHUNK_BYTES`] that lies inside `total`, `total` within
    /// [`MAX_FILE_CONTENT`].
    pub fn validate(&self) -> Result<(), String> {
        if !self.path.starts_with('/') || self.path.len() > 4096 || self.path.contains('\0') {
            return Err("path: an absolute path of at most 4096 bytes".into());
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("sha256: 64 hex digits".into());
        }
        if self.data.len() > FILE_CHUNK_BYTES {
            return Err(format!("data: at most {FILE_CHUNK_BYTES} bytes per chunk"));
        }
        if self.total > MAX_FILE_CONTENT {
            return Err(format!("total: at most {MAX_FILE_CONTENT} bytes"));
        }
        match self.offset.checked_add(self.data.len() as u64) {
            Some(end) if end <= self.total => Ok(()),
            _ => Err("offset + data length past total".into()),
        }
    }
}

impl AgentMessage {
    /// Every `type` tag an agent message may carry.
    pub const TYPES: &'static [&'static str] = &[
        "hello",
        "sync_full",
        "sync_diff",
        "metrics",
        "heartbeat",
        "command_output",
        "command_result",
        "file_chunk",
        "update_report",
    ];
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub agent_version: String,
    /// The agent's ed25519 public key, base64 (standard, padded).
    pub public_key: String,
    /// Signature over [`crate::link_proof_message`] of the challenge nonce, base64.
    pub signature: String,
    /// The node id the hub gave at enrollment; absent on the first connection.
    #[serde(default)]
    pub node_id: Option<String>,
    /// The one-time join token; only on the first connection.
    #[serde(default)]
    pub join_token: Option<String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// A simulated agent (`twinbay sim`): its node is labelled simulated, and
    /// a join token first spent by a simulated agent may enroll the rest of
    /// its simulated fleet (but never a real agent).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub simulated: bool,
    /// What this agent allows; absent from agents that run no commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
}

/// Hub → agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HubMessage {
    Challenge {
        protocol: u32,
        hub_version: String,
        /// One-time random nonce the agent signs.
        nonce: String,
    },
    Welcome {
        node_id: String,
        /// How often the agent should send a heartbeat; the hub marks the
        /// node disconnected after three silent intervals.
        heartbeat_secs: u32,
    },
    /// The last sequence number the hub applied.
    Ack { seq: u64 },
    Error {
        code: ErrorCode,
        message: String,
        /// The hub closes the connection after a fatal error.
        #[serde(default)]
        fatal: bool,
    },
    /// Run this (if the policy allows it); answer with output and a result.
    Command(Command),
    /// Stop a running command (kill its process group, stop following).
    Cancel { id: String },
    /// The hub lacks the content of these versions of watched files (protocol 2):
    /// send each as [`AgentMessage::FileChunk`]s.
    NeedFiles { files: Vec<NeededFile> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeededFile {
    pub path: String,
    pub sha256: String,
}

impl HubMessage {
    /// Every `type` tag a hub message may carry.
    pub const TYPES: &'static [&'static str] = &[
        "challenge",
        "welcome",
        "ack",
        "error",
        "command",
        "cancel",
        "need_files",
    ];
}

/// Why the hub refused a frame or a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, or JSON of the wrong shape.
    BadFrame,
    FrameTooLarge,
    UnknownType,
    UnsupportedProtocol,
    /// A message that is not valid at this point of the conversation.
    UnexpectedMessage,
    /// The join token is unknown, used or expired.
    InvalidToken,
    /// The proof of key possession failed, or the key is not the pinned one.
    AuthFailed,
    /// The hub cannot apply a diff (sequence gap, no baseline): send a full sync.
    ResyncRequired,
    InvalidState,
    RateLimited,
    Internal,
}

impl HubMessage {
    pub fn error(code: ErrorCode, message: impl Into<String>, fatal: bool) -> Self {
        HubMessage::Error {
            code,
            message: message.into(),
            fatal,
        }
    }
}
