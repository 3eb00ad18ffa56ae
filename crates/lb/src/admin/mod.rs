//! The admin listener: the operator's view of the LB and its controls.
//!
//! | file | concept |
//! |---|---|
//! | [`routes`] | the admin API (backends, drain, requests log, latency), `/metrics`, `/healthz` |
//! | [`metrics`] | Prometheus text read from the live counters at scrape time |
//! | [`recent`] | the bounded log of recent routing decisions |
//!
//! Why a listener of its own: the public port faces every client, the
//! admin port only the operator (default 127.0.0.1), so a mistake in one
//! cannot expose the other.

pub(crate) mod metrics;
pub(crate) mod recent;
pub(crate) mod routes;

pub(crate) use routes::Admin;
