//! Health: is a backend up or down, and how do we decide?
//!
//! A single failed check proves little: a GC pause, one dropped SYN, a node
//! busy for a moment. A single good check proves little too: a crashing node
//! may answer once between restarts. So, like HAProxy's `rise`/`fall` and
//! pingora's `consecutive_success`/`consecutive_failure`, the state flips
//! only after a run of *agreeing* results:
//!
//! - an **up** backend goes down after `fall` consecutive failures (default 3);
//! - a **down** backend comes back after `rise` consecutive successes (default 2);
//! - any result that agrees with the current state resets the run.
//!
//! [`HealthMachine`] is that rule and nothing else: no clock, no I/O, so it
//! is tested exhaustively with plain values.
//!
//! Results come from two places:
//!
//! - **active** checks: [`run_active_checks`] asks each backend's
//!   `/healthz` every `interval` (default 1 s), giving up after `timeout`
//!   (default 500 ms). The node answers 503 while it is starting, so a node
//!   that restarts rejoins only when it is ready.
//! - **passive** checks: real traffic that fails to connect or times out
//!   reports a failure too (see `proxy.rs`). Under load this notices a dead
//!   backend within a few requests instead of `fall × interval`. Passive
//!   *successes* are not counted: only the active check may bring a backend
//!   back, since a down backend gets no traffic to succeed with.
//!
//! The checker loop is generic over a [`Probe`] so its timing (interval,
//! timeout, thresholds) can be tested on tokio's paused clock with a scripted
//! probe, while production uses [`HttpProbe`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::Empty;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use sessionlab_shutdown::Every;
use tokio::sync::watch;
use tokio::time::timeout;

use crate::backend::Backend;

/// Thresholds and timing of the health checks.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            path: "/healthz".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            rise: 2,
            fall: 3,
        }
    }
}

/// How many recent check results a backend remembers for the admin API.
pub const HISTORY_LEN: usize = 32;

/// The rise/fall state machine plus a short history of results.
#[derive(Debug, Clone)]
pub struct HealthMachine {
    up: bool,
    /// Consecutive results that disagree with `up`.
    streak: u32,
    rise: u32,
    fall: u32,
    /// The last results, newest in bit 0; `history_len` of them are valid.
    history: u64,
    history_len: u8,
}

/// The state a backend starts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initial {
    /// Serves at once; the first `fall` failed checks take it out. The
    /// backends given at start-up (as in HAProxy): the operator named them,
    /// and a cold LB should not refuse traffic for `rise` intervals.
    Up,
    /// Takes traffic only after `rise` good checks. A backend added at run
    /// time through the admin API: an address nobody has checked yet must
    /// not receive real users' cookies and passwords.
    Down,
}

/// What a recorded result did to the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Unchanged,
    WentDown,
    WentUp,
}

impl HealthMachine {
    /// A new machine in the `initial` state (see [`Initial`]).
    pub fn new(rise: u32, fall: u32, initial: Initial) -> Self {
        HealthMachine {
            up: initial == Initial::Up,
            streak: 0,
            rise: rise.max(1),
            fall: fall.max(1),
            history: 0,
            history_len: 0,
        }
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Record one check result; returns whether the state flipped.
    pub fn record(&mut self, ok: bool) -> Transition {
        self.history = (self.history << 1) | u64::from(ok);
        self.history_len = (self.history_len + 1).min(HISTORY_LEN as u8);
        if ok == self.up {
            self.streak = 0;
            return Transition::Unchanged;
        }
        self.streak += 1;
        let threshold = if self.up { self.fall } else { self.rise };
        if self.streak < threshold {
            return Transition::Unchanged;
        }
        self.up = ok;
        self.streak = 0;
        if ok {
            Transition::WentUp
        } else {
            Transition::WentDown
        }
    }

    /// Recent results, oldest first.
    pub fn history(&self) -> Vec<bool> {
        (0..self.history_len)
            .rev()
            .map(|i| self.history >> i & 1 == 1)
            .collect()
    }
}

/// One health check of one backend: `true` means healthy.
pub trait Probe: Send + Sync + 'static {
    fn check(&self, backend: &Backend) -> impl Future<Output = bool> + Send;
}

/// The production probe: `GET <health path>` on a fresh connection; any
/// 2xx or 3xx is healthy (HAProxy's `httpchk` rule).
#[derive(Clone)]
pub struct HttpProbe {
    client: Client<HttpConnector, Empty<Bytes>>,
    path: Arc<str>,
}

impl HttpProbe {
    pub fn new(path: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        // No idle pooling: each check proves that a new connection works,
        // which is what a client routed there next would need.
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        HttpProbe {
            client,
            path: path.into(),
        }
    }
}

impl Probe for HttpProbe {
    async fn check(&self, backend: &Backend) -> bool {
        let uri = Uri::builder()
            .scheme("http")
            .authority(backend.authority().clone())
            .path_and_query(&*self.path)
            .build();
        let Ok(uri) = uri else { return false };
        let Ok(req) = Request::get(uri).body(Empty::new()) else {
            return false;
        };
        match self.client.request(req).await {
            Ok(resp) => resp.status().is_success() || resp.status().is_redirection(),
            Err(_) => false,
        }
    }
}

/// Check one backend every `interval` until shutdown or until the backend
/// is removed from the table. Each check is bounded by `timeout`.
pub async fn run_active_checks<P: Probe>(
    backend: Arc<Backend>,
    config: HealthConfig,
    probe: Arc<P>,
    shutdown: watch::Receiver<bool>,
) {
    let mut every = Every::new(config.interval, shutdown);
    while every.tick().await {
        if backend.is_removed() {
            return;
        }
        let ok = timeout(config.timeout, probe.check(&backend))
            .await
            .unwrap_or(false);
        backend.record_check(ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendSpec;
    use Transition::{Unchanged, WentDown, WentUp};
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    /// What each of these check results, recorded in turn, changed.
    fn record_all(h: &mut HealthMachine, checks: &[bool]) -> Vec<Transition> {
        checks.iter().map(|&ok| h.record(ok)).collect()
    }

    #[test]
    fn goes_down_only_after_fall_agreeing_failures() {
        let mut h = HealthMachine::new(2, 3, Initial::Up);
        assert_eq!(h.record(false), Transition::Unchanged);
        assert_eq!(h.record(false), Transition::Unchanged);
        assert!(h.is_up());
        assert_eq!(h.record(false), Transition::WentDown);
        assert!(!h.is_up());
    }

    #[test]
    fn a_success_in_between_resets_the_run() {
        let mut h = HealthMachine::new(2, 3, Initial::Up);
        for ok in [false, false, true, false, false] {
            h.record(ok);
        }
        assert!(h.is_up(), "no three agreeing failures in a row");
        assert_eq!(h.record(false), Transition::WentDown);
    }

    #[test]
    fn comes_back_after_rise_agreeing_successes() {
        let mut h = HealthMachine::new(2, 1, Initial::Up);
        assert_eq!(
            record_all(&mut h, &[false, true, false, true, true]),
            [WentDown, Unchanged, Unchanged, Unchanged, WentUp]
        );
    }

    #[test]
    fn a_backend_that_starts_down_needs_rise_successes() {
        let mut h = HealthMachine::new(2, 3, Initial::Down);
        assert!(!h.is_up());
        assert_eq!(h.record(true), Transition::Unchanged);
        assert!(!h.is_up(), "one good check is not enough");
        assert_eq!(
            record_all(&mut h, &[false, true, true]),
            [Unchanged, Unchanged, WentUp]
        );
    }

    #[test]
    fn history_is_bounded_and_oldest_first() {
        let mut h = HealthMachine::new(2, 3, Initial::Up);
        h.record(true);
        h.record(false);
        assert_eq!(h.history(), vec![true, false]);
        for _ in 0..100 {
            h.record(true);
        }
        assert_eq!(h.history().len(), HISTORY_LEN);
    }

    /// A probe whose answer the test flips, counting calls.
    struct Scripted {
        healthy: AtomicBool,
        calls: AtomicU32,
        hang: AtomicBool,
    }

    impl Probe for Scripted {
        async fn check(&self, _backend: &Backend) -> bool {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.hang.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            self.healthy.load(Ordering::SeqCst)
        }
    }

    fn setup() -> (Arc<Backend>, Arc<Scripted>, watch::Sender<bool>) {
        let spec: BackendSpec = "node-1=127.0.0.1:1".parse().unwrap();
        let backend = Arc::new(Backend::new(spec, &HealthConfig::default()));
        let probe = Arc::new(Scripted {
            healthy: AtomicBool::new(true),
            calls: AtomicU32::new(0),
            hang: AtomicBool::new(false),
        });
        let (tx, rx) = watch::channel(false);
        tokio::spawn(run_active_checks(
            backend.clone(),
            HealthConfig::default(),
            probe.clone(),
            rx,
        ));
        (backend, probe, tx)
    }

    /// Let spawned tasks run without moving the paused clock.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    /// Moves the paused clock on by `d`, then lets the checker run.
    async fn advance(d: Duration) {
        tokio::time::sleep(d).await;
        settle().await;
    }

    #[tokio::test(start_paused = true)]
    async fn active_checks_flip_down_after_fall_intervals_and_back_after_rise() {
        let (backend, probe, _tx) = setup();
        settle().await; // the first tick fires at once
        assert_eq!(probe.calls.load(Ordering::SeqCst), 1);

        probe.healthy.store(false, Ordering::SeqCst);
        // Checks at t=1s and t=2s fail: two of three, still up.
        advance(Duration::from_millis(2_100)).await;
        assert!(backend.is_up());
        // The third failure at t=3s flips it.
        advance(Duration::from_secs(1)).await;
        assert!(!backend.is_up());

        probe.healthy.store(true, Ordering::SeqCst);
        advance(Duration::from_secs(1)).await;
        assert!(!backend.is_up(), "one success is not enough (rise = 2)");
        advance(Duration::from_secs(1)).await;
        assert!(backend.is_up());
        assert_eq!(
            backend.health_history(),
            vec![true, false, false, false, true, true]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_check_counts_as_a_failure_after_the_timeout() {
        let (backend, probe, _tx) = setup();
        probe.hang.store(true, Ordering::SeqCst);
        settle().await;
        // Each check hangs for the 500 ms timeout, then the next tick comes
        // 1 s after the previous one (ticks at 0, 1, 2 s; failures land at
        // 0.5, 1.5, 2.5 s).
        advance(Duration::from_millis(2_400)).await;
        assert!(backend.is_up());
        advance(Duration::from_millis(200)).await;
        assert!(!backend.is_up());
    }

    #[tokio::test(start_paused = true)]
    async fn checks_stop_when_the_backend_is_removed() {
        let (backend, probe, _tx) = setup();
        settle().await;
        backend.mark_removed();
        advance(Duration::from_secs(5)).await;
        assert_eq!(probe.calls.load(Ordering::SeqCst), 1);
    }
}
