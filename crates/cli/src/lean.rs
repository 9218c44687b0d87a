//! The lean agent's `main`: what `twinbay-agent` runs, and what `twinbay`
//! runs when it is invoked under that name (a release of either binary can
//! then be installed at either path by an agent's update, docs/updates.md).
//! A leading `agent` word is accepted, so `twinbay agent ARGS…` can run on
//! as either binary. Included into both binaries with `#[path]`.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

/// The lean binary's file name.
#[allow(dead_code)] // `twinbay-agent` needs only `main`
pub const NAME: &str = "twinbay-agent";

/// Watch this host and push its twin to a hub (the agent of `twinbay agent`).
#[derive(Debug, Parser)]
#[command(name = "twinbay-agent", version)]
struct Lean {
    #[command(flatten)]
    run: twinbay_agent::cli::RunArgs,
}

/// Whether this process was started as `twinbay-agent` (its argv[0]).
#[allow(dead_code)]
pub fn invoked_as_lean() -> bool {
    std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n == NAME))
        .unwrap_or(false)
}

/// The command line without a leading `agent` word.
fn args() -> Vec<OsString> {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "agent") {
        args.remove(1);
    }
    args
}

pub fn main() -> ExitCode {
    let lean = match crate::startup::start_from::<Lean>(args()) {
        Ok(lean) => lean,
        Err(code) => return code,
    };
    twinbay_agent::cli::init_logging("info");
    match twinbay_agent::cli::run_until_signal(lean.run, Some(trim)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", twinbay_agent::error::report(&e));
            ExitCode::FAILURE
        }
    }
}

/// Once the agent has settled: the pages of its binary only its start needed.
fn trim() {
    let bytes = crate::startup::trim_code_pages();
    tracing::debug!(bytes, "start-up pages trimmed");
}
