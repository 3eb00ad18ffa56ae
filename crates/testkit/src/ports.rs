//! Free loopback ports for processes a test starts.
//!
//! Picked by [`sessionlab_wire::ports`] (the lab's allocator uses the same
//! picker): at random below the kernel's ephemeral range, checked bindable,
//! and reserved against every other test process picking at the same time,
//! so two clusters started side by side never share a port between the
//! pick and the bind.
//!
//! Listeners a test binds itself (in-process servers) should bind port 0
//! and keep the socket instead: there is no window at all then.

/// `n` distinct free ports, each checked bindable and reserved.
pub fn free_ports(n: usize) -> Vec<u16> {
    sessionlab_wire::ports::pick_many(n)
        .unwrap_or_else(|| panic!("no {n} free ports in {:?}", sessionlab_wire::ports::RANGE))
}

/// One free port.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}
