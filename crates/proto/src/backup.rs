//! Backups: what produces an artifact on a host, how long the hub keeps it,
//! and the frames of the transfer socket that carries it.
//!
//! A backup is a command ([`crate::command::Op::Backup`]). The agent runs the
//! producer, compresses its bytes with zstd and streams them to the hub over
//! a second WebSocket of its own at [`transfer_path`] (same TLS pin, same
//! proof of key possession as the link): binary frames of at most
//! [`CHUNK_BYTES`], then one [`TransferEnd`] text frame. The hub answers with
//! one [`TransferReply`]. TCP carries the flow control: the hub writes each
//! chunk to storage before it reads the next, so a slow disk slows the
//! producer and neither side buffers more than a chunk or two.

use serde::{Deserialize, Serialize};

use crate::command::Role;

/// Bytes of compressed artifact per binary frame.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// Bytes of the producer's stderr the hub hears about when it fails.
pub const STDERR_TAIL_BYTES: usize = 2048;

/// The path (under the hub's URL prefix) where the agent uploads the
/// artifact of backup command `command_id`.
pub fn transfer_path(command_id: &str) -> String {
    format!("/api/v1/agent/backups/{command_id}")
}

/// What produces the artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BackupSource {
    /// A tar of a directory under one of the policy's `backup.roots`.
    Dir {
        path: String,
        /// Glob patterns (matched against paths relative to `path`, and
        /// against each file name) of what to leave out.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        exclude: Vec<String>,
    },
    /// A tar of a container volume's directory (its `Mountpoint`, from the
    /// Engine API); the volume must be named in the policy's
    /// `backup.volumes`.
    Volume {
        name: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        exclude: Vec<String>,
    },
    /// A policy action marked `producer: true`: its stdout is the artifact.
    Action {
        name: String,
        #[serde(default)]
        args: std::collections::BTreeMap<String, String>,
    },
}

/// Where a restore streams an artifact into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RestoreTarget {
    /// Untar (a `dir` backup) into a directory under one of `backup.roots`.
    Dir { path: String },
    /// Untar (a `dir` or `volume` backup) into a container volume named in
    /// `backup.volumes`.
    Volume { name: String },
    /// A policy action marked `consumer: true`: the artifact is its stdin.
    Action {
        name: String,
        #[serde(default)]
        args: std::collections::BTreeMap<String, String>,
    },
}

impl RestoreTarget {
    pub fn summary(&self) -> String {
        match self {
            RestoreTarget::Dir { path } => format!("dir {path}"),
            RestoreTarget::Volume { name } => format!("volume {name}"),
            RestoreTarget::Action { name, args } => {
                let mut s = format!("action {name}");
                for (k, v) in args {
                    s.push_str(&format!(" {k}={v}"));
                }
                s
            }
        }
    }
}

/// The path where the agent downloads the artifact of restore command `command_id`.
pub fn restore_path(command_id: &str) -> String {
    format!("/api/v1/agent/restores/{command_id}")
}

/// Hub → agent, after the artifact's binary frames on a restore socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreEnd {
    pub sha256: String,
    pub size: u64,
}

/// Most exclude patterns one backup may give.
pub const MAX_EXCLUDES: usize = 64;

impl BackupSource {
    pub fn summary(&self) -> String {
        match self {
            BackupSource::Dir { path, exclude } if exclude.is_empty() => format!("dir {path}"),
            BackupSource::Dir { path, exclude } => {
                format!("dir {path} (exclude {})", exclude.join(" "))
            }
            BackupSource::Volume { name, exclude } if exclude.is_empty() => {
                format!("volume {name}")
            }
            BackupSource::Volume { name, exclude } => {
                format!("volume {name} (exclude {})", exclude.join(" "))
            }
            BackupSource::Action { name, args } => {
                let mut s = format!("action {name}");
                for (k, v) in args {
                    s.push_str(&format!(" {k}={v}"));
                }
                s
            }
        }
    }
}

/// The agent's backup section: where `dir` backups may read, which
/// container volumes may be backed up (names, or `*` for all), and the least
/// role that may run one (never below operator).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupPolicy {
    #[serde(default)]
    pub roots: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    #[serde(default = "operator")]
    pub role: Role,
}

impl BackupPolicy {
    /// Whether volume `name` may be backed up or restored into.
    pub fn allows_volume(&self, name: &str) -> bool {
        self.volumes.iter().any(|v| v == "*" || v == name)
    }
}

/// A container volume's name as Docker and Podman accept it.
pub fn valid_volume_name(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn operator() -> Role {
    Role::Operator
}

/// How many backups of a job the hub keeps (PBS-style, see the hub's
/// `backups/retention.rs`); 0 turns a rule off, all 0 keeps everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Keep {
    #[serde(default)]
    pub last: u32,
    #[serde(default)]
    pub hourly: u32,
    #[serde(default)]
    pub daily: u32,
    #[serde(default)]
    pub weekly: u32,
    #[serde(default)]
    pub monthly: u32,
    #[serde(default)]
    pub yearly: u32,
}

impl Keep {
    /// The rules in the order they apply, with their counts.
    pub fn counts(&self) -> [(&'static str, u32); 6] {
        [
            ("keep-last", self.last),
            ("keep-hourly", self.hourly),
            ("keep-daily", self.daily),
            ("keep-weekly", self.weekly),
            ("keep-monthly", self.monthly),
            ("keep-yearly", self.yearly),
        ]
    }

    /// Whether any rule is on (else everything is kept).
    pub fn keeps_something(&self) -> bool {
        self.counts().iter().any(|(_, n)| *n > 0)
    }

    /// One line, e.g. `keep-last 3, keep-daily 7`; `keep all` with no rule on.
    pub fn describe(&self) -> String {
        let on: Vec<String> = self
            .counts()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        if on.is_empty() {
            "keep all".into()
        } else {
            on.join(", ")
        }
    }
}

/// Agent → hub, the last frame of a transfer: how the producer ended and
/// what the agent sent (the hub compares both with what it received).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferEnd {
    /// The producer's exit code; `None` if it did not run or was killed.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Why it failed on the agent, if it did (besides a non-zero exit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The end of the producer's stderr.
    #[serde(default)]
    pub stderr_tail: String,
    /// SHA-256 (hex) and size of the compressed bytes sent.
    pub sha256: String,
    pub size: u64,
}

/// Hub → agent: the transfer's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TransferReply {
    Stored {
        backup_id: String,
        sha256: String,
        size: u64,
    },
    Failed {
        reason: String,
    },
}
