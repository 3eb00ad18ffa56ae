//! Prometheus metrics: what the node counts.
//!
//! Metrics are served as Prometheus text on the cluster listener's
//! `/metrics`. Every series carries a `node` label with the node id, so a
//! dashboard over several nodes can tell them apart. Counters and histograms
//! are updated on the request path (an atomic add each, by the session
//! middleware, [`crate::session::middleware`]); the store gauges
//! (sessions held, bytes, expirations) are read from the store when scraped,
//! so there is one source of truth for them.
//!
//! Request series are labelled by *route name* (`api_session`, `cart_item`),
//! not by path: paths carry cart item names and `;sid=` values, which would
//! make the number of series unbounded (and put credentials in metrics).

use std::borrow::Cow;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};
use sessionlab_session::SessionStore;
use sessionlab_wire::metrics::node as names;

/// Route label for requests that matched no route (404s).
pub const UNMATCHED: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    result: &'static str,
}

/// One route's series, looked up once at start so that counting a request
/// on the hot path is a string comparison and two atomic adds.
struct RouteSeries {
    name: &'static str,
    duration: Histogram,
    ok: Counter,
}

/// The node's metrics; see the module docs.
pub struct Metrics {
    registry: Registry,
    /// The app's routes (others count as `other`).
    routes: Vec<RouteSeries>,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram>,
    logins: Family<LoginLabels, Counter>,
    pub sessions_created: Counter,
    pub sessions_destroyed: Counter,
    sessions: Gauge,
    session_bytes: Gauge,
    expired: Counter,
    /// Writes re-read and re-applied after a compare-and-set conflict.
    pub write_retries: Counter,
    /// Writes answered 409 because conflicts outlasted the retries.
    pub write_conflicts: Counter,
    /// Sessions presented with another client fingerprint (`--bind-session`).
    pub binding_refused: Counter,
    tokens_refused: Family<ReasonLabels, Counter>,
    store_budget: Gauge,
    anonymous_bytes: Gauge,
    anonymous_budget: Gauge,
    store_refused: Family<BudgetLabels, Counter>,
    rate_limited: Family<LimitLabels, Counter>,
    /// Logins answered 503: the password-check queue was full.
    pub login_queue_full: Counter,
    /// State-changing requests from another site answered 403.
    pub cross_site_refused: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabels {
    budget: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// The registry while [`Metrics::new`] fills it: each series is registered
/// once, in the order written (the order `/metrics` lists them), and the
/// handle kept counts into the registered series (clones share it).
struct Registering(Registry);

impl Registering {
    /// Registers `metric` as `name` with `help`; returns the handle.
    fn register<M: Metric + Clone>(&mut self, name: &str, help: &str, metric: M) -> M {
        self.0.register(name, help, metric.clone());
        metric
    }

    /// [`Self::register`] for a metric that starts at its default (zero,
    /// or an empty family).
    fn add<M: Metric + Clone + Default>(&mut self, name: &str, help: &str) -> M {
        self.register(name, help, M::default())
    }
}

impl Metrics {
    /// `routes`: the route names of the app (see [`crate::app::routes::ROUTES`]).
    pub fn new(node_id: &str, routes: &'static [&'static str]) -> Self {
        let mut r = Registering(Registry::with_prefix_and_labels(
            sessionlab_wire::metrics::PREFIX,
            [(Cow::Borrowed("node"), Cow::Owned(node_id.to_owned()))].into_iter(),
        ));
        let http_requests: Family<HttpLabels, Counter> = r.add(
            names::HTTP_REQUESTS,
            "HTTP requests answered, by route and status",
        );
        let http_duration = r.register(
            names::HTTP_REQUEST_DURATION_SECONDS,
            "Time from request to response, by route",
            Family::<RouteLabels, Histogram>::new_with_constructor(|| {
                // 50 µs .. ~75 s.
                Histogram::new(exponential_buckets(0.000_05, 2.5, 16))
            }),
        );
        let routes = routes
            .iter()
            .map(|&name| RouteSeries {
                name,
                duration: http_duration
                    .get_or_create(&RouteLabels { route: name })
                    .clone(),
                ok: http_requests
                    .get_or_create(&HttpLabels {
                        route: name,
                        status: 200,
                    })
                    .clone(),
            })
            .collect();
        Metrics {
            routes,
            http_requests,
            http_duration,
            logins: r.add(names::LOGINS, "Login attempts, by result (ok, failed)"),
            sessions_created: r.add(names::SESSIONS_CREATED, "Sessions created by a first write"),
            sessions_destroyed: r.add(names::SESSIONS_DESTROYED, "Sessions deleted by logout"),
            sessions: r.add(names::SESSIONS, "Sessions held by this node's store"),
            session_bytes: r.add(
                names::SESSION_BYTES,
                "Approximate bytes of sessions held by this node's store",
            ),
            expired: r.add(
                names::SESSIONS_EXPIRED,
                "Sessions removed by idle or absolute expiry",
            ),
            write_retries: r.add(
                names::SESSION_WRITE_RETRIES,
                "Session writes re-read and re-applied after a compare-and-set conflict",
            ),
            write_conflicts: r.add(
                names::SESSION_WRITE_CONFLICTS,
                "Session writes answered 409: still conflicting after every retry",
            ),
            binding_refused: r.add(
                names::SESSION_BINDING_REFUSED,
                "Sessions presented with another User-Agent than they were bound to, \
                 treated as none",
            ),
            tokens_refused: r.add(
                names::TOKENS_REFUSED,
                "Bearer and refresh tokens refused (401), by reason",
            ),
            store_budget: r.add(
                names::STORE_BUDGET_BYTES,
                "The memory store's byte budget (--store-budget)",
            ),
            anonymous_bytes: r.add(
                names::ANONYMOUS_SESSION_BYTES,
                "Approximate bytes of sessions with no user",
            ),
            anonymous_budget: r.add(
                names::ANONYMOUS_BUDGET_BYTES,
                "The byte budget of sessions with no user (--anonymous-budget)",
            ),
            store_refused: r.add(
                names::STORE_REFUSED,
                "Session writes (local or from peers) refused at a byte budget, \
                 by budget (store, anonymous)",
            ),
            rate_limited: r.add(
                names::RATE_LIMITED,
                "Requests answered 429, by limit (new_session, login)",
            ),
            login_queue_full: r.add(
                names::LOGIN_QUEUE_FULL,
                "Logins answered 503 because the password-check queue was full",
            ),
            cross_site_refused: r.add(
                names::CROSS_SITE_REFUSED,
                "State-changing requests from another site answered 403",
            ),
            registry: r.0,
        }
    }

    /// Count one request answered 429 (`limit`: `new_session`, `login`).
    pub fn rate_limited(&self, limit: &'static str) {
        self.rate_limited
            .get_or_create(&LimitLabels { limit })
            .inc();
    }

    /// Count one refused token (`reason` as in the 401 body).
    pub fn token_refused(&self, reason: &'static str) {
        self.tokens_refused
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Count one answered request.
    pub fn observe(&self, route_name: Option<&str>, status: u16, seconds: f64) {
        let known = route_name.and_then(|n| self.routes.iter().find(|r| r.name == n));
        if let Some(r) = known {
            r.duration.observe(seconds);
            if status == 200 {
                r.ok.inc();
                return;
            }
        }
        let route = match (known, route_name) {
            (Some(r), _) => r.name,
            (None, None) => UNMATCHED,
            (None, Some(_)) => "other",
        };
        if known.is_none() {
            self.http_duration
                .get_or_create(&RouteLabels { route })
                .observe(seconds);
        }
        self.http_requests
            .get_or_create(&HttpLabels { route, status })
            .inc();
    }

    /// The registry, for a store that adds series of its own (replication,
    /// see [`crate::store::wiring::MetricsHook`]).
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Count one login attempt.
    pub fn login(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.logins.get_or_create(&LoginLabels { result }).inc();
    }

    /// Read the store gauges and encode everything as Prometheus text.
    pub async fn render(&self, store: &dyn SessionStore) -> String {
        if let Ok(stats) = store.stats().await {
            self.sessions.set(stats.sessions as i64);
            self.session_bytes.set(stats.bytes as i64);
            let seen = self.expired.get();
            self.expired
                .inc_by(stats.expired_total.saturating_sub(seen));
            let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            self.store_budget.set(gauge(stats.budget_bytes));
            self.anonymous_bytes.set(gauge(stats.anonymous_bytes));
            self.anonymous_budget
                .set(gauge(stats.anonymous_budget_bytes));
            for (budget, total) in [
                ("store", stats.refused_budget),
                ("anonymous", stats.refused_anonymous),
            ] {
                let c = self.store_refused.get_or_create(&BudgetLabels { budget });
                c.inc_by(total.saturating_sub(c.get()));
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessionlab_session::{MemoryStore, MemoryStoreConfig};

    #[tokio::test]
    async fn renders_labelled_series() {
        let m = Metrics::new("node-7", &["api_session"]);
        m.observe(Some("api_session"), 200, 0.001);
        m.observe(None, 404, 0.001);
        m.login(false);
        let store = MemoryStore::new(MemoryStoreConfig::default());
        let text = m.render(&store).await;
        assert!(
            text.contains(
                r#"sessionlab_http_requests_total{node="node-7",route="api_session",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
        assert!(text.contains(r#"sessionlab_logins_total{node="node-7",result="failed"} 1"#));
        assert!(
            text.contains(r#"sessionlab_sessions{node="node-7"} 0"#),
            "{text}"
        );
    }
}
