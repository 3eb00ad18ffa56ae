//! # sessionlab-lab: the `sessionlab` command
//!
//! One command to run a cluster of `sessionlab-node` processes behind a
//! `sessionlab-lb` in any of the session modes, break it (kill a node, cut
//! its replication links, drain it) and heal it, with real processes on
//! 127.0.0.1, so what a person sees is what the system does.
//!
//! The pieces, each in its own module:
//!
//! - [`preset`]: the modes matrix as a table: LB strategy and node flags per mode.
//! - [`runfolder`]: the on-disk memory between commands (`.sessionlab/`).
//! - [`process`]: starting detached processes, finding them again safely,
//!   SIGTERM-then-SIGKILL.
//! - [`ports`]: the well-known ports, or free ones for tests.
//! - [`health`]: what "healthy" means and waiting for it.
//! - [`api`]: the HTTP client for the node and LB admin APIs, and signing
//!   requests to the node's cluster port.
//! - [`cluster`]: `up`, `down`, `kill`, `restart`, `drain`, `scale`.
//! - [`lb`]: which LB fronts the nodes (sessionlab-lb, HAProxy, nginx): the
//!   generated HAProxy and nginx files, HAProxy's runtime API, `config lb`.
//! - [`actions`]: kill, restart, partition, heal, drain as one call each,
//!   for the subcommands and the dashboard's buttons (which call them in
//!   the dashboard's own process).
//! - [`faults`]: `partition` and `heal`.
//! - [`status`]: the status table.
//! - [`logs`]: per-process logs, `--follow`.
//! - [`redis`]: the Redis server beside a `redis`-mode cluster.
//! - [`redis_ha`]: the primary, replica and Sentinels of a `redis-ha` cluster.
//! - [`attack`]: `attack hijack` and `attack fixation`, the hijacking lab.
//! - [`workload`], [`faultplan`], [`load`], [`memory`]: `load`, simulated
//!   users (crate `sessionlab-load`) with faults on a timeline.
//! - [`failover`]: what a Redis failover cost a run (write outage, losses).
//! - [`compare`], [`compare_report`]: `compare`, every mode under the same
//!   workload, one report with a table and charts.
//! - [`study`]: `study scale` and `study churn`, many clusters, one
//!   question (how each mode's costs grow with the cluster; what adding or
//!   removing a node does to where users land); [`cpu`]: CPU time from `/proc`.
//! - [`cli`]: the flags and what each command prints.
//!
//! `docs/lab.md` walks through how these fit together.

mod actions;
mod api;
mod attack;
mod check;
mod cli;
mod cluster;
mod compare;
mod compare_report;
mod cpu;
mod error;
mod events;
mod failover;
mod faultplan;
mod faults;
mod health;
mod lb;
mod load;
mod logs;
mod memory;
mod ports;
mod preset;
mod process;
mod redis;
mod redis_ha;
mod runfolder;
mod status;
mod study;
mod tls;
mod workload;

pub use actions::{Action, drained, perform};
pub use api::sign;
pub use cli::main;
pub use cluster::Lab;
pub use error::{LabError, Result};
pub use lb::{LbKind, foreign_view as lb_view};
pub use preset::Mode;
pub use runfolder::{ClusterState, LbState, NodeState, RunFolder, generate_secret};
