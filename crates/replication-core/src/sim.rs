//! A deterministic simulation: several replicas on a seeded, hostile network.
//!
//! Real clusters fail in ways that are hard to produce on demand: a batch
//! lost at the wrong moment, a duplicate arriving a second late, a node that
//! dies between writing locally and sending. The replicas do no I/O and read
//! no clock, so here they run on a *simulated* network and clock:
//!
//! - time is a number of milliseconds that only moves when the simulation
//!   moves it; every replica ticks every `tick_ms`;
//! - every batch gets a random delay (so batches overtake each other), may
//!   be dropped (the sender learns it failed after `send_timeout_ms`), may be
//!   duplicated (the copy arrives later, maybe much later), and may be
//!   delivered while the *answer* is lost (the sender thinks it failed);
//! - partitions cut links in both directions; crashes lose a node's memory
//!   (store and replica), and a restart rejoins with an empty store;
//! - all randomness comes from one seeded generator, and every collection
//!   that is iterated is ordered, so a seed replays the same run exactly.
//!
//! The property tests (`tests/simulation.rs`) run many seeds and check the
//! protocol's promises after healing and a quiet period; the scripted tests
//! (`tests/scripts/*`) drive it by hand and keep its trace as a golden file.
//! The trace has one line per replication event:
//!
//! ```text
//! node-1 -> node-2 upsert alice_.. v=1@node-1 stored lag=1ms
//! node-1 -> node-3 dropped (partition): upsert alice_.. v=2@node-1
//! node-3: peer node-1 down
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use sessionlab_session::{
    MemoryStore, MemoryStoreConfig, ReplicationAck, Session, SessionId, StoreError,
};

use crate::acks::{AckLabel, AckWait};
use crate::config::ProtocolConfig;
use crate::message::{Batch, Message};
use crate::replica::{Event, LocalWrite, Output, PeerView, Replica};

/// A small, fast, seedable generator (SplitMix64). Deterministic across
/// platforms and crate versions, which a golden trace needs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            items.get(self.range(0, items.len() as u64 - 1) as usize)
        }
    }
}

/// The network's misbehaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkFaults {
    pub min_delay_ms: u64,
    pub max_delay_ms: u64,
    /// Probability a batch is lost.
    pub drop_rate: f64,
    /// Probability a batch is delivered twice (the copy up to
    /// `5 * max_delay_ms` later).
    pub duplicate_rate: f64,
    /// Probability a delivered batch's success report is lost.
    pub lost_reply_rate: f64,
}

impl NetworkFaults {
    /// A perfect network with a fixed 1 ms delay.
    pub fn none() -> Self {
        NetworkFaults {
            min_delay_ms: 1,
            max_delay_ms: 1,
            drop_rate: 0.0,
            duplicate_rate: 0.0,
            lost_reply_rate: 0.0,
        }
    }
}

/// Which control messages the trace shows (data messages, snapshots and
/// events always show).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceFilter {
    pub heartbeats: bool,
    pub acks: bool,
    pub digests: bool,
}

impl TraceFilter {
    pub fn all() -> Self {
        TraceFilter {
            heartbeats: true,
            acks: true,
            digests: true,
        }
    }
}

/// What the network carried while metering was on
/// ([`Sim::set_metering`]): every batch sent, and those with data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub batches: u64,
    /// Bytes of every batch in its wire form ([`crate::codec::encode`]).
    pub bytes: u64,
    /// Batches that carried data messages (upserts, deletes, touches).
    pub data_batches: u64,
    pub data_bytes: u64,
    /// Data messages, and upserts among them.
    pub data_messages: u64,
    pub upserts: u64,
}

/// How to build a simulation.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub nodes: usize,
    pub seed: u64,
    pub protocol: ProtocolConfig,
    pub tick_ms: u64,
    /// When a lost batch is reported failed to its sender.
    pub send_timeout_ms: u64,
    pub network: NetworkFaults,
    pub store: MemoryStoreConfig,
    /// Session timeouts for sessions the simulation creates.
    pub idle_timeout_ms: u64,
    pub absolute_timeout_ms: u64,
    /// Hard cap on processed events, so no run can loop forever.
    pub max_events: u64,
    /// How long a change of membership (a join, a leave, a death) takes to
    /// reach each other node: a random delay in `0..=membership_delay_ms`
    /// per node, so views differ for a while (as gossip makes them).
    pub membership_delay_ms: u64,
}

impl SimConfig {
    pub fn new(nodes: usize, seed: u64) -> Self {
        SimConfig {
            nodes,
            seed,
            protocol: ProtocolConfig::fast(),
            tick_ms: 10,
            send_timeout_ms: 200,
            network: NetworkFaults::none(),
            store: MemoryStoreConfig::default(),
            idle_timeout_ms: 30 * 60_000,
            absolute_timeout_ms: 8 * 3_600_000,
            max_events: 5_000_000,
            membership_delay_ms: 50,
        }
    }
}

/// The simulation's own failure (never the protocol's: those are checked
/// by the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("unknown node {0}")]
    UnknownNode(String),
    #[error("node {0} is down")]
    NodeDown(String),
    #[error("node {0} already exists")]
    Exists(String),
    #[error("the event budget of {0} is used up")]
    Budget(u64),
    #[error("store refused the write: {0}")]
    Store(#[from] StoreError),
}

/// Simulated wall clock at start (any value; a realistic one reads well).
pub const EPOCH_MS: u64 = 1_700_000_000_000;

#[derive(Debug)]
enum NetEvent {
    Deliver {
        batch: Batch,
        sent_ms: u64,
        /// The sender's incarnation, for the report.
        incarnation: u64,
        /// Duplicated copies report nothing.
        report: bool,
    },
    Report {
        node: String,
        incarnation: u64,
        peer: String,
        seq: u64,
        ok: bool,
    },
    /// `node` learns that `peer` joined (`true`) or is gone (`false`).
    Membership {
        node: String,
        peer: String,
        joined: bool,
    },
}

struct SimNode {
    replica: Option<Replica>,
    incarnation: u64,
}

/// Replicas, a network and a clock; see the module docs.
pub struct Sim {
    cfg: SimConfig,
    now_ms: u64,
    rng: Rng,
    nodes: BTreeMap<String, SimNode>,
    /// Pending network events by (time, sequence).
    network: BTreeMap<(u64, u64), NetEvent>,
    net_seq: u64,
    next_tick_ms: u64,
    /// Directed links that are cut.
    cut: BTreeSet<(String, String)>,
    events: u64,
    trace: Vec<String>,
    tracing: bool,
    filter: TraceFilter,
    /// Every `Applied` and other replica event, for checks.
    log: Vec<Event>,
    log_limit: usize,
    /// Every decided write: node, write id, result (bounded like `log`).
    acks: Vec<(String, u64, ReplicationAck)>,
    /// The cluster's members as the membership layer will have them once
    /// every node heard the news: joined, and neither left nor dead.
    members: BTreeSet<String>,
    /// Nodes that left gracefully (gone for good).
    left: BTreeSet<String>,
    /// Counting the traffic costs an encoding per batch: off by default.
    metering: bool,
    traffic: Traffic,
}

/// The id the simulation uses for a session called `name`: the name padded
/// to 32 characters with `_`, so traces show the name (`alice_..`).
pub fn session_id(name: &str) -> SessionId {
    let mut s: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(32)
        .collect();
    while s.len() < 32 {
        s.push('_');
    }
    SessionId::parse(&s).expect("padded to 32 URL-safe characters")
}

impl Sim {
    pub fn new(cfg: SimConfig) -> Self {
        let ids: Vec<String> = (1..=cfg.nodes).map(|i| format!("node-{i}")).collect();
        let mut sim = Sim {
            rng: Rng::new(cfg.seed),
            now_ms: EPOCH_MS,
            nodes: BTreeMap::new(),
            network: BTreeMap::new(),
            net_seq: 0,
            next_tick_ms: EPOCH_MS,
            cut: BTreeSet::new(),
            events: 0,
            trace: Vec::new(),
            tracing: false,
            filter: TraceFilter::default(),
            log: Vec::new(),
            log_limit: 1_000_000,
            acks: Vec::new(),
            members: ids.iter().cloned().collect(),
            left: BTreeSet::new(),
            metering: false,
            traffic: Traffic::default(),
            cfg,
        };
        for id in &ids {
            let replica = sim.new_replica(id);
            sim.nodes.insert(
                id.clone(),
                SimNode {
                    replica: Some(replica),
                    incarnation: 1,
                },
            );
        }
        for id in &ids {
            sim.drain(id);
        }
        sim
    }

    fn new_replica(&self, id: &str) -> Replica {
        let store = Arc::new(MemoryStore::new(MemoryStoreConfig {
            node_id: id.to_owned(),
            ..self.cfg.store.clone()
        }));
        let peers = self.members.iter().filter(|m| *m != id).cloned();
        Replica::new(id, peers, self.cfg.protocol.clone(), store, self.now_ms)
    }

    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    pub fn node_ids(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    pub fn set_network(&mut self, faults: NetworkFaults) {
        self.cfg.network = faults;
    }

    /// Record trace lines (`take_trace`), showing the control messages
    /// `filter` asks for.
    pub fn set_tracing(&mut self, on: bool, filter: TraceFilter) {
        self.tracing = on;
        self.filter = filter;
    }

    /// Count the traffic from now on (or stop), starting from zero.
    pub fn set_metering(&mut self, on: bool) {
        self.metering = on;
        self.traffic = Traffic::default();
    }

    /// The traffic counted since metering was turned on.
    pub fn traffic(&self) -> Traffic {
        self.traffic
    }

    pub fn take_trace(&mut self) -> Vec<String> {
        std::mem::take(&mut self.trace)
    }

    /// Every replica event so far (bounded; oldest kept).
    pub fn events(&self) -> &[Event] {
        &self.log
    }

    /// Every write decided after waiting (node, write id, result), in order.
    pub fn ack_results(&self) -> &[(String, u64, ReplicationAck)] {
        &self.acks
    }

    fn note(&mut self, line: String) {
        if self.tracing {
            self.trace.push(line);
        }
    }

    fn replica_mut(&mut self, node: &str) -> Result<&mut Replica, SimError> {
        self.nodes
            .get_mut(node)
            .ok_or_else(|| SimError::UnknownNode(node.to_owned()))?
            .replica
            .as_mut()
            .ok_or_else(|| SimError::NodeDown(node.to_owned()))
    }

    pub fn replica(&self, node: &str) -> Option<&Replica> {
        self.nodes.get(node)?.replica.as_ref()
    }

    pub fn is_up(&self, node: &str) -> bool {
        self.replica(node).is_some()
    }

    pub fn is_ready(&self, node: &str) -> bool {
        self.replica(node).is_some_and(Replica::is_ready)
    }

    pub fn peers(&self, node: &str) -> Vec<PeerView> {
        self.replica(node).map(Replica::peers).unwrap_or_default()
    }

    /// The live sessions `node` holds, in id order.
    pub fn sessions(&self, node: &str) -> BTreeMap<SessionId, Session> {
        let Some(r) = self.replica(node) else {
            return BTreeMap::new();
        };
        r.store()
            .snapshot()
            .into_iter()
            .filter(|s| !s.is_expired(self.now_ms))
            .map(|s| (s.id.clone(), s))
            .collect()
    }

    // ---- client operations --------------------------------------------

    /// Write `value` into session `id` on `node`: an update of the copy the
    /// node holds, or a new session if it holds none.
    pub fn upsert(
        &mut self,
        node: &str,
        id: &SessionId,
        value: &str,
    ) -> Result<LocalWrite, SimError> {
        let what = "upsert".to_owned();
        self.write(node, id, what, |data| {
            data.clear();
            data.insert("v".into(), serde_json::Value::from(value));
        })
    }

    /// Set one key of session `id` on `node` to `value` (`None`: remove
    /// it), keeping the other keys of the copy the node holds: what one
    /// browser tab's request does to a shared session. With attribute
    /// granularity, two such writes to different keys on two nodes both
    /// survive; with whole-session granularity the later one replaces the
    /// other.
    pub fn set_key(
        &mut self,
        node: &str,
        id: &SessionId,
        key: &str,
        value: Option<&str>,
    ) -> Result<LocalWrite, SimError> {
        let what = match value {
            Some(v) => format!("set {key}={v}"),
            None => format!("unset {key}"),
        };
        self.write(node, id, what, |data| match value {
            Some(v) => {
                data.insert(key.to_owned(), serde_json::Value::from(v));
            }
            None => {
                data.remove(key);
            }
        })
    }

    /// A client request on `node` that changes the data of `id` (read,
    /// change, write), traced as `what`.
    fn write(
        &mut self,
        node: &str,
        id: &SessionId,
        what: String,
        change: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
    ) -> Result<LocalWrite, SimError> {
        let now = self.now_ms;
        let (idle, abs) = (self.cfg.idle_timeout_ms, self.cfg.absolute_timeout_ms);
        let read = self.read(node, id);
        let r = self.replica_mut(node)?;
        let mut s = read.unwrap_or_else(|| Session::new(id.clone(), now, idle, abs));
        let mut data = s.data();
        change(&mut data);
        s.set_data(&data);
        s.last_access_ms = now;
        let result = r.upsert(s, now);
        match &result {
            Ok(w) => {
                self.note(format!("{node}: client {what} {id} -> v={}", w.version));
                if let AckWait::Done(ack) = &w.ack {
                    self.note(format!("{node}: write ack {}", ack.header_value()));
                }
            }
            Err(e) => self.note(format!("{node}: client {what} {id} refused: {e}")),
        }
        self.drain(node);
        Ok(result?)
    }

    /// What a request on `node` reads for `id`: its own copy, or in the
    /// backup topology the copy of the first owner (primary first) that
    /// holds one and that `node` can reach: the runtime's remote fetch
    /// (`/cluster/v1/fetch`), instantaneous here.
    fn read(&self, node: &str, id: &SessionId) -> Option<Session> {
        let now = self.now_ms;
        let r = self.replica(node)?;
        if let Some(s) = r.store().get_live(id, now) {
            return Some(s);
        }
        if !r.topology().is_backup() {
            return None;
        }
        r.owners_of(id)
            .iter()
            .filter(|o| !self.cut.contains(&(node.to_owned(), (*o).clone())))
            .filter_map(|o| self.replica(o))
            .find_map(|o| o.store().get_live(id, now))
    }

    /// Update `id` on `node` only if the node holds it (or, in the backup
    /// topology, can fetch it from an owner) (what a request with
    /// that cookie does). `Ok(None)`: the node does not hold it.
    pub fn update(
        &mut self,
        node: &str,
        id: &SessionId,
        value: &str,
    ) -> Result<Option<LocalWrite>, SimError> {
        self.replica_mut(node)?;
        if self.read(node, id).is_none() {
            return Ok(None);
        }
        self.upsert(node, id, value).map(Some)
    }

    pub fn delete(&mut self, node: &str, id: &SessionId) -> Result<bool, SimError> {
        let now = self.now_ms;
        let deleted = self.replica_mut(node)?.delete(id, now);
        if deleted {
            self.note(format!("{node}: client delete {id}"));
        } else {
            self.note(format!("{node}: client delete {id} (not held here)"));
        }
        self.drain(node);
        Ok(deleted)
    }

    pub fn touch(&mut self, node: &str, id: &SessionId) -> Result<bool, SimError> {
        let now = self.now_ms;
        let touched = self.replica_mut(node)?.touch(id, now, now);
        self.drain(node);
        Ok(touched)
    }

    // ---- faults -----------------------------------------------------------

    /// The node dies: its memory (store and replica) is gone.
    pub fn crash(&mut self, node: &str) -> Result<(), SimError> {
        let n = self
            .nodes
            .get_mut(node)
            .ok_or_else(|| SimError::UnknownNode(node.to_owned()))?;
        n.replica = None;
        self.note(format!("crash {node}"));
        Ok(())
    }

    /// The node starts again, empty, and rejoins.
    pub fn restart(&mut self, node: &str) -> Result<(), SimError> {
        if !self.nodes.contains_key(node) {
            return Err(SimError::UnknownNode(node.to_owned()));
        }
        if self.left.contains(node) {
            return Err(SimError::UnknownNode(node.to_owned()));
        }
        // Declared dead meanwhile: it joins again.
        let rejoin = self.members.insert(node.to_owned());
        let replica = self.new_replica(node);
        let n = self.nodes.get_mut(node).expect("checked above");
        n.replica = Some(replica);
        n.incarnation += 1;
        self.note(format!("restart {node}"));
        self.drain(node);
        if rejoin {
            self.announce(node, true);
        }
        Ok(())
    }

    // ---- membership -------------------------------------------------------

    /// The members once every node has heard the news.
    pub fn members(&self) -> Vec<String> {
        self.members.iter().cloned().collect()
    }

    /// A new node joins the running cluster: it starts empty with the
    /// current members as its peers (what a SWIM join answers), and every
    /// live member learns of it after its own random delay.
    pub fn add_node(&mut self, id: &str) -> Result<(), SimError> {
        if self.nodes.contains_key(id) {
            return Err(SimError::Exists(id.to_owned()));
        }
        let replica = self.new_replica(id);
        self.members.insert(id.to_owned());
        self.nodes.insert(
            id.to_owned(),
            SimNode {
                replica: Some(replica),
                incarnation: 1,
            },
        );
        self.note(format!("join {id}"));
        self.drain(id);
        self.announce(id, true);
        Ok(())
    }

    /// `id` leaves gracefully: it stops, and the others learn it left.
    pub fn remove_node(&mut self, id: &str) -> Result<(), SimError> {
        let n = self
            .nodes
            .get_mut(id)
            .ok_or_else(|| SimError::UnknownNode(id.to_owned()))?;
        if n.replica.take().is_none() {
            return Err(SimError::NodeDown(id.to_owned()));
        }
        self.members.remove(id);
        self.left.insert(id.to_owned());
        self.note(format!("leave {id}"));
        self.announce(id, false);
        Ok(())
    }

    /// `id` leaves gracefully after handing its sessions over
    /// ([`Replica::leave`]): the simulation runs until its pass is over (at
    /// most `max_ms`), then the node stops and announces its leave.
    /// Returns how long the handover took.
    pub fn drain_and_leave(&mut self, id: &str, max_ms: u64) -> Result<u64, SimError> {
        let now = self.now_ms;
        let start = now;
        if self.replica_mut(id)?.leave(now) {
            self.note(format!("{id}: leaving, hands its sessions over"));
        }
        self.drain(id);
        while self.now_ms - start < max_ms {
            let busy = self
                .replica(id)
                .is_some_and(|r| r.rebalance_view().in_progress);
            if !busy {
                break;
            }
            self.run_for(self.cfg.tick_ms)?;
        }
        let took = self.now_ms - start;
        self.remove_node(id)?;
        Ok(took)
    }

    /// The failure detector's verdict on a crashed node: the others remove
    /// it from their members (each after its own delay).
    pub fn declare_dead(&mut self, id: &str) -> Result<(), SimError> {
        if !self.nodes.contains_key(id) {
            return Err(SimError::UnknownNode(id.to_owned()));
        }
        self.members.remove(id);
        self.note(format!("dead {id}"));
        self.announce(id, false);
        Ok(())
    }

    fn announce(&mut self, id: &str, joined: bool) {
        let now = self.now_ms;
        for n in self.node_ids() {
            if n == id || !self.is_up(&n) {
                continue;
            }
            let d = self.rng.range(0, self.cfg.membership_delay_ms);
            let ev = NetEvent::Membership {
                node: n,
                peer: id.to_owned(),
                joined,
            };
            self.schedule(now + d, ev);
        }
    }

    /// Cut every link between `group` and the other nodes, both ways.
    pub fn partition(&mut self, group: &[String]) {
        let group: BTreeSet<&String> = group.iter().collect();
        let ids = self.node_ids();
        for a in &ids {
            for b in &ids {
                if group.contains(a) != group.contains(b) {
                    self.cut.insert((a.clone(), b.clone()));
                }
            }
        }
        let mut names: Vec<&str> = group.iter().map(|s| s.as_str()).collect();
        names.sort_unstable();
        self.note(format!("partition {}", names.join(" ")));
    }

    pub fn heal(&mut self) {
        self.cut.clear();
        self.note("heal".to_owned());
    }

    // ---- running ----------------------------------------------------------

    /// Run until `ms` of simulated time have passed.
    pub fn run_for(&mut self, ms: u64) -> Result<(), SimError> {
        let until = self.now_ms + ms;
        loop {
            let next_net = self.network.keys().next().map(|(t, _)| *t);
            let next = match next_net {
                Some(t) if t <= self.next_tick_ms => t,
                _ => self.next_tick_ms,
            };
            if next > until {
                break;
            }
            self.events += 1;
            if self.events > self.cfg.max_events {
                return Err(SimError::Budget(self.cfg.max_events));
            }
            self.now_ms = next;
            if next_net == Some(next) {
                let (_, ev) = self.network.pop_first().expect("peeked above");
                self.handle(ev);
            } else {
                self.next_tick_ms = next + self.cfg.tick_ms;
                let now = self.now_ms;
                for id in self.node_ids() {
                    if let Some(r) = self.nodes.get_mut(&id).and_then(|n| n.replica.as_mut()) {
                        r.tick(now);
                        self.drain(&id);
                    }
                }
            }
        }
        self.now_ms = until;
        Ok(())
    }

    /// Run until no batch is in the network and no replica has anything to
    /// send, at most `max_ms`. Returns the time it took.
    pub fn stabilize(&mut self, max_ms: u64) -> Result<u64, SimError> {
        let start = self.now_ms;
        while self.now_ms - start < max_ms {
            self.run_for(self.cfg.tick_ms)?;
            if self.network.is_empty() {
                break;
            }
        }
        Ok(self.now_ms - start)
    }

    fn schedule(&mut self, at_ms: u64, ev: NetEvent) {
        self.net_seq += 1;
        self.network.insert((at_ms, self.net_seq), ev);
    }

    fn delay(&mut self) -> u64 {
        let (lo, hi) = (self.cfg.network.min_delay_ms, self.cfg.network.max_delay_ms);
        self.rng.range(lo, hi)
    }

    fn visible(&self, m: &Message) -> bool {
        match m {
            Message::Heartbeat { .. } => self.filter.heartbeats,
            Message::Ack { .. } | Message::Refused { .. } => self.filter.acks,
            Message::DigestRequest { .. } | Message::Digest { .. } => self.filter.digests,
            _ => true,
        }
    }

    fn describe(&self, batch: &Batch) -> Option<String> {
        let parts: Vec<String> = batch
            .messages
            .iter()
            .filter(|m| self.visible(m))
            .map(|m| m.to_string())
            .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }

    /// Process a replica's outputs.
    fn drain(&mut self, node: &str) {
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        let incarnation = n.incarnation;
        let Some(r) = n.replica.as_mut() else {
            return;
        };
        for out in r.take_outputs() {
            match out {
                Output::Send(batch) => self.send(batch, incarnation),
                Output::AckDone { write, ack } => {
                    self.note(format!(
                        "{node}: write ack#{} {}",
                        AckLabel(write),
                        ack.header_value()
                    ));
                    if self.acks.len() < self.log_limit {
                        self.acks.push((node.to_owned(), write, ack));
                    }
                }
                Output::Event(e) => {
                    self.note(e.to_string());
                    if self.log.len() < self.log_limit {
                        self.log.push(e);
                    }
                }
            }
        }
    }

    fn send(&mut self, batch: Batch, incarnation: u64) {
        let now = self.now_ms;
        if self.metering {
            let bytes = crate::codec::encode(&batch).len() as u64;
            let t = &mut self.traffic;
            t.batches += 1;
            t.bytes += bytes;
            if batch.has_data() {
                t.data_batches += 1;
                t.data_bytes += bytes;
                for m in &batch.messages {
                    if m.is_data() {
                        t.data_messages += 1;
                    }
                    if matches!(m, Message::Upsert(_)) {
                        t.upserts += 1;
                    }
                }
            }
        }
        let link = (batch.from.clone(), batch.to.clone());
        let reason = if self.cut.contains(&link) {
            Some("partition")
        } else if self.rng.chance(self.cfg.network.drop_rate) {
            Some("lost")
        } else {
            None
        };
        if let Some(reason) = reason {
            if let Some(d) = self.describe(&batch) {
                self.note(format!(
                    "{} -> {} dropped ({reason}): {d}",
                    batch.from, batch.to
                ));
            }
            let report = NetEvent::Report {
                node: batch.from.clone(),
                incarnation,
                peer: batch.to.clone(),
                seq: batch.seq,
                ok: false,
            };
            self.schedule(now + self.cfg.send_timeout_ms, report);
            return;
        }
        if self.rng.chance(self.cfg.network.duplicate_rate) {
            let late = self.rng.range(1, 5 * self.cfg.network.max_delay_ms.max(1));
            let copy = NetEvent::Deliver {
                batch: batch.clone(),
                sent_ms: now,
                incarnation,
                report: false,
            };
            self.schedule(now + late, copy);
        }
        let d = self.delay();
        self.schedule(
            now + d,
            NetEvent::Deliver {
                batch,
                sent_ms: now,
                incarnation,
                report: true,
            },
        );
    }

    fn handle(&mut self, ev: NetEvent) {
        let now = self.now_ms;
        match ev {
            NetEvent::Membership { node, peer, joined } => {
                let Ok(r) = self.replica_mut(&node) else {
                    return; // crashed meanwhile: it learns the members at restart
                };
                let changed = if joined {
                    r.add_peer(&peer, now)
                } else {
                    r.remove_peer(&peer, now)
                };
                if changed {
                    let what = if joined { "joined" } else { "is gone" };
                    self.note(format!("{node}: learnt {peer} {what}"));
                }
                self.drain(&node);
            }
            NetEvent::Report {
                node,
                incarnation,
                peer,
                seq,
                ok,
            } => {
                let Some(n) = self.nodes.get_mut(&node) else {
                    return;
                };
                if n.incarnation != incarnation {
                    return; // for a previous life of the node
                }
                if let Some(r) = n.replica.as_mut() {
                    r.on_send_result(&peer, seq, ok, now);
                    self.drain(&node);
                }
            }
            NetEvent::Deliver {
                batch,
                sent_ms,
                incarnation,
                report,
            } => {
                let from = batch.from.clone();
                let to = batch.to.clone();
                let seq = batch.seq;
                let cut = self.cut.contains(&(from.clone(), to.clone()));
                let receiver_up = self.is_up(&to);
                let ok = if cut || !receiver_up {
                    if let Some(d) = self.describe(&batch) {
                        let why = if cut { "partition" } else { "receiver down" };
                        self.note(format!("{from} -> {to} dropped ({why}): {d}"));
                    }
                    false
                } else {
                    // Control messages are traced here; data messages by the
                    // receiver's `Applied` events.
                    let lines: Vec<String> = batch
                        .messages
                        .iter()
                        .filter(|m| !m.is_data() && self.visible(m))
                        .map(|m| format!("{from} -> {to} {m}"))
                        .collect();
                    for l in lines {
                        self.note(l);
                    }
                    let r = self.replica_mut(&to).expect("receiver is up");
                    let result = r.on_batch(batch, now);
                    self.drain(&to);
                    if let Err(e) = &result {
                        self.note(format!("{from} -> {to} rejected: {e}"));
                    }
                    result.is_ok() && !self.rng.chance(self.cfg.network.lost_reply_rate)
                };
                if report {
                    let at = if ok {
                        now + self.delay()
                    } else {
                        now.max(sent_ms + self.cfg.send_timeout_ms)
                    };
                    self.schedule(
                        at,
                        NetEvent::Report {
                            node: from,
                            incarnation,
                            peer: to,
                            seq,
                            ok,
                        },
                    );
                }
            }
        }
    }

    // ---- checks -------------------------------------------------------------

    /// Whether every live node holds the same sessions (all fields, versions
    /// included). Returns the first difference found.
    ///
    /// In the backup topology, [`check_placement`](Sim::check_placement)
    /// instead: nodes hold different sessions by design.
    pub fn check_converged(&self) -> Result<(), String> {
        if self.cfg.protocol.topology.is_backup() {
            return self.check_placement();
        }
        let mut reference: Option<(String, BTreeMap<SessionId, Session>)> = None;
        for id in self.node_ids() {
            if !self.is_up(&id) {
                continue;
            }
            let mine = self.sessions(&id);
            match &reference {
                None => reference = Some((id, mine)),
                Some((rid, theirs)) => {
                    if *theirs != mine {
                        return Err(describe_difference(rid, theirs, &id, &mine));
                    }
                }
            }
        }
        Ok(())
    }
}

impl Sim {
    /// Whether every live node sees the same members (the views converged),
    /// equal to the members the news announced.
    pub fn check_views(&self) -> Result<(), String> {
        let truth = self.members();
        for id in self.node_ids() {
            let Some(r) = self.replica(&id) else {
                continue;
            };
            let view = r.members();
            if view != truth {
                return Err(format!("{id} sees members {view:?}, not {truth:?}"));
            }
        }
        Ok(())
    }

    /// The sessions held by the live nodes: for each id, who holds it.
    pub fn holders(&self) -> BTreeMap<SessionId, BTreeMap<String, Session>> {
        let mut all: BTreeMap<SessionId, BTreeMap<String, Session>> = BTreeMap::new();
        for node in self.node_ids() {
            for (id, s) in self.sessions(&node) {
                all.entry(id).or_default().insert(node.clone(), s);
            }
        }
        all
    }

    /// The placement promise, after quiet: the views converged, and every
    /// live session has exactly `copies(members)` copies (`K + 1` in
    /// backup, every member in all-to-all), held by its owners, all equal.
    pub fn check_placement(&self) -> Result<(), String> {
        self.check_views()?;
        let members = self.members();
        let Some(viewer) = members.iter().find_map(|m| self.replica(m)) else {
            return Ok(());
        };
        let copies = self.cfg.protocol.topology.copies(members.len());
        for (id, held) in self.holders() {
            let owners: BTreeSet<String> = viewer.owners_of(&id).into_iter().collect();
            let holders: BTreeSet<String> = held.keys().cloned().collect();
            if holders != owners || holders.len() != copies {
                return Err(format!(
                    "{id} is held by {holders:?}, its owners are {owners:?} ({copies} copies)"
                ));
            }
            let mut copies_of = held.iter();
            if let Some((a, first)) = copies_of.next() {
                for (b, other) in copies_of {
                    if other != first {
                        return Err(format!(
                            "{id}: {a} has v={} last_access={}, {b} has v={} last_access={}",
                            first.version,
                            first.last_access_ms,
                            other.version,
                            other.last_access_ms
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

fn describe_difference(
    a: &str,
    sa: &BTreeMap<SessionId, Session>,
    b: &str,
    sb: &BTreeMap<SessionId, Session>,
) -> String {
    for (id, x) in sa {
        match sb.get(id) {
            None => return format!("{a} holds {id} v={} but {b} does not", x.version),
            Some(y) if x != y => {
                return format!(
                    "{id}: {a} has v={} last_access={}, {b} has v={} last_access={}",
                    x.version, x.last_access_ms, y.version, y.last_access_ms
                );
            }
            _ => {}
        }
    }
    for (id, y) in sb {
        if !sa.contains_key(id) {
            return format!("{b} holds {id} v={} but {a} does not", y.version);
        }
    }
    "no difference".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rng_is_deterministic_and_in_range() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1000 {
            let x = a.range(3, 9);
            assert_eq!(x, b.range(3, 9));
            assert!((3..=9).contains(&x));
        }
        assert!(!Rng::new(1).chance(0.0));
        assert!(Rng::new(1).chance(1.0));
    }

    #[test]
    fn session_ids_from_names() {
        let id = session_id("alice");
        assert_eq!(id.short(), "alice_");
        assert_eq!(id.as_str().len(), 32);
    }

    #[test]
    fn a_quiet_healthy_cluster_stays_in_sync_without_resyncs() {
        let mut sim = Sim::new(SimConfig::new(3, 9));
        sim.run_for(1_000).unwrap();
        let settled = sim.events().len();
        for i in 0..50 {
            sim.upsert("node-2", &session_id(&format!("q{i}")), "v")
                .unwrap();
            sim.run_for(100).unwrap();
        }
        let later = &sim.events()[settled..];
        assert!(
            !later
                .iter()
                .any(|e| matches!(e, Event::ResyncNeeded { .. } | Event::PeerDown { .. })),
            "{later:?}"
        );
        // Every write was applied once per peer, none needed a repair.
        let applied = later
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Event::Applied {
                        lag_ms: Some(_),
                        ..
                    }
                )
            })
            .count();
        let repairs = later
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Event::Applied {
                        lag_ms: None,
                        kind: "upsert",
                        ..
                    }
                )
            })
            .count();
        assert_eq!((applied, repairs), (100, 0));
        sim.check_converged().unwrap();
    }

    #[test]
    fn a_write_reaches_every_node() {
        let mut sim = Sim::new(SimConfig::new(3, 1));
        sim.run_for(500).unwrap();
        assert!(sim.node_ids().iter().all(|n| sim.is_ready(n)));
        let id = session_id("alice");
        sim.upsert("node-1", &id, "x").unwrap();
        sim.stabilize(1_000).unwrap();
        for n in sim.node_ids() {
            assert!(sim.sessions(&n).contains_key(&id), "{n}");
        }
        sim.check_converged().unwrap();
    }
}
