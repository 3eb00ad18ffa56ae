//! What can go wrong when running a lab cluster, as one error type.
//!
//! Every variant is written for the person at the terminal: it says what
//! happened and, where there is one, what to type next. `main` prints the
//! message and exits non-zero; nothing here panics on bad input.

use std::path::PathBuf;

/// An error from a `sessionlab` command.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A file or folder operation failed; `what` says which one.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// `up` was asked for while processes of an earlier `up` still run.
    #[error(
        "a cluster is already up (mode {mode}, {nodes} nodes, run folder {run_dir}); \
         run `sessionlab down` first, or use another --run-dir"
    )]
    AlreadyUp {
        mode: String,
        nodes: usize,
        run_dir: PathBuf,
    },
    /// A command that needs a running cluster found none.
    #[error("no cluster is up in run folder {0}; start one with `sessionlab up`")]
    NotUp(PathBuf),
    /// One of the ports the cluster would listen on is in use.
    #[error(
        "port {port} ({purpose}) is already in use on 127.0.0.1; stop what holds it, \
         or choose other ports (--lb-port, --admin-port, --node-port, --cluster-port; 0 = any free port)"
    )]
    PortTaken { port: u16, purpose: String },
    /// A binary the cluster needs is not where the lab looks for it.
    #[error(
        "{name} not found at {path}; build it (`cargo build --bins`, or --release) \
         or point --bin-dir / SESSIONLAB_BIN_DIR at the folder that has it"
    )]
    MissingBinary { name: String, path: PathBuf },
    /// A node name that is not part of the cluster.
    #[error("unknown node `{name}`; the nodes of this cluster are: {valid}")]
    UnknownNode { name: String, valid: String },
    /// `logs` was asked for a process that has no log file.
    #[error("no log for `{name}`; processes with logs: {valid}")]
    UnknownProcess { name: String, valid: String },
    /// A value that is out of range or inconsistent (e.g. `--nodes 0`).
    #[error("{0}")]
    InvalidArgument(String),
    /// A process exited while the lab waited for it to become healthy.
    #[error("{name} exited while starting up ({status}); the end of its log ({log}):\n{tail}")]
    Crashed {
        name: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    /// Processes did not become healthy before the deadline.
    #[error("not healthy after {waited:?}: {detail}; see `sessionlab logs`")]
    NotHealthy {
        waited: std::time::Duration,
        detail: String,
    },
    /// Processes that would not die even after SIGKILL.
    #[error("still running after SIGKILL: {0}")]
    Survivors(String),
    /// An admin API call (node or LB) failed.
    #[error("{target}: {detail}")]
    Api { target: String, detail: String },
    /// Ctrl-C during a command that cleans up after itself (`compare`).
    #[error("interrupted (Ctrl-C); the cluster it had started was stopped")]
    Interrupted,
    /// `check` found operations that break a session guarantee (the
    /// report was printed before).
    #[error("the history breaks {0} session guarantee checks (counterexamples above)")]
    GuaranteesBroken(u64),
    /// The run folder's state file could not be read or written.
    #[error("run folder state {path}: {detail}")]
    State { path: PathBuf, detail: String },
}

impl LabError {
    /// Wraps an I/O error with a description of what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
        let what = what.into();
        move |source| LabError::Io { what, source }
    }
}

/// The result type of the lab's library functions.
pub type Result<T, E = LabError> = std::result::Result<T, E>;
