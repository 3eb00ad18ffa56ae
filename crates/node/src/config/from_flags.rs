//! The one conversion from the command line to the typed options:
//! `NodeOptions::try_from(Flags)`.
//!
//! Clap has checked each value; what is left are the rules that span
//! several flags, and each is a `match` that builds one part of
//! [`NodeOptions`] or refuses with an [`InvalidConfig`] naming the flag to
//! fix. A flag of one feature given without the feature (`--jwt-secret`
//! without `--auth jwt`, `--peer` without `--replication`) is refused rather
//! than ignored, so a typo in a mode never silently runs another mode.
//! `main` reports the refusal in clap's format (exit status 2), as it does
//! a bad value.

use std::collections::BTreeSet;

use clap::{CommandFactory, Parser};
use sessionlab_replication::{PartitionPolicy, PeerAddr, ReplicationMode, Topology};

use super::flags::{
    Auth, AuthFlags, Cli, ClientFlags, CookieFlags, Flags, LimitFlags, ListenerFlags, Rate,
    ReplicationFlags, StoreFlags, StoreKind, parse_node_id,
};
use super::machine;
use super::options::{
    AuthOptions, BindSession, ClientOptions, ClusterSecret, JwtKeys, JwtOptions, JwtSecret, Limits,
    ListenOptions, MembershipOptions, MemoryOptions, NodeOptions, RateLimit, RedisOptions,
    RedisTarget, ReplicationOptions, StoreOptions, Timeouts, Tracking, UsersSource, WaitPolicy,
};
use crate::session::cookie::CookiePolicy;

/// A combination of flags that cannot work; the message names the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidConfig(pub String);

fn bad<T>(message: impl Into<String>) -> Result<T, InvalidConfig> {
    Err(InvalidConfig(message.into()))
}

impl TryFrom<Flags> for NodeOptions {
    type Error = InvalidConfig;

    fn try_from(mut f: Flags) -> Result<Self, InvalidConfig> {
        let auth = auth(&f.auth, &f.cookies)?;
        let host_identity = f.id_from_hostname;
        if host_identity {
            f.id = host_id()?;
        }
        let store = store(
            &f.id,
            host_identity,
            f.store,
            f.replication,
            &f.limits,
            f.listeners.cluster_listen,
        )?;
        Ok(NodeOptions {
            listen: listen(&f.listeners),
            store,
            auth,
            users: f.auth.users.map_or(UsersSource::Demo, UsersSource::File),
            cookie: cookie_policy(&f.cookies, &f.id)?,
            timeouts: Timeouts {
                idle: f.timeouts.idle_timeout.0,
                absolute: f.timeouts.absolute_timeout.0,
                anonymous_idle: f
                    .timeouts
                    .anonymous_idle_timeout
                    .0
                    .min(f.timeouts.idle_timeout.0),
                clock_skew_ms: f.timeouts.clock_skew.0,
            },
            clients: clients(f.clients, f.limits.login_queue),
            limits: Limits {
                max_session_bytes: usize_or_max(f.limits.max_session_bytes),
                max_body_bytes: usize_or_max(f.limits.max_body_bytes),
            },
            referrer_policy: f.cookies.referrer_policy,
            log: f.logging.log,
            id: f.id,
        })
    }
}

impl NodeOptions {
    /// Parse a command line (without the program name) the way the binary
    /// does, into options; a refusal is the error the binary would print.
    pub fn from_args<I, T>(args: I) -> Result<NodeOptions, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let program = std::iter::once(std::ffi::OsString::from("sessionlab-node"));
        let cli = Cli::try_parse_from(program.chain(args.into_iter().map(Into::into)))?;
        NodeOptions::try_from(cli.flags).map_err(InvalidConfig::into_clap)
    }
}

impl Default for NodeOptions {
    /// What the binary runs with given no flags (but `SESSIONLAB_*`
    /// variables in the environment still apply, as they would there).
    fn default() -> Self {
        NodeOptions::from_args(std::iter::empty::<&str>())
            .expect("the default flags make a valid configuration")
    }
}

impl InvalidConfig {
    /// The refusal as clap reports a bad value (message, usage, exit 2).
    pub fn into_clap(self) -> clap::Error {
        Cli::command().error(clap::error::ErrorKind::ValueValidation, self)
    }
}

fn usize_or_max(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn listen(f: &ListenerFlags) -> ListenOptions {
    ListenOptions {
        app: f.listen,
        cluster: f.cluster_listen,
        workers: match f.workers {
            Some(n) => n.into(),
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        },
    }
}

/// `--store`, `--replication` and their flags.
/// `--id-from-hostname`: the host name, if it is a valid node id.
fn host_id() -> Result<String, InvalidConfig> {
    let name =
        machine::host_name().map_err(|e| InvalidConfig(format!("--id-from-hostname: {e}")))?;
    parse_node_id(&name).map_err(|rule| {
        InvalidConfig(format!(
            "--id-from-hostname: the host name {name:?} is not a node id ({rule}); give --id"
        ))
    })
}

fn store(
    id: &str,
    host_identity: bool,
    store: StoreFlags,
    replication: ReplicationFlags,
    limits: &LimitFlags,
    cluster_listen: std::net::SocketAddr,
) -> Result<StoreOptions, InvalidConfig> {
    let memory = memory_options(limits)?;
    if store.store == StoreKind::Redis
        && (limits.store_budget.is_some() || limits.anonymous_budget.is_some())
    {
        return bad(
            "--store-budget and --anonymous-budget bound this node's memory store; with --store redis bound Redis itself (its maxmemory)",
        );
    }
    if store.store != StoreKind::Redis
        && (!store.redis_sentinels.is_empty() || store.redis_wait.is_some())
    {
        return bad("--redis-sentinel and --redis-wait need --store redis");
    }
    let off = replication.replication == ReplicationMode::Off;
    let membership_flag = [
        (!replication.join.is_empty(), "--join"),
        (replication.discover.is_some(), "--discover"),
        (
            replication.cluster_advertise.is_some(),
            "--cluster-advertise",
        ),
    ]
    .into_iter()
    .find_map(|(given, flag)| given.then_some(flag));
    match (store.store, replication.replication) {
        (StoreKind::Redis, mode @ (ReplicationMode::AllToAll | ReplicationMode::Backup)) => {
            bad(format!(
                "--replication {mode} cannot be combined with --store redis (every node already shares the one Redis)"
            ))
        }
        _ if off && !replication.peers.is_empty() => bad(
            "--peer needs --replication all-to-all or backup (without it the node replicates to nobody)",
        ),
        _ if off && replication.replication_granularity.is_some() => bad(
            "--replication-granularity needs --replication all-to-all or backup (it decides how replicated copies merge)",
        ),
        _ if off && membership_flag.is_some() => bad(format!(
            "{} needs --replication all-to-all or backup (members are who a node replicates to)",
            membership_flag.unwrap_or_default()
        )),
        _ if replication.backups.is_some()
            && replication.replication != ReplicationMode::Backup =>
        {
            bad("--backups needs --replication backup")
        }
        _ if replication.discover_interval.is_some() && replication.discover.is_none() => {
            bad("--discover-interval needs --discover")
        }
        (StoreKind::Redis, ReplicationMode::Off) => Ok(StoreOptions::Redis(redis_options(store)?)),
        (StoreKind::Memory, ReplicationMode::Off) => Ok(StoreOptions::Memory(memory)),
        (StoreKind::Memory, mode) => Ok(StoreOptions::Replicated {
            memory,
            replication: replication_options(id, host_identity, mode, replication, cluster_listen)?,
        }),
    }
}

/// `--redis-url` or `--redis-sentinel`, and `--redis-wait`.
fn redis_options(store: StoreFlags) -> Result<RedisOptions, InvalidConfig> {
    let target = match store.redis_sentinels.is_empty() {
        true => RedisTarget::Url(store.redis_url),
        false => RedisTarget::Sentinel {
            sentinels: store.redis_sentinels,
            master_name: store.redis_master_name,
        },
    };
    Ok(RedisOptions {
        target,
        wait: store.redis_wait.map(|w| WaitPolicy {
            replicas: w.replicas,
            timeout: w.timeout,
        }),
        cas: store.redis_cas.is_on(),
        timeout: store.redis_timeout.0,
    })
}

/// `--store-budget` (default: from the machine's memory) and
/// `--anonymous-budget` (default: a quarter of it, never more than it).
fn memory_options(limits: &LimitFlags) -> Result<MemoryOptions, InvalidConfig> {
    let budget = limits
        .store_budget
        .unwrap_or_else(|| machine::default_store_budget(machine::mem_total_bytes()));
    let anonymous = match limits.anonymous_budget {
        Some(a) if a > budget => {
            return bad(format!(
                "--anonymous-budget ({a} bytes) is larger than --store-budget ({budget} bytes)"
            ));
        }
        Some(a) => a,
        None => budget / 4,
    };
    Ok(MemoryOptions {
        max_sessions: usize_or_max(limits.max_sessions),
        budget_bytes: budget,
        anonymous_budget_bytes: anonymous,
    })
}

/// `--session-rate`, `--login-rate` and friends.
fn clients(f: ClientFlags, login_queue: u32) -> ClientOptions {
    let limit = |rate: Rate, burst: u32| match rate {
        Rate::Off => None,
        Rate::Every(period) => Some(RateLimit { period, burst }),
    };
    ClientOptions {
        new_sessions: limit(f.session_rate, f.session_burst),
        logins: limit(f.login_rate, f.login_burst),
        login_queue: login_queue as usize,
        trusted_proxies: f.trusted_proxies,
        csrf_check: f.csrf_check.is_on(),
    }
}

/// `--replication all-to-all`: a secret long enough to sign with, and peers
/// that are other nodes, each once.
fn replication_options(
    id: &str,
    host_identity: bool,
    mode: ReplicationMode,
    f: ReplicationFlags,
    cluster_listen: std::net::SocketAddr,
) -> Result<ReplicationOptions, InvalidConfig> {
    let secret = match f.cluster_secret {
        None => {
            return bad(format!(
                "--cluster-secret is required with --replication {mode} (at least {} bytes, the same on every node)",
                ClusterSecret::MIN_LEN
            ));
        }
        Some(s) => ClusterSecret::new(s.as_str()).or_else(|got| {
            bad(format!(
                "--cluster-secret must be at least {} bytes (got {got})",
                ClusterSecret::MIN_LEN
            ))
        })?,
    };
    let mut seen = BTreeSet::new();
    for (peer, _) in &f.peers {
        if peer == id {
            return bad(format!("--peer {peer} is this node's own --id"));
        }
        if !seen.insert(peer) {
            return bad(format!("--peer {peer} is given twice"));
        }
    }
    let topology = match mode {
        ReplicationMode::Backup => Topology::Backup {
            backups: f.backups.unwrap_or(1).into(),
        },
        _ => Topology::AllToAll,
    };
    let dynamic = topology.is_backup() || !f.join.is_empty() || f.discover.is_some();
    if dynamic && f.partition_policy == PartitionPolicy::Consistent {
        return bad(
            "--partition-policy consistent needs a fixed member list (--peer, all-to-all): with \
             members learnt at run time (--replication backup, --join, --discover) a cut-off \
             minority removes the members it cannot reach and then counts itself a majority",
        );
    }
    let membership = match dynamic {
        false => None,
        true => {
            let advertise = match f.cluster_advertise {
                Some(a) => a,
                None if cluster_listen.ip().is_unspecified() && host_identity => {
                    let ip = machine::host_address(id).map_err(|e| {
                        InvalidConfig(format!(
                            "--id-from-hostname with --cluster-listen {cluster_listen}: {e}; give --cluster-advertise"
                        ))
                    })?;
                    PeerAddr::Socket(std::net::SocketAddr::new(ip, cluster_listen.port()))
                }
                None if cluster_listen.ip().is_unspecified() => {
                    return bad(format!(
                        "--cluster-advertise is needed with --cluster-listen {cluster_listen}: the other members must be told an address that reaches this node"
                    ));
                }
                None => PeerAddr::Socket(cluster_listen),
            };
            let mut seeds = f.join;
            seeds.extend(f.peers.iter().map(|(_, a)| a.clone()));
            Some(MembershipOptions {
                advertise,
                seeds,
                discover: f.discover,
                discover_interval: f
                    .discover_interval
                    .map_or(std::time::Duration::from_secs(2), |i| i.0),
            })
        }
    };
    Ok(ReplicationOptions {
        topology,
        membership,
        peers: f.peers,
        secret,
        ack: f.replication_ack,
        ack_timeout: f.replication_ack_timeout.0,
        partition_policy: f.partition_policy,
        granularity: f.replication_granularity.unwrap_or_default(),
    })
}

/// `--auth` and the flags that belong to one of its modes.
/// The session cookie's policy. A name with a cookie prefix must follow
/// the prefix's rules or browsers drop the cookie ([`CookiePolicy`]'s
/// docs): `__Secure-` and `__Host-` need `Secure` on every response, so
/// `--secure-cookies` (the node cannot know that every request came over
/// HTTPS); `Path=/` and no `Domain`, which `__Host-` also needs, are what
/// the node always writes.
fn cookie_policy(f: &CookieFlags, id: &str) -> Result<CookiePolicy, InvalidConfig> {
    let name = &f.cookie_name;
    if let Some(prefix) = CookiePolicy::prefix(name) {
        if !f.secure_cookies {
            return bad(format!(
                "--cookie-name {name}: the {prefix} prefix needs --secure-cookies \
                 (browsers drop a {prefix} cookie without Secure; serve the site over HTTPS, \
                 e.g. sessionlab up --tls)"
            ));
        }
    }
    Ok(CookiePolicy {
        name: name.clone(),
        secure_always: f.secure_cookies,
        route: f.route_suffix.then(|| id.to_owned()),
    })
}

fn auth(f: &AuthFlags, cookies: &CookieFlags) -> Result<AuthOptions, InvalidConfig> {
    let keys = (&f.jwt_private_key, &f.jwt_public_key);
    if f.auth == Auth::Session {
        if f.jwt_secret.is_some() {
            return bad("--jwt-secret needs --auth jwt");
        }
        if keys.0.is_some() || keys.1.is_some() {
            return bad("--jwt-private-key and --jwt-public-key need --auth jwt");
        }
        return Ok(AuthOptions::Session {
            tracking: cookies.tracking,
            binding: cookies.bind_session,
        });
    }
    if cookies.tracking == Tracking::Url {
        return bad(
            "--tracking url needs --auth session (with --auth jwt the token travels in Authorization: Bearer)",
        );
    }
    if cookies.bind_session != BindSession::None {
        return bad("--bind-session needs --auth session");
    }
    let keys = match (&f.jwt_secret, keys) {
        (Some(_), (Some(_), _) | (_, Some(_))) => {
            return bad(
                "--jwt-secret and --jwt-private-key/--jwt-public-key exclude each other: choose HS256 or EdDSA",
            );
        }
        (Some(s), _) => JwtKeys::Hs256(JwtSecret::new(s.as_str()).or_else(|got| {
            bad(format!(
                "--jwt-secret must be at least {} bytes (got {got})",
                JwtSecret::MIN_LEN
            ))
        })?),
        (None, (Some(private), Some(public))) => JwtKeys::EdDsa {
            private_key: private.clone(),
            public_key: public.clone(),
        },
        (None, (Some(_), None)) => {
            return bad("--jwt-public-key is required with --jwt-private-key");
        }
        (None, (None, Some(_))) => {
            return bad("--jwt-private-key is required with --jwt-public-key");
        }
        (None, (None, None)) => {
            return bad(format!(
                "--auth jwt needs --jwt-secret (at least {} bytes, the same on every node) or --jwt-private-key and --jwt-public-key",
                JwtSecret::MIN_LEN
            ));
        }
    };
    Ok(AuthOptions::Jwt(JwtOptions {
        keys,
        access_ttl: f.access_ttl.0,
        refresh_ttl: f.refresh_ttl.0,
        leeway: f.jwt_leeway.0,
    }))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sessionlab_replication::AckMode;

    use super::*;
    use crate::config::flags::tests::SAMPLE;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn flags(args: &[&str]) -> Flags {
        Cli::try_parse_from(std::iter::once("sessionlab-node").chain(args.iter().copied()))
            .unwrap()
            .flags
    }

    fn options(args: &[&str]) -> Result<NodeOptions, InvalidConfig> {
        NodeOptions::try_from(flags(args))
    }

    /// Each command line is refused with a message containing its `want`,
    /// and never showing `secret` (a short secret given on it).
    fn refused_without_echo(cases: &[(&[&str], &str)], secret: &str) {
        for (args, want) in cases {
            let err = options(args).unwrap_err();
            assert!(err.to_string().contains(want), "{args:?}: {err}");
            assert!(
                !err.to_string().contains(secret),
                "the secret is echoed: {err}"
            );
        }
    }

    #[test]
    fn defaults_match_the_command_line_contract() {
        let c = NodeOptions::default();
        assert_eq!(c.id, "node-1");
        assert_eq!(c.listen.app.to_string(), "127.0.0.1:8081");
        assert_eq!(c.listen.cluster.to_string(), "127.0.0.1:9081");
        assert_eq!(c.auth, AuthOptions::SESSION);
        assert_eq!(c.auth.tracking(), Tracking::Cookie);
        assert_eq!(c.cookie.name, "SLSESSION");
        assert_eq!(c.timeouts.idle, Duration::from_secs(30 * 60));
        assert_eq!(c.timeouts.absolute, Duration::from_secs(8 * 3600));
        assert!(c.cookie.route.is_none() && !c.cookie.secure_always);
        assert_eq!(c.users, UsersSource::Demo);
        let StoreOptions::Memory(m) = c.store else {
            panic!("not memory")
        };
        assert!(m.budget_bytes >= 16 << 20 && m.budget_bytes <= 1 << 30);
        assert_eq!(m.anonymous_budget_bytes, m.budget_bytes / 4);
        assert_eq!(c.timeouts.anonymous_idle, Duration::from_secs(5 * 60));
        let sessions = c.clients.new_sessions.unwrap();
        let logins = c.clients.logins.unwrap();
        // The load tool's 50 users from one address may all log in at once.
        assert!(sessions.burst >= 100 && logins.burst >= 100);
        assert!(c.clients.csrf_check && c.clients.trusted_proxies.is_empty());
    }

    #[test]
    fn a_prefixed_cookie_name_needs_secure_cookies() {
        for name in ["__Host-SLSESSION", "__Secure-SLSESSION", "__host-x"] {
            let e = options(&["--cookie-name", name]).unwrap_err().to_string();
            assert!(e.starts_with(&format!("--cookie-name {name}")), "{e}");
            assert!(e.contains("--secure-cookies"), "{e}");
            let c = options(&["--cookie-name", name, "--secure-cookies"]).unwrap();
            assert_eq!(c.cookie.name, name);
            assert!(c.cookie.secure_always);
        }
        assert!(options(&["--cookie-name", "Host-SLSESSION"]).is_ok());
    }

    #[test]
    fn budget_flags_and_their_rules() {
        let c = options(&["--store-budget", "64MiB", "--idle-timeout", "2m"]).unwrap();
        let StoreOptions::Memory(m) = c.store else {
            panic!("not memory")
        };
        assert_eq!(
            (m.budget_bytes, m.anonymous_budget_bytes),
            (64 << 20, 16 << 20)
        );
        // Never longer than the idle timeout.
        assert_eq!(c.timeouts.anonymous_idle, Duration::from_secs(120));
        let err = options(&["--store-budget", "1MiB", "--anonymous-budget", "2MiB"]).unwrap_err();
        assert!(err.to_string().contains("--anonymous-budget"), "{err}");
        let err = options(&["--redis-wait", "1"]).unwrap_err();
        assert!(err.0.contains("--redis-wait need --store redis"), "{err}");
        let err = options(&["--store", "redis", "--store-budget", "1MiB"]).unwrap_err();
        assert!(err.to_string().contains("--store-budget"), "{err}");
        let c = options(&["--session-rate", "off", "--csrf-check", "off"]).unwrap();
        assert!(c.clients.new_sessions.is_none() && !c.clients.csrf_check);
    }

    #[test]
    fn flags_become_typed_options() {
        let more = ["--workers", "3", "--max-body-bytes", "4096"];
        let c = options(&[&SAMPLE[..], &more].concat()).unwrap();
        assert_eq!(c.id, "node-2");
        assert_eq!(c.auth.tracking(), Tracking::Url);
        assert_eq!(c.cookie.route.as_deref(), Some("node-2"));
        assert_eq!(c.timeouts.idle, Duration::from_secs(90));
        assert_eq!(c.listen.workers, 3);
        assert_eq!(c.limits.max_body_bytes, 4096);
    }

    #[test]
    fn replication_flags_parse() {
        let args = [
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
        ];
        let f = flags(&args);
        assert!(
            !format!("{f:?}").contains(SECRET),
            "the secret leaks into the flags' Debug"
        );
        let c = options(&args).unwrap();
        let StoreOptions::Replicated {
            replication: r,
            memory,
        } = &c.store
        else {
            panic!("not replicated: {:?}", c.store);
        };
        assert_eq!(memory.max_sessions, 1_000_000);
        assert_eq!(r.ack, AckMode::All);
        assert_eq!(r.ack_timeout, Duration::from_millis(500));
        assert_eq!(r.secret.as_bytes(), SECRET.as_bytes());
        let peers: Vec<String> = r.peers.iter().map(|(id, a)| format!("{id}={a}")).collect();
        assert_eq!(peers, ["node-2=127.0.0.1:9082", "node-3=node-3:9081"]);
        assert!(
            !format!("{c:?}").contains(SECRET),
            "the secret leaks into Debug"
        );
    }

    #[test]
    fn the_id_can_come_from_the_host_name_and_then_so_does_the_advertised_address() {
        let host = machine::host_name().unwrap();
        let args = [
            "--id-from-hostname",
            "--cluster-listen",
            "0.0.0.0:9081",
            "--replication",
            "backup",
            "--cluster-secret",
            SECRET,
        ];
        // The outcome depends on this machine: its name may not be an id,
        // or may resolve to loopback only (a Debian host's 127.0.1.1).
        match (parse_node_id(&host), machine::host_address(&host)) {
            (Ok(_), Ok(ip)) => {
                let c = options(&args).unwrap();
                assert_eq!(c.id, host);
                let StoreOptions::Replicated { replication: r, .. } = &c.store else {
                    panic!("not replicated: {:?}", c.store);
                };
                let advertised = r.membership.as_ref().unwrap().advertise.to_string();
                assert_eq!(advertised, std::net::SocketAddr::new(ip, 9081).to_string());
            }
            _ => {
                let err = options(&args).unwrap_err().to_string();
                assert!(err.contains("--id-from-hostname"), "{err}");
            }
        }
        let both = Cli::try_parse_from(["sessionlab-node", "--id", "a", "--id-from-hostname"]);
        let err = both.unwrap_err().to_string();
        assert!(
            err.contains("--id-from-hostname") && err.contains("--id"),
            "{err}"
        );
    }

    #[test]
    fn replication_is_off_by_default() {
        let f = flags(&[]);
        assert_eq!(f.replication.replication, ReplicationMode::Off);
        assert_eq!(f.replication.replication_ack, AckMode::None);
        assert_eq!(
            f.replication.replication_ack_timeout,
            Duration::from_secs(1)
        );
        assert!(f.replication.peers.is_empty() && f.replication.cluster_secret.is_none());
        let c = NodeOptions::try_from(f).unwrap();
        let budget = machine::default_store_budget(machine::mem_total_bytes());
        assert_eq!(
            c.store,
            StoreOptions::Memory(MemoryOptions {
                max_sessions: 1_000_000,
                budget_bytes: budget,
                anonymous_budget_bytes: budget / 4,
            })
        );
    }

    #[test]
    fn store_and_auth_flags_become_their_variants() {
        let c = options(&["--store", "redis", "--redis-cas", "off"]).unwrap();
        assert_eq!(
            c.store,
            StoreOptions::Redis(RedisOptions {
                target: RedisTarget::Url("redis://127.0.0.1:6379".into()),
                wait: None,
                cas: false,
                timeout: Duration::from_millis(500),
            })
        );
        let c = options(&[
            "--store",
            "redis",
            "--redis-sentinel",
            "127.0.0.1:26379",
            "--redis-sentinel=localhost:26380",
            "--redis-master-name",
            "lab",
            "--redis-wait",
            "1,50ms",
        ])
        .unwrap();
        let StoreOptions::Redis(r) = c.store else {
            panic!("a redis store: {:?}", c.store)
        };
        assert_eq!(
            r.target,
            RedisTarget::Sentinel {
                sentinels: vec!["127.0.0.1:26379".into(), "localhost:26380".into()],
                master_name: "lab".into(),
            }
        );
        assert_eq!(
            r.wait,
            Some(WaitPolicy {
                replicas: 1,
                timeout: Duration::from_millis(50)
            })
        );
        let StoreOptions::Redis(r) = options(&["--store", "redis", "--redis-wait", "2"])
            .unwrap()
            .store
        else {
            panic!("a redis store")
        };
        assert_eq!(
            r.wait.map(|w| (w.replicas, w.timeout)),
            Some((2, Duration::from_millis(100)))
        );
        let c = options(&["--auth", "jwt", "--jwt-secret", SECRET]).unwrap();
        let jwt = c.auth.jwt().expect("jwt mode");
        assert!(matches!(&jwt.keys, JwtKeys::Hs256(s) if s.as_bytes() == SECRET.as_bytes()));
        assert_eq!(
            (jwt.access_ttl, jwt.refresh_ttl),
            (Duration::from_secs(300), Duration::from_secs(3600))
        );
        assert_eq!(c.auth.tracking(), Tracking::Cookie);
        let c = options(&[
            "--auth",
            "jwt",
            "--jwt-private-key",
            "a.pem",
            "--jwt-public-key",
            "b.pem",
        ])
        .unwrap();
        assert_eq!(
            c.auth.jwt().unwrap().keys,
            JwtKeys::EdDsa {
                private_key: "a.pem".into(),
                public_key: "b.pem".into()
            }
        );
        let c = options(&["--bind-session", "user-agent", "--users", "u.txt"]).unwrap();
        assert_eq!(c.auth.binding(), BindSession::UserAgent);
        assert_eq!(c.users, UsersSource::File("u.txt".into()));
    }

    #[test]
    fn flag_combinations_that_cannot_work_name_the_flag() {
        let cases: [(&[&str], &str); 8] = [
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
                &["--replication-granularity", "attribute"],
                "--replication-granularity needs --replication all-to-all",
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
            (
                &[
                    "--replication",
                    "backup",
                    "--cluster-secret",
                    SECRET,
                    "--partition-policy",
                    "consistent",
                ],
                "--partition-policy consistent needs a fixed member list",
            ),
            (
                &[
                    "--replication",
                    "all-to-all",
                    "--cluster-secret",
                    SECRET,
                    "--join",
                    "127.0.0.1:9",
                    "--partition-policy",
                    "consistent",
                ],
                "--partition-policy consistent needs a fixed member list",
            ),
        ];
        refused_without_echo(&cases, "short");
    }

    #[test]
    fn store_and_auth_combinations_that_cannot_work_name_the_flag() {
        let cases: [(&[&str], &str); 9] = [
            (
                &["--store", "redis", "--replication", "all-to-all"],
                "--replication all-to-all cannot be combined with --store redis",
            ),
            (&["--jwt-secret", SECRET], "--jwt-secret needs --auth jwt"),
            (
                &["--jwt-public-key", "k.pem"],
                "--jwt-private-key and --jwt-public-key need --auth jwt",
            ),
            (
                &["--auth", "jwt", "--jwt-secret", SECRET, "--tracking", "url"],
                "--tracking url needs --auth session",
            ),
            (
                &[
                    "--auth",
                    "jwt",
                    "--jwt-secret",
                    SECRET,
                    "--bind-session",
                    "user-agent",
                ],
                "--bind-session needs --auth session",
            ),
            (
                &[
                    "--auth",
                    "jwt",
                    "--jwt-secret",
                    SECRET,
                    "--jwt-private-key",
                    "k.pem",
                ],
                "--jwt-secret and --jwt-private-key/--jwt-public-key exclude each other",
            ),
            (
                &["--auth", "jwt", "--jwt-secret", "too-short"],
                "--jwt-secret must be at least 32 bytes (got 9)",
            ),
            (
                &["--auth", "jwt", "--jwt-public-key", "k.pem"],
                "--jwt-private-key is required with --jwt-public-key",
            ),
            (&["--auth", "jwt"], "--auth jwt needs --jwt-secret"),
        ];
        refused_without_echo(&cases, "too-short");
    }

    #[test]
    fn from_args_reports_refusals_as_the_binary_does() {
        let err = NodeOptions::from_args(["--peer", "node-2=127.0.0.1:9082"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().contains("--peer needs --replication"),
            "{err}"
        );
        let err = NodeOptions::from_args(["--idle-timeout", "soon"]).unwrap_err();
        assert!(err.to_string().contains("--idle-timeout"), "{err}");
        for (flag, value) in [
            ("--redis-wait", "0"),
            ("--redis-wait", "1,forever"),
            ("--redis-sentinel", "no-port"),
            ("--redis-sentinel", "h:0"),
            ("--replication-granularity", "key"),
        ] {
            let err = NodeOptions::from_args(["--store", "redis", flag, value]).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{flag} {value}");
            assert!(err.to_string().contains(flag), "{flag} {value}: {err}");
        }
    }
}
