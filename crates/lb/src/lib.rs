//! # sessionlab-lb: a load balancer for the session lab
//!
//! An HTTP/1.1 reverse proxy in front of N `sessionlab-node`s. It exists to
//! show, in running code, the ways a load balancer keeps a user on "their"
//! server (or deliberately doesn't), and what happens when that server dies.
//!
//! ## A request's path through the code
//!
//! ```text
//! server.rs    accept, keep-alive, graceful shutdown
//!    |
//! proxy.rs     read body (bounded) ──> select.rs: ordered candidates
//!    |                                    (strategy, cookie.rs, ring.rs)
//!    |         rewrite headers (forward.rs), drop SLROUTE
//!    |         try candidates in order ──> upstream.rs + pool.rs (keep-alive,
//!    |                                         driven in this task)
//!    |              failure? error.rs says whether a retry is safe;
//!    |              connect errors/timeouts feed health (passive)
//!    |         answer: strip hop-by-hop, insert/rewrite SLROUTE
//!    v
//! recent.rs    the routing decision, for the admin API
//! ```
//!
//! Beside it: `backend.rs` (the copy-on-write backend table and each
//! backend's counters), `health.rs` (rise/fall state machine and the active
//! checker), `admin.rs` + `metrics.rs` (the admin listener), `config.rs`
//! (flags, env, TOML), `shard.rs` (per-thread counters), and `balancer.rs`,
//! which wires it all together in [`run`]. `echo.rs` is a test tool: a tiny
//! backend for tests and the benchmark. The live dashboard is a process of
//! its own (crate `sessionlab-dashboard`) that reads this LB's admin API.
//! `docs/lb.md` is the guided tour.

pub mod admin;
pub mod backend;
pub mod balancer;
pub mod config;
pub mod cookie;
pub mod echo;
pub mod error;
pub mod forward;
pub mod health;
pub mod metrics;
pub mod pool;
pub mod proxy;
pub mod recent;
pub mod ring;
pub mod select;
pub mod server;
pub mod shard;
pub mod upstream;

pub use balancer::{Listeners, run};
pub use config::{Config, Settings};
pub use select::Strategy;
