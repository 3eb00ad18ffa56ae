//! The workload flags `load` and `compare` share, and the load
//! configuration they make.
//!
//! A comparison is only fair if every mode gets the same users doing the
//! same things at the same pace with the same faults, so both commands
//! read the workload from this one set of flags (with one seed, so every
//! user's sequence of operations is the same in every run), and turn it
//! into a [`LoadConfig`] for the measuring engine (`sessionlab-load`).

use std::time::Duration;

use clap::Args;
use sessionlab_load::{AuthMode, LoadConfig, Mix};

use crate::error::{LabError, Result};
use crate::faultplan::FaultSpec;
use crate::preset::Preset;

/// Users when `--users` is not given.
pub const DEFAULT_USERS: usize = 50;

/// What the simulated users do; see the module docs.
#[derive(Debug, Clone, Args)]
pub struct WorkloadArgs {
    /// Simulated users; each logs in (as alice, bob or carol) and loops over
    /// reads and writes, checking every answer [default: 50; compare --quick: 20].
    #[arg(long, env = "SESSIONLAB_USERS")]
    pub users: Option<usize>,
    /// Total requests per second across all users and their tabs
    /// (default: as fast as --think allows).
    #[arg(long, env = "SESSIONLAB_RATE")]
    pub rate: Option<f64>,
    /// Pause between one user's requests (0ms: back to back).
    #[arg(long, env = "SESSIONLAB_THINK", default_value = "50ms",
          value_parser = humantime::parse_duration)]
    pub think: Duration,
    /// Pause after a login instead of --think (a person reading the page).
    #[arg(long, env = "SESSIONLAB_LOGIN_PAUSE", value_parser = humantime::parse_duration)]
    pub login_pause: Option<Duration>,
    /// The users' first logins are spread evenly over this time (no
    /// login storm at the start).
    #[arg(long, env = "SESSIONLAB_RAMP_UP", default_value = "1s",
          value_parser = humantime::parse_duration)]
    pub ramp_up: Duration,
    /// Concurrent clients per user sharing its cookies, as browser tabs do:
    /// two tabs can change one session at once (lost updates of
    /// whole-session writes, sticky modes included). Session mode only.
    #[arg(long, env = "SESSIONLAB_CLIENTS_PER_USER", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=16))]
    pub clients_per_user: u16,
    /// Weights of the operations: read (GET /api/session), increment
    /// (POST /api/counter/increment), cart (PUT or DELETE /api/cart/ITEM),
    /// logout (POST /logout, then the old cookie once more: a logged-out
    /// session that still answers is a resurrection; then a new login).
    #[arg(
        long,
        env = "SESSIONLAB_MIX",
        default_value = "read=50,increment=35,cart=15"
    )]
    pub mix: Mix,
    /// Stop after this many operations, whatever the duration (a
    /// logout's probe and a jwt token refresh ride along with theirs).
    #[arg(long, env = "SESSIONLAB_MAX_REQUESTS")]
    pub max_requests: Option<u64>,
    /// A fault at a time of the run (repeatable): kill:NODE@T,
    /// restart:NODE@T, partition:NODE@T, heal@T, drain:NODE@T,
    /// undrain:NODE@T, delay:DURATION@T; T is 10s, 1m30s, 2.5s or 50%.
    #[arg(
        long = "fault",
        value_name = "SPEC",
        env = "SESSIONLAB_FAULTS",
        value_delimiter = ','
    )]
    pub faults: Vec<FaultSpec>,
    /// A request without an answer after this long counts as a timeout.
    #[arg(long, env = "SESSIONLAB_REQUEST_TIMEOUT", default_value = "2s",
          value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Quiet time after the load before each user's final read (lets
    /// replication settle, so what is missing then is really lost).
    #[arg(long, env = "SESSIONLAB_SETTLE", default_value = "1s",
          value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// Seed of the users' choices (same seed, same sequence of operations).
    #[arg(long, env = "SESSIONLAB_SEED", default_value_t = 1)]
    pub seed: u64,
}

/// How users of `preset` log in: with a session cookie, or with tokens
/// when the mode's nodes run `--auth jwt`.
pub fn auth_of(preset: &Preset) -> AuthMode {
    auth_of_flags(preset.node_flags)
}

/// [`auth_of`] from a node command line.
pub fn auth_of_flags(flags: &[&str]) -> AuthMode {
    let jwt = flags
        .iter()
        .enumerate()
        .any(|(i, f)| *f == "--auth=jwt" || (*f == "--auth" && flags.get(i + 1) == Some(&"jwt")));
    if jwt {
        AuthMode::Jwt
    } else {
        AuthMode::Session
    }
}

impl WorkloadArgs {
    /// The load configuration against `target` for `duration`.
    pub fn config(
        &self,
        target: String,
        duration: Duration,
        default_users: usize,
        auth: AuthMode,
    ) -> Result<LoadConfig> {
        let users = self.users.unwrap_or(default_users);
        if users == 0 {
            return Err(LabError::InvalidArgument(
                "--users must be at least 1".into(),
            ));
        }
        if duration.is_zero() {
            return Err(LabError::InvalidArgument(
                "--duration must be above 0".into(),
            ));
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(LabError::InvalidArgument(format!(
                    "--rate must be a number of requests per second above 0, not {r}"
                )));
            }
        }
        if self.request_timeout.is_zero() {
            return Err(LabError::InvalidArgument(
                "--request-timeout must be above 0".into(),
            ));
        }
        if self.clients_per_user > 1 && auth == AuthMode::Jwt {
            return Err(LabError::InvalidArgument(
                "--clients-per-user above 1 needs session cookies; the jwt mode's tabs would \
                 each rotate the one refresh token (use a session mode)"
                    .into(),
            ));
        }
        let defaults = LoadConfig::default();
        Ok(LoadConfig {
            target,
            users,
            clients_per_user: usize::from(self.clients_per_user),
            duration,
            rate: self.rate,
            think: self.think,
            login_pause: self.login_pause,
            ramp_up: self.ramp_up,
            mix: self.mix,
            max_requests: self.max_requests.unwrap_or(defaults.max_requests),
            timeout: self.request_timeout,
            bucket: defaults.bucket,
            auth,
            session_cookie: defaults.session_cookie,
            trusted_ca: None,
            settle: self.settle,
            seed: self.seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preset::Mode;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        w: WorkloadArgs,
    }

    #[test]
    fn flags_make_a_config_and_bad_values_are_refused() {
        let t = T::try_parse_from([
            "t",
            "--users",
            "7",
            "--think",
            "0ms",
            "--mix",
            "read=1,increment=1",
            "--fault",
            "kill:node-2@5s",
            "--fault",
            "delay:20ms@0s,heal@50%",
        ])
        .unwrap();
        assert_eq!(t.w.faults.len(), 3);
        // A session-mode run of `secs` seconds, 50 users unless the flags say.
        let config = |w: &WorkloadArgs, secs| {
            w.config(
                "http://x".into(),
                Duration::from_secs(secs),
                50,
                AuthMode::Session,
            )
        };
        let cfg = config(&t.w, 9).unwrap();
        assert_eq!((cfg.users, cfg.think, cfg.mix.cart), (7, Duration::ZERO, 0));
        let t = T::try_parse_from(["t", "--users", "0"]).unwrap();
        let err = config(&t.w, 1).unwrap_err();
        assert!(err.to_string().contains("--users"), "{err}");
        let err = T::try_parse_from(["t", "--fault", "boom@1s"])
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("--fault") && err.contains("valid forms"),
            "{err}"
        );
        let err = T::try_parse_from(["t", "--mix", "write=1"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("--mix") && err.contains("valid"), "{err}");
    }

    #[test]
    fn jwt_nodes_mean_token_logins() {
        assert_eq!(auth_of_flags(&["--auth", "jwt"]), AuthMode::Jwt);
        assert_eq!(auth_of_flags(&["--x", "--auth=jwt"]), AuthMode::Jwt);
        assert_eq!(auth_of_flags(&["--auth", "session"]), AuthMode::Session);
        assert_eq!(
            auth_of_flags(&["--replication", "all-to-all"]),
            AuthMode::Session
        );
        assert_eq!(auth_of(Mode::Sticky.preset()), AuthMode::Session);
    }
}
