//! Where sessions live: the store wiring.
//!
//! Handlers only ever see an `Arc<dyn SessionStore>`. Which store is behind
//! it (this node's memory, memory replicated to the peers, or one shared
//! Redis) is the experiment the lab runs, so it is decided in one place,
//! [`wire`], from the [`StoreOptions`](crate::StoreOptions):
//!
//! - [`wiring`]: the [`StoreWiring`] (the store and what it needs from the
//!   node: readiness, cluster routes, status, metrics, background tasks),
//!   the memory and the replicated stores;
//! - [`redis`]: the Redis store's wiring, with the health flag that makes
//!   the node *degraded* while Redis is unreachable.
//!
//! The stores themselves are in `sessionlab-session` (memory, Redis) and
//! `sessionlab-replication` (the replicated store).

pub(crate) mod redis;
pub(crate) mod wiring;

pub use wiring::{
    ClusterRoutes, MetricsHook, PeerStatus, Readiness, ShutdownHook, StatusProvider, StoreWiring,
    wire,
};
