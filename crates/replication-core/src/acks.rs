//! Acknowledgements: knowing when a write is safe on other nodes.
//!
//! With `--replication-ack none` the client is answered as soon as the write
//! is in local memory; if this node dies before the batch leaves, the write
//! is lost. That is Tomcat's `DeltaManager` in asynchronous mode, and the
//! lab measures what it loses. With `all` (Tomcat's synchronous mode) or
//! `quorum`, the client waits until enough peers confirm they applied it.
//!
//! The tracker is pure bookkeeping: the replica registers a write with the
//! peers it was queued to, feeds in `Ack` messages, peers going down and
//! ticks, and gets back completed writes with a [`ReplicationAck`]:
//!
//! - `all`: every peer that was up and got the write queued must ack. A peer
//!   that goes down while the write waits is no longer waited for (it will
//!   be repaired by resync). With no live peer the write completes at once.
//! - `quorum`: a majority of the whole cluster, this node included, so
//!   `cluster/2` peers. If too few peers are up to ever reach it, the write
//!   fails at once instead of waiting for the timeout.
//! - `sent`: no peer is asked to confirm anything. The write waits only
//!   for this node's own queues: it completes (`Sent`) once the batch that
//!   carries it has been handed to the transport for every peer it was
//!   queued to ([`AckTracker::on_sent`], fed by the replica when it emits a
//!   batch). A write queued behind a batch still in flight waits for that
//!   batch to finish first, since a peer has one batch in flight at a time.
//!   A peer going down is forgiven as in `all`; a queue dropped on
//!   overflow means the write never left for that peer
//!   ([`AckTracker::on_unsent`]), and it completes as `TimedOut`.
//! - Any mode, after `ack_timeout_ms` the write completes as `TimedOut`.
//!
//! At most `max_pending` writes wait at once; beyond that a write times out
//! immediately (load shedding rather than unbounded memory).

use std::collections::{BTreeMap, BTreeSet};

use sessionlab_session::ReplicationAck;

use crate::config::AckMode;

/// Bits of an ack id below its boot part: about a million ids per
/// millisecond between two boots before their ranges could meet.
const ACK_ID_BOOT_SHIFT: u32 = 20;

/// The first ack id of a replica that booted at `boot_ms`.
///
/// Ack ids are never reused across boots. A peer may still hold acks it
/// owes the previous incarnation (queued, or in a batch retried while the
/// node restarted); if the new incarnation counted again from 1, such a
/// stale ack could confirm a new write that no peer applied. Ids start at
/// the boot time shifted left by [`ACK_ID_BOOT_SHIFT`] (41 bits of
/// milliseconds, wrapping, below the handoff bit 62), so a later boot's
/// ids lie above every id the earlier one could have used. A simulation
/// that boots at 0 counts from 1 as before.
pub(crate) fn first_ack_id(boot_ms: u64) -> u64 {
    ((boot_ms & ((1 << 41) - 1)) << ACK_ID_BOOT_SHIFT) + 1
}

/// An ack id as traces and logs show it: its count within the boot
/// (`3`), `h3` for a handoff's. The boot part is left out: it is the same
/// for every id one incarnation sends, and 16 digits long.
pub(crate) struct AckLabel(pub u64);

impl std::fmt::Display for AckLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.0 & ((1 << ACK_ID_BOOT_SHIFT) - 1);
        if self.0 & crate::rebalance::HANDOFF_ACK_BIT != 0 {
            write!(f, "h{count}")
        } else {
            write!(f, "{count}")
        }
    }
}

/// A list of ack ids as [`AckLabel`]s: `[1, 2, h1]`.
pub(crate) struct AckLabels<'a>(pub &'a [u64]);

impl std::fmt::Display for AckLabels<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[")?;
        for (i, w) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", AckLabel(*w))?;
        }
        f.write_str("]")
    }
}

#[derive(Debug)]
struct Pending {
    waiting: BTreeSet<String>,
    acked: usize,
    required: usize,
    deadline_ms: u64,
}

/// What registering a write yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckWait {
    /// The mode is `none`: nothing to wait for.
    Async,
    /// Wait for the ack tracker to complete this write id.
    Pending(u64),
    /// Already decided (no peer to wait for, or too many pending writes).
    Done(ReplicationAck),
}

/// Writes waiting for acks; see the module docs.
#[derive(Debug)]
pub struct AckTracker {
    mode: AckMode,
    timeout_ms: u64,
    max_pending: usize,
    /// Cluster size (peers + this node), for quorum.
    cluster: usize,
    next_id: u64,
    pending: BTreeMap<u64, Pending>,
}

impl AckTracker {
    /// A tracker for a replica that booted at `boot_ms`: its write ids
    /// count up from [`first_ack_id`]`(boot_ms)`.
    pub fn new(
        mode: AckMode,
        timeout_ms: u64,
        max_pending: usize,
        peers: usize,
        boot_ms: u64,
    ) -> Self {
        AckTracker {
            mode,
            timeout_ms,
            max_pending,
            cluster: peers + 1,
            next_id: first_ack_id(boot_ms),
            pending: BTreeMap::new(),
        }
    }

    /// The peer set changed (dynamic membership): quorums of the writes
    /// registered from now on count over `peers + 1` members. Writes
    /// already waiting keep the requirement they were registered with.
    pub fn set_peers(&mut self, peers: usize) {
        self.cluster = peers + 1;
    }

    /// Start waiting for write `id`, queued to `queued` peers, whose group
    /// is not the whole cluster: in the backup topology, the session's
    /// `owners` owners. A quorum is then a majority of the owners:
    /// `owners / 2` peers when this node is an owner (it holds the write
    /// itself), `owners / 2 + 1` when it is not (it keeps no copy).
    pub fn register_for_owners(
        &mut self,
        id: Option<u64>,
        queued: Vec<String>,
        owners: usize,
        holds_here: bool,
        now_ms: u64,
    ) -> AckWait {
        let quorum = if holds_here {
            owners / 2
        } else {
            owners / 2 + 1
        };
        self.register_with(id, queued, quorum, now_ms)
    }

    /// The id the next write will carry in its `Upsert.ack`, if the mode
    /// waits for acks at all.
    pub fn next_write_id(&mut self) -> Option<u64> {
        if self.mode == AckMode::None {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        Some(id)
    }

    /// Start waiting for write `id`, which was queued to `queued` peers.
    pub fn register(&mut self, id: Option<u64>, queued: Vec<String>, now_ms: u64) -> AckWait {
        let quorum = self.cluster / 2;
        self.register_with(id, queued, quorum, now_ms)
    }

    /// `quorum`: the peers (besides this node) a quorum needs.
    fn register_with(
        &mut self,
        id: Option<u64>,
        queued: Vec<String>,
        quorum: usize,
        now_ms: u64,
    ) -> AckWait {
        let Some(id) = id else {
            return AckWait::Async;
        };
        let required = match self.mode {
            AckMode::None => return AckWait::Async,
            AckMode::Sent | AckMode::All => queued.len(),
            AckMode::Quorum => quorum,
        };
        if required == 0 {
            return AckWait::Done(self.completed(0));
        }
        if queued.len() < required || self.pending.len() >= self.max_pending {
            return AckWait::Done(ReplicationAck::TimedOut {
                acked: 0,
                expected: required,
            });
        }
        self.pending.insert(
            id,
            Pending {
                waiting: queued.into_iter().collect(),
                acked: 0,
                required,
                deadline_ms: now_ms.saturating_add(self.timeout_ms),
            },
        );
        AckWait::Pending(id)
    }

    /// A write that got what its mode waits for, from `peers` peers.
    fn completed(&self, peers: usize) -> ReplicationAck {
        if self.mode == AckMode::Sent {
            ReplicationAck::Sent { peers }
        } else {
            ReplicationAck::Acked { peers }
        }
    }

    fn settle(&mut self, id: u64) -> Option<(u64, ReplicationAck)> {
        let p = self.pending.get(&id)?;
        let outcome = if p.acked >= p.required {
            self.completed(p.acked)
        } else if p.acked + p.waiting.len() < p.required {
            // Not enough peers left to ever reach the requirement.
            ReplicationAck::TimedOut {
                acked: p.acked,
                expected: p.required,
            }
        } else {
            return None;
        };
        self.pending.remove(&id);
        Some((id, outcome))
    }

    /// `peer` applied these writes. Unknown ids (already settled, or from a
    /// previous incarnation) are ignored. Only `all` and `quorum` count
    /// acks (a `sent` write asks no peer for one).
    pub fn on_ack(&mut self, peer: &str, writes: &[u64]) -> Vec<(u64, ReplicationAck)> {
        if !self.mode.asks_peers() {
            return Vec::new();
        }
        self.count(peer, writes)
    }

    /// With `sent`: the batch carrying these writes was handed to the
    /// transport for `peer`. Ignored in the other modes.
    pub fn on_sent(&mut self, peer: &str, writes: &[u64]) -> Vec<(u64, ReplicationAck)> {
        if self.mode != AckMode::Sent {
            return Vec::new();
        }
        self.count(peer, writes)
    }

    /// With `sent`: these writes will never leave for `peer` (its queue was
    /// dropped on overflow; a resync repairs the peer later). They stop
    /// waiting for it without being forgiven, so they time out.
    pub fn on_unsent(&mut self, peer: &str, writes: &[u64]) -> Vec<(u64, ReplicationAck)> {
        if self.mode != AckMode::Sent {
            return Vec::new();
        }
        self.stop_waiting(peer, writes)
    }

    /// `peer` refused these conditional writes (consistent policy): it is
    /// no longer waited for, and the write fails once too few are left.
    pub fn on_refused(&mut self, peer: &str, writes: &[u64]) -> Vec<(u64, ReplicationAck)> {
        self.stop_waiting(peer, writes)
    }

    /// `peer` is no longer waited for on these writes; the ones that are
    /// decided by that (met, or failed for too few left) are done.
    fn stop_waiting(&mut self, peer: &str, writes: &[u64]) -> Vec<(u64, ReplicationAck)> {
        let mut done = Vec::new();
        for &id in writes {
            if self
                .pending
                .get_mut(&id)
                .is_some_and(|p| p.waiting.remove(peer))
            {
                done.extend(self.settle(id));
            }
        }
        done
    }

    fn count(&mut self, peer: &str, writes: &[u64]) -> Vec<(u64, ReplicationAck)> {
        let mut done = Vec::new();
        for &id in writes {
            let counted = self.pending.get_mut(&id).is_some_and(|p| {
                p.waiting.remove(peer) && {
                    p.acked += 1;
                    true
                }
            });
            if counted {
                done.extend(self.settle(id));
            }
        }
        done
    }

    /// `peer` went down: stop waiting for it.
    pub fn on_peer_down(&mut self, peer: &str) -> Vec<(u64, ReplicationAck)> {
        let ids: Vec<u64> = self
            .pending
            .iter_mut()
            .filter_map(|(id, p)| {
                if p.waiting.remove(peer) {
                    if matches!(self.mode, AckMode::All | AckMode::Sent) {
                        // "every live peer": a dead one is no longer expected.
                        p.required = p.required.saturating_sub(1);
                    }
                    Some(*id)
                } else {
                    None
                }
            })
            .collect();
        ids.into_iter().filter_map(|id| self.settle(id)).collect()
    }

    /// Complete every write whose deadline has passed.
    pub fn on_tick(&mut self, now_ms: u64) -> Vec<(u64, ReplicationAck)> {
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline_ms <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        expired
            .into_iter()
            .filter_map(|id| {
                let p = self.pending.remove(&id)?;
                Some((
                    id,
                    ReplicationAck::TimedOut {
                        acked: p.acked,
                        expected: p.required,
                    },
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed_out(acked: usize, expected: usize) -> ReplicationAck {
        ReplicationAck::TimedOut { acked, expected }
    }

    fn peers(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn all_waits_for_every_queued_peer_and_forgives_dead_ones() {
        let mut t = AckTracker::new(AckMode::All, 100, 10, 2, 0);
        let id = t.next_write_id();
        assert_eq!(t.register(id, peers(&["n2", "n3"]), 0), AckWait::Pending(1));
        assert!(
            t.on_ack("n2", &[1, 1, 99]).is_empty(),
            "a repeated ack counts once"
        );
        assert_eq!(
            t.on_peer_down("n3"),
            vec![(1, ReplicationAck::Acked { peers: 1 })]
        );
        assert_eq!(t.pending.len(), 0);
    }

    #[test]
    fn quorum_needs_a_majority_and_fails_fast_without_one() {
        let mut t = AckTracker::new(AckMode::Quorum, 100, 10, 4, 0); // cluster of 5
        let id = t.next_write_id();
        assert_eq!(
            t.register(id, peers(&["n2"]), 0),
            AckWait::Done(timed_out(0, 2))
        );
        let id = t.next_write_id();
        assert_eq!(
            t.register(id, peers(&["n2", "n3", "n4"]), 0),
            AckWait::Pending(2)
        );
        assert!(t.on_ack("n2", &[2]).is_empty());
        assert_eq!(
            t.on_ack("n4", &[2]),
            vec![(2, ReplicationAck::Acked { peers: 2 })]
        );
    }

    #[test]
    fn sent_waits_for_the_hand_over_to_every_queued_peer_and_no_ack() {
        let mut t = AckTracker::new(AckMode::Sent, 100, 10, 2, 0);
        let id = t.next_write_id();
        assert_eq!(t.register(id, peers(&["n2", "n3"]), 0), AckWait::Pending(1));
        assert!(
            t.on_ack("n2", &[1]).is_empty(),
            "acks are not what sent waits for"
        );
        assert!(t.on_sent("n2", &[1, 1]).is_empty(), "a repeat counts once");
        assert_eq!(
            t.on_sent("n3", &[1]),
            vec![(1, ReplicationAck::Sent { peers: 2 })]
        );
        // A dead peer is forgiven; a dropped queue is not.
        let a = t.next_write_id();
        assert_eq!(t.register(a, peers(&["n2", "n3"]), 0), AckWait::Pending(2));
        assert!(t.on_peer_down("n3").is_empty());
        assert_eq!(
            t.on_sent("n2", &[2]),
            vec![(2, ReplicationAck::Sent { peers: 1 })]
        );
        let b = t.next_write_id();
        assert_eq!(t.register(b, peers(&["n2", "n3"]), 0), AckWait::Pending(3));
        assert!(t.on_sent("n2", &[3]).is_empty());
        assert_eq!(t.on_unsent("n3", &[3]), vec![(3, timed_out(1, 2))]);
        // Nobody to hand it to: done at once.
        let c = t.next_write_id();
        assert_eq!(
            t.register(c, vec![], 0),
            AckWait::Done(ReplicationAck::Sent { peers: 0 })
        );
        // The other modes ignore hand-overs.
        let mut all = AckTracker::new(AckMode::All, 100, 10, 1, 0);
        let id = all.next_write_id();
        assert_eq!(all.register(id, peers(&["n2"]), 0), AckWait::Pending(1));
        assert!(all.on_sent("n2", &[1]).is_empty());
        assert!(all.on_unsent("n2", &[1]).is_empty());
    }

    #[test]
    fn quorum_follows_the_peer_set() {
        let mut t = AckTracker::new(AckMode::Quorum, 100, 10, 1, 0); // cluster of 2
        t.set_peers(4); // 5 members now: 2 peers make a quorum
        let id = t.next_write_id();
        assert_eq!(
            t.register(id, peers(&["n2"]), 0),
            AckWait::Done(timed_out(0, 2))
        );
        // Backup, K = 1, this node an owner: the other owner is a quorum.
        let id = t.next_write_id();
        assert_eq!(
            t.register_for_owners(id, peers(&["n2"]), 2, true, 0),
            AckWait::Pending(2)
        );
        assert_eq!(
            t.on_ack("n2", &[2]),
            vec![(2, ReplicationAck::Acked { peers: 1 })]
        );
        // Not an owner: a majority of the two owners is both of them.
        let id = t.next_write_id();
        assert_eq!(
            t.register_for_owners(id, peers(&["n2"]), 2, false, 0),
            AckWait::Done(timed_out(0, 2))
        );
        // This node owns it alone: nothing to wait for.
        let id = t.next_write_id();
        assert_eq!(
            t.register_for_owners(id, vec![], 1, true, 0),
            AckWait::Done(ReplicationAck::Acked { peers: 0 })
        );
    }

    #[test]
    fn deadlines_and_limits() {
        let mut t = AckTracker::new(AckMode::All, 100, 1, 1, 0);
        assert_eq!(t.register(None, vec![], 0), AckWait::Async);
        let a = t.next_write_id();
        assert_eq!(t.register(a, peers(&["n2"]), 0), AckWait::Pending(1));
        let b = t.next_write_id();
        assert!(matches!(
            t.register(b, peers(&["n2"]), 0),
            AckWait::Done(ReplicationAck::TimedOut { .. })
        ));
        assert!(t.on_tick(99).is_empty());
        assert_eq!(t.on_tick(100), vec![(1, timed_out(0, 1))]);
        let c = t.next_write_id();
        assert_eq!(
            t.register(c, vec![], 0),
            AckWait::Done(ReplicationAck::Acked { peers: 0 })
        );
    }
}
