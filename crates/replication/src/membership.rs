//! Membership at run time: the SWIM failure detector carried over HTTP,
//! and what a change of members means for replication.
//!
//! The failure detector itself is sans-IO
//! ([`sessionlab_replication_core::membership`]). This module gives it a
//! network and a clock, and turns its verdicts into replication peers:
//!
//! | SWIM says | the runtime does |
//! |---|---|
//! | a member is alive (joined, returned) | learns its address, then [`Replica::add_peer`]: batches, acks and ownership include it |
//! | a member is suspect | nothing yet: a suspect still owns its sessions (one slow probe must not move data) |
//! | a member is dead or left | [`Replica::remove_peer`]: writes stop waiting for it; in the backup topology its sessions get new owners (rebalance) |
//!
//! **Where members come from.** `--join HOST:PORT` (any member; repeatable)
//! and the `--peer` addresses are seeds: the node sends them `Join` and
//! gets the member list back. `--discover NAME:PORT` makes every address
//! NAME resolves to a seed, looked up again every `--discover-interval`:
//! the mechanism of a compose service scaled to several containers and of
//! a Kubernetes headless Service. A lookup that finds no address but this
//! node's own means this node is the first member: it serves alone
//! ([`Replica::serve_alone`]) and the others join it. A name that does not
//! resolve is retried forever, logged (at most every 30 s) and shown in
//! `/admin/v1/status`; the node does not report ready on its own.
//!
//! **The wire.** Every message is one signed `POST /cluster/v1/swim` with
//! the [`SwimMessage`] as JSON, answered 204 (the protocol has its own
//! acks; the HTTP answer only says it arrived). Sends are fire and forget,
//! bounded in time ([`SEND_TIMEOUT`]) and in number ([`MAX_IN_FLIGHT`]):
//! a message that cannot go is a lost datagram, which SWIM is built to
//! survive. A `Join` from an id held alive at another address is refused
//! (409): two processes must not share a node id. Injected faults apply
//! as to batches: a partitioned peer's probes are dropped too.
//!
//! [`Replica::add_peer`]: sessionlab_replication_core::Replica::add_peer
//! [`Replica::remove_peer`]: sessionlab_replication_core::Replica::remove_peer
//! [`Replica::serve_alone`]: sessionlab_replication_core::Replica::serve_alone

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use reqwest::header::CONTENT_TYPE;
use sessionlab_replication_core::membership::{
    MemberEvent, MemberState, Membership, Sender, Step, SwimConfig, SwimMessage,
};
use sessionlab_session::clock;
use sessionlab_wire::{DiscoveryStatus, MemberStatus, MembershipStatus};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::PeerAddr;
use crate::auth;
use crate::metrics::Direction;
use crate::runtime::{Shared, skipping_interval};

/// The path failure-detector messages are posted to.
pub const SWIM_PATH: &str = "/cluster/v1/swim";

/// How long one message may take to be delivered.
pub const SEND_TIMEOUT: Duration = Duration::from_millis(500);

/// Messages on their way at once; more are dropped (a lost datagram).
pub const MAX_IN_FLIGHT: usize = 256;

/// How often the failure detector's timers are run.
const TICK: Duration = Duration::from_millis(20);

/// A DNS lookup that takes longer counts as failed.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Warnings about a failing lookup or a refused join: at most this often.
const WARN_EVERY_MS: u64 = 30_000;

/// How a node finds and keeps its cluster.
#[derive(Clone, Debug)]
pub struct MembershipConfig {
    /// Where the others reach this node's cluster listener
    /// (`--cluster-advertise`).
    pub advertise: PeerAddr,
    /// `--join` and the `--peer` addresses.
    pub seeds: Vec<PeerAddr>,
    /// `--discover NAME:PORT`.
    pub discover: Option<PeerAddr>,
    /// `--discover-interval`.
    pub discover_interval: Duration,
    pub swim: SwimConfig,
}

impl MembershipConfig {
    /// Seeds only, the failure detector's defaults, lookups every 2 s.
    pub fn new(advertise: PeerAddr, seeds: Vec<PeerAddr>) -> Self {
        MembershipConfig {
            advertise,
            seeds,
            discover: None,
            discover_interval: Duration::from_secs(2),
            swim: SwimConfig::default(),
        }
    }
}

/// The running membership of one node (in [`Shared`]).
pub(crate) struct Link {
    pub swim: Mutex<Membership>,
    pub advertise: String,
    seeds: Vec<String>,
    discover: Option<PeerAddr>,
    discover_interval: Duration,
    discovery: Mutex<Option<DiscoveryStatus>>,
    /// Why this node is not (yet) in a cluster, when it knows.
    problem: Mutex<Option<String>>,
    outbox: mpsc::Sender<(String, SwimMessage)>,
    lookup_running: AtomicBool,
    last_lookup_warning_ms: AtomicU64,
    last_refusal_warning_ms: AtomicU64,
}

/// The receiving end of [`Link`]'s outbox, for [`drive`].
pub(crate) type Outbox = mpsc::Receiver<(String, SwimMessage)>;

impl Link {
    pub fn new(node_id: &str, cfg: &MembershipConfig) -> (Link, Outbox) {
        let advertise = cfg.advertise.to_string();
        let swim = Membership::new(node_id, &advertise, clock::now_ms(), cfg.swim.clone());
        let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
        let link = Link {
            swim: Mutex::new(swim),
            seeds: cfg
                .seeds
                .iter()
                .map(|s| s.to_string())
                .filter(|s| *s != advertise)
                .collect(),
            advertise,
            discover: cfg.discover.clone(),
            discover_interval: cfg.discover_interval,
            discovery: Mutex::new(cfg.discover.as_ref().map(|d| DiscoveryStatus {
                target: d.to_string(),
                ..DiscoveryStatus::default()
            })),
            problem: Mutex::new(None),
            outbox: tx,
            lookup_running: AtomicBool::new(false),
            last_lookup_warning_ms: AtomicU64::new(0),
            last_refusal_warning_ms: AtomicU64::new(0),
        };
        (link, rx)
    }

    /// The view for `/admin/v1/status`: every member, this node included.
    pub fn status(&self) -> MembershipStatus {
        let swim = self.swim.lock();
        let mut members: Vec<MemberStatus> = swim
            .members()
            .map(|m| MemberStatus {
                id: m.id.clone(),
                addr: m.addr.clone(),
                state: m.state.as_str().to_owned(),
                incarnation: m.incarnation,
            })
            .collect();
        members.push(MemberStatus {
            id: swim.id().to_owned(),
            addr: self.advertise.clone(),
            state: MemberState::Alive.as_str().to_owned(),
            incarnation: swim.incarnation(),
        });
        members.sort_by(|a, b| a.id.cmp(&b.id));
        MembershipStatus {
            version: swim.version(),
            members,
            discovery: self.discovery.lock().clone(),
            problem: self.problem.lock().clone(),
        }
    }

    /// Why a `Join` from `from` must be refused: its id is this node's, or
    /// held alive at another address.
    pub fn id_conflict(&self, from: &Sender) -> Option<String> {
        let swim = self.swim.lock();
        if from.id == swim.id() {
            return Some(format!(
                "node id {} is this node's own (at {})",
                from.id, self.advertise
            ));
        }
        swim.members()
            .find(|m| m.id == from.id && m.state.is_live() && m.addr != from.addr)
            .map(|m| {
                format!(
                    "node id {} is already in use by the member at {} (give every node its own --id)",
                    m.id, m.addr
                )
            })
    }

    /// The id of the member at `addr`, if one is held there.
    fn id_at(&self, addr: &str) -> Option<String> {
        self.swim
            .lock()
            .members()
            .find(|m| m.addr == addr)
            .map(|m| m.id.clone())
    }

    fn warn_due(last: &AtomicU64) -> bool {
        let now = clock::now_ms();
        let before = last.load(Ordering::Relaxed);
        if now.saturating_sub(before) < WARN_EVERY_MS && before != 0 {
            return false;
        }
        last.store(now, Ordering::Relaxed);
        true
    }
}

impl Shared {
    /// Act on what the failure detector asked for: queue its messages,
    /// and turn its verdicts into replication peers (module docs).
    pub(crate) fn swim_step(&self, step: Step) {
        let Some(link) = self.membership.as_ref() else {
            return;
        };
        for send in step.sends {
            // A full outbox is a lost datagram; SWIM copes.
            let _ = link.outbox.try_send(send);
        }
        for e in &step.events {
            self.on_member(e);
        }
    }

    fn on_member(&self, e: &MemberEvent) {
        let live = e.state.is_live();
        let was_live = e.was.is_some_and(MemberState::is_live);
        tracing::info!(
            node = %self.node_id,
            member = %e.id,
            addr = %e.addr,
            was = e.was.map_or("unknown", MemberState::as_str),
            now = e.state.as_str(),
            "membership changed"
        );
        if live {
            match e.addr.parse::<PeerAddr>() {
                Ok(addr) => self.set_addr(&e.id, addr),
                Err(err) => {
                    tracing::warn!(member = %e.id, addr = %e.addr, error = %err, "a member with an address that cannot be dialled is ignored");
                    return;
                }
            }
            if !was_live {
                self.faults.add_peer(&e.id);
                self.with_replica(|r, now| r.add_peer(&e.id, now));
            }
        } else if was_live || e.was.is_none() {
            self.with_replica(|r, now| r.remove_peer(&e.id, now));
        }
    }

    /// What one DNS lookup of `--discover` found.
    fn on_discovered(&self, found: Result<Vec<SocketAddr>, String>, own: &BTreeSet<SocketAddr>) {
        let Some(link) = self.membership.as_ref() else {
            return;
        };
        let found = match found {
            Ok(found) => found,
            Err(e) => {
                if Link::warn_due(&link.last_lookup_warning_ms) {
                    tracing::warn!(node = %self.node_id, error = %e, "discovery: no members found yet; retrying");
                }
                if let Some(d) = link.discovery.lock().as_mut() {
                    d.error = Some(e);
                }
                return;
            }
        };
        if let Some(d) = link.discovery.lock().as_mut() {
            d.addrs = found.iter().map(|a| a.to_string()).collect();
            d.error = None;
        }
        let others: Vec<String> = found
            .iter()
            .filter(|a| !own.contains(a))
            .map(|a| a.to_string())
            .collect();
        let step = {
            let mut swim = link.swim.lock();
            let alone = swim.live().len() == 1;
            if others.is_empty() {
                drop(swim);
                if alone && self.with_replica(|r, now| r.serve_alone(now)) {
                    tracing::info!(node = %self.node_id, "discovery found no other member: serving as the first");
                }
                return;
            }
            let known: BTreeSet<&str> = swim.members().map(|m| m.addr.as_str()).collect();
            let fresh = others.iter().any(|a| !known.contains(a.as_str()));
            if !alone && !fresh {
                return;
            }
            let mut seeds = link.seeds.clone();
            seeds.extend(others);
            swim.join(&seeds, clock::now_ms())
        };
        self.swim_step(step);
    }
}

/// The membership driver: runs the failure detector's timers, sends its
/// messages and looks up `--discover`, until stopped.
pub(crate) async fn drive(
    shared: Arc<Shared>,
    mut outbox: Outbox,
    client: reqwest::Client,
    mut stop: watch::Receiver<bool>,
) {
    let Some(link) = shared.membership.as_ref() else {
        return;
    };
    if !link.seeds.is_empty() {
        let step = link.swim.lock().join(&link.seeds, clock::now_ms());
        shared.swim_step(step);
    }
    let mut ticker = skipping_interval(TICK);
    let mut gauges = skipping_interval(TICK * 25);
    let mut lookups = skipping_interval(link.discover_interval);
    let mut sends = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = ticker.tick() => {
                let step = link.swim.lock().tick(clock::now_ms());
                shared.swim_step(step);
            }
            _ = gauges.tick() => set_gauges(&shared, link),
            _ = lookups.tick(), if link.discover.is_some() => {
                if !link.lookup_running.swap(true, Ordering::AcqRel) {
                    tokio::spawn(lookup(shared.clone()));
                }
            }
            Some((addr, msg)) = outbox.recv() => {
                if sends.len() < MAX_IN_FLIGHT {
                    sends.spawn(send(shared.clone(), client.clone(), addr, msg));
                }
            }
            Some(_) = sends.join_next(), if !sends.is_empty() => {}
        }
    }
    sends.abort_all();
}

fn set_gauges(shared: &Shared, link: &Link) {
    let (version, counts) = {
        let swim = link.swim.lock();
        let mut counts: Vec<(&'static str, usize)> = [
            MemberState::Alive,
            MemberState::Suspect,
            MemberState::Dead,
            MemberState::Left,
        ]
        .iter()
        .map(|s| (s.as_str(), swim.members().filter(|m| m.state == *s).count()))
        .collect();
        counts[0].1 += 1; // this node
        (swim.version(), counts)
    };
    shared.metrics.set_members(version, &counts);
}

/// One lookup of `--discover` (and of this node's own advertised name, to
/// tell itself apart among the answers).
async fn lookup(shared: Arc<Shared>) {
    let Some(link) = shared.membership.as_ref() else {
        return;
    };
    let Some(target) = link.discover.clone() else {
        return;
    };
    let resolve = |a: String| async move {
        match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host(a.clone())).await {
            Ok(Ok(found)) => Ok(found.collect::<Vec<SocketAddr>>()),
            Ok(Err(e)) => Err(format!("{a} does not resolve: {e}")),
            Err(_) => Err(format!("looking up {a} took over {LOOKUP_TIMEOUT:?}")),
        }
    };
    let found = resolve(target.to_string())
        .await
        .and_then(|found| match found.is_empty() {
            true => Err(format!("{target} resolves to no address")),
            false => Ok(found),
        });
    let own: BTreeSet<SocketAddr> = resolve(link.advertise.clone())
        .await
        .unwrap_or_default()
        .into_iter()
        .collect();
    shared.on_discovered(found, &own);
    link.lookup_running.store(false, Ordering::Release);
}

/// Deliver one message; see the module docs.
async fn send(shared: Arc<Shared>, client: reqwest::Client, addr: String, msg: SwimMessage) {
    let Some(link) = shared.membership.as_ref() else {
        return;
    };
    if link.id_at(&addr).is_some_and(|id| shared.faults.drops(&id)) {
        return;
    }
    let kind = msg.kind();
    let Ok(body) = serde_json::to_vec(&msg) else {
        return;
    };
    let signed = auth::sign_request(
        &shared.secret,
        &shared.node_id,
        "POST",
        SWIM_PATH,
        &body,
        clock::now_ms(),
    );
    let mut req = client
        .post(format!("http://{addr}{SWIM_PATH}"))
        .timeout(SEND_TIMEOUT)
        .header(CONTENT_TYPE, "application/json");
    for (name, value) in signed.pairs() {
        req = req.header(name, value);
    }
    shared.metrics.on_swim(Direction::Sent, kind, body.len());
    match req.body(body).send().await {
        Ok(resp) if resp.status().is_success() => {
            if kind == "join" {
                *link.problem.lock() = None;
            }
        }
        Ok(resp) => {
            let status = resp.status();
            let (why, _) = crate::transport::read_upto(resp, 1200)
                .await
                .unwrap_or_default();
            let why: String = String::from_utf8_lossy(&why).chars().take(300).collect();
            if kind == "join" {
                *link.problem.lock() = Some(format!("{addr} refused the join: {status} {why}"));
            }
            if Link::warn_due(&link.last_refusal_warning_ms) {
                tracing::warn!(node = %shared.node_id, %addr, %status, kind, %why, "a member refused a membership message");
            }
        }
        Err(e) => tracing::debug!(%addr, kind, error = %e, "membership message not delivered"),
    }
}

/// A graceful stop's goodbye: tell every live member this node leaves, and
/// wait (bounded) for the messages to go.
pub(crate) async fn leave(shared: &Arc<Shared>, client: &reqwest::Client) {
    let Some(link) = shared.membership.as_ref() else {
        return;
    };
    let step = link.swim.lock().leave();
    let mut sends = JoinSet::new();
    for (addr, msg) in step.sends {
        sends.spawn(send(shared.clone(), client.clone(), addr, msg));
    }
    let _ = tokio::time::timeout(SEND_TIMEOUT, async {
        while sends.join_next().await.is_some() {}
    })
    .await;
}
