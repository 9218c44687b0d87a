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
    limit_malloc_arenas();
    // Whatever happens, one line on stderr, never a stack trace.
    std::panic::set_hook(Box::new(|info| eprintln!("error: internal error: {info}")));
    P::try_parse().map_err(|e| match e.kind() {
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

/// Gives back the code pages the agent touched only while starting, and
/// has the rest come back one 4 KiB page at a time.
///
/// A process's resident memory counts whole page-cache folios, and the
/// kernel reads and writes executables in large ones (up to 2 MiB on ext4
/// since Linux 6.x): one fault into a cold function maps all of its folio,
/// so the lean agent kept ~7 MiB of an 8 MiB binary resident though it runs
/// a fraction of it. Marking its own read-only mappings of the executable
/// `MADV_RANDOM` (no readahead: a fault reads one page) and then
/// `MADV_PAGEOUT` (drop what is mapped; clean pages, nothing is written)
/// leaves only the pages it goes on using (bench/agent-footprint). The
/// kernel drops a page only where it may (the file's owner, or root);
/// elsewhere this changes nothing. Returns the bytes advised.
pub fn trim_code_pages() -> usize {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return 0;
    };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return 0;
    };
    let mut advised = 0;
    for (start, len) in code_mappings(&maps, &exe) {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: the range is one of this process's own file mappings as
        // /proc/self/maps lists it; MADV_RANDOM and MADV_PAGEOUT change no
        // contents (read-only, clean pages fault back in from the file).
        unsafe {
            let addr = start as *mut libc::c_void;
            if libc::madvise(addr, len, libc::MADV_RANDOM) == 0
                && libc::madvise(addr, len, libc::MADV_PAGEOUT) == 0
            {
                advised += len;
            }
        }
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        let _ = (start, len);
    }
    advised
}

/// The read-only mappings of `exe` in a `/proc/PID/maps` text, as (start, length).
fn code_mappings(maps: &str, exe: &std::path::Path) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            // start-end perms offset dev inode path
            let mut fields = line.splitn(6, ' ');
            let range = fields.next()?;
            let perms = fields.next()?;
            let path = fields.nth(3)?.trim_start();
            if perms.contains('w') || std::path::Path::new(path) != exe {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            let (a, b) = (
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
            );
            (b > a).then_some((a, b - a))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_executables_read_only_mappings_are_trimmed() {
        let maps = "\
55d0c0000000-55d0c0100000 r--p 00000000 fe:01 123 /usr/lib/twinbay/twinbay-agent
55d0c0100000-55d0c0900000 r-xp 00100000 fe:01 123 /usr/lib/twinbay/twinbay-agent
55d0c0900000-55d0c0a00000 rw-p 00900000 fe:01 123 /usr/lib/twinbay/twinbay-agent
7f0000000000-7f0000200000 r-xp 00000000 fe:01 456 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000400000-7f0000500000 rw-p 00000000 00:00 0 
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
";
        let exe = std::path::Path::new("/usr/lib/twinbay/twinbay-agent");
        assert_eq!(
            code_mappings(maps, exe),
            [(0x55d0c0000000, 0x100000), (0x55d0c0100000, 0x800000)]
        );
        assert!(code_mappings("garbage\n\n- - -", exe).is_empty());
    }

    #[test]
    fn trimming_lowers_this_process_file_backed_resident_memory() {
        let rss_file = || -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let line = status.lines().find(|l| l.starts_with("RssFile:")).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        };
        let before = rss_file();
        assert!(trim_code_pages() > 0, "found no mapping of the test binary");
        let after = rss_file();
        assert!(after < before, "RssFile {before} kB → {after} kB");
    }
}
