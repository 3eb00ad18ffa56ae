//! The command line: every flag of `sessionlab-lb`, as clap reads it.
//!
//! Each flag is declared once, in the group of the part it configures (the
//! groups are the headings of `--help`), and each can also come from an
//! environment variable `SESSIONLAB_LB_<FLAG>` (`--health-rise` is also
//! `SESSIONLAB_LB_HEALTH_RISE`). The names are a contract: scripts, docs and
//! the lab pass them.
//!
//! Clap checks one value at a time (a duration, an address, a range), so a
//! bad value stops the program before anything binds, with clap's message
//! naming the flag. What spans several flags is checked once, in the
//! conversion into [`LbOptions`](super::LbOptions) (`from_flags.rs`); the
//! runtime never reads these structs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser};
use sessionlab_wire::addr::HostPort;

use crate::backend::BackendSpec;
use crate::select::{BalanceFactor, Strategy};

/// sessionlab-lb: an HTTP/1.1 load balancer with sticky sessions, health
/// checks, failover and an admin API.
///
/// A flag given twice takes its last value (`args_override_self`), so a
/// script can override what a wrapper passed (`sessionlab up --lb-arg
/// --strategy --lb-arg maglev`); repeatable flags (`--backend`) add up.
#[derive(Debug, Clone, Parser)]
#[command(name = "sessionlab-lb", version, args_override_self = true)]
pub struct Flags {
    #[command(flatten)]
    pub listeners: ListenerFlags,
    #[command(flatten)]
    pub admin: AdminFlags,
    #[command(flatten)]
    pub backends: BackendFlags,
    #[command(flatten)]
    pub selection: SelectionFlags,
    #[command(flatten)]
    pub health: HealthFlags,
    #[command(flatten)]
    pub upstream: UpstreamFlags,
    #[command(flatten)]
    pub clients: ClientFlags,
    #[command(flatten)]
    pub tls: TlsFlags,
}

/// Where the LB listens for clients, and with how many threads.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Listeners")]
pub struct ListenerFlags {
    /// Public listen address.
    #[arg(long, env = "SESSIONLAB_LB_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Threads serving the public listener, each with its own
    /// single-threaded runtime (0 = one per CPU).
    #[arg(long, env = "SESSIONLAB_LB_THREADS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=256))]
    pub threads: u64,
}

/// The operator's listener.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Admin API")]
pub struct AdminFlags {
    /// Admin listen address (API, /metrics, /healthz). Keep it private.
    /// (`sessionlab up` puts it on 8078, next to its dashboard on 8079.)
    /// It answers only to a local Host (localhost, 127.0.0.1, [::1] or this
    /// address) and refuses requests from other web sites (Origin,
    /// Sec-Fetch-Site).
    #[arg(
        long,
        env = "SESSIONLAB_LB_ADMIN_LISTEN",
        default_value = "127.0.0.1:8079"
    )]
    pub admin_listen: SocketAddr,

    /// Require `Authorization: Bearer TOKEN` on /admin/* calls (compared in
    /// constant time). Needed when --admin-listen is not loopback.
    #[arg(long, env = "SESSIONLAB_LB_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

/// The backends at start-up.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Backends")]
pub struct BackendFlags {
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

    /// Find backends by DNS: every address NAME resolves to is a backend
    /// (a compose service's replicas, a Kubernetes Service's pods), named
    /// by the id it reports in X-Served-By and added down until its health
    /// checks pass. Looked up again every --discover-interval: new
    /// addresses are added, ones gone from the answer removed; a failed
    /// lookup changes nothing and is retried.
    #[arg(long, env = "SESSIONLAB_LB_DISCOVER", value_name = "NAME:PORT")]
    pub discover: Option<HostPort>,

    /// With --discover: how often the name is looked up again [default: 2s].
    #[arg(long, env = "SESSIONLAB_LB_DISCOVER_INTERVAL", value_name = "DURATION", value_parser = parse_duration)]
    pub discover_interval: Option<Duration>,

    /// With --discover: the discovered nodes' cluster listener port, shown
    /// as each backend's `admin` in the admin API (where the dashboard
    /// reads the nodes), e.g. 9081.
    #[arg(long, env = "SESSIONLAB_LB_DISCOVER_ADMIN_PORT", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub discover_admin_port: Option<u16>,
}

/// How a backend is chosen.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Selection")]
pub struct SelectionFlags {
    /// How to choose a backend.
    #[arg(long, env = "SESSIONLAB_LB_STRATEGY", default_value = "round-robin", value_parser = strategy_parser())]
    pub strategy: Strategy,

    /// The nodes' session cookie, read by `sticky-route` and
    /// `consistent-hash` (the nodes' `--cookie-name`).
    #[arg(long, env = "SESSIONLAB_LB_SESSION_COOKIE", default_value = sessionlab_wire::SESSION_COOKIE, value_parser = parse_cookie_name)]
    pub session_cookie: String,

    /// Extra candidates tried after the first fails.
    #[arg(long, env = "SESSIONLAB_LB_RETRIES", default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=8))]
    pub retries: u8,

    /// Bounded loads for `consistent-hash` and `maglev`: no backend takes a
    /// request above this factor times the average in-flight load (1.0 to
    /// 100; e.g. 1.25, as HAProxy's hash-balance-factor 125).
    #[arg(long, env = "SESSIONLAB_LB_HASH_BALANCE_FACTOR", value_name = "FACTOR")]
    pub hash_balance_factor: Option<BalanceFactor>,

    /// With a sticky strategy: a client whose backend is down or was
    /// removed gets 503 `sticky_target_gone` instead of another backend,
    /// and a bound client is never failed over (Envoy's strict mode).
    #[arg(long, env = "SESSIONLAB_LB_STICKY_STRICT")]
    pub sticky_strict: bool,
}

/// Active and passive health checks.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Health checks")]
pub struct HealthFlags {
    /// Path of the backends' health endpoint.
    #[arg(long, env = "SESSIONLAB_LB_HEALTH_PATH", default_value = "/healthz", value_parser = parse_path)]
    pub health_path: String,

    /// Time between active health checks (e.g. 1s, 250ms).
    #[arg(long, env = "SESSIONLAB_LB_HEALTH_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub health_interval: Duration,

    /// How long one health check may take.
    #[arg(long, env = "SESSIONLAB_LB_HEALTH_TIMEOUT", default_value = "500ms", value_parser = parse_duration)]
    pub health_timeout: Duration,

    /// Consecutive good checks that bring a down backend up (a backend
    /// added through the admin API starts down).
    #[arg(long, env = "SESSIONLAB_LB_HEALTH_RISE", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub health_rise: u32,

    /// Consecutive failures (checks, connect errors, timeouts) that take a backend down.
    #[arg(long, env = "SESSIONLAB_LB_HEALTH_FALL", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub health_fall: u32,
}

/// The LB's side of the connections to backends.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Upstream")]
pub struct UpstreamFlags {
    /// TCP connect timeout to a backend.
    #[arg(long, env = "SESSIONLAB_LB_CONNECT_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Time a backend has to send response headers.
    #[arg(long, env = "SESSIONLAB_LB_READ_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub read_timeout: Duration,

    /// Idle keep-alive connections kept per backend and worker thread.
    #[arg(long, env = "SESSIONLAB_LB_POOL_IDLE", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(0..=65536))]
    pub pool_idle: u64,

    /// Close pooled connections unused for this long (keep it below the
    /// backends' own keep-alive timeout).
    #[arg(long, env = "SESSIONLAB_LB_POOL_IDLE_TIMEOUT", default_value = "4s", value_parser = parse_duration)]
    pub pool_idle_timeout: Duration,
}

/// What one client may hold and how slowly it may send: the bounds that
/// keep a slow or greedy client from tying up the LB.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Client limits")]
pub struct ClientFlags {
    /// Open client connections at most (more wait in the kernel's backlog).
    #[arg(long, env = "SESSIONLAB_LB_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,

    /// Open connections per client IP at most; a connection over the cap
    /// is closed at once and counted in
    /// `sessionlab_lb_connections_refused_total`.
    #[arg(long, env = "SESSIONLAB_LB_MAX_CONNECTIONS_PER_IP", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections_per_ip: u64,

    /// Time a client has to send a whole request head (slowloris).
    #[arg(long, env = "SESSIONLAB_LB_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// Time a client has to send a request body, on top of what
    /// --body-min-rate allows for its size; also the longest pause allowed
    /// between two parts of a body.
    #[arg(long, env = "SESSIONLAB_LB_BODY_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub body_timeout: Duration,

    /// Slowest request body accepted, in bytes per second, after
    /// --body-timeout (a body of N bytes may take body-timeout + N / rate).
    #[arg(long, env = "SESSIONLAB_LB_BODY_MIN_RATE", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1024 * 1024 * 1024))]
    pub body_min_rate: u64,

    /// Close a client's keep-alive connection after this long without a
    /// request.
    #[arg(long, env = "SESSIONLAB_LB_KEEPALIVE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub keepalive_timeout: Duration,

    /// Largest request body accepted, in bytes (413 beyond).
    #[arg(long, env = "SESSIONLAB_LB_BODY_LIMIT", default_value_t = 1024 * 1024, value_parser = clap::value_parser!(u64).range(0..=1024 * 1024 * 1024))]
    pub body_limit: u64,
}

/// HTTPS on a second public listener, and whose forwarded headers count.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "TLS and forwarded headers")]
pub struct TlsFlags {
    /// HTTPS listen address (TLS 1.2 and 1.3), next to the plain --listen.
    /// Needs --tls-cert and --tls-key.
    #[arg(long, env = "SESSIONLAB_LB_TLS_LISTEN", requires_all = ["tls_cert", "tls_key"])]
    pub tls_listen: Option<SocketAddr>,

    /// The certificate chain, PEM (the leaf first, then intermediates).
    #[arg(
        long,
        env = "SESSIONLAB_LB_TLS_CERT",
        value_name = "FILE",
        requires = "tls_listen"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The leaf's private key, PEM (PKCS#8, PKCS#1 or SEC1). It must match
    /// the certificate.
    #[arg(
        long,
        env = "SESSIONLAB_LB_TLS_KEY",
        value_name = "FILE",
        requires = "tls_listen"
    )]
    pub tls_key: Option<PathBuf>,

    /// Time a client has to finish the TLS handshake.
    #[arg(long, env = "SESSIONLAB_LB_TLS_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub tls_handshake_timeout: Duration,

    /// `Strict-Transport-Security: max-age=...` on every HTTPS response
    /// (0 = no header). Browsers then use HTTPS for this host for that
    /// long; keep it short on a shared host name such as localhost.
    #[arg(long, env = "SESSIONLAB_LB_HSTS_MAX_AGE", default_value = "365days", value_parser = humantime::parse_duration)]
    pub hsts_max_age: Duration,

    /// Answer every request on the plain listener with 308 to the same
    /// path on the HTTPS listener.
    #[arg(long, env = "SESSIONLAB_LB_REDIRECT_HTTP", requires = "tls_listen")]
    pub redirect_http: bool,

    /// A proxy in front of this LB whose `X-Forwarded-For` and
    /// `X-Forwarded-Proto` are kept (an IP or a CIDR block; repeat the
    /// flag). From any other client they are replaced.
    #[arg(
        long = "trusted-proxy",
        env = "SESSIONLAB_LB_TRUSTED_PROXIES",
        value_name = "ADDR|CIDR",
        value_delimiter = ',',
        value_parser = parse_net
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| "expected an IP address or a CIDR block, e.g. 127.0.0.1 or 10.0.0.0/8".into())
}

/// `--strategy`: the names `--help` lists, parsed into the shared enum.
fn strategy_parser() -> impl clap::builder::TypedValueParser<Value = Strategy> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(Strategy::names()).map(|name| {
        name.parse::<Strategy>()
            .expect("every possible value is a strategy name")
    })
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. 1s, 500ms)"))?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

/// `NAME:PORT` (or `IP:PORT`, `[IPv6]:PORT`), not resolved here.
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
