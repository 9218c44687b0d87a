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
/// has the code it goes on running come back one 4 KiB page at a time.
///
/// A process's resident memory counts whole page-cache folios, and the
/// kernel reads and writes executables in large ones (up to 2 MiB on ext4
/// since Linux 6.x): one fault into a cold function maps all of its folio,
/// so the lean agent kept ~7 MiB of an 8 MiB binary resident though it runs
/// a fraction of it. Marking its own read-only mappings of the executable
/// `MADV_RANDOM` (no readahead: a fault reads one page), then
/// `MADV_DONTNEED` (unmap it; the code is never written, so it faults back
/// in from the file unchanged) and dropping the file's unmapped cached pages
/// (`POSIX_FADV_DONTNEED`)
/// leaves only the pages it goes on using (bench/agent-footprint). Pages
/// another process maps stay cached (and cost this one nothing until it
/// runs them). Returns the bytes advised.
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
        // SAFETY: the range is this process's own executable code mapping as
        // /proc/self/maps lists it, private, read-only and never written:
        // MADV_DONTNEED drops its pages, and each faults back in from the
        // file with the same bytes; MADV_RANDOM changes only readahead.
        unsafe {
            let addr = start as *mut libc::c_void;
            if libc::madvise(addr, len, libc::MADV_RANDOM) == 0
                && libc::madvise(addr, len, libc::MADV_DONTNEED) == 0
            {
                advised += len;
            }
        }
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        let _ = (start, len);
    }
    // What the page-out unmapped may still sit in the page cache as large
    // folios, which the next fault would map whole again: drop the file's
    // cached pages that no process maps, so they come back one page at a time.
    // (A binary written moments ago may still be dirty in the cache, and
    // dirty pages are not dropped: write them first.)
    if advised > 0
        && let Ok(file) = std::fs::File::open("/proc/self/exe")
    {
        let _ = file.sync_data();
        let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
    }
    advised
}

/// The code mappings of `exe` in a `/proc/PID/maps` text, as (start, length).
fn code_mappings(maps: &str, exe: &std::path::Path) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            // start-end perms offset dev inode path
            let mut fields = line.splitn(6, ' ');
            let range = fields.next()?;
            let perms = fields.next()?;
            let path = fields.nth(3)?.trim_start();
            // Code only: never written (no text relocations), so dropping
            // its pages loses nothing. Not the read-only data after it, which
            // the loader's relocations wrote (RELRO): those pages are the
            // process's own now, and dropping them would lose the writes.
            if perms != "r-xp" || std::path::Path::new(path) != exe {
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
    fn only_the_executables_code_is_trimmed() {
        let maps = "\
55d0c0000000-55d0c0100000 r--p 00000000 fe:01 123 /usr/lib/twinbay/twinbay-agent
55d0c0100000-55d0c0900000 r-xp 00100000 fe:01 123 /usr/lib/twinbay/twinbay-agent
55d0c0900000-55d0c0a00000 rw-p 00900000 fe:01 123 /usr/lib/twinbay/twinbay-agent
7f0000000000-7f0000200000 r-xp 00000000 fe:01 456 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000400000-7f0000500000 rw-p 00000000 00:00 0 
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
";
        let exe = std::path::Path::new("/usr/lib/twinbay/twinbay-agent");
        assert_eq!(code_mappings(maps, exe), [(0x55d0c0100000, 0x800000)]);
        assert!(code_mappings("garbage\n\n- - -", exe).is_empty());
    }

    /// What the trim saves is measured by bench/agent-footprint (it depends
    /// on the page cache: a binary linked moments ago may stay cached whole).
    /// Here: the calls succeed on a real process, and the process goes on
    /// running its code and reading its relocated data correctly after it
    /// (dropping a page the loader had written would crash it or change them).
    type Named = (&'static str, fn(&str) -> usize);

    #[test]
    fn a_trimmed_process_runs_on_unchanged() {
        let sum = |n: u64| (1..=n).map(|i| i * i).sum::<u64>();
        let table: &[Named] = &[("len", str::len), ("lines", |s| s.lines().count())];
        let before = (
            sum(1000),
            table.iter().map(|(n, f)| f(n)).sum::<usize>(),
            format!("{:?}", table[0].0),
        );
        assert!(
            trim_code_pages() > 0,
            "found no code mapping of the test binary"
        );
        let after = (
            sum(1000),
            table.iter().map(|(n, f)| f(n)).sum::<usize>(),
            format!("{:?}", table[0].0),
        );
        assert_eq!(before, after);
        assert_eq!(after.0, 333_833_500);
    }
}
