//! [`NodeOptions`]: the node's configuration as the rest of the node reads
//! it, one typed part per component.
//!
//! Every value here has already been checked, once, by the conversion from
//! the flags ([`super::from_flags`]); nothing downstream validates again.
//! Where flags only make sense together, the types say so:
//!
//! - [`StoreOptions`] is one of memory, replicated memory (which carries its
//!   peers and a [`ClusterSecret`] long enough to sign with), or Redis: a
//!   replicated Redis, or peers without replication, cannot be written.
//! - [`AuthOptions`] is session mode (which alone has a [`Tracking`] mode and
//!   a [`BindSession`]) or jwt mode (which alone has keys and token
//!   lifetimes): a jwt node tracking by URL cannot be written.
//! - [`JwtKeys`] is an HS256 [`JwtSecret`] or an EdDSA key pair, never both
//!   or half of one.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;
use sessionlab_replication::{AckMode, Granularity, PartitionPolicy, PeerAddr, Topology};
pub use sessionlab_session::{RedisTarget, WaitPolicy};

use crate::session::cookie::CookiePolicy;

/// Everything a node needs to start, parsed from the flags.
/// `NodeOptions::default()` is what the binary runs with given no flags.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// `--id`: a short token (checked), safe in headers, cookies and URLs.
    pub id: String,
    pub listen: ListenOptions,
    pub store: StoreOptions,
    pub auth: AuthOptions,
    /// `--users`: where the accepted users come from.
    pub users: UsersSource,
    /// `--cookie-name`, `--secure-cookies`, `--route-suffix`.
    pub cookie: CookiePolicy,
    pub timeouts: Timeouts,
    pub limits: Limits,
    /// `--session-rate`, `--login-rate`, `--trusted-proxy`, `--csrf-check`.
    pub clients: ClientOptions,
    /// `--referrer-policy`: the demo pages' `Referrer-Policy`.
    pub referrer_policy: ReferrerPolicy,
    /// `--log`: a filter `tracing_subscriber::EnvFilter` accepts (checked).
    pub log: String,
}

/// The two listeners and the app's threads.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// `--listen`: the app listener.
    pub app: SocketAddr,
    /// `--cluster-listen`: health, metrics, admin and the peer protocol.
    pub cluster: SocketAddr,
    /// `--workers`, or the number of cores.
    pub workers: usize,
}

/// Where sessions live, with what each store needs.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreOptions {
    /// This node's memory only (`--store memory --replication off`).
    Memory(MemoryOptions),
    /// This node's memory, copied to its peers (`--replication all-to-all`).
    Replicated {
        memory: MemoryOptions,
        replication: ReplicationOptions,
    },
    /// One Redis shared by every node (`--store redis`).
    Redis(RedisOptions),
}

impl StoreOptions {
    /// The store's name as `/admin/v1/status` and the logs show it.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreOptions::Memory(_) => "memory",
            StoreOptions::Replicated { .. } => "replicated",
            StoreOptions::Redis(_) => "redis",
        }
    }
}

/// The memory store's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryOptions {
    /// `--max-sessions`: new sessions past it get 503.
    pub max_sessions: usize,
    /// `--store-budget` (or the machine's default, [`super::machine`]).
    pub budget_bytes: u64,
    /// `--anonymous-budget`: at most `budget_bytes`.
    pub anonymous_budget_bytes: u64,
}

/// Replication: the topology, the static peers and run-time membership.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicationOptions {
    /// `--replication all-to-all`, or `backup` with `--backups`.
    pub topology: Topology,
    /// `--peer`: every other node, none of them this node, each id once.
    pub peers: Vec<(String, PeerAddr)>,
    /// `--join`, `--discover`, `--cluster-advertise`: members learnt at run
    /// time (always on in the backup topology).
    pub membership: Option<MembershipOptions>,
    /// `--cluster-secret`.
    pub secret: ClusterSecret,
    /// `--replication-ack`.
    pub ack: AckMode,
    /// `--replication-ack-timeout`.
    pub ack_timeout: Duration,
    /// `--partition-policy`.
    pub partition_policy: PartitionPolicy,
    /// `--replication-granularity`.
    pub granularity: Granularity,
}

/// Members learnt at run time (SWIM).
#[derive(Debug, Clone, PartialEq)]
pub struct MembershipOptions {
    /// `--cluster-advertise`, or `--cluster-listen`.
    pub advertise: PeerAddr,
    /// `--join` and the `--peer` addresses.
    pub seeds: Vec<PeerAddr>,
    /// `--discover`.
    pub discover: Option<PeerAddr>,
    /// `--discover-interval` (default 2 s).
    pub discover_interval: Duration,
}

/// The shared Redis store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// `--redis-url` (its form is checked when the store is created), or
    /// `--redis-sentinel ... --redis-master-name NAME`.
    pub target: RedisTarget,
    /// `--redis-wait`: `WAIT` after every write.
    pub wait: Option<WaitPolicy>,
    /// `--redis-cas on`: compare-and-set writes.
    pub cas: bool,
    /// `--redis-timeout`: the most one command may take.
    pub timeout: Duration,
}

/// How users authenticate, with what each mode needs.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthOptions {
    /// `--auth session`: a server-side session; the client carries its id.
    Session {
        /// `--tracking`: how the id travels.
        tracking: Tracking,
        /// `--bind-session`: what the session is bound to.
        binding: BindSession,
    },
    /// `--auth jwt`: signed bearer tokens.
    Jwt(JwtOptions),
}

impl AuthOptions {
    /// The default: session mode, cookie tracking, no binding.
    pub const SESSION: AuthOptions = AuthOptions::Session {
        tracking: Tracking::Cookie,
        binding: BindSession::None,
    };

    /// `session` or `jwt`, as `/admin/v1/status` shows it.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthOptions::Session { .. } => "session",
            AuthOptions::Jwt(_) => "jwt",
        }
    }

    /// How the client's credential travels. In jwt mode it is the bearer
    /// token in `Authorization`, never in the URL, so links are written as
    /// in cookie mode (plain).
    pub fn tracking(&self) -> Tracking {
        match self {
            AuthOptions::Session { tracking, .. } => *tracking,
            AuthOptions::Jwt(_) => Tracking::Cookie,
        }
    }

    /// What a session is bound to (jwt mode has no session to bind).
    pub fn binding(&self) -> BindSession {
        match self {
            AuthOptions::Session { binding, .. } => *binding,
            AuthOptions::Jwt(_) => BindSession::None,
        }
    }

    /// The token options, in jwt mode.
    pub fn jwt(&self) -> Option<&JwtOptions> {
        match self {
            AuthOptions::Jwt(j) => Some(j),
            AuthOptions::Session { .. } => None,
        }
    }
}

/// jwt mode's keys and token lifetimes (a login's own lifetime is
/// [`Timeouts::absolute`]).
#[derive(Debug, Clone, PartialEq)]
pub struct JwtOptions {
    pub keys: JwtKeys,
    /// `--access-ttl`.
    pub access_ttl: Duration,
    /// `--refresh-ttl`.
    pub refresh_ttl: Duration,
    /// `--jwt-leeway`.
    pub leeway: Duration,
}

/// What signs and verifies tokens.
#[derive(Debug, Clone, PartialEq)]
pub enum JwtKeys {
    /// `--jwt-secret`: HS256, the same secret on every node.
    Hs256(JwtSecret),
    /// `--jwt-private-key` and `--jwt-public-key`: EdDSA, PEM files read at
    /// start.
    EdDsa {
        private_key: PathBuf,
        public_key: PathBuf,
    },
}

/// Where the users come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsersSource {
    /// alice, bob and carol, password `sessionlab`.
    Demo,
    /// A `name:argon2-hash` file, read at start.
    File(PathBuf),
}

/// How long a session lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// `--idle-timeout`: unused this long, it expires.
    pub idle: Duration,
    /// `--absolute-timeout`: this long after creation, it expires.
    pub absolute: Duration,
    /// `--anonymous-idle-timeout`, at most `idle`: for sessions with no user.
    pub anonymous_idle: Duration,
    /// `--clock-skew`: this node's clock offset in milliseconds (negative:
    /// behind), applied to the whole process at start.
    pub clock_skew_ms: i64,
}

impl Timeouts {
    pub fn anonymous_idle_ms(&self) -> u64 {
        self.anonymous_idle.as_millis() as u64
    }

    pub fn idle_ms(&self) -> u64 {
        self.idle.as_millis() as u64
    }

    pub fn absolute_ms(&self) -> u64 {
        self.absolute.as_millis() as u64
    }
}

/// Sizes the node refuses past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `--max-session-bytes`: most data one session holds (413 past it).
    pub max_session_bytes: usize,
    /// `--max-body-bytes`: most bytes of a request body (413 past it).
    pub max_body_bytes: usize,
}

/// What one client may do, and how a client is told apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// `--session-rate` and `--session-burst` (`None`: off).
    pub new_sessions: Option<RateLimit>,
    /// `--login-rate` and `--login-burst` (`None`: off).
    pub logins: Option<RateLimit>,
    /// `--login-queue`: password checks waiting at once.
    pub login_queue: usize,
    /// `--trusted-proxy`: peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `--csrf-check on`.
    pub csrf_check: bool,
}

/// A per-client rate: `burst` at once, then one more every `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub period: Duration,
    pub burst: u32,
}

/// How the session id travels between browser and server (`--tracking`).
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

/// A secret of at least `MIN` bytes, kept out of `Debug` output and logs.
/// The only way to make one is [`LongSecret::new`], so holding one means
/// the length was checked.
#[derive(Clone, PartialEq, Eq)]
pub struct LongSecret<const MIN: usize>(String);

/// The cluster secret that signs replication traffic.
pub type ClusterSecret = LongSecret<{ sessionlab_replication::auth::MIN_SECRET_LEN }>;

/// The HS256 secret that signs tokens.
pub type JwtSecret = LongSecret<{ sessionlab_session::jwt::MIN_SECRET_BYTES }>;

impl<const MIN: usize> LongSecret<MIN> {
    /// The least length a secret of this kind has.
    pub const MIN_LEN: usize = MIN;

    /// The secret, or its length when it is shorter than `MIN` bytes.
    pub fn new(s: impl Into<String>) -> Result<Self, usize> {
        let s = s.into();
        if s.len() < MIN {
            return Err(s.len());
        }
        Ok(LongSecret(s))
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl<const MIN: usize> fmt::Debug for LongSecret<MIN> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}
