//! Choosing the ports a cluster listens on, and refusing taken ones early.
//!
//! The defaults are the well-known ones from DESIGN.md (LB 8080, the
//! dashboard 8079, the LB's admin API 8078, nodes from 8081, cluster
//! listeners from 9081) so that URLs in the docs work as printed. A base of 0 means "any free port": the lab asks the
//! OS for one per process, which is how tests run many clusters side by side.
//!
//! Ports are checked by binding them before anything starts. That leaves a
//! small window in which another program could take a port, but it turns the
//! common mistake (a cluster or some other server already on 8080) into one
//! clear message instead of a node dying with "address in use" in its log.

use sessionlab_wire::ports;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};

/// The first port of each kind; 0 = pick free ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBases {
    pub lb: u16,
    /// The LB's admin API.
    pub admin: u16,
    /// The dashboard (`sessionlab-dashboard`).
    #[serde(default = "default_dashboard_port")]
    pub dashboard: u16,
    pub node: u16,
    pub cluster: u16,
}

impl PortBases {
    /// Every port picked free: clusters that must not meet the well-known
    /// ports (`compare`, `study`, tests).
    pub const FREE: PortBases = PortBases {
        lb: 0,
        admin: 0,
        dashboard: 0,
        node: 0,
        cluster: 0,
    };
}

fn default_dashboard_port() -> u16 {
    PortBases::default().dashboard
}

impl Default for PortBases {
    fn default() -> Self {
        PortBases {
            lb: 8080,
            admin: 8078,
            dashboard: 8079,
            node: 8081,
            cluster: 9081,
        }
    }
}

/// Hands out ports for a cluster, never the same one twice, each checked free.
pub struct PortAllocator {
    taken: BTreeSet<u16>,
}

impl PortAllocator {
    /// `in_use`: ports the cluster already has (when scaling up).
    pub fn new(in_use: impl IntoIterator<Item = u16>) -> Self {
        PortAllocator {
            taken: in_use.into_iter().collect(),
        }
    }

    /// The port for `purpose`: `base + offset` if `base` is set, else any
    /// free port. Fails if the port is in use.
    pub fn port(&mut self, base: u16, offset: u16, purpose: &str) -> Result<u16> {
        if base == 0 {
            return self.free_port(purpose);
        }
        let port = base.checked_add(offset).ok_or_else(|| {
            LabError::InvalidArgument(format!("no port above {base} for {purpose}"))
        })?;
        if self.taken.contains(&port) || !is_free(port) {
            return Err(LabError::PortTaken {
                port,
                purpose: purpose.to_string(),
            });
        }
        self.taken.insert(port);
        Ok(port)
    }

    fn free_port(&mut self, purpose: &str) -> Result<u16> {
        // The shared picker (below the ephemeral range, reserved against
        // every other lab and test picking at the same time): see
        // `sessionlab_wire::ports`.
        let taken = &self.taken;
        let port = ports::pick(&|p| taken.contains(&p)).ok_or_else(|| {
            LabError::InvalidArgument(format!("could not find a free port for {purpose}"))
        })?;
        self.taken.insert(port);
        Ok(port)
    }
}

/// Whether nothing listens on 127.0.0.1:`port` (we can bind it).
pub fn is_free(port: u16) -> bool {
    ports::is_free(port)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, TcpListener};

    use super::*;

    #[test]
    fn fixed_bases_count_up_and_refuse_taken_ports() {
        let holder = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let held = holder.local_addr().unwrap().port();
        let mut alloc = PortAllocator::new([]);
        let err = alloc.port(held, 0, "node-1 app").unwrap_err();
        assert!(
            matches!(&err, LabError::PortTaken { port, .. } if *port == held),
            "{err}"
        );
        assert!(err.to_string().contains("node-1 app"));
        drop(holder);
        assert_eq!(alloc.port(held, 0, "x").unwrap(), held);
        // Handing out the same port twice is refused even if it is free.
        assert!(alloc.port(held, 0, "y").is_err());
    }

    #[test]
    fn auto_ports_are_distinct() {
        let mut alloc = PortAllocator::new([]);
        let ports: BTreeSet<u16> = (0..20).map(|_| alloc.port(0, 0, "t").unwrap()).collect();
        assert_eq!(ports.len(), 20);
    }
}
