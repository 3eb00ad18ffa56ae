//! What the machine offers, for defaults that fit it.
//!
//! The store's byte budget (`--store-budget`) defaults to a share of the
//! machine's memory rather than a fixed number, so the same flags are safe
//! on a 2 GiB container and a 64 GiB server:
//!
//! | machine memory (`MemTotal` in `/proc/meminfo`) | default budget |
//! |---|---|
//! | 2 GiB | 256 MiB |
//! | 8 GiB or more | 1 GiB (the cap) |
//! | unreadable (not Linux) | 256 MiB |
//!
//! An eighth leaves room for the rest of the node (connection buffers, the
//! password checks' 19 MiB each, replication queues) and for other
//! processes; the cap keeps one node from claiming a big machine whose
//! memory the operator meant for something else. With replication every
//! node holds every copy, so a cluster holds at most one budget of sessions
//! however many nodes it has.

/// The default store budget's share of the machine's memory.
pub const MEMORY_SHARE: u64 = 8;
/// The default store budget's cap.
pub const DEFAULT_BUDGET_CAP: u64 = 1 << 30;
/// The default store budget when the machine's memory cannot be read.
pub const FALLBACK_BUDGET: u64 = 256 << 20;
/// The default store budget's floor.
const DEFAULT_BUDGET_FLOOR: u64 = 16 << 20;

/// The machine's memory in bytes, from `/proc/meminfo`.
pub fn mem_total_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_total(&text)
}

fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The store budget for a machine with `mem_total` bytes (see the table).
pub fn default_store_budget(mem_total: Option<u64>) -> u64 {
    match mem_total {
        Some(m) => (m / MEMORY_SHARE).clamp(DEFAULT_BUDGET_FLOOR, DEFAULT_BUDGET_CAP),
        None => FALLBACK_BUDGET,
    }
}

/// This machine's host name (`--id-from-hostname`).
pub fn host_name() -> Result<String, String> {
    let name = nix::unistd::gethostname().map_err(|e| e.to_string())?;
    name.into_string()
        .map_err(|_| "the host name is not UTF-8".to_string())
}

/// The address `name` (this machine's host name) has here, loopback
/// excluded, IPv4 first: what a container's `/etc/hosts` gives its own name,
/// and so the address other containers on its network reach it at.
pub fn host_address(name: &str) -> Result<std::net::IpAddr, String> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<std::net::IpAddr> = (name, 0)
        .to_socket_addrs()
        .map_err(|e| format!("looking up {name}: {e}"))?
        .map(|a| a.ip())
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .collect();
    sessionlab_wire::addr::prefer_ipv4(&addrs)
        .ok_or_else(|| format!("{name} resolves to no address but loopback here"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_budget_follows_the_machine() {
        let info = "MemTotal:        2097152 kB\nMemFree:  1 kB\n";
        assert_eq!(parse_mem_total(info), Some(2 << 30));
        assert_eq!(default_store_budget(Some(2 << 30)), 256 << 20);
        assert_eq!(default_store_budget(Some(64 << 30)), DEFAULT_BUDGET_CAP);
        assert_eq!(default_store_budget(Some(1 << 20)), DEFAULT_BUDGET_FLOOR);
        assert_eq!(default_store_budget(None), FALLBACK_BUDGET);
        assert_eq!(parse_mem_total("nothing"), None);
    }
}
