//! The `twinbay` binary's allocator. With the `mimalloc` feature (the
//! default) the hub, the simulator and the CLI run on mimalloc: in a hub of
//! 10,000 agents glibc's malloc took 25–30 % of the CPU (arena lock waits,
//! `malloc_consolidate`; bench/hub-scale). The lean `twinbay-agent` keeps
//! the system's allocator, which is smaller for one small process.
// The only unsafe calls are mimalloc's counters and its collection.
#![allow(unsafe_code)]

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The heap's counts for the hub's `memory` report: (bytes in use, bytes
/// free but kept). Under mimalloc, "in use" is what it has committed (its
/// free pages are returned to the system within milliseconds, so nearly all
/// of that is in use) and "free" is 0.
pub fn heap_stats() -> Option<(u64, u64)> {
    #[cfg(feature = "mimalloc")]
    {
        let mut v = [0usize; 8];
        let [
            elapsed,
            user,
            system,
            rss,
            peak_rss,
            commit,
            peak_commit,
            faults,
        ] = &mut v;
        // SAFETY: mi_process_info only writes the eight counters it is
        // given, each a valid, exclusive pointer to a usize.
        unsafe {
            libmimalloc_sys::mi_process_info(
                elapsed,
                user,
                system,
                rss,
                peak_rss,
                commit,
                peak_commit,
                faults,
            );
        }
        Some((v[5] as u64, 0))
    }
    #[cfg(not(feature = "mimalloc"))]
    crate::startup::heap_stats()
}

/// Hands free heap memory back to the system now.
pub fn release_free_memory() {
    #[cfg(feature = "mimalloc")]
    // SAFETY: mi_collect only frees and purges memory mimalloc holds unused;
    // it is safe to call from any thread at any time.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
    #[cfg(not(feature = "mimalloc"))]
    crate::startup::release_free_memory()
}
