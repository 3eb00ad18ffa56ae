//! The run folder (`.sessionlab/` by default): everything the lab knows
//! about the cluster it started, on disk.
//!
//! Each `sessionlab` command is a short-lived process, so the cluster's
//! description has to live somewhere between commands. The folder holds:
//!
//! - `cluster.json`: the mode, every process with its pid, start time, ports
//!   and exact command line (the *effective config*: what was really run,
//!   including per-node peers), and the replication links `partition` cut.
//! - `cluster-secret` (mode 0600): the generated secret nodes use to sign
//!   replication traffic and the lab uses to sign fault requests. It is
//!   handed to nodes in their environment, never on the command line, where
//!   `ps` would show it to every user of the machine.
//! - `admin-token` (mode 0600): the generated bearer token of the LB's admin
//!   API. The LB and the dashboard get it in their environment; the lab
//!   sends it on its own admin calls. A page in the operator's browser
//!   cannot read it, so it cannot drive the LB.
//! - `logs/<process>.log`: stdout and stderr of each process.
//! - `lock`: commands that change the cluster take an exclusive `flock` on
//!   it, so `scale` and `kill` typed in two terminals do not interleave.
//!
//! The state file is replaced atomically (write, then rename), so a command
//! that dies half way leaves the previous consistent state behind.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};
use crate::lb::LbKind;
use crate::ports::PortBases;
use crate::preset::Mode;
use crate::process::ProcRecord;
use crate::redis::RedisState;
use crate::redis_ha::HaState;

/// The environment variable that hands the cluster secret to a node.
pub const SECRET_ENV: &str = "SESSIONLAB_CLUSTER_SECRET";

/// The dashboard's process name (in `status`, `logs`, `down`).
pub const DASHBOARD: &str = "dashboard";

/// Everything the lab remembers about a running cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterState {
    pub mode: Mode,
    /// Where `sessionlab-node` and `sessionlab-lb` were taken from.
    pub bin_dir: PathBuf,
    pub started_at_unix_ms: u64,
    /// The port bases `up` was given (0 = free ports), reused by `scale`.
    pub ports: PortBases,
    /// Extra flags for every node / for the LB (`up --node-arg/--lb-arg`).
    pub node_extra_args: Vec<String>,
    pub lb_extra_args: Vec<String>,
    pub lb: LbState,
    /// The dashboard process (`sessionlab-dashboard`); `None` in a state
    /// written before the dashboard was a process of its own.
    #[serde(default)]
    pub dashboard: Option<DashboardState>,
    pub nodes: Vec<NodeState>,
    /// The Redis server `up` started for the `redis` mode, if it did.
    #[serde(default)]
    pub redis: Option<RedisState>,
    /// The primary, replica and Sentinels of the `redis-ha` mode.
    #[serde(default)]
    pub redis_ha: Option<HaState>,
    /// Replication links cut by `partition`, each pair sorted.
    #[serde(default)]
    pub cuts: BTreeSet<(String, String)>,
    /// Delay on every replication link, in ms (`load --fault delay:..`);
    /// 0 = none. Kept, like the cuts, because a fault set is sent whole.
    #[serde(default)]
    pub delay_ms: u64,
    /// Clock skews set by `load --fault skew:NODE:+2s@T`, in ms per node.
    /// `heal` keeps them (it heals the network, not the clocks).
    #[serde(default)]
    pub skews: BTreeMap<String, i64>,
}

/// The load balancer process.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LbState {
    pub port: u16,
    pub admin_port: u16,
    pub process: Option<ProcRecord>,
    pub args: Vec<String>,
    /// Which LB it is (`up --lb`); sessionlab-lb in a state written
    /// before there was a choice.
    #[serde(default)]
    pub kind: LbKind,
    /// The HAProxy or nginx binary started (`None` for sessionlab-lb,
    /// which is in `bin_dir`).
    #[serde(default)]
    pub program: Option<PathBuf>,
    /// Nodes drained in an LB without a runtime API (nginx: written into
    /// its file as `down`).
    #[serde(default)]
    pub drained: BTreeSet<String>,
    /// `up --tls`: the HTTPS port (the plain port then redirects to it).
    #[serde(default)]
    pub tls_port: Option<u16>,
}

/// The dashboard process: it reads the LB's admin API and the nodes'
/// cluster listeners, and acts on this run folder for its buttons.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DashboardState {
    pub port: u16,
    pub process: Option<ProcRecord>,
    pub args: Vec<String>,
}

/// One node process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeState {
    pub id: String,
    pub app_port: u16,
    pub cluster_port: u16,
    /// `None` once the lab killed or stopped it.
    pub process: Option<ProcRecord>,
    pub args: Vec<String>,
}

impl ClusterState {
    /// The node called `id`, or an error listing the valid names.
    pub fn node(&self, id: &str) -> Result<&NodeState> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or_else(|| self.unknown_node(id))
    }

    /// Mutable access to the node called `id`.
    pub fn node_mut(&mut self, id: &str) -> Result<&mut NodeState> {
        let err = self.unknown_node(id);
        self.nodes.iter_mut().find(|n| n.id == id).ok_or(err)
    }

    fn unknown_node(&self, id: &str) -> LabError {
        LabError::UnknownNode {
            name: id.to_string(),
            valid: self.node_ids().join(", "),
        }
    }

    pub fn node_ids(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.id.clone()).collect()
    }

    /// Every process record the state holds, LB first, then the dashboard.
    pub fn processes(&self) -> Vec<(String, ProcRecord)> {
        let lb = self.lb.process.map(|p| ("lb".to_string(), p));
        let dashboard = self
            .dashboard
            .as_ref()
            .and_then(|d| d.process)
            .map(|p| (DASHBOARD.to_string(), p));
        let nodes = self
            .nodes
            .iter()
            .filter_map(|n| n.process.map(|p| (n.id.clone(), p)));
        let redis = self
            .redis
            .as_ref()
            .and_then(|r| r.process)
            .map(|p| (crate::redis::NAME.to_string(), p));
        let redis_ha = self
            .redis_ha
            .iter()
            .flat_map(|ha| ha.members())
            .filter_map(|m| m.process.map(|p| (m.id.clone(), p)));
        lb.into_iter()
            .chain(dashboard)
            .chain(nodes)
            .chain(redis)
            .chain(redis_ha)
            .collect()
    }

    /// Whether any recorded process still runs.
    pub fn any_alive(&self) -> bool {
        self.processes().iter().any(|(_, p)| p.is_alive())
    }
}

/// The folder and its files.
#[derive(Debug, Clone)]
pub struct RunFolder {
    root: PathBuf,
}

/// Held while a command changes the cluster; released on drop.
pub struct RunLock {
    _file: File,
}

impl RunFolder {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunFolder { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn state_path(&self) -> PathBuf {
        self.root.join("cluster.json")
    }

    pub fn secret_path(&self) -> PathBuf {
        self.root.join("cluster-secret")
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// The log file of a process (`lb`, `node-1`, ...).
    pub fn log_path(&self, process: &str) -> PathBuf {
        self.logs_dir().join(format!("{process}.log"))
    }

    /// Creates the folder (mode 0700: it holds the secret) and its logs dir.
    pub fn create(&self) -> Result<()> {
        std::fs::create_dir_all(self.logs_dir()).map_err(LabError::io(format!(
            "creating run folder {}",
            self.root.display()
        )))?;
        std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))
            .map_err(LabError::io(format!("restricting {}", self.root.display())))
    }

    /// Takes the exclusive lock, waiting up to `timeout` for another command.
    pub fn lock(&self, timeout: Duration) -> Result<RunLock> {
        self.create()?;
        let path = self.root.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(LabError::io(format!("opening {}", path.display())))?;
        let deadline = Instant::now() + timeout;
        loop {
            // SAFETY: flock on a file descriptor we own for the call's duration.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(RunLock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(LabError::Io {
                    what: format!("locking {}", path.display()),
                    source: err,
                });
            }
            if Instant::now() >= deadline {
                return Err(LabError::InvalidArgument(format!(
                    "another sessionlab command is changing the cluster in {} (waited {timeout:?})",
                    self.root.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The state, or `None` if no cluster was started here.
    pub fn load(&self) -> Result<Option<ClusterState>> {
        let path = self.state_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(LabError::Io {
                    what: format!("reading {}", path.display()),
                    source: e,
                });
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| LabError::State {
                path,
                detail: format!("{e} (delete the file if no cluster is running)"),
            })
    }

    /// The state of a cluster that must exist.
    pub fn load_required(&self) -> Result<ClusterState> {
        self.load()?
            .ok_or_else(|| LabError::NotUp(self.root.clone()))
    }

    /// Writes the state atomically.
    pub fn save(&self, state: &ClusterState) -> Result<()> {
        let path = self.state_path();
        let tmp = self.root.join("cluster.json.tmp");
        let text = serde_json::to_string_pretty(state).map_err(|e| LabError::State {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        std::fs::write(&tmp, text + "\n")
            .map_err(LabError::io(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(LabError::io(format!("replacing {}", path.display())))
    }

    /// Forgets the cluster: removes the state and the secret, keeps the logs.
    pub fn clear(&self) -> Result<()> {
        for path in [
            self.state_path(),
            self.secret_path(),
            self.admin_token_path(),
        ] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(LabError::Io {
                        what: format!("removing {}", path.display()),
                        source: e,
                    });
                }
            }
        }
        Ok(())
    }

    pub fn admin_token_path(&self) -> PathBuf {
        self.root.join("admin-token")
    }

    /// Stores a new LB admin token, readable only by its owner.
    pub fn write_admin_token(&self, token: &str) -> Result<()> {
        write_private(&self.admin_token_path(), token)
    }

    /// The LB admin token; `None` for a run folder made before there was one.
    pub fn read_admin_token(&self) -> Result<Option<String>> {
        let path = self.admin_token_path();
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s.trim().to_string()).filter(|t| !t.is_empty())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LabError::Io {
                what: format!("reading {}", path.display()),
                source: e,
            }),
        }
    }

    /// Stores a new secret, readable only by its owner.
    pub fn write_secret(&self, secret: &str) -> Result<()> {
        write_private(&self.secret_path(), secret)
    }

    pub fn read_secret(&self) -> Result<String> {
        let path = self.secret_path();
        std::fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .map_err(LabError::io(format!("reading {}", path.display())))
    }
}

/// Replaces `path` with `text`, readable only by its owner.
pub(crate) fn write_private(path: &Path, text: &str) -> Result<()> {
    let _ = std::fs::remove_file(path);
    let mut file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(LabError::io(format!("creating {}", path.display())))?;
    file.write_all(text.as_bytes())
        .map_err(LabError::io(format!("writing {}", path.display())))
}

/// A new cluster secret: 32 random bytes as 64 hex characters.
pub fn generate_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| LabError::Io {
        what: "reading the OS random generator".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ClusterState {
        let mut st = crate::lb::tests::sample(Mode::Sticky, LbKind::Sessionlab, 1);
        st.nodes[0].args = vec!["--id".into(), "node-1".into()];
        st
    }

    /// The file's permission bits (`0o600`: only its owner reads it).
    fn permission_bits(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn state_round_trips_and_clear_keeps_logs() {
        let dir = tempfile::tempdir().unwrap();
        let rf = RunFolder::new(dir.path().join("run"));
        assert!(rf.load().unwrap().is_none());
        assert!(matches!(rf.load_required(), Err(LabError::NotUp(_))));
        rf.create().unwrap();
        rf.save(&sample()).unwrap();
        std::fs::write(rf.log_path("node-1"), "hello").unwrap();
        let back = rf.load_required().unwrap();
        assert_eq!(back.nodes[0].args, vec!["--id", "node-1"]);
        assert_eq!(back.mode, Mode::Sticky);
        rf.clear().unwrap();
        assert!(rf.load().unwrap().is_none());
        assert!(rf.log_path("node-1").exists());
    }

    #[test]
    fn unknown_node_lists_the_valid_ones() {
        let err = sample().node("node-9").unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown node `node-9`; the nodes of this cluster are: node-1"
        );
    }

    #[test]
    fn the_admin_token_is_private_and_cleared_with_the_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let rf = RunFolder::new(dir.path());
        rf.create().unwrap();
        assert_eq!(rf.read_admin_token().unwrap(), None, "an older run folder");
        let token = generate_secret().unwrap();
        rf.write_admin_token(&token).unwrap();
        assert_eq!(permission_bits(&rf.admin_token_path()), 0o600);
        assert_eq!(rf.read_admin_token().unwrap(), Some(token));
        rf.clear().unwrap();
        assert_eq!(rf.read_admin_token().unwrap(), None);
    }

    #[test]
    fn secret_is_private_and_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let rf = RunFolder::new(dir.path());
        let secret = generate_secret().unwrap();
        assert_eq!(secret.len(), 64);
        assert_ne!(secret, generate_secret().unwrap());
        rf.write_secret(&secret).unwrap();
        assert_eq!(permission_bits(&rf.secret_path()), 0o600);
        assert_eq!(rf.read_secret().unwrap(), secret);
    }

    #[test]
    fn the_lock_is_exclusive_between_holders() {
        let dir = tempfile::tempdir().unwrap();
        let rf = RunFolder::new(dir.path());
        let held = rf.lock(Duration::from_secs(1)).unwrap();
        let err = rf.lock(Duration::from_millis(100)).err().unwrap();
        assert!(
            err.to_string().contains("another sessionlab command"),
            "{err}"
        );
        drop(held);
        rf.lock(Duration::from_millis(100)).unwrap();
    }

    #[test]
    fn a_corrupt_state_file_is_reported_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let rf = RunFolder::new(dir.path());
        std::fs::write(rf.state_path(), "{not json").unwrap();
        let err = rf.load().unwrap_err().to_string();
        assert!(err.contains("cluster.json"), "{err}");
    }
}
