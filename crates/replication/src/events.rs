//! The replication event log: the last things replication did on this node,
//! for people to watch.
//!
//! The runtime already turns every [`Event`] of the replica into one log
//! line (`node-1 -> node-2 upsert 3fa9.. v=17@node-1 stored lag=2ms`). Log
//! files are for afterwards; the dashboard (served by the LB) wants the same
//! stream *now*, next to the sessions table, so that a person sees a copy
//! arrive, a link go down, a resync repair what a partition missed. So the
//! runtime also hands every event to an [`EventLog`]:
//!
//! - **Bounded**: a ring of [`CAPACITY`] events. The newest overwrites the
//!   oldest, memory never grows. Under load the ring covers less time, which
//!   is fine for a live view.
//! - **Cheap on the replication path**: the event is *moved* into the ring
//!   (it is already built for the metrics and the log); nothing is formatted
//!   or copied until someone reads. Recording is a short critical section;
//!   the event pushed out is dropped after the lock is released.
//! - **Numbered**: each event gets a sequence number, so a reader asks for
//!   `since=SEQ` and gets only what is new. Numbers restart with the node;
//!   `boot_ms` (when this log was made) tells a reader that happened.
//!
//! Besides the ring, the log remembers per incoming peer the last measured
//! replication lag (origin write to apply here), so the dashboard can label
//! each link with a lag even when no write happens for a while.
//!
//! `GET /admin/v1/replication?since=SEQ&limit=N` on the cluster listener
//! ([`configure`]) returns the events after `SEQ` (at most `N`, the newest
//! ones, oldest first) and this node's view of each link: up, queue depth,
//! resync pending, cut by a fault, last lag. Like the node's other
//! `/admin/v1/...` views it is unsigned: the cluster listener is the
//! boundary, and the events name sessions only by their first characters.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use actix_web::{HttpResponse, web};
use parking_lot::Mutex;
use serde::Deserialize;
use sessionlab_session::clock;
use sessionlab_wire::replication_log::{EventView, LinkView, ReplicationView};

use crate::runtime::Shared;
use sessionlab_replication_core::Event;

/// Events kept per node.
pub const CAPACITY: usize = 512;
/// Events one answer returns unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 100;

struct Logged {
    seq: u64,
    at_ms: u64,
    event: Event,
}

/// The last lag measured on a link into this node.
#[derive(Clone, Copy, Debug, PartialEq)]
struct LastLag {
    lag_ms: f64,
    at_ms: u64,
}

struct Inner {
    next_seq: u64,
    ring: VecDeque<Logged>,
    /// Keyed by the sending peer; only peers of this node ever apply here,
    /// so the map is bounded by the peer list.
    lags: BTreeMap<String, LastLag>,
}

/// The bounded, numbered ring of recent replication events.
pub struct EventLog {
    boot_ms: u64,
    inner: Mutex<Inner>,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog {
            boot_ms: clock::now_ms(),
            inner: Mutex::new(Inner {
                next_seq: 1,
                ring: VecDeque::with_capacity(CAPACITY),
                lags: BTreeMap::new(),
            }),
        }
    }
}

/// What `/admin/v1/replication` shows of event `e`, numbered `seq` and
/// recorded at `at_ms`.
fn event_view(seq: u64, at_ms: u64, e: &Event) -> EventView {
    let mut v = EventView {
        seq,
        time_ms: at_ms,
        kind: String::new(),
        peer: None,
        session: None,
        version: None,
        outcome: None,
        lag_ms: None,
        text: e.to_string(),
    };
    let (kind, peer) = match e {
        Event::Applied {
            from,
            kind,
            id,
            version,
            outcome,
            ..
        } => {
            v.session = Some(id.short().to_owned());
            v.version = version.as_ref().map(|x| x.to_string());
            v.outcome = Some(outcome.as_str().to_owned());
            v.lag_ms = applied_lag_ms(e);
            (*kind, Some(from))
        }
        Event::PeerUp { peer, .. } => ("peer_up", Some(peer)),
        Event::PeerDown { peer, .. } => ("peer_down", Some(peer)),
        Event::PeerRestarted { peer, .. } => ("peer_restarted", Some(peer)),
        Event::ResyncNeeded { peer, .. } => ("resync_needed", Some(peer)),
        Event::ResyncDone { peer, .. } => ("resync_done", Some(peer)),
        Event::SnapshotServed { to, .. } => ("snapshot_served", Some(to)),
        Event::SnapshotReceived { from, .. } => ("snapshot_received", Some(from)),
        Event::Ready { .. } => ("ready", None),
        Event::Rebalanced { .. } => ("rebalanced", None),
    };
    v.kind = kind.to_owned();
    v.peer = peer.cloned();
    v
}

/// The lag of an applied fresh write, in milliseconds (microsecond
/// precision when both ends measured it).
fn applied_lag_ms(e: &Event) -> Option<f64> {
    match e {
        Event::Applied { lag_us, lag_ms, .. } => lag_us
            .map(|us| us as f64 / 1000.0)
            .or(lag_ms.map(|ms| ms as f64)),
        _ => None,
    }
}

impl EventLog {
    /// Record an event (called by the runtime for every event).
    pub fn push(&self, event: Event) {
        let at_ms = clock::now_ms();
        let lag = applied_lag_ms(&event);
        let pushed_out = {
            let mut inner = self.inner.lock();
            if let (Some(lag_ms), Event::Applied { from, .. }) = (lag, &event) {
                match inner.lags.get_mut(from) {
                    Some(last) => *last = LastLag { lag_ms, at_ms },
                    None => {
                        inner.lags.insert(from.clone(), LastLag { lag_ms, at_ms });
                    }
                }
            }
            let seq = inner.next_seq;
            inner.next_seq += 1;
            let old = if inner.ring.len() == CAPACITY {
                inner.ring.pop_front()
            } else {
                None
            };
            inner.ring.push_back(Logged { seq, at_ms, event });
            old
        };
        drop(pushed_out); // outside the lock
    }

    pub fn boot_ms(&self) -> u64 {
        self.boot_ms
    }

    /// The number the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.inner.lock().next_seq
    }

    /// Events numbered after `since`: the newest `limit` of them, oldest
    /// first.
    pub fn since(&self, since: u64, limit: usize) -> Vec<EventView> {
        let inner = self.inner.lock();
        let newer = inner.ring.iter().filter(|l| l.seq > since).count();
        inner
            .ring
            .iter()
            .filter(|l| l.seq > since)
            .skip(newer.saturating_sub(limit))
            .map(|l| event_view(l.seq, l.at_ms, &l.event))
            .collect()
    }

    /// The last lag measured on the link from `peer`, and when.
    fn last_lag(&self, peer: &str) -> Option<LastLag> {
        self.inner.lock().lags.get(peer).copied()
    }
}

#[derive(Deserialize)]
struct Query {
    since: Option<u64>,
    limit: Option<usize>,
}

/// Mount `GET /admin/v1/replication` (a resource, so it lives beside the
/// node's own `/admin/v1/...` routes).
pub(crate) fn configure(cfg: &mut web::ServiceConfig, shared: Arc<Shared>) {
    cfg.service(
        web::resource("/admin/v1/replication")
            .app_data(web::Data::from(shared))
            .route(web::get().to(get_replication)),
    );
}

async fn get_replication(shared: web::Data<Shared>, q: web::Query<Query>) -> HttpResponse {
    HttpResponse::Ok().json(view(&shared, q.since.unwrap_or(0), q.limit))
}

/// The answer of `/admin/v1/replication` for this node.
pub(crate) fn view(shared: &Shared, since: u64, limit: Option<usize>) -> ReplicationView {
    let limit = limit.unwrap_or(DEFAULT_LIMIT).min(CAPACITY);
    let faults = shared.faults.get();
    let peers = shared.replica.lock().peers();
    let links = peers
        .into_iter()
        .map(|p| {
            let lag = shared.events.last_lag(&p.id);
            LinkView {
                cut: faults.drop.contains(&p.id),
                delay_ms: faults.delay_ms,
                up: p.up,
                queue_depth: p.queue_depth as u64,
                needs_resync: p.needs_resync,
                lag_ms: lag.map(|l| l.lag_ms),
                lag_at_ms: lag.map(|l| l.at_ms),
                peer: p.id,
            }
        })
        .collect();
    ReplicationView {
        node_id: shared.node_id.clone(),
        boot_ms: shared.events.boot_ms(),
        next_seq: shared.events.next_seq(),
        links,
        events: shared.events.since(since, limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessionlab_replication_core::Outcome;
    use sessionlab_session::{SessionId, Version};

    fn applied(from: &str, lag_us: Option<u64>) -> Event {
        Event::Applied {
            from: from.into(),
            to: "node-1".into(),
            kind: "upsert",
            id: SessionId::generate(),
            version: Some(Version::new(3, "node-2")),
            outcome: Outcome::Stored,
            lag_ms: lag_us.map(|us| us / 1000),
            lag_us,
        }
    }

    #[test]
    fn numbers_events_and_returns_only_newer_ones_oldest_first() {
        let log = EventLog::default();
        log.push(Event::PeerUp {
            node: "node-1".into(),
            peer: "node-2".into(),
        });
        log.push(applied("node-2", Some(2_500)));
        log.push(Event::PeerDown {
            node: "node-1".into(),
            peer: "node-3".into(),
        });
        assert_eq!(log.next_seq(), 4);
        let all = log.since(0, 100);
        let kinds: Vec<_> = all.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["peer_up", "upsert", "peer_down"]);
        assert_eq!(all[1].seq, 2);
        assert_eq!(all[1].peer.as_deref(), Some("node-2"));
        assert_eq!(all[1].version.as_deref(), Some("3@node-2"));
        assert_eq!(all[1].outcome.as_deref(), Some("stored"));
        assert_eq!(all[1].lag_ms, Some(2.5));
        assert_eq!(all[1].session.as_ref().map(String::len), Some(6));
        assert!(
            all[1].text.starts_with("node-2 -> node-1 upsert "),
            "{}",
            all[1].text
        );
        let newer: Vec<_> = log.since(2, 100).iter().map(|e| e.seq).collect();
        assert_eq!(newer, [3]);
        // A limit keeps the newest, still oldest first.
        let last_two: Vec<_> = log.since(0, 2).iter().map(|e| e.seq).collect();
        assert_eq!(last_two, [2, 3]);
    }

    #[test]
    fn stays_bounded_and_keeps_the_newest() {
        let log = EventLog::default();
        for _ in 0..CAPACITY + 40 {
            log.push(applied("node-2", None));
        }
        let all = log.since(0, usize::MAX);
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all.first().map(|e| e.seq), Some(41));
        assert_eq!(all.last().map(|e| e.seq), Some((CAPACITY + 40) as u64));
    }

    #[test]
    fn remembers_the_last_lag_per_incoming_link() {
        let log = EventLog::default();
        assert_eq!(log.last_lag("node-2"), None);
        log.push(applied("node-2", Some(4_000)));
        log.push(applied("node-3", Some(1_000)));
        // A repair (no lag) does not erase the last measured lag.
        log.push(applied("node-2", None));
        assert_eq!(log.last_lag("node-2").map(|l| l.lag_ms), Some(4.0));
        assert_eq!(log.last_lag("node-3").map(|l| l.lag_ms), Some(1.0));
    }
}
