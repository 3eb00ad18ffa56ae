//! # sessionlab-node: one web server of the lab
//!
//! An actix-web server with a demo app (login, a counter, a small cart, a
//! page that says which node answered) and a session layer of its own, so
//! every step of "how does this server remember me?" is code you can read
//! here rather than inside a framework.
//!
//! A tour, in the order a request meets the code:
//!
//! - [`config`]: every flag (also from `SESSIONLAB_*` env vars).
//! - [`server`]: binds nothing itself; takes bound listeners and a shutdown
//!   future, runs the app server and the cluster server.
//! - [`session_mw`]: the middleware around every app request (span, `;sid=`
//!   stripping, writing back the session and its cookie).
//! - [`websession`]: the session as handlers see it: load on demand, create
//!   on first write, rotate at login, delete at logout.
//! - [`cookie`] and [`tracking`]: how the id travels (cookie attributes; URL
//!   rewriting).
//! - [`app`] and [`page`]: the demo app's routes and its HTML page.
//! - [`users`]: argon2 password checks.
//! - [`wiring`]: which [`SessionStore`](sessionlab_session::SessionStore)
//!   holds the sessions, decided in one place ([`redis_wiring`] for the
//!   shared Redis store, with [`cas`] replaying a change after a
//!   compare-and-set conflict).
//! - [`token_auth`] and [`auth_routes`]: jwt mode, where a signed bearer
//!   token says who the user is; [`jwt_page`] is its demo page.
//! - [`binding`]: `--bind-session user-agent`, a weak defence against a
//!   stolen id, shown as one.
//! - [`admin`] and [`metrics`]: the cluster listener's health, metrics and
//!   admin views ([`process_memory`]: the memory the status reports).
//! - [`error`]: every failure as an HTTP status and a JSON body.
//!
//! `main.rs` only parses flags and calls [`server::run`].

pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod ops;
pub mod server;
pub mod session;
pub mod state;
pub mod store;

pub use config::{
    Auth, BindSession, Cli, Command, Config, OnOff, ReferrerPolicy, StoreKind, Tracking,
};
pub use error::{NodeError, StartError};
pub use server::{Listeners, run, shutdown_signal};
pub use store::wiring::{
    ClusterRoutes, MetricsHook, PeerStatus, Readiness, ShutdownHook, StatusProvider, StoreWiring,
    wire,
};
