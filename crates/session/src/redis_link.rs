//! How a [`RedisStore`](crate::RedisStore) reaches Redis: one fixed server,
//! or whichever server the Sentinels name as primary right now.
//!
//! ## One server (`--redis-url`)
//! A [`ConnectionManager`]: one multiplexed connection that re-connects by
//! itself to the same address after a failure. That is all the `redis`
//! mode needs: there is only one server, so "reconnect" and "find the
//! server again" are the same thing.
//!
//! ## Through Sentinel (`--redis-sentinel ADDR ... --redis-master-name NAME`)
//! With a primary, a replica and Sentinels watching them, the address of
//! the primary *changes* at a failover: the Sentinels agree that the
//! primary is down (`down-after-milliseconds`), elect one of themselves as
//! leader, and that one promotes the replica (`REPLICAOF NO ONE`). A client
//! that reconnects to the old address gets nothing (the process is gone) or,
//! worse, a restarted old primary that is about to become a replica. So a
//! Sentinel client does not keep an address, it keeps the *question*:
//!
//! | step | what happens |
//! |---|---|
//! | connect | ask the Sentinels (`SENTINEL MASTERS`, the first that answers) for the primary named NAME, connect, check `ROLE` says master |
//! | serve | one multiplexed connection, reused by every request |
//! | fail | an I/O error, a dropped connection, a timeout, or `READONLY` (the server we talk to was demoted): forget the connection |
//! | next request | ask the Sentinels again |
//!
//! Until the Sentinels have promoted the replica, asking again names the
//! dead primary and connecting fails: the request gets 503, as in the
//! `redis` mode when its only server is down. As soon as the promotion is
//! done, the next request connects to the new primary. There is no
//! background watcher (no `+switch-master` subscription): a node only learns
//! of a failover by failing once, which costs one request per connection
//! and no moving part. Every step is bounded by the store's timeout.
//!
//! The Sentinel lookup itself is shared by all the links of a store (one
//! lookup at a time, behind a lock); each link keeps its own connection.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::sentinel::{SentinelClient, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, ServerErrorKind,
    Value,
};

use crate::store::StoreError;

/// Where the Redis primary is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisTarget {
    /// One fixed server, `redis://host:port/db`.
    Url(String),
    /// Whatever primary the Sentinels at `sentinels` (each `host:port`)
    /// name as `master_name`.
    Sentinel {
        sentinels: Vec<String>,
        master_name: String,
    },
}

impl RedisTarget {
    /// Whether the primary is found through Sentinel (and so has replicas).
    pub fn is_sentinel(&self) -> bool {
        matches!(self, RedisTarget::Sentinel { .. })
    }
}

/// The shared Sentinel lookup of one store.
pub(crate) type Resolver = Arc<tokio::sync::Mutex<SentinelClient>>;

/// One way to the primary; see the module docs.
pub(crate) enum Link {
    Direct(ConnectionManager),
    Sentinel {
        resolver: Resolver,
        cached: Mutex<Option<MultiplexedConnection>>,
        timeout: Duration,
    },
}

/// A connection to run one command on.
#[derive(Clone)]
pub(crate) enum LinkConn {
    Direct(ConnectionManager),
    Multiplexed(MultiplexedConnection),
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// The Sentinel lookup for `target` (None for a fixed server).
pub(crate) fn resolver(target: &RedisTarget) -> Result<Option<Resolver>, StoreError> {
    let RedisTarget::Sentinel {
        sentinels,
        master_name,
    } = target
    else {
        return Ok(None);
    };
    if sentinels.is_empty() {
        return Err(StoreError::Unavailable("no Sentinel address given".into()));
    }
    let urls: Vec<String> = sentinels.iter().map(|a| format!("redis://{a}")).collect();
    let client = SentinelClient::build(urls, master_name.clone(), None, SentinelServerType::Master)
        .map_err(|e| StoreError::Unavailable(format!("bad Sentinel address: {e}")))?;
    Ok(Some(Arc::new(tokio::sync::Mutex::new(client))))
}

impl Link {
    /// A link to `target`; `resolver` is the store's shared Sentinel
    /// lookup (from [`resolver`]). Connects lazily, on first use.
    pub(crate) fn new(
        target: &RedisTarget,
        resolver: Option<&Resolver>,
        timeout: Duration,
    ) -> Result<Link, StoreError> {
        match (target, resolver) {
            (RedisTarget::Url(url), _) => {
                let client = redis::Client::open(url.as_str())
                    .map_err(|e| StoreError::Unavailable(format!("bad Redis URL: {e}")))?;
                let mcfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                let conn =
                    ConnectionManager::new_lazy_with_config(client, mcfg).map_err(unavailable)?;
                Ok(Link::Direct(conn))
            }
            (RedisTarget::Sentinel { .. }, Some(r)) => Ok(Link::Sentinel {
                resolver: r.clone(),
                cached: Mutex::new(None),
                timeout,
            }),
            (RedisTarget::Sentinel { .. }, None) => Err(StoreError::Unavailable(
                "a Sentinel link needs its lookup".into(),
            )),
        }
    }

    /// A connection to the primary: the cached one, or (Sentinel) a new one
    /// to the primary the Sentinels name now.
    pub(crate) async fn get(&self) -> Result<LinkConn, StoreError> {
        let (resolver, cached, timeout) = match self {
            Link::Direct(c) => return Ok(LinkConn::Direct(c.clone())),
            Link::Sentinel {
                resolver,
                cached,
                timeout,
            } => (resolver, cached, *timeout),
        };
        if let Some(c) = cached.lock().expect("link lock").clone() {
            return Ok(LinkConn::Multiplexed(c));
        }
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let found = tokio::time::timeout(timeout * 2, async {
            resolver
                .lock()
                .await
                .get_async_connection_with_config(&cfg)
                .await
        })
        .await;
        let conn = match found {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(unavailable(format!("no primary from Sentinel: {e}"))),
            Err(_) => return Err(unavailable("no primary from Sentinel in time")),
        };
        *cached.lock().expect("link lock") = Some(conn.clone());
        Ok(LinkConn::Multiplexed(conn))
    }

    /// Map a command's error, and after one that says the connection (or
    /// the server's role) is gone, forget the connection so the next call
    /// asks the Sentinels again.
    pub(crate) fn failed(&self, e: RedisError) -> StoreError {
        if let Link::Sentinel { cached, .. } = self {
            if needs_new_primary(&e) {
                cached.lock().expect("link lock").take();
            }
        }
        unavailable(e)
    }
}

/// Errors after which the connection may point at the wrong server.
fn needs_new_primary(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || matches!(e.kind(), ErrorKind::Server(ServerErrorKind::ReadOnly))
}

impl ConnectionLike for LinkConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            LinkConn::Direct(c) => c.req_packed_command(cmd),
            LinkConn::Multiplexed(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            LinkConn::Direct(c) => c.req_packed_commands(pipeline, offset, count),
            LinkConn::Multiplexed(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            LinkConn::Direct(c) => c.get_db(),
            LinkConn::Multiplexed(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_that_mean_the_primary_may_have_moved() {
        let readonly = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ReadOnly),
            "READONLY You can't write against a read only replica.",
        ));
        assert!(needs_new_primary(&readonly));
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(needs_new_primary(&io));
        let script = RedisError::from((ErrorKind::Server(ServerErrorKind::NoScript), "NOSCRIPT"));
        assert!(!needs_new_primary(&script));
    }

    #[test]
    fn a_sentinel_target_needs_an_address() {
        let none = RedisTarget::Sentinel {
            sentinels: vec![],
            master_name: "m".into(),
        };
        assert!(resolver(&none).is_err());
        let one = RedisTarget::Sentinel {
            sentinels: vec!["127.0.0.1:26379".into()],
            master_name: "m".into(),
        };
        assert!(resolver(&one).unwrap().is_some());
        assert!(
            resolver(&RedisTarget::Url("redis://127.0.0.1:1".into()))
                .unwrap()
                .is_none()
        );
    }
}
