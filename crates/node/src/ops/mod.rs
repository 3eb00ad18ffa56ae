//! The operator's view of a node, on the cluster listener.
//!
//! - [`admin`]: `/healthz`, `/metrics`, `/admin/v1/status` and
//!   `/admin/v1/sessions`, on a port of their own (the admin views list
//!   every session, so they must not be reachable by the users);
//! - [`metrics`]: the Prometheus registry: requests by route and status,
//!   latency, sessions, logins, refusals, and what the store adds;
//! - [`process_memory`]: the resident memory the status reports, and
//!   returning large freed blocks to the OS.

pub(crate) mod admin;
pub(crate) mod metrics;
pub(crate) mod process_memory;

pub use process_memory::release_large_blocks;
