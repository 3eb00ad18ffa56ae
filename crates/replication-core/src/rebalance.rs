//! Rebalancing: moving copies to their owners when the members change.
//!
//! In the backup topology a session lives on its `K + 1` owners, chosen by
//! rendezvous hashing over the current members ([`crate::ownership`]).
//! When a member joins, leaves or dies, the owners of some sessions change
//! (about `(K + 1) / n` of them), and two things must happen for every
//! such session:
//!
//! 1. **Every new owner gets a copy.** The owners that stayed push it by
//!    anti-entropy: a change of membership marks every peer for resync,
//!    so the digest rounds run back to back, and in the backup topology a
//!    round between two nodes covers only the ids *both* own
//!    ([`crate::antientropy`]). A node that joins thus receives exactly its
//!    share; after an owner dies, the survivors find the new owner lacking
//!    the copy and restore `K + 1` copies.
//! 2. **A node that is no longer an owner hands its copy over and drops
//!    it.** Its copy is sent to the session's owners as an upsert asking
//!    for an acknowledgement; once *every* owner acknowledged it, the local
//!    copy is removed, unless a newer write arrived meanwhile (then the
//!    newer copy is handed over in its turn) or ownership came back here.
//!    An owner that is down is waited for (the handoff is retried every
//!    `ack_timeout_ms`): it may be cut off rather than dead, and the copy
//!    here may be the only one besides the owners that acked. An owner
//!    that leaves the members changes the owners, and the copy is handed
//!    over again to the new ones.
//!
//! ```text
//!   members {A, B}  ->  {A, B, C}       session s: owners {A, B} -> {A, C}
//!
//!   A (kept s)     -- digest round with C (ids both own) --> C  lacks s: repair
//!   B (lost s)     -- upsert s ack#h -----------------------> A, C
//!   A, C           -- ack h ---------------------------------> B  drops its copy
//! ```
//!
//! Both paths may deliver the same copy to C; applying a copy twice
//! changes nothing (last writer wins, [`crate::order`]). The two paths are
//! not redundant in general: anti-entropy needs an owner that kept the copy
//! (after a join there always is one), the handoff needs the node that held
//! it (after a node leaves, its former backups are the only holders).
//!
//! | bound | what it limits |
//! |---|---|
//! | `rebalance_per_tick` ([`crate::ProtocolConfig`]) | handoffs started per tick, so a join does not flood the queues |
//! | `4 * rebalance_per_tick` | handoffs waiting for their acks at once |
//! | `ack_timeout_ms` | how long a handoff waits before it is tried again |
//! | the store | the ids waiting to be handed over are ids held here |
//!
//! A *pass* starts with a change of membership and ends when every peer
//! marked for resync by it finished its resync (or went down, or left) and
//! no copy is left to hand over or waiting for acks. It reports
//! [`Event::Rebalanced`](crate::Event::Rebalanced) with what it sent and how
//! long it took, and [`RebalanceView`] keeps the totals for status pages.
//! A change during a pass extends it (the pass keeps its start time).
//!
//! Handoff acks share the `Ack` message with write acks; their ids carry
//! [`HANDOFF_ACK_BIT`], far above any write id, so each goes to its own
//! bookkeeping.
//!
//! A write made on a node that does not own the session (a round-robin
//! request) is the same thing as a handoff: the node sends it to the
//! owners, and keeps its copy only until every owner acknowledged it
//! (under `--replication-ack all|quorum`, by the write's own ack; under
//! `none|sent`, by a handoff that follows). Dropping it at once would lose
//! an acknowledged write whenever the owners stop answering just after it
//! was queued (a partition): the write is forgiven for the peers that went
//! down, and no node would hold it.

use std::collections::{BTreeMap, BTreeSet};

use sessionlab_session::{SessionId, Version};

use crate::acks::first_ack_id;

/// Set in the ack id of every handoff upsert (write ids stay below it:
/// see [`crate::acks`]).
pub(crate) const HANDOFF_ACK_BIT: u64 = 1 << 62;

/// The rebalance as status pages show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RebalanceView {
    /// A pass is running (a change of membership not yet fully handled).
    pub in_progress: bool,
    /// Sessions this node sent for rebalances since it started: handoffs
    /// (one per session, however many owners it went to) and repairs made
    /// while a pass ran (one per peer repaired).
    pub sessions_moved: u64,
    /// Their bytes (approximate encoded size, counted per destination).
    pub bytes_moved: u64,
    /// How long the last finished pass took.
    pub last_took_ms: Option<u64>,
    /// Passes finished.
    pub passes: u64,
}

/// A running pass.
#[derive(Debug, Clone)]
pub(crate) struct Pass {
    pub started_ms: u64,
    /// Peers whose resync (marked by the change) has not finished.
    pub awaiting: BTreeSet<String>,
    pub sessions: u64,
    pub bytes: u64,
}

/// One copy handed over, waiting for the owners' acks.
#[derive(Debug, Clone)]
pub(crate) struct Handing {
    pub id: SessionId,
    pub version: Version,
    pub waiting: BTreeSet<String>,
    pub acked: usize,
    pub sent_ms: u64,
}

/// What became of a handoff after an ack or a peer's departure.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Still waiting for other owners.
    Waiting,
    /// Every owner acked: the copy may go if it is still the one sent.
    Acked { id: SessionId, version: Version },
    /// No owner is left to ack it: try again later.
    Retry(SessionId),
}

/// The rebalance bookkeeping of one replica; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Rebalancer {
    pub pass: Option<Pass>,
    /// Held copies this node does not own, to hand over.
    pub to_hand: BTreeSet<SessionId>,
    /// Handoffs in flight, by ack id.
    handing: BTreeMap<u64, Handing>,
    /// The ack id of each id in flight.
    by_id: BTreeMap<SessionId, u64>,
    next_ack: u64,
    pub view: RebalanceView,
}

impl Rebalancer {
    /// The bookkeeping of a replica that booted at `boot_ms`: its handoff
    /// ids, like its write ids, never repeat an earlier boot's.
    pub fn new(boot_ms: u64) -> Self {
        Rebalancer {
            next_ack: first_ack_id(boot_ms) - 1,
            ..Rebalancer::default()
        }
    }

    pub fn in_flight(&self) -> usize {
        self.handing.len()
    }

    pub fn is_handing(&self, id: &SessionId) -> bool {
        self.by_id.contains_key(id)
    }

    /// Start (or extend) a pass at `now_ms`, waiting for `peers` to resync.
    /// The handoffs in flight are cancelled: the owners they wait for may
    /// have changed, so their ids are handed over again.
    pub fn start_pass(&mut self, peers: impl IntoIterator<Item = String>, now_ms: u64) {
        let pass = self.pass.get_or_insert_with(|| Pass {
            started_ms: now_ms,
            awaiting: BTreeSet::new(),
            sessions: 0,
            bytes: 0,
        });
        pass.awaiting.extend(peers);
        self.view.in_progress = true;
        for (_, h) in std::mem::take(&mut self.handing) {
            self.to_hand.insert(h.id);
        }
        self.by_id.clear();
    }

    /// A handoff of `version` of `id` was queued to `owners`; returns its
    /// ack id. The caller counts the bytes with [`Rebalancer::count`].
    pub fn started(
        &mut self,
        id: SessionId,
        version: Version,
        owners: BTreeSet<String>,
        now_ms: u64,
    ) -> u64 {
        self.next_ack += 1;
        let ack = HANDOFF_ACK_BIT | self.next_ack;
        self.track(ack, id, version, owners, now_ms);
        ack
    }

    /// Track a copy sent under an ack id of its own: a write made on a
    /// node that does not own the session, whose upsert carries the
    /// write's ack id. The copy is dropped like a handed one, once every
    /// owner acked it.
    pub fn track(
        &mut self,
        ack: u64,
        id: SessionId,
        version: Version,
        owners: BTreeSet<String>,
        now_ms: u64,
    ) {
        if let Some(old) = self.by_id.remove(&id) {
            self.handing.remove(&old);
        }
        self.by_id.insert(id.clone(), ack);
        self.handing.insert(
            ack,
            Handing {
                id,
                version,
                waiting: owners,
                acked: 0,
                sent_ms: now_ms,
            },
        );
    }

    /// The ack id a handoff upsert will carry next (for building the
    /// message before [`Rebalancer::started`] records it).
    pub fn peek_ack(&self) -> u64 {
        HANDOFF_ACK_BIT | (self.next_ack + 1)
    }

    /// `sessions` copies in `bytes` were sent for the rebalance.
    pub fn count(&mut self, sessions: u64, bytes: u64) {
        self.view.sessions_moved += sessions;
        self.view.bytes_moved += bytes;
        if let Some(p) = &mut self.pass {
            p.sessions += sessions;
            p.bytes += bytes;
        }
    }

    fn remove(&mut self, ack: u64) -> Option<Handing> {
        let h = self.handing.remove(&ack)?;
        self.by_id.remove(&h.id);
        Some(h)
    }

    fn settle(&mut self, ack: u64) -> Settled {
        let Some(h) = self.handing.get(&ack) else {
            return Settled::Waiting;
        };
        if !h.waiting.is_empty() {
            return Settled::Waiting;
        }
        let acked = h.acked;
        let Some(h) = self.remove(ack) else {
            return Settled::Waiting;
        };
        if acked > 0 {
            Settled::Acked {
                id: h.id,
                version: h.version,
            }
        } else {
            Settled::Retry(h.id)
        }
    }

    /// `peer` acked handoff `ack` (unknown or repeated acks change nothing).
    pub fn on_ack(&mut self, peer: &str, ack: u64) -> Settled {
        let Some(h) = self.handing.get_mut(&ack) else {
            return Settled::Waiting;
        };
        if !h.waiting.remove(peer) {
            return Settled::Waiting;
        }
        h.acked += 1;
        self.settle(ack)
    }

    /// `peer` refused handoff `ack` (a conditional check, or its store was
    /// full): it is no longer waited for, and the copy is kept.
    pub fn on_refused(&mut self, peer: &str, ack: u64) -> Option<SessionId> {
        let h = self.handing.get_mut(&ack)?;
        if !h.waiting.remove(peer) {
            return None;
        }
        // A refusal never lets the copy go: retry once the others answered.
        h.acked = 0;
        match self.settle(ack) {
            Settled::Retry(id) => Some(id),
            _ => None,
        }
    }

    /// `peer` left the members: it is no longer waited for, by the
    /// handoffs or by the pass.
    pub fn on_peer_gone(&mut self, peer: &str) -> Vec<Settled> {
        if let Some(p) = &mut self.pass {
            p.awaiting.remove(peer);
        }
        let acks: Vec<u64> = self
            .handing
            .iter_mut()
            .filter_map(|(a, h)| h.waiting.remove(peer).then_some(*a))
            .collect();
        acks.into_iter().map(|a| self.settle(a)).collect()
    }

    /// Handoffs older than `timeout_ms`: given up, their ids handed again.
    pub fn expire(&mut self, now_ms: u64, timeout_ms: u64) {
        let old: Vec<u64> = self
            .handing
            .iter()
            .filter(|(_, h)| now_ms.saturating_sub(h.sent_ms) >= timeout_ms)
            .map(|(a, _)| *a)
            .collect();
        for a in old {
            if let Some(h) = self.remove(a) {
                self.to_hand.insert(h.id);
            }
        }
    }

    /// The pass is finished if nothing is left of it: returns what it did.
    pub fn finish(&mut self, now_ms: u64) -> Option<Pass> {
        let p = self.pass.as_ref()?;
        if !p.awaiting.is_empty() || !self.to_hand.is_empty() || !self.handing.is_empty() {
            return None;
        }
        let p = self.pass.take()?;
        self.view.in_progress = false;
        self.view.passes += 1;
        self.view.last_took_ms = Some(now_ms.saturating_sub(p.started_ms));
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_ids::id;

    fn owners(o: &[&str]) -> BTreeSet<String> {
        o.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_handoff_settles_when_every_live_owner_acked() {
        let mut r = Rebalancer::default();
        r.start_pass(["n2".to_owned()], 0);
        let v = Version::new(3, "n1");
        let ack = r.started(id('a'), v.clone(), owners(&["n2", "n3"]), 0);
        assert!(ack & HANDOFF_ACK_BIT != 0);
        assert!(r.is_handing(&id('a')));
        assert_eq!(r.on_ack("n2", ack), Settled::Waiting);
        assert_eq!(r.on_ack("n2", ack), Settled::Waiting, "a repeat");
        // n3 leaves the members before it acks: n2 was the only owner left.
        assert_eq!(
            r.on_peer_gone("n3"),
            vec![Settled::Acked {
                id: id('a'),
                version: v
            }]
        );
        assert!(!r.is_handing(&id('a')));
        assert!(r.finish(5).is_none(), "n2 has not resynced yet");
        r.on_peer_gone("n2");
        let p = r.finish(7).unwrap();
        assert_eq!(p.started_ms, 0);
        assert_eq!(r.view.last_took_ms, Some(7));
        assert_eq!(r.view.passes, 1);
        assert!(!r.view.in_progress);
    }

    #[test]
    fn unanswered_refused_and_interrupted_handoffs_are_tried_again() {
        let mut r = Rebalancer::default();
        r.start_pass([], 0);
        let a = r.started(id('a'), Version::new(1, "n1"), owners(&["n2"]), 0);
        let b = r.started(id('b'), Version::new(1, "n1"), owners(&["n2"]), 50);
        assert_eq!(
            r.on_peer_gone("n2"),
            vec![Settled::Retry(id('a')), Settled::Retry(id('b'))]
        );
        assert!(r.to_hand.is_empty(), "the caller re-queues retries");
        let c = r.started(id('c'), Version::new(1, "n1"), owners(&["n2"]), 100);
        assert_eq!(r.on_refused("n2", c), Some(id('c')));
        let d = r.started(id('d'), Version::new(1, "n1"), owners(&["n3"]), 100);
        r.expire(150, 100);
        assert!(r.to_hand.is_empty());
        r.expire(200, 100);
        assert!(r.to_hand.contains(&id('d')));
        assert_eq!(r.on_ack("n3", d), Settled::Waiting, "expired: forgotten");
        // A new change of membership re-hands what is in flight.
        let e = r.started(id('e'), Version::new(1, "n1"), owners(&["n3"]), 300);
        r.start_pass(["n4".to_owned()], 300);
        assert!(r.to_hand.contains(&id('e')));
        assert_eq!(r.on_ack("n3", e), Settled::Waiting);
        assert_eq!(r.in_flight(), 0);
        assert_eq!(r.on_ack("n2", a), Settled::Waiting, "settled before");
        assert_eq!(r.on_ack("n2", b), Settled::Waiting);
    }

    #[test]
    fn the_view_counts_what_passes_moved() {
        let mut r = Rebalancer::default();
        r.count(1, 100);
        assert_eq!(r.view.sessions_moved, 1, "counted outside a pass too");
        r.start_pass([], 10);
        r.count(2, 300);
        let p = r.finish(40).unwrap();
        assert_eq!((p.sessions, p.bytes), (2, 300));
        assert_eq!(
            r.view,
            RebalanceView {
                in_progress: false,
                sessions_moved: 3,
                bytes_moved: 400,
                last_took_ms: Some(30),
                passes: 1,
            }
        );
    }
}
