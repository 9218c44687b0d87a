//! What both binaries, `twinbay` and the lean `twinbay-agent`, do first:
//! allocator settings, a one-line panic message, and clap errors as one line.
//! Included into each binary with `#[path]` (the package has no library).
// The only unsafe calls are glibc allocator settings.
#![allow(unsafe_code)]
// `twinbay-agent` needs only some of this.
#![allow(dead_code)]

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

/// Settings first, then the command line; `Err` is the exit code after help,
/// the version or a one-line error has been printed.
pub fn start<P: Parser>() -> Result<P, ExitCode> {
    start_from(std::env::args_os())
}

/// [`start`] with the given command line.
pub fn start_from<P: Parser>(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Result<P, ExitCode> {
    limit_malloc_arenas();
    // Whatever happens, one line on stderr, never a stack trace.
    std::panic::set_hook(Box::new(|info| eprintln!("error: internal error: {info}")));
    P::try_parse_from(args).map_err(|e| match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(2)
        }
        _ => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("{first} (see --help)");
            ExitCode::from(2)
        }
    })
}

/// glibc gives every thread that allocates its own malloc arena (up to eight
/// per core); with the runtime's workers and SQLite's threads a hub with
/// 1,000 agents kept ~30 MiB more resident in half-empty arenas
/// (bench/hub-scale: 210 vs 179 MiB). Two arenas are plenty for a
/// two-worker runtime. Called first, before any thread starts.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called before
    // any other thread exists, and M_ARENA_MAX takes any positive value.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Hands heap memory that is free but kept by glibc back to the system.
/// glibc returns freed memory only from the top of each heap, so after a
/// surge of connections (~19 KiB each, freed in any order) a hub stayed at
/// its peak: 10,000 slow clients left it 200 MiB larger for good
/// (bench/slow-clients). Blocks while it walks the heaps (milliseconds).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe (it takes each arena's lock) and
    // only returns free pages to the system; 0 keeps no extra padding.
    unsafe {
        libc::malloc_trim(0);
    }
}
