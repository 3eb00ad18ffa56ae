//! Starting, signalling and waiting for the cluster's processes.
//!
//! The lab's processes outlive the `sessionlab` command that started them:
//! `up` returns to the shell and the nodes keep running, and a later
//! `sessionlab kill node-2` (a different process) must find and signal them.
//! So a process is remembered in the run folder as a [`ProcRecord`]: its pid
//! *and* its start time from `/proc/<pid>/stat`. The start time guards
//! against pid reuse: a pid whose start time differs is some other program
//! that got the number later, and the lab never signals it.
//!
//! Children are started in their own process group, so a Ctrl-C in the
//! terminal (e.g. ending `sessionlab logs --follow`) does not reach the
//! cluster, with stdin closed and stdout/stderr appended to a per-process log
//! file. Every `SESSIONLAB_*` variable of the lab's own environment is
//! removed from the child's, so the flags recorded in the run folder are the
//! whole effective configuration.

use std::fs::{File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};

/// How the lab finds one of its processes again: pid plus start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRecord {
    pub pid: u32,
    /// Clock ticks since boot at which the process started (field 22 of
    /// `/proc/<pid>/stat`); `None` where `/proc` is not available.
    pub start_ticks: Option<u64>,
}

/// What `/proc/<pid>/stat` says about a pid.
struct ProcStat {
    state: char,
    start_ticks: u64,
}

fn read_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or
    // parentheses itself; the fields after the *last* ')' are plain.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

fn proc_available() -> bool {
    Path::new("/proc/self/stat").exists()
}

impl ProcRecord {
    /// Records a process the lab just started.
    pub fn of(pid: u32) -> ProcRecord {
        ProcRecord {
            pid,
            start_ticks: read_stat(pid).map(|s| s.start_ticks),
        }
    }

    /// Whether this very process is still running (not exited, not a zombie,
    /// and not a later process that reuses the pid).
    pub fn is_alive(&self) -> bool {
        if proc_available() {
            match read_stat(self.pid) {
                None => false,
                Some(stat) => {
                    stat.state != 'Z'
                        && stat.state != 'X'
                        && self.start_ticks.is_none_or(|t| t == stat.start_ticks)
                }
            }
        } else {
            matches!(kill(self.pid(), None), Ok(()) | Err(Errno::EPERM))
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.pid as i32)
    }

    /// Sends `signal` if the process is still ours and alive; returns whether
    /// it was sent.
    pub fn signal(&self, signal: Signal) -> Result<bool> {
        if !self.is_alive() {
            return Ok(false);
        }
        match kill(self.pid(), signal) {
            Ok(()) => Ok(true),
            Err(Errno::ESRCH) => Ok(false),
            Err(e) => Err(LabError::Io {
                what: format!("sending {signal} to pid {}", self.pid),
                source: e.into(),
            }),
        }
    }
}

/// Polls until every process in `procs` has exited or `timeout` passed;
/// returns the ones still alive.
pub fn wait_all_exit(procs: &[ProcRecord], timeout: Duration) -> Vec<ProcRecord> {
    let deadline = Instant::now() + timeout;
    loop {
        let alive: Vec<ProcRecord> = procs.iter().copied().filter(|p| p.is_alive()).collect();
        if alive.is_empty() || Instant::now() >= deadline {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Stops processes the polite way first: SIGTERM, up to `grace` to exit,
/// then SIGKILL and up to two more seconds. Returns the ones that survived
/// even that (normally none).
pub fn terminate_all(procs: &[ProcRecord], grace: Duration) -> Result<Vec<ProcRecord>> {
    for p in procs {
        p.signal(Signal::SIGTERM)?;
    }
    let stubborn = wait_all_exit(procs, grace);
    for p in &stubborn {
        p.signal(Signal::SIGKILL)?;
    }
    Ok(wait_all_exit(&stubborn, Duration::from_secs(2)))
}

/// A process to start: program, arguments, extra environment, log file.
pub struct Launch<'a> {
    pub program: &'a Path,
    pub args: &'a [String],
    pub env: &'a [(String, String)],
    pub log: &'a Path,
}

/// Starts a process detached from the terminal with its output appended to
/// its log file. The returned [`Child`] lets the starter notice a crash
/// while it waits for health; dropping it leaves the process running.
pub fn spawn(launch: &Launch<'_>) -> Result<(Child, ProcRecord)> {
    let log = open_log(launch.log)?;
    let log_err = log
        .try_clone()
        .map_err(LabError::io(format!("opening {}", launch.log.display())))?;
    let mut cmd = Command::new(launch.program);
    cmd.args(launch.args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0);
    scrub_lab_env(&mut cmd, std::env::vars_os().map(|(k, _)| k));
    cmd.envs(launch.env.iter().map(|(k, v)| (k, v)));
    let child = cmd.spawn().map_err(LabError::io(format!(
        "starting {}",
        launch.program.display()
    )))?;
    let record = ProcRecord::of(child.id());
    Ok((child, record))
}

/// Removes the lab's own `SESSIONLAB_*` variables (`inherited`: the names
/// of the parent's environment) from a child's environment.
fn scrub_lab_env(cmd: &mut Command, inherited: impl Iterator<Item = std::ffi::OsString>) {
    for key in inherited {
        if key.to_string_lossy().starts_with("SESSIONLAB_") {
            cmd.env_remove(&key);
        }
    }
}

fn open_log(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(LabError::io(format!("opening log {}", path.display())))
}

/// Describes how a child exited, for error messages.
pub fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(s) => format!("killed by {s}"),
            Err(_) => format!("killed by signal {sig}"),
        },
        _ => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(dir: &Path, script: &str) -> (Child, ProcRecord) {
        let log = dir.join("p.log");
        let args = vec!["-c".to_string(), script.to_string()];
        spawn(&Launch {
            program: Path::new("/bin/sh"),
            args: &args,
            env: &[],
            log: &log,
        })
        .unwrap()
    }

    /// Waits (bounded) until the child wrote `expected` to its log.
    fn wait_for_log(dir: &Path, expected: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(dir.join("p.log")).unwrap_or_default() != expected {
            assert!(Instant::now() < deadline, "child never wrote {expected:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn terminate_stops_a_process_and_its_output_is_in_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, rec) = sleeper(dir.path(), "echo started; exec sleep 30");
        assert!(rec.is_alive());
        wait_for_log(dir.path(), "started\n");
        // The starter reaps its own child, as `up` does while it waits.
        let reaper = std::thread::spawn(move || child.wait().unwrap());
        let left = terminate_all(&[rec], Duration::from_secs(5)).unwrap();
        assert!(left.is_empty());
        let status = reaper.join().unwrap();
        assert_eq!(describe_exit(status), "killed by SIGTERM");
        assert!(!rec.is_alive());
    }

    #[test]
    fn sigkill_follows_when_sigterm_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, rec) = sleeper(
            dir.path(),
            "trap '' TERM; echo ready; while :; do sleep 0.05; done",
        );
        // The trap is installed once "ready" is written.
        wait_for_log(dir.path(), "ready\n");
        let reaper = std::thread::spawn(move || child.wait().unwrap());
        let left = terminate_all(&[rec], Duration::from_millis(300)).unwrap();
        assert!(left.is_empty());
        assert_eq!(describe_exit(reaper.join().unwrap()), "killed by SIGKILL");
    }

    #[test]
    fn a_reused_pid_is_not_ours() {
        let me = ProcRecord::of(std::process::id());
        assert!(me.is_alive());
        let impostor = ProcRecord {
            pid: me.pid,
            start_ticks: me.start_ticks.map(|t| t + 1),
        };
        assert!(!impostor.is_alive());
        assert!(!impostor.signal(Signal::SIGKILL).unwrap());
    }

    #[test]
    fn lab_variables_are_scrubbed_from_a_child_environment() {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "env | grep -E '^(SESSIONLAB_|KEEP_)' | sort"])
            .env("SESSIONLAB_LEAK", "1")
            .env("KEEP_ME", "1");
        let parent = ["SESSIONLAB_LEAK", "KEEP_ME"].map(std::ffi::OsString::from);
        scrub_lab_env(&mut cmd, parent.into_iter());
        cmd.env("SESSIONLAB_GIVEN", "yes");
        let out = cmd.output().unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "KEEP_ME=1\nSESSIONLAB_GIVEN=yes\n"
        );
    }
}
