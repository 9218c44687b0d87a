//! Parsers for what a Linux host prints: procfs files, `uname`, `df -P`,
//! `ip -j`, `ss`/`netstat`, `systemctl list-units`, `podman ps`/`docker ps`,
//! `stat` and `sha256sum`. Pure functions over text: the agent feeds them
//! files it reads, the hub feeds them what an agentless host's login shell
//! printed (`hub/src/agentless/`).
//!
//! Each parser of a command's output returns [`ParseError`] naming the
//! command, so a bad reading says which command and why. Testdata under
//! `testdata/` are recordings from Debian, Alpine/BusyBox and OpenWrt.

#![forbid(unsafe_code)]

pub mod containers;
pub mod df;
pub mod files;
pub mod ip;
pub mod procfs;
pub mod sockets;
pub mod systemd;
pub mod uname;

#[cfg(test)]
mod props;

/// Why one command's output could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{command}: {reason}")]
pub struct ParseError {
    /// The command (or file) whose output this was, e.g. `df -P`.
    pub command: &'static str,
    pub reason: String,
}

impl ParseError {
    pub fn new(command: &'static str, reason: impl Into<String>) -> ParseError {
        ParseError {
            command,
            reason: reason.into(),
        }
    }
}

/// Shortens untrusted text for an error message (at most 60 characters).
pub(crate) fn excerpt(text: &str) -> String {
    let t: String = text.trim().chars().take(60).collect();
    if t.is_empty() {
        "empty output".into()
    } else {
        format!("{t:?}")
    }
}
