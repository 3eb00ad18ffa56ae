//! The one test kit of the workspace: what integration and unit tests of
//! every crate need to set up, written once.
//!
//! - [`free_port`] / [`free_ports`]: loopback ports for processes a test
//!   starts, chosen below the kernel's ephemeral range;
//! - [`spawn_logged`], [`log_tail`]: a child process logging to a file, and
//!   the end of that log for a failure message;
//! - [`sigterm`], [`terminate`], [`wait_exit`], [`kill`]: signals to child
//!   processes and bounded waits for their exit;
//! - [`RedisServer`]: a real `redis-server` on such a port, gone on drop;
//! - [`eventually`], [`until`], [`within`], [`poll`]: polling with a deadline
//!   instead of sleeps;
//! - [`Running`]: a server task in this process and its shutdown;
//! - [`sample`] / [`scrape`]: one value out of a Prometheus text endpoint;
//! - [`client`], [`set_cookies`], [`cookie_pair`]: an HTTP client that shows
//!   exactly what a server sent, and the cookies in it;
//! - with feature `fuzz`: [`fuzz_target!`], the bounded-fuzzing driver of
//!   every crate's `tests/fuzz.rs` (the seed corpus replayed, then proptest
//!   over arbitrary bytes and over shaped inputs);
//! - with feature `node`: [`node`], nodes inside the test process
//!   ([`node::TestNode`]) and the demo app's requests as tests make them;
//! - with feature `lb`: [`lb()`] (or [`lb_over`] a list of backends, [`lb_over_echoes`]
//!   new ones) and
//!   [`echo()`], an LB and echo backends in this process, and [`Http`], a
//!   bare client for them; [`TestCerts`], a CA and a `localhost` leaf for
//!   HTTPS tests.
//!
//! It is a dev-dependency only (`publish = false`): nothing here is on a
//! production path, so its helpers panic with a message instead of
//! returning errors — a failed setup is a failed test.

#[cfg(feature = "fuzz")]
pub mod fuzz;
#[cfg(feature = "net")]
mod http;
#[cfg(feature = "lb")]
mod lb;
#[cfg(feature = "net")]
mod metrics;
#[cfg(feature = "node")]
pub mod node;
#[cfg(feature = "net")]
mod poll;
mod ports;
mod process;
mod redis;
#[cfg(feature = "net")]
mod running;
#[cfg(feature = "lb")]
mod tls;

#[cfg(feature = "fuzz")]
#[doc(hidden)]
pub use proptest;

#[cfg(feature = "net")]
pub use http::{client, cookie_pair, header_lines, set_cookies};
#[cfg(feature = "lb")]
pub use lb::{
    DeadAddr, Echo, Http, Lb, Resp, backend_state, dead_addr, echo, lb, lb_over, lb_over_echoes,
    until_backend,
};
#[cfg(feature = "net")]
pub use metrics::{sample, scrape};
#[cfg(feature = "net")]
pub use poll::{eventually, poll, until, within};
pub use ports::{free_port, free_ports};
pub use process::{kill, log_tail, sigterm, spawn_logged, terminate, wait_exit};
pub use redis::RedisServer;
#[cfg(feature = "net")]
pub use running::{Running, Shutdown};
#[cfg(feature = "lb")]
pub use tls::TestCerts;
