//! `twinbay-agent`: the agent alone, which `twinbay agent` hands over to
//! when it sits beside it (see `handover.rs`). The same arguments as
//! `twinbay agent`; none of the hub's code, so far fewer pages to keep resident.
#![deny(unsafe_code)]

#[path = "../startup.rs"]
mod startup;

#[path = "../lean.rs"]
mod lean;

fn main() -> std::process::ExitCode {
    lean::main()
}
