//! How much memory this node process holds: its resident set size.
//!
//! The lab compares ways of keeping sessions, and one of the costs is
//! memory: a replicated node holds every user's session, not only its own.
//! The dashboard shows each node's memory next to its session count, so
//! `/admin/v1/status` reports it as `memory_rss_bytes`.
//!
//! The number is the kernel's `VmRSS` line of `/proc/self/status`, read by
//! [`sessionlab_wire::rss`] when asked (the lab reads the same line for
//! every process of a cluster). Elsewhere than Linux there is no such file,
//! and the field is `null` rather than a guess.
//!
//! ## Keeping that number honest: large blocks go back to the OS
//!
//! Every login checks an argon2 hash, which allocates ~19 MiB and frees it
//! again. glibc's allocator adapts its threshold for serving large blocks
//! with `mmap` to the largest block freed so far, so after the first login
//! these 19 MiB blocks come from the heap instead, and the heap cannot give
//! them back once small allocations (sessions) land behind them. Measured on
//! the node: ten sequential logins took it from 18 MiB to 194 MiB resident,
//! forty concurrent ones to 350 MiB, which would swamp the sessions' own
//! memory in every comparison. [`release_large_blocks`] pins the threshold
//! at 1 MiB, so every large block is mapped on its own and returned when
//! freed; the binary calls it first thing.

/// Serve allocations of 1 MiB and more with `mmap` and return them to the
/// OS when freed (glibc only; elsewhere a no-op). See the module docs.
pub fn release_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
