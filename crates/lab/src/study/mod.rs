//! `sessionlab study`: questions that need many clusters, not one.
//!
//! `compare` asks what each mode loses at one cluster size. A study varies
//! the cluster itself and measures what changes:
//!
//! | study | varies | measures |
//! |---|---|---|
//! | [`scale`] | the cluster size, per mode, with the same load per node | throughput, latency, replication messages and bytes per write, session copies, memory and CPU per node, sessions lost on a kill |
//! | [`churn`] | the node list (one node added, one removed), per LB strategy and mode | the share of users who land on another node, and what that costs (sessions lost, requests refused) |
//!
//! Every cell is a fresh cluster in a run folder of its own on free ports
//! (the same `up` as `sessionlab up`), taken down afterwards, so cells do
//! not disturb each other; the figures come from real requests through the
//! real LB.

pub mod churn;
mod probe;
pub mod scale;

use std::time::Duration;

use clap::Subcommand;

use crate::error::Result;

/// The studies.
#[derive(Debug, Clone, Subcommand)]
pub enum Study {
    /// The same load per node on clusters of growing size, per mode:
    /// what replication, memory and CPU cost as N grows, and what a kill
    /// loses. Writes report.md, report.json and SVG charts.
    Scale(scale::ScaleArgs),
    /// Add a node and remove one under a population of users: per LB
    /// strategy, the share of users who land on another node; per mode,
    /// what that move costs. Writes report.md and report.json.
    Churn(churn::ChurnArgs),
}

/// Runs a study; returns what to print.
pub async fn run(study: Study, health_timeout: Duration, grace: Duration) -> Result<String> {
    match study {
        Study::Scale(args) => scale::run(args, health_timeout, grace).await,
        Study::Churn(args) => churn::run(args, health_timeout, grace).await,
    }
}
