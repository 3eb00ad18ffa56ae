//! # sessionlab-node: one web server of the lab
//!
//! An actix-web server with a demo app (login, a counter, a small cart, a
//! page that says which node answered) and a session layer of its own, so
//! every step of "how does this server remember me?" is code you can read
//! here rather than inside a framework.
//!
//! The parts, each a folder, in the order a request meets them:
//!
//! - `config/`: the flags (also from `SESSIONLAB_*` env vars), parsed once
//!   into typed [`NodeOptions`], one part per component.
//! - `server.rs`: binds nothing itself; takes bound listeners and a shutdown
//!   future, runs the app server and the cluster server over one shared
//!   `NodeState` (`state.rs`).
//! - `session/`: the session layer: the middleware around every app
//!   request, the session as handlers see it, how the id travels (cookie
//!   or URL), binding to a client, replaying writes after a conflict.
//! - `app/`: the demo app's routes and its HTML pages.
//! - `guard/`: who the client is (`X-Forwarded-For` from a trusted proxy),
//!   its rate limits, and the refusal of other sites' state-changing
//!   requests.
//! - `auth/`: who the user is: argon2 password checks, and jwt mode's
//!   tokens and routes.
//! - `store/`: which [`SessionStore`](sessionlab_session::SessionStore)
//!   holds the sessions (memory, replicated, Redis), decided in one place.
//! - `ops/`: the cluster listener's health, metrics and admin views, and
//!   the process memory they report.
//! - `error.rs`: every failure as an HTTP status and a JSON body.
//!
//! `main.rs` only parses the flags into [`NodeOptions`] and calls [`run`].
//! The public API is what it and the tests use: the options, [`wire`] for
//! the store, [`Listeners`] and [`run`] (or [`node_state`] and [`app()`] to
//! drive the app in-process).

mod app;
mod auth;
mod config;
mod error;
mod guard;
mod ops;
mod server;
mod session;
mod state;
mod store;

/// The parsers of what a client presents to find its session: the cookie
/// (or `;sid=`) value `<id>[.<route>]`, and the `;sid=` path parameter of
/// url tracking mode, as the session middleware uses them. Public so the
/// fuzz targets and property tests (`tests/fuzz.rs`) drive them directly.
pub mod presented {
    pub use crate::session::cookie::{PresentedId, parse_value};
    pub use crate::session::tracking::{SID_PARAM, UrlSid, split_sid, strip_from_request};
}

pub use app::EXTERNAL_LINK;
pub use auth::hash_password;
pub use config::{
    AuthOptions, BindSession, Cli, ClientOptions, ClusterSecret, Command, Flags, InvalidConfig,
    JwtKeys, JwtOptions, JwtSecret, Limits, ListenOptions, MemoryOptions, NodeOptions, RateLimit,
    RedisOptions, ReferrerPolicy, ReplicationOptions, StoreOptions, Timeouts, Tracking,
    UsersSource,
};
pub use error::{NodeError, StartError};
pub use ops::release_large_blocks;
pub use server::{AppFactory, Listeners, app, node_state, run};
pub use state::NodeState;
pub use store::{
    ClusterRoutes, MetricsHook, PeerStatus, Readiness, ShutdownHook, StatusProvider, StoreWiring,
    wire,
};
