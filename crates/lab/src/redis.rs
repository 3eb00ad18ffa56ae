//! The Redis server beside a `redis`-mode cluster.
//!
//! In the `redis` mode every node keeps its sessions in one shared Redis.
//! `sessionlab up --mode redis` starts that Redis itself: `redis-server`
//! (the Debian package) on a free loopback port, without persistence (the
//! lab's sessions are meant to vanish with it), its log in
//! `logs/redis.log`, its pid in `cluster.json` next to the nodes', so
//! `status`, `logs redis` and `down` treat it like the cluster's other
//! processes. Nodes get `--redis-url redis://127.0.0.1:<port>`.
//!
//! With `up --redis-url URL` the lab starts nothing and points the nodes at
//! that Redis instead (one that you run, or a container). With neither, or
//! with `redis-server` missing, `up` stops before starting anything and says
//! which of the two to provide.
//!
//! Killing the lab's Redis (`kill -9 $(sessionlab status --json | ...)`, or
//! stopping a container) is how the tutorial shows what a shared store
//! costs: every node turns *degraded* at once.

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};
use crate::process::{self, Launch, ProcRecord};
use crate::runfolder::RunFolder;

/// The process name in status, logs and `down`'s report.
pub const NAME: &str = "redis";

/// The lab's own Redis server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RedisState {
    pub port: u16,
    pub process: Option<ProcRecord>,
}

impl RedisState {
    /// What the nodes get as `--redis-url`.
    pub fn url(&self) -> String {
        url(self.port)
    }
}

/// `redis://127.0.0.1:<port>`.
pub fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

/// Whether an extra node flag already names a Redis (`--redis-url ...`).
pub fn given_url(node_args: &[String]) -> bool {
    node_args
        .iter()
        .any(|a| a == "--redis-url" || a.starts_with("--redis-url="))
}

/// `program` in a folder of `PATH`, if it is there.
pub fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// `redis-server` on `PATH`, or an error that says what to do instead.
pub fn find_server() -> Result<PathBuf> {
    on_path("redis-server").ok_or_else(|| {
        LabError::InvalidArgument(
            "mode redis needs a Redis server, and redis-server is not on PATH: \
             install it (Debian/Ubuntu: apt-get install redis-server) or point the nodes \
             at a running Redis with --redis-url redis://HOST:PORT"
                .into(),
        )
    })
}

/// Start `redis-server` on `port`, logging to `logs/redis.log`, and wait
/// until it accepts connections.
pub fn start(rf: &RunFolder, port: u16, timeout: Duration) -> Result<(Child, RedisState)> {
    let program = find_server()?;
    let mut args = sessionlab_wire::redis_server::scratch_args(port);
    args.extend(["--dir".to_string(), rf.root().display().to_string()]);
    let (child, record) = spawn_listening(rf, NAME, &program, &args, port, timeout)?;
    Ok((
        child,
        RedisState {
            port,
            process: Some(record),
        },
    ))
}

/// Start a Redis process (`redis-server` or `redis-sentinel`) called
/// `name`, logging to `logs/<name>.log`, and wait until it accepts
/// connections on `port`; if it exits or stays closed for `timeout`, stop
/// it and fail with the last lines of its log (where Redis says why).
pub fn spawn_listening(
    rf: &RunFolder,
    name: &str,
    program: &std::path::Path,
    args: &[String],
    port: u16,
    timeout: Duration,
) -> Result<(Child, ProcRecord)> {
    let log = rf.log_path(name);
    let (mut child, record) = process::spawn(&Launch {
        program,
        args,
        env: &[],
        log: &log,
    })?;
    let deadline = Instant::now() + timeout;
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok((child, record));
        }
        let exited = child
            .try_wait()
            .map_err(LabError::io(format!("waiting for {name}")))?;
        if exited.is_some() || Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            return Err(LabError::InvalidArgument(format!(
                "{name} ({}) did not start on port {port}: {}",
                program.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_url_is_noticed_in_either_spelling() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(given_url(&args(&["--redis-url", "redis://h:1"])));
        assert!(given_url(&args(&["--x", "--redis-url=redis://h:1"])));
        assert!(!given_url(&args(&["--redis-cas", "off"])));
        assert_eq!(url(6390), "redis://127.0.0.1:6390");
    }
}
