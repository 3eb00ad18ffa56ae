//! Signals to child processes a test started, and bounded waits for them.
//!
//! Graceful shutdown is behaviour under test (SIGTERM drains and exits 0),
//! so tests send real signals to real processes. Waiting for an exit is
//! polled against a deadline: a process that hangs fails the test instead
//! of hanging it.

use std::process::{Child, ExitStatus};
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
