//! Free loopback ports for processes a test starts.
//!
//! A port from `bind(0)` comes from the kernel's ephemeral range, the same
//! range the client side of every outgoing connection uses, so under a busy
//! parallel test run another socket can take it between the check and the
//! child process binding it. These ports are picked at random *below* that
//! range (Linux: 32768-60999) and checked free, which leaves only another
//! random pick to collide with. The lab's own allocator (`sessionlab up`
//! with port base 0) follows the same rule for the same reason.
//!
//! Listeners a test binds itself (in-process servers) should bind port 0
//! and keep the socket instead: there is no window at all then.

use std::net::{Ipv4Addr, TcpListener};

/// Where ports are looked for: below Linux's ephemeral range.
const RANGE: std::ops::Range<u16> = 20_000..32_000;

/// `n` distinct free ports, each checked bindable.
pub fn free_ports(n: usize) -> Vec<u16> {
    let mut out: Vec<u16> = Vec::with_capacity(n);
    let mut seed = [0u8; 2];
    for _ in 0..n * 64 {
        if out.len() == n {
            break;
        }
        getrandom::fill(&mut seed).expect("the OS random number generator");
        let port = RANGE.start + u16::from_le_bytes(seed) % (RANGE.end - RANGE.start);
        if !out.contains(&port) && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            out.push(port);
        }
    }
    assert_eq!(out.len(), n, "no free ports in {RANGE:?}");
    out
}

/// One free port.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_below_the_ephemeral_range_and_bindable() {
        let ports = free_ports(20);
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 20);
        for p in ports {
            assert!(RANGE.contains(&p), "{p}");
            assert!(TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok());
        }
    }
}
