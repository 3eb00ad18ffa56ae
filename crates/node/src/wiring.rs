//! Store wiring: where this node's sessions live, decided in one place.
//!
//! The handlers only ever see an `Arc<dyn SessionStore>`. Which store is
//! behind it is the experiment the lab runs, so choosing it is a single
//! function, [`wire`], that reads the [`Config`] and returns a
//! [`StoreWiring`]: the store, plus whatever the store needs from the rest of
//! the node:
//!
//! - a [`Readiness`] flag it may hold back (a replicated store that is still
//!   pulling a snapshot from its peers must not be sent users yet, so both
//!   `/healthz` endpoints answer 503 until it is set);
//! - extra routes for the cluster listener ([`ClusterRoutes`]; the
//!   replication protocol's `/cluster/v1/...` endpoints);
//! - a [`StatusProvider`] that adds its peers to `/admin/v1/status`;
//! - background tasks to stop at shutdown (the expiry reaper).
//!
//! Today only the memory store exists; the replicated and Redis stores add a
//! `match` arm here and nothing else in the node changes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sessionlab_session::{MemoryStore, MemoryStoreConfig, SessionStore};

use crate::config::Config;

/// How often the memory store removes expired sessions. Reads already treat
/// expired sessions as gone; the reaper frees their memory and counts them.
pub const REAP_INTERVAL: Duration = Duration::from_secs(5);

/// Extra route configuration for the cluster listener.
pub type ClusterRoutes = Arc<dyn Fn(&mut actix_web::web::ServiceConfig) + Send + Sync>;

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

/// One replication peer as `/admin/v1/status` shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerStatus {
    pub id: String,
    pub addr: String,
    pub up: bool,
    pub queue_depth: u64,
    pub needs_resync: bool,
}

/// Extra facts a store contributes to `/admin/v1/status`.
pub trait StatusProvider: Send + Sync + 'static {
    /// The peers this node replicates to (empty when not replicating).
    fn peers(&self) -> Vec<PeerStatus>;
}

/// The store and what it needs from the node; see the module docs.
pub struct StoreWiring {
    pub store: Arc<dyn SessionStore>,
    pub readiness: Readiness,
    pub cluster_routes: Option<ClusterRoutes>,
    pub status: Option<Arc<dyn StatusProvider>>,
    /// Aborted when the node shuts down.
    pub background: Vec<tokio::task::JoinHandle<()>>,
}

impl StoreWiring {
    /// A plain memory store with its reaper: the `local` and `sticky` modes.
    /// Must be called inside a tokio runtime (it spawns the reaper).
    pub fn memory(cfg: &Config) -> Self {
        let store = Arc::new(MemoryStore::new(memory_config(cfg)));
        let reaper = store.spawn_reaper(REAP_INTERVAL);
        StoreWiring {
            store,
            readiness: Readiness::ready(),
            cluster_routes: None,
            status: None,
            background: vec![reaper],
        }
    }
}

/// The memory store's limits, from the flags.
pub fn memory_config(cfg: &Config) -> MemoryStoreConfig {
    MemoryStoreConfig {
        node_id: cfg.id.clone(),
        max_sessions: usize::try_from(cfg.max_sessions).unwrap_or(usize::MAX),
        max_session_bytes: usize::try_from(cfg.max_session_bytes).unwrap_or(usize::MAX),
    }
}

/// Build the session store the configuration asks for.
pub async fn wire(cfg: &Config) -> Result<StoreWiring, crate::error::StartError> {
    Ok(StoreWiring::memory(cfg))
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
        let cfg = Config {
            max_sessions: 7,
            max_session_bytes: 100,
            ..Config::default()
        };
        let w = wire(&cfg).await.unwrap();
        assert_eq!(w.store.kind(), "memory");
        assert!(w.readiness.is_ready());
        assert_eq!(w.background.len(), 1);
        let mc = memory_config(&cfg);
        assert_eq!((mc.max_sessions, mc.max_session_bytes), (7, 100));
    }
}
