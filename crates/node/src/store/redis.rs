//! The `redis` store wiring: every node keeps its sessions in one shared
//! Redis (`--store redis`).
//!
//! The store itself is [`RedisStore`] in `sessionlab-session`; this file is
//! what the *node* adds around it:
//!
//! - **Health.** A background task pings Redis every
//!   [`HEALTH_INTERVAL`] and keeps the answer in a flag, so `/healthz` and
//!   `/admin/v1/status` never wait on Redis themselves. While Redis is
//!   unreachable the node is *degraded*: requests that need a session get a
//!   503 JSON error (from the store call itself), everything else still
//!   works, and the connection manager reconnects by itself when Redis
//!   returns.
//! - **Why degraded is still 200 on `/healthz`.** The load balancer uses
//!   `/healthz` to decide which nodes to send users to. Redis is shared: when
//!   it is down it is down for *every* node, so taking nodes out of the
//!   balancer cannot route anyone to a node that works; it would only turn
//!   "requests that need a session fail with a clear 503 JSON from the node"
//!   into "every request fails with the balancer's own 503", including pages
//!   that need no session, and it would add the balancer's re-check delay to
//!   the recovery. So `/healthz` stays 200 and says
//!   `{"status":"degraded","store":"redis unreachable"}`; the degradation is
//!   for people and monitoring (`/admin/v1/status` has `store_ok: false`,
//!   `/metrics` has `sessionlab_redis_up 0`). A node that cannot serve for
//!   reasons of its own (not ready yet) still answers 503.
//! - **Failover.** With `--redis-sentinel` the node finds the primary
//!   through Sentinel and follows a failover by itself (`redis_link.rs` in
//!   `sessionlab-session`); while no primary answers the node is degraded
//!   exactly as above.
//! - **Metrics.** `sessionlab_redis_up`, `sessionlab_redis_conflicts_total`
//!   (compare-and-set writes refused because another writer got there
//!   first), `sessionlab_redis_unreplicated_writes_total` (with
//!   `--redis-wait`: writes fewer replicas confirmed than asked); the retries they cause are counted by the node as
//!   `sessionlab_session_write_retries_total` (`session/cas.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use sessionlab_session::{RedisStore, RedisStoreConfig};
use sessionlab_wire::metrics::node as names;

use crate::config::{InvalidConfig, Limits, RedisOptions};
use crate::error::StartError;
use crate::store::wiring::{PeerStatus, Readiness, StatusProvider, StoreWiring};

/// How often the node pings Redis for its health flag.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(1);

/// Keys of this lab in a Redis that others may share.
pub const KEY_PREFIX: &str = "sessionlab:";

/// The Redis health flag, shared by the pinger, the status and the metrics.
struct RedisHealth {
    store: Arc<RedisStore>,
    up: AtomicBool,
}

impl StatusProvider for RedisHealth {
    fn peers(&self) -> Vec<PeerStatus> {
        Vec::new()
    }

    fn store_problem(&self) -> Option<String> {
        (!self.up.load(Ordering::Acquire)).then(|| "redis unreachable".to_owned())
    }
}

impl Collector for RedisHealth {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let up = ConstGauge::new(i64::from(self.up.load(Ordering::Acquire)));
        let help = "1 while Redis answers this node's pings, 0 while it does not";
        encode_one(&mut enc, names::REDIS_UP, help, up)?;
        // The store's own counters, read as they stand at the scrape.
        for (name, help, total) in [
            (
                names::REDIS_CONFLICTS,
                "Compare-and-set writes refused because the session changed since it was read",
                self.store.conflicts_total(),
            ),
            (
                names::REDIS_UNREPLICATED,
                "Session writes and logouts fewer replicas confirmed than --redis-wait asked, \
                 within its timeout",
                self.store.unreplicated_total(),
            ),
        ] {
            encode_one(&mut enc, name, help, ConstCounter::new(total))?;
        }
        Ok(())
    }
}

/// One metric without labels, read at scrape time, with its name and help.
fn encode_one<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: M,
) -> Result<(), std::fmt::Error> {
    let m = enc.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(m)
}

impl std::fmt::Debug for RedisHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHealth")
            .field("up", &self.up)
            .field("cas", &self.store.config().cas)
            .finish_non_exhaustive()
    }
}

/// The store's configuration from the options.
fn redis_config(id: &str, redis: &RedisOptions, limits: &Limits) -> RedisStoreConfig {
    RedisStoreConfig {
        target: redis.target.clone(),
        wait: redis.wait,
        key_prefix: KEY_PREFIX.to_owned(),
        node_id: id.to_owned(),
        max_session_bytes: limits.max_session_bytes,
        cas: redis.cas,
        timeout: redis.timeout,
    }
}

impl StoreWiring {
    /// Sessions in the Redis at `--redis-url`: the `redis` mode. The node
    /// starts (and is ready) whether or not Redis answers yet; see the
    /// module docs for health. Must be called inside a tokio runtime.
    pub(super) fn redis(
        id: &str,
        redis: &RedisOptions,
        limits: &Limits,
    ) -> Result<Self, StartError> {
        let store = RedisStore::connect(redis_config(id, redis, limits)).map_err(|e| {
            let flag = match redis.target.is_sentinel() {
                true => "--redis-sentinel",
                false => "--redis-url",
            };
            InvalidConfig(format!("{flag}: {e}"))
        })?;
        let store = Arc::new(store);
        let health = Arc::new(RedisHealth {
            store: store.clone(),
            up: AtomicBool::new(false),
        });
        let pinger = {
            let health = health.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(HEALTH_INTERVAL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let up = health.store.ping().await;
                    let was = health.up.swap(up, Ordering::AcqRel);
                    if was != up {
                        if up {
                            tracing::info!("redis is reachable: sessions are served again");
                        } else {
                            tracing::warn!(
                                "redis is unreachable: requests that need a session get 503 until it returns"
                            );
                        }
                    }
                }
            })
        };
        let collector = health.clone();
        Ok(StoreWiring {
            store,
            readiness: Readiness::ready(),
            cluster_routes: None,
            status: Some(health),
            metrics: Some(Arc::new(move |r| {
                r.register_collector(Box::new(CollectorRef(collector.clone())));
            })),
            background: vec![pinger],
            shutdown: None,
        })
    }
}

/// The registry wants an owned collector; this shares the health flag.
#[derive(Debug)]
struct CollectorRef(Arc<RedisHealth>);

impl Collector for CollectorRef {
    fn encode(&self, enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(enc)
    }
}
