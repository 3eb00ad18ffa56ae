//! # sessionlab-load: simulated users that measure instead of guessing
//!
//! A load tool usually reports throughput and latency. This one also knows
//! what each user *should* see, because it remembers what the cluster told
//! it: so it can count the failures that matter for sessions.
//!
//! - `config`: users, duration, rate, think time, the operation mix.
//! - [`client`]: one simulated browser with its own cookie jar (or tokens);
//!   its tabs share the jar; [`tls`]: the CA it trusts over HTTPS.
//! - [`model`]: the user's expectations; sessions lost, stale reads, lost
//!   updates are decided here, as pure bookkeeping.
//! - [`user`]: the loop of one user (log in, then reads and writes).
//! - [`stats`]: per-user recorders with HdrHistogram latency and a timeline.
//! - [`prom`]: scraping the servers' `/metrics` for what they paid.
//! - [`history`]: every operation of every user, one JSON line each (the
//!   format other tools can read); [`check`]: the session guarantees a
//!   history keeps, and counterexamples for those it breaks.
//! - [`run`]: a whole run; [`report`]: its figures, as JSON and a table;
//!   [`chart`]: SVG charts of several runs side by side, and of a figure against the cluster size.
//!
//! The `sessionlab` command (crate `sessionlab-lab`) drives it: `load`
//! against a running cluster with a fault timeline, and `compare` over
//! every mode.

mod chart;
pub mod check;
mod client;
mod config;
pub mod history;
mod model;
mod prom;
mod report;
mod run;
mod stats;
mod tls;
mod user;

pub use chart::{Scale, SizeSeries, losses_chart, size_chart, timeline_chart};
pub use config::{AuthMode, LoadConfig, Mix};
pub use report::{LoadReport, Mark, ServerCosts};
pub use run::{LoadRun, MetricsTargets, run};
pub use stats::Recorder;
pub use tls::TrustedCa;
pub use user::Progress;
