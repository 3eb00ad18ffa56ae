//! # sessionlab-replication-core: the replication protocol, sans I/O
//!
//! Every node keeps a full copy of every session, and every change is sent
//! to every other node: Tomcat's `DeltaManager` ("all-to-all" session
//! clustering), rebuilt in small, testable pieces. This crate is the
//! protocol itself, as a deterministic state machine ([`Replica`]) after
//! toydb's Raft node: every input is a method call with the current time
//! passed in, every effect (a batch to send, a finished ack, an event) is
//! an [`Output`] the caller collects. Its parts, one private module each:
//!
//! - `message`: what travels between nodes ([`Batch`], [`Message`]) and the
//!   limits a receiver checks ([`Rejected`]); `codec`: its compact binary
//!   wire form; `shared`: one message for many peer queues, encoded once
//!   ([`Shared`]);
//! - `replica`: the state machine, and the rules (last writer wins, last
//!   access is a maximum, deletes are final) in one place;
//! - `peer`: per-peer queues, liveness and resync; `acks`: writes waiting
//!   for the peers' acks ([`AckMode`]); `tombstones`: deletes that stay
//!   final; `antientropy`: digest rounds that repair what queues lost;
//!   `granularity`: whole-session or per-key merging of concurrent writes
//!   ([`Granularity`], [`merge`]);
//!   `snapshot`: joining by paged snapshot; `order`: the tie-break for equal
//!   versions;
//! - `config`: [`ProtocolConfig`], every limit and timer; `keyword`: the
//!   [`keyword_enum!`] table behind the one-keyword flag values;
//! - `membership` (public): who is in the cluster, learnt at run time: a
//!   SWIM failure detector and gossip ([`membership::Membership`]);
//! - `ownership` (public): which `K + 1` members own a session in the
//!   backup topology (rendezvous hashing) and who hands a copy to whom when
//!   the members change;
//! - `sim` (feature `sim`, for tests): many replicas on a seeded, lossy,
//!   reordering network with crashes and partitions (`Sim`), used by the
//!   property tests and the scripted golden tests in `tests/scripts/`.
//!
//! ## Why a crate of its own
//!
//! "The core does no I/O" is a promise the simulation depends on: a seed
//! replays a run exactly only if nothing in the core touches a socket, a
//! runtime or a clock. As a module next to the transport that promise was a
//! convention; as a crate whose dependencies are the session types, serde (with
//! serde_json and postcard, pure encoders), thiserror and tracing, it is checked by the compiler: there is no tokio
//! networking, HTTP client or server here to call. The transport, the
//! tokio driver, the cluster listener's handlers, metrics and the
//! `SessionStore` the node uses live in `sessionlab-replication`, which
//! depends on this crate.
//!
//! The full protocol is specified in `docs/protocol.md`.

mod acks;
mod antientropy;
pub mod codec;
mod config;
mod granularity;
mod keyword;
pub mod membership;
mod message;
mod order;
pub mod ownership;
mod peer;
mod rebalance;
mod replica;
mod shared;
#[cfg(feature = "sim")]
mod sim;
mod snapshot;
#[cfg(test)]
mod test_ids;
mod tombstones;

pub use acks::AckWait;
pub use config::{
    AckMode, ConfigError, MAX_BACKUPS, MAX_REBALANCE_PER_TICK, PartitionPolicy, ProtocolConfig,
    Topology,
};
pub use granularity::{Granularity, canonical, merge, stamp_local};
#[doc(hidden)]
pub use keyword::one_of;
pub use message::{
    Batch, Delete, DigestEntry, MAX_BATCH_MESSAGES, MAX_LAMPORT, MAX_LIST_ENTRIES, MAX_NODE_ID_LEN,
    MAX_USER_LEN, Message, Rejected, SnapshotEntry, Upsert,
};
pub use peer::ResyncReason;
pub use rebalance::RebalanceView;
pub use replica::{Event, LocalDelete, LocalWrite, Outcome, Output, PeerView, Replica};
pub use shared::Shared;
#[cfg(feature = "sim")]
pub use sim::{
    EPOCH_MS, NetworkFaults, Rng, Sim, SimConfig, SimError, TraceFilter, Traffic, session_id,
};
pub use tombstones::Tombstones;
