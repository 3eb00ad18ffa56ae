//! Backends and the table that holds them.
//!
//! A [`Backend`] is one node the LB can forward to: an opaque id (`node-1`,
//! the value of the sticky cookie, never an address), a socket address, and
//! the live facts the other parts read and write: health state, draining
//! flag, in-flight count, counters, a latency histogram, and its pool of
//! idle keep-alive connections (`pool.rs`).
//!
//! Everything read on the forwarding path is an atomic (`up`, `draining`,
//! `in_flight`, `requests`), so choosing a backend takes no lock. The few
//! mutexes (health history, latency histogram, rate history) are held for a
//! few nanoseconds by one request or the health task, never across an await.
//!
//! Counters that every request bumps are sharded per worker thread
//! (`shard.rs`) and summed when read.
//!
//! The [`Backends`] table is *copy on write*: every request takes the
//! current [`Snapshot`] (each thread keeps its own copy, refreshed when a
//! version number changes, so this touches nothing shared) and works on that
//! immutable list for its whole life, while the admin API builds a new
//! snapshot to add or remove a backend. A request that started before a
//! backend was removed can still finish on it; the next one will not see
//! it. The consistent-hash ring is part of the snapshot, rebuilt on each
//! change, so it always matches the list it indexes.

use std::cell::RefCell;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hdrhistogram::Histogram;
use http::HeaderValue;
use http::uri::Authority;
use parking_lot::{Mutex, RwLock};
use sessionlab_wire::addr::{HostPort, prefer_ipv4};

use crate::backend::shard::Sharded;
use crate::health::{HealthConfig, HealthMachine, Initial, Transition};
use crate::proxy::pool::{Pool, PoolLimits};
use crate::select::maglev::Maglev;
use crate::select::ring::Ring;

/// The sticky cookie the LB inserts (`SLROUTE=<backend-id>`).
pub use sessionlab_wire::ROUTE_COOKIE;
/// Backend ids are cookie values and route suffixes: keep them short and plain.
pub const MAX_ID_LEN: usize = 64;
/// A bound on the table, so the admin API cannot grow it without limit.
pub const MAX_BACKENDS: usize = 1024;
/// Seconds of requests-per-second history kept per backend.
pub const RATE_HISTORY_LEN: usize = 60;

/// A backend as configured: `node-1=127.0.0.1:8081`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSpec {
    pub id: String,
    pub addr: SocketAddr,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("expected ID=HOST:PORT, e.g. node-1=127.0.0.1:8081")]
    Shape,
    #[error("backend id must be 1-{} characters of A-Z a-z 0-9 _ -, got {:?}", MAX_ID_LEN, .0)]
    Id(String),
    #[error("backend address must be IP:PORT or HOST:PORT, got {0:?}")]
    Addr(String),
    #[error("backend host {0:?} does not resolve: {1}")]
    Resolve(String, String),
}

/// `IP:PORT` as is; `HOST:PORT` (e.g. a docker-compose service name) resolved
/// once, here, to its first address (IPv4 preferred). The LB then routes by
/// address: a backend that moves to another address is re-added through the
/// admin API, as a real LB's server entry would be updated.
fn resolve(addr: &str) -> Result<SocketAddr, SpecError> {
    let host = match literal(addr)? {
        Ok(a) => return Ok(a),
        Err(host) => host,
    };
    let answers = std::net::ToSocketAddrs::to_socket_addrs(addr)
        .map_err(|e| SpecError::Resolve(host.clone(), e.to_string()))?;
    pick(host, answers)
}

/// `addr` as an `IP:PORT` to use as is (`Ok`), or the host name it names,
/// to resolve (`Err`).
fn literal(addr: &str) -> Result<Result<SocketAddr, String>, SpecError> {
    match addr.parse::<HostPort>() {
        Ok(HostPort::Socket(a)) => Ok(Ok(a)),
        Ok(HostPort::Host { host, .. }) => Ok(Err(host)),
        Err(_) => Err(SpecError::Addr(addr.to_string())),
    }
}

/// The address to use among `host`'s answers (IPv4 first).
fn pick(host: String, answers: impl Iterator<Item = SocketAddr>) -> Result<SocketAddr, SpecError> {
    let addrs: Vec<SocketAddr> = answers.collect();
    prefer_ipv4(&addrs).ok_or_else(|| SpecError::Resolve(host, "no addresses".into()))
}

/// How long a name given to the admin API may take to resolve.
pub const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// [`resolve`] without blocking the runtime (tokio's resolver, on its
/// blocking pool) and bounded by [`RESOLVE_TIMEOUT`]: for names given at
/// run time (the admin API), where a resolver that does not answer must
/// not stall the accept loop and the health checks sharing the thread.
async fn resolve_async(addr: &str) -> Result<SocketAddr, SpecError> {
    let host = match literal(addr)? {
        Ok(a) => return Ok(a),
        Err(host) => host,
    };
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(addr)).await {
        Ok(Ok(answers)) => pick(host, answers),
        Ok(Err(e)) => Err(SpecError::Resolve(host, e.to_string())),
        Err(_) => Err(SpecError::Resolve(
            host,
            format!("no answer in {RESOLVE_TIMEOUT:?}"),
        )),
    }
}

/// Whether `id` may name a backend: 1 to [`MAX_ID_LEN`] characters of
/// `A-Z a-z 0-9 _ -` (it goes into the route cookie and metric labels).
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl BackendSpec {
    /// A backend `id` at `addr` (`IP:PORT`, or `HOST:PORT` resolved now).
    pub fn new(id: &str, addr: &str) -> Result<Self, SpecError> {
        if !is_valid_id(id) {
            return Err(SpecError::Id(id.to_string()));
        }
        BackendSpec::at(id, resolve(addr)?)
    }

    /// [`BackendSpec::new`] for a running LB: the id checked first, a name
    /// resolved without blocking and within [`RESOLVE_TIMEOUT`].
    pub async fn resolved(id: &str, addr: &str) -> Result<Self, SpecError> {
        if !is_valid_id(id) {
            return Err(SpecError::Id(id.to_string()));
        }
        BackendSpec::at(id, resolve_async(addr).await?)
    }

    /// A backend `id` at an address already resolved.
    pub fn at(id: &str, addr: SocketAddr) -> Result<Self, SpecError> {
        if !is_valid_id(id) {
            return Err(SpecError::Id(id.to_string()));
        }
        Ok(BackendSpec {
            id: id.to_string(),
            addr,
        })
    }
}

impl FromStr for BackendSpec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        let (id, addr) = s.split_once('=').ok_or(SpecError::Shape)?;
        BackendSpec::new(id.trim(), addr.trim())
    }
}

/// One backend and its live state.
pub struct Backend {
    id: Arc<str>,
    addr: SocketAddr,
    authority: Authority,
    /// `SLROUTE=<id>; Path=/; HttpOnly; SameSite=Lax`, built once.
    route_cookie: HeaderValue,
    up: AtomicBool,
    draining: AtomicBool,
    removed: AtomicBool,
    connects: AtomicU64,
    /// Per worker thread: counters, latency and the connection pool
    /// (`shard.rs`; a connection belongs to the runtime that opened it).
    shards: Sharded<Shard>,
    health: Mutex<HealthMachine>,
    rates: Mutex<RateHistory>,
    /// The node's cluster listener, if the add call named it: the LB never
    /// uses it, it only tells readers of the admin API (the dashboard)
    /// where the node answers about itself.
    cluster_addr: OnceLock<SocketAddr>,
}

/// What one worker thread records about a backend.
#[derive(Debug)]
struct Shard {
    requests: AtomicU64,
    in_flight: AtomicUsize,
    errors: AtomicU64,
    /// Response-header latency in microseconds (1 us .. 60 s, 2 digits).
    latency: Mutex<Histogram<u64>>,
    pool: Arc<Pool>,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 2)
        .unwrap_or_else(|_| Histogram::new(2).expect("2 significant digits is valid"))
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("id", &self.id)
            .field("addr", &self.addr)
            .field("up", &self.is_up())
            .field("draining", &self.is_draining())
            .finish()
    }
}

impl Backend {
    #[cfg(test)]
    pub fn new(spec: BackendSpec, health: &HealthConfig) -> Self {
        Self::with_pool(spec, health, PoolLimits::default(), Initial::Up)
    }

    pub fn with_pool(
        spec: BackendSpec,
        health: &HealthConfig,
        limits: PoolLimits,
        initial: Initial,
    ) -> Self {
        // Ids are validated to [A-Za-z0-9_-], and addresses are IP:PORT, so
        // both conversions below cannot fail.
        let authority = Authority::try_from(spec.addr.to_string().as_str())
            .unwrap_or_else(|_| Authority::from_static("invalid"));
        let cookie = format!("{ROUTE_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax", spec.id);
        let route_cookie =
            HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""));
        Backend {
            id: spec.id.into(),
            addr: spec.addr,
            authority,
            route_cookie,
            up: AtomicBool::new(initial == Initial::Up),
            draining: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            connects: AtomicU64::new(0),
            shards: Sharded::new(limits.shards, || Shard {
                requests: AtomicU64::new(0),
                in_flight: AtomicUsize::new(0),
                errors: AtomicU64::new(0),
                latency: Mutex::new(new_histogram()),
                pool: Pool::new(limits),
            }),
            health: Mutex::new(HealthMachine::new(health.rise, health.fall, initial)),
            rates: Mutex::new(RateHistory::default()),
            cluster_addr: OnceLock::new(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn authority(&self) -> &Authority {
        &self.authority
    }
    pub fn route_cookie(&self) -> &HeaderValue {
        &self.route_cookie
    }
    /// The node's cluster listener, as the add call gave it.
    pub fn cluster_addr(&self) -> Option<SocketAddr> {
        self.cluster_addr.get().copied()
    }
    /// Records the node's cluster listener (once; a later call is ignored:
    /// a backend that moves is removed and added again).
    pub fn set_cluster_addr(&self, addr: SocketAddr) {
        let _ = self.cluster_addr.set(addr);
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
    pub fn set_draining(&self, draining: bool) {
        self.draining.store(draining, Ordering::Relaxed);
    }
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Relaxed)
    }
    pub fn mark_removed(&self) {
        self.removed.store(true, Ordering::Relaxed);
    }

    /// May new users be sent here?
    pub fn takes_new_users(&self) -> bool {
        self.is_up() && !self.is_draining()
    }

    pub fn in_flight(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.in_flight.load(Ordering::Relaxed))
            .sum()
    }
    pub fn requests(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.requests.load(Ordering::Relaxed))
            .sum()
    }
    pub fn errors(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.errors.load(Ordering::Relaxed))
            .sum()
    }

    /// Count a request about to be sent on this thread.
    fn begin(&self) -> usize {
        let shard = self.shards.local_index();
        let s = self.shards.get(shard);
        s.requests.fetch_add(1, Ordering::Relaxed);
        s.in_flight.fetch_add(1, Ordering::Relaxed);
        shard
    }

    /// This worker thread's idle keep-alive connections to the backend.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.shards.local().pool
    }

    /// Idle connections over all worker threads.
    pub fn idle_connections(&self) -> usize {
        self.shards.iter().map(|s| s.pool.idle_count()).sum()
    }

    /// Count a new upstream connection (pooling works when this stays low).
    pub fn count_connect(&self) {
        self.connects.fetch_add(1, Ordering::Relaxed);
    }
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }

    pub fn record_error(&self) {
        self.shards.local().errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_latency(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.shards
            .local()
            .latency
            .lock()
            .saturating_record(us.max(1));
    }

    /// Latency quantile (0.0..=1.0) in milliseconds over all threads, or
    /// `None` before any request.
    pub fn latency_ms(&self, quantile: f64) -> Option<f64> {
        let mut merged = new_histogram();
        for shard in self.shards.iter() {
            let _ = merged.add(&*shard.latency.lock());
        }
        (!merged.is_empty()).then(|| merged.value_at_quantile(quantile) as f64 / 1000.0)
    }

    /// The latency histogram (microseconds, since start) over all threads,
    /// for `GET /admin/v1/latency` (the dashboard subtracts two of them for
    /// a window).
    pub fn latency_histogram(&self) -> Histogram<u64> {
        let mut merged = new_histogram();
        for shard in self.shards.iter() {
            let _ = merged.add(&*shard.latency.lock());
        }
        merged
    }

    /// Record an active or passive check result.
    pub fn record_check(&self, ok: bool) -> Transition {
        let mut health = self.health.lock();
        let transition = health.record(ok);
        self.up.store(health.is_up(), Ordering::Relaxed);
        match transition {
            Transition::WentDown => tracing::warn!(backend = %self.id, "backend is down"),
            Transition::WentUp => tracing::info!(backend = %self.id, "backend is up"),
            Transition::Unchanged => {}
        }
        transition
    }

    pub fn health_history(&self) -> Vec<bool> {
        self.health.lock().history()
    }

    /// Take one per-second sample of the request counter.
    pub fn sample_rate(&self) {
        let total = self.requests();
        self.rates.lock().sample(total);
    }

    /// Requests per second over the last samples, oldest first.
    pub fn rate_history(&self) -> Vec<u64> {
        self.rates.lock().values()
    }
}

/// A request in flight to one backend: decrements the in-flight count (on
/// the shard that counted it) when dropped, i.e. when the response body is
/// done. Holds the thread's snapshot, not the backend, so creating one
/// touches no reference count shared with other threads.
pub struct InFlight {
    snapshot: Arc<Snapshot>,
    index: usize,
    shard: usize,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let backend = &self.snapshot.list[self.index];
        backend
            .shards
            .get(self.shard)
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// A fixed ring of per-second request counts.
#[derive(Debug)]
struct RateHistory {
    last_total: Option<u64>,
    samples: [u64; RATE_HISTORY_LEN],
    next: usize,
    len: usize,
}

impl Default for RateHistory {
    fn default() -> Self {
        RateHistory {
            last_total: None,
            samples: [0; RATE_HISTORY_LEN],
            next: 0,
            len: 0,
        }
    }
}

impl RateHistory {
    fn sample(&mut self, total: u64) {
        if let Some(last) = self.last_total {
            self.samples[self.next] = total.saturating_sub(last);
            self.next = (self.next + 1) % RATE_HISTORY_LEN;
            self.len = (self.len + 1).min(RATE_HISTORY_LEN);
        }
        self.last_total = Some(total);
    }

    fn values(&self) -> Vec<u64> {
        let start = (self.next + RATE_HISTORY_LEN - self.len) % RATE_HISTORY_LEN;
        (0..self.len)
            .map(|i| self.samples[(start + i) % RATE_HISTORY_LEN])
            .collect()
    }
}

/// An immutable view of the table, taken once per request.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub list: Vec<Arc<Backend>>,
    pub ring: Ring,
    /// Built on first use (`maglev` only): 256 KiB nobody else needs.
    maglev: OnceLock<Arc<Maglev>>,
    /// Ids of the last [`GONE_REMEMBERED`] backends removed (and not added
    /// again), newest last: `--sticky-strict` refuses their users instead
    /// of sending them to another node.
    gone: Arc<[Box<str>]>,
}

/// How many removed backend ids a snapshot remembers.
pub const GONE_REMEMBERED: usize = 64;

impl Snapshot {
    fn new(list: Vec<Arc<Backend>>, gone: Arc<[Box<str>]>) -> Self {
        let ring = Ring::new(list.iter().map(|b| b.id()));
        Snapshot {
            list,
            ring,
            maglev: OnceLock::new(),
            gone,
        }
    }

    /// The Maglev table of this list (built once per snapshot, on first use).
    pub fn maglev(&self) -> &Maglev {
        self.maglev
            .get_or_init(|| Arc::new(Maglev::new(self.list.iter().map(|b| b.id()))))
    }

    /// Was a backend with this id removed lately (and not added again)?
    pub fn was_removed(&self, id: &[u8]) -> bool {
        self.gone.iter().any(|g| g.as_bytes() == id)
    }

    /// The position of the backend with this id.
    pub fn position(&self, id: &[u8]) -> Option<usize> {
        self.list.iter().position(|b| b.id().as_bytes() == id)
    }

    /// Count a request about to be sent to backend `index`.
    pub fn start_request(self: &Arc<Self>, index: usize) -> InFlight {
        let shard = self.list[index].begin();
        InFlight {
            snapshot: self.clone(),
            index,
            shard,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TableError {
    #[error("a backend with id {0:?} already exists")]
    Duplicate(String),
    #[error("no backend with id {0:?}")]
    NotFound(String),
    #[error("the table is full ({} backends)", MAX_BACKENDS)]
    Full,
}

/// The copy-on-write backend table.
#[derive(Debug)]
pub struct Backends {
    current: RwLock<Arc<Snapshot>>,
    /// Bumped on every change, so threads know when their copy is stale.
    version: AtomicU64,
    /// Tells tables apart in the per-thread cache (tests run several LBs).
    instance: u64,
    health: HealthConfig,
    pool: PoolLimits,
}

thread_local! {
    /// Each thread's own copy of recent snapshots: (table, version, copy).
    static LOCAL_SNAPSHOTS: RefCell<Vec<(u64, u64, Arc<Snapshot>)>> = const { RefCell::new(Vec::new()) };
}

/// How many tables a thread caches snapshots for.
const LOCAL_SNAPSHOT_SLOTS: usize = 8;

impl Backends {
    #[cfg(test)]
    pub fn new(health: HealthConfig) -> Self {
        Self::with_pool_limits(health, PoolLimits::default())
    }

    pub fn with_pool_limits(health: HealthConfig, pool: PoolLimits) -> Self {
        static INSTANCES: AtomicU64 = AtomicU64::new(0);
        Backends {
            current: RwLock::new(Arc::new(Snapshot::new(Vec::new(), Arc::from([])))),
            version: AtomicU64::new(0),
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
            health,
            pool,
        }
    }

    /// The current table, as this thread's own copy: taking it clones an
    /// `Arc` that no other thread touches. A thread copies the shared
    /// snapshot only when the version has changed since its last look.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        let version = self.version.load(Ordering::Acquire);
        LOCAL_SNAPSHOTS.with(|cache| {
            let mut cache = cache.borrow_mut();
            if let Some(entry) = cache.iter_mut().find(|e| e.0 == self.instance) {
                if entry.1 != version {
                    *entry = (self.instance, version, self.copy_current());
                }
                return entry.2.clone();
            }
            if cache.len() >= LOCAL_SNAPSHOT_SLOTS {
                cache.remove(0);
            }
            let copy = self.copy_current();
            cache.push((self.instance, version, copy.clone()));
            copy
        })
    }

    fn copy_current(&self) -> Arc<Snapshot> {
        Arc::new(Snapshot::clone(&self.current.read()))
    }

    fn publish(&self, current: &mut Arc<Snapshot>, next: Snapshot) {
        *current = Arc::new(next);
        self.version.fetch_add(1, Ordering::Release);
    }

    pub fn get(&self, id: &str) -> Option<Arc<Backend>> {
        let snap = self.snapshot();
        snap.position(id.as_bytes()).map(|i| snap.list[i].clone())
    }

    /// Add a backend that serves at once.
    #[cfg(test)]
    pub fn add(&self, spec: BackendSpec) -> Result<Arc<Backend>, TableError> {
        self.add_with(spec, Initial::Up)
    }

    /// Add a backend in the given health state.
    pub fn add_with(
        &self,
        spec: BackendSpec,
        initial: Initial,
    ) -> Result<Arc<Backend>, TableError> {
        let mut current = self.current.write();
        if current.position(spec.id.as_bytes()).is_some() {
            return Err(TableError::Duplicate(spec.id));
        }
        if current.list.len() >= MAX_BACKENDS {
            return Err(TableError::Full);
        }
        let backend = Arc::new(Backend::with_pool(spec, &self.health, self.pool, initial));
        let mut list = current.list.clone();
        list.push(backend.clone());
        let gone = current
            .gone
            .iter()
            .filter(|g| &***g != backend.id())
            .cloned()
            .collect();
        self.publish(&mut current, Snapshot::new(list, gone));
        Ok(backend)
    }

    pub fn remove(&self, id: &str) -> Result<Arc<Backend>, TableError> {
        let mut current = self.current.write();
        let pos = current
            .position(id.as_bytes())
            .ok_or_else(|| TableError::NotFound(id.to_string()))?;
        let mut list = current.list.clone();
        let backend = list.remove(pos);
        backend.mark_removed();
        let skip = (current.gone.len() + 1).saturating_sub(GONE_REMEMBERED);
        let gone = current.gone.iter().skip(skip).cloned();
        let gone = gone.chain([Box::from(backend.id())]).collect();
        self.publish(&mut current, Snapshot::new(list, gone));
        Ok(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_reject_bad_input() {
        let spec: BackendSpec = "node-1=127.0.0.1:8081".parse().unwrap();
        assert_eq!(spec.id, "node-1");
        assert_eq!(spec.addr.port(), 8081);
        assert_eq!("node-1".parse::<BackendSpec>(), Err(SpecError::Shape));
        assert!(matches!(
            "node.1=127.0.0.1:1".parse::<BackendSpec>(),
            Err(SpecError::Id(_))
        ));
        assert!(matches!(
            "node-1=localhost".parse::<BackendSpec>(),
            Err(SpecError::Addr(_))
        ));
        // Host names (docker-compose service names) resolve once.
        let spec: BackendSpec = "node-1=localhost:8081".parse().unwrap();
        assert!(spec.addr.ip().is_loopback());
        assert_eq!(spec.addr.port(), 8081);
        assert!(matches!(
            "node-1=no-such-host.invalid:80".parse::<BackendSpec>(),
            Err(SpecError::Resolve(..))
        ));
        assert!(matches!(
            "node-1=bad host:80".parse::<BackendSpec>(),
            Err(SpecError::Addr(_))
        ));
    }

    #[test]
    fn table_adds_removes_and_rejects_duplicates() {
        let table = Backends::new(HealthConfig::default());
        table.add("a=127.0.0.1:1".parse().unwrap()).unwrap();
        let before = table.snapshot();
        table.add("b=127.0.0.1:2".parse().unwrap()).unwrap();
        assert_eq!(
            table.add("a=127.0.0.1:3".parse().unwrap()).unwrap_err(),
            TableError::Duplicate("a".into())
        );
        assert_eq!(
            table.snapshot().list.len(),
            2,
            "this thread sees the change"
        );
        let removed = table.remove("a").unwrap();
        assert!(removed.is_removed());
        assert_eq!(before.list.len(), 1, "old snapshots are untouched");
        assert_eq!(table.snapshot().list.len(), 1);
        assert_eq!(
            table.remove("a").unwrap_err(),
            TableError::NotFound("a".into())
        );
    }

    #[test]
    fn backend_cookie_and_counters() {
        let b = Arc::new(Backend::new(
            "node-2=127.0.0.1:9".parse().unwrap(),
            &HealthConfig::default(),
        ));
        assert_eq!(
            b.route_cookie(),
            "SLROUTE=node-2; Path=/; HttpOnly; SameSite=Lax"
        );
        let shard = b.begin();
        assert_eq!((b.in_flight(), b.requests()), (1, 1));
        b.shards
            .get(shard)
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
        assert_eq!(b.in_flight(), 0);
        assert_eq!(b.latency_ms(0.5), None);
        b.record_latency(Duration::from_millis(3));
        let p50 = b.latency_ms(0.5).unwrap();
        assert!((2.9..3.1).contains(&p50), "{p50}");
    }

    #[test]
    fn rate_history_is_a_bounded_ring_of_deltas() {
        let mut r = RateHistory::default();
        r.sample(10);
        r.sample(15);
        r.sample(15);
        assert_eq!(r.values(), vec![5, 0]);
        for i in 0..100 {
            r.sample(15 + i);
        }
        let v = r.values();
        assert_eq!(v.len(), RATE_HISTORY_LEN);
        assert_eq!(*v.last().unwrap(), 1);
    }
}
