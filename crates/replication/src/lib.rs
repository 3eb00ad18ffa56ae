//! # sessionlab-replication: all-to-all session replication
//!
//! Every node keeps a full copy of every session, and every change is sent
//! to every other node: Tomcat's `DeltaManager` ("all-to-all" session
//! clustering), rebuilt in small, testable pieces. With it a user can be
//! sent to any node, and a node can die without logging anyone out; the lab
//! measures what it costs (traffic that grows with the cluster, replication
//! lag, lost updates under asynchronous acks).
//!
//! The crate has three layers, from the inside out:
//!
//! 1. **The protocol core**, a deterministic state machine with no I/O
//!    ([`replica::Replica`]), after toydb's Raft node. Its parts, one file
//!    each: the wire [`message`]s, per-[`peer`] queues and liveness,
//!    [`tombstones`], [`acks`], [`antientropy`] and joining by
//!    [`snapshot`]. [`config`] holds every limit and timer.
//! 2. **The simulation** ([`sim`]): many replicas on a seeded, lossy,
//!    reordering network with crashes and partitions, used by the property
//!    tests and by the scripted golden tests in `tests/scripts/`.
//! 3. **The runtime**: [`runtime::Replication::start`] wires a replica to
//!    the node: a tokio driver that ticks it and sends its batches over
//!    HTTP + JSON ([`transport`]), signed per [`auth`], with [`faults`]
//!    injected on request, counted in [`metrics`] and kept for watching in
//!    [`events`]; the [`http`] handlers for
//!    the cluster listener; and [`store::ReplicatedStore`], the
//!    `SessionStore` the node's handlers use unchanged.
//!
//! The full protocol is specified in `docs/protocol.md`.

pub mod acks;
pub mod addr;
pub mod antientropy;
pub mod auth;
pub mod config;
pub mod events;
pub mod faults;
pub mod http;
pub mod message;
pub mod metrics;
pub mod order;
pub mod peer;
pub mod replica;
pub mod runtime;
pub mod sim;
pub mod snapshot;
pub mod store;
pub mod tombstones;
pub mod transport;

pub use addr::PeerAddr;
pub use config::{AckMode, ConfigError, ProtocolConfig, ReplicationMode, parse_peer};
pub use faults::FaultSet;
pub use message::{Batch, Message};
pub use replica::{Event, Output, Replica};
pub use runtime::{PeerStatus, Replication, ReplicationConfig, ReplicationHandle, StartError};
pub use store::ReplicatedStore;
