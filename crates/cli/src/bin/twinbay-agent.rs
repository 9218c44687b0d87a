//! `twinbay-agent`: the agent alone, which `twinbay agent` hands over to
//! when it sits beside it (see `handover.rs`). The same arguments as
//! `twinbay agent`; none of the hub's code, so far fewer pages to keep resident.
#![deny(unsafe_code)]

#[path = "../startup.rs"]
mod startup;

use std::process::ExitCode;

use clap::Parser;

/// Watch this host and push its twin to a hub (the agent of `twinbay agent`).
#[derive(Debug, Parser)]
#[command(name = "twinbay-agent", version)]
struct Lean {
    #[command(flatten)]
    run: twinbay_agent::cli::RunArgs,
}

fn main() -> ExitCode {
    let lean = match startup::start::<Lean>() {
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

/// Once the agent has settled: its code pages, one page at a time from now on.
fn trim() {
    let bytes = startup::trim_code_pages();
    tracing::debug!(bytes, "code pages trimmed");
}
