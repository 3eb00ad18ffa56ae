//! Store wiring: where this node's sessions live, decided in one place.
//!
//! The handlers only ever see an `Arc<dyn SessionStore>`. Which store is
//! behind it is the experiment the lab runs, so choosing it is a single
//! function, [`wire`], that reads the [`StoreOptions`] and returns a
//! [`StoreWiring`]: the store, plus whatever the store needs from the rest of
//! the node:
//!
//! - a [`Readiness`] flag it may hold back (a replicated store that is still
//!   pulling a snapshot from its peers must not be sent users yet, so both
//!   `/healthz` endpoints answer 503 until it is set);
//! - extra routes for the cluster listener ([`ClusterRoutes`]; the
//!   replication protocol's `/cluster/v1/...` endpoints);
//! - a [`StatusProvider`] that adds its peers to `/admin/v1/status`;
//! - series of its own for `/metrics` ([`MetricsHook`]);
//! - background tasks to stop at shutdown (the expiry reaper), and a
//!   [`ShutdownHook`] to run once the servers have drained.
//!
//! Three stores exist, one per [`StoreOptions`] variant: the memory store
//! (`--replication off`: the `local` and `sticky` modes), the replicated
//! store (`--replication all-to-all`), which is the same memory store
//! wrapped by `sessionlab-replication`: every write also goes to every peer,
//! and the Redis store (`--store redis`, in [`crate::store::redis`]: one
//! store shared by all nodes, with a health flag that makes the node
//! *degraded* while Redis is unreachable). Each gets exactly the options it
//! needs; none checks the configuration again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;

use prometheus_client::registry::Registry;
use sessionlab_replication::{MembershipConfig, Replication, ReplicationConfig, ReplicationHandle};
use sessionlab_session::{MemoryStore, MemoryStoreConfig, SessionStore};

use crate::config::{Limits, MemoryOptions, NodeOptions, ReplicationOptions, StoreOptions};
use crate::error::StartError;

/// How often the memory store removes expired sessions. Reads already treat
/// expired sessions as gone; the reaper frees their memory and counts them.
pub const REAP_INTERVAL: Duration = Duration::from_secs(5);

/// Extra route configuration for the cluster listener.
pub type ClusterRoutes = Arc<dyn Fn(&mut actix_web::web::ServiceConfig) + Send + Sync>;

/// Adds a store's own series to the node's metrics registry (which gives
/// them the `sessionlab_` prefix and the `node` label).
pub type MetricsHook = Arc<dyn Fn(&mut Registry) + Send + Sync>;

/// Run once at shutdown, after both servers have drained.
pub type ShutdownHook = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Whether the node may take traffic. Cheap to clone and to read.
#[derive(Clone, Debug)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Ready from the start (a memory store has nothing to wait for).
    pub fn ready() -> Self {
        Readiness(Arc::new(AtomicBool::new(true)))
    }

    /// Not ready until [`set_ready`](Self::set_ready) is called.
    pub fn not_ready() -> Self {
        Readiness(Arc::new(AtomicBool::new(false)))
    }

    pub fn set_ready(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// One replication peer as `/admin/v1/status` shows it (the shared contract type).
pub use sessionlab_wire::PeerStatus;

/// Extra facts a store contributes to `/admin/v1/status`.
pub trait StatusProvider: Send + Sync + 'static {
    /// The peers this node replicates to (empty when not replicating).
    fn peers(&self) -> Vec<PeerStatus>;

    /// Why the store cannot be reached right now (`None`: it can). A node
    /// whose store is unreachable is *degraded*: see `/healthz` in
    /// [`crate::store::redis`].
    fn store_problem(&self) -> Option<String> {
        None
    }

    /// The replication topology, members and rebalances (nothing when not
    /// replicating).
    fn cluster(&self, _status: &mut sessionlab_wire::NodeStatus) {}
}

/// The store and what it needs from the node; see the module docs.
pub struct StoreWiring {
    pub store: Arc<dyn SessionStore>,
    pub readiness: Readiness,
    pub cluster_routes: Option<ClusterRoutes>,
    pub status: Option<Arc<dyn StatusProvider>>,
    pub metrics: Option<MetricsHook>,
    /// Aborted when the node shuts down.
    pub background: Vec<tokio::task::JoinHandle<()>>,
    pub shutdown: Option<ShutdownHook>,
}

impl StoreWiring {
    /// A plain memory store with its reaper: the `local` and `sticky` modes.
    /// Must be called inside a tokio runtime (it spawns the reaper).
    fn memory(id: &str, memory: &MemoryOptions, limits: &Limits) -> Self {
        let store = Arc::new(MemoryStore::new(memory_config(id, memory, limits)));
        let reaper = store.spawn_reaper(REAP_INTERVAL);
        StoreWiring {
            store,
            readiness: Readiness::ready(),
            cluster_routes: None,
            status: None,
            metrics: None,
            background: vec![reaper],
            shutdown: None,
        }
    }

    /// The memory store replicated all-to-all to `--peer`s: the
    /// `replicated` and `sticky-replicated` modes. The node reports ready
    /// only once replication has caught up (pulled a snapshot from a live
    /// peer), mounts the protocol's routes on the cluster listener, shows
    /// its peers in the status, its `sessionlab_replication_*` series in
    /// the metrics, and stops its driver at shutdown. Must be called inside
    /// a tokio runtime.
    fn replicated(
        id: &str,
        memory: &MemoryOptions,
        replication: &ReplicationOptions,
        limits: &Limits,
        absolute_timeout_ms: u64,
    ) -> Result<Self, StartError> {
        let mut rc = ReplicationConfig::new(
            id.to_owned(),
            replication.peers.clone(),
            replication.secret.as_bytes(),
        );
        rc.protocol.topology = replication.topology;
        if let Some(m) = &replication.membership {
            let mut mc = MembershipConfig::new(m.advertise.clone(), m.seeds.clone());
            mc.discover = m.discover.clone();
            mc.discover_interval = m.discover_interval;
            // A node that joins through others waits for them (it is not a
            // cluster of its own); without seeds or discovery it is the
            // first member and serves at once.
            rc.protocol.wait_for_peers = !m.seeds.is_empty() || m.discover.is_some();
            rc.membership = Some(mc);
        }
        rc.protocol.ack_mode = replication.ack;
        rc.protocol.partition_policy = replication.partition_policy;
        rc.protocol.granularity = replication.granularity;
        rc.protocol.ack_timeout_ms = replication.ack_timeout.as_millis() as u64;
        // A logout of an id this node does not hold tombstones it for a
        // whole session lifetime (the creation time is unknown here).
        rc.protocol.absolute_timeout_ms = absolute_timeout_ms;
        let memory = Arc::new(MemoryStore::new(memory_config(id, memory, limits)));
        let reaper = memory.spawn_reaper(REAP_INTERVAL);
        let (store, handle) = Replication::start(rc, memory)?;

        let readiness = Readiness::not_ready();
        let waiter = {
            let (handle, readiness) = (handle.clone(), readiness.clone());
            tokio::spawn(async move {
                handle.wait_ready().await;
                readiness.set_ready(true);
            })
        };
        let routes = handle.clone();
        let metrics = handle.clone();
        let stop = handle.clone();
        Ok(StoreWiring {
            store,
            readiness,
            cluster_routes: Some(Arc::new(move |c| routes.configure(c))),
            status: Some(Arc::new(ReplicationStatus(handle))),
            metrics: Some(Arc::new(move |r| metrics.register_metrics(r))),
            background: vec![reaper, waiter],
            shutdown: Some(Box::new(move || Box::pin(stop.shutdown()))),
        })
    }
}

/// The replication peers, as `/admin/v1/status` shows them.
struct ReplicationStatus(ReplicationHandle);

impl StatusProvider for ReplicationStatus {
    fn peers(&self) -> Vec<PeerStatus> {
        self.0.peer_status()
    }

    fn cluster(&self, status: &mut sessionlab_wire::NodeStatus) {
        (status.topology, status.backups) = self.0.topology();
        status.membership = self.0.membership_status();
        status.rebalance = self.0.rebalance_status();
    }
}

/// The memory store's limits.
fn memory_config(id: &str, memory: &MemoryOptions, limits: &Limits) -> MemoryStoreConfig {
    MemoryStoreConfig {
        node_id: id.to_owned(),
        max_sessions: memory.max_sessions,
        max_session_bytes: limits.max_session_bytes,
        max_bytes: memory.budget_bytes,
        max_anonymous_bytes: memory.anonymous_budget_bytes,
    }
}

/// Build the session store the options ask for. Must be called inside a
/// tokio runtime (stores spawn their background tasks).
pub async fn wire(cfg: &NodeOptions) -> Result<StoreWiring, StartError> {
    match &cfg.store {
        StoreOptions::Memory(memory) => Ok(StoreWiring::memory(&cfg.id, memory, &cfg.limits)),
        StoreOptions::Replicated {
            memory,
            replication,
        } => StoreWiring::replicated(
            &cfg.id,
            memory,
            replication,
            &cfg.limits,
            cfg.timeouts.absolute_ms(),
        ),
        StoreOptions::Redis(redis) => StoreWiring::redis(&cfg.id, redis, &cfg.limits),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_is_shared_between_clones() {
        let r = Readiness::not_ready();
        let seen = r.clone();
        assert!(!seen.is_ready());
        r.set_ready(true);
        assert!(seen.is_ready());
    }

    #[tokio::test]
    async fn memory_wiring_uses_the_flags() {
        let cfg = NodeOptions::from_args([
            "--max-sessions",
            "7",
            "--max-session-bytes",
            "100",
            "--store-budget",
            "1MiB",
            "--anonymous-budget",
            "64KiB",
        ])
        .unwrap();
        let w = wire(&cfg).await.unwrap();
        assert_eq!(w.store.kind(), "memory");
        assert!(w.readiness.is_ready());
        assert_eq!(w.background.len(), 1);
        let StoreOptions::Memory(memory) = &cfg.store else {
            panic!("not memory: {:?}", cfg.store);
        };
        let mc = memory_config(&cfg.id, memory, &cfg.limits);
        assert_eq!((mc.max_sessions, mc.max_session_bytes), (7, 100));
        assert_eq!((mc.max_bytes, mc.max_anonymous_bytes), (1 << 20, 64 << 10));
    }

    fn replicated_config(peers: &[&str]) -> NodeOptions {
        let mut args = vec![
            "--replication",
            "all-to-all",
            "--cluster-secret",
            "0123456789abcdef0123456789abcdef",
        ];
        for p in peers {
            args.extend(["--peer", p]);
        }
        NodeOptions::from_args(args).unwrap()
    }

    #[tokio::test]
    async fn replicated_wiring_without_peers_is_ready_and_adds_its_parts() {
        let w = wire(&replicated_config(&[])).await.unwrap();
        assert_eq!(w.store.kind(), "replicated");
        assert!(w.cluster_routes.is_some() && w.metrics.is_some() && w.shutdown.is_some());
        assert!(w.status.as_ref().unwrap().peers().is_empty());
        // Alone, it has caught up with nobody at once.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !w.readiness.is_ready() {
            assert!(tokio::time::Instant::now() < deadline, "never ready");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut registry = Registry::default();
        (w.metrics.as_ref().unwrap())(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("replication_ready"), "{text}");
        (w.shutdown.unwrap())().await;
    }

    #[tokio::test]
    async fn replicated_wiring_waits_for_its_peers_and_lists_them() {
        // Port 9 (discard) on loopback: nothing answers there.
        let w = wire(&replicated_config(&[
            "node-2=127.0.0.1:9",
            "node-3=node-3:9081",
        ]))
        .await
        .unwrap();
        assert!(!w.readiness.is_ready(), "ready before any peer was heard");
        let peers = w.status.as_ref().unwrap().peers();
        let shown: Vec<(String, String, bool)> =
            peers.into_iter().map(|p| (p.id, p.addr, p.up)).collect();
        assert_eq!(
            shown,
            [
                ("node-2".into(), "127.0.0.1:9".into(), false),
                ("node-3".into(), "node-3:9081".into(), false)
            ]
        );
        (w.shutdown.unwrap())().await;
    }

    #[test]
    fn invalid_replication_flags_are_refused() {
        // Refused when the flags are parsed: replicated options without a
        // cluster secret cannot be made, so the wiring never sees them.
        let err = NodeOptions::from_args(["--replication", "all-to-all"]).expect_err("refused");
        assert!(err.to_string().contains("--cluster-secret"), "{err}");
    }
}
