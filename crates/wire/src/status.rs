//! `GET /admin/v1/status`: what a node says about itself.
//!
//! The node serves it on its cluster listener; the lab (`sessionlab
//! status`, health waits) and the dashboard read it. One type for both
//! ends, so a field renamed on one side cannot silently read as missing on
//! the other.
//!
//! Reading is lenient (`#[serde(default)]`): a node that reports less than
//! the full contract (an older build) still gives a status, with the
//! missing fields at their defaults (`store_ok` defaults to true).

use serde::{Deserialize, Serialize};

/// A node's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeStatus {
    pub node_id: String,
    /// `memory`, `replicated` or `redis`.
    pub store: String,
    /// `session` or `jwt`.
    pub auth: String,
    /// `cookie` or `url`.
    pub tracking: String,
    /// Whether the node serves traffic (replicated: caught up after start).
    pub ready: bool,
    /// False while the store cannot be reached (the node is degraded).
    pub store_ok: bool,
    /// Why, when `store_ok` is false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_problem: Option<String>,
    /// Sessions held by this node's store.
    pub sessions: u64,
    /// Their approximate bytes.
    pub session_bytes: u64,
    pub uptime_ms: u64,
    /// Resident memory of the node process ([`crate::rss`]), when the OS tells.
    pub memory_rss_bytes: Option<u64>,
    /// Replication peers (empty when not replicating).
    pub peers: Vec<PeerStatus>,
    /// `all-to-all` or `backup` (empty when not replicating).
    pub topology: String,
    /// Backup topology: the copies kept besides the primary (K); 0 otherwise.
    pub backups: u32,
    /// Who is in the cluster, as this node's failure detector sees it
    /// (`None` when membership is the static `--peer` list only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub membership: Option<MembershipStatus>,
    /// Ownership moving after a membership change (backup topology).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rebalance: Option<RebalanceStatus>,
}

impl Default for NodeStatus {
    fn default() -> Self {
        NodeStatus {
            node_id: String::new(),
            store: String::new(),
            auth: String::new(),
            tracking: String::new(),
            ready: false,
            store_ok: true,
            store_problem: None,
            sessions: 0,
            session_bytes: 0,
            uptime_ms: 0,
            memory_rss_bytes: None,
            peers: Vec::new(),
            topology: String::new(),
            backups: 0,
            membership: None,
            rebalance: None,
        }
    }
}

/// One replication peer as a node sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PeerStatus {
    pub id: String,
    /// Its cluster listener (`host:port`).
    pub addr: String,
    /// Heard from recently.
    pub up: bool,
    /// Data messages queued for it.
    pub queue_depth: u64,
    /// Marked for a full resync (it missed more than the queue holds).
    pub needs_resync: bool,
}

/// The membership view (SWIM) of one node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MembershipStatus {
    /// Bumped on every change of the view; equal views have equal versions
    /// only by accident, so compare the members, not this.
    pub version: u64,
    /// Every member known, this node included.
    pub members: Vec<MemberStatus>,
    /// `--discover NAME:PORT`: what the name resolved to last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery: Option<DiscoveryStatus>,
    /// Why this node is not (yet) in a cluster, when it knows (a member
    /// refused its join).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// One member as the failure detector sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemberStatus {
    pub id: String,
    /// Its cluster listener (`host:port`), as it advertises it.
    pub addr: String,
    /// `alive`, `suspect`, `dead` or `left`.
    pub state: String,
    /// Raised by the member itself to refute a suspicion.
    pub incarnation: u64,
}

/// DNS discovery of the other members.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiscoveryStatus {
    /// `NAME:PORT` as given.
    pub target: String,
    /// The addresses of the last successful lookup.
    pub addrs: Vec<String>,
    /// Why the last lookup failed (the node keeps retrying).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Sessions handed to their new owners after membership changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RebalanceStatus {
    /// A change is still being handled.
    pub in_progress: bool,
    /// Sessions sent to new owners since the node started.
    pub sessions_moved: u64,
    /// Their bytes.
    pub bytes_moved: u64,
    /// How long the last finished rebalance took.
    pub last_took_ms: Option<u64>,
    /// Rebalances finished.
    pub passes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_partial_answers() {
        let s = NodeStatus {
            node_id: "node-1".into(),
            store: "replicated".into(),
            ready: true,
            sessions: 3,
            peers: vec![PeerStatus {
                id: "node-2".into(),
                addr: "127.0.0.1:9082".into(),
                up: true,
                queue_depth: 1,
                needs_resync: false,
            }],
            ..NodeStatus::default()
        };
        let text = serde_json::to_string(&s).unwrap();
        assert!(!text.contains("store_problem"), "{text}");
        assert_eq!(serde_json::from_str::<NodeStatus>(&text).unwrap(), s);

        let partial: NodeStatus = serde_json::from_str(r#"{"node_id":"node-3"}"#).unwrap();
        assert_eq!(partial.node_id, "node-3");
        assert!(partial.store_ok && partial.peers.is_empty());
    }
}
