//! What replication costs and how far behind it is, as Prometheus metrics.
//!
//! Registered under `replication_` in the node's registry (the node adds its
//! own `sessionlab_` prefix and `node` label), so `/metrics` on the cluster
//! port shows, per node (the names are the shared contract in
//! [`sessionlab_wire::metrics::replication`]):
//!
//! | metric | what it tells |
//! |---|---|
//! | `replication_lag_seconds{origin}` | origin's write to apply here (µs clock, buckets 0.1 ms .. 10 s with 5 ms as an edge) |
//! | `replication_messages_total{peer,direction}` | messages sent / received per peer |
//! | `replication_bytes_total{peer,direction}` | request body bytes sent / received |
//! | `replication_batches_total{peer,direction}` | HTTP requests (messages per batch = the batching win) |
//! | `replication_send_failures_total{peer}` | batches that did not arrive |
//! | `replication_queue_depth{peer}` | data messages waiting for a peer |
//! | `replication_peer_up{peer}`, `replication_peer_needs_resync{peer}` | liveness and repair state |
//! | `replication_resyncs_total{peer}` | times a peer had to be resynchronised |
//! | `replication_lww_overwrites_total` | copies replaced by a newer version |
//! | `replication_applied_total{kind,outcome}` | what became of each data message |
//! | `replication_rejected_total{reason}` | refused requests: unsigned, forged, stale, replay, malformed, oversized, ... |
//! | `replication_fault_dropped_total{peer,direction}` | batches dropped by injected faults |
//! | `replication_acks_total{result}` | writes that waited: sent / acked / timed out |
//! | `replication_refused_writes_total{reason}` | writes refused by `--partition-policy consistent`: `no_majority` (this node sees no majority, refused before writing), `not_acknowledged` (a majority did not take it in time, or a peer held a newer copy) |
//! | `replication_ready`, `replication_tombstones`, `replication_tombstones_evicted_total` | joined and caught up; tombstones held; tombstones given up early (the set was full) |
//! | `replication_remote_fetches_total{outcome}`, `replication_remote_fetch_seconds` | backup topology: a session asked of an owner (`hit`, `miss`, `error`; `busy`: not asked, too many in flight) and how long it took |
//! | `replication_rebalance_sessions_total`, `replication_rebalance_bytes_total`, `replication_rebalance_last_seconds`, `replication_rebalances_total` | sessions and bytes sent to new owners after membership changes; the last rebalance's duration; passes finished |
//! | `membership_members{state}`, `membership_version` | the SWIM view: members by state (this node included) and its version |
//! | `membership_messages_total{direction,kind}` | failure-detector messages in and out (`ping`, `ack`, `ping_req`, `join`, `join_reply`, `gossip`) |
//! | `membership_bytes_total{direction}` | their request body bytes |

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sessionlab_session::ReplicationAck;
use sessionlab_wire::metrics::membership as member_names;
use sessionlab_wire::metrics::replication as names;

use sessionlab_replication_core::{Event, Outcome, PeerView};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OriginLabels {
    origin: String,
}

/// Which way traffic went.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Direction {
    Sent,
    Received,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Sent => "sent",
            Direction::Received => "received",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TrafficLabels {
    peer: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppliedLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SwimLabels {
    direction: &'static str,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Upper bounds of the lag histogram, in seconds: fine steps below 10 ms,
/// where loopback and LAN lag lives, with 5 ms as an edge so "p99 under
/// 5 ms" can be read off the buckets without interpolation.
pub const LAG_BUCKETS: [f64; 18] = [
    0.000_1, 0.000_25, 0.000_5, 0.000_75, 0.001, 0.001_5, 0.002, 0.003, 0.004, 0.005, 0.007_5,
    0.01, 0.025, 0.05, 0.1, 0.5, 2.0, 10.0,
];

/// The replication metrics; cheap to update from any thread.
#[derive(Debug)]
pub struct Metrics {
    lag: Family<OriginLabels, Histogram>,
    messages: Family<TrafficLabels, Counter>,
    bytes: Family<TrafficLabels, Counter>,
    batches: Family<TrafficLabels, Counter>,
    send_failures: Family<PeerLabels, Counter>,
    queue_depth: Family<PeerLabels, Gauge>,
    peer_up: Family<PeerLabels, Gauge>,
    needs_resync: Family<PeerLabels, Gauge>,
    resyncs: Family<PeerLabels, Counter>,
    lww_overwrites: Counter,
    applied: Family<AppliedLabels, Counter>,
    rejected: Family<ReasonLabels, Counter>,
    fault_dropped: Family<TrafficLabels, Counter>,
    acks: Family<ResultLabels, Counter>,
    refused_writes: Family<ReasonLabels, Counter>,
    ready: Gauge,
    tombstones: Gauge,
    tombstones_evicted: Counter,
    /// The replica's eviction total at the last refresh.
    evicted_seen: std::sync::atomic::AtomicU64,
    remote_fetches: Family<OutcomeLabels, Counter>,
    remote_fetch_seconds: Histogram,
    rebalance_sessions: Counter,
    rebalance_bytes: Counter,
    rebalance_last_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    rebalances: Counter,
    members: Family<StateLabels, Gauge>,
    membership_version: Gauge,
    swim_messages: Family<SwimLabels, Counter>,
    swim_bytes: Family<DirectionLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            lag: Family::new_with_constructor(|| Histogram::new(LAG_BUCKETS.iter().copied())),
            messages: Family::default(),
            bytes: Family::default(),
            batches: Family::default(),
            send_failures: Family::default(),
            queue_depth: Family::default(),
            peer_up: Family::default(),
            needs_resync: Family::default(),
            resyncs: Family::default(),
            lww_overwrites: Counter::default(),
            applied: Family::default(),
            rejected: Family::default(),
            fault_dropped: Family::default(),
            acks: Family::default(),
            refused_writes: Family::default(),
            ready: Gauge::default(),
            tombstones: Gauge::default(),
            tombstones_evicted: Counter::default(),
            evicted_seen: std::sync::atomic::AtomicU64::new(0),
            remote_fetches: Family::default(),
            remote_fetch_seconds: Histogram::new(LAG_BUCKETS.iter().copied()),
            rebalance_sessions: Counter::default(),
            rebalance_bytes: Counter::default(),
            rebalance_last_seconds: Gauge::default(),
            rebalances: Counter::default(),
            members: Family::default(),
            membership_version: Gauge::default(),
            swim_messages: Family::default(),
            swim_bytes: Family::default(),
        }
    }
}

impl Metrics {
    /// Add the metrics to `registry` (see the module docs for the names).
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix(names::PREFIX);
        r.register(
            names::LAG_SECONDS,
            "Replication lag: origin write to apply here, by origin node",
            self.lag.clone(),
        );
        r.register(
            names::MESSAGES,
            "Replication messages, by peer and direction",
            self.messages.clone(),
        );
        r.register(
            names::BYTES,
            "Replication request body bytes, by peer and direction",
            self.bytes.clone(),
        );
        r.register(
            names::BATCHES,
            "Replication requests (batches), by peer and direction",
            self.batches.clone(),
        );
        r.register(
            names::SEND_FAILURES,
            "Batches that did not reach the peer",
            self.send_failures.clone(),
        );
        r.register(
            names::QUEUE_DEPTH,
            "Data messages queued for the peer",
            self.queue_depth.clone(),
        );
        r.register(
            names::PEER_UP,
            "Whether the peer is up (heard from recently)",
            self.peer_up.clone(),
        );
        r.register(
            names::PEER_NEEDS_RESYNC,
            "Whether the peer is marked for resync",
            self.needs_resync.clone(),
        );
        r.register(
            names::RESYNCS,
            "Times the peer was marked for resync",
            self.resyncs.clone(),
        );
        r.register(
            names::LWW_OVERWRITES,
            "Copies replaced by a newer version (last writer wins)",
            self.lww_overwrites.clone(),
        );
        r.register(
            names::APPLIED,
            "Data messages applied, by kind and outcome",
            self.applied.clone(),
        );
        r.register(
            names::REJECTED,
            "Refused replication requests, by reason",
            self.rejected.clone(),
        );
        r.register(
            names::FAULT_DROPPED,
            "Batches dropped by injected faults",
            self.fault_dropped.clone(),
        );
        r.register(
            names::ACKS,
            "Writes that waited for the peers, by result (sent, acked, timed_out)",
            self.acks.clone(),
        );
        r.register(
            names::REFUSED_WRITES,
            "Writes refused by --partition-policy consistent, by reason (no_majority, not_acknowledged)",
            self.refused_writes.clone(),
        );
        r.register(
            names::READY,
            "1 once the node has caught up after starting",
            self.ready.clone(),
        );
        r.register(
            names::TOMBSTONES,
            "Tombstones held (deleted sessions remembered)",
            self.tombstones.clone(),
        );
        r.register(
            names::TOMBSTONES_EVICTED,
            "Tombstones given up before their end because the set was full",
            self.tombstones_evicted.clone(),
        );
        r.register(
            names::REMOTE_FETCHES,
            "Sessions asked of an owner (backup topology), by outcome",
            self.remote_fetches.clone(),
        );
        r.register(
            names::REMOTE_FETCH_SECONDS,
            "One remote fetch, asked to answered",
            self.remote_fetch_seconds.clone(),
        );
        r.register(
            names::REBALANCE_SESSIONS,
            "Sessions sent to new owners after membership changes",
            self.rebalance_sessions.clone(),
        );
        r.register(
            names::REBALANCE_BYTES,
            "Bytes of the sessions sent to new owners",
            self.rebalance_bytes.clone(),
        );
        r.register(
            names::REBALANCE_LAST_SECONDS,
            "How long the last finished rebalance took",
            self.rebalance_last_seconds.clone(),
        );
        r.register(
            names::REBALANCES,
            "Rebalance passes finished",
            self.rebalances.clone(),
        );
        let m = registry.sub_registry_with_prefix(member_names::PREFIX);
        m.register(
            member_names::MEMBERS,
            "Members by state, this node included",
            self.members.clone(),
        );
        m.register(
            member_names::VERSION,
            "The membership view's version",
            self.membership_version.clone(),
        );
        m.register(
            member_names::MESSAGES,
            "Failure-detector messages, by direction and kind",
            self.swim_messages.clone(),
        );
        m.register(
            member_names::BYTES,
            "Failure-detector request body bytes, by direction",
            self.swim_bytes.clone(),
        );
    }

    /// One remote fetch: `hit`, `miss` or `error`, and how long it took
    /// (`None`: not asked at all, `busy`).
    pub fn on_remote_fetch(&self, outcome: &'static str, seconds: Option<f64>) {
        self.remote_fetches
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        if let Some(s) = seconds {
            self.remote_fetch_seconds.observe(s);
        }
    }

    /// A failure-detector message in (`received`) or out (`sent`), with
    /// its body's size.
    pub fn on_swim(&self, direction: Direction, kind: &'static str, bytes: usize) {
        let direction = direction.as_str();
        self.swim_messages
            .get_or_create(&SwimLabels { direction, kind })
            .inc();
        self.swim_bytes
            .get_or_create(&DirectionLabels { direction })
            .inc_by(bytes as u64);
    }

    /// The membership view: members per state (this node included).
    pub fn set_members(&self, version: u64, by_state: &[(&'static str, usize)]) {
        self.membership_version.set(version as i64);
        for (state, n) in by_state {
            self.members
                .get_or_create(&StateLabels { state })
                .set(*n as i64);
        }
    }

    /// Count a replica event.
    pub fn on_event(&self, e: &Event) {
        match e {
            Event::Applied {
                from,
                kind,
                outcome,
                lag_ms,
                lag_us,
                ..
            } => {
                self.applied
                    .get_or_create(&AppliedLabels {
                        kind,
                        outcome: outcome.as_str(),
                    })
                    .inc();
                if *outcome == Outcome::Overwrote {
                    self.lww_overwrites.inc();
                }
                // Microseconds when both ends stamp them (the runtime
                // does), else the protocol's whole milliseconds.
                let seconds = match (lag_us, lag_ms) {
                    (Some(us), _) => Some(*us as f64 / 1e6),
                    (None, Some(ms)) => Some(*ms as f64 / 1e3),
                    (None, None) => None,
                };
                if let Some(s) = seconds {
                    self.lag
                        .get_or_create(&OriginLabels {
                            origin: from.clone(),
                        })
                        .observe(s);
                }
            }
            Event::ResyncNeeded { peer, .. } => {
                self.resyncs
                    .get_or_create(&PeerLabels { peer: peer.clone() })
                    .inc();
            }
            Event::Rebalanced {
                sessions,
                bytes,
                took_ms,
                ..
            } => {
                self.rebalance_sessions.inc_by(*sessions);
                self.rebalance_bytes.inc_by(*bytes);
                self.rebalance_last_seconds.set(*took_ms as f64 / 1e3);
                self.rebalances.inc();
            }
            Event::Ready { .. } => {
                self.ready.set(1);
            }
            _ => {}
        }
    }

    /// One batch of `messages` in `bytes` to or from `peer`.
    fn traffic(&self, peer: &str, direction: Direction, messages: usize, bytes: usize) {
        let l = TrafficLabels {
            peer: peer.to_owned(),
            direction: direction.as_str(),
        };
        self.batches.get_or_create(&l).inc();
        self.messages.get_or_create(&l).inc_by(messages as u64);
        self.bytes.get_or_create(&l).inc_by(bytes as u64);
    }

    pub fn on_sent(&self, peer: &str, messages: usize, bytes: usize, ok: bool) {
        self.traffic(peer, Direction::Sent, messages, bytes);
        if !ok {
            self.send_failures
                .get_or_create(&PeerLabels {
                    peer: peer.to_owned(),
                })
                .inc();
        }
    }

    pub fn on_received(&self, peer: &str, messages: usize, bytes: usize) {
        self.traffic(peer, Direction::Received, messages, bytes);
    }

    pub fn on_rejected(&self, reason: &'static str) {
        self.rejected.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub fn on_fault_drop(&self, peer: &str, direction: Direction) {
        self.fault_dropped
            .get_or_create(&TrafficLabels {
                peer: peer.to_owned(),
                direction: direction.as_str(),
            })
            .inc();
    }

    pub fn on_ack(&self, ack: &ReplicationAck) {
        let result = match ack {
            ReplicationAck::Sent { .. } => "sent",
            ReplicationAck::Acked { .. } => "acked",
            ReplicationAck::TimedOut { .. } => "timed_out",
            _ => return,
        };
        self.acks.get_or_create(&ResultLabels { result }).inc();
    }

    /// Refresh the gauges from the replica's view.
    pub fn set_gauges(&self, peers: &[PeerView], ready: bool, tombstones: usize, evicted: u64) {
        let seen = self
            .evicted_seen
            .swap(evicted, std::sync::atomic::Ordering::Relaxed);
        self.tombstones_evicted.inc_by(evicted.saturating_sub(seen));
        for p in peers {
            let l = PeerLabels { peer: p.id.clone() };
            self.queue_depth.get_or_create(&l).set(p.queue_depth as i64);
            self.peer_up.get_or_create(&l).set(i64::from(p.up));
            self.needs_resync
                .get_or_create(&l)
                .set(i64::from(p.needs_resync));
        }
        self.ready.set(i64::from(ready));
        self.tombstones.set(tombstones as i64);
    }

    /// Refusals counted for `reason` so far (for tests and status pages).
    /// A write refused by the consistent policy.
    pub fn on_refused_write(&self, reason: &'static str) {
        self.refused_writes
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn rejected_count(&self, reason: &'static str) -> u64 {
        self.rejected.get_or_create(&ReasonLabels { reason }).get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessionlab_replication_core::Outcome;
    use sessionlab_session::SessionId;

    fn applied(lag_ms: Option<u64>, lag_us: Option<u64>) -> Event {
        Event::Applied {
            from: "node-2".into(),
            to: "node-1".into(),
            kind: "upsert",
            id: SessionId::parse(&"a".repeat(32)).unwrap(),
            version: None,
            outcome: Outcome::Stored,
            lag_ms,
            lag_us,
        }
    }

    /// The lag is observed in microseconds when stamped, so a 4.8 ms lag
    /// lands under the 5 ms edge, where whole milliseconds could not say.
    #[test]
    fn lag_prefers_microseconds_and_has_a_5ms_edge() {
        let m = Metrics::default();
        let mut registry = Registry::with_prefix("sessionlab");
        m.register(&mut registry);
        m.on_event(&applied(Some(4), Some(4_800)));
        m.on_event(&applied(Some(6), None));
        m.on_event(&applied(None, None));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let bucket = |le: &str| {
            let prefix = format!(
                r#"sessionlab_replication_lag_seconds_bucket{{le="{le}",origin="node-2"}} "#
            );
            text.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .unwrap_or_else(|| panic!("no bucket {le} in {text}"))
                .to_owned()
        };
        assert_eq!(bucket("0.004"), "0");
        assert_eq!(bucket("0.005"), "1");
        assert_eq!(bucket("0.0075"), "2");
        assert!(
            text.contains(r#"sessionlab_replication_lag_seconds_count{origin="node-2"} 2"#),
            "{text}"
        );
    }
}
