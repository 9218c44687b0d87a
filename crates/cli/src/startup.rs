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

/// glibc's counts of the heap: (bytes in use, bytes freed but kept in its
/// free lists and at the top of each arena).
pub fn heap_stats() -> Option<(u64, u64)> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters (taking
        // each arena's lock) and returns them by value.
        let info = unsafe { libc::mallinfo2() };
        Some(((info.uordblks + info.hblkhd) as u64, info.fordblks as u64))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

/// Gives back the pages of its own binary that the agent touched only while
/// starting (bench/agent-footprint: its RSS is mostly these), and the heap
/// it freed since.
///
/// The loader reads all of the relocations (`.rela.dyn`) and the start runs
/// code and reads data that the agent never needs again, and the kernel
/// reads a binary in at least 64 KiB at a fault. Every read-only mapping of
/// the executable that holds no page of the process's own (so not the RELRO
/// data the loader wrote: its smaps say `Anonymous` > 0) is dropped with
/// `MADV_DONTNEED`, and faults back in from the file, unchanged, as it is
/// used again; `MADV_RANDOM` makes the read-only data come back a page at a
/// time (Linux 6.18 ignores it for code, which keeps its 64 KiB reads).
/// Then the file's cached pages that no process maps are dropped, written
/// first if dirty (a binary linked moments ago), so that what was dropped is
/// read again, not mapped back whole. Returns the bytes dropped.
pub fn trim_code_pages() -> usize {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return 0;
    };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let mut advised = 0;
    for (start, len) in clean_mappings(&smaps, &exe) {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: the range is one of this process's own private, read-only
        // mappings of its executable that holds no anonymous (written) page,
        // and nothing makes it writable again: MADV_DONTNEED drops its
        // pages and each faults back in from the file with the same bytes;
        // MADV_RANDOM changes only readahead.
        unsafe {
            let addr = start as *mut libc::c_void;
            let _ = libc::madvise(addr, len, libc::MADV_RANDOM);
            if libc::madvise(addr, len, libc::MADV_DONTNEED) == 0 {
                advised += len;
            }
        }
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        let _ = (start, len);
    }
    if advised > 0
        && let Ok(file) = std::fs::File::open("/proc/self/exe")
    {
        let _ = file.sync_data();
        let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
    }
    release_free_memory();
    advised
}

/// The read-only mappings of `exe` without an anonymous page, in a
/// `/proc/PID/smaps` text, as (start, length).
fn clean_mappings(smaps: &str, exe: &std::path::Path) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    // The mapping being read: (start, length, ours), and whether its smaps
    // said it holds no anonymous page (no such line: not known to be clean).
    let mut current: Option<(usize, usize, bool)> = None;
    let mut clean = false;
    let mut finish = |current: Option<(usize, usize, bool)>, clean: bool| {
        if let Some((start, len, true)) = current
            && clean
        {
            out.push((start, len));
        }
    };
    for line in smaps.lines() {
        // A mapping: "start-end perms offset dev inode path"; else "Key: value".
        let mut fields = line.splitn(6, ' ');
        let header = fields
            .next()
            .and_then(|r| r.split_once('-'))
            .and_then(|(a, b)| {
                Some((
                    usize::from_str_radix(a, 16).ok()?,
                    usize::from_str_radix(b, 16).ok()?,
                ))
            });
        if let Some((a, b)) = header {
            finish(current.take(), clean);
            clean = false;
            let perms = fields.next().unwrap_or("");
            let path = fields.nth(3).map(str::trim_start).unwrap_or("");
            let ours = perms.starts_with('r')
                && !perms.contains('w')
                && perms.ends_with('p')
                && std::path::Path::new(path) == exe
                && b > a;
            current = Some((a, b.saturating_sub(a), ours));
        } else if let Some(kb) = line.strip_prefix("Anonymous:") {
            // Unreadable counts as written: never drop what we cannot vouch for.
            clean = kb.trim().trim_end_matches("kB").trim().parse::<u64>() == Ok(0);
        }
    }
    finish(current, clean);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unwritten_read_only_mappings_of_the_executable_are_trimmed() {
        let smaps = "\
55d0c0000000-55d0c0100000 r--p 00000000 fe:01 123 /usr/lib/twinbay/twinbay-agent
Rss:                 400 kB
Anonymous:             0 kB
55d0c0100000-55d0c0900000 r-xp 00100000 fe:01 123 /usr/lib/twinbay/twinbay-agent
Anonymous:             0 kB
55d0c0900000-55d0c0940000 r--p 00900000 fe:01 123 /usr/lib/twinbay/twinbay-agent
Anonymous:           208 kB
55d0c0940000-55d0c0a00000 rw-p 00940000 fe:01 123 /usr/lib/twinbay/twinbay-agent
Anonymous:             8 kB
55d0c0a00000-55d0c0a10000 r--p 00a00000 fe:01 123 /usr/lib/twinbay/twinbay-agent
Anonymous:          what
7f0000000000-7f0000200000 r-xp 00000000 fe:01 456 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
7f0000400000-7f0000500000 rw-p 00000000 00:00 0 
Anonymous:          1024 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
55d0c0b00000-55d0c0b01000 r-xp 00b00000 fe:01 123 /usr/lib/twinbay/twinbay-agent
";
        let exe = std::path::Path::new("/usr/lib/twinbay/twinbay-agent");
        assert_eq!(
            clean_mappings(smaps, exe),
            // Not the RELRO data (written), the data, an unreadable count,
            // libc, anonymous memory, or a mapping whose smaps did not say.
            [(0x55d0c0000000, 0x100000), (0x55d0c0100000, 0x800000)]
        );
        assert!(clean_mappings("garbage\n\n- - -\nAnonymous: 0 kB", exe).is_empty());
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
