//! A whole run: start the users, wait, merge what they saw.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio::time::Instant;

use crate::config::LoadConfig;
use crate::prom::Scrape;
use crate::report::{LoadReport, Mark, ServerCosts};
use crate::stats::Recorder;
use crate::user::{Progress, Shared, run_user};

/// Where to read server-side costs: `(label, url of /metrics)`.
#[derive(Debug, Clone, Default)]
pub struct MetricsTargets {
    pub nodes: Vec<(String, String)>,
    pub lb: Option<String>,
}

async fn scrape(http: &reqwest::Client, url: &str) -> Option<String> {
    let resp = http.get(url).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.text().await.ok()
}

/// Scrape every node (a dead node simply contributes nothing).
async fn scrape_nodes(http: &reqwest::Client, targets: &MetricsTargets) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (label, url) in &targets.nodes {
        if let Some(text) = scrape(http, url).await {
            out.push((label.clone(), text));
        }
    }
    out
}

/// A handle on a running load: its start time (so faults can be scheduled
/// against the same clock) and its live counters.
pub struct LoadRun {
    pub start: Instant,
    pub progress: Arc<Progress>,
    task: tokio::task::JoinHandle<(Recorder, Vec<crate::user::UserResult>)>,
    cfg: LoadConfig,
    targets: MetricsTargets,
    before: Vec<(String, String)>,
    http: reqwest::Client,
}

impl LoadRun {
    /// Scrape the "before" metrics and start every user.
    pub async fn start(cfg: LoadConfig, targets: MetricsTargets) -> LoadRun {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(2))
            .build()
            .expect("a plain HTTP client always builds");
        let before = scrape_nodes(&http, &targets).await;
        let progress = Arc::new(Progress::default());
        let start = Instant::now();
        let shared = Arc::new(Shared {
            cfg: cfg.clone(),
            start,
            deadline: start + cfg.duration,
            budget: AtomicU64::new(cfg.max_requests),
            progress: progress.clone(),
        });
        let task = tokio::spawn(async move {
            let users: Vec<_> = (0..shared.cfg.users)
                .map(|i| tokio::spawn(run_user(i, shared.clone())))
                .collect();
            let mut total = Recorder::new(shared.cfg.bucket);
            let mut results = Vec::with_capacity(users.len());
            for u in users {
                if let Ok(r) = u.await {
                    total.merge(&r.recorder);
                    results.push(r);
                }
            }
            (total, results)
        });
        LoadRun {
            start,
            progress,
            task,
            cfg,
            targets,
            before,
            http,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Wait for every user, scrape the "after" metrics, and build the report.
    pub async fn finish(self, label: &str, marks: Vec<Mark>) -> LoadReport {
        let (total, results) = self.task.await.expect("the load task does not panic");
        let wall = self.start.elapsed();
        let after = scrape_nodes(&self.http, &self.targets).await;
        let server = ServerCosts::from_scrapes(&self.before, &after);
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

/// Parse a scrape pair list into one summed scrape.
pub fn sum(scrapes: &[(String, String)]) -> Scrape {
    let mut total = Scrape::default();
    for (_, text) in scrapes {
        total.add(&Scrape::parse(text));
    }
    total
}
