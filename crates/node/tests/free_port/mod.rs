//! Free loopback ports for processes a test starts.
//!
//! A port from `bind(0)` comes from the kernel's ephemeral range, the same
//! range the client side of every outgoing connection uses, so under a busy
//! parallel test run another socket can take it between the check and the
//! child process binding it. These ports are picked at random *below* that
//! range (Linux: 32768-60999) and checked free, which leaves only another
//! random pick to collide with.
#![allow(dead_code)]

use std::net::TcpListener;

/// `n` distinct free ports, each checked bindable.
pub fn free_ports(n: usize) -> Vec<u16> {
    let mut out: Vec<u16> = Vec::with_capacity(n);
    let mut seed = [0u8; 2];
    for _ in 0..n * 64 {
        if out.len() == n {
            break;
        }
        getrandom::fill(&mut seed).expect("the OS random number generator");
        let port = 20_000 + u16::from_le_bytes(seed) % 12_000;
        if !out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            out.push(port);
        }
    }
    assert_eq!(out.len(), n, "no free ports in 20000..32000");
    out
}

/// One free port.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}
