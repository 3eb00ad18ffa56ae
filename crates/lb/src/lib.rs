//! # sessionlab-lb: a load balancer for the session lab
//!
//! An HTTP/1.1 reverse proxy in front of N `sessionlab-node`s. It exists to
//! show, in running code, the ways a load balancer keeps a user on "their"
//! server (or deliberately doesn't), and what happens when that server dies.
//!
//! ## The parts
//!
//! | folder | part |
//! |---|---|
//! | `config/` | flags, env and the backend file, parsed once into typed options |
//! | `proxy/` | the forwarding path: accept, read, rewrite, try candidates, answer |
//! | `select/` | which backends may serve a request, in order (strategies, hash ring) |
//! | `backend/` | the copy-on-write backend table and each backend's counters |
//! | `discovery.rs` | `--discover`: backends found by DNS, added and removed as the name's answer changes |
//! | `health/` | rise/fall state machine, active and passive checks |
//! | `admin/` | the admin listener: API, Prometheus metrics, recent-requests log |
//! | `tls/` | HTTPS: certificate and key, handshakes, HSTS and the redirect from HTTP |
//! | `balancer.rs` | wires it all together in [`run`] |
//!
//! ## A request's path through the code
//!
//! ```text
//! proxy/server.rs   accept, keep-alive, limits, graceful shutdown
//!    |
//! proxy/path.rs     read body (bounded) ──> select/strategy.rs: ordered candidates
//!    |                                         (proxy/cookie.rs, select/ring.rs)
//!    |              rewrite headers (proxy/forward.rs), drop SLROUTE
//!    |              try candidates in order ──> proxy/upstream.rs + proxy/pool.rs
//!    |                   failure? proxy/error.rs says whether a retry is safe;
//!    |                   connect errors/timeouts feed health (passive)
//!    |              answer: strip hop-by-hop, insert/rewrite SLROUTE
//!    v
//! admin/recent.rs   the routing decision, for the admin API
//! ```
//!
//! `echo` (cargo feature `echo`, off by default) is a test tool: a tiny
//! backend for tests and the benchmark; it is not in the production
//! library. The live dashboard is a process of its own (crate
//! `sessionlab-dashboard`) that reads this LB's admin API. `docs/lb.md` is
//! the guided tour.

mod admin;
mod backend;
mod balancer;
mod config;
mod discovery;
#[cfg(feature = "echo")]
pub mod echo;
mod health;
mod proxy;
mod select;
mod tls;

/// The rewrites every request head gets before it is forwarded (hop-by-hop
/// headers, `X-Forwarded-*`, the LB's own cookie), public only for the
/// fuzz property tests (`tests/fuzz.rs`).
#[doc(hidden)]
pub mod head {
    pub use crate::proxy::cookie::{find, strip};
    pub use crate::proxy::forward::{
        Scheme, TrustedProxies, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO,
        add_forwarded, strip_hop_by_hop,
    };
}

pub use balancer::{BindError, Listeners, run};
pub use config::{
    AdminOptions, AdminToken, ConfigError, Flags, LbOptions, ListenOptions, SelectionOptions,
    TlsOptions,
};
pub use proxy::server::shutdown_signal;
pub use select::Strategy;
pub use tls::{TlsError, TlsIdentity};
