//! `sessionlab load`: simulated users against the running cluster, with a
//! fault timeline, and what they saw.
//!
//! The measuring is done by `sessionlab-load` (users that remember what the
//! cluster acknowledged, so they can count lost sessions, stale reads and
//! lost updates, not only latency). This module connects it to a cluster
//! of the run folder: the users go to the LB's public port, the nodes'
//! `/metrics` (cluster listener) give what replication cost, the faults
//! are applied on time by the lab itself ([`crate::faultplan`]), and the
//! resident memory of every process is read at the end
//! ([`crate::memory`]). [`measure`] is the part `compare` runs once per
//! mode.
//!
//! Against a cluster started with `up --tls` the users speak HTTPS to the
//! LB's HTTPS port (its plain port only redirects) and trust the run
//! folder's CA (`tls/ca.pem`) and nothing else; the session cookie they
//! get is then `Secure`, as a browser's would be.
//!
//! While it runs, a progress bar shows the live counts, only when stderr is
//! a terminal (logs and CI output get the fault lines and nothing else).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sessionlab_load::{LoadConfig, LoadReport, LoadRun, MetricsTargets, Progress, TrustedCa};

use crate::cluster::Lab;
use crate::error::{LabError, Result};
use crate::faultplan::{self, FaultRunner, LabSettings, Say, Scheduled};
use crate::memory;
use crate::runfolder::ClusterState;
use crate::workload::{self, DEFAULT_USERS, WorkloadArgs};

/// `sessionlab load`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// How long the users run.
    #[arg(long, env = "SESSIONLAB_DURATION", default_value = "30s",
          value_parser = humantime::parse_duration)]
    pub duration: Duration,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Print the whole report as JSON (timeline included) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write every operation of every user to FILE, one JSON object per
    /// line (the format of `docs/lab.md`; `sessionlab check FILE` reads it).
    /// The counterexamples found go beside it as SVG.
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
}

/// The LB URL the users go to: its HTTPS port when it has one.
pub fn target(state: &ClusterState) -> String {
    match state.lb.tls_port {
        Some(port) => format!("https://127.0.0.1:{port}"),
        None => format!("http://127.0.0.1:{}", state.lb.port),
    }
}

/// The CA the users trust: the run folder's, when the cluster serves HTTPS.
pub fn trusted_ca(lab: &Lab, state: &ClusterState) -> Result<Option<TrustedCa>> {
    if state.lb.tls_port.is_none() {
        return Ok(None);
    }
    let files = crate::tls::TlsFiles::of(&lab.rf);
    let pem = files.read_ca()?.ok_or_else(|| {
        LabError::InvalidArgument(format!(
            "this cluster serves HTTPS but its CA {} is gone; bring it down and up again",
            files.ca.display()
        ))
    })?;
    TrustedCa::from_pem(&pem)
        .map(Some)
        .map_err(|e| LabError::InvalidArgument(format!("{}: {e}", files.ca.display())))
}

/// Where each node's counters are: its cluster listener's `/metrics`.
pub fn metrics_targets(state: &ClusterState) -> MetricsTargets {
    MetricsTargets {
        nodes: state
            .nodes
            .iter()
            .map(|n| {
                (
                    n.id.clone(),
                    format!("http://127.0.0.1:{}/metrics", n.cluster_port),
                )
            })
            .collect(),
        // sessionlab-lb's /metrics, HAProxy's Prometheus exporter; nginx
        // OSS has none.
        lb: (state.lb.kind != crate::lb::LbKind::Nginx)
            .then(|| format!("http://127.0.0.1:{}/metrics", state.lb.admin_port)),
    }
}

/// Runs `sessionlab load`; returns what to print.
pub async fn run(lab: &Lab, args: LoadArgs) -> Result<String> {
    let state = lab.rf.load_required()?;
    let mut cfg = args.workload.config(
        target(&state),
        args.duration,
        DEFAULT_USERS,
        workload::auth_of(state.mode.preset()),
    )?;
    cfg.session_cookie = crate::cluster::node_cookie_name(&state.node_extra_args).to_owned();
    cfg.trusted_ca = trusted_ca(lab, &state)?;
    let plan = faultplan::schedule(&args.workload.faults, args.duration, &state)?;
    let report = measure(lab, state.mode.name(), cfg, plan).await?;
    let mut saved = String::new();
    if let Some(path) = &args.history {
        let pictures = save_history(&report, path)?;
        saved = format!(
            "\nhistory: {} ({} operations)",
            path.display(),
            report.history.len()
        );
        if let Some(dir) = pictures {
            saved.push_str(&format!("\ncounterexamples: {}", dir.display()));
        }
    }
    if args.json {
        serde_json::to_string_pretty(&report)
            .map_err(|e| LabError::InvalidArgument(format!("the report does not serialize: {e}")))
    } else {
        let mut out = report.to_table().trim_end().to_string();
        for ex in &report.guarantees.examples {
            out.push_str("\n\n");
            out.push_str(ex.text().trim_end());
        }
        Ok(out + &saved)
    }
}

/// Write a run's history to `path`, and its counterexamples' pictures
/// beside it (the folder, when there were any).
pub fn save_history(report: &LoadReport, path: &Path) -> Result<Option<PathBuf>> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(LabError::io(format!("creating {}", dir.display())))?;
    }
    let file = std::fs::File::create(path).map_err(LabError::io(format!(
        "writing the history {}",
        path.display()
    )))?;
    sessionlab_load::history::write(&report.history, file).map_err(LabError::io(format!(
        "writing the history {}",
        path.display()
    )))?;
    if let Some(log) = &report.replication {
        let events = crate::check::replication_file(path);
        let text = serde_json::to_string(log.as_ref()).map_err(|e| {
            LabError::InvalidArgument(format!("the replication events do not serialize: {e}"))
        })?;
        std::fs::write(&events, text)
            .map_err(LabError::io(format!("writing {}", events.display())))?;
    }
    let dir = crate::check::default_svg_dir(path);
    let files =
        crate::check::write_diagrams(&report.guarantees, &dir, report.replication.as_deref())?;
    Ok((!files.is_empty()).then_some(dir))
}

/// One load run against the cluster of `lab`'s run folder, with `plan`
/// applied on time; the report carries the faults' marks and every
/// process's memory at the end.
pub async fn measure(
    lab: &Lab,
    label: &str,
    cfg: LoadConfig,
    plan: Vec<Scheduled>,
) -> Result<LoadReport> {
    let state = lab.rf.load_required()?;
    if !state.lb.process.is_some_and(|p| p.is_alive()) {
        return Err(LabError::InvalidArgument(
            "the LB of this cluster is not running; bring the cluster down and up again".into(),
        ));
    }
    let live = LiveBar::new(label, cfg.duration);
    let runner = FaultRunner::start(LabSettings::of(lab), plan, live.sayer()).await?;
    let run = LoadRun::start(cfg, metrics_targets(&state)).await;
    runner.go(run.start.into_std());
    let mut events = crate::events::Collector::new(&state, run.start_wall_ms)?;
    while !run.is_finished() {
        live.update(run.start.elapsed(), &run.progress);
        tokio::time::sleep(Duration::from_millis(200)).await;
        events.poll().await;
    }
    let marks = runner.finish().await;
    let mut report = run.finish(label, marks).await;
    events.poll().await;
    report.replication = Some(std::sync::Arc::new(events.finish()));
    live.done();
    // Read again: the faults may have killed or restarted processes.
    let state = lab.rf.load_required()?;
    report.server.memory_bytes = memory::cluster_rss(&state);
    Ok(report)
}

/// The progress bar (or nothing, when stderr is not a terminal): requests,
/// errors, sessions lost and stale reads so far, cut to the terminal's width.
struct LiveBar {
    bar: Option<ProgressBar>,
    label: String,
}

impl LiveBar {
    fn new(label: &str, duration: Duration) -> LiveBar {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(duration.as_millis() as u64);
            let style = ProgressStyle::with_template("{prefix} [{bar:20}] {elapsed:>3} {wide_msg}")
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(format!("{label} ({:.0} s)", duration.as_secs_f64()));
            bar
        });
        LiveBar {
            bar,
            label: label.to_string(),
        }
    }

    /// Prints a line above the bar (or to stderr without one).
    fn sayer(&self) -> Say {
        let bar = self.bar.clone();
        let label = self.label.clone();
        Box::new(move |line: String| match &bar {
            Some(b) => b.println(format!("{label}: {line}")),
            None => eprintln!("sessionlab: {label}: {line}"),
        })
    }

    fn update(&self, elapsed: Duration, p: &Progress) {
        use std::sync::atomic::Ordering::Relaxed;
        if let Some(b) = &self.bar {
            b.set_position(elapsed.as_millis() as u64);
            b.set_message(format!(
                "{} req, {} err, {} lost, {} stale",
                p.requests.load(Relaxed),
                p.errors.load(Relaxed),
                p.sessions_lost.load(Relaxed),
                p.stale_reads.load(Relaxed)
            ));
        }
    }

    fn done(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
