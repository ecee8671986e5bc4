//! The daemon's memory policy: how glibc's allocator is asked to behave in a
//! process that reads its sources once, then idles for hours (issue 6: peak
//! resident memory is one of the daemon's measures, BENCHMARKS.md).
//!
//! glibc's defaults are tuned for throughput. Two of them cost this daemon
//! about 1.4 MiB of resident memory with 1,000 jobs loaded, for nothing:
//! - blocks under the mmap threshold come from the heap, and glibc raises the
//!   threshold to the largest block ever freed. The YAML parser's event
//!   buffer doubles as it reads a large file; each outgrown copy stays
//!   resident in the heap after it is freed;
//! - each thread that meets contention gets its own arena (up to 8 per
//!   core), whose free pages stay resident separately.
//!
//! Must not know: jobs, sources, the store. Other C libraries (musl) have
//! neither knob; there these functions do nothing.

/// The mmap threshold: blocks this large or larger get their own mapping,
/// given back when freed, and grown with mremap rather than copied.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 64 * 1024;

/// Sets the allocator's policy. Call once, first thing, before the sources
/// are read (the parse is where the peak is).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before
    // the daemon starts any thread, and the values are in glibc's ranges.
    unsafe {
        // Setting it also stops glibc's dynamic raising of the threshold.
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        // Two arenas: the runtime's threads allocate little, and glibc's
        // per-thread cache serves most small blocks without the arena's lock.
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Gives the heap's free pages back to the system, after a burst of
/// allocation that is over (loading or reloading the plan).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
