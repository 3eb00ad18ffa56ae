//! Versions: which copy of a session is newer.
//!
//! Every write of a session is stamped with a Lamport clock value and the id
//! of the node that wrote it. Versions are compared as the pair
//! `(lamport, node)`: the higher Lamport value wins, and if two nodes wrote
//! with the same value the node id breaks the tie. Node ids are unique in a
//! cluster, so two different writes never compare equal, and every node that
//! sees the same set of writes keeps the same one (last writer wins, LWW).
//!
//! A node's Lamport clock moves past every version it sees, so a write made
//! after reading a session always carries a higher version than what was read.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The end of the Lamport range this workspace uses. A clock never moves
/// past it ([`crate::MemoryStore::observe`] clamps), and the replication
/// protocol refuses versions at or above it from peers, so a hostile
/// `u64::MAX` can never make the next local write overflow. 2^62 leaves
/// room for billions of years of writes.
pub const MAX_LAMPORT: u64 = 1 << 62;

/// `(lamport, node)`; ordered lexicographically.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct Version {
    pub lamport: u64,
    pub node: String,
}

impl Version {
    pub fn new(lamport: u64, node: impl Into<String>) -> Self {
        Version {
            lamport,
            node: node.into(),
        }
    }
}

impl fmt::Display for Version {
    /// `17@node-1`, the form the replication log lines use.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.lamport, self.node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn higher_lamport_wins_then_node_id_breaks_ties() {
        assert!(Version::new(2, "node-1") > Version::new(1, "node-9"));
        assert!(Version::new(2, "node-2") > Version::new(2, "node-1"));
        assert_eq!(Version::new(3, "node-1").to_string(), "3@node-1");
    }
}
