//! A process's resident memory, from `/proc/<pid>/status`.
//!
//! The figure is the kernel's `VmRSS` line: the pages the process really
//! occupies in RAM (shared libraries included), which is what an operator
//! sees in `top`. It is read when asked, one small file read. Elsewhere
//! than Linux there is no such file and the answer is `None`, never a
//! guess. The node reports its own (`memory_rss_bytes` in its status); the
//! lab reads every process of a cluster for the comparison's memory column.

use std::path::Path;

/// This process's resident set size in bytes, if the OS tells.
pub fn resident_bytes() -> Option<u64> {
    resident_bytes_from(Path::new("/proc/self/status"))
}

/// The resident set size of process `pid` in bytes, if the OS tells.
pub fn resident_bytes_of(pid: u32) -> Option<u64> {
    resident_bytes_from(Path::new(&format!("/proc/{pid}/status")))
}

/// The resident set size from a `status` file in the `/proc` format.
pub fn resident_bytes_from(path: &Path) -> Option<u64> {
    parse_vm_rss(&std::fs::read_to_string(path).ok()?)
}

/// The `VmRSS:   12345 kB` line of a `/proc/<pid>/status` text, in bytes.
/// Anything else (no such line, not a number, another unit) is `None`.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
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
        let rss = resident_bytes().expect("/proc/self/status");
        assert!(rss > 1024 * 1024, "{rss}");
        assert_eq!(resident_bytes_of(u32::MAX), None);
    }
}
