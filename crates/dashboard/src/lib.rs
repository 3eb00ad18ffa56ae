//! # sessionlab-dashboard: the live page over a sessionlab cluster
//!
//! A process of its own, beside the load balancer rather than inside it:
//! it reads the LB's admin API (backends, routing log, latency totals) and
//! each node's cluster listener (status, sessions, replication links and
//! events) over HTTP, and draws one page a person keeps open while
//! breaking the cluster. Its buttons (drain, kill, restart, partition,
//! heal) call the lab's own code (`sessionlab-lab`) in this process, on the
//! run folder `sessionlab up` gives it, so a button and the command a
//! person would type are the same code.
//!
//! - `config.rs`: the flags, parsed once into [`Settings`];
//! - `fetch.rs`: HTTP calls to the LB and the nodes, each with a deadline
//!   and a bounded answer;
//! - `cluster_view.rs`: every backend with what its node says;
//! - `history.rs`: requests/s and p99 per backend over five minutes, from
//!   differences of the LB's totals;
//! - `lab_control.rs`: the buttons;
//! - `routes.rs`: the page, its endpoints, and the token, origin and Host
//!   checks;
//! - `peer.rs`: whose connection it is, for a dashboard without a token;
//! - `server.rs`: [`run`], which wires it together.
//!
//! `docs/dashboard.md` is the tour.

mod cluster_view;
mod config;
mod fetch;
mod history;
mod lab_control;
mod peer;
mod routes;
mod server;

pub use config::{Config, ConfigError, HostPort, NodeAdmin, Settings};
pub use server::run;
