//! How much memory this node process holds: its resident set size.
//!
//! The lab compares ways of keeping sessions, and one of the costs is
//! memory: a replicated node holds every user's session, not only its own.
//! The dashboard shows each node's memory next to its session count, so
//! `/admin/v1/status` reports it as `memory_rss_bytes`.
//!
//! The number is the kernel's `VmRSS` line of `/proc/self/status` (pages of
//! this process in RAM, in kB). It is read when asked, not sampled, and
//! costs one small file read. Elsewhere than Linux there is no such file,
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

use std::path::Path;

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

/// This process's resident set size in bytes, if the OS tells.
pub fn resident_bytes() -> Option<u64> {
    resident_bytes_from(Path::new("/proc/self/status"))
}

fn resident_bytes_from(path: &Path) -> Option<u64> {
    parse_vm_rss(&std::fs::read_to_string(path).ok()?)
}

/// The `VmRSS:   12345 kB` line of a `/proc/<pid>/status` text, in bytes.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let mut parts = line.split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => value.checked_mul(1024),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_vm_rss_line_in_bytes() {
        let text =
            "Name:\tsessionlab-node\nVmPeak:\t  99999 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss(text), Some(12_345 * 1024));
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\tlots kB\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\t12 MB\n"), None);
        assert_eq!(resident_bytes_from(Path::new("/nonexistent/status")), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_some() {
        let bytes = resident_bytes().expect("Linux has /proc/self/status");
        assert!(bytes > 1024 * 1024, "{bytes}");
    }
}
