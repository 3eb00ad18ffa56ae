//! What a replica knows about one peer: liveness, its outbound queues, the
//! batch in flight, and the state of anti-entropy with it.
//!
//! ## Liveness
//! Any batch received from a peer counts as hearing from it (heartbeats make
//! sure something arrives every interval). A peer not heard from for
//! `peer_down_after_ms` is *down*: no data is queued for it, and it is
//! marked for resync, because from now on it misses writes. When it is heard
//! again it is *up*, and the resync repairs what it missed.
//!
//! ## Queues
//! Two queues per peer, both bounded:
//!
//! - *data* (upserts, deletes, touches): bounded by message count and bytes.
//!   When a write would overflow it, the queue is dropped whole and the peer
//!   is marked `needs_resync`. Dropping is fine because nothing in the queue
//!   is precious: the store holds the current state, and the resync (a full
//!   anti-entropy pass) sends the peer whatever it lacks. Memory stays
//!   bounded however slow or dead the peer is; this is the difference from
//!   Tomcat's `DeltaManager`, whose send queue can grow until the JVM runs
//!   out of heap.
//! - *control* (heartbeats, snapshot and digest requests and replies): small,
//!   sent first, oldest dropped beyond [`CONTROL_LIMIT`]. Every control
//!   message is either periodic or retried on a timeout, so dropping one
//!   only delays things. Acks are collected separately and sent as one
//!   `Ack` message per batch.
//!
//! ## Hand-over marks (`--replication-ack sent`)
//! A `sent` write waits until the message carrying it has left the data
//! queue in a batch. The queue counts the messages pushed and taken; a mark
//! records a write's position, and once the taken count passes it the write
//! is handed over ([`Peer::take_hand_overs`]). A dropped queue turns its
//! marks into writes that never left. Marks never outnumber the queued
//! messages, so they share the queue's bound.
//!
//! ## One batch in flight
//! A peer gets at most one batch at a time. While it is in flight new
//! messages gather in the queues, so under load batches grow and requests
//! per write fall (natural batching, no artificial delay at low load).

use std::collections::VecDeque;

use sessionlab_session::SessionId;

use crate::config::ProtocolConfig;
use crate::message::{MAX_LIST_ENTRIES, Message};

/// Most control messages queued per peer.
pub const CONTROL_LIMIT: usize = 64;
/// Most acks waiting to be sent to one peer (oldest dropped beyond; the
/// origin then times out, which is what a lost ack means anyway).
pub const ACK_LIMIT: usize = 4 * MAX_LIST_ENTRIES;

/// Why a peer was marked for resync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResyncReason {
    QueueOverflow,
    SendFailed,
    PeerDown,
    PeerRestarted,
    /// The members changed (backup topology): the ids both nodes own are
    /// not what they were, so a full pass compares them (a rebalance).
    MembershipChanged,
}

impl ResyncReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ResyncReason::QueueOverflow => "queue overflow",
            ResyncReason::SendFailed => "send failed",
            ResyncReason::PeerDown => "peer down",
            ResyncReason::PeerRestarted => "peer restarted",
            ResyncReason::MembershipChanged => "membership changed",
        }
    }
}

/// The batch currently on its way to the peer.
#[derive(Debug, Clone)]
pub struct InFlight {
    pub seq: u64,
    pub sent_ms: u64,
    pub has_data: bool,
}

/// Anti-entropy with one peer: which part of the id space comes next.
#[derive(Debug, Clone, Default)]
pub struct AntiEntropy {
    /// The next round asks for ids after this one (`None`: a new pass).
    pub cursor: Option<SessionId>,
    /// The round waiting for its digest: round number, when it was asked,
    /// and our Lamport clock then (the round's *horizon*, see
    /// [`crate::antientropy`]).
    pub outstanding: Option<Outstanding>,
    /// When the next periodic round is due.
    pub next_round_ms: u64,
    /// Whether the current pass started while the peer needed a resync
    /// (finishing it then clears the flag).
    pub pass_is_resync: bool,
}

/// A digest round waiting for its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outstanding {
    pub round: u64,
    pub asked_ms: u64,
    pub horizon: u64,
}

/// One peer; see the module docs.
#[derive(Debug)]
pub struct Peer {
    pub id: String,
    pub up: bool,
    pub last_heard_ms: Option<u64>,
    /// The incarnation the peer last announced.
    pub boot: Option<u64>,
    /// Whether the peer says it has caught up.
    pub ready: bool,
    pub needs_resync: bool,
    data: VecDeque<Message>,
    data_bytes: usize,
    control: VecDeque<Message>,
    acks: VecDeque<u64>,
    /// Conditional writes refused here, to tell their origin.
    refusals: VecDeque<u64>,
    /// Data messages ever pushed and ever taken into a batch (or dropped).
    pushed: u64,
    taken: u64,
    /// `(position, write)`: write waits until `taken >= position`.
    marks: VecDeque<(u64, u64)>,
    /// Writes whose message was taken into a batch since the last
    /// [`Peer::take_hand_overs`], and writes whose message was dropped.
    handed_over: Vec<u64>,
    dropped: Vec<u64>,
    pub in_flight: Option<InFlight>,
    pub ae: AntiEntropy,
}

/// The data queue overflowed (it has been dropped).
#[derive(Debug, PartialEq, Eq)]
pub struct Overflow;

impl Peer {
    pub fn new(id: String) -> Self {
        Peer {
            id,
            up: false,
            last_heard_ms: None,
            boot: None,
            ready: false,
            needs_resync: false,
            data: VecDeque::new(),
            data_bytes: 0,
            control: VecDeque::new(),
            acks: VecDeque::new(),
            refusals: VecDeque::new(),
            pushed: 0,
            taken: 0,
            marks: VecDeque::new(),
            handed_over: Vec::new(),
            dropped: Vec::new(),
            in_flight: None,
            ae: AntiEntropy::default(),
        }
    }

    pub fn queue_depth(&self) -> usize {
        self.data.len()
    }

    /// Room left in the data queue, in messages.
    pub fn queue_room(&self, cfg: &ProtocolConfig) -> usize {
        cfg.queue_limit.saturating_sub(self.data.len())
    }

    /// Queue a data message. On overflow the queue is emptied and the caller
    /// must mark the peer for resync.
    pub fn push_data(&mut self, msg: Message, cfg: &ProtocolConfig) -> Result<(), Overflow> {
        let bytes = msg.approx_bytes();
        if self.data.len() >= cfg.queue_limit || self.data_bytes + bytes > cfg.queue_bytes_limit {
            self.clear_data();
            return Err(Overflow);
        }
        self.data_bytes += bytes;
        self.data.push_back(msg);
        self.pushed += 1;
        Ok(())
    }

    /// Mark the message just pushed as carrying `write` (see the module
    /// docs: hand-over marks).
    pub fn mark_last(&mut self, write: u64) {
        if self.pushed > self.taken {
            self.marks.push_back((self.pushed, write));
        }
    }

    pub fn clear_data(&mut self) {
        self.data.clear();
        self.data_bytes = 0;
        self.taken = self.pushed;
        self.dropped.extend(self.marks.drain(..).map(|(_, w)| w));
    }

    /// The writes handed to the transport, and the writes dropped, since
    /// the last call.
    pub fn take_hand_overs(&mut self) -> (Vec<u64>, Vec<u64>) {
        while let Some(&(pos, w)) = self.marks.front() {
            if pos > self.taken {
                break;
            }
            self.marks.pop_front();
            self.handed_over.push(w);
        }
        (
            std::mem::take(&mut self.handed_over),
            std::mem::take(&mut self.dropped),
        )
    }

    /// Queue a control message; a heartbeat replaces one already queued.
    pub fn push_control(&mut self, msg: Message) {
        if matches!(msg, Message::Heartbeat { .. }) {
            self.control
                .retain(|m| !matches!(m, Message::Heartbeat { .. }));
        }
        if self.control.len() >= CONTROL_LIMIT {
            self.control.pop_front();
        }
        self.control.push_back(msg);
    }

    pub fn push_refusal(&mut self, write: u64) {
        if self.refusals.len() >= ACK_LIMIT {
            self.refusals.pop_front();
        }
        self.refusals.push_back(write);
    }

    pub fn push_ack(&mut self, write: u64) {
        if self.acks.len() >= ACK_LIMIT {
            self.acks.pop_front();
        }
        self.acks.push_back(write);
    }

    /// Take the next batch's messages: control first, then acks, then data,
    /// within the batch limits (at least one message if any is queued).
    pub fn next_batch(&mut self, cfg: &ProtocolConfig) -> Vec<Message> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let fits = |out: &Vec<Message>, bytes: usize, m: &Message| {
            out.is_empty()
                || (out.len() < cfg.batch_max_messages
                    && bytes + m.approx_bytes() <= cfg.batch_max_bytes)
        };
        while let Some(m) = self.control.front() {
            if !fits(&out, bytes, m) {
                return out;
            }
            let m = self.control.pop_front().expect("front() was Some");
            bytes += m.approx_bytes();
            out.push(m);
        }
        if !self.acks.is_empty() && out.len() < cfg.batch_max_messages {
            let n = self.acks.len().min(MAX_LIST_ENTRIES);
            let writes: Vec<u64> = self.acks.drain(..n).collect();
            bytes += writes.len() * 12;
            out.push(Message::Ack { writes });
        }
        if !self.refusals.is_empty() && out.len() < cfg.batch_max_messages {
            let n = self.refusals.len().min(MAX_LIST_ENTRIES);
            let writes: Vec<u64> = self.refusals.drain(..n).collect();
            bytes += writes.len() * 12;
            out.push(Message::Refused { writes });
        }
        while let Some(m) = self.data.front() {
            if !fits(&out, bytes, m) {
                break;
            }
            let m = self.data.pop_front().expect("front() was Some");
            self.taken += 1;
            let b = m.approx_bytes();
            self.data_bytes -= b;
            bytes += b;
            out.push(m);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default protocol with batches of at most `n` messages.
    fn batches_of(n: usize) -> ProtocolConfig {
        ProtocolConfig {
            batch_max_messages: n,
            ..ProtocolConfig::default()
        }
    }

    fn touch(n: u64) -> Message {
        Message::Touch {
            id: SessionId::parse(&"t".repeat(32)).unwrap(),
            at_ms: n,
        }
    }

    #[test]
    fn overflow_drops_the_whole_queue() {
        let cfg = ProtocolConfig {
            queue_limit: 4,
            digest_chunk: 1,
            ..ProtocolConfig::default()
        };
        let mut p = Peer::new("n2".into());
        for i in 0..4 {
            p.push_data(touch(i), &cfg).unwrap();
        }
        assert_eq!(p.push_data(touch(9), &cfg), Err(Overflow));
        assert_eq!(p.queue_depth(), 0);
        assert_eq!(p.data_bytes, 0);
    }

    #[test]
    fn hand_over_marks_follow_the_queue() {
        let cfg = batches_of(2);
        let mut p = Peer::new("n2".into());
        for i in 0..3 {
            p.push_data(touch(i), &cfg).unwrap();
            p.mark_last(10 + i);
        }
        assert_eq!(p.take_hand_overs(), (vec![], vec![]));
        assert_eq!(p.next_batch(&cfg).len(), 2);
        assert_eq!(p.take_hand_overs(), (vec![10, 11], vec![]));
        p.push_data(touch(3), &cfg).unwrap();
        p.mark_last(13);
        p.clear_data();
        assert_eq!(p.take_hand_overs(), (vec![], vec![12, 13]));
        p.push_data(touch(4), &cfg).unwrap();
        p.mark_last(14);
        assert_eq!(p.next_batch(&cfg), vec![touch(4)]);
        assert_eq!(p.take_hand_overs(), (vec![14], vec![]));
    }

    #[test]
    fn batches_put_control_and_acks_first_and_respect_limits() {
        let cfg = batches_of(3);
        let mut p = Peer::new("n2".into());
        for i in 0..5 {
            p.push_data(touch(i), &cfg).unwrap();
        }
        p.push_control(Message::Heartbeat {
            boot: 1,
            ready: false,
        });
        p.push_control(Message::Heartbeat {
            boot: 1,
            ready: true,
        });
        p.push_ack(7);
        let b = p.next_batch(&cfg);
        assert_eq!(b.len(), 3);
        assert_eq!(
            b[0],
            Message::Heartbeat {
                boot: 1,
                ready: true
            }
        );
        assert_eq!(b[1], Message::Ack { writes: vec![7] });
        assert_eq!(b[2], touch(0));
        assert_eq!(p.next_batch(&cfg).len(), 3);
        assert_eq!(p.next_batch(&cfg), vec![touch(4)]);
        assert!(p.next_batch(&cfg).is_empty());
        assert_eq!(p.data_bytes, 0);
    }
}
