//! # sessionlab-replication: the runtime around the replication protocol
//!
//! Every node keeps a full copy of every session, and every change is sent
//! to every other node (all-to-all, after Tomcat's `DeltaManager`). The
//! protocol itself is `sessionlab-replication-core`: a deterministic state
//! machine ([`Replica`](sessionlab_replication_core::Replica)) that does no
//! I/O, reads no clock and is tested in a seeded simulation. This crate is
//! everything around it that does I/O:
//!
//! - [`Replication::start`] wires a replica to the node: a tokio driver
//!   (`runtime`) that ticks it and sends its batches over HTTP + JSON
//!   (`transport`), signed per [`auth`], with faults injected on request
//!   ([`FaultSet`]), counted in Prometheus metrics (`metrics`) and kept
//!   for watching (`events`);
//! - run-time membership (`membership`: SWIM over signed HTTP, `--join`,
//!   `--discover`) turning joins, leaves and deaths into peers, and the
//!   backup topology's remote fetch (`fetch`) of a session held elsewhere;
//! - the cluster listener's handlers (`http`), mounted by
//!   [`ReplicationHandle::configure`];
//! - [`ReplicatedStore`], the `SessionStore` the node's handlers use
//!   unchanged;
//! - the node's flags: `--replication` ([`ReplicationMode`]) and `--peer`
//!   ([`parse_peer`], [`PeerAddr`], kept as written and resolved when
//!   connecting).
//!
//! ## Why two crates
//!
//! The split is where the I/O starts. The core's dependency list has no
//! tokio networking, HTTP client or server, so the compiler, not a code
//! review, keeps the protocol sans-IO, and the simulation's promise (a seed
//! replays a run exactly) holds. This crate depends on the core and
//! re-exports the protocol types the node needs ([`AckMode`],
//! [`ProtocolConfig`], [`Batch`], [`Message`], ...), so a node uses one
//! crate.
//!
//! The modules are private; the crate's API is what is re-exported here
//! (`auth`, the cluster's request checks over `sessionlab-wire`'s signer,
//! is public as a module for the node's flags and the tests that sign
//! requests by hand). The full protocol is specified in `docs/protocol.md`.

pub mod auth;
mod events;
mod faults;
mod fetch;
mod flags;
mod http;
mod membership;
mod metrics;
mod runtime;
mod store;
mod transport;

pub use faults::FaultSet;
pub use flags::{ReplicationMode, parse_peer};
pub use membership::MembershipConfig;
pub use runtime::{PeerStatus, Replication, ReplicationConfig, ReplicationHandle, StartError};
pub use sessionlab_replication_core::ownership;
pub use sessionlab_replication_core::{
    AckMode, Batch, ConfigError, Delete, Granularity, MAX_LAMPORT, MAX_NODE_ID_LEN, MAX_USER_LEN,
    Message, PartitionPolicy, ProtocolConfig, Topology, Upsert,
};
/// A peer's cluster listener, `HOST:PORT` (a name is kept as written and
/// resolved by the HTTP client at each connection; one that does not
/// resolve yet is a peer that is down, tried again like any other).
pub use sessionlab_wire::addr::HostPort as PeerAddr;
pub use store::ReplicatedStore;
