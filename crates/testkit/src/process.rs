//! Starting child processes with a log file, signals to them, and bounded
//! waits for them.
//!
//! Graceful shutdown is behaviour under test (SIGTERM drains and exits 0),
//! so tests send real signals to real processes. Waiting for an exit is
//! polled against a deadline: a process that hangs fails the test instead
//! of hanging it.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Send SIGTERM to `child`; panics if the signal cannot be sent.
pub fn sigterm(child: &Child) {
    let pid = libc::pid_t::try_from(child.id()).expect("a pid fits pid_t");
    // SAFETY: kill(2) on the pid of a child this test started and has not
    // reaped yet (it is borrowed, so not waited for), so the pid is not reused.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(
        rc,
        0,
        "kill -TERM {pid}: {}",
        std::io::Error::last_os_error()
    );
}

/// The exit status of `child` once it has exited, or `None` if it is still
/// running after `within` (it is left running).
pub fn wait_exit(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM `child` and its exit status; SIGKILLed and `None` if it has not
/// exited within `within`.
pub fn terminate(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    sigterm(child);
    let status = wait_exit(child, within);
    if status.is_none() {
        kill(child);
    }
    status
}

/// SIGKILL `child` and reap it (nothing if it is gone already).
pub fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Start `bin` with `args` and `envs`, stdin closed, stdout discarded and
/// stderr (where the servers log) appended to `log`, so a restart keeps
/// the earlier run's lines. Panics if it cannot start.
pub fn spawn_logged(bin: &str, args: &[String], envs: &[(&str, &str)], log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
    Command::new(bin)
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {bin}: {e}"))
}

/// The last `n` lines of the log file at `path` ("" if there is none), for
/// failure messages.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
