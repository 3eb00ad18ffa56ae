//! The dashboard's kill / restart / partition / heal buttons: the LB runs
//! the lab's own command for them.
//!
//! Draining is the LB's business and the dashboard calls the LB's drain API
//! directly. Killing, restarting and partitioning nodes are not: the LB
//! does not own the node processes and does not hold the cluster secret
//! that fault requests are signed with. The lab (`sessionlab up`) does; it
//! records every pid, command line and cut link in its run folder. So when
//! the lab starts the LB it passes `--lab-dir <run folder>`, and a button
//! press becomes exactly what a person would type:
//!
//! ```text
//! sessionlab --run-dir <run folder> kill -- node-2
//! ```
//!
//! - The `sessionlab` binary is the one next to this LB's executable (they
//!   are built together), or else in the run folder's recorded `bin_dir`.
//! - One command at a time ([`LabError::Busy`] otherwise), each bounded by
//!   [`COMMAND_TIMEOUT`] (a restart waits for the node to be healthy and back
//!   in the LB, which the lab itself bounds at 30 s by default); an overrun
//!   command is killed.
//! - The node name is checked to be a plain id (no flag can be smuggled in)
//!   and passed after `--`; the lab checks it against the cluster.
//! - The answer carries the command's output (its last [`MAX_OUTPUT`] bytes
//!   of each stream), so the page shows what the lab said.
//!
//! Without `--lab-dir` the LB has no way to do any of this, and says why
//! ([`LabControl::availability`]); the page disables those buttons.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Command;
use tokio::sync::Mutex;

use crate::backend::MAX_ID_LEN;

/// Longest a lab command may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);
/// Bytes of each output stream returned to the page.
pub const MAX_OUTPUT: usize = 4096;

/// A button on the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabAction {
    Kill(String),
    Restart(String),
    Partition(String),
    Heal,
}

impl LabAction {
    /// From the path segments after `/admin/v1/lab/`.
    pub fn parse(segments: &[&str]) -> Option<LabAction> {
        let node = |id: &str| valid_node_id(id).then(|| id.to_string());
        match segments {
            ["kill", id] => node(id).map(LabAction::Kill),
            ["restart", id] => node(id).map(LabAction::Restart),
            ["partition", id] => node(id).map(LabAction::Partition),
            ["heal"] => Some(LabAction::Heal),
            _ => None,
        }
    }

    fn args(&self) -> Vec<&str> {
        match self {
            LabAction::Kill(n) => vec!["kill", "--", n],
            LabAction::Restart(n) => vec!["restart", "--", n],
            LabAction::Partition(n) => vec!["partition", "--", n],
            LabAction::Heal => vec!["heal"],
        }
    }
}

/// A node id as the LB accepts backend ids, and not flag-like.
fn valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && !id.starts_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Why a lab command did not run or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(
        "this LB was not started by `sessionlab up` (no --lab-dir), so it cannot kill, restart or partition nodes; use the sessionlab command"
    )]
    NotConfigured,
    #[error("another lab command is still running")]
    Busy,
    #[error("cannot find the sessionlab command: {0}")]
    NoBinary(String),
    #[error("cannot run {path}: {source}")]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the lab command did not finish within {0:?} and was stopped")]
    Timeout(Duration),
    #[error("the lab command failed ({status}): {stderr}")]
    Failed {
        status: String,
        stdout: String,
        stderr: String,
    },
}

/// What a finished command printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabOutput {
    pub command: String,
    pub stdout: String,
    pub stderr: String,
}

impl LabOutput {
    pub fn to_json(&self) -> Value {
        json!({ "ok": true, "command": self.command, "stdout": self.stdout, "stderr": self.stderr })
    }
}

/// Runs lab commands for the dashboard; see the module docs.
pub struct LabControl {
    dir: Option<PathBuf>,
    running: Mutex<()>,
}

impl LabControl {
    pub fn new(dir: Option<PathBuf>) -> Self {
        LabControl {
            dir,
            running: Mutex::new(()),
        }
    }

    /// `{"enabled": bool, "reason": "..."}` for the page.
    pub fn availability(&self) -> Value {
        match self.dir.as_deref().map(find_sessionlab) {
            None => json!({ "enabled": false, "reason": LabError::NotConfigured.to_string() }),
            Some(Err(e)) => json!({ "enabled": false, "reason": e.to_string() }),
            Some(Ok(_)) => json!({ "enabled": true, "reason": null }),
        }
    }

    /// Run one action; see the module docs.
    pub async fn run(&self, action: &LabAction) -> Result<LabOutput, LabError> {
        let dir = self.dir.as_deref().ok_or(LabError::NotConfigured)?;
        let _one_at_a_time = self.running.try_lock().map_err(|_| LabError::Busy)?;
        let program = find_sessionlab(dir)?;
        let args = action.args();
        let command = format!("sessionlab {}", args.join(" "));
        tracing::info!(%command, "dashboard runs a lab command");
        let child = Command::new(&program)
            .arg("--run-dir")
            .arg(dir)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| LabError::Spawn {
                path: program.clone(),
                source,
            })?;
        let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| LabError::Timeout(COMMAND_TIMEOUT))?
            .map_err(|source| LabError::Spawn {
                path: program,
                source,
            })?;
        let stdout = tail(&out.stdout);
        let stderr = tail(&out.stderr);
        if out.status.success() {
            Ok(LabOutput {
                command,
                stdout,
                stderr,
            })
        } else {
            tracing::warn!(%command, status = %out.status, "lab command failed");
            Err(LabError::Failed {
                status: out.status.to_string(),
                stdout,
                stderr,
            })
        }
    }
}

/// The last [`MAX_OUTPUT`] bytes of a stream, as text.
fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(MAX_OUTPUT);
    String::from_utf8_lossy(&bytes[start..]).trim().to_string()
}

/// `sessionlab` next to this executable, else in the run folder's
/// recorded `bin_dir`.
fn find_sessionlab(run_dir: &Path) -> Result<PathBuf, LabError> {
    let beside_me = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("sessionlab")));
    if let Some(p) = beside_me.filter(|p| p.is_file()) {
        return Ok(p);
    }
    let recorded = std::fs::read_to_string(run_dir.join("cluster.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|state| state["bin_dir"].as_str().map(PathBuf::from))
        .map(|dir| dir.join("sessionlab"));
    match recorded {
        Some(p) if p.is_file() => Ok(p),
        _ => Err(LabError::NoBinary(format!(
            "not next to sessionlab-lb, nor in the bin_dir of {}",
            run_dir.join("cluster.json").display()
        ))),
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
            LabAction::Kill("node-2".into()).args(),
            ["kill", "--", "node-2"]
        );
    }

    #[tokio::test]
    async fn without_a_lab_dir_it_says_why() {
        let lab = LabControl::new(None);
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

    #[test]
    fn output_is_cut_to_its_tail() {
        let long = "x".repeat(MAX_OUTPUT) + "the end";
        let t = tail(long.as_bytes());
        assert_eq!(t.len(), MAX_OUTPUT);
        assert!(t.ends_with("the end"));
    }
}
