//! Prometheus metric names: what the processes export and the load tool reads.
//!
//! Producers register names through `prometheus-client`, which builds the
//! exposed name from a prefix, the registered name and, for counters, a
//! `_total` suffix. Readers (the load tool's scrape, the dashboard) match
//! the exposed names. Both are here, and a test checks that each exposed
//! name is what its registration produces, so a rename on one side fails
//! the build of the other's tests instead of reading as zero.
//!
//! - the node registers under [`PREFIX`] with a `node` label ([`node`]);
//! - the replication runtime registers in the node's registry under
//!   [`replication::PREFIX`] ([`replication`]);
//! - the load balancer encodes its own series with their full names ([`lb`]);
//! - [`scraped`]: the exposed names the load tool reads.

/// The prefix of every sessionlab metric.
pub const PREFIX: &str = "sessionlab";

/// What the node registers (exposed as `sessionlab_<name>`, counters with `_total`).
pub mod node {
    /// Counter `{route, status}`.
    pub const HTTP_REQUESTS: &str = "http_requests";
    /// Histogram `{route}`.
    pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";
    /// Counter `{result}`: login attempts.
    pub const LOGINS: &str = "logins";
    /// Counter: sessions created by a first write.
    pub const SESSIONS_CREATED: &str = "sessions_created";
    /// Counter: sessions deleted by logout.
    pub const SESSIONS_DESTROYED: &str = "sessions_destroyed";
    /// Gauge: sessions held by the node's store.
    pub const SESSIONS: &str = "sessions";
    /// Gauge: approximate bytes of those sessions.
    pub const SESSION_BYTES: &str = "session_bytes";
    /// Counter: sessions removed by idle or absolute expiry.
    pub const SESSIONS_EXPIRED: &str = "sessions_expired";
    /// Counter: writes re-applied after a compare-and-set conflict.
    pub const SESSION_WRITE_RETRIES: &str = "session_write_retries";
    /// Counter: writes answered 409.
    pub const SESSION_WRITE_CONFLICTS: &str = "session_write_conflicts";
    /// Counter: sessions presented with another User-Agent.
    pub const SESSION_BINDING_REFUSED: &str = "session_binding_refused";
    /// Counter `{reason}`: tokens refused.
    pub const TOKENS_REFUSED: &str = "tokens_refused";
    /// Gauge: the memory store's byte budget (`--store-budget`).
    pub const STORE_BUDGET_BYTES: &str = "store_budget_bytes";
    /// Gauge: approximate bytes of sessions with no user.
    pub const ANONYMOUS_SESSION_BYTES: &str = "anonymous_session_bytes";
    /// Gauge: the budget of sessions with no user (`--anonymous-budget`).
    pub const ANONYMOUS_BUDGET_BYTES: &str = "anonymous_budget_bytes";
    /// Counter `{budget}` (`store`, `anonymous`): writes refused at a budget,
    /// local and replicated alike.
    pub const STORE_REFUSED: &str = "store_refused";
    /// Counter `{limit}` (`new_session`, `login`): requests answered 429.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// Counter: logins answered 503 because the password-check queue was full.
    pub const LOGIN_QUEUE_FULL: &str = "login_queue_full";
    /// Counter: state-changing requests from another site answered 403.
    pub const CROSS_SITE_REFUSED: &str = "cross_site_refused";
    /// Gauge: 1 while Redis answers (redis mode).
    pub const REDIS_UP: &str = "redis_up";
    /// Counter: Redis compare-and-set conflicts (redis mode).
    pub const REDIS_CONFLICTS: &str = "redis_conflicts";
    /// Counter: session writes fewer replicas confirmed than `--redis-wait` asked.
    pub const REDIS_UNREPLICATED: &str = "redis_unreplicated_writes";
}

/// What the replication runtime registers, under [`replication::PREFIX`]
/// inside the node's registry (exposed as `sessionlab_replication_<name>`).
pub mod replication {
    /// The sub-registry prefix.
    pub const PREFIX: &str = "replication";
    /// Histogram `{origin}`: a write on its origin to its apply here.
    pub const LAG_SECONDS: &str = "lag_seconds";
    /// Counter `{peer, direction}`: every message, heartbeats included.
    pub const MESSAGES: &str = "messages";
    /// Counter `{peer, direction}`: request body bytes.
    pub const BYTES: &str = "bytes";
    /// Counter `{peer, direction}`: requests (batches).
    pub const BATCHES: &str = "batches";
    pub const SEND_FAILURES: &str = "send_failures";
    pub const QUEUE_DEPTH: &str = "queue_depth";
    pub const PEER_UP: &str = "peer_up";
    pub const PEER_NEEDS_RESYNC: &str = "peer_needs_resync";
    pub const RESYNCS: &str = "resyncs";
    pub const LWW_OVERWRITES: &str = "lww_overwrites";
    pub const APPLIED: &str = "applied";
    pub const REJECTED: &str = "rejected";
    pub const FAULT_DROPPED: &str = "fault_dropped";
    pub const ACKS: &str = "acks";
    /// Counter `{reason}`: writes refused by `--partition-policy consistent`.
    pub const REFUSED_WRITES: &str = "refused_writes";
    pub const READY: &str = "ready";
    pub const TOMBSTONES: &str = "tombstones";
    /// Counter: tombstones given up early because the set was full.
    pub const TOMBSTONES_EVICTED: &str = "tombstones_evicted";
    /// Counter `{outcome}` (`hit`, `miss`, `error`): a request for a
    /// session this node does not hold, asked of one owner (backup topology).
    pub const REMOTE_FETCHES: &str = "remote_fetches";
    /// Histogram: one remote fetch, asked to answered.
    pub const REMOTE_FETCH_SECONDS: &str = "remote_fetch_seconds";
    /// Counter: sessions this node sent to new owners in rebalances.
    pub const REBALANCE_SESSIONS: &str = "rebalance_sessions";
    /// Counter: their bytes.
    pub const REBALANCE_BYTES: &str = "rebalance_bytes";
    /// Gauge: how long the last finished rebalance took.
    pub const REBALANCE_LAST_SECONDS: &str = "rebalance_last_seconds";
    /// Counter: rebalance passes finished (one per membership change that
    /// moved ownership), so a watcher can tell a new pass from the last.
    pub const REBALANCES: &str = "rebalances";
}

/// The membership series (SWIM), registered by the node under
/// `membership_` (full names `sessionlab_membership_*`).
pub mod membership {
    pub const PREFIX: &str = "membership";
    /// Gauge `{state}`: members held in each state, this node included.
    pub const MEMBERS: &str = "members";
    /// Gauge: the view's version (bumped on every change).
    pub const VERSION: &str = "version";
    /// Counter `{direction, kind}`: failure-detector messages.
    pub const MESSAGES: &str = "messages";
    /// Counter `{direction}`: their request body bytes.
    pub const BYTES: &str = "bytes";
}

/// The load balancer's series (full names as encoded; counters get `_total`).
pub mod lb {
    pub const REQUESTS: &str = "sessionlab_lb_requests";
    pub const FAILOVERS: &str = "sessionlab_lb_failovers";
    pub const REDISPATCHES: &str = "sessionlab_lb_redispatches";
    pub const ERROR_RESPONSES: &str = "sessionlab_lb_error_responses";
    pub const BACKEND_REQUESTS: &str = "sessionlab_lb_backend_requests";
    pub const BACKEND_CONNECTS: &str = "sessionlab_lb_backend_connects";
    pub const BACKEND_ERRORS: &str = "sessionlab_lb_backend_errors";
    pub const BACKEND_IN_FLIGHT: &str = "sessionlab_lb_backend_in_flight";
    pub const BACKEND_UP: &str = "sessionlab_lb_backend_up";
    pub const BACKEND_DRAINING: &str = "sessionlab_lb_backend_draining";
    pub const BACKEND_LATENCY_SECONDS: &str = "sessionlab_lb_backend_latency_seconds";
}

/// Exposed names the load tool reads from the nodes' `/metrics`.
pub mod scraped {
    /// Counter `{node, peer, direction="sent"|"received"}`: every message,
    /// heartbeats included.
    pub const REPL_MESSAGES: &str = "sessionlab_replication_messages_total";
    /// Counter `{node, peer, direction}`: request body bytes.
    pub const REPL_BYTES: &str = "sessionlab_replication_bytes_total";
    /// Histogram `{node, origin}`: a write on `origin` to its apply here.
    pub const REPL_LAG_SECONDS: &str = "sessionlab_replication_lag_seconds";
    /// Gauge `{node}`: sessions in the node's store.
    pub const SESSIONS: &str = "sessionlab_sessions";
    /// Gauge `{node}`: approximate bytes of those sessions.
    pub const SESSION_BYTES: &str = "sessionlab_session_bytes";
    /// The label value of what a node sent (each message is counted once
    /// as sent by its origin and once as received by its peer).
    pub const SENT: (&str, &str) = ("direction", "sent");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scraped_names_are_what_the_producers_register() {
        let repl =
            |name: &str, suffix: &str| format!("{PREFIX}_{}_{name}{suffix}", replication::PREFIX);
        assert_eq!(
            scraped::REPL_MESSAGES,
            repl(replication::MESSAGES, "_total")
        );
        assert_eq!(scraped::REPL_BYTES, repl(replication::BYTES, "_total"));
        assert_eq!(
            scraped::REPL_LAG_SECONDS,
            repl(replication::LAG_SECONDS, "")
        );
        assert_eq!(scraped::SESSIONS, format!("{PREFIX}_{}", node::SESSIONS));
        assert_eq!(
            scraped::SESSION_BYTES,
            format!("{PREFIX}_{}", node::SESSION_BYTES)
        );
        assert!(lb::REQUESTS.starts_with(PREFIX));
    }
}
