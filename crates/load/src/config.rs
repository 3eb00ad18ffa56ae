//! What a load run does: how many users, how long, how fast, which mix.

use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use crate::tls::TrustedCa;

/// How users prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// `POST /login`, then the session cookie (`SLSESSION` by default).
    Session,
    /// `POST /auth/login`, then `Authorization: Bearer` with refresh.
    Jwt,
}

/// Relative weights of the operations a user loops over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Mix {
    pub read: u32,
    pub increment: u32,
    pub cart: u32,
    /// Log out, then try the old session once (a logged-out session that
    /// still answers is a resurrection), then log in again. 0 by default.
    pub logout: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            read: 50,
            increment: 35,
            cart: 15,
            logout: 0,
        }
    }
}

impl FromStr for Mix {
    type Err = String;
    /// `read=50,increment=35,cart=15,logout=1` (any subset; missing ones are 0).
    fn from_str(s: &str) -> Result<Self, String> {
        let mut m = Mix {
            read: 0,
            increment: 0,
            cart: 0,
            logout: 0,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected name=weight"))?;
            let v: u32 = v
                .parse()
                .map_err(|_| format!("`{part}`: the weight must be a whole number"))?;
            match k {
                "read" => m.read = v,
                "increment" => m.increment = v,
                "cart" => m.cart = v,
                "logout" => m.logout = v,
                _ => {
                    return Err(format!(
                        "unknown operation `{k}` (valid: read, increment, cart, logout)"
                    ));
                }
            }
        }
        if m.read + m.increment + m.cart == 0 {
            // Logging out alone is no workload: something must be done in between.
            return Err("at least one weight must be above 0".into());
        }
        Ok(m)
    }
}

/// A load run; see the crate docs.
#[derive(Debug, Clone, Serialize)]
pub struct LoadConfig {
    /// The LB's base URL, e.g. `http://127.0.0.1:8080`.
    pub target: String,
    pub users: usize,
    /// Concurrent clients per user sharing its cookies, as browser tabs
    /// do (1: one client). With several, two tabs can change one session
    /// at once: the lost updates of whole-session writes.
    pub clients_per_user: usize,
    pub duration: Duration,
    /// Total requests per second across all users and their tabs (None: as fast as the
    /// think time allows).
    pub rate: Option<f64>,
    /// Pause between one user's requests.
    pub think: Duration,
    /// Pause after a successful login instead of `think` (None: `think`).
    /// A person reads the page after logging in; a separate pause keeps
    /// "the next request came before the login reached that node" apart
    /// from "the next request came before the last change did".
    pub login_pause: Option<Duration>,
    /// The users' first requests are spread evenly over this time, so a
    /// run does not begin with every user logging in at once (password
    /// hashing is slow on purpose; a login storm saturates the CPUs and
    /// says more about the storm than about the mode).
    pub ramp_up: Duration,
    pub mix: Mix,
    /// A hard cap on the users' operations, whatever the duration. An
    /// operation is one request, except that a logout brings its probe of
    /// the old cookie and a jwt request may bring a token refresh along.
    pub max_requests: u64,
    pub timeout: Duration,
    /// Width of a timeline bucket.
    pub bucket: Duration,
    pub auth: AuthMode,
    /// The nodes' session cookie name (their `--cookie-name`).
    pub session_cookie: String,
    /// The CA the users trust when `target` is `https://` (`up --tls`:
    /// the run folder's `tls/ca.pem`).
    #[serde(skip)]
    pub trusted_ca: Option<TrustedCa>,
    /// Quiet time after the load before the final reads (lets replication
    /// settle, so what is missing then is really lost).
    pub settle: Duration,
    pub seed: u64,
}

impl LoadConfig {
    /// The pause between one tab's requests that makes `rate` the total
    /// over all users and their tabs (None: no `rate`, the think time
    /// paces). A pace longer than the run is the run: a rate so low that
    /// a tab's second request would fall after the end.
    pub fn pace(&self) -> Option<Duration> {
        let tabs = (self.users.max(1) * self.clients_per_user.max(1)) as f64;
        self.rate.filter(|r| *r > 0.0).map(|r| {
            Duration::try_from_secs_f64(tabs / r)
                .unwrap_or(self.duration)
                .min(self.duration)
        })
    }
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            target: "http://127.0.0.1:8080".into(),
            users: 50,
            clients_per_user: 1,
            duration: Duration::from_secs(30),
            rate: None,
            think: Duration::from_millis(50),
            login_pause: None,
            ramp_up: Duration::from_secs(1),
            mix: Mix::default(),
            max_requests: 10_000_000,
            timeout: Duration::from_secs(2),
            bucket: Duration::from_secs(1),
            auth: AuthMode::Session,
            session_cookie: sessionlab_wire::SESSION_COOKIE.into(),
            trusted_ca: None,
            settle: Duration::from_secs(1),
            seed: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_shared_by_every_tab_of_every_user() {
        let cfg = LoadConfig {
            users: 2,
            clients_per_user: 3,
            rate: Some(60.0),
            ..LoadConfig::default()
        };
        // 6 tabs at 60 requests per second together: 100 ms each.
        assert_eq!(cfg.pace(), Some(Duration::from_millis(100)));
        assert_eq!(LoadConfig::default().pace(), None);
        // A rate too low for a Duration is a pace of the whole run.
        let slow = LoadConfig {
            rate: Some(1e-300),
            ..LoadConfig::default()
        };
        assert_eq!(slow.pace(), Some(slow.duration));
    }

    #[test]
    fn mix_parses_and_refuses_nonsense() {
        let m: Mix = "read=1, increment=2".parse().unwrap();
        assert_eq!((m.read, m.increment, m.cart, m.logout), (1, 2, 0, 0));
        let m: Mix = "read=1,logout=3".parse().unwrap();
        assert_eq!((m.read, m.logout), (1, 3));
        assert!("logout=1".parse::<Mix>().is_err());
        assert!("read=x".parse::<Mix>().is_err());
        assert!("write=1".parse::<Mix>().unwrap_err().contains("valid"));
        assert!("read=0".parse::<Mix>().is_err());
    }
}
