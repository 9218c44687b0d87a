//! The `twinbay` binary's allocator. With the `mimalloc` feature (the
//! default) the hub, the simulator and the CLI run on mimalloc: in a hub of
//! 10,000 agents glibc's malloc took 25–30 % of the CPU (arena lock waits,
//! `malloc_consolidate`; bench/hub-scale). The lean `twinbay-agent` keeps
//! the system's allocator, which is smaller for one small process.
//! mimalloc is built without transparent huge pages (`no_thp`): with them
//! an idle hub held 65 MiB instead of glibc's 41 (2 MiB pages committed
//! whole); without, 55 MiB.
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
        let mut counts = [0usize; 8];
        let c = counts.as_mut_ptr();
        // SAFETY: the eight pointers are distinct elements of `counts`,
        // which outlives the call; mi_process_info only writes through them
        // (elapsed, user and system time, RSS and its peak, committed
        // bytes and their peak, page faults).
        unsafe {
            libmimalloc_sys::mi_process_info(
                c,
                c.add(1),
                c.add(2),
                c.add(3),
                c.add(4),
                c.add(5),
                c.add(6),
                c.add(7),
            );
        }
        Some((counts[5] as u64, 0))
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
