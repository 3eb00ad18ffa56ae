//! The one conversion from [`Flags`] to [`LbOptions`]: the rules that span
//! several flags, and the backend file.
//!
//! - `--config FILE` backends are added to `--backend`; ids must be unique.
//! - An admin listener reachable from other machines needs `--admin-token`;
//!   an empty token is refused.
//! - `--admin-listen` must differ from `--listen`.
//! - `--threads 0` becomes the number of CPUs.
//! - `--discover-interval` and `--discover-admin-port` need `--discover`.
//!
//! Every error starts with the flag to fix. The backend file only lists
//! backends:
//!
//! ```toml
//! [[backend]]
//! id = "node-1"
//! addr = "127.0.0.1:8081"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::flags::{Flags, SelectionFlags};
use super::options::{
    AdminOptions, AdminToken, LbOptions, ListenOptions, SelectionOptions, TlsOptions,
};
use crate::backend::BackendSpec;
use crate::discovery::DiscoveryOptions;
use crate::health::HealthConfig;
use crate::proxy::forward::TrustedProxies;
use crate::proxy::path::BodyLimits;
use crate::proxy::pool::PoolLimits;
use crate::proxy::server::ConnLimits;
use crate::proxy::upstream::UpstreamConfig;
use crate::tls::{TlsError, TlsIdentity};

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
    #[error("--hash-balance-factor needs --strategy consistent-hash or maglev, not {0}")]
    BalanceWithoutHash(&'static str),
    #[error(
        "--sticky-strict needs a sticky --strategy (sticky-cookie, sticky-route, consistent-hash, maglev), not {0}"
    )]
    StrictWithoutSticky(&'static str),
    #[error(
        "--sticky-strict and --hash-balance-factor contradict each other: one keeps every user on its backend, the other moves some"
    )]
    StrictAndBalance,
    #[error("{0} needs --discover")]
    WithoutDiscover(&'static str),
    #[error("--tls-listen must differ from --listen and --admin-listen ({0})")]
    TlsSameAddress(SocketAddr),
    #[error(transparent)]
    Tls(#[from] TlsError),
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

impl TryFrom<Flags> for LbOptions {
    type Error = ConfigError;

    fn try_from(f: Flags) -> Result<Self, ConfigError> {
        let b = &f.backends;
        let discovery = match (
            b.discover.clone(),
            b.discover_interval,
            b.discover_admin_port,
        ) {
            (Some(target), interval, admin_port) => Some(DiscoveryOptions {
                target,
                interval: interval.unwrap_or(Duration::from_secs(2)),
                admin_port,
            }),
            (None, Some(_), _) => return Err(ConfigError::WithoutDiscover("--discover-interval")),
            (None, _, Some(_)) => {
                return Err(ConfigError::WithoutDiscover("--discover-admin-port"));
            }
            (None, None, None) => None,
        };
        let mut backends = f.backends.backends;
        if let Some(path) = &f.backends.config {
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
        let token = match f.admin.admin_token {
            Some(t) => Some(AdminToken::new(t).ok_or(ConfigError::EmptyToken)?),
            None => None,
        };
        let (listen, admin_listen) = (f.listeners.listen, f.admin.admin_listen);
        if token.is_none() && !admin_listen.ip().is_loopback() {
            return Err(ConfigError::AdminExposed(admin_listen));
        }
        if listen == admin_listen && listen.port() != 0 {
            return Err(ConfigError::SameAddress(listen));
        }
        let threads = match f.listeners.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        };
        let tls = match (f.tls.tls_listen, f.tls.tls_cert, f.tls.tls_key) {
            (Some(addr), Some(cert), Some(key)) => {
                if addr.port() != 0 && (addr == listen || addr == admin_listen) {
                    return Err(ConfigError::TlsSameAddress(addr));
                }
                Some(TlsOptions {
                    addr,
                    identity: TlsIdentity::load(&cert, &key)?,
                    handshake_timeout: f.tls.tls_handshake_timeout,
                    hsts_max_age: f.tls.hsts_max_age,
                    redirect_http: f.tls.redirect_http,
                })
            }
            // clap's `requires` lets none of the three come alone.
            _ => None,
        };
        let c = f.clients;
        Ok(LbOptions {
            listen: ListenOptions {
                addr: listen,
                threads,
            },
            clients: ConnLimits {
                max_connections: c.max_connections as usize,
                max_per_ip: c.max_connections_per_ip as usize,
                header_timeout: c.header_timeout,
                keepalive_timeout: c.keepalive_timeout,
            },
            bodies: BodyLimits {
                max_bytes: c.body_limit as usize,
                timeout: c.body_timeout,
                min_rate: c.body_min_rate,
            },
            admin: AdminOptions {
                addr: admin_listen,
                token,
            },
            backends,
            discovery,
            selection: selection(f.selection)?,
            health: HealthConfig {
                path: f.health.health_path,
                interval: f.health.health_interval,
                timeout: f.health.health_timeout,
                rise: f.health.health_rise,
                fall: f.health.health_fall,
            },
            upstream: UpstreamConfig {
                connect_timeout: f.upstream.connect_timeout,
                read_timeout: f.upstream.read_timeout,
            },
            pool: PoolLimits {
                max_idle: f.upstream.pool_idle as usize,
                idle_timeout: f.upstream.pool_idle_timeout,
                shards: threads,
            },
            tls,
            trusted_proxies: TrustedProxies::new(f.tls.trusted_proxies),
        })
    }
}

/// The selection flags, with the rules between them: a balance factor only
/// for the hash strategies, strictness only for the sticky ones, never both.
fn selection(f: SelectionFlags) -> Result<SelectionOptions, ConfigError> {
    let strategy = f.strategy;
    if f.hash_balance_factor.is_some() && !strategy.is_hash() {
        return Err(ConfigError::BalanceWithoutHash(strategy.as_str()));
    }
    if f.sticky_strict && !strategy.is_sticky() {
        return Err(ConfigError::StrictWithoutSticky(strategy.as_str()));
    }
    if f.sticky_strict && f.hash_balance_factor.is_some() {
        return Err(ConfigError::StrictAndBalance);
    }
    Ok(SelectionOptions {
        strategy,
        session_cookie: f.session_cookie,
        max_candidates: 1 + usize::from(f.retries),
        balance_factor: f.hash_balance_factor,
        sticky_strict: f.sticky_strict,
    })
}

fn read_backend_file(path: &Path) -> Result<Vec<BackendSpec>, ConfigError> {
    let err = |detail: String| ConfigError::File {
        path: path.to_path_buf(),
        detail,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let file: BackendFile = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
    file.backend
        .iter()
        .map(|b| BackendSpec::new(&b.id, &b.addr).map_err(|e| err(e.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::Strategy;
    use clap::Parser;
    use std::io::Write;
    use std::time::Duration;

    fn parse(args: &[&str]) -> Result<Flags, clap::Error> {
        Flags::try_parse_from(std::iter::once("sessionlab-lb").chain(args.iter().copied()))
    }

    fn options(args: &[&str]) -> Result<LbOptions, ConfigError> {
        LbOptions::try_from(parse(args).unwrap())
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = options(&[]).unwrap();
        assert_eq!(s.listen.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s.admin.addr, "127.0.0.1:8079".parse().unwrap());
        assert_eq!(s.selection.strategy, Strategy::RoundRobin);
        assert_eq!(s.health.interval, Duration::from_secs(1));
        assert_eq!(s.health.timeout, Duration::from_millis(500));
        assert_eq!((s.health.rise, s.health.fall), (2, 3));
        assert_eq!(s.health.path, "/healthz");
        assert_eq!(s.selection.session_cookie, "SLSESSION");
        assert_eq!(s.selection.max_candidates, 3);
        assert_eq!(s.clients.header_timeout, Duration::from_secs(10));
        assert_eq!(s.clients.keepalive_timeout, Duration::from_secs(60));
        assert_eq!(s.clients.max_per_ip, 1024);
        assert_eq!(s.bodies.timeout, Duration::from_secs(10));
        assert_eq!(s.bodies.min_rate, 1024);
        assert_eq!(s.bodies.max_bytes, 1024 * 1024);
        assert!(s.listen.threads >= 1);
    }

    #[test]
    fn the_session_cookie_name_is_a_flag() {
        let s = options(&["--session-cookie", "APPSESSION"]).unwrap();
        assert_eq!(s.selection.session_cookie, "APPSESSION");
        let e = parse(&["--session-cookie", "a;b"]).unwrap_err().to_string();
        assert!(e.contains("--session-cookie"), "{e}");
    }

    #[test]
    fn a_flag_given_twice_takes_its_last_value_and_backends_add_up() {
        let s = options(&[
            "--strategy",
            "sticky-cookie",
            "--strategy",
            "maglev",
            "--backend",
            "a=127.0.0.1:1",
            "--backend",
            "b=127.0.0.1:2",
        ])
        .unwrap();
        assert_eq!(s.selection.strategy, Strategy::Maglev);
        assert_eq!(s.backends.len(), 2);
    }

    #[test]
    fn the_selection_options_fit_their_strategy() {
        let s = options(&["--strategy", "maglev", "--hash-balance-factor", "1.25"]).unwrap();
        assert_eq!(s.selection.strategy, Strategy::Maglev);
        assert_eq!(s.selection.balance_factor.map(|f| f.get()), Some(1.25));
        let s = options(&["--strategy", "sticky-cookie", "--sticky-strict"]).unwrap();
        assert!(s.selection.sticky_strict);
        for (args, flag) in [
            (
                &["--hash-balance-factor", "1.5"][..],
                "--hash-balance-factor",
            ),
            (
                &[
                    "--strategy",
                    "sticky-cookie",
                    "--hash-balance-factor",
                    "1.5",
                ],
                "--hash-balance-factor",
            ),
            (&["--sticky-strict"], "--sticky-strict"),
            (
                &["--strategy", "least-conn", "--sticky-strict"],
                "--sticky-strict",
            ),
            (
                &[
                    "--strategy",
                    "consistent-hash",
                    "--sticky-strict",
                    "--hash-balance-factor",
                    "2",
                ],
                "--sticky-strict",
            ),
        ] {
            let e = options(args).unwrap_err().to_string();
            assert!(e.starts_with(flag), "{args:?}: {e}");
        }
        let e = parse(&["--hash-balance-factor", "0.5"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--hash-balance-factor"), "{e}");
    }

    #[test]
    fn bad_flags_name_the_flag() {
        for (flag, bad) in [
            ("--backend", "node-1"),
            ("--health-interval", "soon"),
            ("--strategy", "fastest"),
            ("--retries", "50"),
            ("--header-timeout", "0s"),
            ("--max-connections-per-ip", "0"),
        ] {
            let e = parse(&[flag, bad]).unwrap_err().to_string();
            assert!(e.contains(flag), "{e}");
        }
    }

    #[test]
    fn cross_flag_checks() {
        let e = options(&["--backend", "a=127.0.0.1:1", "--backend", "a=127.0.0.1:2"]).unwrap_err();
        assert!(e.to_string().starts_with("--backend"), "{e}");
        let e = options(&["--admin-listen", "0.0.0.0:8079"]).unwrap_err();
        assert!(e.to_string().contains("--admin-token"), "{e}");
        let s = options(&["--admin-listen", "0.0.0.0:8079", "--admin-token", "t"]).unwrap();
        assert_eq!(s.admin.token.as_ref().map(AdminToken::as_str), Some("t"));
        assert!(
            !format!("{s:?}").contains("\"t\""),
            "the token is never printed"
        );
        let e = options(&["--admin-token", ""]).unwrap_err();
        assert!(e.to_string().starts_with("--admin-token"), "{e}");
    }

    #[test]
    fn backends_from_a_toml_file() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "[[backend]]\nid = \"node-2\"\naddr = \"127.0.0.1:8082\"").unwrap();
        let path = f.path().to_str().unwrap();
        let s = options(&["--backend", "node-1=127.0.0.1:8081", "--config", path]).unwrap();
        let ids: Vec<_> = s.backends.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, ["node-1", "node-2"]);

        let mut bad = tempfile::NamedTempFile::new().unwrap();
        writeln!(bad, "[[backend]]\nid = \"node 2\"\naddr = \"x\"").unwrap();
        let e = options(&["--config", bad.path().to_str().unwrap()]).unwrap_err();
        assert!(e.to_string().starts_with("--config"), "{e}");
    }
}
