//! The result of a run: figures a person can read and a program can check.
//!
//! A [`LoadReport`] holds every number of one run, measured, never looked up:
//! what the users saw (requests, errors by kind, latency quantiles, sessions
//! lost, stale reads, lost updates, which node served what), what the
//! servers paid (replication messages and bytes, replication lag) and a
//! timeline with the faults marked; and the session guarantees checked over
//! the run's history. With several clients per user, each client knows only
//! its own increments, so the acknowledged and lost increments are counted
//! from the history by the checker (the cart changes stay per client: the
//! clients of one user change different items). It serializes to JSON (`--json`, and
//! `report.json` in a comparison) and renders as a text table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::check::{self, CheckReport, Violation};
use crate::config::LoadConfig;
use crate::history::{self, OpKind, Operation};
use crate::prom::Scrape;
use crate::stats::{ErrorKind, Recorder, quantile_ms};
use crate::user::UserResult;

/// Metric names the nodes export on their cluster listener's `/metrics`
/// (the shared contract, [`sessionlab_wire::metrics::scraped`]).
pub use sessionlab_wire::metrics::scraped as metric_names;

/// A fault (or any event) at a moment of the run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Mark {
    pub at_s: f64,
    pub label: String,
}

/// What the servers paid during the run (growth of their counters).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerCosts {
    /// Replication messages sent by every node, heartbeats included.
    pub replication_messages: f64,
    pub replication_bytes: f64,
    /// Replication lag quantiles of the writes applied during the run.
    pub replication_lag_p50_ms: Option<f64>,
    pub replication_lag_p99_ms: Option<f64>,
    /// Sessions held by all running nodes at the end (a replicated
    /// session counts once per copy).
    pub sessions_held: f64,
    /// Their approximate bytes, all copies.
    pub session_bytes_held: f64,
    /// Resident memory (VmRSS) per process at the end, when the caller
    /// knows the pids.
    pub memory_bytes: BTreeMap<String, u64>,
}

impl ServerCosts {
    /// Costs from the growth of the nodes' counters over the run, and the
    /// gauges of the last scrape of the nodes still running (`at_end`).
    pub fn from_growth(grown: &Scrape, at_end: &Scrape) -> ServerCosts {
        use metric_names::*;
        let lag = |q| {
            grown
                .histogram_quantile(REPL_LAG_SECONDS, q)
                .map(|s| s * 1000.0)
        };
        ServerCosts {
            replication_messages: grown.sum(REPL_MESSAGES, &[SENT]),
            replication_bytes: grown.sum(REPL_BYTES, &[SENT]),
            replication_lag_p50_ms: lag(0.5),
            replication_lag_p99_ms: lag(0.99),
            sessions_held: at_end.sum(SESSIONS, &[]),
            session_bytes_held: at_end.sum(SESSION_BYTES, &[]),
            memory_bytes: BTreeMap::new(),
        }
    }
}

/// One timeline bucket, flattened for JSON and charts.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub t_s: f64,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub sessions_lost: u64,
    pub stale_reads: u64,
    pub served_by: BTreeMap<String, u64>,
}

/// Every figure of one run.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub label: String,
    pub users: usize,
    pub duration_s: f64,
    pub requests: u64,
    pub throughput_rps: f64,
    pub errors: BTreeMap<ErrorKind, u64>,
    pub error_total: u64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_p999_ms: f64,
    pub logins: u64,
    pub sessions_lost: u64,
    pub stale_reads: u64,
    pub stale_writes: u64,
    pub acked_increments: u64,
    pub lost_increments: u64,
    pub lost_cart_changes: u64,
    /// `lost_increments + lost_cart_changes`.
    pub lost_updates: u64,
    /// Writes (increments, cart changes) the cluster refused with 503:
    /// with `--partition-policy consistent`, the ones it could not get to
    /// a majority. Refused, not lost: the user was told.
    pub refused_writes: u64,
    /// Users logged in at the end whose final read failed.
    pub unverified_users: u64,
    pub served_by: BTreeMap<String, u64>,
    pub node_switches: u64,
    pub credential_bytes_per_request: f64,
    pub server: ServerCosts,
    pub replication_messages_per_request: f64,
    pub replication_bytes_per_request: f64,
    pub marks: Vec<Mark>,
    pub timeline: Vec<Point>,
    /// The session guarantees checked over the run's history.
    pub guarantees: CheckReport,
    /// Every operation of every user, in completion order (written with
    /// `--history`; not part of the JSON report).
    #[serde(skip)]
    pub history: Arc<Vec<Operation>>,
    /// The nodes' replication events of the run, when the caller collected
    /// them (written beside the history; not part of the JSON report).
    #[serde(skip)]
    pub replication: Option<Arc<crate::check::replication::ReplicationLog>>,
}

impl LoadReport {
    pub fn build(
        label: &str,
        cfg: &LoadConfig,
        total: Recorder,
        users: &[UserResult],
        wall: Duration,
        marks: Vec<Mark>,
        server: ServerCosts,
    ) -> LoadReport {
        let mut acked = 0;
        let mut lost_inc = 0;
        let mut lost_cart = 0;
        let mut unverified = 0;
        for u in users {
            if let Some(r) = u.reckoning {
                acked += r.acked_increments;
                lost_inc += r.lost_increments;
                lost_cart += r.lost_cart_changes;
            }
            unverified += u64::from(u.unverified);
        }
        // The throughput is the load loop's: the settle time and the final
        // reads after it are not load.
        // (With no users' spans, the recorder is all there is.)
        let (load_wall, load_requests) = match users.iter().map(|u| u.load.ended).max() {
            Some(ended) => (ended.min(wall), users.iter().map(|u| u.load.requests).sum()),
            None => (wall, total.requests),
        };
        let secs = load_wall.as_secs_f64().max(1e-9);
        let bucket_s = cfg.bucket.as_secs_f64();
        let timeline = total
            .timeline
            .iter()
            .enumerate()
            .map(|(i, b)| Point {
                t_s: i as f64 * bucket_s,
                requests: b.requests,
                errors: b.errors.values().sum(),
                p50_ms: b.latency_us.quantile_ms(0.5),
                p99_ms: b.latency_us.quantile_ms(0.99),
                sessions_lost: b.sessions_lost,
                stale_reads: b.stale_reads,
                served_by: b.served_by.clone(),
            })
            .collect();
        let requests = total.requests.max(1) as f64;
        let mut history: Vec<Operation> = users
            .iter()
            .flat_map(|u| u.history.iter().cloned())
            .collect();
        history::completion_order(&mut history);
        let mut guarantees = check::check(&history);
        guarantees.cut_histories = users.iter().filter(|u| u.history_cut).count() as u64;
        if cfg.clients_per_user > 1 {
            // Each tab knows only its own increments; the history knows
            // them all (see the module docs).
            acked = history
                .iter()
                .filter(|o| o.acked_increment().is_some())
                .count() as u64;
            lost_inc = guarantees.lost_increments;
        }
        LoadReport {
            label: label.to_owned(),
            users: cfg.users,
            duration_s: secs,
            requests: total.requests,
            throughput_rps: load_requests as f64 / secs,
            error_total: total.error_total(),
            errors: total.errors.clone(),
            latency_p50_ms: quantile_ms(&total.latency_us, 0.5),
            latency_p99_ms: quantile_ms(&total.latency_us, 0.99),
            latency_p999_ms: quantile_ms(&total.latency_us, 0.999),
            logins: total.logins,
            sessions_lost: total.sessions_lost,
            stale_reads: total.stale_reads,
            stale_writes: total.stale_writes,
            acked_increments: acked,
            lost_increments: lost_inc,
            lost_cart_changes: lost_cart,
            lost_updates: lost_inc + lost_cart,
            refused_writes: history
                .iter()
                .filter(|o| {
                    matches!(
                        o.op,
                        OpKind::Increment | OpKind::CartPut | OpKind::CartDelete
                    ) && o.status == Some(503)
                })
                .count() as u64,
            unverified_users: unverified,
            served_by: total.served_by.clone(),
            node_switches: total.node_switches,
            credential_bytes_per_request: total.credential_bytes as f64
                / total.credentialed_requests.max(1) as f64,
            replication_messages_per_request: server.replication_messages / requests,
            replication_bytes_per_request: server.replication_bytes / requests,
            server,
            marks,
            timeline,
            guarantees,
            history: Arc::new(history),
            replication: None,
        }
    }

    /// A human-readable summary (the table `sessionlab load` prints).
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "run: {}  ({} users, {:.1} s)",
            self.label, self.users, self.duration_s
        );
        let row = |s: &mut String, k: &str, v: String| {
            let _ = writeln!(s, "  {k:<38} {v}");
        };
        row(
            &mut s,
            "requests",
            format!("{} ({:.0}/s)", self.requests, self.throughput_rps),
        );
        let errs = if self.errors.is_empty() {
            "0".to_owned()
        } else {
            self.errors
                .iter()
                .map(|(k, v)| format!("{k:?}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        row(&mut s, "errors", format!("{} ({errs})", self.error_total));
        row(
            &mut s,
            "latency p50 / p99 / p99.9",
            format!(
                "{:.2} / {:.2} / {:.2} ms",
                self.latency_p50_ms, self.latency_p99_ms, self.latency_p999_ms
            ),
        );
        row(&mut s, "logins", self.logins.to_string());
        row(&mut s, "sessions lost", self.sessions_lost.to_string());
        row(&mut s, "stale reads", self.stale_reads.to_string());
        row(
            &mut s,
            "lost updates (increments + cart)",
            format!(
                "{} ({} of {} acked increments, {} cart)",
                self.lost_updates,
                self.lost_increments,
                self.acked_increments,
                self.lost_cart_changes
            ),
        );
        row(&mut s, "stale writes", self.stale_writes.to_string());
        row(
            &mut s,
            "refused writes (503)",
            self.refused_writes.to_string(),
        );
        let g = &self.guarantees;
        row(
            &mut s,
            "session guarantees (violations)",
            if g.passed() {
                format!("all hold ({} operations checked)", g.operations)
            } else {
                Violation::ALL
                    .iter()
                    .filter(|k| g.count(**k) > 0)
                    .map(|k| format!("{} {}", k.name(), g.count(*k)))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        );
        row(
            &mut s,
            "served by",
            self.served_by
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        row(
            &mut s,
            "node switches (user moved node)",
            self.node_switches.to_string(),
        );
        row(
            &mut s,
            "credential bytes / request",
            format!("{:.0}", self.credential_bytes_per_request),
        );
        row(
            &mut s,
            "replication msgs / bytes per request",
            format!(
                "{:.2} / {:.0}",
                self.replication_messages_per_request, self.replication_bytes_per_request
            ),
        );
        if let (Some(p50), Some(p99)) = (
            self.server.replication_lag_p50_ms,
            self.server.replication_lag_p99_ms,
        ) {
            row(
                &mut s,
                "replication lag p50 / p99",
                format!("{p50:.2} / {p99:.2} ms"),
            );
        }
        row(
            &mut s,
            "sessions held at the end (all copies)",
            format!(
                "{:.0} ({:.1} KiB)",
                self.server.sessions_held,
                self.server.session_bytes_held / 1024.0
            ),
        );
        for (k, v) in &self.server.memory_bytes {
            row(
                &mut s,
                &format!("memory {k}"),
                format!("{:.1} MiB", *v as f64 / 1048576.0),
            );
        }
        if self.unverified_users > 0 {
            row(
                &mut s,
                "users not verified at the end",
                self.unverified_users.to_string(),
            );
        }
        for m in &self.marks {
            row(&mut s, &format!("fault @ {:.1} s", m.at_s), m.label.clone());
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::LoadSpan;

    fn tab(ended_s: u64, requests: u64) -> UserResult {
        UserResult {
            recorder: Recorder::new(Duration::from_secs(1)),
            history: Vec::new(),
            reckoning: None,
            unverified: false,
            history_cut: false,
            load: LoadSpan {
                ended: Duration::from_secs(ended_s),
                requests,
            },
        }
    }

    #[test]
    fn the_throughput_leaves_out_the_settle_time_and_the_final_reads() {
        let mut total = Recorder::new(Duration::from_secs(1));
        // 100 requests in the load, 2 final reads after the settle time.
        for i in 0..102 {
            total.answered(
                Duration::from_millis(i * 50),
                Duration::from_millis(1),
                None,
            );
        }
        let r = LoadReport::build(
            "t",
            &LoadConfig::default(),
            total,
            &[tab(4, 40), tab(5, 60)],
            Duration::from_secs(7),
            Vec::new(),
            ServerCosts::default(),
        );
        assert_eq!(r.requests, 102);
        assert_eq!(r.duration_s, 5.0);
        assert_eq!(r.throughput_rps, 20.0);
        assert_eq!(r.guarantees.cut_note(), None);
    }

    #[test]
    fn a_cut_history_is_said_in_the_guarantees() {
        let mut cut = tab(5, 10);
        cut.history_cut = true;
        let r = LoadReport::build(
            "t",
            &LoadConfig::default(),
            Recorder::new(Duration::from_secs(1)),
            &[cut, tab(5, 10)],
            Duration::from_secs(6),
            Vec::new(),
            ServerCosts::default(),
        );
        assert_eq!(r.guarantees.cut_histories, 1);
        assert!(r.guarantees.text().contains("history of 1 clients was cut"));
    }
}
