//! The runtime: a replica wired to the clock, the network and the node.
//!
//! The protocol core ([`Replica`]) only computes. This module gives it a
//! life inside a node, and stays thin on purpose:
//!
//! - **Time**: every call passes [`clock::now_ms`], and a driver task calls
//!   [`Replica::tick`] every `tick` (10 ms by default).
//! - **Calls in**: the node's handlers (through [`ReplicatedStore`]) and the
//!   cluster listener's handlers ([`crate::http`]) call the replica under a
//!   mutex; each call is short (microseconds), so a plain lock is fine.
//! - **Outputs**: after each call the outputs are dispatched at once: events
//!   to the log, the [`Metrics`] and the [`EventLog`], finished acks to the
//!   waiting `put`, and batches to the driver, which sends each one as an
//!   HTTP request ([`crate::transport`]). The replica allows one batch in
//!   flight per peer, so the driver's channel never holds more than one per
//!   peer.
//!
//! Sending from the driver (never from the handler that produced the batch)
//! keeps every pooled connection on one runtime, the node's, whatever
//! thread the request that caused it ran on.
//!
//! The entry point for the node is [`Replication::start`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use prometheus_client::registry::Registry;
use sessionlab_session::ReplicationAck;
use sessionlab_session::{MemoryStore, clock};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::PeerAddr;
use crate::auth::{self, ReplayCache};
use crate::events::EventLog;
use crate::faults::{FaultSet, Faults};
use crate::membership::{self, Link, MembershipConfig};
use crate::metrics::Metrics;
use crate::store::ReplicatedStore;
use crate::transport;
use sessionlab_replication_core::{Batch, ConfigError, Event, Output, ProtocolConfig, Replica};

/// How a node replicates; see [`ReplicationConfig::new`] for the defaults.
#[derive(Clone)]
pub struct ReplicationConfig {
    /// This node's id (`--id`); must match the memory store's node id.
    pub node_id: String,
    /// The other nodes and their cluster listeners (`--peer id=addr`).
    pub peers: Vec<(String, PeerAddr)>,
    /// The cluster secret (`--cluster-secret`), at least 32 bytes.
    pub secret: Vec<u8>,
    /// Timers, limits and the ack mode (`--replication-ack`).
    pub protocol: ProtocolConfig,
    /// How often the replica is ticked.
    pub tick: Duration,
    /// Largest request body the cluster endpoints accept (413 beyond).
    pub max_body_bytes: usize,
    /// Coalescing under load (see `transport.rs`): a batch of at least
    /// this many messages is held back [`coalesce_delay`](Self::coalesce_delay)
    /// before it is sent, so the next batch to that peer carries more. 0
    /// turns it off.
    pub coalesce_from: usize,
    pub coalesce_delay: Duration,
    /// Members learnt at run time (SWIM; `--join`, `--discover`), or `None`
    /// for the static `--peer` list only. See [`crate::membership`].
    pub membership: Option<MembershipConfig>,
}

impl ReplicationConfig {
    /// Defaults: [`ProtocolConfig::default`], a 10 ms tick, 16 MiB bodies.
    pub fn new(
        node_id: impl Into<String>,
        peers: Vec<(String, PeerAddr)>,
        secret: impl Into<Vec<u8>>,
    ) -> Self {
        ReplicationConfig {
            node_id: node_id.into(),
            peers,
            secret: secret.into(),
            protocol: ProtocolConfig::default(),
            tick: Duration::from_millis(10),
            max_body_bytes: 4 * 1024 * 1024,
            coalesce_from: 8,
            coalesce_delay: Duration::from_millis(1),
            membership: None,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.secret.len() < auth::MIN_SECRET_LEN {
            return bad(format!(
                "the cluster secret must be at least {} bytes (got {})",
                auth::MIN_SECRET_LEN,
                self.secret.len()
            ));
        }
        if self.node_id.is_empty() {
            return bad("the node id must not be empty".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for (id, _) in &self.peers {
            if *id == self.node_id {
                return bad(format!("peer {id} is this node itself"));
            }
            if !seen.insert(id) {
                return bad(format!("peer {id} is given twice"));
            }
        }
        if self.tick.is_zero()
            || self.tick > Duration::from_millis(self.protocol.heartbeat_interval_ms)
        {
            return bad(
                "the tick must be positive and no longer than the heartbeat interval".into(),
            );
        }
        if self.max_body_bytes
            < self
                .protocol
                .batch_max_bytes
                .max(self.protocol.snapshot_page_bytes)
                * 2
        {
            return bad("max_body_bytes must hold twice the largest batch or snapshot page".into());
        }
        self.protocol.validate()
    }
}

/// Never print the secret.
impl fmt::Debug for ReplicationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicationConfig")
            .field("node_id", &self.node_id)
            .field("peers", &self.peers)
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .field("protocol", &self.protocol)
            .field("tick", &self.tick)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("coalesce_from", &self.coalesce_from)
            .field("coalesce_delay", &self.coalesce_delay)
            .field("membership", &self.membership)
            .finish()
    }
}

/// Why replication could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the memory store stamps versions as {store}, but this node is {node}")]
    NodeMismatch { store: String, node: String },
    #[error("could not build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// One peer as `/admin/v1/status` shows it (the shared contract type).
pub use sessionlab_wire::PeerStatus;

/// State shared by the store, the handlers and the driver.
pub(crate) struct Shared {
    pub node_id: String,
    pub secret: Vec<u8>,
    pub store: Arc<MemoryStore>,
    pub replica: Mutex<Replica>,
    /// Every peer's cluster listener: the configured ones, and the members
    /// membership has learnt since.
    pub addrs: RwLock<BTreeMap<String, PeerAddr>>,
    /// Each peer's batch URL, parsed once per address (not per request).
    pub batch_urls: RwLock<BTreeMap<String, reqwest::Url>>,
    /// The HTTP client of every outgoing cluster request.
    pub client: reqwest::Client,
    /// Run-time membership, when configured.
    pub membership: Option<Link>,
    pub faults: Faults,
    pub metrics: Metrics,
    /// The last events, for the dashboard ([`crate::events`]).
    pub events: EventLog,
    pub replays: ReplayCache,
    pub max_body_bytes: usize,
    pub ack_timeout: Duration,
    /// `--partition-policy consistent`: a write not acknowledged in time is
    /// refused (see [`ReplicatedStore`]).
    pub consistent: bool,
    /// [`ReplicationConfig::coalesce_from`] and `coalesce_delay`.
    pub coalesce: Option<(usize, Duration)>,
    /// Remote fetches in flight, at most [`crate::fetch::MAX_IN_FLIGHT`].
    pub fetches: tokio::sync::Semaphore,
    waiters: Mutex<HashMap<u64, oneshot::Sender<ReplicationAck>>>,
    outbox: mpsc::Sender<Batch>,
    ready: watch::Sender<bool>,
}

impl Shared {
    /// Where peer `id` listens (a new member, or a member that moved).
    pub fn set_addr(&self, id: &str, addr: PeerAddr) {
        if self.addrs.read().get(id) == Some(&addr) {
            return;
        }
        match batch_url(&addr) {
            Ok(url) => {
                self.batch_urls.write().insert(id.to_owned(), url);
                self.addrs.write().insert(id.to_owned(), addr);
            }
            Err(e) => {
                tracing::warn!(peer = id, %addr, error = %e, "a peer address that makes no URL")
            }
        }
    }

    /// Call the replica with the current time, then dispatch its outputs.
    pub fn with_replica<T>(&self, f: impl FnOnce(&mut Replica, u64) -> T) -> T {
        let (value, outputs) = {
            let mut r = self.replica.lock();
            let value = f(&mut r, clock::now_ms());
            (value, r.take_outputs())
        };
        self.dispatch(outputs);
        value
    }

    /// Wait for write `write` to be acked; register under the replica lock
    /// (see [`ReplicatedStore`]) so the result cannot be missed.
    pub fn register_waiter(&self, write: u64) -> oneshot::Receiver<ReplicationAck> {
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().insert(write, tx);
        rx
    }

    pub fn forget_waiter(&self, write: u64) {
        self.waiters.lock().remove(&write);
    }

    fn dispatch(&self, outputs: Vec<Output>) {
        for out in outputs {
            match out {
                Output::Send(batch) => {
                    if let Err(e) = self.outbox.try_send(batch) {
                        // Cannot happen while the driver runs (one batch per
                        // peer in flight). The replica treats a batch that
                        // never reports back as lost after its timeout.
                        tracing::warn!(node = %self.node_id, error = %e, "replication driver is not taking batches");
                    }
                }
                Output::AckDone { write, ack } => {
                    self.metrics.on_ack(&ack);
                    if let Some(tx) = self.waiters.lock().remove(&write) {
                        let _ = tx.send(ack);
                    }
                }
                Output::Event(e) => {
                    self.metrics.on_event(&e);
                    log_event(&e);
                    if matches!(e, Event::Ready { .. }) {
                        self.ready.send_replace(true);
                    }
                    self.events.push(e);
                }
            }
        }
    }
}

/// `http://ADDR/cluster/v1/batch`.
fn batch_url(addr: &PeerAddr) -> Result<reqwest::Url, String> {
    reqwest::Url::parse(&format!("http://{addr}{}", transport::BATCH_PATH))
        .map_err(|e| e.to_string())
}

/// One line per replication event: data at debug, the rest at info/warn.
fn log_event(e: &Event) {
    match e {
        Event::Applied { .. } => tracing::debug!("{e}"),
        Event::ResyncNeeded { .. } | Event::PeerDown { .. } | Event::PeerRestarted { .. } => {
            tracing::warn!("{e}")
        }
        Event::Ready {
            caught_up: false, ..
        } => tracing::warn!("{e}"),
        Event::SnapshotServed { .. } | Event::SnapshotReceived { .. } => tracing::debug!("{e}"),
        _ => tracing::info!("{e}"),
    }
}

/// The node's handle on its running replication; cheap to clone.
#[derive(Clone)]
pub struct ReplicationHandle {
    shared: Arc<Shared>,
    ready: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    driver: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

/// Starting replication: see [`Replication::start`].
pub struct Replication;

impl Replication {
    /// Start replicating `store` (the node's memory store) with the peers in
    /// `cfg`. Spawns the driver task, so call it inside the node's tokio
    /// runtime. Returns the store for the node's handlers and the handle
    /// for the rest of the node (readiness, status, routes, metrics).
    pub fn start(
        cfg: ReplicationConfig,
        store: Arc<MemoryStore>,
    ) -> Result<(Arc<ReplicatedStore>, ReplicationHandle), StartError> {
        cfg.validate()?;
        if store.config().node_id != cfg.node_id {
            return Err(StartError::NodeMismatch {
                store: store.config().node_id.clone(),
                node: cfg.node_id.clone(),
            });
        }
        let timeout = Duration::from_millis(cfg.protocol.request_timeout_ms);
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(2)
            .tcp_nodelay(true)
            // Peers speak plain HTTP: no certificate roots to load. Without
            // this, reqwest's rustls would look for the system's roots and
            // fail to build where there are none (a minimal container).
            .tls_certs_only(std::iter::empty())
            .build()?;
        let peer_ids: Vec<String> = cfg.peers.iter().map(|(id, _)| id.clone()).collect();
        let batch_urls = cfg
            .peers
            .iter()
            .map(|(id, addr)| {
                batch_url(addr)
                    .map(|url| (id.clone(), url))
                    .map_err(|e| ConfigError::Invalid(format!("peer {id} at {addr}: {e}")))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let (link, swim_outbox) = match &cfg.membership {
            Some(m) => {
                let (link, outbox) = Link::new(&cfg.node_id, m);
                (Some(link), Some(outbox))
            }
            None => (None, None),
        };
        let mut replica = Replica::new(
            cfg.node_id.clone(),
            peer_ids.clone(),
            cfg.protocol.clone(),
            store.clone(),
            clock::now_ms(),
        );
        replica.set_lag_clock(clock::now_us);
        // One batch in flight per peer; members may join at run time, up
        // to the membership limit (the channel allocates as it fills).
        let most_peers = match cfg.membership {
            Some(_) => sessionlab_replication_core::membership::MAX_MEMBERS,
            None => cfg.peers.len(),
        };
        let (outbox, batches) = mpsc::channel(2 * most_peers + 2);
        let (ready_tx, ready_rx) = watch::channel(replica.is_ready());
        let shared = Arc::new(Shared {
            node_id: cfg.node_id.clone(),
            secret: cfg.secret.clone(),
            store,
            replica: Mutex::new(replica),
            addrs: RwLock::new(cfg.peers.iter().cloned().collect()),
            batch_urls: RwLock::new(batch_urls),
            client: client.clone(),
            membership: link,
            faults: Faults::new(peer_ids),
            metrics: Metrics::default(),
            events: EventLog::default(),
            replays: ReplayCache::default(),
            max_body_bytes: cfg.max_body_bytes,
            ack_timeout: Duration::from_millis(cfg.protocol.ack_timeout_ms),
            consistent: cfg.protocol.partition_policy
                == sessionlab_replication_core::PartitionPolicy::Consistent,
            coalesce: (cfg.coalesce_from > 0 && !cfg.coalesce_delay.is_zero())
                .then_some((cfg.coalesce_from, cfg.coalesce_delay)),
            fetches: tokio::sync::Semaphore::new(crate::fetch::MAX_IN_FLIGHT),
            waiters: Mutex::new(HashMap::new()),
            outbox,
            ready: ready_tx,
        });
        // Events from construction (ready at once without peers).
        shared.with_replica(|_, _| ());
        let (stop, stopped) = watch::channel(false);
        if let Some(outbox) = swim_outbox {
            tokio::spawn(membership::drive(
                shared.clone(),
                outbox,
                client.clone(),
                stopped.clone(),
            ));
        }
        let driver = tokio::spawn(drive(shared.clone(), batches, client, cfg.tick, stopped));
        tracing::info!(node = %cfg.node_id, peers = cfg.peers.len(), topology = cfg.protocol.topology.as_str(), ack = %cfg.protocol.ack_mode, policy = %cfg.protocol.partition_policy, membership = cfg.membership.is_some(), "replication started");
        let handle = ReplicationHandle {
            shared: shared.clone(),
            ready: ready_rx,
            stop,
            driver: Arc::new(Mutex::new(Some(driver))),
        };
        Ok((Arc::new(ReplicatedStore::new(shared)), handle))
    }
}

/// A timer for a driver's `select!`: the first tick at once, and a tick
/// missed while the driver was busy is skipped, not fired late in a burst
/// (a protocol timer that fires twice at once only does the work twice).
pub(crate) fn skipping_interval(period: Duration) -> tokio::time::Interval {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    ticks
}

/// The driver: ticks the replica and sends its batches until stopped.
async fn drive(
    shared: Arc<Shared>,
    mut batches: mpsc::Receiver<Batch>,
    client: reqwest::Client,
    tick: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = skipping_interval(tick);
    let mut gauges = skipping_interval(tick * 10);
    let mut sends = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = ticker.tick() => shared.with_replica(|r, now| r.tick(now)),
            _ = gauges.tick() => {
                let (peers, ready, tombstones, evicted) = {
                    let r = shared.replica.lock();
                    let t = r.tombstones();
                    (r.peers(), r.is_ready(), t.len(), t.evicted_total())
                };
                shared.metrics.set_gauges(&peers, ready, tombstones, evicted);
            }
            Some(batch) = batches.recv() => {
                sends.spawn(transport::send(shared.clone(), client.clone(), batch));
            }
            Some(_) = sends.join_next(), if !sends.is_empty() => {}
        }
    }
    flush(&shared, &mut batches, &client, &mut sends).await;
    sends.abort_all();
    tracing::info!(node = %shared.node_id, "replication stopped");
}

/// How long a stopping node (backup topology) may spend handing the copies
/// it holds to the sessions' owners.
pub const LEAVE_LIMIT: Duration = Duration::from_secs(5);

/// A graceful stop in the backup topology: the node owns nothing from now
/// on, and every copy it holds goes to its owners before it stops, so that
/// two nodes stopping one after the other lose nothing
/// ([`Replica::leave`]). The drivers keep running meanwhile: the handoff
/// is sent by ticks and confirmed by acks.
async fn hand_over(shared: &Shared) {
    let started = shared.with_replica(|r, now| r.peers().iter().any(|p| p.up) && r.leave(now));
    if !started {
        return;
    }
    let deadline = tokio::time::Instant::now() + LEAVE_LIMIT;
    while shared.replica.lock().rebalance_view().in_progress {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(node = %shared.node_id, "stopping before every copy was handed over (leave limit reached)");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::info!(node = %shared.node_id, "every copy handed to its owners");
}

/// How long a stopping node may spend handing its queued changes to the
/// live peers.
pub const FLUSH_LIMIT: Duration = Duration::from_secs(2);

/// A graceful stop's last duty. The node stops taking requests before it
/// stops replication, so nothing new is written; but the last writes may
/// still sit in the peers' queues (an answer does not wait for them unless
/// `--replication-ack` says so). Dropping them would lose acknowledged
/// writes at every rolling restart: the restarted node comes back empty and
/// catches up from a peer that never got them. So keep sending
/// (without ticking: no new heartbeats, only the queued data and the
/// batches its results release) until no live peer has data queued and no
/// batch is in flight, or
/// [`FLUSH_LIMIT`] has passed (a peer that does not answer must not hold
/// the stop up for long; a SIGKILL skips all this, as it would anywhere).
async fn flush(
    shared: &Arc<Shared>,
    batches: &mut mpsc::Receiver<Batch>,
    client: &reqwest::Client,
    sends: &mut JoinSet<()>,
) {
    let deadline = tokio::time::sleep(FLUSH_LIMIT);
    tokio::pin!(deadline);
    loop {
        let queued: usize = {
            let r = shared.replica.lock();
            r.peers()
                .iter()
                .filter(|p| p.up)
                .map(|p| p.queue_depth)
                .sum()
        };
        if queued == 0 && sends.is_empty() && batches.is_empty() {
            return;
        }
        tokio::select! {
            _ = &mut deadline => {
                tracing::warn!(
                    node = %shared.node_id,
                    queued,
                    "stopping with changes not handed to the peers (flush limit reached)"
                );
                return;
            }
            Some(batch) = batches.recv() => {
                sends.spawn(transport::send(shared.clone(), client.clone(), batch));
            }
            Some(_) = sends.join_next(), if !sends.is_empty() => {}
        }
    }
}

impl ReplicationHandle {
    /// Wait until the node has caught up after starting (bounded by the
    /// join timeout).
    pub async fn wait_ready(&self) {
        let mut rx = self.ready.clone();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// The peers for `/admin/v1/status`.
    pub fn peer_status(&self) -> Vec<PeerStatus> {
        let views = self.shared.replica.lock().peers();
        let addrs = self.shared.addrs.read();
        views
            .into_iter()
            .map(|p| PeerStatus {
                addr: addrs.get(&p.id).map(|a| a.to_string()).unwrap_or_default(),
                id: p.id,
                up: p.up,
                queue_depth: p.queue_depth as u64,
                needs_resync: p.needs_resync,
            })
            .collect()
    }

    /// The membership view (`None` with static `--peer`s only).
    pub fn membership_status(&self) -> Option<sessionlab_wire::MembershipStatus> {
        self.shared.membership.as_ref().map(Link::status)
    }

    /// The topology's name (`all-to-all`, `backup`) and its K.
    pub fn topology(&self) -> (String, u32) {
        let t = self.shared.replica.lock().topology();
        (t.as_str().to_owned(), t.backups() as u32)
    }

    /// The rebalances after membership changes (backup topology).
    pub fn rebalance_status(&self) -> Option<sessionlab_wire::RebalanceStatus> {
        let r = self.shared.replica.lock();
        if !r.topology().is_backup() {
            return None;
        }
        let v = r.rebalance_view();
        Some(sessionlab_wire::RebalanceStatus {
            in_progress: v.in_progress,
            sessions_moved: v.sessions_moved,
            bytes_moved: v.bytes_moved,
            last_took_ms: v.last_took_ms,
            passes: v.passes,
        })
    }

    /// Mount the cluster endpoints (`/cluster/v1/...`, `/admin/v1/faults`)
    /// on the cluster listener's app. See `http.rs`.
    pub fn configure(&self, cfg: &mut actix_web::web::ServiceConfig) {
        crate::http::configure(cfg, self.shared.clone());
    }

    /// Add the replication metrics to the node's registry.
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.shared.metrics.register(registry);
    }

    pub fn faults(&self) -> FaultSet {
        self.shared.faults.get()
    }

    /// Requests refused for `reason` (`unsigned`, `forged`, `stale`,
    /// `replay`, `malformed`, `bad_json`, `oversized`, ...).
    pub fn rejected_count(&self, reason: &'static str) -> u64 {
        self.shared.metrics.rejected_count(reason)
    }

    /// Leave the cluster and stop the drivers (no more ticks or sends);
    /// the store keeps working locally. Await the returned future: in the
    /// backup topology the node first hands every copy it holds to the
    /// session's owners (bounded by [`LEAVE_LIMIT`]), then tells the
    /// members it leaves (with run-time membership), then stops and
    /// flushes (see [`FLUSH_LIMIT`]). Idempotent.
    pub fn shutdown(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let driver = self.driver.lock().take();
        let (shared, stop) = (self.shared.clone(), self.stop.clone());
        async move {
            let Some(d) = driver else { return };
            hand_over(&shared).await;
            membership::leave(&shared, &shared.client).await;
            stop.send_replace(true);
            let _ = d.await;
        }
    }
}
