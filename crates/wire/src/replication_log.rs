//! `GET /admin/v1/replication`: what a replicating node shows of its
//! recent replication events and of its links. The node serves it on its
//! cluster listener (`crates/replication/src/events.rs` keeps the ring);
//! the lab's run collector and the dashboard read it; the load tool keeps
//! the fields of the events it draws (`time_ms`, `kind`, `peer`,
//! `session`, `version`, `lag_ms`) in a run's sidecar file.
//!
//! | field | what |
//! |---|---|
//! | `boot_ms` | when the node's log started: a new value means its numbering restarted |
//! | `next_seq` | the number the next event gets; ask `?since=next_seq-1` next time |
//! | `links` | one [`LinkView`] a peer: up, queue depth, resync pending, cut, delay, last lag |
//! | `events` | the [`EventView`]s after `since`, oldest first, at most `limit` |

use serde::{Deserialize, Serialize};

/// This node's view of one replication link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkView {
    pub peer: String,
    /// The peer answers (heartbeats get through).
    pub up: bool,
    /// Messages waiting to go to the peer.
    pub queue_depth: u64,
    /// The queue overflowed or the peer restarted: a resync is pending.
    pub needs_resync: bool,
    /// A fault cuts this link (`sessionlab partition`).
    pub cut: bool,
    /// A fault delays every batch on this link.
    pub delay_ms: u64,
    /// The last lag measured for a write that came from the peer.
    pub lag_ms: Option<f64>,
    /// When that lag was measured (wall clock, ms).
    pub lag_at_ms: Option<u64>,
}

/// The whole answer; see the module docs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplicationView {
    pub node_id: String,
    /// When this node's log started; a new value means numbering restarted.
    pub boot_ms: u64,
    /// The number the next event will get (`since` for the next call is
    /// `next_seq - 1`).
    pub next_seq: u64,
    pub links: Vec<LinkView>,
    pub events: Vec<EventView>,
}

/// One event as `/admin/v1/replication` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    pub seq: u64,
    pub time_ms: u64,
    /// `upsert`, `delete`, `touch` (data applied here), or `peer_up`,
    /// `peer_down`, `peer_restarted`, `resync_needed`, `resync_done`,
    /// `snapshot_served`, `snapshot_received`, `ready`, `rebalanced`.
    pub kind: String,
    /// The other node involved, if any (the sender of applied data).
    pub peer: Option<String>,
    /// The session's first characters, for data events.
    pub session: Option<String>,
    /// `17@node-1`, for upserts and deletes.
    pub version: Option<String>,
    /// What applying did (`stored`, `overwrote`, `stale`, ...).
    pub outcome: Option<String>,
    /// Origin write to apply here, for fresh writes (not repairs).
    pub lag_ms: Option<f64>,
    /// The log line, as the node's log prints it.
    pub text: String,
}
