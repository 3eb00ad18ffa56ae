//! What every sessionlab process agrees on, in one place.
//!
//! The node, the load balancer, the lab and the load tool are separate
//! programs that talk over HTTP. Whatever one writes and another reads is a
//! contract, and a contract kept in two copies drifts: the copies end up
//! disagreeing on duplicates, on which dot separates a route, on a field
//! name. This crate holds the one copy of each:
//!
//! - [`addr`]: `HOST:PORT` as every flag that names another process takes it, and the address picked among a name's answers;
//! - [`cookie`]: the cookie names and the one `Cookie` header parser;
//! - [`route`]: the `<session-id>.<node-id>` route suffix;
//! - [`status`]: the `/admin/v1/status` answer a node serves and the lab reads;
//! - [`lb_admin`]: the LB's `/admin/v1/backends` bodies, which the lab reads;
//! - [`replication_log`]: a replicating node's `/admin/v1/replication` answer (its recent events and links);
//! - [`metrics`]: the Prometheus metric names producers register and readers scrape;
//! - [`served_by`]: the `X-Served-By` header naming the node that answered;
//! - [`strategy`]: the LB's strategy names, which the lab's modes use;
//! - [`hash`]: the stable 64-bit hash behind every placement (LB rings, session owners);
//! - [`signer`]: the HMAC-SHA256 request signature of cluster traffic;
//! - [`keys`]: keys derived from the cluster secret (HKDF);
//! - [`admin_auth`]: the token, `Origin`, `Host` and content-type checks of
//!   every operator-only listener;
//! - [`clock`] and [`rss`]: the wall clock in ms and a process's resident memory.
//! - [`ports`]: free loopback ports that parallel pickers (labs, tests) never share.
//! - [`redis_server`]: the arguments of the throwaway `redis-server` the lab and the tests start.
//!
//! It has no HTTP server or client in it (and no async runtime): the lab and
//! the load tool can depend on it without pulling in a web framework.

pub mod addr;
pub mod admin_auth;
pub mod clock;
pub mod cookie;
pub mod hash;
pub mod keys;
pub mod lb_admin;
pub mod metrics;
pub mod ports;
pub mod redis_server;
pub mod replication_log;
pub mod route;
pub mod rss;
pub mod served_by;
pub mod signer;
pub mod status;
pub mod strategy;

pub use cookie::{Presented, ROUTE_COOKIE, SESSION_COOKIE};
pub use status::{
    DiscoveryStatus, MemberStatus, MembershipStatus, NodeStatus, PeerStatus, RebalanceStatus,
};
