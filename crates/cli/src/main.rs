//! `twinbay`: one binary for the hub, the agent, the simulator and the admin CLI.
// The only unsafe calls are allocator settings and counters, in `startup`
// and `allocator`.
#![deny(unsafe_code)]

mod alerts;
mod allocator;
mod args;
mod backup;
mod commands;
mod demo;
mod files;
mod handover;
mod hubctl;
mod install;
mod lean;
mod mcp;
mod past;
mod release;
mod remote;
mod routes;
mod schedules;
mod ssh;

mod startup;

use std::process::ExitCode;

fn main() -> ExitCode {
    // Installed as `twinbay-agent` (an agent's update may put this binary there).
    if lean::invoked_as_lean() {
        return lean::main();
    }
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
