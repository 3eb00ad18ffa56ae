//! Configuration: command-line flags (each also an environment variable),
//! an optional TOML file of backends, and the checks that turn them into
//! [`Settings`] or an error naming the flag at fault.
//!
//! Two stages, because some mistakes are only visible across flags: clap
//! parses and range-checks each flag on its own ([`Config`]), then
//! [`Config::resolve`] merges the backend file, rejects duplicates, and
//! refuses an admin listener reachable from other machines without a token.
//!
//! The backend file (`--config FILE`) only lists backends:
//!
//! ```toml
//! [[backend]]
//! id = "node-1"
//! addr = "127.0.0.1:8081"
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::backend::BackendSpec;
use crate::health::HealthConfig;
use crate::proxy::pool::PoolLimits;
use crate::proxy::upstream::UpstreamConfig;
use crate::select::Strategy;

/// sessionlab-lb: an HTTP/1.1 load balancer with sticky sessions, health
/// checks, failover and an admin API.
#[derive(Debug, Clone, Parser)]
#[command(name = "sessionlab-lb", version)]
pub struct Config {
    /// Public listen address.
    #[arg(long, env = "SESSIONLAB_LB_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Admin listen address (API, /metrics, /healthz). Keep it private.
    /// (`sessionlab up` puts it on 8078, next to its dashboard on 8079.)
    #[arg(
        long,
        env = "SESSIONLAB_LB_ADMIN_LISTEN",
        default_value = "127.0.0.1:8079"
    )]
    pub admin_listen: SocketAddr,

    /// Require `Authorization: Bearer TOKEN` on /admin/* calls.
    #[arg(long, env = "SESSIONLAB_LB_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// A backend, ID=IP:PORT or ID=HOST:PORT (a host name is resolved once at
    /// start; repeat the flag; in the env var, comma-separated).
    #[arg(
        long = "backend",
        env = "SESSIONLAB_LB_BACKENDS",
        value_delimiter = ','
    )]
    pub backends: Vec<BackendSpec>,

    /// A TOML file with `[[backend]]` entries (id, addr), added to --backend.
    #[arg(long, env = "SESSIONLAB_LB_CONFIG")]
    pub config: Option<PathBuf>,

    /// How to choose a backend.
    #[arg(long, env = "SESSIONLAB_LB_STRATEGY", value_enum, default_value_t = Strategy::RoundRobin)]
    pub strategy: Strategy,

    /// The nodes' session cookie, read by `sticky-route` and
    /// `consistent-hash` (the nodes' `--cookie-name`).
    #[arg(long, env = "SESSIONLAB_LB_SESSION_COOKIE", default_value = sessionlab_wire::SESSION_COOKIE, value_parser = parse_cookie_name)]
    pub session_cookie: String,

    /// Path of the backends' health endpoint.
    #[arg(long, env = "SESSIONLAB_LB_HEALTH_PATH", default_value = "/healthz", value_parser = parse_path)]
    pub health_path: String,

    /// Time between active health checks (e.g. 1s, 250ms).
    #[arg(long, env = "SESSIONLAB_LB_HEALTH_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub health_interval: Duration,

    /// How long one health check may take.
    #[arg(long, env = "SESSIONLAB_LB_HEALTH_TIMEOUT", default_value = "500ms", value_parser = parse_duration)]
    pub health_timeout: Duration,

    /// Consecutive good checks that bring a down backend up.
    #[arg(long, env = "SESSIONLAB_LB_HEALTH_RISE", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub health_rise: u32,

    /// Consecutive failures (checks, connect errors, timeouts) that take a backend down.
    #[arg(long, env = "SESSIONLAB_LB_HEALTH_FALL", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub health_fall: u32,

    /// TCP connect timeout to a backend.
    #[arg(long, env = "SESSIONLAB_LB_CONNECT_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Time a backend has to send response headers.
    #[arg(long, env = "SESSIONLAB_LB_READ_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub read_timeout: Duration,

    /// Extra candidates tried after the first fails.
    #[arg(long, env = "SESSIONLAB_LB_RETRIES", default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=8))]
    pub retries: u8,

    /// Largest request body accepted, in bytes (413 beyond).
    #[arg(long, env = "SESSIONLAB_LB_BODY_LIMIT", default_value_t = 1024 * 1024, value_parser = clap::value_parser!(u64).range(0..=1024 * 1024 * 1024))]
    pub body_limit: u64,

    /// Idle keep-alive connections kept per backend and worker thread.
    #[arg(long, env = "SESSIONLAB_LB_POOL_IDLE", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(0..=65536))]
    pub pool_idle: u64,

    /// Close pooled connections unused for this long (keep it below the
    /// backends' own keep-alive timeout).
    #[arg(long, env = "SESSIONLAB_LB_POOL_IDLE_TIMEOUT", default_value = "4s", value_parser = parse_duration)]
    pub pool_idle_timeout: Duration,

    /// Open client connections at most (more wait in the kernel's backlog).
    #[arg(long, env = "SESSIONLAB_LB_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,

    /// Threads serving the public listener, each with its own
    /// single-threaded runtime (0 = one per CPU).
    #[arg(long, env = "SESSIONLAB_LB_THREADS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=256))]
    pub threads: u64,
}

/// Validated settings the LB runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub admin_token: Option<String>,
    pub backends: Vec<BackendSpec>,
    pub strategy: Strategy,
    /// The nodes' session cookie name (`--session-cookie`).
    pub session_cookie: String,
    pub health: HealthConfig,
    pub upstream: UpstreamConfig,
    pub pool: PoolLimits,
    pub retries: u8,
    pub body_limit: usize,
    pub max_connections: usize,
    pub threads: usize,
}

/// A configuration mistake; the message starts with the flag to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--config {path}: {detail}")]
    File { path: PathBuf, detail: String },
    #[error("--backend: {0}")]
    Backend(String),
    #[error(
        "--admin-listen {0} is reachable from other machines; set --admin-token (or listen on 127.0.0.1)"
    )]
    AdminExposed(SocketAddr),
    #[error("--admin-token must not be empty")]
    EmptyToken,
    #[error("--admin-listen must differ from --listen ({0})")]
    SameAddress(SocketAddr),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackendFile {
    #[serde(default)]
    backend: Vec<FileBackend>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBackend {
    id: String,
    addr: String,
}

impl Config {
    pub fn resolve(self) -> Result<Settings, ConfigError> {
        let mut backends = self.backends.clone();
        if let Some(path) = &self.config {
            backends.extend(read_backend_file(path)?);
        }
        for (i, b) in backends.iter().enumerate() {
            if backends[..i].iter().any(|other| other.id == b.id) {
                return Err(ConfigError::Backend(format!(
                    "duplicate backend id {:?}",
                    b.id
                )));
            }
        }
        match &self.admin_token {
            Some(t) if t.is_empty() => return Err(ConfigError::EmptyToken),
            None if !self.admin_listen.ip().is_loopback() => {
                return Err(ConfigError::AdminExposed(self.admin_listen));
            }
            _ => {}
        }
        if self.listen == self.admin_listen && self.listen.port() != 0 {
            return Err(ConfigError::SameAddress(self.listen));
        }
        let threads = match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        };
        Ok(Settings {
            listen: self.listen,
            admin_listen: self.admin_listen,
            admin_token: self.admin_token,
            backends,
            strategy: self.strategy,
            session_cookie: self.session_cookie,
            health: HealthConfig {
                path: self.health_path,
                interval: self.health_interval,
                timeout: self.health_timeout,
                rise: self.health_rise,
                fall: self.health_fall,
            },
            upstream: UpstreamConfig {
                connect_timeout: self.connect_timeout,
                read_timeout: self.read_timeout,
            },
            pool: PoolLimits {
                max_idle: self.pool_idle as usize,
                idle_timeout: self.pool_idle_timeout,
                shards: threads,
            },
            retries: self.retries,
            body_limit: self.body_limit as usize,
            max_connections: self.max_connections as usize,
            threads,
        })
    }
}

fn read_backend_file(path: &PathBuf) -> Result<Vec<BackendSpec>, ConfigError> {
    let err = |detail: String| ConfigError::File {
        path: path.clone(),
        detail,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let file: BackendFile = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
    file.backend
        .iter()
        .map(|b| BackendSpec::new(&b.id, &b.addr).map_err(|e| err(e.to_string())))
        .collect()
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. 1s, 500ms)"))?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

fn parse_cookie_name(s: &str) -> Result<String, String> {
    if sessionlab_wire::cookie::is_valid_name(s) {
        Ok(s.to_string())
    } else {
        Err("1 to 64 characters of A-Z, a-z, 0-9, '-' and '_'".into())
    }
}

fn parse_path(s: &str) -> Result<String, String> {
    if s.starts_with('/') && http::uri::PathAndQuery::try_from(s).is_ok() {
        Ok(s.to_string())
    } else {
        Err("must be a path starting with '/'".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("sessionlab-lb").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = parse(&[]).unwrap().resolve().unwrap();
        assert_eq!(s.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s.admin_listen, "127.0.0.1:8079".parse().unwrap());
        assert_eq!(s.strategy, Strategy::RoundRobin);
        assert_eq!(s.health.interval, Duration::from_secs(1));
        assert_eq!(s.health.timeout, Duration::from_millis(500));
        assert_eq!((s.health.rise, s.health.fall), (2, 3));
        assert_eq!(s.health.path, "/healthz");
        assert_eq!(s.session_cookie, "SLSESSION");
    }

    #[test]
    fn the_session_cookie_name_is_a_flag() {
        let s = parse(&["--session-cookie", "APPSESSION"])
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(s.session_cookie, "APPSESSION");
        let e = parse(&["--session-cookie", "a;b"]).unwrap_err().to_string();
        assert!(e.contains("--session-cookie"), "{e}");
    }

    #[test]
    fn bad_flags_name_the_flag() {
        let e = parse(&["--backend", "node-1"]).unwrap_err().to_string();
        assert!(e.contains("--backend"), "{e}");
        let e = parse(&["--health-interval", "soon"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--health-interval"), "{e}");
        let e = parse(&["--strategy", "fastest"]).unwrap_err().to_string();
        assert!(e.contains("--strategy"), "{e}");
        let e = parse(&["--retries", "50"]).unwrap_err().to_string();
        assert!(e.contains("--retries"), "{e}");
    }

    #[test]
    fn cross_flag_checks() {
        let e = parse(&["--backend", "a=127.0.0.1:1", "--backend", "a=127.0.0.1:2"])
            .unwrap()
            .resolve()
            .unwrap_err();
        assert!(e.to_string().starts_with("--backend"), "{e}");
        let e = parse(&["--admin-listen", "0.0.0.0:8079"])
            .unwrap()
            .resolve()
            .unwrap_err();
        assert!(e.to_string().contains("--admin-token"), "{e}");
        parse(&["--admin-listen", "0.0.0.0:8079", "--admin-token", "t"])
            .unwrap()
            .resolve()
            .unwrap();
    }

    #[test]
    fn backends_from_a_toml_file() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "[[backend]]\nid = \"node-2\"\naddr = \"127.0.0.1:8082\"").unwrap();
        let path = f.path().to_str().unwrap();
        let s = parse(&["--backend", "node-1=127.0.0.1:8081", "--config", path])
            .unwrap()
            .resolve()
            .unwrap();
        let ids: Vec<_> = s.backends.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, ["node-1", "node-2"]);

        let mut bad = tempfile::NamedTempFile::new().unwrap();
        writeln!(bad, "[[backend]]\nid = \"node 2\"\naddr = \"x\"").unwrap();
        let e = parse(&["--config", bad.path().to_str().unwrap()])
            .unwrap()
            .resolve()
            .unwrap_err();
        assert!(e.to_string().starts_with("--config"), "{e}");
    }
}
