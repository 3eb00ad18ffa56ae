//! Fault injection: cutting and slowing replication on request.
//!
//! The lab's `partition` and `heal` commands need to cut the network between
//! real processes on one machine, without root and without firewall rules.
//! So each node can be told, through its signed fault endpoint
//! (`POST /admin/v1/faults` on the cluster listener), to behave as if links
//! were cut:
//!
//! ```json
//! {"drop": ["node-2", "node-3"], "delay_ms": 0}
//! ```
//!
//! - `drop`: all replication traffic *to and from* these peers is dropped.
//!   Outgoing batches fail without being sent; incoming batches are refused
//!   with 503 before they touch the replica. To a peer it looks exactly like
//!   a network partition: no heartbeats, the link goes down, writes are
//!   missed, and after the heal, resync repairs them.
//! - `delay_ms`: every outgoing batch waits this long before it is sent and
//!   every incoming batch before it is applied (a slow link). A delay near
//!   the request timeout makes batches time out, as on a real slow link:
//!   the peer is then marked for resync again and again.
//!
//! - `skew_ms` (optional): set this node's clock this far ahead (negative:
//!   behind) of the machine's, for the whole process
//!   ([`sessionlab_session::clock::set_skew_ms`], at most a day either
//!   way); left out, the clock stays as it is (a node started with
//!   `--clock-skew` keeps its skew through partitions and heals).
//!
//! A request *replaces* the whole set; `{"drop": [], "delay_ms": 0}` clears
//! it. `GET /admin/v1/faults` returns the current set. Faults live in memory
//! only: a restarted node has none (the lab re-applies them).

use std::collections::BTreeSet;
use std::time::Duration;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sessionlab_session::clock;

/// Longest delay accepted.
pub const MAX_DELAY_MS: u64 = 60_000;

/// A fault set, as the endpoint reads and returns it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSet {
    #[serde(default)]
    pub drop: Vec<String>,
    #[serde(default)]
    pub delay_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skew_ms: Option<i64>,
}

/// A fault set that cannot be applied (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    #[error("{0} is not a peer of this node")]
    UnknownPeer(String),
    #[error("delay_ms {0} is over the limit of {MAX_DELAY_MS}")]
    DelayTooLong(u64),
    #[error("skew_ms {0} is over the limit of a day either way")]
    SkewTooLarge(i64),
}

/// The node's current faults; cheap to read on every batch.
#[derive(Debug)]
pub struct Faults {
    /// The peers a fault may name: the configured ones and every member
    /// membership has added since (a member once known stays nameable).
    peers: RwLock<BTreeSet<String>>,
    current: RwLock<FaultSet>,
}

impl Faults {
    /// No faults, for a node with these peers.
    pub fn new(peers: impl IntoIterator<Item = String>) -> Self {
        Faults {
            peers: RwLock::new(peers.into_iter().collect()),
            current: RwLock::new(FaultSet::default()),
        }
    }

    /// Replace the fault set. Peers are checked, so a typo does not
    /// silently cut nothing; duplicates are removed and the list sorted.
    pub fn set(&self, mut set: FaultSet) -> Result<FaultSet, FaultError> {
        if let Some(p) = {
            let peers = self.peers.read();
            set.drop.iter().find(|p| !peers.contains(*p)).cloned()
        } {
            return Err(FaultError::UnknownPeer(p));
        }
        if set.delay_ms > MAX_DELAY_MS {
            return Err(FaultError::DelayTooLong(set.delay_ms));
        }
        if let Some(ms) = set
            .skew_ms
            .filter(|ms| ms.unsigned_abs() > clock::MAX_SKEW_MS as u64)
        {
            return Err(FaultError::SkewTooLarge(ms));
        }
        if let Some(ms) = set.skew_ms {
            clock::set_skew_ms(ms);
            tracing::warn!(skew_ms = ms, "this node's clock is skewed on purpose");
        }
        set.drop.sort();
        set.drop.dedup();
        *self.current.write() = set.clone();
        if set == FaultSet::default() {
            tracing::info!("faults cleared");
        } else {
            tracing::warn!(drop = ?set.drop, delay_ms = set.delay_ms, "faults injected");
        }
        Ok(set)
    }

    /// A member joined: faults may name it from now on.
    pub fn add_peer(&self, peer: &str) {
        self.peers.write().insert(peer.to_owned());
    }

    pub fn get(&self) -> FaultSet {
        self.current.read().clone()
    }

    /// Whether traffic to or from `peer` is dropped.
    pub fn drops(&self, peer: &str) -> bool {
        self.current.read().drop.iter().any(|p| p == peer)
    }

    pub fn delay(&self) -> Option<Duration> {
        let ms = self.current.read().delay_ms;
        (ms > 0).then(|| Duration::from_millis(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replaces_checks_and_clears() {
        let f = Faults::new(["node-2".to_owned(), "node-3".to_owned()]);
        let set: FaultSet =
            serde_json::from_str(r#"{"drop":["node-3","node-2","node-3"],"delay_ms":5}"#).unwrap();
        let applied = f.set(set).unwrap();
        assert_eq!(applied.drop, ["node-2", "node-3"]);
        assert!(f.drops("node-2") && f.drops("node-3"));
        assert_eq!(f.delay(), Some(Duration::from_millis(5)));
        assert_eq!(
            f.set(FaultSet {
                drop: vec!["node-9".into()],
                ..FaultSet::default()
            }),
            Err(FaultError::UnknownPeer("node-9".into()))
        );
        assert!(f.drops("node-2"), "a refused set changes nothing");
        f.set(FaultSet::default()).unwrap();
        assert!(!f.drops("node-2"));
        assert_eq!(f.delay(), None);
        assert!(serde_json::from_str::<FaultSet>(r#"{"dorp":[]}"#).is_err());
    }
}
