//! The replica: the protocol as a deterministic state machine.
//!
//! A [`Replica`] is one node's half of the replication protocol. It does no
//! I/O and reads no clock. Everything that happens to it is a method call
//! with the current time passed in:
//!
//! | input                     | when                                       |
//! |---------------------------|--------------------------------------------|
//! | [`upsert`](Replica::upsert), [`delete`](Replica::delete), [`touch`](Replica::touch) | a request on this node changed a session |
//! | [`on_batch`](Replica::on_batch)         | a batch arrived from a peer          |
//! | [`on_send_result`](Replica::on_send_result) | the transport finished sending a batch |
//! | [`tick`](Replica::tick)                 | time passed (every few milliseconds) |
//!
//! and everything it wants done is an [`Output`] collected in its outbox
//! ([`take_outputs`](Replica::take_outputs)): batches to send, writes whose
//! acks completed, and events for logs and metrics. The store it holds is
//! the node's [`MemoryStore`] (memory, not I/O): applying a change *is*
//! writing the store.
//!
//! Because of this, the same code runs under the tokio runtime (in the
//! `sessionlab-replication` crate) and under the simulation (`sim`, feature
//! `sim`), where a seeded network drops, duplicates, delays and reorders
//! batches and crashes nodes, and every run is reproducible from its seed.
//! This is the design of toydb's Raft node, and the reason it is testable
//! at all.
//!
//! ## The rules, in one place
//!
//! - **Versions** `(lamport, node)`: a local write takes the next Lamport
//!   value of the store's clock; every version seen moves the clock past it.
//! - **Last writer wins**: a copy replaces the held one only if its version
//!   is higher (equal versions, possible only after a crash, are ordered by
//!   a content digest: see [`crate::order`]). Every replica that sees the
//!   same writes keeps the same one, whatever order they came in. With
//!   `--replication-granularity attribute` the same rule applies per key of
//!   the data, and copies are merged rather than replaced
//!   ([`crate::granularity`]).
//! - **Last access is a maximum**: touches, upserts and repairs all keep the
//!   later last-access time, so idle expiry agrees everywhere.
//! - **Deletes are final**: see [`crate::tombstones`].
//! - **Expired copies are dropped** on arrival; expiry needs no message.
//! - **Bounded everything**: see [`crate::peer`] (queues), [`crate::acks`]
//!   (pending writes), [`crate::tombstones`], [`crate::antientropy`] and
//!   [`crate::snapshot`] (chunked transfers).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use sessionlab_session::{
    Applied, MemoryStore, ReplicationAck, Session, SessionId, StoreError, Version,
};

use crate::acks::{AckTracker, AckWait};
use crate::antientropy;
use crate::config::{AckMode, PartitionPolicy, ProtocolConfig, Topology};
use crate::granularity::{Granularity, canonical, merge_into, stamp_local};
use crate::message::{Batch, Delete, DigestEntry, Message, Rejected, SnapshotEntry, Upsert};
use crate::order;
use crate::ownership::OwnerMap;
use crate::peer::{InFlight, Outstanding, Peer, ResyncReason};
use crate::rebalance::{HANDOFF_ACK_BIT, RebalanceView, Rebalancer, Settled};
use crate::snapshot::{self, Join};
use crate::tombstones::Tombstones;

/// Something the replica wants done or reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this batch to `batch.to`, then report with `on_send_result`.
    Send(Batch),
    /// A write waiting for acks is decided.
    AckDone { write: u64, ack: ReplicationAck },
    /// Something to log and count.
    Event(Event),
}

/// What became of a data message applied here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new session.
    Stored,
    /// Replaced an older version (a last-writer-wins overwrite).
    Overwrote,
    /// Attribute granularity: merged key by key with the held copy, which
    /// had changes the incoming one did not (both kept).
    Merged,
    /// The held version is the same or newer.
    Stale,
    /// The id is deleted here; the copy was dropped.
    Tombstoned,
    /// The copy had already expired; dropped.
    Expired,
    /// The store refused it (full, too large).
    Rejected,
    /// A conditional write (consistent policy) made from an older copy than
    /// the one held here: neither applied nor acknowledged.
    Conflict,
    /// A delete removed the held copy.
    Removed,
    /// A delete for a copy not held here: only the tombstone is kept.
    Recorded,
    /// A touch moved the last access (or it was already later).
    Touched,
    /// A touch for a session not held here.
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Stored => "stored",
            Outcome::Overwrote => "overwrote",
            Outcome::Merged => "merged",
            Outcome::Stale => "stale",
            Outcome::Tombstoned => "tombstoned",
            Outcome::Expired => "expired",
            Outcome::Rejected => "rejected",
            Outcome::Conflict => "conflict",
            Outcome::Removed => "removed",
            Outcome::Recorded => "recorded",
            Outcome::Touched => "touched",
            Outcome::Unknown => "unknown",
        }
    }

    /// Whether the sender may count the write as applied here.
    fn acks(self) -> bool {
        !matches!(self, Outcome::Rejected | Outcome::Conflict)
    }
}

/// Events: the replication log, one readable line each (`Display`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A data message from `from` was applied on `to`.
    Applied {
        from: String,
        to: String,
        kind: &'static str,
        id: SessionId,
        version: Option<Version>,
        outcome: Outcome,
        /// Origin clock to apply, for fresh writes (not repairs).
        lag_ms: Option<u64>,
        /// The same in microseconds, when both ends have a lag clock.
        lag_us: Option<u64>,
    },
    PeerUp {
        node: String,
        peer: String,
    },
    PeerDown {
        node: String,
        peer: String,
    },
    PeerRestarted {
        node: String,
        peer: String,
    },
    ResyncNeeded {
        node: String,
        peer: String,
        reason: ResyncReason,
    },
    ResyncDone {
        node: String,
        peer: String,
    },
    SnapshotServed {
        node: String,
        to: String,
        entries: usize,
    },
    SnapshotReceived {
        node: String,
        from: String,
        entries: usize,
        last: bool,
    },
    Ready {
        node: String,
        caught_up: bool,
        entries: u64,
    },
    /// Backup topology: a rebalance pass (started by a change of
    /// membership) finished: `sessions` copies in `bytes` sent by this
    /// node, `took_ms` from the change to the end.
    Rebalanced {
        node: String,
        sessions: u64,
        bytes: u64,
        took_ms: u64,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Applied {
                from,
                to,
                kind,
                id,
                version,
                outcome,
                lag_ms,
                ..
            } => {
                write!(f, "{from} -> {to} {kind} {id}")?;
                if let Some(v) = version {
                    write!(f, " v={v}")?;
                }
                if lag_ms.is_none() && *kind != "touch" {
                    write!(f, " (repair)")?;
                }
                write!(f, " {}", outcome.as_str())?;
                if let Some(l) = lag_ms {
                    write!(f, " lag={l}ms")?;
                }
                Ok(())
            }
            Event::PeerUp { node, peer } => write!(f, "{node}: peer {peer} up"),
            Event::PeerDown { node, peer } => write!(f, "{node}: peer {peer} down"),
            Event::PeerRestarted { node, peer } => write!(f, "{node}: peer {peer} restarted"),
            Event::ResyncNeeded { node, peer, reason } => {
                write!(f, "{node}: peer {peer} needs resync ({})", reason.as_str())
            }
            Event::ResyncDone { node, peer } => {
                write!(f, "{node}: resync of {peer} complete (repairs queued)")
            }
            Event::SnapshotServed { node, to, entries } => {
                write!(f, "{node}: served a snapshot page of {entries} to {to}")
            }
            Event::SnapshotReceived {
                node,
                from,
                entries,
                last,
            } => write!(
                f,
                "{node}: snapshot page of {entries} from {from}{}",
                if *last { " (last)" } else { "" }
            ),
            Event::Ready {
                node,
                caught_up,
                entries,
            } => {
                if *caught_up {
                    write!(f, "{node}: ready, caught up ({entries} entries copied)")
                } else {
                    write!(
                        f,
                        "{node}: ready WITHOUT catching up (join timeout; {entries} entries copied)"
                    )
                }
            }
            Event::Rebalanced {
                node,
                sessions,
                bytes,
                took_ms,
            } => write!(
                f,
                "{node}: rebalanced ({sessions} copies, {bytes} bytes sent, {took_ms} ms)"
            ),
        }
    }
}

/// A local write's result: the stamped version and what to wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalWrite {
    pub version: Version,
    pub ack: AckWait,
}

/// A local delete's result: whether this node held the session, and what
/// to wait for (the same acks as a write: a logout answered under
/// `--replication-ack all` holds on every live peer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDelete {
    pub existed: bool,
    pub ack: AckWait,
}

/// One peer as status pages show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PeerView {
    pub id: String,
    pub up: bool,
    pub ready: bool,
    pub queue_depth: usize,
    pub needs_resync: bool,
    pub last_heard_ms: Option<u64>,
}

/// The members at one moment, to ask who owns what without rebuilding the
/// list per id (a rebalance asks for every held session).
struct Ownership<'a> {
    members: Vec<&'a str>,
    copies: usize,
    backup: bool,
}

impl<'a> Ownership<'a> {
    fn owners(&self, id: &SessionId) -> Vec<&'a str> {
        crate::ownership::session_owners(id, &self.members, self.copies)
    }

    fn owns(&self, id: &SessionId, member: &str) -> bool {
        !self.backup || self.owners(id).contains(&member)
    }
}

/// A write under the consistent policy, until its quorum decides it.
#[derive(Debug)]
struct PendingWrite {
    id: SessionId,
    version: Version,
    /// The copy held before it, restored if the write is refused.
    prev: Option<Session>,
}

/// One node's replication state machine; see the module docs.
pub struct Replica {
    id: String,
    cfg: ProtocolConfig,
    store: Arc<MemoryStore>,
    boot: u64,
    started_ms: u64,
    peers: BTreeMap<String, Peer>,
    tombstones: Tombstones,
    /// Local touches not yet sent, coalesced per session (latest wins).
    touches: BTreeMap<SessionId, u64>,
    next_touch_flush_ms: u64,
    next_heartbeat_ms: u64,
    acks: AckTracker,
    /// The ack mode writes use ([`ProtocolConfig::effective_ack_mode`]).
    ack_mode: AckMode,
    consistent: bool,
    /// Consistent policy: writes waiting for their quorum, to roll back if
    /// they are refused.
    pending_writes: BTreeMap<u64, PendingWrite>,
    join: Join,
    join_entries: u64,
    next_seq: u64,
    next_round: u64,
    outputs: Vec<Output>,
    /// Microseconds since the epoch, for the lag histogram only; see
    /// [`Replica::set_lag_clock`].
    lag_clock: Option<fn() -> u64>,
    /// Backup topology: handing copies to their owners ([`crate::rebalance`]).
    rebalance: Rebalancer,
    /// [`Replica::leave`] was called: owns nothing, hands everything over.
    leaving: bool,
}

impl Replica {
    /// A replica for node `id` replicating to `peers`, starting (joining)
    /// at `now_ms`. Without peers it is ready at once, unless
    /// [`ProtocolConfig::wait_for_peers`] (then its first
    /// [`add_peer`](Replica::add_peer) starts the join). In the backup
    /// topology a replica with peers is ready at once too: its owned
    /// sessions arrive by rebalance, not by a snapshot of everything.
    pub fn new(
        id: impl Into<String>,
        peers: impl IntoIterator<Item = String>,
        cfg: ProtocolConfig,
        store: Arc<MemoryStore>,
        now_ms: u64,
    ) -> Self {
        let id = id.into();
        let peers: BTreeMap<String, Peer> = peers
            .into_iter()
            .filter(|p| *p != id)
            .map(|p| (p.clone(), Peer::new(p)))
            .collect();
        let ack_mode = cfg.effective_ack_mode();
        let consistent = cfg.partition_policy == PartitionPolicy::Consistent;
        let acks = AckTracker::new(
            ack_mode,
            cfg.ack_timeout_ms,
            cfg.max_pending_acks,
            peers.len(),
            now_ms,
        );
        let mut r = Replica {
            tombstones: Tombstones::new(cfg.max_tombstones),
            next_touch_flush_ms: now_ms + cfg.touch_flush_ms,
            id,
            cfg,
            store,
            boot: now_ms,
            started_ms: now_ms,
            peers,
            touches: BTreeMap::new(),
            next_heartbeat_ms: now_ms,
            acks,
            ack_mode,
            consistent,
            pending_writes: BTreeMap::new(),
            join: Join::Waiting { after: None },
            join_entries: 0,
            next_seq: 1,
            next_round: 1,
            outputs: Vec::new(),
            lag_clock: None,
            rebalance: Rebalancer::new(now_ms),
            leaving: false,
        };
        let alone = r.peers.is_empty();
        if (alone && !r.cfg.wait_for_peers) || (!alone && r.cfg.topology.is_backup()) {
            r.become_ready(true, now_ms);
        }
        r
    }

    // ---- membership ---------------------------------------------------------

    /// A member joined (learnt by the membership layer at run time): start
    /// replicating to it. Returns `false` if it is this node or already a
    /// peer. The new peer starts *down* until it is heard from, like a
    /// configured one; quorums, acks and ownership count it at once.
    ///
    /// A replica still waiting for its first peer
    /// ([`ProtocolConfig::wait_for_peers`]) starts its join: in all-to-all
    /// it copies the snapshot from it as soon as it is heard; in backup it
    /// is ready at once (its sessions come by rebalance).
    pub fn add_peer(&mut self, id: &str, now_ms: u64) -> bool {
        if id == self.id || self.peers.contains_key(id) {
            return false;
        }
        self.peers.insert(id.to_owned(), Peer::new(id.to_owned()));
        self.acks.set_peers(self.peers.len());
        // Let it hear from us soon, so it sees us up (and ready).
        self.next_heartbeat_ms = now_ms;
        tracing::info!(node = %self.id, peer = id, members = self.peers.len() + 1, "peer added");
        if self.join != Join::Ready && self.cfg.topology.is_backup() {
            self.become_ready(true, now_ms);
        }
        if self.join == Join::Ready && !self.cfg.topology.is_backup() {
            // All-to-all: the member may be one that was declared dead and
            // removed (a long partition) and is back with what it held
            // then. Nothing was queued for it meanwhile (it was no peer),
            // so what it missed, deletes included, comes by a resync pass
            // now rather than by the slow periodic rounds. (Backup marks
            // every peer in `membership_changed`.)
            self.mark_resync(id, ResyncReason::MembershipChanged);
        }
        self.membership_changed(Some(id), now_ms);
        true
    }

    /// A member left or was declared dead by the membership layer: stop
    /// replicating to it and forget it. Writes waiting for its ack are
    /// settled as if it went down (under `all` it is no longer waited for;
    /// a quorum that can no longer be met fails). A join copying from it
    /// looks for another source. Returns `false` if it was not a peer.
    pub fn remove_peer(&mut self, id: &str, now_ms: u64) -> bool {
        if self.peers.remove(id).is_none() {
            return false;
        }
        self.acks.set_peers(self.peers.len());
        let done = self.acks.on_peer_down(id);
        self.settle_acks(done);
        if let Join::Fetching { from, after, .. } = &self.join {
            if from == id {
                self.join = Join::Waiting {
                    after: after.clone(),
                };
            }
        }
        tracing::info!(node = %self.id, peer = id, members = self.peers.len() + 1, "peer removed");
        self.peer_gone(id);
        self.membership_changed(None, now_ms);
        self.flush(now_ms);
        true
    }

    /// Backup topology: the members changed, so ownership did. Every peer
    /// that is up (and `added`, just learnt) is marked for resync, so the
    /// digest rounds over the ids both own run back to back, and every
    /// held copy this node no longer owns is queued to be handed over. See
    /// [`crate::rebalance`].
    fn membership_changed(&mut self, added: Option<&str>, now_ms: u64) {
        if !self.cfg.topology.is_backup() || self.join != Join::Ready {
            return;
        }
        // A leaving node repairs no one (it owns nothing): its pass is
        // its handoffs alone.
        let peers: Vec<String> = self
            .peers
            .values()
            .filter(|p| !self.leaving && (p.up || Some(p.id.as_str()) == added))
            .map(|p| p.id.clone())
            .collect();
        for pid in &peers {
            self.mark_resync(pid, ResyncReason::MembershipChanged);
        }
        self.rebalance.start_pass(peers, now_ms);
        let ownership = self.ownership();
        let me = self.id.as_str();
        let lost: Vec<SessionId> = self
            .store
            .ids_in(None, None, None)
            .into_iter()
            .filter(|id| !ownership.owns(id, me))
            .collect();
        self.rebalance.to_hand.extend(lost);
    }

    /// Whether data may be queued for `p` now (see
    /// [`send_to`](Replica::send_to)).
    fn reachable(&self, p: &Peer) -> bool {
        p.up || (self.cfg.topology.is_backup() && p.last_heard_ms.is_none())
    }

    /// A peer left: the rebalance stops waiting for it.
    fn peer_gone(&mut self, pid: &str) {
        for s in self.rebalance.on_peer_gone(pid) {
            self.handoff_settled(s);
        }
    }

    /// The current members, to compute owners many times over.
    fn ownership(&self) -> Ownership<'_> {
        // A leaving node owns nothing: every session's owners are chosen
        // among the others, the members it will leave behind.
        let me = (!self.leaving).then_some(self.id.as_str());
        let members: Vec<&str> = me
            .into_iter()
            .chain(self.peers.keys().map(String::as_str))
            .collect();
        Ownership {
            copies: self.cfg.topology.copies(members.len()),
            backup: self.cfg.topology.is_backup(),
            members,
        }
    }

    /// Backup topology: this node is about to stop gracefully. From now on
    /// it owns nothing: every copy it holds is handed to its owners among
    /// the other members, and dropped once they all acked it (a pass, with
    /// its [`Event::Rebalanced`]); writes made here go to the owners. The
    /// caller waits (bounded) until [`rebalance_view`](Self::rebalance_view)
    /// shows no pass in progress, then announces its leave and stops: the
    /// sessions survive even if the next owner to go leaves at once.
    /// Returns `false` in all-to-all (every member holds everything:
    /// nothing to hand over) or if already leaving.
    pub fn leave(&mut self, now_ms: u64) -> bool {
        if !self.cfg.topology.is_backup() || self.leaving {
            return false;
        }
        self.leaving = true;
        tracing::info!(node = %self.id, held = self.store.len(), "leaving: handing every session over");
        self.membership_changed(None, now_ms);
        true
    }

    /// The membership layer found that this node is the first member (a
    /// DNS name that resolves to this node alone): a replica still waiting
    /// for its first peer ([`ProtocolConfig::wait_for_peers`]) serves from
    /// now on, with nothing to catch up on. Returns `false` if it was ready
    /// already or has peers (then its join runs as usual).
    pub fn serve_alone(&mut self, now_ms: u64) -> bool {
        if self.join == Join::Ready || !self.peers.is_empty() {
            return false;
        }
        self.become_ready(true, now_ms);
        true
    }

    /// Whether [`leave`](Self::leave) was called.
    pub fn is_leaving(&self) -> bool {
        self.leaving
    }

    /// The rebalance as status pages show it.
    pub fn rebalance_view(&self) -> RebalanceView {
        self.rebalance.view.clone()
    }

    /// The replication topology ([`ProtocolConfig::topology`]).
    pub fn topology(&self) -> Topology {
        self.cfg.topology
    }

    /// Every member as this replica sees them: itself and its peers (up or
    /// not), sorted.
    pub fn members(&self) -> Vec<String> {
        let mut m: Vec<String> = self.peers.keys().cloned().collect();
        let at = m.binary_search(&self.id).unwrap_or_else(|i| i);
        m.insert(at, self.id.clone());
        m
    }

    /// The members that keep a copy of session `id`. Backup: its `K + 1`
    /// owners by rendezvous hashing over [`members`](Replica::members),
    /// the primary first ([`crate::ownership::owners`]); all-to-all: every
    /// member, this node first.
    pub fn owners_of(&self, id: &SessionId) -> Vec<String> {
        match self.cfg.topology {
            Topology::AllToAll => std::iter::once(self.id.clone())
                .chain(self.peers.keys().cloned())
                .collect(),
            Topology::Backup { .. } => self
                .ownership()
                .owners(id)
                .into_iter()
                .map(str::to_owned)
                .collect(),
        }
    }

    /// Backup topology: the members and copy count [`owners_of`] uses
    /// now, owned, to compute owners without holding the replica; `None`
    /// in all-to-all (every member holds everything).
    ///
    /// [`owners_of`]: Replica::owners_of
    pub fn owner_map(&self) -> Option<OwnerMap> {
        let o = self.ownership();
        o.backup.then(|| OwnerMap {
            members: o.members.iter().map(|m| (*m).to_owned()).collect(),
            copies: o.copies,
        })
    }

    /// Whether this node is one of the session's owners (always, in
    /// all-to-all).
    pub fn owns(&self, id: &SessionId) -> bool {
        match self.cfg.topology {
            Topology::AllToAll => true,
            Topology::Backup { .. } => self.owners_of(id).contains(&self.id),
        }
    }

    /// A fresh session id this node owns, so that the node that creates a
    /// session (the one the sticky load balancer keeps sending its user
    /// to) holds a copy and serves it locally. Backup: draws from
    /// `generate` until this node is an owner, at most `64 * members`
    /// draws (a miss has probability `1 - (K + 1) / n` per draw, so 64 n
    /// draws all missing is below `e^-64`), then keeps the last draw;
    /// all-to-all: the first draw.
    pub fn pick_owned_id(&self, mut generate: impl FnMut() -> SessionId) -> SessionId {
        let mut id = generate();
        if !self.cfg.topology.is_backup() {
            return id;
        }
        let draws = 64 * (self.peers.len() + 1);
        for _ in 1..draws {
            if self.owns(&id) {
                break;
            }
            id = generate();
        }
        id
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Give the replica a microsecond wall clock, used for one thing only:
    /// stamping fresh writes with `origin_us` and measuring the lag of the
    /// ones received. Whole milliseconds (the protocol's time) are too
    /// coarse for a lag that is mostly below one. The protocol itself never
    /// reads this clock, so the simulation (which leaves it unset) stays
    /// deterministic.
    pub fn set_lag_clock(&mut self, now_us: fn() -> u64) {
        self.lag_clock = Some(now_us);
    }

    fn lag_stamp(&self) -> Option<u64> {
        self.lag_clock.map(|now_us| now_us())
    }

    fn lag_since(&self, origin_us: Option<u64>) -> Option<u64> {
        let now_us = self.lag_clock?;
        origin_us.map(|o| now_us().saturating_sub(o))
    }

    pub fn store(&self) -> &Arc<MemoryStore> {
        &self.store
    }

    pub fn config(&self) -> &ProtocolConfig {
        &self.cfg
    }

    /// Whether this replica has caught up after starting (or gave up).
    pub fn is_ready(&self) -> bool {
        self.join == Join::Ready
    }

    pub fn tombstones(&self) -> &Tombstones {
        &self.tombstones
    }

    pub fn peers(&self) -> Vec<PeerView> {
        self.peers
            .values()
            .map(|p| PeerView {
                id: p.id.clone(),
                up: p.up,
                ready: p.ready,
                queue_depth: p.queue_depth(),
                needs_resync: p.needs_resync,
                last_heard_ms: p.last_heard_ms,
            })
            .collect()
    }

    /// Take everything the replica wants done.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outputs)
    }

    fn event(&mut self, e: Event) {
        self.outputs.push(Output::Event(e));
    }

    // ---- local changes ------------------------------------------------

    /// A request on this node wrote `session`: store it with a new version
    /// and queue it for every live peer.
    ///
    /// A write to a deleted id is refused with [`StoreError::Conflict`]
    /// (it raced the logout, and the logout wins).
    pub fn upsert(&mut self, mut session: Session, now_ms: u64) -> Result<LocalWrite, StoreError> {
        if self.tombstones.contains(&session.id) {
            return Err(StoreError::Conflict);
        }
        if self.consistent {
            self.check_majority()?;
            // A write made from a write still waiting for its quorum would
            // pass every peer's check (it is newer than what they hold) and
            // carry the waiting write with it even if that one is refused.
            if self.is_pending(&session.id) {
                return Err(StoreError::NoMajority(
                    "an earlier write of this session is still waiting for a majority \
                     (--partition-policy consistent)"
                        .to_owned(),
                ));
            }
        }
        // Only the consistent policy needs the held copy itself (to roll
        // back to); otherwise its last access is all a write needs of it.
        let held = if self.consistent {
            self.store.get_raw(&session.id)
        } else {
            None
        };
        let held_access = match &held {
            Some(h) => Some(h.last_access_ms),
            None if self.consistent => None,
            None => self.store.last_access_of(&session.id),
        };
        if let Some(a) = held_access {
            session.last_access_ms = session.last_access_ms.max(a);
        }
        // Backup: who keeps the session. A node that is not an owner (a
        // round-robin request, or ownership moved) stamps the write and
        // sends it to the owners, keeping no copy. It usually holds none
        // either (it read the session from an owner), so the version it
        // read cannot be checked here: its clock moves past it, and the
        // write is stamped as new.
        let owners = self.backup_owners(&session.id);
        let owner_here = owners.as_ref().is_none_or(|o| o.contains(&self.id));
        if !owner_here && self.store.last_access_of(&session.id).is_none() {
            self.store.observe(&session.version);
            session.version = Version::default();
        }
        // The version the write is made from (`0@`: a new session).
        let base = session.version.clone();
        let stored = match self.cfg.granularity {
            Granularity::Session => self.store.put_local(session)?,
            Granularity::Attribute => {
                // A merge can change the held copy's content without
                // raising its version (a late copy with an older version
                // that brings another key): the stamps then differ from
                // the ones read, and the write must be replayed on the
                // merged copy, or its stale value of that key would be
                // stamped as a change. The stamps name every key's write,
                // so equal version and stamps mean the copy read.
                let read = (session.version != Version::default()).then(|| session.stamps.clone());
                self.store.put_local_with(session, |held, new| {
                    if let (Some(read), Some(held)) = (&read, held) {
                        if held.stamps != *read {
                            return false;
                        }
                    }
                    stamp_local(held, new);
                    true
                })?
            }
        };
        let version = stored.version.clone();
        let id = stored.id.clone();
        let write = self.acks.next_write_id();
        let mode = self.ack_mode;
        let targets: Option<Vec<String>> = owners
            .as_ref()
            .map(|o| o.iter().filter(|m| **m != self.id).cloned().collect());
        let queued = self.send_to(
            targets.as_deref(),
            Message::Upsert(
                Upsert {
                    session: stored,
                    origin_ms: Some(now_ms),
                    origin_us: self.lag_stamp(),
                    // `sent` waits for its own queues: no peer is asked.
                    ack: write.filter(|_| mode.asks_peers()),
                    base: self.consistent.then_some(base),
                }
                .into(),
            ),
            write.filter(|_| mode == AckMode::Sent),
        );
        if !owner_here {
            // Not an owner: the copy stays until every owner has it,
            // then goes (see `crate::rebalance`). With acks asked, the
            // write's own ack tells; otherwise (or if no owner could take
            // it now) a handoff follows.
            match write.filter(|_| mode.asks_peers() && !queued.is_empty()) {
                Some(w) => self.rebalance.track(
                    w,
                    id.clone(),
                    version.clone(),
                    targets.iter().flatten().cloned().collect(),
                    now_ms,
                ),
                None => {
                    self.rebalance.to_hand.insert(id.clone());
                }
            }
        }
        let ack = match &owners {
            None => self.acks.register(write, queued, now_ms),
            Some(o) => self
                .acks
                .register_for_owners(write, queued, o.len(), owner_here, now_ms),
        };
        if self.consistent {
            let pending = PendingWrite {
                id,
                version: version.clone(),
                prev: held,
            };
            match &ack {
                AckWait::Pending(w) => {
                    self.pending_writes.insert(*w, pending);
                }
                AckWait::Done(ReplicationAck::TimedOut { acked, expected }) => {
                    let refused = format!(
                        "{acked} of the {expected} peers a majority needs could take the write \
                         (--partition-policy consistent)"
                    );
                    self.roll_back(pending);
                    self.flush(now_ms);
                    return Err(StoreError::NoMajority(refused));
                }
                _ => {}
            }
        }
        self.flush(now_ms);
        Ok(LocalWrite { version, ack })
    }

    /// A request on this node deleted the session (logout). Leaves a
    /// tombstone and queues the delete **whether or not the session is
    /// held here**: the cookie may name a session written on a node this one
    /// cannot hear (a partition), and the logout must still win there after
    /// the heal. Returns whether the session existed here.
    ///
    /// The tombstone of a held session lasts until that session's absolute
    /// expiry plus the grace; for an id not held here the creation time is
    /// unknown, so it lasts `absolute_timeout_ms` from now plus the grace,
    /// which is never earlier than the session's own end.
    pub fn delete(&mut self, id: &SessionId, now_ms: u64) -> bool {
        self.delete_acked(id, now_ms).existed
    }

    /// [`delete`](Replica::delete), and what the caller must wait for
    /// before it answers: with acks `all` or `quorum` the delete waits for
    /// the peers like a write does ([`LocalWrite::ack`]), so a logout is
    /// not answered while the old cookie still works on a live peer.
    pub fn delete_acked(&mut self, id: &SessionId, now_ms: u64) -> LocalDelete {
        let old = self.store.remove(id);
        let version = self.store.next_version();
        let lifetime_end = match &old {
            Some(old) => old.created_ms.saturating_add(old.absolute_timeout_ms),
            None => now_ms.saturating_add(self.cfg.absolute_timeout_ms),
        };
        let expires_ms = lifetime_end.saturating_add(self.cfg.tombstone_grace_ms);
        self.tombstones
            .insert(id.clone(), version.clone(), expires_ms);
        self.touches.remove(id);
        let write = self.acks.next_write_id();
        let mode = self.ack_mode;
        let queued = self.broadcast(
            Message::Delete(Delete {
                id: id.clone(),
                version,
                expires_ms,
                origin_ms: Some(now_ms),
                origin_us: self.lag_stamp(),
                ack: write.filter(|_| mode.asks_peers()),
            }),
            write.filter(|_| mode == AckMode::Sent),
        );
        // Never rolled back, whatever the partition policy: a tombstone is
        // final, and a logout must hold here even without a majority.
        let ack = if self.cfg.topology.is_backup() {
            // The delete goes to every member, but what the ack promises is
            // that the owners hold the tombstone: the others hold no copy
            // and answer a read from the owners. So only the owners' acks
            // count, as for a write (a quorum of two non-owners is none).
            let owners = self.owners_of(id);
            let owner_here = owners.contains(&self.id);
            let queued: Vec<String> = queued.into_iter().filter(|p| owners.contains(p)).collect();
            self.acks
                .register_for_owners(write, queued, owners.len(), owner_here, now_ms)
        } else {
            self.acks.register(write, queued, now_ms)
        };
        self.flush(now_ms);
        LocalDelete {
            existed: old.is_some(),
            ack,
        }
    }

    /// A request on this node used the session at `at_ms`. The store is
    /// updated at once; peers get the latest touch per session every
    /// `touch_flush_ms` (coalesced: a busy user costs one message per
    /// interval, not one per request).
    ///
    /// Backup topology: a node that is not an owner (and holds no copy)
    /// still sends the touch to the owners, since the request read the
    /// session from one of them and its use must move their idle expiry;
    /// it returns `false` (not held here).
    pub fn touch(&mut self, id: &SessionId, at_ms: u64, now_ms: u64) -> bool {
        if !self.store.touch_at(id, at_ms) {
            if self.cfg.topology.is_backup() && !self.owns(id) {
                self.coalesce_touch(id, at_ms, now_ms);
            }
            return false;
        }
        self.coalesce_touch(id, at_ms, now_ms);
        true
    }

    fn coalesce_touch(&mut self, id: &SessionId, at_ms: u64, now_ms: u64) {
        let at = self.touches.entry(id.clone()).or_insert(at_ms);
        *at = (*at).max(at_ms);
        if self.touches.len() >= self.cfg.queue_limit / 2 {
            self.flush_touches(now_ms);
        }
    }

    fn flush_touches(&mut self, now_ms: u64) {
        for (id, at_ms) in std::mem::take(&mut self.touches) {
            // Backup: to the session's other owners only.
            let targets = self.other_owners(&id);
            self.send_to(targets.as_deref(), Message::Touch { id, at_ms }, None);
        }
        self.flush(now_ms);
    }

    /// Backup: the owners of `id`, primary first; all-to-all: `None`
    /// (every peer).
    fn backup_owners(&self, id: &SessionId) -> Option<Vec<String>> {
        self.cfg.topology.is_backup().then(|| self.owners_of(id))
    }

    /// Backup: the owners of `id` other than this node; all-to-all: `None`.
    fn other_owners(&self, id: &SessionId) -> Option<Vec<String>> {
        self.backup_owners(id)
            .map(|o| o.into_iter().filter(|m| *m != self.id).collect())
    }

    /// Queue a data message for every live peer; returns the peers it was
    /// queued to. Peers that are down, or whose queue overflows, are marked
    /// for resync instead. `mark`: the `sent` write the message carries.
    fn broadcast(&mut self, msg: Message, mark: Option<u64>) -> Vec<String> {
        self.send_to(None, msg, mark)
    }

    /// [`broadcast`](Replica::broadcast) to the peers in `targets` only
    /// (`None`: every peer).
    fn send_to(
        &mut self,
        targets: Option<&[String]>,
        msg: Message,
        mark: Option<u64>,
    ) -> Vec<String> {
        let mut queued = Vec::new();
        let mut missed = Vec::new();
        let backup = self.cfg.topology.is_backup();
        for (pid, p) in self.peers.iter_mut() {
            if targets.is_some_and(|t| !t.contains(pid)) {
                continue;
            }
            // Backup: a member just learnt, not heard from yet, gets its
            // copies queued (it is about to be heard; a write under
            // `ack=all` waits for it rather than completing with a copy
            // short). All-to-all keeps its rule: down until heard.
            if !(p.up || (backup && p.last_heard_ms.is_none())) {
                if !p.needs_resync {
                    missed.push((pid.clone(), ResyncReason::PeerDown));
                }
                continue;
            }
            match p.push_data(msg.clone(), &self.cfg) {
                Ok(()) => {
                    if let Some(w) = mark {
                        p.mark_last(w);
                    }
                    queued.push(pid.clone())
                }
                Err(_) => missed.push((pid.clone(), ResyncReason::QueueOverflow)),
            }
        }
        for (pid, reason) in missed {
            self.mark_resync(&pid, reason);
        }
        queued
    }

    fn mark_resync(&mut self, pid: &str, reason: ResyncReason) {
        let Some(p) = self.peers.get_mut(pid) else {
            return;
        };
        // Restart the pass: what was lost may lie before the cursor.
        p.ae.cursor = None;
        p.ae.outstanding = None;
        p.ae.pass_is_resync = false;
        if !p.needs_resync {
            p.needs_resync = true;
            let e = Event::ResyncNeeded {
                node: self.id.clone(),
                peer: pid.to_owned(),
                reason,
            };
            self.event(e);
        }
    }

    // ---- applying changes from peers ------------------------------------

    fn apply_session(&mut self, s: Session, now_ms: u64) -> Outcome {
        if self.tombstones.contains(&s.id) {
            self.store.observe(&s.version);
            return Outcome::Tombstoned;
        }
        if s.is_expired(now_ms) {
            self.store.observe(&s.version);
            return Outcome::Expired;
        }
        if self.cfg.granularity == Granularity::Attribute {
            return self.merge_session(s);
        }
        let id = s.id.clone();
        let incoming_access = s.last_access_ms;
        let mut held_access = None;
        // The content digest is computed only on a version tie.
        let applied = self.store.apply_by(s, |incoming, held| {
            held_access = Some(held.last_access_ms);
            order::beats_by(incoming, held)
        });
        match applied {
            Applied::Stored => Outcome::Stored,
            Applied::Overwrote => {
                if let Some(a) = held_access.filter(|a| *a > incoming_access) {
                    self.store.touch_at(&id, a);
                }
                Outcome::Overwrote
            }
            Applied::Stale => {
                self.store.touch_at(&id, incoming_access);
                Outcome::Stale
            }
            Applied::Rejected(e) => self.refused(&id, &e),
        }
    }

    /// Attribute granularity: merge a peer's copy into the held one key by
    /// key ([`crate::granularity`]); the merged copy carries the later last
    /// access of the two.
    fn merge_session(&mut self, s: Session) -> Outcome {
        let s = canonical(s);
        let id = s.id.clone();
        let incoming_access = s.last_access_ms;
        let mut overwrite = false;
        let applied = self.store.apply_merged(s, |held, incoming| {
            let (merged, whole) = merge_into(held, incoming)?;
            overwrite = whole;
            Some(merged)
        });
        match applied {
            Applied::Stored => Outcome::Stored,
            Applied::Overwrote if overwrite => Outcome::Overwrote,
            Applied::Overwrote => Outcome::Merged,
            Applied::Stale => {
                self.store.touch_at(&id, incoming_access);
                Outcome::Stale
            }
            Applied::Rejected(e) => self.refused(&id, &e),
        }
    }

    fn refused(&self, id: &SessionId, e: &StoreError) -> Outcome {
        tracing::warn!(node = %self.id, id = %id, error = %e, "replicated session refused by the store");
        Outcome::Rejected
    }

    fn apply_delete(&mut self, d: Delete, now_ms: u64) -> Outcome {
        self.store.observe(&d.version);
        let removed = self.store.remove(&d.id).is_some();
        self.touches.remove(&d.id);
        if d.expires_ms > now_ms {
            self.tombstones.insert(d.id, d.version, d.expires_ms);
        }
        if removed {
            Outcome::Removed
        } else {
            Outcome::Recorded
        }
    }

    /// A batch arrived. Refused whole if it is misaddressed, from a stranger
    /// or oversized; otherwise every message is applied in order.
    pub fn on_batch(&mut self, batch: Batch, now_ms: u64) -> Result<(), Rejected> {
        if batch.to != self.id {
            return Err(Rejected::Misrouted(batch.to));
        }
        if !self.peers.contains_key(&batch.from) {
            return Err(Rejected::UnknownPeer(batch.from));
        }
        batch.validate()?;
        let from = batch.from;
        self.heard(&from, now_ms);
        for m in batch.messages {
            self.on_message(&from, m, now_ms);
        }
        self.flush(now_ms);
        Ok(())
    }

    fn heard(&mut self, from: &str, now_ms: u64) {
        let Some(p) = self.peers.get_mut(from) else {
            return;
        };
        p.last_heard_ms = Some(now_ms);
        if !p.up {
            p.up = true;
            p.ae.next_round_ms = now_ms;
            let e = Event::PeerUp {
                node: self.id.clone(),
                peer: from.to_owned(),
            };
            self.event(e);
        }
    }

    fn applied(
        &mut self,
        from: &str,
        kind: &'static str,
        id: SessionId,
        version: Option<Version>,
        outcome: Outcome,
        lag: Option<(u64, Option<u64>)>,
    ) {
        let e = Event::Applied {
            from: from.to_owned(),
            to: self.id.clone(),
            kind,
            id,
            version,
            outcome,
            lag_ms: lag.map(|(ms, _)| ms),
            lag_us: lag.and_then(|(_, us)| us),
        };
        self.event(e);
    }

    fn on_message(&mut self, from: &str, msg: Message, now_ms: u64) {
        match msg {
            Message::Upsert(u) => {
                let u = u.into_inner();
                let id = u.session.id.clone();
                let version = u.session.version.clone();
                let conflict = u
                    .base
                    .as_ref()
                    .is_some_and(|b| self.conflicts(&u.session, b));
                let outcome = if conflict {
                    self.store.observe(&version);
                    // Tell the writer at once, with the newer copy after it
                    // (unless that copy is a write of ours still waiting for
                    // its own quorum: it may yet be refused).
                    let held = self.store.get_raw(&id).filter(|_| !self.is_pending(&id));
                    if let Some(p) = self.peers.get_mut(from) {
                        if let Some(w) = u.ack {
                            p.push_refusal(w);
                        }
                        if let Some(h) = held {
                            let repair = Message::repair(h);
                            if p.push_data(repair, &self.cfg).is_err() {
                                self.mark_resync(from, ResyncReason::QueueOverflow);
                            }
                        }
                    }
                    Outcome::Conflict
                } else {
                    self.apply_session(u.session, now_ms)
                };
                if matches!(
                    outcome,
                    Outcome::Stored | Outcome::Overwrote | Outcome::Merged
                ) && !self.owns(&id)
                {
                    // Backup: a copy this node does not own (the sender's
                    // view of the members differs, or a handoff crossed a
                    // change): hand it on to its owners.
                    self.rebalance.to_hand.insert(id.clone());
                }
                if let (Some(w), Some(p)) =
                    (u.ack.filter(|_| outcome.acks()), self.peers.get_mut(from))
                {
                    p.push_ack(w);
                }
                let lag = u
                    .origin_ms
                    .map(|o| (now_ms.saturating_sub(o), self.lag_since(u.origin_us)));
                self.applied(from, "upsert", id, Some(version), outcome, lag);
            }
            Message::Delete(d) => {
                let id = d.id.clone();
                let version = d.version.clone();
                let lag = d
                    .origin_ms
                    .map(|o| (now_ms.saturating_sub(o), self.lag_since(d.origin_us)));
                let ack = d.ack;
                let outcome = self.apply_delete(d, now_ms);
                // A delete is always applied (a tombstone is kept even for
                // an id not held), so it is always acknowledged.
                if let (Some(w), Some(p)) = (ack, self.peers.get_mut(from)) {
                    p.push_ack(w);
                }
                self.applied(from, "delete", id, Some(version), outcome, lag);
            }
            Message::Touch { id, at_ms } => {
                let outcome = if self.store.touch_at(&id, at_ms) {
                    Outcome::Touched
                } else {
                    Outcome::Unknown
                };
                self.applied(from, "touch", id, None, outcome, None);
            }
            Message::Heartbeat { boot, ready } => {
                let restarted = {
                    let Some(p) = self.peers.get_mut(from) else {
                        return;
                    };
                    let restarted = p.boot.is_some_and(|b| b != boot);
                    p.boot = Some(boot);
                    p.ready = ready;
                    restarted
                };
                if restarted {
                    let e = Event::PeerRestarted {
                        node: self.id.clone(),
                        peer: from.to_owned(),
                    };
                    self.event(e);
                    let done = self.acks.on_peer_down(from);
                    self.settle_acks(done);
                    self.mark_resync(from, ResyncReason::PeerRestarted);
                }
            }
            Message::Refused { writes } => {
                let (handoffs, writes): (Vec<u64>, Vec<u64>) =
                    writes.into_iter().partition(|w| w & HANDOFF_ACK_BIT != 0);
                // A write made here as a non-owner is tracked by its own
                // ack id, so write acks go to the rebalance too.
                for h in handoffs.iter().chain(&writes) {
                    if let Some(id) = self.rebalance.on_refused(from, *h) {
                        self.rebalance.to_hand.insert(id);
                    }
                }
                let done = self.acks.on_refused(from, &writes);
                self.settle_acks(done);
            }
            Message::Ack { writes } => {
                let (handoffs, writes): (Vec<u64>, Vec<u64>) =
                    writes.into_iter().partition(|w| w & HANDOFF_ACK_BIT != 0);
                for h in handoffs.iter().chain(&writes) {
                    let settled = self.rebalance.on_ack(from, *h);
                    self.handoff_settled(settled);
                }
                let done = self.acks.on_ack(from, &writes);
                self.settle_acks(done);
            }
            Message::SnapshotRequest { after } => {
                let page = self.snapshot_page(after, now_ms);
                let entries = match &page {
                    Message::SnapshotPage { entries, .. } => entries.len(),
                    _ => 0,
                };
                if let Some(p) = self.peers.get_mut(from) {
                    p.push_control(page);
                }
                let e = Event::SnapshotServed {
                    node: self.id.clone(),
                    to: from.to_owned(),
                    entries,
                };
                self.event(e);
            }
            Message::SnapshotPage {
                after,
                upto,
                entries,
            } => self.on_snapshot_page(from, after, upto, entries, now_ms),
            Message::DigestRequest { round, after } => {
                let (mut entries, upto) = antientropy::digest_page(
                    &self.store,
                    &self.tombstones,
                    after.as_ref(),
                    self.cfg.digest_chunk,
                    now_ms,
                );
                // Backup: the asker repairs only ids it owns too, so the
                // entries it does not own by this node's view are left
                // out (the range stays the whole page; a view that differs
                // costs at most a repair that changes nothing). See
                // `crate::antientropy`.
                if self.cfg.topology.is_backup() {
                    let ownership = self.ownership();
                    entries.retain(|e| ownership.owns(&e.id, from));
                }
                if let Some(p) = self.peers.get_mut(from) {
                    p.push_control(Message::Digest {
                        round,
                        after,
                        upto,
                        entries,
                    });
                }
            }
            Message::Digest {
                round,
                after,
                upto,
                entries,
            } => self.on_digest(from, round, after, upto, entries, now_ms),
        }
    }

    fn on_snapshot_page(
        &mut self,
        from: &str,
        after: Option<SessionId>,
        upto: Option<SessionId>,
        entries: Vec<SnapshotEntry>,
        now_ms: u64,
    ) {
        let expected = matches!(&self.join,
            Join::Fetching { from: f, after: a, .. } if f == from && *a == after);
        let n = entries.len();
        // Entries are plain data: applying them is safe even when the page
        // is a late duplicate.
        for e in entries {
            match e {
                SnapshotEntry::Session(s) => {
                    self.apply_session(s, now_ms);
                }
                SnapshotEntry::Tombstone(d) => {
                    self.apply_delete(d, now_ms);
                }
            }
        }
        if !expected {
            return;
        }
        self.join_entries += n as u64;
        let e = Event::SnapshotReceived {
            node: self.id.clone(),
            from: from.to_owned(),
            entries: n,
            last: upto.is_none(),
        };
        self.event(e);
        match upto {
            None => self.become_ready(true, now_ms),
            Some(next) => {
                self.join = Join::Fetching {
                    from: from.to_owned(),
                    after: Some(next.clone()),
                    requested_ms: now_ms,
                };
                if let Some(p) = self.peers.get_mut(from) {
                    p.push_control(Message::SnapshotRequest { after: Some(next) });
                }
            }
        }
    }

    fn on_digest(
        &mut self,
        from: &str,
        round: u64,
        after: Option<SessionId>,
        upto: Option<SessionId>,
        entries: Vec<DigestEntry>,
        now_ms: u64,
    ) {
        let (room, horizon) = {
            let Some(p) = self.peers.get_mut(from) else {
                return;
            };
            let Some(o) = p.ae.outstanding.filter(|o| o.round == round) else {
                return; // a late or duplicate reply
            };
            p.ae.outstanding = None;
            (p.queue_room(&self.cfg), o.horizon)
        };
        let limit = self.cfg.digest_chunk.min(room).max(1);
        let theirs = antientropy::TheirDigest {
            after: after.as_ref(),
            upto: upto.as_ref(),
            entries: &entries,
            horizon,
        };
        let r = {
            // Backup: only what both this node and the peer own.
            let ownership = self.ownership();
            let me = self.id.as_str();
            let both = |id: &SessionId| {
                !ownership.backup || {
                    let o = ownership.owners(id);
                    o.contains(&me) && o.contains(&from)
                }
            };
            antientropy::repairs(
                &self.store,
                &self.tombstones,
                theirs,
                limit,
                now_ms,
                self.cfg.granularity,
                &both,
            )
        };
        let rebalancing = self.rebalance.pass.is_some();
        for m in r.messages {
            // A write still waiting for its quorum is not repaired onto a
            // peer: it may yet be refused and rolled back. The next pass
            // repairs what it decides.
            if let Message::Upsert(u) = &m {
                if self.is_pending(&u.session.id) {
                    continue;
                }
            }
            let bytes = matches!(m, Message::Upsert(_)).then(|| m.approx_bytes() as u64);
            let Some(p) = self.peers.get_mut(from) else {
                return;
            };
            if p.push_data(m, &self.cfg).is_err() {
                self.mark_resync(from, ResyncReason::QueueOverflow);
                return;
            }
            if let Some(b) = bytes.filter(|_| rebalancing) {
                self.rebalance.count(1, b);
            }
        }
        let interval = self.cfg.anti_entropy_interval_ms;
        let mut done = false;
        if let Some(p) = self.peers.get_mut(from) {
            if r.pass_done {
                p.ae.cursor = None;
                done = p.ae.pass_is_resync && p.needs_resync;
                if done {
                    p.needs_resync = false;
                }
                p.ae.pass_is_resync = false;
                p.ae.next_round_ms = now_ms + interval;
            } else {
                p.ae.cursor = r.cursor;
                // A resync runs its rounds back to back; a periodic pass
                // takes one round per interval (cheap in the background).
                p.ae.next_round_ms = if p.needs_resync {
                    now_ms
                } else {
                    now_ms + interval
                };
            }
        }
        if done {
            let e = Event::ResyncDone {
                node: self.id.clone(),
                peer: from.to_owned(),
            };
            self.event(e);
            if let Some(pass) = &mut self.rebalance.pass {
                pass.awaiting.remove(from);
            }
        }
        self.start_round(from, now_ms);
    }

    /// Ask `pid` for the next digest chunk, if a round is due and the queue
    /// has room for its repairs.
    fn start_round(&mut self, pid: &str, now_ms: u64) {
        let Some(p) = self.peers.get_mut(pid) else {
            return;
        };
        if !p.up || !p.ready || p.ae.outstanding.is_some() {
            return;
        }
        let due = p.needs_resync || now_ms >= p.ae.next_round_ms;
        if !due || p.queue_room(&self.cfg) < self.cfg.digest_chunk {
            return;
        }
        if p.ae.cursor.is_none() {
            p.ae.pass_is_resync = p.needs_resync;
        }
        let round = self.next_round;
        self.next_round += 1;
        p.ae.outstanding = Some(Outstanding {
            round,
            asked_ms: now_ms,
            horizon: self.store.lamport(),
        });
        let after = p.ae.cursor.clone();
        p.push_control(Message::DigestRequest { round, after });
    }

    // ---- sending ----------------------------------------------------------

    /// Emit a batch for every peer that has queued messages and no batch in
    /// flight; then settle the `sent` writes whose message left (after the
    /// batches, so the runtime hands them to the transport before the
    /// client is answered) or was dropped.
    pub fn flush(&mut self, now_ms: u64) {
        self.emit_batches(now_ms);
        if self.ack_mode != AckMode::Sent {
            return;
        }
        let hand_overs: Vec<(String, Vec<u64>, Vec<u64>)> = self
            .peers
            .values_mut()
            .map(|p| {
                let (sent, dropped) = p.take_hand_overs();
                (p.id.clone(), sent, dropped)
            })
            .collect();
        for (pid, sent, dropped) in hand_overs {
            let done = self.acks.on_sent(&pid, &sent);
            self.settle_acks(done);
            let done = self.acks.on_unsent(&pid, &dropped);
            self.settle_acks(done);
        }
    }

    /// Report decided writes. Under the consistent policy a write that did
    /// not reach a majority is refused, so nothing of it may stay: the
    /// local copy goes back to what it was before (unless a later write
    /// replaced it).
    fn settle_acks(&mut self, done: Vec<(u64, ReplicationAck)>) {
        for (write, ack) in done {
            if let Some(p) = self.pending_writes.remove(&write) {
                if matches!(ack, ReplicationAck::TimedOut { .. }) {
                    self.roll_back(p);
                }
            }
            self.outputs.push(Output::AckDone { write, ack });
        }
    }

    fn roll_back(&mut self, p: PendingWrite) {
        let held = self.store.get_raw(&p.id);
        if held.is_none_or(|h| h.version != p.version) {
            return;
        }
        self.store.remove(&p.id);
        if let Some(prev) = p.prev {
            self.store.apply_with(prev, |_| true);
        }
        tracing::debug!(node = %self.id, id = %p.id, version = %p.version, "refused write rolled back");
    }

    /// Whether a write of this session here waits for its quorum.
    fn is_pending(&self, id: &SessionId) -> bool {
        self.pending_writes.values().any(|p| p.id == *id)
    }

    /// Under the consistent policy: whether this node sees a majority of
    /// the members (itself included) up.
    pub fn has_majority(&self) -> bool {
        let members = self.peers.len() + 1;
        let reachable = 1 + self.peers.values().filter(|p| p.up).count();
        reachable > members / 2
    }

    fn check_majority(&self) -> Result<(), StoreError> {
        if self.has_majority() {
            return Ok(());
        }
        let members = self.peers.len() + 1;
        let reachable = 1 + self.peers.values().filter(|p| p.up).count();
        Err(StoreError::NoMajority(format!(
            "this node reaches {reachable} of {members} members, fewer than a majority of {} \
             (--partition-policy consistent)",
            members / 2 + 1
        )))
    }

    /// Under the consistent policy: whether a peer's conditional write
    /// conflicts with the copy held here (a newer one, or any copy of a
    /// session the writer thought new). The same copy again is no conflict.
    fn conflicts(&self, incoming: &Session, base: &Version) -> bool {
        self.store.get_raw(&incoming.id).is_some_and(|h| {
            h.version != incoming.version && (*base == Version::default() || h.version > *base)
        })
    }

    fn emit_batches(&mut self, now_ms: u64) {
        for p in self.peers.values_mut() {
            if p.in_flight.is_some() {
                continue;
            }
            let messages = p.next_batch(&self.cfg);
            if messages.is_empty() {
                continue;
            }
            let batch = Batch {
                from: self.id.clone(),
                to: p.id.clone(),
                seq: self.next_seq,
                sent_ms: now_ms,
                messages,
            };
            self.next_seq += 1;
            p.in_flight = Some(InFlight {
                seq: batch.seq,
                sent_ms: now_ms,
                has_data: batch.has_data(),
            });
            self.outputs.push(Output::Send(batch));
        }
    }

    /// The transport finished sending batch `seq` to `peer`: `ok` if the
    /// peer accepted it. A lost batch with data means the peer missed
    /// writes: it is marked for resync. Lost requests are retried by their
    /// timers.
    pub fn on_send_result(&mut self, peer: &str, seq: u64, ok: bool, now_ms: u64) {
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        let Some(f) = p.in_flight.take_if(|f| f.seq == seq) else {
            return; // not the batch in flight (a late result)
        };
        if !ok {
            p.ae.outstanding = None;
            if f.has_data {
                self.mark_resync(peer, ResyncReason::SendFailed);
            }
            if let Join::Fetching { from, after, .. } = &self.join {
                if from == peer {
                    self.join = Join::Waiting {
                        after: after.clone(),
                    };
                }
            }
        }
        self.flush(now_ms);
    }

    // ---- time ---------------------------------------------------------------

    /// Time passed: liveness, heartbeats, touches, tombstones, ack
    /// deadlines, joining and anti-entropy; then flush.
    pub fn tick(&mut self, now_ms: u64) {
        self.check_liveness(now_ms);
        if now_ms >= self.next_heartbeat_ms {
            let hb = Message::Heartbeat {
                boot: self.boot,
                ready: self.is_ready(),
            };
            for p in self.peers.values_mut() {
                p.push_control(hb.clone());
            }
            self.next_heartbeat_ms = now_ms + self.heartbeat_every();
        }
        if now_ms >= self.next_touch_flush_ms {
            self.next_touch_flush_ms = now_ms + self.cfg.touch_flush_ms;
            if !self.touches.is_empty() {
                self.flush_touches(now_ms);
            }
        }
        self.tombstones.gc(now_ms);
        let done = self.acks.on_tick(now_ms);
        self.settle_acks(done);
        self.advance_join(now_ms);
        self.advance_rebalance(now_ms);
        let pids: Vec<String> = self.peers.keys().cloned().collect();
        for pid in &pids {
            if let Some(p) = self.peers.get_mut(pid) {
                let lost = p.ae.outstanding.is_some_and(|o| {
                    now_ms.saturating_sub(o.asked_ms) >= self.cfg.request_timeout_ms
                });
                if lost {
                    p.ae.outstanding = None; // the request or its reply was lost
                }
            }
            self.start_round(pid, now_ms);
        }
        self.flush(now_ms);
    }

    /// Backup topology: hand over up to `rebalance_per_tick` copies this
    /// node does not own, retry the handoffs that went unanswered, and
    /// report a pass that is over ([`crate::rebalance`]).
    fn advance_rebalance(&mut self, now_ms: u64) {
        if !self.cfg.topology.is_backup() {
            return;
        }
        self.rebalance.expire(now_ms, self.cfg.ack_timeout_ms);
        let budget = self.cfg.rebalance_per_tick;
        let max_in_flight = 4 * budget;
        let mut later = Vec::new();
        let mut handled = 0;
        while handled < budget && self.rebalance.in_flight() < max_in_flight {
            let Some(id) = self.rebalance.to_hand.pop_first() else {
                break;
            };
            handled += 1;
            if self.rebalance.is_handing(&id) {
                continue;
            }
            let Some(session) = self.store.get_raw(&id).filter(|s| !s.is_expired(now_ms)) else {
                continue; // gone meanwhile (deleted, expired, or handed)
            };
            let owners = self.owners_of(&id);
            if owners.contains(&self.id) || self.is_pending(&id) {
                continue; // owned again, or decided by its quorum first
            }
            // Sent to the owners that can take it now; dropped only once
            // every owner acked (one that is down is waited for: it may
            // be cut off, not dead, and the copy may be the last one
            // besides the owners that have it).
            let live: Vec<String> = owners
                .iter()
                .filter(|o| self.peers.get(*o).is_some_and(|p| self.reachable(p)))
                .cloned()
                .collect();
            let ack = self.rebalance.peek_ack();
            let version = session.version.clone();
            let msg = Message::Upsert(
                Upsert {
                    session,
                    origin_ms: None,
                    origin_us: None,
                    ack: Some(ack),
                    base: None,
                }
                .into(),
            );
            let bytes = msg.approx_bytes() as u64;
            let queued = self.send_to(Some(&live), msg, None);
            if queued.is_empty() {
                later.push(id); // no owner up: try again next tick
                continue;
            }
            self.rebalance.count(1, bytes * queued.len() as u64);
            self.rebalance
                .started(id, version, owners.into_iter().collect(), now_ms);
        }
        self.rebalance.to_hand.extend(later);
        if let Some(pass) = self.rebalance.finish(now_ms) {
            let e = Event::Rebalanced {
                node: self.id.clone(),
                sessions: pass.sessions,
                bytes: pass.bytes,
                took_ms: now_ms.saturating_sub(pass.started_ms),
            };
            self.event(e);
        }
    }

    /// A handoff decided: drop the copy once every owner has it
    /// (unless a newer copy came, or the session is owned here again), or
    /// hand it over again.
    fn handoff_settled(&mut self, s: Settled) {
        match s {
            Settled::Waiting => {}
            Settled::Retry(id) => {
                self.rebalance.to_hand.insert(id);
            }
            Settled::Acked { id, version } => {
                if self.owns(&id) {
                    return;
                }
                match self.store.get_raw(&id) {
                    Some(h) if h.version == version => {
                        self.store.remove(&id);
                        self.touches.remove(&id);
                    }
                    Some(_) => {
                        self.rebalance.to_hand.insert(id);
                    }
                    None => {}
                }
            }
        }
    }

    /// How often heartbeats go out, and how long a silent peer stays up:
    /// in the backup topology the membership layer detects failures, so
    /// both are slower there (see [`ProtocolConfig::backup_heartbeat_interval_ms`]).
    fn heartbeat_every(&self) -> u64 {
        match self.cfg.topology.is_backup() {
            true => self.cfg.backup_heartbeat_interval_ms,
            false => self.cfg.heartbeat_interval_ms,
        }
    }

    fn down_after(&self) -> u64 {
        match self.cfg.topology.is_backup() {
            true => self.cfg.backup_peer_down_after_ms,
            false => self.cfg.peer_down_after_ms,
        }
    }

    fn check_liveness(&mut self, now_ms: u64) {
        let mut down = Vec::new();
        let mut stuck = Vec::new();
        let down_after = self.down_after();
        for p in self.peers.values_mut() {
            if p.up
                && p.last_heard_ms
                    .is_some_and(|t| now_ms.saturating_sub(t) >= down_after)
            {
                p.up = false;
                p.clear_data();
                down.push(p.id.clone());
            }
            // A transport that never reported back: treat the batch as lost.
            if p.in_flight.as_ref().is_some_and(|f| {
                now_ms.saturating_sub(f.sent_ms) >= 2 * self.cfg.request_timeout_ms
            }) {
                stuck.push((p.id.clone(), p.in_flight.as_ref().map_or(0, |f| f.seq)));
            }
        }
        for pid in down {
            let e = Event::PeerDown {
                node: self.id.clone(),
                peer: pid.clone(),
            };
            self.event(e);
            let done = self.acks.on_peer_down(&pid);
            self.settle_acks(done);
            self.mark_resync(&pid, ResyncReason::PeerDown);
            // The pass stops waiting for its resync; handoffs keep waiting
            // for it (a copy goes only once every owner holds it).
            if let Some(pass) = &mut self.rebalance.pass {
                pass.awaiting.remove(&pid);
            }
        }
        for (pid, seq) in stuck {
            self.on_send_result(&pid, seq, false, now_ms);
        }
    }

    fn advance_join(&mut self, now_ms: u64) {
        if self.join == Join::Ready {
            return;
        }
        if now_ms.saturating_sub(self.started_ms) >= self.cfg.join_timeout_ms {
            tracing::warn!(
                node = %self.id,
                timeout_ms = self.cfg.join_timeout_ms,
                "could not catch up from a peer in time; reporting ready without a full snapshot"
            );
            self.become_ready(false, now_ms);
            return;
        }
        if let Join::Fetching {
            from,
            after,
            requested_ms,
        } = &self.join
        {
            let peer_up = self.peers.get(from).is_some_and(|p| p.up);
            if peer_up && now_ms.saturating_sub(*requested_ms) < self.cfg.request_timeout_ms {
                return;
            }
            self.join = Join::Waiting {
                after: after.clone(),
            };
        }
        let Join::Waiting { after } = self.join.clone() else {
            return;
        };
        let grace_over = now_ms.saturating_sub(self.started_ms) >= self.cfg.join_grace_ms;
        let source = self
            .peers
            .values()
            .find(|p| p.up && p.ready)
            .or_else(|| self.peers.values().find(|p| p.up && grace_over))
            .map(|p| p.id.clone());
        let Some(source) = source else {
            return;
        };
        if let Some(p) = self.peers.get_mut(&source) {
            p.push_control(Message::SnapshotRequest {
                after: after.clone(),
            });
        }
        self.join = Join::Fetching {
            from: source,
            after,
            requested_ms: now_ms,
        };
    }

    fn become_ready(&mut self, caught_up: bool, now_ms: u64) {
        self.join = Join::Ready;
        // Tell the peers at once, so they start anti-entropy with us.
        self.next_heartbeat_ms = now_ms;
        let e = Event::Ready {
            node: self.id.clone(),
            caught_up,
            entries: self.join_entries,
        };
        self.event(e);
    }

    // ---- inspection -------------------------------------------------------

    /// This replica's digest of ids after `after` (for the inspection
    /// endpoint and tests).
    pub fn digest(
        &self,
        after: Option<&SessionId>,
        limit: usize,
        now_ms: u64,
    ) -> (Vec<DigestEntry>, Option<SessionId>) {
        antientropy::digest_page(&self.store, &self.tombstones, after, limit, now_ms)
    }

    /// A snapshot page of ids after `after` (for the inspection endpoint).
    pub fn snapshot_page(&self, after: Option<SessionId>, now_ms: u64) -> Message {
        snapshot::page(
            &self.store,
            &self.tombstones,
            after,
            self.cfg.snapshot_page_entries,
            self.cfg.snapshot_page_bytes,
            now_ms,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_ids::id;
    use sessionlab_session::MemoryStoreConfig;

    fn replica(node: &str, peers: &[&str], cfg: ProtocolConfig) -> Replica {
        let store = Arc::new(MemoryStore::new(MemoryStoreConfig {
            node_id: node.into(),
            ..MemoryStoreConfig::default()
        }));
        let peers = peers.iter().map(|p| p.to_string());
        Replica::new(node, peers, cfg, store, 0)
    }

    fn backup(k: usize) -> ProtocolConfig {
        ProtocolConfig {
            topology: Topology::Backup { backups: k },
            ..ProtocolConfig::fast()
        }
    }

    /// Deliver every batch between `a` and `b` (both ways) until neither
    /// has anything to send, at `now_ms`.
    fn exchange(a: &mut Replica, b: &mut Replica, now_ms: u64) {
        for _ in 0..100 {
            let moved = one_way(a, b, now_ms) | one_way(b, a, now_ms);
            if !moved {
                return;
            }
        }
        panic!("the two replicas never went quiet");
    }

    fn one_way(from: &mut Replica, to: &mut Replica, now_ms: u64) -> bool {
        let mut moved = false;
        for o in from.take_outputs() {
            if let Output::Send(batch) = o {
                moved = true;
                let (peer, seq) = (batch.to.clone(), batch.seq);
                let ok = to.on_batch(batch, now_ms).is_ok();
                from.on_send_result(&peer, seq, ok, now_ms);
            }
        }
        moved
    }

    #[test]
    fn members_and_owners_follow_added_and_removed_peers() {
        let mut r = replica("n2", &["n3"], ProtocolConfig::fast());
        assert_eq!(r.topology(), Topology::AllToAll);
        assert_eq!(r.members(), ["n2", "n3"]);
        assert!(!r.add_peer("n2", 0), "itself");
        assert!(!r.add_peer("n3", 0), "already a peer");
        assert!(r.add_peer("n1", 0));
        assert_eq!(r.members(), ["n1", "n2", "n3"]);
        assert_eq!(r.peers().len(), 2);
        // All-to-all: every member owns everything, this node first.
        assert_eq!(r.owners_of(&id('a')), ["n2", "n1", "n3"]);
        assert!(r.owns(&id('a')));
        assert!(r.remove_peer("n3", 0));
        assert!(!r.remove_peer("n3", 0), "already gone");
        assert_eq!(r.members(), ["n1", "n2"]);
    }

    #[test]
    fn all_to_all_resyncs_a_member_that_comes_back_after_being_removed() {
        let mut a = replica("n1", &["n2"], ProtocolConfig::fast());
        let mut b = replica("n2", &["n1"], ProtocolConfig::fast());
        a.upsert(Session::new(id('a'), 0, 1_000_000, 10_000_000), 0)
            .unwrap();
        let mut now = 0;
        while b.store().get_raw(&id('a')).is_none() && now < 2_000 {
            a.tick(now);
            b.tick(now);
            exchange(&mut a, &mut b, now);
            now += 10;
        }
        assert!(b.store().get_raw(&id('a')).is_some(), "the copy came");
        // A long partition: each side's membership declares the other dead.
        assert!(a.remove_peer("n2", now) && b.remove_peer("n1", now));
        assert!(a.delete(&id('a'), now), "a logout while n2 is no peer");
        let _ = a.take_outputs(); // nothing for n2: it is no peer
        // Back: what n2 missed is owed to it, not left to the slow rounds.
        assert!(a.add_peer("n2", now) && b.add_peer("n1", now));
        let n2 = a.peers().into_iter().find(|p| p.id == "n2").unwrap();
        assert!(n2.needs_resync, "the returning member is marked for resync");
        let until = now + 2_000;
        while !b.tombstones().contains(&id('a')) && now < until {
            a.tick(now);
            b.tick(now);
            exchange(&mut a, &mut b, now);
            now += 10;
        }
        assert!(
            b.tombstones().contains(&id('a')),
            "the delete reached the returning member"
        );
    }

    #[test]
    fn a_backup_delete_is_acknowledged_by_its_owners_not_by_any_two_members() {
        let cfg = ProtocolConfig {
            ack_mode: AckMode::Quorum,
            ..backup(1)
        };
        let mut r = replica("n1", &["n2", "n3", "n4", "n5"], cfg);
        hear_all(&mut r, 0);
        let ids: Vec<SessionId> = "0123456789abcdef".chars().map(id).collect();
        let theirs = ids.iter().find(|i| !r.owns(i)).unwrap().clone();
        let owners = r.owners_of(&theirs);
        let others: Vec<String> = ["n2", "n3", "n4", "n5"]
            .iter()
            .map(|p| p.to_string())
            .filter(|p| !owners.contains(p))
            .collect();
        let d = r.delete_acked(&theirs, 1);
        let AckWait::Pending(write) = d.ack else {
            panic!("waits for the owners: {:?}", d.ack);
        };
        let _ = r.take_outputs();
        let ack = |from: &str, seq: u64| Batch {
            from: from.into(),
            to: "n1".into(),
            seq,
            sent_ms: 2,
            messages: vec![Message::Ack {
                writes: vec![write],
            }],
        };
        // Two members that hold no copy: not the owners' tombstones.
        for (i, o) in others.iter().enumerate() {
            r.on_batch(ack(o, 10 + i as u64), 2).unwrap();
        }
        let done = |r: &mut Replica| {
            r.take_outputs()
                .iter()
                .any(|o| matches!(o, Output::AckDone { write: w, .. } if *w == write))
        };
        assert!(!done(&mut r), "non-owners' acks do not make the quorum");
        for (i, o) in owners.iter().enumerate() {
            r.on_batch(ack(o, 20 + i as u64), 3).unwrap();
        }
        assert!(done(&mut r), "both owners hold the tombstone");
    }

    #[test]
    fn the_owner_map_gives_the_owners_the_replica_gives_leaving_or_not() {
        let mut r = replica("n1", &["n2", "n3", "n4"], backup(1));
        let ids: Vec<SessionId> = ['a', 'b', 'c', 'd', 'e', 'f'].map(id).to_vec();
        let same = |r: &Replica| {
            let map = r.owner_map().expect("backup has an owner map");
            ids.iter().all(|i| map.owners(i) == r.owners_of(i))
        };
        assert!(same(&r));
        // A leaving node owns nothing: the map leaves it out too.
        assert!(r.leave(0));
        assert!(same(&r));
        assert!(
            ids.iter()
                .all(|i| !r.owner_map().unwrap().owners(i).contains(&"n1".to_string()))
        );
        assert_eq!(
            replica("n1", &["n2"], ProtocolConfig::fast()).owner_map(),
            None
        );
    }

    #[test]
    fn backup_owners_are_k_plus_one_by_rendezvous_over_the_members() {
        let mut r = replica("n1", &["n2", "n3", "n4"], backup(1));
        assert_eq!(r.topology().copies(4), 2);
        for c in ['a', 'b', 'c', 'd', 'e', 'f'] {
            let o = r.owners_of(&id(c));
            let expected =
                crate::ownership::owners(id(c).as_str().as_bytes(), &["n1", "n2", "n3", "n4"], 2);
            assert_eq!(o, expected, "primary first, as ownership computes it");
            assert_eq!(r.owns(&id(c)), o.iter().any(|m| m == "n1"));
        }
        // A new member takes its share; the owners always come from the
        // current member list.
        r.add_peer("n5", 0);
        let mut changed = 0;
        for c in ['a', 'b', 'c', 'd', 'e', 'f'] {
            let o = r.owners_of(&id(c));
            assert_eq!(o.len(), 2);
            let before =
                crate::ownership::owners(id(c).as_str().as_bytes(), &["n1", "n2", "n3", "n4"], 2);
            if o != before {
                changed += 1;
                assert!(o.iter().any(|m| m == "n5"), "only n5 takes sessions");
            }
        }
        assert!(changed < 6);
        // Alone, a node owns everything (one copy).
        let alone = replica("n1", &[], backup(1));
        assert_eq!(alone.owners_of(&id('a')), ["n1"]);
        assert!(alone.owns(&id('a')));
    }

    #[test]
    fn pick_owned_id_draws_until_this_node_owns_the_id() {
        let r = replica("n1", &["n2", "n3", "n4", "n5"], backup(1));
        let pool: Vec<SessionId> = "0123456789abcdef".chars().map(id).collect();
        let mut draws = 0;
        let picked = r.pick_owned_id(|| {
            draws += 1;
            pool[(draws - 1) % pool.len()].clone()
        });
        assert!(r.owns(&picked));
        let first_owned = pool.iter().position(|i| r.owns(i)).unwrap();
        assert_eq!(draws, first_owned + 1, "stops at the first owned draw");
        // A generator that never yields an owned id: bounded, the last draw.
        let never = pool.iter().find(|i| !r.owns(i)).unwrap().clone();
        let mut count = 0;
        let got = r.pick_owned_id(|| {
            count += 1;
            never.clone()
        });
        assert_eq!((got, count), (never, 64 * 5));
        // All-to-all: the first draw, whatever it is.
        let a2a = replica("n1", &["n2"], ProtocolConfig::fast());
        let mut n = 0;
        a2a.pick_owned_id(|| {
            n += 1;
            id('a')
        });
        assert_eq!(n, 1);
    }

    #[test]
    fn waiting_for_peers_all_to_all_catches_up_from_the_first_peer_added() {
        let cfg = ProtocolConfig {
            wait_for_peers: true,
            ..ProtocolConfig::fast()
        };
        let mut old = replica("n1", &[], ProtocolConfig::fast());
        assert!(old.is_ready(), "without wait_for_peers, alone is ready");
        old.upsert(Session::new(id('a'), 0, 1_000_000, 10_000_000), 0)
            .unwrap();
        let mut new = replica("n2", &[], cfg);
        assert!(!new.is_ready(), "waits for a peer");
        new.tick(10);
        assert!(!new.is_ready());
        assert!(old.add_peer("n2", 20));
        assert!(new.add_peer("n1", 20));
        let mut now = 20;
        while !new.is_ready() && now < 2_000 {
            old.tick(now);
            new.tick(now);
            exchange(&mut old, &mut new, now);
            now += 10;
        }
        assert!(new.is_ready());
        assert!(new.store().get_raw(&id('a')).is_some(), "the snapshot came");
    }

    #[test]
    fn waiting_for_peers_backup_is_ready_at_the_first_peer_or_the_timeout() {
        let cfg = ProtocolConfig {
            wait_for_peers: true,
            ..backup(1)
        };
        let mut r = replica("n1", &[], cfg.clone());
        assert!(!r.is_ready());
        r.add_peer("n2", 5);
        assert!(r.is_ready(), "backup: sessions come by rebalance");
        assert!(r.take_outputs().iter().any(|o| matches!(
            o,
            Output::Event(Event::Ready {
                caught_up: true,
                ..
            })
        )));
        // Nobody ever comes: ready at the join timeout, not caught up.
        let mut lonely = replica("n1", &[], cfg);
        lonely.tick(cfg_timeout() - 1);
        assert!(!lonely.is_ready());
        lonely.tick(cfg_timeout());
        assert!(lonely.is_ready());
        assert!(lonely.take_outputs().iter().any(|o| matches!(
            o,
            Output::Event(Event::Ready {
                caught_up: false,
                ..
            })
        )));
    }

    /// Make `r`'s peers up (and ready) by a heartbeat from each.
    fn hear_all(r: &mut Replica, now_ms: u64) {
        for (i, p) in r.members().into_iter().enumerate() {
            if p == r.id() {
                continue;
            }
            let hb = Batch {
                from: p.clone(),
                to: r.id().to_owned(),
                seq: i as u64 + 1,
                sent_ms: now_ms,
                messages: vec![Message::Heartbeat {
                    boot: 1,
                    ready: true,
                }],
            };
            r.on_batch(hb, now_ms).unwrap();
        }
        r.take_outputs();
    }

    /// The peers each upsert of `id` was sent to, in the outputs.
    fn upsert_targets(outputs: &[Output], id: &SessionId) -> Vec<String> {
        let mut to: Vec<String> = outputs
            .iter()
            .filter_map(|o| match o {
                Output::Send(b)
                    if b.messages
                        .iter()
                        .any(|m| matches!(m, Message::Upsert(u) if u.session.id == *id)) =>
                {
                    Some(b.to.clone())
                }
                _ => None,
            })
            .collect();
        to.sort();
        to
    }

    #[test]
    fn an_ack_owed_to_an_earlier_boot_confirms_no_write_of_the_next() {
        let cfg = ProtocolConfig {
            ack_mode: AckMode::All,
            ..ProtocolConfig::fast()
        };
        let booted = |now_ms: u64| {
            let store = Arc::new(MemoryStore::new(MemoryStoreConfig {
                node_id: "n1".into(),
                ..MemoryStoreConfig::default()
            }));
            let mut r = Replica::new("n1", ["n2".to_string()], cfg.clone(), store, now_ms);
            hear_all(&mut r, now_ms);
            r.take_outputs();
            r
        };
        let write = |r: &mut Replica, now_ms: u64| {
            let s = Session::new(id('a'), now_ms, 1_000_000, 10_000_000);
            match r.upsert(s, now_ms).unwrap().ack {
                AckWait::Pending(w) => w,
                other => panic!("waits for n2: {other:?}"),
            }
        };
        // n1 writes, n2 applies it and queues the ack; n1 dies before it
        // arrives and boots again 3 s later.
        let boot = 1_790_000_000_000;
        let old = write(&mut booted(boot), boot);
        let mut again = booted(boot + 3_000);
        let new = write(&mut again, boot + 3_000);
        assert_ne!(old, new, "a new boot never reuses a write id");

        let stale = Batch {
            from: "n2".into(),
            to: "n1".into(),
            seq: 7,
            sent_ms: boot + 3_001,
            messages: vec![Message::Ack { writes: vec![old] }],
        };
        again.on_batch(stale, boot + 3_001).unwrap();
        assert!(
            !again
                .take_outputs()
                .iter()
                .any(|o| matches!(o, Output::AckDone { .. })),
            "the stale ack confirmed a write n2 never applied"
        );
    }

    #[test]
    fn backup_writes_go_to_the_other_owners_and_acks_count_over_them() {
        let cfg = ProtocolConfig {
            ack_mode: AckMode::All,
            ..backup(1)
        };
        let mut r = replica("n1", &["n2", "n3", "n4"], cfg);
        hear_all(&mut r, 0);
        let ids: Vec<SessionId> = "0123456789abcdef".chars().map(id).collect();
        let mine = ids.iter().find(|i| r.owns(i)).unwrap().clone();
        let theirs = ids.iter().find(|i| !r.owns(i)).unwrap().clone();

        // An owner keeps its copy and sends it to the other owner only.
        let w = r
            .upsert(Session::new(mine.clone(), 0, 1_000_000, 10_000_000), 1)
            .unwrap();
        let other: Vec<String> = r
            .owners_of(&mine)
            .into_iter()
            .filter(|o| o != "n1")
            .collect();
        assert_eq!(upsert_targets(&r.take_outputs(), &mine), other);
        assert!(r.store().get_raw(&mine).is_some());
        let AckWait::Pending(write) = w.ack else {
            panic!("waits for the other owner: {:?}", w.ack);
        };
        let ack = Batch {
            from: other[0].clone(),
            to: "n1".into(),
            seq: 10,
            sent_ms: 2,
            messages: vec![Message::Ack {
                writes: vec![write],
            }],
        };
        r.on_batch(ack, 2).unwrap();
        assert!(r.take_outputs().contains(&Output::AckDone {
            write,
            ack: ReplicationAck::Acked { peers: 1 },
        }));

        // A non-owner sends to both owners, and keeps its copy only until
        // both acked it.
        let w = r
            .upsert(Session::new(theirs.clone(), 0, 1_000_000, 10_000_000), 3)
            .unwrap();
        let mut owners = r.owners_of(&theirs);
        owners.sort();
        assert_eq!(upsert_targets(&r.take_outputs(), &theirs), owners);
        let AckWait::Pending(write) = w.ack else {
            panic!("waits for both owners: {:?}", w.ack);
        };
        for (i, o) in owners.iter().enumerate() {
            assert!(r.store().get_raw(&theirs).is_some(), "kept until acked");
            let ack = Batch {
                from: o.clone(),
                to: "n1".into(),
                seq: 20 + i as u64,
                sent_ms: 3,
                messages: vec![Message::Ack {
                    writes: vec![write],
                }],
            };
            r.on_batch(ack, 3).unwrap();
        }
        assert!(r.store().get_raw(&theirs).is_none(), "dropped once acked");
        assert!(r.take_outputs().contains(&Output::AckDone {
            write,
            ack: ReplicationAck::Acked { peers: 2 },
        }));

        // A delete still goes to every peer.
        r.delete(&theirs, 4);
        let sent: Vec<String> = r
            .take_outputs()
            .iter()
            .filter_map(|o| match o {
                Output::Send(b) if b.messages.iter().any(|m| matches!(m, Message::Delete(_))) => {
                    Some(b.to.clone())
                }
                _ => None,
            })
            .collect();
        // Sent at once, or queued behind the batch in flight to that peer.
        let reached = r
            .peers()
            .iter()
            .filter(|p| sent.contains(&p.id) || p.queue_depth == 1)
            .count();
        assert_eq!(reached, 3, "{sent:?} {:?}", r.peers());
    }

    fn cfg_timeout() -> u64 {
        ProtocolConfig::fast().join_timeout_ms
    }

    #[test]
    fn removing_a_peer_settles_the_acks_waiting_on_it_and_shrinks_quorums() {
        let cfg = ProtocolConfig {
            ack_mode: AckMode::All,
            ..ProtocolConfig::fast()
        };
        let mut a = replica("n1", &["n2"], cfg);
        let mut b = replica("n2", &["n1"], ProtocolConfig::fast());
        // Bring both up (heartbeats).
        a.tick(0);
        b.tick(0);
        exchange(&mut a, &mut b, 0);
        let w = a
            .upsert(Session::new(id('a'), 0, 1_000_000, 10_000_000), 1)
            .unwrap();
        let AckWait::Pending(write) = w.ack else {
            panic!("waits for n2: {:?}", w.ack);
        };
        a.take_outputs(); // the batch to n2 is lost
        assert!(a.remove_peer("n2", 2));
        assert!(a.take_outputs().contains(&Output::AckDone {
            write,
            ack: ReplicationAck::Acked { peers: 0 },
        }));
        // Majorities count the current members.
        let mut c = replica("n1", &["n2"], ProtocolConfig::fast());
        assert!(!c.has_majority(), "1 of 2 is no majority");
        c.remove_peer("n2", 0);
        assert!(c.has_majority(), "alone, 1 of 1");
        c.add_peer("n2", 0);
        c.add_peer("n3", 0);
        assert!(!c.has_majority(), "1 of 3");
    }
}
