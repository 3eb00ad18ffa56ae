//! The typed options the LB runs with, one struct per part.
//!
//! Made once from the flags ([`LbOptions::try_from`], `from_flags.rs`);
//! everything after start-up reads only these. Each part's options are the
//! type that part defines (health thresholds in `health/`, timeouts in
//! `proxy/upstream.rs`, ...), so a part never sees another's settings.
//!
//! | field | part | flags |
//! |---|---|---|
//! | `listen` | the public listener | `--listen`, `--threads` |
//! | `clients` | per-connection bounds (`proxy/server.rs`) | `--max-connections[-per-ip]`, `--header-timeout`, `--keepalive-timeout` |
//! | `bodies` | request bodies (`proxy/path.rs`) | `--body-limit`, `--body-timeout`, `--body-min-rate` |
//! | `admin` | the admin listener | `--admin-listen`, `--admin-token` |
//! | `backends` | the start-up table | `--backend`, `--config` |
//! | `discovery` | backends found by DNS (`discovery.rs`) | `--discover`, `--discover-interval`, `--discover-admin-port` |
//! | `selection` | `select/` | `--strategy`, `--session-cookie`, `--retries`, `--hash-balance-factor`, `--sticky-strict` |
//! | `health` | `health/` | `--health-*` |
//! | `upstream`, `pool` | `proxy/upstream.rs`, `proxy/pool.rs` | `--connect-timeout`, `--read-timeout`, `--pool-*` |
//! | `tls` | the HTTPS listener (`tls/`) | `--tls-*`, `--hsts-max-age`, `--redirect-http` |
//! | `trusted_proxies` | `proxy/forward.rs` | `--trusted-proxy` |

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::backend::BackendSpec;
use crate::discovery::DiscoveryOptions;
use crate::health::HealthConfig;
use crate::proxy::forward::TrustedProxies;
use crate::proxy::path::BodyLimits;
use crate::proxy::pool::PoolLimits;
use crate::proxy::server::ConnLimits;
use crate::proxy::upstream::UpstreamConfig;
use crate::select::{BalanceFactor, Strategy};
use crate::tls::TlsIdentity;

/// Everything the LB runs with.
#[derive(Debug, Clone)]
pub struct LbOptions {
    pub listen: ListenOptions,
    pub clients: ConnLimits,
    pub bodies: BodyLimits,
    pub admin: AdminOptions,
    pub backends: Vec<BackendSpec>,
    pub discovery: Option<DiscoveryOptions>,
    pub selection: SelectionOptions,
    pub health: HealthConfig,
    pub upstream: UpstreamConfig,
    pub pool: PoolLimits,
    /// The HTTPS listener, if `--tls-listen` was given.
    pub tls: Option<TlsOptions>,
    pub trusted_proxies: TrustedProxies,
}

/// The HTTPS listener: where, with which certificate, and its rules.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    pub addr: SocketAddr,
    /// The certificate and key, loaded and checked at start.
    pub identity: TlsIdentity,
    pub handshake_timeout: Duration,
    /// `Strict-Transport-Security` max-age; zero sends no header.
    pub hsts_max_age: Duration,
    /// `--redirect-http`: the plain listener answers 308 to HTTPS.
    pub redirect_http: bool,
}

/// The public listener.
#[derive(Debug, Clone, Copy)]
pub struct ListenOptions {
    pub addr: SocketAddr,
    /// Worker threads (already resolved: never 0).
    pub threads: usize,
}

/// The admin listener.
#[derive(Debug, Clone)]
pub struct AdminOptions {
    pub addr: SocketAddr,
    pub token: Option<AdminToken>,
}

/// The admin bearer token: never empty, never printed (a credential).
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    /// `None` for an empty token.
    pub fn new(token: String) -> Option<Self> {
        (!token.is_empty()).then_some(AdminToken(token))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// How backends are chosen.
#[derive(Debug, Clone)]
pub struct SelectionOptions {
    pub strategy: Strategy,
    /// The nodes' session cookie name (`--session-cookie`).
    pub session_cookie: String,
    /// Candidates tried per request: the first plus `--retries`.
    pub max_candidates: usize,
    /// `--hash-balance-factor` (only with a hash strategy).
    pub balance_factor: Option<BalanceFactor>,
    /// `--sticky-strict` (only with a sticky strategy).
    pub sticky_strict: bool,
}
