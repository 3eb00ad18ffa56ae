//! The node's configuration: every flag, in one place.
//!
//! Flags are declared once with clap's derive API and each can also come from
//! an environment variable named `SESSIONLAB_<FLAG>` (so `--idle-timeout` is
//! also `SESSIONLAB_IDLE_TIMEOUT`), which is what container setups and the
//! `sessionlab` lab runner use. Values are validated while parsing, so a bad
//! value stops the program before anything binds, with clap's message naming
//! the flag and a non-zero exit status.
//!
//! A few rules span several flags (replication needs a cluster secret; a
//! peer cannot be the node itself). Clap checks one value at a time, so
//! those are in [`Config::validate`], which `main` runs right after parsing
//! and reports in clap's format, naming the flag.
//!
//! The store flags (`--store redis`, `--redis-*`) are read in
//! [`crate::store::wiring`]; the token flags (`--auth jwt`, `--jwt-*`, `--*-ttl`) in
//! [`crate::auth::tokens`]. Flags of one feature given without the feature
//! (`--jwt-secret` without `--auth jwt`) are refused rather than ignored, so
//! a typo in a mode never silently runs another mode.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use sessionlab_replication::auth::MIN_SECRET_LEN;
use sessionlab_replication::{AckMode, PeerAddr, ReplicationMode, parse_peer};

/// `sessionlab-node`: one web server of a sessionlab cluster.
#[derive(Parser, Debug, Clone)]
#[command(name = "sessionlab-node", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Read a password from standard input and print its argon2 hash, the
    /// form a `--users` file holds (`name:hash`).
    HashPassword,
}

/// How the session id travels between browser and server.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracking {
    /// In a cookie (the default; what nearly every site does).
    Cookie,
    /// In the URL, as a `;sid=` path parameter (URL rewriting).
    Url,
}

impl Tracking {
    pub fn as_str(self) -> &'static str {
        match self {
            Tracking::Cookie => "cookie",
            Tracking::Url => "url",
        }
    }
}

/// Where sessions live (`--store`).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// This node's memory (replicated with --replication all-to-all).
    Memory,
    /// One Redis server shared by every node.
    Redis,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Redis => "redis",
        }
    }
}

/// A switch written `on` or `off`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnOff {
    On,
    Off,
}

impl OnOff {
    pub fn is_on(self) -> bool {
        self == OnOff::On
    }
}

/// How users authenticate (`--auth`).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// A server-side session; the client carries its id.
    Session,
    /// Signed JWT access and refresh tokens in `Authorization: Bearer`.
    Jwt,
}

impl Auth {
    pub fn as_str(self) -> &'static str {
        match self {
            Auth::Session => "session",
            Auth::Jwt => "jwt",
        }
    }
}

/// What a session is bound to (`--bind-session`).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindSession {
    /// Nothing: whoever presents the id is the user.
    None,
    /// The User-Agent header it was created with.
    UserAgent,
}

/// The demo page's `Referrer-Policy` (`--referrer-policy`).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferrerPolicy {
    /// Send no `Referer` at all from the page.
    NoReferrer,
    /// Send the whole URL, `;sid=` included, to every site (the leak).
    UnsafeUrl,
    /// Send no header; the browser's default policy applies.
    Unset,
}

impl ReferrerPolicy {
    /// The header value, or `None` for [`ReferrerPolicy::Unset`].
    pub fn header_value(self) -> Option<&'static str> {
        match self {
            ReferrerPolicy::NoReferrer => Some("no-referrer"),
            ReferrerPolicy::UnsafeUrl => Some("unsafe-url"),
            ReferrerPolicy::Unset => None,
        }
    }
}

/// Everything a node needs to start. `Config::default()` is what the binary
/// runs with when given no flags (tests start from it and change fields).
#[derive(Args, Debug, Clone)]
pub struct Config {
    /// This node's id: shown in `X-Served-By`, on the demo page, in versions
    /// and (with --route-suffix) appended to the session id.
    #[arg(long, env = "SESSIONLAB_ID", default_value = "node-1", value_parser = parse_node_id)]
    pub id: String,

    /// Address of the app listener (the port the load balancer forwards to).
    #[arg(long, env = "SESSIONLAB_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,

    /// Address of the internal listener: /healthz, /metrics, /admin/v1/*,
    /// and (with replication) the peer protocol.
    #[arg(
        long,
        env = "SESSIONLAB_CLUSTER_LISTEN",
        default_value = "127.0.0.1:9081"
    )]
    pub cluster_listen: SocketAddr,

    /// How the session id travels: in a cookie or in the URL.
    #[arg(long, env = "SESSIONLAB_TRACKING", value_enum, default_value_t = Tracking::Cookie)]
    pub tracking: Tracking,

    /// Write the session id as `<id>.<node-id>` (Tomcat jvmRoute style) so
    /// the load balancer's sticky-route strategy can read the owner.
    #[arg(long, env = "SESSIONLAB_ROUTE_SUFFIX")]
    pub route_suffix: bool,

    /// Always mark the session cookie `Secure` (it is also set when the
    /// request arrived over HTTPS, per `X-Forwarded-Proto: https`).
    #[arg(long, env = "SESSIONLAB_SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// A session unused this long expires (e.g. 30m, 90s).
    #[arg(long, env = "SESSIONLAB_IDLE_TIMEOUT", default_value = "30m", value_parser = parse_timeout)]
    pub idle_timeout: Duration,

    /// A session expires this long after it was created, however busy.
    #[arg(long, env = "SESSIONLAB_ABSOLUTE_TIMEOUT", default_value = "8h", value_parser = parse_timeout)]
    pub absolute_timeout: Duration,

    /// A users file (`name:argon2-hash` lines) replacing the demo users.
    #[arg(long, env = "SESSIONLAB_USERS")]
    pub users: Option<PathBuf>,

    /// Name of the session cookie.
    #[arg(long, env = "SESSIONLAB_COOKIE_NAME", default_value = "SLSESSION", value_parser = parse_cookie_name)]
    pub cookie_name: String,

    /// Most sessions this node holds; new sessions past it get 503.
    #[arg(long, env = "SESSIONLAB_MAX_SESSIONS", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_sessions: u64,

    /// Most bytes of data one session may hold; writes past it get 413.
    #[arg(long, env = "SESSIONLAB_MAX_SESSION_BYTES", default_value_t = 16 * 1024, value_parser = clap::value_parser!(u64).range(64..))]
    pub max_session_bytes: u64,

    /// Most bytes of a request body; larger bodies get 413.
    #[arg(long, env = "SESSIONLAB_MAX_BODY_BYTES", default_value_t = 64 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_body_bytes: u64,

    /// Worker threads of the app listener (default: the number of cores).
    #[arg(long, env = "SESSIONLAB_WORKERS", value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,

    /// Keep sessions in this node's memory only (`off`), or copy every
    /// session to every peer (`all-to-all`, needs --cluster-secret).
    #[arg(
        long,
        env = "SESSIONLAB_REPLICATION",
        value_name = "MODE",
        default_value = "off",
        value_parser = replication_mode_parser()
    )]
    pub replication: ReplicationMode,

    /// A peer's cluster listener, `ID=HOST:PORT` (repeat for each peer):
    /// `node-2=127.0.0.1:9082`, or a host name resolved when connecting,
    /// `node-2=node-2:9081`. The env var takes a comma-separated list.
    #[arg(
        long = "peer",
        env = "SESSIONLAB_PEER",
        value_name = "ID=HOST:PORT",
        value_delimiter = ',',
        value_parser = parse_peer_flag
    )]
    pub peers: Vec<(String, PeerAddr)>,

    /// The secret that signs all cluster traffic (HMAC-SHA256): the same on
    /// every node, at least 32 bytes. Required with replication.
    #[arg(
        long,
        env = "SESSIONLAB_CLUSTER_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub cluster_secret: Option<ClusterSecret>,

    /// With replication, when a write is answered (its X-Replication-Ack
    /// header says what happened).
    #[arg(
        long,
        env = "SESSIONLAB_REPLICATION_ACK",
        value_name = "ACK",
        default_value = "none",
        value_parser = ack_mode_parser()
    )]
    pub replication_ack: AckMode,

    /// With --replication-ack all|quorum: how long a write waits for acks
    /// before it is answered anyway, marked `timeout` (it is not undone).
    #[arg(
        long,
        env = "SESSIONLAB_REPLICATION_ACK_TIMEOUT",
        value_name = "DURATION",
        default_value = "1s",
        value_parser = parse_ack_timeout
    )]
    pub replication_ack_timeout: Duration,

    /// Where sessions live: this node's memory (optionally replicated), or
    /// one Redis server shared by every node (`redis`).
    #[arg(long, env = "SESSIONLAB_STORE", value_enum, default_value_t = StoreKind::Memory)]
    pub store: StoreKind,

    /// With --store redis: the Redis server, `redis://HOST:PORT[/DB]`.
    #[arg(
        long,
        env = "SESSIONLAB_REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub redis_url: String,

    /// With --store redis: compare-and-set writes on the session version
    /// (`on`: a write based on a stale read is retried, then refused with
    /// 409) or blind overwrites (`off`: shows lost updates).
    #[arg(long, env = "SESSIONLAB_REDIS_CAS", value_enum, default_value_t = OnOff::On)]
    pub redis_cas: OnOff,

    /// With --store redis: how long one Redis command may take before the
    /// request gets 503 (e.g. 500ms).
    #[arg(long, env = "SESSIONLAB_REDIS_TIMEOUT", default_value = "500ms", value_parser = parse_redis_timeout)]
    pub redis_timeout: Duration,

    /// How users authenticate: a server-side session behind a cookie (or
    /// URL), or signed JWT access and refresh tokens (`jwt`).
    #[arg(long, env = "SESSIONLAB_AUTH", value_enum, default_value_t = Auth::Session)]
    pub auth: Auth,

    /// With --auth jwt: the HS256 signing secret, the same on every node, at
    /// least 32 bytes.
    #[arg(
        long,
        env = "SESSIONLAB_JWT_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub jwt_secret: Option<ClusterSecret>,

    /// With --auth jwt, instead of --jwt-secret: an Ed25519 private key (PEM)
    /// that signs tokens (EdDSA); needs --jwt-public-key.
    #[arg(long, env = "SESSIONLAB_JWT_PRIVATE_KEY", value_name = "FILE")]
    pub jwt_private_key: Option<PathBuf>,

    /// With --jwt-private-key: the matching public key (PEM) that verifies them.
    #[arg(long, env = "SESSIONLAB_JWT_PUBLIC_KEY", value_name = "FILE")]
    pub jwt_public_key: Option<PathBuf>,

    /// With --auth jwt: lifetime of an access token.
    #[arg(long, env = "SESSIONLAB_ACCESS_TTL", default_value = "5m", value_parser = parse_timeout)]
    pub access_ttl: Duration,

    /// With --auth jwt: lifetime of a refresh token (each refresh issues a
    /// new one; the login ends at --absolute-timeout however often refreshed).
    #[arg(long, env = "SESSIONLAB_REFRESH_TTL", default_value = "1h", value_parser = parse_timeout)]
    pub refresh_ttl: Duration,

    /// Bind a session to a client fingerprint: with `user-agent`, a session
    /// presented with another User-Agent than the one it was created with
    /// is treated as no session (and the event logged and counted).
    #[arg(long, env = "SESSIONLAB_BIND_SESSION", value_enum, default_value_t = BindSession::None)]
    pub bind_session: BindSession,

    /// The `Referrer-Policy` header on the demo page: `no-referrer` keeps a
    /// `;sid=` in the page URL (url tracking) out of the `Referer` sent to
    /// other sites; `unsafe-url` shows the leak; `unset` sends no header
    /// (the browser's default applies).
    #[arg(long, env = "SESSIONLAB_REFERRER_POLICY", value_enum, default_value_t = ReferrerPolicy::NoReferrer)]
    pub referrer_policy: ReferrerPolicy,

    /// Log filter in tracing's EnvFilter syntax, e.g. `info` or
    /// `sessionlab_node=debug` (debug shows one span per request).
    #[arg(long, env = "SESSIONLAB_LOG", default_value = "info,actix_server=warn")]
    pub log: String,
}

impl Default for Config {
    fn default() -> Self {
        // The defaults are the ones clap would fill in for an empty command line.
        Cli::parse_from(["sessionlab-node"]).config
    }
}

impl Config {
    /// App worker threads: the flag, or the number of cores.
    pub fn workers(&self) -> usize {
        match self.workers {
            Some(n) => n as usize,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    pub fn idle_timeout_ms(&self) -> u64 {
        self.idle_timeout.as_millis() as u64
    }

    pub fn absolute_timeout_ms(&self) -> u64 {
        self.absolute_timeout.as_millis() as u64
    }

    /// The rules that span several flags; see the module docs. The message
    /// names the flag to fix.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let bad = |m: String| Err(InvalidConfig(m));
        self.validate_store_and_auth()?;
        if self.replication == ReplicationMode::Off {
            if !self.peers.is_empty() {
                return bad(
                    "--peer needs --replication all-to-all (without it the node replicates to nobody)"
                        .into(),
                );
            }
            return Ok(());
        }
        match &self.cluster_secret {
            None => {
                return bad(format!(
                    "--cluster-secret is required with --replication {} (at least {MIN_SECRET_LEN} bytes, the same on every node)",
                    self.replication
                ));
            }
            Some(s) if s.len() < MIN_SECRET_LEN => {
                return bad(format!(
                    "--cluster-secret must be at least {MIN_SECRET_LEN} bytes (got {})",
                    s.len()
                ));
            }
            Some(_) => {}
        }
        let mut seen = BTreeSet::new();
        for (id, _) in &self.peers {
            if *id == self.id {
                return bad(format!("--peer {id} is this node's own --id"));
            }
            if !seen.insert(id) {
                return bad(format!("--peer {id} is given twice"));
            }
        }
        Ok(())
    }
}

impl Config {
    /// The rules of --store, --auth and their flags; the message names the flag.
    fn validate_store_and_auth(&self) -> Result<(), InvalidConfig> {
        let bad = |m: &str| Err(InvalidConfig(m.to_owned()));
        if self.store == StoreKind::Redis && self.replication != ReplicationMode::Off {
            return bad(
                "--replication all-to-all cannot be combined with --store redis (every node already shares the one Redis)",
            );
        }
        let keys = (&self.jwt_private_key, &self.jwt_public_key);
        if self.auth == Auth::Session {
            if self.jwt_secret.is_some() {
                return bad("--jwt-secret needs --auth jwt");
            }
            if keys.0.is_some() || keys.1.is_some() {
                return bad("--jwt-private-key and --jwt-public-key need --auth jwt");
            }
            return Ok(());
        }
        if self.tracking == Tracking::Url {
            return bad(
                "--tracking url needs --auth session (with --auth jwt the token travels in Authorization: Bearer)",
            );
        }
        if self.bind_session != BindSession::None {
            return bad("--bind-session needs --auth session");
        }
        match (&self.jwt_secret, keys) {
            (Some(_), (Some(_), _) | (_, Some(_))) => bad(
                "--jwt-secret and --jwt-private-key/--jwt-public-key exclude each other: choose HS256 or EdDSA",
            ),
            (Some(s), _) if s.len() < sessionlab_session::jwt::MIN_SECRET_BYTES => {
                Err(InvalidConfig(format!(
                    "--jwt-secret must be at least {} bytes (got {})",
                    sessionlab_session::jwt::MIN_SECRET_BYTES,
                    s.len()
                )))
            }
            (Some(_), _) => Ok(()),
            (None, (Some(_), Some(_))) => Ok(()),
            (None, (Some(_), None)) => bad("--jwt-public-key is required with --jwt-private-key"),
            (None, (None, Some(_))) => bad("--jwt-private-key is required with --jwt-public-key"),
            (None, (None, None)) => bad(
                "--auth jwt needs --jwt-secret (at least 32 bytes, the same on every node) or --jwt-private-key and --jwt-public-key",
            ),
        }
    }
}

/// A combination of flags that cannot work; the message names the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidConfig(pub String);

/// The cluster secret. Kept out of `Debug` output and logs.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(String);

impl ClusterSecret {
    pub fn new(s: impl Into<String>) -> Self {
        ClusterSecret(s.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for ClusterSecret {
    fn from(s: String) -> Self {
        ClusterSecret(s)
    }
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterSecret(<{} bytes>)", self.0.len())
    }
}

fn replication_mode_parser() -> impl TypedValueParser<Value = ReplicationMode> {
    PossibleValuesParser::new([
        PossibleValue::new("off").help("sessions stay in this node's memory"),
        PossibleValue::new("all-to-all").help("every session is copied to every --peer"),
    ])
    .try_map(|s| s.parse::<ReplicationMode>())
}

fn ack_mode_parser() -> impl TypedValueParser<Value = AckMode> {
    PossibleValuesParser::new([
        PossibleValue::new("none").help("answer at once; peers get the write soon (async)"),
        PossibleValue::new("all").help("answer once every live peer applied the write"),
        PossibleValue::new("quorum").help("answer once a majority of the cluster holds it"),
    ])
    .try_map(|s| s.parse::<AckMode>())
}

/// One `--peer ID=HOST:PORT`.
fn parse_peer_flag(s: &str) -> Result<(String, PeerAddr), String> {
    parse_peer(s).map_err(|e| match e {
        sessionlab_replication::ConfigError::Invalid(m) => m,
    })
}

/// A humantime duration between 1 ms and 60 s.
fn parse_ack_timeout(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(1) || d > Duration::from_secs(60) {
        return Err("must be between 1ms and 60s".into());
    }
    Ok(d)
}

/// Node ids appear in headers, cookie values and URLs: keep them to a small,
/// safe alphabet.
fn parse_node_id(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err("1 to 64 characters of A-Z, a-z, 0-9, '-' and '_'".into())
    }
}

/// Cookie names are RFC 6265 tokens; allow the common safe subset.
fn parse_cookie_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err("1 to 64 characters of A-Z, a-z, 0-9, '-' and '_'".into())
    }
}

/// A humantime duration between 1 ms and 60 s.
fn parse_redis_timeout(s: &str) -> Result<Duration, String> {
    parse_ack_timeout(s)
}

/// A humantime duration of at least one second.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_secs(1) {
        return Err("must be at least 1s".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_command_line_contract() {
        let c = Config::default();
        assert_eq!(c.id, "node-1");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8081");
        assert_eq!(c.cluster_listen.to_string(), "127.0.0.1:9081");
        assert_eq!(c.tracking, Tracking::Cookie);
        assert_eq!(c.cookie_name, "SLSESSION");
        assert_eq!(c.idle_timeout, Duration::from_secs(30 * 60));
        assert_eq!(c.absolute_timeout, Duration::from_secs(8 * 3600));
        assert!(!c.route_suffix && !c.secure_cookies);
    }

    #[test]
    fn parses_flags() {
        let c = Cli::try_parse_from([
            "sessionlab-node",
            "--id",
            "node-2",
            "--tracking",
            "url",
            "--route-suffix",
            "--idle-timeout",
            "90s",
        ])
        .unwrap()
        .config;
        assert_eq!(c.id, "node-2");
        assert_eq!(c.tracking, Tracking::Url);
        assert!(c.route_suffix);
        assert_eq!(c.idle_timeout, Duration::from_secs(90));
    }

    #[test]
    fn bad_values_name_the_flag() {
        for args in [
            ["--idle-timeout", "soon"],
            ["--id", "no spaces"],
            ["--tracking", "ssl"],
            ["--max-sessions", "0"],
        ] {
            let err = Cli::try_parse_from(["sessionlab-node", args[0], args[1]]).unwrap_err();
            assert!(err.to_string().contains(args[0]), "{err}");
        }
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Cli::try_parse_from(std::iter::once("sessionlab-node").chain(args.iter().copied()))
            .map(|c| c.config)
    }

    #[test]
    fn replication_flags_parse() {
        let c = parse(&[
            "--id",
            "node-1",
            "--replication",
            "all-to-all",
            "--peer",
            "node-2=127.0.0.1:9082",
            "--peer",
            "node-3=node-3:9081",
            "--cluster-secret",
            SECRET,
            "--replication-ack",
            "all",
            "--replication-ack-timeout",
            "500ms",
        ])
        .unwrap();
        assert_eq!(c.replication, ReplicationMode::AllToAll);
        assert_eq!(c.replication_ack, AckMode::All);
        assert_eq!(c.replication_ack_timeout, Duration::from_millis(500));
        let peers: Vec<String> = c.peers.iter().map(|(id, a)| format!("{id}={a}")).collect();
        assert_eq!(peers, ["node-2=127.0.0.1:9082", "node-3=node-3:9081"]);
        c.validate().unwrap();
        assert!(
            !format!("{c:?}").contains(SECRET),
            "the secret leaks into Debug"
        );
    }

    #[test]
    fn replication_is_off_by_default() {
        let c = Config::default();
        assert_eq!(c.replication, ReplicationMode::Off);
        assert_eq!(c.replication_ack, AckMode::None);
        assert_eq!(c.replication_ack_timeout, Duration::from_secs(1));
        assert!(c.peers.is_empty() && c.cluster_secret.is_none());
        c.validate().unwrap();
    }

    #[test]
    fn bad_replication_values_name_the_flag() {
        for args in [
            ["--replication", "all"],
            ["--peer", "node-2"],
            ["--peer", "node-2=node-2"],
            ["--replication-ack", "most"],
            ["--replication-ack-timeout", "0s"],
            ["--replication-ack-timeout", "2m"],
        ] {
            let err = parse(&args).unwrap_err();
            assert!(err.to_string().contains(args[0]), "{err}");
        }
    }

    #[test]
    fn flag_combinations_that_cannot_work_name_the_flag() {
        let cases: [(&[&str], &str); 5] = [
            (
                &["--replication", "all-to-all"],
                "--cluster-secret is required",
            ),
            (
                &["--replication", "all-to-all", "--cluster-secret", "short"],
                "--cluster-secret must be at least 32 bytes (got 5)",
            ),
            (
                &["--peer", "node-2=127.0.0.1:9082"],
                "--peer needs --replication",
            ),
            (
                &[
                    "--replication",
                    "all-to-all",
                    "--cluster-secret",
                    SECRET,
                    "--peer",
                    "node-1=127.0.0.1:9",
                ],
                "--peer node-1 is this node's own --id",
            ),
            (
                &[
                    "--replication",
                    "all-to-all",
                    "--cluster-secret",
                    SECRET,
                    "--peer",
                    "node-2=127.0.0.1:9",
                    "--peer",
                    "node-2=127.0.0.1:10",
                ],
                "--peer node-2 is given twice",
            ),
        ];
        for (args, want) in cases {
            let err = parse(args).unwrap().validate().unwrap_err();
            assert!(err.to_string().contains(want), "{args:?}: {err}");
            assert!(
                !err.to_string().contains("short"),
                "the secret is echoed: {err}"
            );
        }
    }
}
