//! The failure detector and member list of one node, as a state machine.
//!
//! Inputs are method calls with the time passed in: [`Membership::join`],
//! [`Membership::leave`], [`Membership::tick`] and
//! [`Membership::on_message`]. Each returns a [`Step`]: the messages to
//! send (to an address) and the membership changes to act on. Nothing here
//! reads a clock, draws a random number or touches a socket, so the
//! simulation in `tests/membership.rs` replays a seed exactly.
//!
//! One probe period (`probe_interval_ms`):
//!
//! 1. ping the next member in turn (members sorted by id, each node
//!    starting after itself, so in a steady cluster every member is probed
//!    by someone every period);
//! 2. no `Ack` after `probe_timeout_ms`: ask `indirect_probes` other
//!    members to ping it (`PingReq`) and relay the answer; one bad link
//!    between two healthy nodes does not make either suspect the other;
//! 3. no `Ack` by the end of the period, direct or relayed: suspect it, and
//!    gossip the suspicion; a suspect that does not refute (a higher
//!    incarnation) within `suspicion_ms` is dead.
//!
//! Alongside: fresh updates go out on `Gossip` messages to
//! `gossip_fanout` members every `gossip_interval_ms` (so a join reaches
//! everyone within a few hundred milliseconds, not a few probe periods);
//! one member held dead is pinged per period, with its death certificate
//! piggybacked, so a node that was only cut off refutes and comes back
//! when the partition heals; a node alone re-sends `Join` to its seeds.

use std::collections::BTreeMap;

use super::gossip::{Gossip, transmits};
use super::member::{Member, MemberState, Update, overrides};
use super::message::{MAX_MEMBERS, MAX_UPDATES, Sender, SwimMessage};

/// Timers and sizes of the failure detector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwimConfig {
    pub probe_interval_ms: u64,
    pub probe_timeout_ms: u64,
    /// Helpers asked to probe a member that did not answer (SWIM's `k`).
    pub indirect_probes: usize,
    pub suspicion_ms: u64,
    pub gossip_interval_ms: u64,
    pub gossip_fanout: usize,
    /// Each update is piggybacked `retransmit_mult * ceil(log2(n + 1))` times.
    pub retransmit_mult: u32,
    /// Updates on one ping, ack or gossip message.
    pub max_piggyback: usize,
    /// How long the dead and the left are remembered (and pinged now and
    /// then, in case they were only cut off).
    pub dead_retain_ms: u64,
    /// How often a node alone asks its seeds again.
    pub rejoin_interval_ms: u64,
    /// How often a node that is not alone joins through the seeds that are
    /// not among its live members (the heal of a long partition).
    pub seed_check_interval_ms: u64,
}

impl Default for SwimConfig {
    /// For a cluster on one machine or one LAN: a crashed member is dead
    /// everywhere about 3 s after it stops answering.
    fn default() -> Self {
        SwimConfig {
            probe_interval_ms: 500,
            probe_timeout_ms: 200,
            indirect_probes: 3,
            suspicion_ms: 2_000,
            gossip_interval_ms: 100,
            gossip_fanout: 3,
            retransmit_mult: 3,
            max_piggyback: 8,
            dead_retain_ms: 60_000,
            rejoin_interval_ms: 1_000,
            seed_check_interval_ms: 10_000,
        }
    }
}

/// A membership change this node now believes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberEvent {
    pub id: String,
    pub addr: String,
    pub incarnation: u64,
    /// The new state (`alive` for a join, a return or a refutation).
    pub state: MemberState,
    /// The state before (`None`: a member not held before).
    pub was: Option<MemberState>,
}

/// What one input asks the caller to do.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Step {
    /// Messages to send, each to a `HOST:PORT`.
    pub sends: Vec<(String, SwimMessage)>,
    pub events: Vec<MemberEvent>,
}

#[derive(Debug, Clone)]
struct Probe {
    target: String,
    incarnation: u64,
    seq: u64,
    sent_ms: u64,
    indirect_sent: bool,
}

#[derive(Debug, Clone)]
struct Relay {
    requester_addr: String,
    their_seq: u64,
    expires_ms: u64,
}

/// Relayed probes one node holds at once (older ones are dropped).
const MAX_RELAYS: usize = 64;

/// One node's view of the cluster and its failure detector.
#[derive(Debug)]
pub struct Membership {
    config: SwimConfig,
    me: String,
    addr: String,
    incarnation: u64,
    leaving: bool,
    members: BTreeMap<String, Member>,
    /// Bumped on every change of any member's state.
    version: u64,
    gossip: Gossip,
    seeds: Vec<String>,
    next_seq: u64,
    probe: Option<Probe>,
    probe_cursor: usize,
    dead_cursor: usize,
    gossip_cursor: usize,
    next_probe_ms: u64,
    next_gossip_ms: u64,
    next_rejoin_ms: u64,
    next_seed_check_ms: u64,
    relays: BTreeMap<u64, Relay>,
    refused_joins: u64,
    step: Step,
}

impl Membership {
    /// A node `me` listening at `addr`, started at `start_ms` (wall clock:
    /// its first incarnation, above any of an earlier life of the same id).
    pub fn new(me: &str, addr: &str, start_ms: u64, config: SwimConfig) -> Self {
        let first_seed_check = start_ms.saturating_add(config.seed_check_interval_ms);
        Membership {
            config,
            me: me.to_owned(),
            addr: addr.to_owned(),
            incarnation: start_ms,
            leaving: false,
            members: BTreeMap::new(),
            version: 0,
            gossip: Gossip::default(),
            seeds: Vec::new(),
            next_seq: 1,
            probe: None,
            probe_cursor: 0,
            dead_cursor: 0,
            gossip_cursor: 0,
            next_probe_ms: start_ms,
            next_gossip_ms: start_ms,
            next_rejoin_ms: start_ms,
            next_seed_check_ms: first_seed_check,
            relays: BTreeMap::new(),
            refused_joins: 0,
            step: Step::default(),
        }
    }

    pub fn id(&self) -> &str {
        &self.me
    }

    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Bumped on every membership change this node believes.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Every member held, this node not included, by id.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// The ids of the live members (alive or suspect), this node included,
    /// sorted: the view that ownership is computed over.
    pub fn live(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .members
            .values()
            .filter(|m| m.state.is_live())
            .map(|m| m.id.as_str())
            .collect();
        if !self.leaving {
            ids.push(&self.me);
        }
        ids.sort_unstable();
        ids
    }

    pub fn state_of(&self, id: &str) -> Option<MemberState> {
        self.members.get(id).map(|m| m.state)
    }

    /// Updates still waiting to be piggybacked.
    pub fn pending_gossip(&self) -> usize {
        self.gossip.len()
    }

    /// Joins refused because the member list was full.
    pub fn refused_joins(&self) -> u64 {
        self.refused_joins
    }

    /// Start joining through `seeds` (`HOST:PORT`, any member); re-sent
    /// every `rejoin_interval_ms` while this node knows no live member.
    pub fn join(&mut self, seeds: &[String], now_ms: u64) -> Step {
        self.seeds = seeds.iter().filter(|s| **s != self.addr).cloned().collect();
        let own = self.own_update();
        let n = self.members.len() + 1;
        self.gossip
            .push(own, transmits(self.config.retransmit_mult, n));
        self.send_joins(now_ms);
        self.take_step()
    }

    /// A graceful stop: tell every live member directly, and stop probing.
    pub fn leave(&mut self) -> Step {
        self.leaving = true;
        self.probe = None;
        let bye = Update {
            state: MemberState::Left,
            ..self.own_update()
        };
        let to: Vec<String> = self
            .members
            .values()
            .filter(|m| m.state.is_live())
            .map(|m| m.addr.clone())
            .collect();
        for addr in to {
            let msg = SwimMessage::Gossip {
                from: self.sender(),
                updates: vec![bye.clone()],
            };
            self.step.sends.push((addr, msg));
        }
        self.take_step()
    }

    /// Timers: probes, suspicion, gossip, forgetting, rejoining.
    pub fn tick(&mut self, now_ms: u64) -> Step {
        if self.leaving {
            return Step::default();
        }
        self.relays.retain(|_, r| r.expires_ms > now_ms);
        self.advance_probe(now_ms);
        self.expire_suspects(now_ms);
        self.forget_dead(now_ms);
        if !self.gossip.is_empty() && now_ms >= self.next_gossip_ms {
            self.next_gossip_ms = now_ms + self.config.gossip_interval_ms;
            self.send_gossip();
        }
        if !self.seeds.is_empty() && self.live().len() == 1 && now_ms >= self.next_rejoin_ms {
            self.send_joins(now_ms);
        } else if !self.seeds.is_empty() && now_ms >= self.next_seed_check_ms {
            self.join_lost_seeds(now_ms);
        }
        self.take_step()
    }

    /// A message from another node (already checked with
    /// [`SwimMessage::check`] and its signature verified).
    pub fn on_message(&mut self, msg: SwimMessage, now_ms: u64) -> Step {
        if self.leaving {
            return Step::default();
        }
        let from = msg.sender().clone();
        if from.id == self.me {
            return Step::default();
        }
        // Hearing from it is direct evidence it is alive at that incarnation.
        self.apply(
            Update {
                id: from.id.clone(),
                addr: from.addr.clone(),
                incarnation: from.incarnation,
                state: MemberState::Alive,
            },
            now_ms,
        );
        for u in msg.updates() {
            self.apply(u.clone(), now_ms);
        }
        match msg {
            SwimMessage::Ping { seq, .. } => {
                let updates = self.piggyback(&from.id);
                let ack = SwimMessage::Ack {
                    from: self.sender(),
                    seq,
                    updates,
                };
                self.step.sends.push((from.addr, ack));
            }
            SwimMessage::Ack { seq, .. } => {
                if self.probe.as_ref().is_some_and(|p| p.seq == seq) {
                    self.probe = None;
                } else if let Some(relay) = self.relays.remove(&seq) {
                    let ack = SwimMessage::Ack {
                        from: self.sender(),
                        seq: relay.their_seq,
                        updates: Vec::new(),
                    };
                    self.step.sends.push((relay.requester_addr, ack));
                }
            }
            SwimMessage::PingReq {
                seq,
                target,
                target_addr,
                ..
            } => {
                let my_seq = self.seq();
                if self.relays.len() >= MAX_RELAYS {
                    self.relays.pop_first();
                }
                self.relays.insert(
                    my_seq,
                    Relay {
                        requester_addr: from.addr,
                        their_seq: seq,
                        expires_ms: now_ms + self.config.probe_interval_ms,
                    },
                );
                let updates = self.piggyback(&target);
                let ping = SwimMessage::Ping {
                    from: self.sender(),
                    seq: my_seq,
                    updates,
                };
                self.step.sends.push((target_addr, ping));
            }
            SwimMessage::Join { .. } => {
                let mut members: Vec<Update> = self.members.values().map(Member::update).collect();
                members.push(self.own_update());
                members.truncate(MAX_MEMBERS);
                let reply = SwimMessage::JoinReply {
                    from: self.sender(),
                    members,
                };
                self.step.sends.push((from.addr, reply));
            }
            SwimMessage::JoinReply { .. } | SwimMessage::Gossip { .. } => {}
        }
        self.take_step()
    }

    fn advance_probe(&mut self, now_ms: u64) {
        if let Some(p) = self.probe.clone() {
            if !p.indirect_sent && now_ms >= p.sent_ms + self.config.probe_timeout_ms {
                self.send_ping_reqs(&p);
                if let Some(p) = self.probe.as_mut() {
                    p.indirect_sent = true;
                }
            }
            if now_ms >= p.sent_ms + self.config.probe_interval_ms {
                self.probe = None;
                let held = self.members.get(&p.target);
                if held.is_some_and(|m| m.state == MemberState::Alive) {
                    let addr = held.map(|m| m.addr.clone()).unwrap_or_default();
                    self.apply(
                        Update {
                            id: p.target,
                            addr,
                            incarnation: p.incarnation,
                            state: MemberState::Suspect,
                        },
                        now_ms,
                    );
                }
            }
        }
        if self.probe.is_none() && now_ms >= self.next_probe_ms {
            self.next_probe_ms = now_ms + self.config.probe_interval_ms;
            self.start_probe(now_ms);
            self.ping_one_dead();
        }
    }

    fn start_probe(&mut self, now_ms: u64) {
        let live = self.others(|s| s.is_live());
        if live.is_empty() {
            return;
        }
        // Start after this node's own place, then walk the sorted list.
        let offset = live.partition_point(|m| m.id.as_str() < self.me.as_str());
        let target = live[(offset + self.probe_cursor) % live.len()].clone();
        self.probe_cursor = self.probe_cursor.wrapping_add(1);
        let seq = self.seq();
        let updates = self.piggyback(&target.id);
        self.probe = Some(Probe {
            target: target.id.clone(),
            incarnation: target.incarnation,
            seq,
            sent_ms: now_ms,
            indirect_sent: false,
        });
        let ping = SwimMessage::Ping {
            from: self.sender(),
            seq,
            updates,
        };
        self.step.sends.push((target.addr, ping));
    }

    fn send_ping_reqs(&mut self, p: &Probe) {
        let Some(target_addr) = self.members.get(&p.target).map(|m| m.addr.clone()) else {
            return;
        };
        let helpers: Vec<Member> = self
            .others(|s| s == MemberState::Alive)
            .into_iter()
            .filter(|m| m.id != p.target)
            .collect();
        if helpers.is_empty() {
            return;
        }
        let start = helpers.partition_point(|m| m.id < p.target);
        for i in 0..self.config.indirect_probes.min(helpers.len()) {
            let helper = &helpers[(start + i) % helpers.len()];
            let updates = self.piggyback(&helper.id);
            let req = SwimMessage::PingReq {
                from: self.sender(),
                seq: p.seq,
                target: p.target.clone(),
                target_addr: target_addr.clone(),
                updates,
            };
            self.step.sends.push((helper.addr.clone(), req));
        }
    }

    /// A member held dead may only have been cut off: ping one per period,
    /// its death certificate first in the piggyback, so it can refute.
    fn ping_one_dead(&mut self) {
        let dead = self.others(|s| s == MemberState::Dead);
        if dead.is_empty() {
            return;
        }
        let target = &dead[self.dead_cursor % dead.len()];
        self.dead_cursor = self.dead_cursor.wrapping_add(1);
        let mut updates = vec![target.update()];
        updates.extend(
            self.piggyback(&target.id)
                .into_iter()
                .filter(|u| u.id != target.id),
        );
        updates.truncate(MAX_UPDATES);
        let seq = self.seq();
        let ping = SwimMessage::Ping {
            from: self.sender(),
            seq,
            updates,
        };
        self.step.sends.push((target.addr.clone(), ping));
    }

    fn expire_suspects(&mut self, now_ms: u64) {
        let due: Vec<Update> = self
            .members
            .values()
            .filter(|m| {
                m.state == MemberState::Suspect && now_ms >= m.since_ms + self.config.suspicion_ms
            })
            .map(|m| Update {
                state: MemberState::Dead,
                ..m.update()
            })
            .collect();
        for u in due {
            self.apply(u, now_ms);
        }
    }

    fn forget_dead(&mut self, now_ms: u64) {
        let retain = self.config.dead_retain_ms;
        self.members
            .retain(|_, m| m.state.is_live() || now_ms < m.since_ms + retain);
    }

    fn send_gossip(&mut self) {
        let live = self.others(|s| s.is_live());
        if live.is_empty() {
            return;
        }
        for i in 0..self.config.gossip_fanout.min(live.len()) {
            let to = &live[(self.gossip_cursor + i) % live.len()];
            let updates = self.piggyback(&to.id);
            if updates.is_empty() {
                break;
            }
            let msg = SwimMessage::Gossip {
                from: self.sender(),
                updates,
            };
            self.step.sends.push((to.addr.clone(), msg));
        }
        self.gossip_cursor = self.gossip_cursor.wrapping_add(self.config.gossip_fanout);
    }

    /// Not alone, but a seed is not among the live members: a partition
    /// longer than `dead_retain_ms` leaves each side with members of its
    /// own and no memory of the other (forgotten members are not pinged),
    /// so nothing else would ever merge the two again. Join through each
    /// such seed, every `seed_check_interval_ms`: its answer lists the
    /// other side. (A seed written in another form than it advertises is
    /// asked too; a join from a live member only brings a member list.)
    fn join_lost_seeds(&mut self, now_ms: u64) {
        self.next_seed_check_ms = now_ms + self.config.seed_check_interval_ms;
        let live: Vec<&str> = self
            .members
            .values()
            .filter(|m| m.state.is_live())
            .map(|m| m.addr.as_str())
            .collect();
        let lost: Vec<String> = self
            .seeds
            .iter()
            .filter(|s| !live.contains(&s.as_str()))
            .cloned()
            .collect();
        self.join_through(lost);
    }

    fn send_joins(&mut self, now_ms: u64) {
        self.next_rejoin_ms = now_ms + self.config.rejoin_interval_ms;
        self.join_through(self.seeds.clone());
    }

    /// A `join` to each of `seeds`.
    fn join_through(&mut self, seeds: Vec<String>) {
        for seed in seeds {
            let join = SwimMessage::Join {
                from: self.sender(),
            };
            self.step.sends.push((seed, join));
        }
    }

    /// Apply one belief (the precedence rules of `member.rs`); a change is
    /// an event, a version and fresh gossip.
    fn apply(&mut self, u: Update, now_ms: u64) {
        if u.id == self.me {
            // Someone thinks this node is suspect or dead: refute with a
            // higher incarnation, which beats that belief everywhere.
            if u.state != MemberState::Alive && u.incarnation >= self.incarnation {
                self.incarnation = u.incarnation + 1;
                let own = self.own_update();
                let n = self.members.len() + 1;
                self.gossip
                    .push(own, transmits(self.config.retransmit_mult, n));
            }
            return;
        }
        let held = self.members.get(&u.id).map(|m| (m.state, m.incarnation));
        if !overrides(held, u.state, u.incarnation) {
            return;
        }
        if held.is_none() && self.members.len() >= MAX_MEMBERS {
            self.refused_joins += 1;
            return;
        }
        let was = held.map(|(s, _)| s);
        let addr = match (u.state, self.members.get(&u.id)) {
            (MemberState::Alive, _) | (_, None) => u.addr.clone(),
            (_, Some(m)) => m.addr.clone(),
        };
        self.members.insert(
            u.id.clone(),
            Member {
                id: u.id.clone(),
                addr: addr.clone(),
                incarnation: u.incarnation,
                state: u.state,
                since_ms: now_ms,
            },
        );
        let n = self.members.len() + 1;
        self.gossip
            .push(u.clone(), transmits(self.config.retransmit_mult, n));
        if was != Some(u.state) {
            self.version += 1;
            self.step.events.push(MemberEvent {
                id: u.id,
                addr,
                incarnation: u.incarnation,
                state: u.state,
                was,
            });
        }
    }

    fn others(&self, keep: impl Fn(MemberState) -> bool) -> Vec<Member> {
        self.members
            .values()
            .filter(|m| keep(m.state))
            .cloned()
            .collect()
    }

    fn piggyback(&mut self, to: &str) -> Vec<Update> {
        self.gossip
            .take(self.config.max_piggyback.min(MAX_UPDATES), to)
    }

    fn seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    fn sender(&self) -> Sender {
        Sender {
            id: self.me.clone(),
            addr: self.addr.clone(),
            incarnation: self.incarnation,
        }
    }

    fn own_update(&self) -> Update {
        Update {
            id: self.me.clone(),
            addr: self.addr.clone(),
            incarnation: self.incarnation,
            state: MemberState::Alive,
        }
    }

    fn take_step(&mut self) -> Step {
        std::mem::take(&mut self.step)
    }
}
