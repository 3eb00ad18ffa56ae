//! Free loopback ports that parallel processes do not also pick.
//!
//! A cluster's processes must be told their ports before they start (each
//! node is given its peers' cluster ports), so ports are picked first and
//! bound later, by another process, tens or hundreds of milliseconds on. In
//! that window the port looks free to anyone else who checks, and the test
//! runner starts many clusters side by side: two of them picking the same
//! port means one node dies with "address in use" while the health check
//! reaches the *other* cluster's node (a signed request to it fails as
//! forged; the CI run that showed this got a 401 from a digest).
//!
//! Two rules close the window:
//!
//! | rule | what it rules out |
//! |---|---|
//! | pick at random in 20000-31999, below Linux's ephemeral range (32768-60999) | the client side of an outgoing connection taking the port (the kernel hands those out from the ephemeral range) |
//! | reserve each pick with a file created exclusively in a shared folder (`/tmp/sessionlab-ports/PORT`) | another picker taking it before the process that will listen has bound it |
//!
//! The folder is one for the whole machine, like the ports it guards: it
//! does not follow `$TMPDIR`, which tests and users set per run (a compare
//! run whose reservations went into its own temporary folder met nobody's,
//! and its dashboard found its port taken by a parallel test's node).
//! `SESSIONLAB_PORTS_DIR` moves it, for every picker that is given the same
//! value; where `/tmp` does not exist, the system's temporary folder is used.
//!
//! A reservation is honoured for [`RESERVE_FOR`]: by then the process it
//! was picked for listens (or has died), and a listening port fails the
//! bind check anyway. Whoever meets an older reservation removes it, and
//! the port is a candidate again on a later pick. If the folder cannot be
//! written the reservation is skipped and only the bind check remains.

use std::fs::{self, OpenOptions};
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Where ports are picked: below Linux's ephemeral range.
pub const RANGE: std::ops::Range<u16> = 20_000..32_000;

/// How long a pick is kept from other pickers.
pub const RESERVE_FOR: Duration = Duration::from_secs(120);

/// Whether nothing listens on 127.0.0.1:`port` (it can be bound now).
pub fn is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// One free port not in `taken`, reserved against other pickers (see the
/// module docs); `None` after a bounded number of tries.
pub fn pick(taken: &dyn Fn(u16) -> bool) -> Option<u16> {
    let dir = reservations();
    for _ in 0..256 {
        let port = random_port();
        if taken(port) || !reserve(dir.as_ref(), port) {
            continue;
        }
        if is_free(port) {
            return Some(port);
        }
    }
    None
}

/// `n` distinct free ports, each reserved (see [`pick`]).
pub fn pick_many(n: usize) -> Option<Vec<u16>> {
    let mut out: Vec<u16> = Vec::with_capacity(n);
    for _ in 0..n {
        let port = pick(&|p| out.contains(&p))?;
        out.push(port);
    }
    Some(out)
}

fn random_port() -> u16 {
    let mut seed = [0u8; 2];
    getrandom::fill(&mut seed).expect("the OS random number generator");
    RANGE.start + u16::from_le_bytes(seed) % (RANGE.end - RANGE.start)
}

/// Moves the folder of reservations (see the module docs).
pub const DIR_ENV: &str = "SESSIONLAB_PORTS_DIR";

/// The machine-wide folder of reservations, created if missing; `None` if it
/// cannot be.
fn reservations() -> Option<PathBuf> {
    let dir = reservation_dir(std::env::var_os(DIR_ENV));
    fs::create_dir_all(&dir).ok()?;
    Some(dir)
}

/// Where reservations live: the override if given, else one folder under
/// `/tmp` that every process shares whatever its `$TMPDIR`.
fn reservation_dir(overridden: Option<std::ffi::OsString>) -> PathBuf {
    if let Some(dir) = overridden.filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let shared = std::path::Path::new("/tmp");
    let base = if shared.is_dir() {
        shared.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    base.join("sessionlab-ports")
}

/// Take `port` for this picker: true if the reservation file was created
/// here (or there is no folder to reserve in).
fn reserve(dir: Option<&PathBuf>, port: u16) -> bool {
    let Some(dir) = dir else { return true };
    let path = dir.join(port.to_string());
    match OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let stale = fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > RESERVE_FOR);
            if stale {
                // Free it for a later pick; never claimed in the same
                // breath, so two removers cannot both believe they hold it.
                let _ = fs::remove_file(&path);
            }
            false
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_are_distinct_in_range_bindable_and_reserved() {
        let ports = pick_many(20).unwrap();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 20);
        let dir = reservations().unwrap();
        for p in ports {
            assert!(RANGE.contains(&p));
            assert!(is_free(p));
            // A second picker cannot reserve it again.
            assert!(!reserve(Some(&dir), p), "port {p} reserved twice");
        }
    }

    /// Set by the parent in the test below: the port the child must find
    /// already reserved.
    const PROBE_ENV: &str = "SESSIONLAB_PORTS_PROBE";

    #[test]
    fn a_picker_with_another_tmpdir_sees_the_reservation() {
        let port = pick(&|_| false).unwrap();
        let own_tmp = std::env::temp_dir().join(format!("ports-probe-{}", std::process::id()));
        fs::create_dir_all(&own_tmp).unwrap();
        // The same test binary, as another process with its own TMPDIR
        // (as a compare run started by a test has), runs only the probe.
        // It inherits SESSIONLAB_PORTS_DIR, if set, as every picker must.
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "ports::tests::probe_in_a_child", "--ignored"])
            .env("TMPDIR", &own_tmp)
            .env(PROBE_ENV, port.to_string())
            .output()
            .unwrap();
        let _ = fs::remove_dir_all(&own_tmp);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("1 passed"), "the probe did not run: {text}");
    }

    /// Run by the test above, in a child process.
    #[test]
    #[ignore = "run as a child by a_picker_with_another_tmpdir_sees_the_reservation"]
    fn probe_in_a_child() {
        let port: u16 = std::env::var(PROBE_ENV).unwrap().parse().unwrap();
        assert!(
            !reserve(reservations().as_ref(), port),
            "port {port} reserved twice"
        );
    }

    #[test]
    fn the_folder_ignores_tmpdir_and_follows_the_override() {
        assert_eq!(
            reservation_dir(None),
            PathBuf::from("/tmp/sessionlab-ports")
        );
        assert_eq!(
            reservation_dir(Some("".into())),
            PathBuf::from("/tmp/sessionlab-ports")
        );
        assert_eq!(reservation_dir(Some("/x/y".into())), PathBuf::from("/x/y"));
    }

    #[test]
    fn a_taken_port_is_never_picked() {
        let p = pick(&|p| p % 2 == 0).unwrap();
        assert_eq!(p % 2, 1);
    }
}
