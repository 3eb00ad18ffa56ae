//! The command line: every flag of `sessionlab-node`, as clap reads it.
//!
//! Each flag is declared once, in the group of the part it configures (the
//! groups are the headings of `--help`), and each can also come from an
//! environment variable named `SESSIONLAB_<FLAG>` (`--idle-timeout` is also
//! `SESSIONLAB_IDLE_TIMEOUT`), which is what container setups and the
//! `sessionlab` lab runner use. The names are a contract: scripts, docs and
//! the lab pass them. That rule is code, not a convention kept by hand:
//! [`Flags`] gives every flag its variable in one place (`with_env`), so a
//! new flag gets one without anyone writing it. A bounded duration is a
//! type ([`Lifetime`], [`Wait`]) that parses and checks itself, so such a
//! flag is one attribute line.
//!
//! Clap checks one value at a time (a duration, an address, a choice from a
//! list), so a bad value stops the program before anything binds, with
//! clap's message naming the flag and exit status 2. What spans several
//! flags is not checked here: [`Flags`] is only ever read by the one
//! conversion into [`NodeOptions`](super::NodeOptions), in
//! [`super::from_flags`].

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Arg, Args, Parser, Subcommand, ValueEnum};
use sessionlab_replication::{
    AckMode, Granularity, PartitionPolicy, PeerAddr, ReplicationMode, parse_peer,
};

use super::options::{BindSession, ReferrerPolicy, Tracking};

/// `sessionlab-node`: one web server of a sessionlab cluster.
#[derive(Parser, Debug, Clone)]
#[command(name = "sessionlab-node", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub flags: Flags,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Read a password from standard input and print its argon2 hash, the
    /// form a `--users` file holds (`name:hash`).
    HashPassword,
}

/// Every flag, in the groups `--help` shows.
#[derive(Args, Debug, Clone)]
#[command(mut_args = with_env)]
pub struct Flags {
    /// This node's id: shown in `X-Served-By`, on the demo page, in versions
    /// and (with --route-suffix) appended to the session id.
    #[arg(long, default_value = "node-1", value_parser = parse_node_id)]
    pub id: String,

    /// Take the id from this machine's host name instead (a container's or
    /// a pod's), for replicas started from one definition (`docker-compose
    /// --scale node=5`). With a wildcard --cluster-listen and no
    /// --cluster-advertise, the members are then told this host's own
    /// address: its name looked up here (a container's /etc/hosts).
    #[arg(long, conflicts_with = "id")]
    pub id_from_hostname: bool,

    #[command(flatten)]
    pub listeners: ListenerFlags,
    #[command(flatten)]
    pub store: StoreFlags,
    #[command(flatten)]
    pub replication: ReplicationFlags,
    #[command(flatten)]
    pub auth: AuthFlags,
    #[command(flatten)]
    pub cookies: CookieFlags,
    #[command(flatten)]
    pub timeouts: TimeoutFlags,
    #[command(flatten)]
    pub limits: LimitFlags,
    #[command(flatten)]
    pub clients: ClientFlags,
    #[command(flatten)]
    pub logging: LogFlags,
}

/// Where the node listens.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Listeners")]
pub struct ListenerFlags {
    /// Address of the app listener (the port the load balancer forwards to).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,

    /// Address of the internal listener: /healthz, /metrics, /admin/v1/*,
    /// and (with replication) the peer protocol. Keep it off the network the
    /// users reach: the admin views list every session.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9081")]
    pub cluster_listen: SocketAddr,

    /// Worker threads of the app listener (default: the number of cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,
}

/// Where sessions live.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Store")]
pub struct StoreFlags {
    /// Where sessions live: this node's memory (optionally replicated, see
    /// --replication), or one Redis server shared by every node (`redis`).
    #[arg(long, value_enum, default_value_t = StoreKind::Memory)]
    pub store: StoreKind,

    /// With --store redis: the Redis server, `redis://HOST:PORT[/DB]`.
    #[arg(
        long,
        value_name = "URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub redis_url: String,

    /// With --store redis: compare-and-set writes on the session version
    /// (`on`: a write based on a stale read is retried, then refused with
    /// 409) or blind overwrites (`off`: shows lost updates).
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub redis_cas: OnOff,

    /// With --store redis: how long one Redis command may take before the
    /// request gets 503 (1ms to 60s, e.g. 500ms).
    #[arg(long, value_name = "DURATION", default_value = "500ms")]
    pub redis_timeout: Wait,

    /// With --store redis: find the primary through this Redis Sentinel,
    /// `HOST:PORT` (repeat for each Sentinel; the env var takes a
    /// comma-separated list). Replaces --redis-url: after a failover the
    /// node asks the Sentinels for the new primary.
    #[arg(
        long = "redis-sentinel",
        value_name = "HOST:PORT",
        value_delimiter = ',',
        value_parser = parse_host_port
    )]
    pub redis_sentinels: Vec<String>,

    /// With --redis-sentinel: the name the Sentinels monitor the primary
    /// under (their `sentinel monitor NAME ...`).
    #[arg(long, value_name = "NAME", default_value = "sessionlab", value_parser = parse_node_id)]
    pub redis_master_name: String,

    /// With --store redis: after every session write and logout, `WAIT N
    /// TIMEOUT` for N replicas to confirm it (`1` or `1,100ms`; the timeout
    /// defaults to 100ms). A write fewer replicas confirmed is still
    /// answered, with `X-Replication-Ack: timeout`, and counted in
    /// `sessionlab_redis_unreplicated_writes_total`. Narrows, does not
    /// close, the window in which a failover loses acknowledged writes.
    #[arg(long, value_name = "N[,TIMEOUT]")]
    pub redis_wait: Option<RedisWait>,
}

/// `--redis-wait N[,TIMEOUT]`: replicas to wait for (1 to 16) and for how
/// long (1ms to 60s, default 100ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisWait {
    pub replicas: u32,
    pub timeout: Duration,
}

impl FromStr for RedisWait {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (n, t) = match s.split_once(',') {
            Some((n, t)) => (n, Some(t)),
            None => (s, None),
        };
        let replicas: u32 = n
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=16).contains(n))
            .ok_or("N (the replicas to wait for) must be a number from 1 to 16")?;
        let timeout = match t {
            Some(t) => t.trim().parse::<Wait>()?.0,
            None => Duration::from_millis(100),
        };
        Ok(RedisWait { replicas, timeout })
    }
}

/// `HOST:PORT` with a port; the host is resolved when connecting.
fn parse_host_port(s: &str) -> Result<String, String> {
    let rule = "must be HOST:PORT, as in 127.0.0.1:26379";
    let (host, port) = s.rsplit_once(':').ok_or(rule)?;
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
    match (host_ok, port.parse::<u16>()) {
        (true, Ok(p)) if p > 0 => Ok(s.to_owned()),
        _ => Err(rule.into()),
    }
}

/// Copying sessions between nodes.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Replication")]
pub struct ReplicationFlags {
    /// Keep sessions in this node's memory only (`off`), copy every
    /// session to every peer (`all-to-all`), or keep each session on
    /// --backups + 1 owners chosen by hashing its id over the members
    /// (`backup`). Replication needs --cluster-secret.
    #[arg(
        long,
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
        value_name = "ID=HOST:PORT",
        value_delimiter = ',',
        value_parser = parse_peer_flag
    )]
    pub peers: Vec<(String, PeerAddr)>,

    /// With --replication backup: the copies kept besides the primary
    /// (default 1: two nodes hold each session).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u16).range(1..=15))]
    pub backups: Option<u16>,

    /// Join a running cluster through this member's cluster listener
    /// (HOST:PORT; repeat or comma-separate for more). The node gets the
    /// member list, is announced to everyone and serves once caught up;
    /// members are then kept by a failure detector (SWIM).
    #[arg(long = "join", value_name = "HOST:PORT", value_delimiter = ',', value_parser = parse_addr_flag)]
    pub join: Vec<PeerAddr>,

    /// Find the members by DNS: every address NAME resolves to is a
    /// member's cluster listener (a compose service with replicas, a
    /// Kubernetes headless Service). Looked up again every
    /// --discover-interval; a name that does not resolve is retried.
    #[arg(long, value_name = "NAME:PORT", value_parser = parse_addr_flag)]
    pub discover: Option<PeerAddr>,

    /// With --discover: how often the name is looked up again.
    #[arg(long, value_name = "DURATION")]
    pub discover_interval: Option<Interval>,

    /// How the other members reach this node's cluster listener
    /// (HOST:PORT), with --join, --discover or --replication backup.
    /// Default: --cluster-listen, unless it is a wildcard address.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_addr_flag)]
    pub cluster_advertise: Option<PeerAddr>,

    /// The secret that signs all cluster traffic (HMAC-SHA256): the same on
    /// every node, at least 32 bytes. Required with replication.
    #[arg(long, value_name = "SECRET", hide_env_values = true)]
    pub cluster_secret: Option<Secret>,

    /// With replication, when a write is answered (its X-Replication-Ack
    /// header says what happened).
    #[arg(
        long,
        value_name = "ACK",
        default_value = "none",
        value_parser = ack_mode_parser()
    )]
    pub replication_ack: AckMode,

    /// With --replication-ack sent|all|quorum: how long a write waits (for
    /// its batches to leave, or for acks) before it is answered anyway,
    /// marked `timeout` (it is not undone); 1ms to 60s.
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    pub replication_ack_timeout: Wait,

    /// With replication, what a node does when it cannot reach a majority
    /// of the cluster: keep taking writes (`available`; last writer wins at
    /// the heal), or refuse them with 503 (`consistent`; a write is also
    /// answered only once a majority holds it, within the ack timeout).
    /// `consistent` needs a fixed member list (--peer): not with
    /// --replication backup, --join or --discover.
    #[arg(
        long,
        value_name = "POLICY",
        default_value = "available",
        value_parser = partition_policy_parser()
    )]
    pub partition_policy: PartitionPolicy,

    /// With replication, what one replicated write is: the whole session
    /// (`session`: of two concurrent writes the later one replaces the
    /// whole session) or the keys it changed (`attribute`: concurrent
    /// changes to different keys are merged, each key last writer wins).
    /// Every node of a cluster must use the same.
    #[arg(
        long,
        value_name = "GRANULARITY",
        value_parser = granularity_parser()
    )]
    pub replication_granularity: Option<Granularity>,
}

/// Who the user is.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Authentication")]
pub struct AuthFlags {
    /// How users authenticate: a server-side session behind a cookie (or
    /// URL), or signed JWT access and refresh tokens (`jwt`).
    #[arg(long, value_enum, default_value_t = Auth::Session)]
    pub auth: Auth,

    /// A users file (`name:argon2-hash` lines, made with `sessionlab-node
    /// hash-password`) replacing the demo users.
    #[arg(long, value_name = "FILE")]
    pub users: Option<PathBuf>,

    /// With --auth jwt: the HS256 signing secret, the same on every node, at
    /// least 32 bytes.
    #[arg(long, value_name = "SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,

    /// With --auth jwt, instead of --jwt-secret: an Ed25519 private key (PEM)
    /// that signs tokens (EdDSA); needs --jwt-public-key.
    #[arg(long, value_name = "FILE")]
    pub jwt_private_key: Option<PathBuf>,

    /// With --jwt-private-key: the matching public key (PEM) that verifies them.
    #[arg(long, value_name = "FILE")]
    pub jwt_public_key: Option<PathBuf>,

    /// With --auth jwt: lifetime of an access token (at least 1s).
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub access_ttl: Lifetime,

    /// With --auth jwt: lifetime of a refresh token (each refresh issues a
    /// new one; the login ends at --absolute-timeout however often refreshed).
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub refresh_ttl: Lifetime,

    /// With --auth jwt: how far a token's exp, nbf and iat may be off this
    /// node's clock and still be taken (the other nodes' clocks are never
    /// exactly this one's); 0s to 10m.
    #[arg(long, value_name = "DURATION", default_value = "0s")]
    pub jwt_leeway: Leeway,
}

/// How the session id travels, and what guards it.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Cookies and tracking")]
pub struct CookieFlags {
    /// How the session id travels: in a cookie, or in the URL as `;sid=`
    /// (session mode only).
    #[arg(long, value_enum, default_value_t = Tracking::Cookie)]
    pub tracking: Tracking,

    /// Name of the session cookie. `__Host-SLSESSION` locks it to this
    /// host (Secure, Path=/, no Domain) and needs --secure-cookies.
    #[arg(
        long,
        value_name = "NAME",
        default_value = sessionlab_wire::SESSION_COOKIE,
        value_parser = parse_cookie_name
    )]
    pub cookie_name: String,

    /// Write the session id as `<id>.<node-id>` (Tomcat jvmRoute style) so
    /// the load balancer's sticky-route strategy can read the owner.
    #[arg(long, env = "SESSIONLAB_ROUTE_SUFFIX")]
    pub route_suffix: bool,

    /// Always mark the session cookie `Secure` (it is also set when the
    /// request arrived over HTTPS, per `X-Forwarded-Proto: https`).
    #[arg(long, env = "SESSIONLAB_SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// Bind a session to a client fingerprint (session mode only): with
    /// `user-agent`, a session presented with another User-Agent than the
    /// one it was created with is treated as no session (and the event
    /// logged and counted).
    #[arg(long, value_enum, default_value_t = BindSession::None)]
    pub bind_session: BindSession,

    /// The `Referrer-Policy` header on the demo page: `no-referrer` keeps a
    /// `;sid=` in the page URL (url tracking) out of the `Referer` sent to
    /// other sites; `unsafe-url` shows the leak; `unset` sends no header
    /// (the browser's default applies).
    #[arg(long, value_enum, default_value_t = ReferrerPolicy::NoReferrer)]
    pub referrer_policy: ReferrerPolicy,
}

/// How long a session lives.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Timeouts")]
pub struct TimeoutFlags {
    /// A session unused this long expires (at least 1s, e.g. 30m, 90s).
    #[arg(long, value_name = "DURATION", default_value = "30m")]
    pub idle_timeout: Lifetime,

    /// A session (or a jwt login) expires this long after it was created,
    /// however busy (at least 1s).
    #[arg(long, value_name = "DURATION", default_value = "8h")]
    pub absolute_timeout: Lifetime,

    /// A session with no user (a cart before any login) unused this long
    /// expires; never longer than --idle-timeout. A login gives the session
    /// the full --idle-timeout.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub anonymous_idle_timeout: Lifetime,

    /// Run this node's clock this far ahead (`+2s`) or behind (`-2s`) of
    /// the machine's, to see what clocks that disagree do to expiry and to
    /// tokens (at most a day either way).
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "0s",
        allow_hyphen_values = true
    )]
    pub clock_skew: Skew,
}

/// Bounds that keep one node within its machine.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Limits")]
pub struct LimitFlags {
    /// Most sessions this node's memory holds; new sessions past it get 503
    /// (not used with --store redis).
    #[arg(long, value_name = "N", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_sessions: u64,

    /// Most bytes of data one session may hold (at least 64); writes past it
    /// get 413.
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024, value_parser = clap::value_parser!(u64).range(64..))]
    pub max_session_bytes: u64,

    /// Most bytes of a request body; larger bodies get 413.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_body_bytes: u64,

    /// Most bytes all sessions together may hold in this node's memory
    /// (e.g. 256MiB, 2GiB); a write that needs more gets 503 with
    /// Retry-After, sessions already held keep working. With replication
    /// every node holds every copy, so size it for the cluster's sessions.
    /// Default: an eighth of the machine's memory, at most 1GiB (memory
    /// store only).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub store_budget: Option<u64>,

    /// Of --store-budget, most bytes held by sessions with no user (carts
    /// before a login), so a flood of them cannot crowd out logins.
    /// Default: a quarter of --store-budget.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub anonymous_budget: Option<u64>,

    /// Password checks (argon2) that may wait for a core at once, for the
    /// whole node; a login past it gets 503 with Retry-After. One client may
    /// hold a quarter of the places, and only as many checks run for one
    /// client at a time as the machine has cores, so a flood from one
    /// client cannot hold back another client's login.
    #[arg(long, value_name = "N", default_value_t = 512, value_parser = clap::value_parser!(u32).range(4..))]
    pub login_queue: u32,
}

/// Who the client is, how fast it may go, and which sites may post.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Clients")]
pub struct ClientFlags {
    /// New sessions one client may start: a rate (`100/s`, `600/min`,
    /// `off`); past it, 429 with Retry-After. A client is an IP address
    /// (see --trusted-proxy). Generous, because the lab's load tool runs
    /// all its users from one address; sessions that pass it still end at
    /// --anonymous-budget and --anonymous-idle-timeout.
    #[arg(long, value_name = "RATE", default_value = "100/s", value_parser = parse_rate)]
    pub session_rate: Rate,

    /// How many new sessions one client may start at once before
    /// --session-rate applies.
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub session_burst: u32,

    /// Login attempts (right or wrong) one client may make: a rate (`50/s`,
    /// `10/min`, `off`); past it, 429 with Retry-After.
    #[arg(long, value_name = "RATE", default_value = "50/s", value_parser = parse_rate)]
    pub login_rate: Rate,

    /// How many login attempts one client may make at once before
    /// --login-rate applies (the load tool's users may all log in at once).
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub login_burst: u32,

    /// A proxy (the load balancer) whose `X-Forwarded-For` names the real
    /// client: an address or a CIDR block, repeatable (`127.0.0.1`,
    /// `10.0.0.0/8`). From any other peer the header is ignored and the
    /// peer's own address is the client. The env var takes a
    /// comma-separated list.
    #[arg(long = "trusted-proxy", value_name = "ADDR|CIDR", value_delimiter = ',', value_parser = parse_net)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Refuse state-changing requests (POST, PUT, DELETE; login included)
    /// that a browser marks as coming from another site (`Origin`,
    /// `Sec-Fetch-Site`) with 403. `off` only to demonstrate login CSRF
    /// (`sessionlab attack csrf`).
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub csrf_check: OnOff,
}

/// The rule of the module docs, applied once to every flag: `--some-flag`
/// can also come from `SESSIONLAB_SOME_FLAG`.
fn with_env(arg: Arg) -> Arg {
    match arg.get_long() {
        Some(long) => {
            let env = format!("SESSIONLAB_{}", long.to_uppercase().replace('-', "_"));
            arg.env(env)
        }
        None => arg,
    }
}

/// A rate as given on the command line: one event per `period`, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    Off,
    /// One more event is allowed every `period`.
    Every(Duration),
}

/// `50/s`, `600/min`, `10/m`, `100/h`, or `off`.
fn parse_rate(s: &str) -> Result<Rate, String> {
    if s == "off" {
        return Ok(Rate::Off);
    }
    let rule = "expected N/s, N/min, N/h (N at least 1) or off";
    let (n, unit) = s.split_once('/').ok_or(rule)?;
    let n: u32 = n.trim().parse().map_err(|_| rule)?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        _ => return Err(rule.into()),
    };
    if n == 0 {
        return Err(rule.into());
    }
    Ok(Rate::Every(per / n))
}

/// `256MiB`, `2GiB`, `500MB`, `1048576` (at least 4 KiB).
fn parse_bytes(s: &str) -> Result<u64, String> {
    let b: bytesize::ByteSize = s.trim().parse()?;
    if b.as_u64() < 4096 {
        return Err("must be at least 4KiB".into());
    }
    Ok(b.as_u64())
}

/// `127.0.0.1` or `10.0.0.0/8`.
fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| "expected an IP address or a CIDR block, e.g. 127.0.0.1 or 10.0.0.0/8".into())
}

/// What the node writes to standard error.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Logging")]
pub struct LogFlags {
    /// Log filter in tracing's EnvFilter syntax, e.g. `info` or
    /// `sessionlab_node=debug` (debug shows one span per request).
    #[arg(
        long,
        value_name = "FILTER",
        default_value = "info,actix_server=warn",
        value_parser = parse_log_filter
    )]
    pub log: String,
}

/// Where sessions live (`--store`).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// This node's memory (replicated with --replication all-to-all).
    Memory,
    /// One Redis server shared by every node.
    Redis,
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

/// A secret as given on the command line, not yet checked for length. Kept
/// out of `Debug` output, so a logged configuration never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

/// A flag whose values are words with help of their own (`--help` lists
/// each): the word parsed by the type's `FromStr`, so the names live with
/// the type (the protocol's enums, which know nothing of clap).
fn choices<T>(values: &[(&'static str, &'static str)]) -> impl TypedValueParser<Value = T> + use<T>
where
    T: FromStr + Clone + Send + Sync + 'static,
    T::Err: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    PossibleValuesParser::new(
        values
            .iter()
            .map(|(name, help)| PossibleValue::new(*name).help(*help)),
    )
    .try_map(|s| s.parse::<T>())
}

fn replication_mode_parser() -> impl TypedValueParser<Value = ReplicationMode> {
    choices(&[
        ("off", "sessions stay in this node's memory"),
        ("all-to-all", "every session is copied to every member"),
        (
            "backup",
            "each session is kept by --backups + 1 owners chosen by hashing its id",
        ),
    ])
}

fn granularity_parser() -> impl TypedValueParser<Value = Granularity> {
    choices(&[
        (
            "session",
            "replicate the whole session; the later of two concurrent writes wins",
        ),
        (
            "attribute",
            "stamp each key; concurrent changes to different keys both survive",
        ),
    ])
}

fn partition_policy_parser() -> impl TypedValueParser<Value = PartitionPolicy> {
    choices(&[
        (
            "available",
            "both sides of a partition take writes; the later one wins at the heal",
        ),
        (
            "consistent",
            "refuse a write that cannot reach a majority (503); lose none acknowledged",
        ),
    ])
}

fn ack_mode_parser() -> impl TypedValueParser<Value = AckMode> {
    choices(&[
        ("none", "answer at once; peers get the write soon (async)"),
        (
            "sent",
            "answer once the write is handed to the transport for every live peer, without waiting for acks",
        ),
        ("all", "answer once every live peer applied the write"),
        ("quorum", "answer once a majority of the cluster holds it"),
    ])
}

/// One `HOST:PORT` (`--join`, `--discover`, `--cluster-advertise`).
fn parse_addr_flag(s: &str) -> Result<PeerAddr, String> {
    s.trim()
        .parse::<PeerAddr>()
        .map_err(|e| format!("must look like 127.0.0.1:9082 or node-2:9081: {e}"))
}

/// One `--peer ID=HOST:PORT`.
fn parse_peer_flag(s: &str) -> Result<(String, PeerAddr), String> {
    parse_peer(s).map_err(|e| match e {
        sessionlab_replication::ConfigError::Invalid(m) => m,
    })
}

/// A duration flag whose bounds are part of its type: the field says what
/// it accepts, and clap parses it through [`FromStr`] (so one attribute
/// line declares the flag). It compares with a plain [`Duration`].
macro_rules! bounded_duration {
    ($(#[$doc:meta])* $name:ident, $min:expr, $max:expr, $rule:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name(pub Duration);

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
                if d < $min || d > $max {
                    return Err($rule.into());
                }
                Ok($name(d))
            }
        }

        impl PartialEq<Duration> for $name {
            fn eq(&self, other: &Duration) -> bool {
                self.0 == *other
            }
        }
    };
}

bounded_duration!(
    /// A humantime duration between 1 ms and 60 s (a network wait).
    Wait,
    Duration::from_millis(1),
    Duration::from_secs(60),
    "must be between 1ms and 60s"
);

bounded_duration!(
    /// A humantime duration between 100 ms and 1 h (a polling period).
    Interval,
    Duration::from_millis(100),
    Duration::from_secs(3600),
    "must be between 100ms and 1h"
);

bounded_duration!(
    /// A humantime duration of at least one second (a lifetime).
    Lifetime,
    Duration::from_secs(1),
    Duration::MAX,
    "must be at least 1s"
);

bounded_duration!(
    /// A humantime duration from 0 to 10 minutes (a tolerance).
    Leeway,
    Duration::ZERO,
    Duration::from_secs(600),
    "must be between 0s and 10m"
);

/// A signed humantime duration, `+2s`, `-1500ms` or `2s`, at most a day
/// either way: a clock offset, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skew(pub i64);

impl FromStr for Skew {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (sign, rest) = match s.strip_prefix('-') {
            Some(rest) => (-1, rest),
            None => (1, s.strip_prefix('+').unwrap_or(s)),
        };
        let d = humantime::parse_duration(rest).map_err(|e| e.to_string())?;
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        if ms > sessionlab_session::clock::MAX_SKEW_MS {
            return Err("must be at most a day either way (+24h to -24h)".into());
        }
        Ok(Skew(sign * ms))
    }
}

const TOKEN_RULE: &str = "1 to 64 characters of A-Z, a-z, 0-9, '-' and '_'";

/// Node ids appear in headers, cookie values and URLs: keep them to the
/// same small, safe alphabet as cookie names.
pub(super) fn parse_node_id(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(TOKEN_RULE.into())
    }
}

/// A cookie name every process accepts (the LB and the load tool read it
/// too): [`sessionlab_wire::cookie::is_valid_name`].
fn parse_cookie_name(s: &str) -> Result<String, String> {
    if sessionlab_wire::cookie::is_valid_name(s) {
        Ok(s.to_owned())
    } else {
        Err(TOKEN_RULE.into())
    }
}

/// A filter `tracing_subscriber::EnvFilter` accepts.
fn parse_log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_owned())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Flags, clap::Error> {
        Cli::try_parse_from(std::iter::once("sessionlab-node").chain(args.iter().copied()))
            .map(|c| c.flags)
    }

    /// A command line most tests start from (`from_flags` adds to it).
    pub(in crate::config) const SAMPLE: [&str; 7] = [
        "--id",
        "node-2",
        "--tracking",
        "url",
        "--route-suffix",
        "--idle-timeout",
        "90s",
    ];

    /// Each `[flag, value]` is refused by clap, with a message naming the flag.
    fn refused_naming_the_flag<const N: usize>(cases: [[&str; 2]; N]) {
        for args in cases {
            let err = parse(&args).unwrap_err();
            assert!(err.to_string().contains(args[0]), "{err}");
        }
    }

    #[test]
    fn parses_flags() {
        let f = parse(&SAMPLE).unwrap();
        assert_eq!(f.id, "node-2");
        assert_eq!(f.cookies.tracking, Tracking::Url);
        assert!(f.cookies.route_suffix);
        assert_eq!(f.timeouts.idle_timeout, Duration::from_secs(90));
    }

    #[test]
    fn clock_skew_is_signed_and_bounded_and_the_jwt_leeway_bounded() {
        for (v, ms) in [
            ("+2s", 2_000),
            ("-1500ms", -1_500),
            ("3s", 3_000),
            ("0s", 0),
        ] {
            let f = parse(&["--clock-skew", v]).unwrap();
            assert_eq!(f.timeouts.clock_skew, Skew(ms), "{v}");
        }
        assert_eq!(parse(&[]).unwrap().timeouts.clock_skew, Skew(0));
        let f = parse(&["--jwt-leeway", "30s"]).unwrap();
        assert_eq!(f.auth.jwt_leeway, Duration::from_secs(30));
        refused_naming_the_flag([
            ["--clock-skew", "+25h"],
            ["--clock-skew", "-soon"],
            ["--jwt-leeway", "1h"],
        ]);
    }

    #[test]
    fn bad_values_name_the_flag() {
        refused_naming_the_flag([
            ["--idle-timeout", "soon"],
            ["--id", "no spaces"],
            ["--tracking", "ssl"],
            ["--max-sessions", "0"],
            ["--log", "sessionlab_node=[bad"],
            ["--store-budget", "lots"],
            ["--store-budget", "1KiB"],
            ["--session-rate", "5"],
            ["--login-rate", "0/s"],
            ["--trusted-proxy", "localhost"],
            ["--csrf-check", "maybe"],
        ]);
    }

    #[test]
    fn limit_values_parse() {
        let f = parse(&[
            "--store-budget",
            "256MiB",
            "--session-rate",
            "600/min",
            "--login-rate",
            "off",
            "--trusted-proxy",
            "127.0.0.1",
            "--trusted-proxy",
            "10.0.0.0/8",
        ])
        .unwrap();
        assert_eq!(f.limits.store_budget, Some(256 << 20));
        assert_eq!(
            f.clients.session_rate,
            Rate::Every(Duration::from_millis(100))
        );
        assert_eq!(f.clients.login_rate, Rate::Off);
        assert_eq!(f.clients.trusted_proxies.len(), 2);
        assert!(
            f.clients.trusted_proxies[0]
                .contains(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap())
        );
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
    }

    #[test]
    fn bad_replication_values_name_the_flag() {
        refused_naming_the_flag([
            ["--replication", "all"],
            ["--peer", "node-2"],
            ["--peer", "node-2=node-2"],
            ["--replication-ack", "most"],
            ["--replication-ack-timeout", "0s"],
            ["--replication-ack-timeout", "2m"],
        ]);
    }

    #[test]
    fn help_groups_the_flags_by_part() {
        let help = <Cli as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        let mut at = 0;
        for heading in [
            "Listeners:",
            "Store:",
            "Replication:",
            "Authentication:",
            "Cookies and tracking:",
            "Timeouts:",
            "Limits:",
            "Clients:",
            "Logging:",
        ] {
            let found = help[at..].find(heading).map(|i| at + i);
            at = found.unwrap_or_else(|| panic!("{heading} missing or out of order:\n{help}"));
        }
    }
}
