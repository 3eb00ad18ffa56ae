//! A whole run: start the users, sample the nodes' counters while they
//! run, wait, merge what they saw.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::LoadConfig;
use crate::prom::{Growth, Scrape};
use crate::report::{LoadReport, Mark, ServerCosts};
use crate::stats::Recorder;
use crate::user::{Progress, Shared, run_user};

/// Where to read server-side costs: `(label, url of /metrics)`.
#[derive(Debug, Clone, Default)]
pub struct MetricsTargets {
    pub nodes: Vec<(String, String)>,
    pub lb: Option<String>,
}

/// How often the nodes are scraped during a run (see [`crate::prom`]: a
/// node killed mid-run keeps the growth seen until its last answer).
const SCRAPE_EVERY: Duration = Duration::from_secs(1);

async fn scrape(http: &reqwest::Client, url: &str) -> Option<Scrape> {
    let resp = http.get(url).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.text().await.ok().map(|t| Scrape::parse(&t))
}

/// Scrape every node (a dead node simply contributes nothing).
async fn scrape_nodes(http: &reqwest::Client, targets: &MetricsTargets) -> Vec<(String, Scrape)> {
    let all = targets
        .nodes
        .iter()
        .map(|(label, url)| async move { scrape(http, url).await.map(|s| (label.clone(), s)) });
    futures::future::join_all(all)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Scrapes the nodes every [`SCRAPE_EVERY`] until told to stop, then once
/// more; hands back what grew, and the last scrape of the nodes that
/// answered it, as one.
async fn sample(
    http: reqwest::Client,
    targets: MetricsTargets,
    mut growth: Growth,
    mut stop: watch::Receiver<bool>,
) -> (Growth, Scrape) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SCRAPE_EVERY) => {}
            _ = stop.changed() => break,
        }
        for (label, s) in scrape_nodes(&http, &targets).await {
            growth.observe(&label, s);
        }
    }
    let mut at_end = Scrape::default();
    for (label, s) in scrape_nodes(&http, &targets).await {
        for (key, sample) in &s.series {
            at_end
                .series
                .insert(format!("{label}/{key}"), sample.clone());
        }
        growth.observe(&label, s);
    }
    (growth, at_end)
}

type UsersTask = tokio::task::JoinHandle<(Recorder, Vec<crate::user::UserResult>)>;

/// A handle on a running load: its start time (so faults can be scheduled
/// against the same clock) and its live counters.
pub struct LoadRun {
    pub start: Instant,
    /// The wall clock (ms since the Unix epoch) at `start`: what places
    /// the nodes' wall-clock events on the history's time axis.
    pub start_wall_ms: u64,
    pub progress: Arc<Progress>,
    users: UsersTask,
    sampler: tokio::task::JoinHandle<(Growth, Scrape)>,
    stop_sampler: watch::Sender<bool>,
    cfg: LoadConfig,
}

impl LoadRun {
    /// Scrape the "before" metrics and start every user.
    pub async fn start(cfg: LoadConfig, targets: MetricsTargets) -> LoadRun {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .expect("a plain HTTP client always builds");
        let growth = Growth::baseline(scrape_nodes(&http, &targets).await);
        let (stop_sampler, stop) = watch::channel(false);
        let sampler = tokio::spawn(sample(http, targets, growth, stop));
        let progress = Arc::new(Progress::default());
        let start = Instant::now();
        let start_wall_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let shared = Arc::new(Shared {
            cfg: cfg.clone(),
            start,
            // (A duration past what the clock can hold is a century.)
            deadline: start
                .checked_add(cfg.duration)
                .unwrap_or_else(|| start + Duration::from_secs(100 * 365 * 86_400)),
            budget: AtomicU64::new(cfg.max_requests),
            progress: progress.clone(),
        });
        let users = tokio::spawn(async move {
            let users: Vec<_> = (0..shared.cfg.users)
                .map(|i| tokio::spawn(run_user(i, shared.clone())))
                .collect();
            let mut total = Recorder::new(shared.cfg.bucket);
            let mut results = Vec::with_capacity(users.len());
            for u in users {
                // A user that panicked is a bug of this tool: say it rather
                // than report a run without that user.
                let tabs = u.await.unwrap_or_else(|e| match e.try_into_panic() {
                    Ok(p) => std::panic::resume_unwind(p),
                    Err(e) => panic!("a user task was cancelled: {e}"),
                });
                for r in tabs {
                    total.merge(&r.recorder);
                    results.push(r);
                }
            }
            (total, results)
        });
        LoadRun {
            start,
            start_wall_ms,
            progress,
            users,
            sampler,
            stop_sampler,
            cfg,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.users.is_finished()
    }

    /// Wait for every user, take the last scrape, and build the report.
    pub async fn finish(self, label: &str, marks: Vec<Mark>) -> LoadReport {
        let (total, results) = self.users.await.expect("the load task does not panic");
        let wall = self.start.elapsed();
        let _ = self.stop_sampler.send(true);
        let (growth, at_end) = self.sampler.await.expect("the sampler does not panic");
        let server = ServerCosts::from_growth(&growth.total(), &at_end);
        LoadReport::build(label, &self.cfg, total, &results, wall, marks, server)
    }
}

/// Run a load to the end with no faults.
pub async fn run(cfg: LoadConfig, targets: MetricsTargets, label: &str) -> LoadReport {
    LoadRun::start(cfg, targets)
        .await
        .finish(label, Vec::new())
        .await
}
