//! Finding a system program the lab starts (HAProxy, nginx) and saying
//! which Debian package brings it when it is missing.
//!
//! Debian installs both in `/usr/sbin`, which is not on every user's
//! `PATH`, so the lab looks there after `PATH`. An environment variable
//! (`SESSIONLAB_HAPROXY_BIN`, `SESSIONLAB_NGINX_BIN`) names the binary
//! outright, for another build, and is then the only place looked at: a
//! wrong value is an error, not a silent fall-back to another binary.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{LabError, Result};

/// Folders searched after `PATH`: where Debian puts daemons.
const SBIN: [&str; 2] = ["/usr/sbin", "/usr/local/sbin"];

fn executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The program `name`: from `env` if set, else on `PATH` or in an `sbin`;
/// the error names the Debian `package` and the variable.
pub fn system_binary(name: &str, env: &str, package: &str) -> Result<PathBuf> {
    lookup(
        name,
        env,
        package,
        std::env::var_os(env),
        std::env::var_os("PATH"),
    )
}

fn lookup(
    name: &str,
    env: &str,
    package: &str,
    given: Option<OsString>,
    path: Option<OsString>,
) -> Result<PathBuf> {
    if let Some(given) = given.filter(|g| !g.is_empty()) {
        let p = PathBuf::from(given);
        return match executable(&p) {
            true => Ok(p),
            false => Err(LabError::InvalidArgument(format!(
                "--lb {name}: {env}={} is not an executable file; install Debian's package \
                 (apt-get install {package}) or point {env} at the {name} binary",
                p.display()
            ))),
        };
    }
    let dirs: Vec<PathBuf> = path
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.into_iter()
        .chain(SBIN.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| executable(p))
        .ok_or_else(|| {
            LabError::InvalidArgument(format!(
                "--lb {name}: {name} is not installed (not on PATH, not in /usr/sbin): \
                 install Debian's package with `apt-get install {package}`, or point {env} \
                 at the binary"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_names_the_package_and_a_wrong_override_is_an_error() {
        let err = lookup(
            "no-such-lb-xyz",
            "SL_TEST_BIN",
            "no-such-pkg",
            None,
            Some("/nonexistent".into()),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("--lb no-such-lb-xyz:"), "{err}");
        assert!(err.contains("apt-get install no-such-pkg"), "{err}");
        let err = lookup(
            "sh",
            "SL_TEST_BIN",
            "dash",
            Some("/nonexistent/sh".into()),
            Some("/bin".into()),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("SL_TEST_BIN=/nonexistent/sh"), "{err}");
        let found = lookup("sh", "SL_TEST_BIN", "dash", None, Some("/bin".into())).unwrap();
        assert_eq!(found, Path::new("/bin/sh"));
        let given = lookup("x", "SL_TEST_BIN", "x", Some("/bin/sh".into()), None).unwrap();
        assert_eq!(given, Path::new("/bin/sh"));
    }
}
