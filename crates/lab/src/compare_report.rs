//! The comparison's report: `report.md`, `report.json` and three charts.
//!
//! One row per mode, every figure measured in this run (the load tool's
//! [`LoadReport`]: what the users saw, what the nodes' counters say they
//! paid, what `/proc` says they hold), never taken from a table. The
//! markdown is for reading, the JSON (every figure, every timeline bucket,
//! the settings) for checking and for tests; the charts
//! (`sessionlab_load::timeline_chart`, `losses_chart`) show p99 latency and errors over time with
//! the faults marked, and the losses per mode as bars.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use sessionlab_load::check::Violation;
use sessionlab_load::{LoadConfig, LoadReport, Scale, losses_chart, timeline_chart};

use crate::error::{LabError, Result};
use crate::faultplan::{FaultSpec, When};

/// What every mode was run with.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub nodes: usize,
    pub users: usize,
    /// Concurrent clients (tabs) per user, sharing its cookies.
    pub clients_per_user: usize,
    pub duration_s: f64,
    pub think_ms: f64,
    pub login_pause_ms: Option<f64>,
    pub ramp_up_ms: f64,
    pub rate: Option<f64>,
    pub mix: String,
    pub seed: u64,
    pub faults: Vec<String>,
    pub quick: bool,
    /// Where the node and LB binaries came from (debug or release build).
    pub bin_dir: PathBuf,
    /// CPUs this machine offers (all processes of a run share them).
    pub cpus: usize,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Settings {
    pub fn new(
        cfg: &LoadConfig,
        nodes: usize,
        faults: &[FaultSpec],
        quick: bool,
        bin_dir: &Path,
    ) -> Settings {
        Settings {
            nodes,
            users: cfg.users,
            clients_per_user: cfg.clients_per_user,
            duration_s: cfg.duration.as_secs_f64(),
            think_ms: ms(cfg.think),
            login_pause_ms: cfg.login_pause.map(ms),
            ramp_up_ms: ms(cfg.ramp_up),
            rate: cfg.rate,
            mix: format!(
                "read={},increment={},cart={},logout={}",
                cfg.mix.read, cfg.mix.increment, cfg.mix.cart, cfg.mix.logout
            ),
            seed: cfg.seed,
            faults: faults
                .iter()
                .map(|f| match f.when {
                    When::At(d) => format!("{} at {:.1} s", f.action, d.as_secs_f64()),
                    When::Share(s) => {
                        format!("{} at {:.1} s", f.action, cfg.duration.as_secs_f64() * s)
                    }
                })
                .collect(),
            quick,
            bin_dir: bin_dir.to_path_buf(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// What became of one mode.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Ran(Box<LoadReport>),
    Skipped { mode: String, reason: String },
    Failed { mode: String, reason: String },
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub settings: Settings,
    /// With a fault on the Redis primary (`--scenario redis-failover`):
    /// what the failover cost each run, side by side.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<crate::failover::FailoverFigures>,
    pub outcomes: Vec<Outcome>,
}

impl Comparison {
    /// The modes that ran, in order.
    pub fn runs(&self) -> Vec<LoadReport> {
        self.outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Ran(r) => Some((**r).clone()),
                _ => None,
            })
            .collect()
    }
}

/// Mean resident memory of the nodes still running at the end, in MiB.
pub fn node_memory_mib(r: &LoadReport) -> Option<f64> {
    let nodes: Vec<u64> = r
        .server
        .memory_bytes
        .iter()
        .filter(|(k, _)| k.starts_with("node-"))
        .map(|(_, v)| *v)
        .collect();
    (!nodes.is_empty()).then(|| nodes.iter().sum::<u64>() as f64 / nodes.len() as f64 / 1048576.0)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.digits$}"))
}

/// The markdown table: one row per mode that ran.
pub fn table(c: &Comparison) -> String {
    let mut s = String::new();
    s.push_str(
        "| mode | requests | errors | latency p50 / p99 / p99.9 (ms) | sessions lost | \
         stale reads | lost updates | refused writes | node switches | repl. msgs / req | repl. bytes / req | \
         repl. lag p99 (ms) | credential bytes / req | sessions held (KiB), all nodes | \
         memory / node (MiB) |\n",
    );
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in c.runs() {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.2} / {:.2} / {:.2} | {} | {} | {} | {} | {} | {:.2} | {:.0} | {} | {:.0} | {:.0} ({:.0}) | {} |",
            r.label,
            r.requests,
            r.error_total,
            r.latency_p50_ms,
            r.latency_p99_ms,
            r.latency_p999_ms,
            r.sessions_lost,
            r.stale_reads,
            r.lost_updates,
            r.refused_writes,
            r.node_switches,
            r.replication_messages_per_request,
            r.replication_bytes_per_request,
            opt(r.server.replication_lag_p99_ms, 2),
            r.credential_bytes_per_request,
            r.server.sessions_held,
            r.server.session_bytes_held / 1024.0,
            opt(node_memory_mib(&r), 1),
        );
    }
    s
}

/// The whole `report.md`.
pub fn markdown(c: &Comparison) -> String {
    let st = &c.settings;
    let mut s = String::from("# sessionlab compare\n\n");
    let _ = writeln!(
        s,
        "Every mode ran the same workload: {} nodes, {} users{} (first logins spread over {:.1} s) \
         for {:.0} s, think time {:.0} ms{}, mix {}, seed {}{}. Faults: {}. Machine: {} CPUs \
         shared by the load tool, the LB and the nodes; binaries from `{}`.\n",
        st.nodes,
        st.users,
        if st.clients_per_user > 1 {
            format!(" x {} tabs sharing a cookie", st.clients_per_user)
        } else {
            String::new()
        },
        st.ramp_up_ms / 1000.0,
        st.duration_s,
        st.think_ms,
        st.login_pause_ms
            .map_or(String::new(), |p| format!(" ({p:.0} ms after a login)")),
        st.mix,
        st.seed,
        st.rate
            .map_or(String::new(), |r| format!(", {r:.0} requests/s in all")),
        if st.faults.is_empty() {
            "none".to_string()
        } else {
            st.faults.join(", ")
        },
        st.cpus,
        st.bin_dir.display(),
    );
    s.push_str(&table(c));
    s.push('\n');
    if !c.failover.is_empty() {
        s.push_str(
            "## The Redis failover\n\nFrom the kill of the primary: how long until a write \
             succeeded again after the last failed one, how many writes failed (the users were \
             told), and what was lost over the run (sessions gone, acknowledged writes that a \
             later read did not show).\n\n",
        );
        s.push_str(&crate::failover::table(&c.failover));
        s.push('\n');
    }
    for o in &c.outcomes {
        match o {
            Outcome::Skipped { mode, reason } => {
                let _ = writeln!(s, "- **{mode}** skipped: {reason}");
            }
            Outcome::Failed { mode, reason } => {
                let _ = writeln!(s, "- **{mode}** failed: {reason}");
            }
            Outcome::Ran(_) => {}
        }
    }
    s.push_str("\nFaults as applied (seconds from the start of each run):\n\n");
    for r in c.runs() {
        let marks: Vec<String> = r
            .marks
            .iter()
            .map(|m| format!("{} at {:.1} s", m.label, m.at_s))
            .collect();
        let errors: Vec<String> = r.errors.iter().map(|(k, v)| format!("{k:?} {v}")).collect();
        let _ = writeln!(
            s,
            "- {}: {}; errors by kind: {}; stale writes {}, lost increments {} of {} acknowledged, \
             lost cart changes {}, logins {}",
            r.label,
            if marks.is_empty() {
                "none".to_string()
            } else {
                marks.join(", ")
            },
            if errors.is_empty() {
                "none".to_string()
            } else {
                errors.join(", ")
            },
            r.stale_writes,
            r.lost_increments,
            r.acked_increments,
            r.lost_cart_changes,
            r.logins,
        );
    }
    s.push_str(&guarantees_table(c));
    s.push_str(
        "\n![p99 latency over time](latency_p99.svg)\n\n![errors over time](errors.svg)\n\n\
         ![sessions lost, stale reads, lost updates](losses.svg)\n\n\
         How each figure is measured: docs/lab.md, \"Load and compare\".\n",
    );
    s
}

/// A mode's history file in the report folder.
pub fn history_file(label: &str) -> String {
    format!("history-{label}.jsonl")
}

/// The session guarantees table: a row per mode, a column per guarantee,
/// each broken one linked to the picture of its first counterexample.
pub fn guarantees_table(c: &Comparison) -> String {
    let mut s = String::from(
        "\n## Session guarantees\n\nViolations found by the checker in each mode's history \
         (`sessionlab check`; 0 = the guarantee held in this run, not that it always holds).\n\n| mode |",
    );
    for kind in Violation::ALL {
        let _ = write!(s, " {} |", kind.name());
    }
    s.push_str("\n|---|");
    s.push_str(&"---:|".repeat(Violation::ALL.len()));
    s.push('\n');
    for r in c.runs() {
        let g = &r.guarantees;
        let _ = write!(s, "| {} |", r.label);
        let dir = crate::check::default_svg_dir(Path::new(&history_file(&r.label)));
        for kind in Violation::ALL {
            let n = g.count(kind);
            match g.examples.iter().position(|e| e.kind == kind) {
                Some(i) if n > 0 => {
                    let _ = write!(
                        s,
                        " {n} ([e.g.]({}/{}-{}.svg)) |",
                        dir.display(),
                        i + 1,
                        kind.slug()
                    );
                }
                _ => {
                    let _ = write!(s, " {n} |");
                }
            }
        }
        s.push('\n');
    }
    for r in c.runs() {
        if let Some(cut) = r.guarantees.cut_note() {
            let _ = writeln!(s, "\n{}: {cut}.", r.label);
        }
    }
    s
}

fn chart_error(what: &str, e: Box<dyn std::error::Error>) -> LabError {
    LabError::Io {
        what: format!("drawing {what}"),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Writes `report.md`, `report.json`, `latency_p99.svg`, `errors.svg`
/// and `losses.svg` into `dir`.
pub fn write(dir: &Path, c: &Comparison) -> Result<()> {
    let put = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(LabError::io(format!("writing {}", path.display())))
    };
    let json = serde_json::to_string_pretty(c).map_err(|e| LabError::Io {
        what: "serializing report.json".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    put("report.json", json + "\n")?;
    put("report.md", markdown(c))?;
    let runs = c.runs();
    for r in &runs {
        crate::load::save_history(r, &dir.join(history_file(&r.label)))?;
    }
    timeline_chart(
        &dir.join("latency_p99.svg"),
        "p99 latency per second (faults marked)",
        "p99 latency (ms, log scale)",
        &runs,
        Scale::Log,
        |p| p.p99_ms,
    )
    .map_err(|e| chart_error("latency_p99.svg", e))?;
    timeline_chart(
        &dir.join("errors.svg"),
        "errors per second (faults marked)",
        "errors",
        &runs,
        Scale::Linear,
        |p| p.errors as f64,
    )
    .map_err(|e| chart_error("errors.svg", e))?;
    losses_chart(&dir.join("losses.svg"), &runs).map_err(|e| chart_error("losses.svg", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessionlab_load::{Mark, Recorder, ServerCosts};

    fn run(label: &str, lost: u64) -> LoadReport {
        let mut rec = Recorder::new(Duration::from_secs(1));
        rec.answered(Duration::ZERO, Duration::from_millis(3), Some("node-1"));
        let mut costs = ServerCosts::default();
        costs.memory_bytes.insert("node-1".into(), 10 * 1048576);
        costs.memory_bytes.insert("node-3".into(), 30 * 1048576);
        costs.memory_bytes.insert("lb".into(), 1048576);
        let mut r = LoadReport::build(
            label,
            &LoadConfig::default(),
            rec,
            &[],
            Duration::from_secs(1),
            vec![Mark {
                at_s: 0.5,
                label: "kill node-2".into(),
            }],
            costs,
        );
        r.sessions_lost = lost;
        r
    }

    #[test]
    fn the_report_has_a_row_per_mode_and_says_what_was_skipped() {
        let cfg = LoadConfig::default();
        let c = Comparison {
            settings: Settings::new(&cfg, 3, &[], false, Path::new("target/release")),
            failover: Vec::new(),
            outcomes: vec![
                Outcome::Ran(Box::new(run("local", 17))),
                Outcome::Skipped {
                    mode: "redis".into(),
                    reason: "no redis-server".into(),
                },
                Outcome::Ran(Box::new(run("sticky-replicated", 0))),
            ],
        };
        let md = markdown(&c);
        let (figures, guarantees) = md.split_once("## Session guarantees").unwrap();
        let rows: Vec<&str> = figures.lines().filter(|l| l.starts_with("| ")).collect();
        assert_eq!(rows.len(), 3, "{md}");
        let g: Vec<&str> = guarantees.lines().filter(|l| l.starts_with("| ")).collect();
        assert_eq!(g.len(), 3, "a header and a row per mode that ran: {md}");
        assert!(g[1].starts_with("| local | 0 | 0 |"), "{md}");
        assert!(rows[1].starts_with("| local | 1 | 0 |") && rows[1].contains("| 17 |"));
        assert!(
            rows[2].contains("| 20.0 |"),
            "mean of the nodes, not the LB: {md}"
        );
        assert!(md.contains("**redis** skipped: no redis-server"));
        assert!(md.contains("kill node-2 at 0.5 s"));
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &c).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
                .unwrap();
        assert_eq!(json["outcomes"][0]["outcome"], "ran");
        assert_eq!(json["outcomes"][0]["sessions_lost"], 17);
        assert_eq!(json["outcomes"][1]["outcome"], "skipped");
        for svg in ["latency_p99.svg", "errors.svg", "losses.svg"] {
            let text = std::fs::read_to_string(dir.path().join(svg)).unwrap();
            assert!(text.contains("sticky-replicated"), "{svg}");
        }
    }
}
