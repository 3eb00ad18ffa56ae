//! The dashboard's buttons: drain / undrain, kill, restart, partition,
//! heal, done by the lab's own code in this process.
//!
//! The dashboard links the lab library (`sessionlab-lab`) and, given the
//! run folder of the `sessionlab up` that runs the cluster (`--lab-dir`),
//! calls the very functions the `sessionlab` subcommands call
//! ([`sessionlab_lab::perform`]): the run folder has every pid,
//! port, command line, cut link and the cluster secret that fault requests
//! are signed with. No process is started to act; a button press and the
//! command a person would type (`sessionlab kill node-2`) are the same code
//! with the same answer, shown on the page.
//!
//! - One action at a time ([`LabError::Busy`] otherwise). Each runs on a
//!   thread of its own with its own small runtime: the lab's code waits in
//!   places (the run folder's lock, processes exiting, a restarted node
//!   becoming healthy), and the page must keep being served meanwhile.
//!   The page gets an answer within [`COMMAND_TIMEOUT`]; an action that
//!   overruns it is reported as such and finishes on its own.
//! - The node name is checked to be a plain id; the lab checks it against
//!   the cluster and says which nodes there are.
//! - Drain and undrain are the LB's business: with a run folder they go
//!   through the lab (which checks the node is one of its cluster), without
//!   one straight to the LB's admin API (a dashboard beside a compose
//!   cluster still drains).
//! - A node the dashboard restarts is its child process. When that node
//!   exits later (a kill from the page or from a terminal), [`reap`] collects
//!   it, between actions, so no zombie is left behind.
//!
//! Without `--lab-dir` the dashboard has no way to kill, restart or
//! partition, and says why ([`LabControl::availability`]); the page
//! disables those buttons.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use sessionlab_lab::Action;
use sessionlab_lab::Lab;
use sessionlab_lab::RunFolder;
use tokio::sync::{Mutex, watch};

use crate::config::valid_node_id;
use crate::fetch::LbAdmin;

/// Longest the page waits for an action.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);
/// Bytes of what the lab said returned to the page (an error can carry the
/// end of a process's log).
pub const MAX_OUTPUT: usize = 4096;

/// A button on the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabAction {
    Drain(String),
    Undrain(String),
    Kill(String),
    Restart(String),
    Partition(String),
    Heal,
}

impl LabAction {
    /// From the path segments after `/admin/v1/lab/`.
    pub fn parse(segments: &[&str]) -> Option<LabAction> {
        // Not flag-like either, so the answer never echoes `--help` as a node.
        let node = |id: &str| (valid_node_id(id) && !id.starts_with('-')).then(|| id.to_string());
        match segments {
            ["drain", id] => node(id).map(LabAction::Drain),
            ["undrain", id] => node(id).map(LabAction::Undrain),
            ["kill", id] => node(id).map(LabAction::Kill),
            ["restart", id] => node(id).map(LabAction::Restart),
            ["partition", id] => node(id).map(LabAction::Partition),
            ["heal"] => Some(LabAction::Heal),
            _ => None,
        }
    }

    /// The lab's action for this button.
    fn action(&self) -> Action {
        match self.clone() {
            LabAction::Drain(n) => Action::Drain(n),
            LabAction::Undrain(n) => Action::Undrain(n),
            LabAction::Kill(n) => Action::Kill(n),
            LabAction::Restart(n) => Action::Restart(n),
            LabAction::Partition(node) => Action::Partition { node, from: vec![] },
            LabAction::Heal => Action::Heal,
        }
    }
}

/// Why an action did not run or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(
        "this dashboard was not given the cluster's run folder (--lab-dir; `sessionlab up` passes it), so it cannot kill, restart or partition nodes; use the sessionlab command"
    )]
    NotConfigured,
    #[error("another lab action is still running")]
    Busy,
    #[error("the lab action did not finish within {0:?}; it goes on in the background")]
    Timeout(Duration),
    #[error("the lab cannot run here: {0}")]
    Unavailable(String),
    #[error("{detail}")]
    Failed { command: String, detail: String },
}

/// What a finished action said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabOutput {
    pub command: String,
    pub output: String,
}

impl LabOutput {
    pub fn to_json(&self) -> Value {
        json!({ "ok": true, "command": self.command, "output": self.output })
    }
}

/// Does lab actions for the dashboard; see the module docs.
pub struct LabControl {
    dir: Option<PathBuf>,
    lb: Arc<LbAdmin>,
    running: Arc<Mutex<()>>,
}

impl LabControl {
    pub fn new(dir: Option<PathBuf>, lb: Arc<LbAdmin>) -> Self {
        LabControl {
            dir,
            lb,
            running: Arc::new(Mutex::new(())),
        }
    }

    /// `{"enabled": bool, "reason": "..."}` for the page.
    pub fn availability(&self) -> Value {
        match &self.dir {
            None => json!({ "enabled": false, "reason": LabError::NotConfigured.to_string() }),
            Some(dir) => match RunFolder::new(dir).load() {
                Ok(Some(_)) => json!({ "enabled": true, "reason": null }),
                Ok(None) => json!({
                    "enabled": false,
                    "reason": format!("no cluster is up in {}", dir.display()),
                }),
                Err(e) => json!({ "enabled": false, "reason": e.to_string() }),
            },
        }
    }

    /// Do one action; see the module docs.
    pub async fn run(&self, button: &LabAction) -> Result<LabOutput, LabError> {
        let action = button.action();
        let command = action.command();
        let Some(dir) = self.dir.clone() else {
            return match button {
                LabAction::Drain(n) | LabAction::Undrain(n) => {
                    self.drain_at_the_lb(button, n).await
                }
                _ => Err(LabError::NotConfigured),
            };
        };
        let guard = self
            .running
            .clone()
            .try_lock_owned()
            .map_err(|_| LabError::Busy)?;
        tracing::info!(%command, "dashboard button");
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("lab-action".into())
            .spawn(move || {
                let said = perform_blocking(dir, &action);
                // Free the slot before answering: whoever reads the answer
                // may press the next button at once.
                drop(guard);
                let _ = tx.send(said);
            })
            .map_err(|e| LabError::Unavailable(e.to_string()))?;
        let said = tokio::time::timeout(COMMAND_TIMEOUT, rx)
            .await
            .map_err(|_| LabError::Timeout(COMMAND_TIMEOUT))?
            .map_err(|_| {
                LabError::Unavailable("the action's thread ended without an answer".into())
            })?;
        match said.map(|o| tail(&o)).map_err(|e| tail(&e)) {
            Ok(output) => Ok(LabOutput { command, output }),
            Err(detail) => {
                tracing::warn!(%command, %detail, "lab action failed");
                Err(LabError::Failed { command, detail })
            }
        }
    }

    /// Drain without a run folder: the LB's admin API, directly.
    async fn drain_at_the_lb(&self, button: &LabAction, node: &str) -> Result<LabOutput, LabError> {
        let drain = matches!(button, LabAction::Drain(_));
        let command = button.action().command();
        let verb = if drain { "drain" } else { "undrain" };
        let path = format!("/admin/v1/backends/{node}/{verb}");
        match self.lb.call(Method::POST, &path).await {
            Ok((status, _)) if status.is_success() => Ok(LabOutput {
                command,
                output: sessionlab_lab::drained(node, drain),
            }),
            Ok((status, body)) => Err(LabError::Failed {
                command,
                detail: format!(
                    "the LB answered {status}: {}",
                    body["detail"].as_str().unwrap_or("")
                ),
            }),
            Err(e) => Err(LabError::Failed {
                command,
                detail: format!("the LB's admin API: {e}"),
            }),
        }
    }

    /// Collect exited children (nodes this dashboard restarted) every
    /// second, never while an action runs (its own waits must see them),
    /// until `stop` turns true.
    pub async fn reap(&self, stop: watch::Receiver<bool>) {
        let mut every = sessionlab_shutdown::Every::new(Duration::from_secs(1), stop);
        while every.tick().await {
            if let Ok(_idle) = self.running.try_lock() {
                reap_children();
            }
        }
    }
}

/// Runs the lab's action on this thread, with a runtime of its own.
fn perform_blocking(dir: PathBuf, action: &Action) -> Result<String, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting a runtime for the lab: {e}"))?;
    runtime.block_on(async {
        let lab = Lab::new(RunFolder::new(dir)).map_err(|e| e.to_string())?;
        sessionlab_lab::perform(&lab, action)
            .await
            .map_err(|e| e.to_string())
    })
}

/// The last [`MAX_OUTPUT`] bytes of `text` (cut at a character boundary).
fn tail(text: &str) -> String {
    let mut start = text.len().saturating_sub(MAX_OUTPUT);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].trim().to_string()
}

/// `waitpid(-1, WNOHANG)` until no exited child is left.
fn reap_children() {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(status) => tracing::debug!(?status, "collected an exited child"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_actions_and_refuses_odd_node_names() {
        assert_eq!(
            LabAction::parse(&["kill", "node-2"]),
            Some(LabAction::Kill("node-2".into()))
        );
        assert_eq!(LabAction::parse(&["heal"]), Some(LabAction::Heal));
        assert_eq!(
            LabAction::parse(&["partition", "n_3"]),
            Some(LabAction::Partition("n_3".into()))
        );
        assert_eq!(
            LabAction::parse(&["drain", "node-1"]),
            Some(LabAction::Drain("node-1".into()))
        );
        for bad in [
            &["kill", "--help"][..],
            &["kill", "node 2"],
            &["kill", ""],
            &["restart"],
            &["heal", "node-1"],
            &["format", "node-1"],
        ] {
            assert_eq!(LabAction::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            LabAction::Kill("node-2".into()).action().command(),
            "sessionlab kill node-2"
        );
    }

    #[test]
    fn output_is_cut_to_its_tail() {
        let long = "x".repeat(MAX_OUTPUT) + "the end";
        let t = tail(&long);
        assert_eq!(t.len(), MAX_OUTPUT);
        assert!(t.ends_with("the end"));
    }

    #[tokio::test]
    async fn without_a_lab_dir_it_says_why() {
        let lb = Arc::new(LbAdmin::new("127.0.0.1:9".parse().unwrap(), None));
        let lab = LabControl::new(None, lb);
        assert_eq!(lab.availability()["enabled"], false);
        assert!(
            lab.availability()["reason"]
                .as_str()
                .unwrap()
                .contains("--lab-dir")
        );
        let e = lab.run(&LabAction::Heal).await.unwrap_err();
        assert!(matches!(e, LabError::NotConfigured), "{e}");
    }
}
