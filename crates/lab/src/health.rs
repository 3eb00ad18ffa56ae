//! Waiting for freshly started processes to become healthy.
//!
//! "Healthy" is what a user needs, not merely "the process runs":
//!
//! - a node is healthy when its app port's `/healthz` *and* its cluster
//!   port's `/healthz` answer 200. The cluster port says 503 while a
//!   replicated node is still pulling its snapshot from a peer, so a
//!   restarted node is not reported healthy with an empty store;
//! - the LB is healthy when its admin `/healthz` answers, its own health
//!   checks report every expected backend `up`, and a `/healthz` sent to
//!   the app URL comes back 200 through it: requests are being forwarded;
//! - the dashboard is healthy when its `/healthz` answers.
//!
//! While waiting, the starter keeps the [`Child`] handles (or, for a process
//! an earlier command started, its [`ProcRecord`]), so a process that dies
//! (bad flag, port taken after all, panic) is noticed at once and reported
//! with the end of its log instead of as a timeout.

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use crate::api::Api;
use crate::error::{LabError, Result};
use crate::logs::tail_lines;
use crate::process::{ProcRecord, describe_exit};

/// What makes a process healthy.
pub enum Check {
    Node {
        app: String,
        cluster: String,
    },
    Lb {
        admin: String,
        /// The public (app) address of the LB.
        app: String,
        /// Backend ids that must be `up` in the LB's view.
        backends: Vec<String>,
    },
    /// HAProxy: its runtime API reports every expected server up, and a
    /// `/healthz` sent to the app address comes back 200 through it.
    Haproxy {
        socket: PathBuf,
        app: String,
        backends: Vec<String>,
    },
    /// An LB that reports nothing (nginx): a `/healthz` sent to the app
    /// address comes back 200 through it.
    Forwarding {
        app: String,
    },
    /// The dashboard: its `/healthz` answers (it needs nothing else to be
    /// up: it shows what it can reach).
    Dashboard {
        addr: String,
    },
}

/// How to notice that a process died while we wait for it.
pub enum Watch {
    /// A process this command started: its exit status is available.
    Child(Child),
    /// A process started earlier (the LB, when a node restarts): only
    /// whether it still runs is known.
    Record(ProcRecord),
}

impl Watch {
    /// `Some(description)` once the process has exited.
    fn exited(&mut self, name: &str) -> Result<Option<String>> {
        match self {
            Watch::Child(child) => Ok(child
                .try_wait()
                .map_err(LabError::io(format!("checking on {name}")))?
                .map(describe_exit)),
            Watch::Record(record) => {
                Ok((!record.is_alive()).then(|| "no longer running".to_string()))
            }
        }
    }
}

/// A process being waited for, with the means to notice its exit.
pub struct Starting {
    pub name: String,
    pub watch: Watch,
    pub log: PathBuf,
    pub check: Check,
}

/// Why a check has not passed yet, or `None` once it has.
async fn pending_reason(api: &Api, check: &Check) -> Option<String> {
    match check {
        Check::Node { app, cluster } => {
            if !api.healthy(app).await {
                Some(format!("app port {app} not answering /healthz"))
            } else if !api.healthy(cluster).await {
                Some(format!(
                    "cluster port {cluster} /healthz not ready (joining?)"
                ))
            } else {
                None
            }
        }
        Check::Lb {
            admin,
            app,
            backends,
        } => {
            if !api.healthy(admin).await {
                return Some(format!("admin port {admin} not answering /healthz"));
            }
            let view = match api.lb_backends(admin).await {
                Ok(view) => view,
                Err(e) => return Some(e.to_string()),
            };
            up_and_forwarding(api, &view, backends, app).await
        }
        Check::Haproxy {
            socket,
            app,
            backends,
        } => match crate::lb::haproxy::backends(socket, "").await {
            Ok(view) => up_and_forwarding(api, &view, backends, app).await,
            Err(e) => Some(e.to_string()),
        },
        Check::Forwarding { app } => (!api.healthy(app).await)
            .then(|| format!("app port {app} does not forward /healthz yet")),
        Check::Dashboard { addr } => (!api.healthy(addr).await)
            .then(|| format!("dashboard port {addr} not answering /healthz")),
    }
}

/// Why an LB whose view is `view` is not ready yet: a backend of
/// `backends` not up in it, or `/healthz` not forwarded through `app`.
async fn up_and_forwarding(
    api: &Api,
    view: &crate::api::Backends,
    backends: &[String],
    app: &str,
) -> Option<String> {
    let not_up: Vec<&str> = backends
        .iter()
        .filter(|id| {
            !view
                .backends
                .iter()
                .any(|b| &b.id == *id && b.state == crate::api::BackendState::Up)
        })
        .map(String::as_str)
        .collect();
    if !not_up.is_empty() {
        Some(format!("LB does not see {} up yet", not_up.join(", ")))
    } else if !api.healthy(app).await {
        Some(format!("app port {app} does not forward /healthz yet"))
    } else {
        None
    }
}

/// Polls every process until all are healthy, one exits, or `timeout`
/// passes. Checks run in order, so list the LB after its nodes.
pub async fn wait_healthy(api: &Api, starting: &mut [Starting], timeout: Duration) -> Result<()> {
    let began = Instant::now();
    let deadline = began + timeout;
    let mut healthy = vec![false; starting.len()];
    loop {
        let mut last_reason = Vec::new();
        for (i, s) in starting.iter_mut().enumerate() {
            if healthy[i] {
                continue;
            }
            if let Some(status) = s.watch.exited(&s.name)? {
                return Err(LabError::Crashed {
                    name: s.name.clone(),
                    status,
                    tail: tail_lines(&s.log, 20),
                    log: s.log.clone(),
                });
            }
            match pending_reason(api, &s.check).await {
                None => healthy[i] = true,
                Some(reason) => last_reason.push(format!("{}: {reason}", s.name)),
            }
        }
        if last_reason.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(LabError::NotHealthy {
                waited: began.elapsed(),
                detail: last_reason.join("; "),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
