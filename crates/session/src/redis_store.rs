//! `RedisStore`: sessions in one shared Redis server (the `redis` mode).
//!
//! Moving sessions out of the web nodes makes the nodes stateless: any node
//! can serve any request, a node can die without logging anyone out, and
//! nothing has to be replicated between nodes. The price is one network hop
//! per request, and a new single point of failure: when Redis is down, no
//! request that needs a session can be served (the node answers 503 and keeps
//! running; the connection manager reconnects by itself when Redis returns).
//!
//! ## Layout
//! Each session is one Redis hash under `{prefix}s:{id}`:
//!
//! | field | what |
//! |---|---|
//! | `s` | the session as JSON (its `version` and `last_access_ms` inside are not authoritative) |
//! | `l`, `n` | the version: Lamport value and the node that wrote it |
//! | `la` | last access in ms (moved by `touch` without a rewrite of `s`) |
//! | `cr`, `idle`, `abs` | created, idle and absolute timeout: what expiry is computed from |
//!
//! The key expires (`PEXPIREAT`) exactly when the session does, so Redis
//! itself reaps idle sessions, and `touch` pushes the expiry forward.
//!
//! ## Lost updates and compare-and-set
//! A shared store has a classic weakness: two nodes read the same session,
//! each changes it, each writes the whole blob back, and the second write
//! silently erases the first (a *lost update*). With `cas` on (the default),
//! a write is a Lua script that succeeds only if the stored version is still
//! the version the writer read; otherwise it fails with
//! [`StoreError::Conflict`] and the caller re-reads and retries. With `cas`
//! off (`--redis-cas off`) the write overwrites whatever version is stored,
//! which is what the lab uses to *show* lost updates. Conflicts are counted
//! ([`RedisStore::conflicts_total`]).
//!
//! ## Failover and `WAIT`
//! The store reaches Redis through a [`RedisTarget`]: one fixed server, or
//! the primary the Sentinels name (the `redis-ha` mode; `redis_link.rs`
//! explains how a failover is followed). Redis replicates *asynchronously*:
//! the primary answers a write before the replica has it, so a write the
//! user saw succeed can vanish when the replica is promoted. With a
//! [`WaitPolicy`] (`--redis-wait N,TIMEOUT`) every session write and
//! delete is followed by `WAIT N TIMEOUT` on the same connection: Redis
//! answers once N replicas confirmed the write, or after TIMEOUT with how
//! many did. The write is *not* undone when fewer confirmed (Redis cannot
//! undo it); the receipt says so ([`ReplicationAck::TimedOut`], the node's
//! `X-Replication-Ack` header) and [`RedisStore::unreplicated_total`]
//! counts it. So `WAIT` narrows the window in which an acknowledged write
//! lives on one server only; it does not make the store strongly
//! consistent: a replica that confirmed may still lose the election to one
//! that did not, and a write that timed out was still acknowledged.
//!
//! `WAIT` blocks the connection it is sent on until it returns, so with a
//! policy the writes go over a small pool of their own connections
//! ([`WAIT_CONNECTIONS`]) and the reads are not stuck behind them.
//!
//! In both modes an *update* (a session read from the store: a non-zero
//! base version) is refused with a conflict if the key is gone: "off"
//! turns off the version compare, not the existence check. So a request
//! that loaded the session before a logout (`DEL`) cannot re-insert it
//! after, with or without CAS; a new session (base version 0) is written
//! as is.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::{AsyncCommands, Script};

use crate::clock;
use crate::id::SessionId;
use crate::redis_link::{self, Link, LinkConn, RedisTarget};
use crate::session::{Session, SessionMeta};
use crate::store::{PutReceipt, ReplicationAck, SessionStore, StoreError};
use crate::version::Version;

/// How a [`RedisStore`] connects and writes.
#[derive(Clone, Debug)]
pub struct RedisStoreConfig {
    /// Where the primary is.
    pub target: RedisTarget,
    /// Prepended to every key, so several labs can share one Redis.
    pub key_prefix: String,
    /// Written into versions.
    pub node_id: String,
    /// Most bytes of data in one session.
    pub max_session_bytes: usize,
    /// Compare-and-set writes (true) or blind overwrites (false).
    pub cas: bool,
    /// Per-command timeout; past it the request gets a 503.
    pub timeout: Duration,
    /// `WAIT` after every write (see the module docs).
    pub wait: Option<WaitPolicy>,
}

/// `WAIT replicas timeout` after every session write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitPolicy {
    /// How many replicas must confirm.
    pub replicas: u32,
    /// How long Redis waits for them (at least 1 ms: `WAIT N 0` would wait
    /// forever).
    pub timeout: Duration,
}

/// Connections the writes use when every write is followed by `WAIT`.
pub const WAIT_CONNECTIONS: usize = 8;

impl Default for RedisStoreConfig {
    fn default() -> Self {
        RedisStoreConfig {
            target: RedisTarget::Url("redis://127.0.0.1:6379".into()),
            key_prefix: "sessionlab:".into(),
            node_id: "node-1".into(),
            max_session_bytes: 16 * 1024,
            cas: true,
            timeout: Duration::from_millis(500),
            wait: None,
        }
    }
}

/// Sessions in Redis; see the module docs.
pub struct RedisStore {
    cfg: RedisStoreConfig,
    /// Reads, touches, scans; and writes without a [`WaitPolicy`].
    link: Link,
    /// Writes followed by `WAIT` (empty without a policy).
    writers: Vec<Link>,
    next_writer: AtomicUsize,
    put_script: Script,
    touch_script: Script,
    conflicts: AtomicU64,
    unreplicated: AtomicU64,
}

/// KEYS[1] = key. ARGV: cas (1/0), base lamport, base node, writer node,
/// session JSON, created, idle, abs, last access, expire-at ms.
/// Returns {1, new lamport} on success, {0, current lamport} on conflict.
const PUT_LUA: &str = r#"
local cur = redis.call('HMGET', KEYS[1], 'l', 'n')
local cur_l = tonumber(cur[1])
local base_l = tonumber(ARGV[2])
if not cur_l and base_l ~= 0 then
  return {0, -1}
end
if ARGV[1] == '1' and cur_l then
  if cur_l ~= base_l or cur[2] ~= ARGV[3] then return {0, cur_l} end
end
local new_l = math.max(cur_l or 0, base_l) + 1
redis.call('HSET', KEYS[1], 's', ARGV[5], 'l', new_l, 'n', ARGV[4],
  'cr', ARGV[6], 'idle', ARGV[7], 'abs', ARGV[8], 'la', ARGV[9])
redis.call('PEXPIREAT', KEYS[1], ARGV[10])
return {1, new_l}
"#;

/// KEYS[1] = key, ARGV[1] = access time. Moves `la` forward (never back) and
/// the key's expiry with it. Returns 1 if the session exists.
const TOUCH_LUA: &str = r#"
local f = redis.call('HMGET', KEYS[1], 'la', 'cr', 'idle', 'abs')
if not f[1] then return 0 end
local la = math.max(tonumber(f[1]), tonumber(ARGV[1]))
redis.call('HSET', KEYS[1], 'la', la)
redis.call('PEXPIREAT', KEYS[1], math.min(la + tonumber(f[3]), tonumber(f[2]) + tonumber(f[4])))
return 1
"#;

impl RedisStore {
    /// Create the store. Does not wait for Redis: the connection is made on
    /// first use and re-made after failures, so a node starts (and reports
    /// itself degraded) while Redis is down and recovers by itself.
    pub fn connect(cfg: RedisStoreConfig) -> Result<Self, StoreError> {
        let resolver = redis_link::resolver(&cfg.target)?;
        let link = Link::new(&cfg.target, resolver.as_ref(), cfg.timeout)?;
        let writers = match cfg.wait {
            Some(_) => (0..WAIT_CONNECTIONS)
                .map(|_| Link::new(&cfg.target, resolver.as_ref(), cfg.timeout))
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        Ok(RedisStore {
            cfg,
            link,
            writers,
            next_writer: AtomicUsize::new(0),
            put_script: Script::new(PUT_LUA),
            touch_script: Script::new(TOUCH_LUA),
            conflicts: AtomicU64::new(0),
            unreplicated: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &RedisStoreConfig {
        &self.cfg
    }

    fn key(&self, id: &SessionId) -> String {
        format!("{}s:{}", self.cfg.key_prefix, id.as_str())
    }

    /// Writes refused because another writer got there first.
    pub fn conflicts_total(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
    }

    /// Writes (and deletes) that fewer replicas confirmed than the
    /// [`WaitPolicy`] asked for, within its timeout.
    pub fn unreplicated_total(&self) -> u64 {
        self.unreplicated.load(Ordering::Relaxed)
    }

    /// Whether the primary answers now (for health: `degraded` when not).
    pub async fn ping(&self) -> bool {
        let Ok(mut c) = self.link.get().await else {
            return false;
        };
        match tokio::time::timeout(
            self.cfg.timeout,
            redis::cmd("PING").query_async::<String>(&mut c),
        )
        .await
        {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                self.link.failed(e);
                false
            }
            Err(_) => false,
        }
    }

    /// The link a write goes over: one of the `WAIT` pool, or the main one.
    fn writer(&self) -> &Link {
        if self.writers.is_empty() {
            return &self.link;
        }
        let i = self.next_writer.fetch_add(1, Ordering::Relaxed) % self.writers.len();
        &self.writers[i]
    }

    /// After a write on `c`: `WAIT` as the policy says, and what the
    /// replicas confirmed.
    async fn replicated(
        &self,
        link: &Link,
        c: &mut LinkConn,
    ) -> Result<ReplicationAck, StoreError> {
        let Some(w) = self.cfg.wait else {
            return Ok(match self.cfg.target.is_sentinel() {
                true => ReplicationAck::Async,
                false => ReplicationAck::NotReplicated,
            });
        };
        let ms = u64::try_from(w.timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let acked: u64 = redis::cmd("WAIT")
            .arg(w.replicas)
            .arg(ms)
            .query_async(c)
            .await
            .map_err(|e| link.failed(e))?;
        let acked = usize::try_from(acked).unwrap_or(usize::MAX);
        let expected = w.replicas as usize;
        if acked >= expected {
            Ok(ReplicationAck::Acked { peers: acked })
        } else {
            self.unreplicated.fetch_add(1, Ordering::Relaxed);
            Ok(ReplicationAck::TimedOut { acked, expected })
        }
    }

    /// Decode one stored hash into a session, taking the authoritative
    /// version and access time from their own fields.
    fn decode(
        fields: (Option<String>, Option<u64>, Option<String>, Option<u64>),
    ) -> Option<Session> {
        let (json, lamport, node, la) = fields;
        let mut s: Session = serde_json::from_str(&json?).ok()?;
        s.version = Version::new(lamport?, node?);
        if let Some(la) = la {
            s.last_access_ms = s.last_access_ms.max(la);
        }
        Some(s)
    }

    async fn fetch(&self, key: &str) -> Result<Option<Session>, StoreError> {
        let mut c = self.link.get().await?;
        let fields: (Option<String>, Option<u64>, Option<String>, Option<u64>) =
            redis::cmd("HMGET")
                .arg(key)
                .arg(&["s", "l", "n", "la"])
                .query_async(&mut c)
                .await
                .map_err(|e| self.link.failed(e))?;
        Ok(Self::decode(fields))
    }

    /// Keys of stored sessions, at most `limit` (SCAN, so Redis is never
    /// blocked by a large keyspace).
    async fn scan_keys(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        let mut c = self.link.get().await?;
        let pattern = format!("{}s:*", self.cfg.key_prefix);
        let mut cursor: u64 = 0;
        let mut keys = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut c)
                .await
                .map_err(|e| self.link.failed(e))?;
            keys.extend(batch);
            cursor = next;
            if cursor == 0 || keys.len() >= limit {
                keys.truncate(limit);
                return Ok(keys);
            }
        }
    }
}

/// The most sessions `count` walks; past it the count is a lower bound.
const COUNT_SCAN_LIMIT: usize = 1_000_000;

#[async_trait]
impl SessionStore for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        let s = self.fetch(&self.key(id)).await?;
        Ok(s.filter(|s| !s.is_expired(clock::now_ms())))
    }

    async fn put(&self, session: Session) -> Result<PutReceipt, StoreError> {
        let size = session.data_len();
        if size > self.cfg.max_session_bytes {
            return Err(StoreError::TooLarge {
                size,
                limit: self.cfg.max_session_bytes,
            });
        }
        let json = serde_json::to_string(&session).expect("a session always serializes");
        let link = self.writer();
        let mut c = link.get().await?;
        let (ok, lamport): (i64, i64) = self
            .put_script
            .key(self.key(&session.id))
            .arg(if self.cfg.cas { "1" } else { "0" })
            .arg(session.version.lamport)
            .arg(&session.version.node)
            .arg(&self.cfg.node_id)
            .arg(json)
            .arg(session.created_ms)
            .arg(session.idle_timeout_ms)
            .arg(session.absolute_timeout_ms)
            .arg(session.last_access_ms)
            .arg(session.expires_at_ms())
            .invoke_async(&mut c)
            .await
            .map_err(|e| link.failed(e))?;
        if ok != 1 {
            self.conflicts.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                session = session.id.short(),
                stored = lamport,
                "redis CAS conflict"
            );
            return Err(StoreError::Conflict);
        }
        Ok(PutReceipt {
            version: Version::new(lamport as u64, self.cfg.node_id.clone()),
            replication: self.replicated(link, &mut c).await?,
        })
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        // A logout lost at a failover brings the session back: it waits
        // for the replicas like any other write.
        let link = self.writer();
        let mut c = link.get().await?;
        let n: u64 = c.del(self.key(id)).await.map_err(|e| link.failed(e))?;
        self.replicated(link, &mut c).await?;
        Ok(n > 0)
    }

    async fn touch(&self, id: &SessionId, at_ms: u64) -> Result<bool, StoreError> {
        let mut c = self.link.get().await?;
        let n: i64 = self
            .touch_script
            .key(self.key(id))
            .arg(at_ms)
            .invoke_async(&mut c)
            .await
            .map_err(|e| self.link.failed(e))?;
        Ok(n == 1)
    }

    async fn list(&self, limit: usize) -> Result<Vec<SessionMeta>, StoreError> {
        let keys = self.scan_keys(limit).await?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(s) = self.fetch(&key).await? {
                out.push(s.meta());
            }
        }
        out.sort_by(|a, b| (a.created_ms, &a.id_prefix).cmp(&(b.created_ms, &b.id_prefix)));
        Ok(out)
    }

    async fn count(&self) -> Result<usize, StoreError> {
        Ok(self.scan_keys(COUNT_SCAN_LIMIT).await?.len())
    }
}

#[cfg(test)]
mod tests {
    //! These tests start a real `redis-server` (Debian package) on a free
    //! port; `scripts/test.sh` installs it. No mock: the Lua scripts are the
    //! point.
    use super::*;
    use serde_json::{Map, Value};
    use sessionlab_testkit::RedisServer;

    fn store(redis: &RedisServer, cas: bool) -> RedisStore {
        RedisStore::connect(RedisStoreConfig {
            target: RedisTarget::Url(redis.url()),
            cas,
            max_session_bytes: 256,
            ..Default::default()
        })
        .unwrap()
    }

    fn session_with_counter(n: i64) -> Session {
        let mut s = Session::new(SessionId::generate(), clock::now_ms(), 60_000, 3_600_000);
        let mut m = Map::new();
        m.insert("counter".into(), Value::from(n));
        s.set_data(&m);
        s
    }

    /// Stores a new session with counter `n` and returns the copy a
    /// request would load.
    async fn stored_and_loaded(st: &RedisStore, n: i64) -> Session {
        let s = session_with_counter(n);
        st.put(s.clone()).await.unwrap();
        st.get(&s.id).await.unwrap().unwrap()
    }

    fn counter(s: &Session) -> i64 {
        s.data()["counter"].as_i64().unwrap()
    }

    #[tokio::test]
    async fn put_get_touch_delete_with_ttl() {
        let redis = RedisServer::start();
        let st = store(&redis, true);
        assert!(st.ping().await);
        let s = session_with_counter(1);
        let r = st.put(s.clone()).await.unwrap();
        assert_eq!(r.version.lamport, 1);
        let got = st.get(&s.id).await.unwrap().unwrap();
        assert_eq!(counter(&got), 1);
        assert_eq!(got.version, r.version);

        let mut c = st.link.get().await.unwrap();
        let ttl0: i64 = c.pttl(st.key(&s.id)).await.unwrap();
        assert!(
            ttl0 > 0 && ttl0 <= 60_000,
            "TTL follows the idle timeout: {ttl0}"
        );
        assert!(st.touch(&s.id, clock::now_ms() + 30_000).await.unwrap());
        let ttl1: i64 = c.pttl(st.key(&s.id)).await.unwrap();
        assert!(
            ttl1 > ttl0 + 20_000,
            "touch extends the TTL: {ttl0} -> {ttl1}"
        );

        assert_eq!(st.count().await.unwrap(), 1);
        assert_eq!(st.list(10).await.unwrap()[0].id_prefix, s.id.short());
        assert!(st.delete(&s.id).await.unwrap());
        assert!(st.get(&s.id).await.unwrap().is_none());
        assert!(!st.touch(&s.id, clock::now_ms()).await.unwrap());
    }

    #[tokio::test]
    async fn compare_and_set_refuses_a_write_based_on_a_stale_read() {
        let redis = RedisServer::start();
        let st = store(&redis, true);
        let s = session_with_counter(0);
        let v1 = st.put(s.clone()).await.unwrap().version;

        // Two writers read version 1 and both increment.
        let mut a = st.get(&s.id).await.unwrap().unwrap();
        let mut b = a.clone();
        assert_eq!(a.version, v1);
        a.set_data(&session_with_counter(1).data());
        b.set_data(&session_with_counter(1).data());
        st.put(a).await.unwrap();
        assert_eq!(st.put(b.clone()).await, Err(StoreError::Conflict));
        assert_eq!(st.conflicts_total(), 1);

        // The loser re-reads and retries: no increment is lost.
        let mut b = st.get(&s.id).await.unwrap().unwrap();
        b.set_data(&session_with_counter(counter(&b) + 1).data());
        st.put(b).await.unwrap();
        assert_eq!(counter(&st.get(&s.id).await.unwrap().unwrap()), 2);

        // A write to a session deleted meanwhile must not resurrect it.
        let stale = st.get(&s.id).await.unwrap().unwrap();
        st.delete(&s.id).await.unwrap();
        assert_eq!(st.put(stale).await, Err(StoreError::Conflict));
        assert!(st.get(&s.id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn without_cas_the_second_writer_silently_wins() {
        let redis = RedisServer::start();
        let st = store(&redis, false);
        let mut a = stored_and_loaded(&st, 0).await;
        let id = a.id.clone();
        let mut b = a.clone();
        a.set_data(&session_with_counter(1).data());
        b.set_data(&session_with_counter(1).data());
        st.put(a).await.unwrap();
        st.put(b).await.unwrap();
        // Two acknowledged increments, one survives: a lost update.
        assert_eq!(counter(&st.get(&id).await.unwrap().unwrap()), 1);
        assert_eq!(st.conflicts_total(), 0);
    }

    #[tokio::test]
    async fn a_write_loaded_before_a_logout_cannot_bring_the_session_back_cas_on_or_off() {
        let redis = RedisServer::start();
        for cas in [true, false] {
            let st = store(&redis, cas);
            // Request A loads the session; request B logs out; A writes.
            let mut a = stored_and_loaded(&st, 0).await;
            let id = a.id.clone();
            assert!(st.delete(&id).await.unwrap());
            a.set_data(&session_with_counter(1).data());
            assert_eq!(st.put(a).await, Err(StoreError::Conflict), "cas={cas}");
            assert!(st.get(&id).await.unwrap().is_none(), "cas={cas}");
        }
    }

    #[tokio::test]
    async fn oversized_data_is_refused_before_any_write() {
        let redis = RedisServer::start();
        let st = store(&redis, true);
        let mut big = stored_and_loaded(&st, 7).await;
        let id = big.id.clone();
        let mut m = big.data();
        m.insert("blob".into(), Value::from("x".repeat(1000)));
        big.set_data(&m);
        assert!(matches!(
            st.put(big).await,
            Err(StoreError::TooLarge { .. })
        ));
        assert_eq!(counter(&st.get(&id).await.unwrap().unwrap()), 7);
    }

    #[tokio::test]
    async fn redis_down_is_unavailable_and_the_store_recovers_by_itself() {
        let redis = RedisServer::start();
        let port = redis.port();
        let st = store(&redis, true);
        let s = session_with_counter(3);
        st.put(s.clone()).await.unwrap();
        drop(redis);

        let err = st.get(&s.id).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(!st.ping().await);

        // Redis comes back (empty: it kept nothing on disk); the same store
        // object reconnects without help.
        let _redis = RedisServer::start_on(port);
        sessionlab_testkit::until(Duration::from_secs(10), "the store to reconnect", || {
            st.ping()
        })
        .await;
        assert!(st.get(&s.id).await.unwrap().is_none());
        st.put(session_with_counter(1)).await.unwrap();
    }
}
