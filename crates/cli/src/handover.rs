//! `twinbay agent` runs as the lean `twinbay-agent` binary when one sits
//! beside this one (release archives and `twinbay agent install` put it
//! there): the same arguments, the same process, a third of the code.
//!
//! An agent's resident memory is mostly the code pages it has touched, and
//! the kernel maps a file's page cache in large folios (up to 2 MiB at a
//! fault), so an agent that runs inside the all-in-one binary carries the
//! hub's pages around its own: bench/agent-footprint measured 16.8 MiB
//! in-process against 9.x MiB as `twinbay-agent`. `TWINBAY_AGENT_IN_PROCESS=1`
//! keeps the agent in this binary.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};

/// The lean binary's file name.
pub const LEAN_AGENT: &str = crate::lean::NAME;
/// Set to `1` to run the agent inside `twinbay` even when the lean binary is there.
pub const IN_PROCESS_ENV: &str = "TWINBAY_AGENT_IN_PROCESS";

/// Replaces this process with the lean agent and the arguments after
/// `agent`. Returns `Ok` without doing anything when there is no lean binary
/// beside this one (or the environment asks to stay), so the caller runs the
/// agent here.
pub fn exec_lean_agent() -> Result<()> {
    if std::env::var_os(IN_PROCESS_ENV).is_some_and(|v| v == "1") {
        return Ok(());
    }
    let Ok(exe) = std::env::current_exe() else {
        return Ok(());
    };
    let Some((lean, args)) = plan(&exe, std::env::args_os()) else {
        return Ok(());
    };
    // exec returns only if it failed.
    let err = std::process::Command::new(&lean)
        .arg0(LEAN_AGENT)
        .args(args)
        .exec();
    Err(anyhow!("cannot run {}: {err}", lean.display()))
}

/// The lean binary beside `exe` and its arguments, for `twinbay agent ARGS…`;
/// `None` if there is none or the command line is not of that shape.
fn plan(exe: &Path, argv: impl IntoIterator<Item = OsString>) -> Option<(PathBuf, Vec<OsString>)> {
    let mut argv = argv.into_iter();
    argv.next()?;
    if argv.next()? != "agent" {
        return None;
    }
    let lean = exe.with_file_name(LEAN_AGENT);
    is_executable(&lean).then(|| (lean, argv.collect()))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn hands_over_only_agent_runs_to_an_executable_lean_binary() {
        let dir = std::env::temp_dir().join(format!("twinbay-handover-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("twinbay");
        let lean = dir.join(LEAN_AGENT);
        let run = argv(&["twinbay", "agent", "--state-dir", "/s"]);

        assert_eq!(plan(&exe, run.clone()), None, "no lean binary: stay");

        std::fs::write(&lean, b"#!/bin/sh\n").unwrap();
        assert_eq!(plan(&exe, run.clone()), None, "not executable: stay");

        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&lean, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            plan(&exe, run),
            Some((lean.clone(), argv(&["--state-dir", "/s"])))
        );
        assert_eq!(plan(&exe, argv(&["twinbay", "hub"])), None);
        assert_eq!(plan(&exe, argv(&["twinbay"])), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
