//! The replication of a counterexample's writes, from the nodes' event logs.
//!
//! A counterexample says "the read on node-2 began after the increment on
//! node-1 was acknowledged, and did not see it". Why is in the nodes' event
//! logs (`GET /admin/v1/replication`, `crates/replication/src/events.rs`):
//! each node records every write it applies from a peer, with the sender,
//! the session's first characters, the version (`17@node-1`), when it was
//! applied (wall clock, ms) and the lag since the origin wrote it. Drawn
//! into the space-time diagram, the copy of the write is an arrow from the
//! origin node (at the write) to the receiving node (at the apply), and a
//! read that began before the arrow's head was bound to miss it.
//!
//! **The clocks.** The history's times are µs since the run started on the
//! load tool's monotonic clock; the events' times are the nodes' wall
//! clocks in ms. [`ReplicationLog::run_start_ms`] is the load tool's wall
//! clock when the run started, so an event at `time_ms` is placed at
//! `(time_ms - run_start_ms) * 1000` µs. That is honest only as far as the
//! clocks agree (the lab runs every node on the machine of the load tool,
//! so they share one wall clock, to the millisecond) and the diagram says
//! which arrows use the nodes' clocks.
//!
//! **The mapping.** An increment's answer carries only the counter, not
//! the version it made, so its write is found by what is known of it: the
//! session (the `session` prefix a read of the same login carried), the
//! origin (the node that served the increment, the `@node` of the version)
//! and the time (the origin wrote it between the increment's invoke and
//! complete; of the candidate versions the one written nearest that window
//! wins, and one further away than [`SLACK_MS`] is not taken). Without a
//! session prefix nothing is drawn: versions are per session, so `17@node-1`
//! alone names many writes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sessionlab_wire::replication_log::EventView;

use super::Counterexample;
use crate::history::OpKind;

/// How far (ms) outside the increment's window the origin's write may
/// appear on the nodes' clocks and still be taken for it: the wall clocks
/// and the ms rounding of the events.
pub const SLACK_MS: f64 = 5.0;

/// The replication events of a run: the sidecar of a history
/// (`FILE.replication.json`, see `docs/lab.md`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicationLog {
    /// The load tool's wall clock (ms since the epoch) when the run
    /// started, the `0` of the history's `invoke_us` and `complete_us`.
    pub run_start_ms: u64,
    /// Per receiving node, its events as `/admin/v1/replication` showed
    /// them (fields not used here are ignored).
    pub nodes: BTreeMap<String, Vec<NodeEvent>>,
}

/// One event of a node's log: the fields of its [`EventView`] the diagram
/// uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeEvent {
    pub time_ms: u64,
    pub kind: String,
    /// The sender of applied data.
    #[serde(default)]
    pub peer: Option<String>,
    #[serde(default)]
    pub session: Option<String>,
    /// `17@node-1`.
    #[serde(default)]
    pub version: Option<String>,
    /// Origin write to apply here.
    #[serde(default)]
    pub lag_ms: Option<f64>,
}

impl From<EventView> for NodeEvent {
    fn from(e: EventView) -> NodeEvent {
        NodeEvent {
            time_ms: e.time_ms,
            kind: e.kind,
            peer: e.peer,
            session: e.session,
            version: e.version,
            lag_ms: e.lag_ms,
        }
    }
}

/// A copy of a write, on the history's time axis (µs since the run start,
/// converted from the nodes' clocks).
#[derive(Debug, Clone, PartialEq)]
pub struct Arrow {
    pub from: String,
    pub from_us: u64,
    pub to: String,
    pub to_us: u64,
    pub version: String,
}

/// The arrows of the counterexample's increments: for each, the copies of
/// the write it made, one per receiving node.
pub fn arrows(ex: &Counterexample, log: &ReplicationLog) -> Vec<Arrow> {
    let Some(session) = ex.ops.iter().find_map(|o| o.session.as_deref()) else {
        return Vec::new();
    };
    let at_us = |ms: f64| -> Option<u64> {
        let rel = ms - log.run_start_ms as f64;
        (rel >= 0.0).then(|| (rel * 1000.0).round() as u64)
    };
    // Every fresh copy of the session's writes: (version, origin, origin
    // time ms, receiver, apply time ms).
    let mut copies = Vec::new();
    for (node, events) in &log.nodes {
        for e in events {
            let (Some(s), Some(v), Some(lag)) = (&e.session, &e.version, e.lag_ms) else {
                continue;
            };
            if e.kind != "upsert" || !(s.starts_with(session) || session.starts_with(s.as_str())) {
                continue;
            }
            let Some((_, origin)) = v.split_once('@') else {
                continue;
            };
            let applied = e.time_ms as f64;
            copies.push((v.as_str(), origin, applied - lag, node.as_str(), applied));
        }
    }
    let mut out = Vec::new();
    for op in ex.ops.iter().filter(|o| o.op == OpKind::Increment) {
        let Some(node) = op.node.as_deref() else {
            continue;
        };
        let lo = log.run_start_ms as f64 + op.invoke_us as f64 / 1000.0;
        let hi = log.run_start_ms as f64 + op.complete_us as f64 / 1000.0;
        let distance = |t: f64| (lo - t).max(t - hi).max(0.0);
        let best = copies
            .iter()
            .filter(|c| c.1 == node && distance(c.2) <= SLACK_MS)
            .min_by(|a, b| distance(a.2).total_cmp(&distance(b.2)))
            .map(|c| c.0);
        let Some(version) = best else { continue };
        for &(v, origin, written, to, applied) in &copies {
            if v != version {
                continue;
            }
            if let (Some(from_us), Some(to_us)) = (at_us(written), at_us(applied)) {
                out.push(Arrow {
                    from: origin.to_owned(),
                    from_us,
                    to: to.to_owned(),
                    to_us,
                    version: v.to_owned(),
                });
            }
        }
    }
    out
}
