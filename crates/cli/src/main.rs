//! `twinbay`: one binary for the hub, the agent, the simulator and the admin CLI.
// The only unsafe calls are glibc allocator settings, in `startup`.
#![deny(unsafe_code)]

mod alerts;
mod args;
mod backup;
mod commands;
mod demo;
mod files;
mod handover;
mod install;
mod mcp;
mod release;
mod remote;
mod routes;
mod schedules;

mod startup;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match startup::start::<args::Cli>() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match commands::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
