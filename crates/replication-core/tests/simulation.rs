//! Property tests on the simulated cluster: many seeds, a hostile network.
//!
//! Each seed builds a cluster of 3 to 5 replicas on a network that delays,
//! reorders, drops and duplicates batches and loses replies, runs a random
//! workload (creates, updates, touches, deletes) while crashing, restarting
//! and partitioning nodes, then heals everything, lets it be quiet, and
//! checks the protocol's promises:
//!
//! 1. every node is up, ready, and sees every peer up with nothing left to
//!    resync;
//! 2. all nodes hold the same sessions with the same versions (and the same
//!    last access);
//! 3. no deleted session exists anywhere (unless the delete died with its
//!    node before it left it, like any unsent write);
//! 4. no write made on a node that never crashed was lost (the final
//!    version is at least as new).
//!
//! Half the seeds merge per key (`--replication-granularity attribute`);
//! the promises are the same. A second workload, two tabs per session
//! writing different keys, checks what attribute granularity adds: every
//! key ends with its newest write on every node.
//!
//! A failing seed is reported with the tail of its trace: rerun it alone
//! with `SIM_SEED=<seed> SIM_TRACE_FILE=/tmp/trace.txt` to get the whole run.

use std::collections::{BTreeMap, BTreeSet};

use sessionlab_replication_core::{
    AckMode, AckWait, Granularity, NetworkFaults, PartitionPolicy, Rng, Sim, SimConfig, SimError,
    TraceFilter, session_id,
};
use sessionlab_session::{ReplicationAck, SessionId, StoreError, Version};

const SESSIONS: u64 = 24;

struct Outcome {
    writes: usize,
    deletes: usize,
    crashes: usize,
    partitions: usize,
}

fn run_seed(seed: u64, trace: bool) -> Result<Outcome, (String, Vec<String>)> {
    let mut rng = Rng::new(seed.wrapping_mul(31) ^ 0x5eed);
    let nodes = 3 + (seed % 3) as usize;
    let mut cfg = SimConfig::new(nodes, seed);
    let faulty = NetworkFaults {
        min_delay_ms: 0,
        max_delay_ms: rng.range(1, 40),
        drop_rate: rng.range(0, 10) as f64 / 100.0,
        duplicate_rate: rng.range(0, 10) as f64 / 100.0,
        lost_reply_rate: rng.range(0, 5) as f64 / 100.0,
    };
    cfg.network = faulty.clone();
    // Odd seeds answer writes once handed to the transport (`sent`), so its
    // hand-over marks ride through drops, overflows, crashes and
    // partitions too; the promises below hold whatever the ack mode.
    if seed % 2 == 1 {
        cfg.protocol.ack_mode = AckMode::Sent;
    }
    // Every other pair of seeds merges per key (attribute granularity):
    // the same promises hold, with merged copies in place of replaced ones.
    if (seed / 2) % 2 == 1 {
        cfg.protocol.granularity = Granularity::Attribute;
    }
    let mut sim = Sim::new(cfg);
    sim.set_tracing(trace, TraceFilter::default());
    let fail = |sim: &mut Sim, msg: String| (msg, sim.take_trace());

    sim.run_for(800)
        .map_err(|e| fail(&mut sim, e.to_string()))?;
    let ids: Vec<SessionId> = (0..SESSIONS)
        .map(|i| session_id(&format!("s{i}")))
        .collect();
    let all_nodes = sim.node_ids();
    let mut deleted: BTreeSet<SessionId> = BTreeSet::new();
    let mut deletes: Vec<(String, SessionId)> = Vec::new();
    let mut crashed_ever: BTreeSet<String> = BTreeSet::new();
    let mut writes: Vec<(String, SessionId, Version)> = Vec::new();
    let mut out = Outcome {
        writes: 0,
        deletes: 0,
        crashes: 0,
        partitions: 0,
    };

    for step in 0..300u64 {
        let ready: Vec<String> = all_nodes
            .iter()
            .filter(|n| sim.is_ready(n))
            .cloned()
            .collect();
        let down: Vec<String> = all_nodes
            .iter()
            .filter(|n| !sim.is_up(n))
            .cloned()
            .collect();
        let id = rng.pick(&ids).expect("ids").clone();
        let roll = rng.range(0, 99);
        if let Some(node) = rng.pick(&ready).cloned() {
            let value = format!("{node}#{step}");
            match roll {
                0..=44 => {
                    let w = if deleted.contains(&id) {
                        // A request racing the logout: only a node that
                        // still holds a copy can write it.
                        sim.update(&node, &id, &value).ok().flatten()
                    } else if roll < 22 {
                        sim.upsert(&node, &id, &value).ok()
                    } else {
                        // One key of several, as a tab's request would.
                        let key = format!("k{}", roll % 3);
                        let v = (roll % 5 != 0).then_some(value.as_str());
                        sim.set_key(&node, &id, &key, v).ok()
                    };
                    if let Some(w) = w {
                        writes.push((node.clone(), id.clone(), w.version));
                        out.writes += 1;
                    }
                }
                45..=59 => {
                    let _ = sim.touch(&node, &id);
                }
                // A logout tombstones the id whether or not this node
                // holds it (the cookie may come from across a partition).
                60..=67 if sim.delete(&node, &id).is_ok() => {
                    deleted.insert(id.clone());
                    deletes.push((node.clone(), id.clone()));
                    out.deletes += 1;
                }
                68..=71 if down.len() + 2 < all_nodes.len() => {
                    sim.crash(&node)
                        .map_err(|e| fail(&mut sim, e.to_string()))?;
                    crashed_ever.insert(node);
                    out.crashes += 1;
                }
                _ => {}
            }
        }
        match roll {
            72..=77 => {
                if let Some(node) = rng.pick(&down).cloned() {
                    sim.restart(&node)
                        .map_err(|e| fail(&mut sim, e.to_string()))?;
                }
            }
            78..=80 => {
                let k = rng.range(1, all_nodes.len() as u64 - 1) as usize;
                let mut group = all_nodes.clone();
                while group.len() > k {
                    let i = rng.range(0, group.len() as u64 - 1) as usize;
                    group.remove(i);
                }
                sim.partition(&group);
                out.partitions += 1;
            }
            81..=84 => sim.heal(),
            _ => {}
        }
        let dt = rng.range(1, 12);
        sim.run_for(dt).map_err(|e| fail(&mut sim, e.to_string()))?;
    }

    // Heal everything and let it be quiet.
    sim.heal();
    sim.set_network(NetworkFaults {
        min_delay_ms: 0,
        max_delay_ms: 5,
        ..NetworkFaults::none()
    });
    for n in &all_nodes {
        if !sim.is_up(n) {
            sim.restart(n).map_err(|e| fail(&mut sim, e.to_string()))?;
        }
    }
    sim.run_for(4_000)
        .map_err(|e| fail(&mut sim, e.to_string()))?;

    // 1. Liveness.
    for n in &all_nodes {
        if !sim.is_ready(n) {
            return Err(fail(&mut sim, format!("{n} is not ready")));
        }
        for p in sim.peers(n) {
            if !p.up || p.needs_resync {
                return Err(fail(
                    &mut sim,
                    format!(
                        "{n} sees {}: up={} needs_resync={}",
                        p.id, p.up, p.needs_resync
                    ),
                ));
            }
        }
    }
    // 2. Convergence.
    if let Err(e) = sim.check_converged() {
        return Err(fail(&mut sim, format!("not converged: {e}")));
    }
    // 3. Deleted sessions stay deleted: a delete that survived anywhere (a
    //    node still holds its tombstone, or its origin never crashed) wins
    //    everywhere. A delete whose only copy died with its node before it
    //    was sent is lost like any other unsent write.
    let state = sim.sessions(&all_nodes[0]);
    for (origin, id) in &deletes {
        let survived = !crashed_ever.contains(origin)
            || all_nodes
                .iter()
                .any(|n| sim.replica(n).is_some_and(|r| r.tombstones().contains(id)));
        if !survived {
            continue;
        }
        if let Some(s) = state.get(id) {
            return Err(fail(
                &mut sim,
                format!("deleted {id} came back as v={}", s.version),
            ));
        }
    }
    // 4. No write of a never-crashed node was lost.
    let mut newest: BTreeMap<&SessionId, &Version> = BTreeMap::new();
    for (node, id, v) in &writes {
        if crashed_ever.contains(node) || deleted.contains(id) {
            continue;
        }
        let e = newest.entry(id).or_insert(v);
        if v > *e {
            *e = v;
        }
    }
    for (id, v) in newest {
        match state.get(id) {
            Some(s) if s.version >= *v => {}
            other => {
                let held = other.map(|s| s.version.to_string());
                return Err(fail(
                    &mut sim,
                    format!("write {id} v={v} was lost (final: {held:?})"),
                ));
            }
        }
    }
    Ok(out)
}

fn seeds() -> Vec<u64> {
    match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SIM_SEED must be a number")],
        Err(_) => {
            let n = std::env::var("SIM_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(120);
            (0..n).collect()
        }
    }
}

#[test]
fn random_faults_then_heal_converges_for_every_seed() {
    let mut totals = (0, 0, 0, 0);
    for seed in seeds() {
        match run_seed(seed, false) {
            Ok(o) => {
                totals.0 += o.writes;
                totals.1 += o.deletes;
                totals.2 += o.crashes;
                totals.3 += o.partitions;
            }
            Err((msg, _)) => {
                // Rerun with the trace on for a readable report.
                let (_, trace) = run_seed(seed, true)
                    .err()
                    .unwrap_or((String::new(), vec![]));
                if let Ok(path) = std::env::var("SIM_TRACE_FILE") {
                    std::fs::write(&path, trace.join("\n")).expect("write the trace file");
                }
                let tail = trace[trace.len().saturating_sub(60)..].join("\n");
                panic!("seed {seed}: {msg}\n--- last trace lines ---\n{tail}");
            }
        }
    }
    // The workload really exercised the faults it claims to.
    let (w, d, c, p) = totals;
    println!("writes={w} deletes={d} crashes={c} partitions={p}");
    if seeds().len() > 50 {
        assert!(w > 1_000 && d > 100 && c > 20 && p > 20, "{totals:?}");
    }
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let a = run_seed(7, true).ok().map(|o| (o.writes, o.deletes));
    let b = run_seed(7, true).ok().map(|o| (o.writes, o.deletes));
    assert!(a.is_some());
    assert_eq!(a, b);
    let trace = |seed| {
        let mut sim = Sim::new(SimConfig {
            network: NetworkFaults {
                min_delay_ms: 0,
                max_delay_ms: 20,
                drop_rate: 0.2,
                duplicate_rate: 0.2,
                lost_reply_rate: 0.1,
            },
            ..SimConfig::new(3, seed)
        });
        sim.set_tracing(true, TraceFilter::all());
        sim.run_for(300).unwrap();
        sim.upsert("node-1", &session_id("x"), "1").unwrap();
        sim.run_for(300).unwrap();
        sim.take_trace()
    };
    assert_eq!(trace(3), trace(3));
    assert_ne!(trace(3), trace(4));
}

/// The reproduction of a lost logout, on every seed: a node is cut off, a
/// user logs in on the other side (so the cut-off node never holds the
/// session), the user's logout reaches the cut-off node anyway, the other
/// side keeps writing the session during the partition, then the network
/// heals. The logout must win: the session is gone on every node, every
/// node holds the tombstone, and a later write to the id is refused.
#[test]
fn logout_on_a_partitioned_node_that_never_held_the_session_wins_after_heal() {
    for seed in seeds().into_iter().take(60) {
        let mut rng = Rng::new(seed ^ 0x10_60_07);
        let nodes = 3 + (seed % 3) as usize;
        let mut cfg = SimConfig::new(nodes, seed);
        cfg.network = NetworkFaults {
            min_delay_ms: 0,
            max_delay_ms: rng.range(1, 30),
            drop_rate: rng.range(0, 10) as f64 / 100.0,
            duplicate_rate: rng.range(0, 10) as f64 / 100.0,
            lost_reply_rate: rng.range(0, 5) as f64 / 100.0,
        };
        let mut sim = Sim::new(cfg);
        sim.run_for(800).unwrap();
        let all = sim.node_ids();
        let cut = rng.pick(&all).unwrap().clone();
        let others: Vec<String> = all.iter().filter(|n| **n != cut).cloned().collect();
        sim.partition(std::slice::from_ref(&cut));
        sim.run_for(rng.range(0, 400)).unwrap();

        let bob = session_id(&format!("bob{seed}"));
        let login = rng.pick(&others).unwrap().clone();
        sim.upsert(&login, &bob, "logged-in").unwrap();
        sim.run_for(rng.range(0, 50)).unwrap();
        assert!(
            !sim.sessions(&cut).contains_key(&bob),
            "seed {seed}: the cut-off node must not hold the session"
        );
        // The logout, on the node that does not hold the session.
        assert_eq!(sim.delete(&cut, &bob), Ok(false), "seed {seed}");
        // Writes on the other side during the partition (the user's other
        // tab), newer by version than anything the cut-off node saw.
        for i in 0..rng.range(0, 4) {
            let n = rng.pick(&others).unwrap().clone();
            sim.update(&n, &bob, &format!("tab-{i}")).unwrap();
            sim.run_for(rng.range(1, 30)).unwrap();
        }
        sim.heal();
        sim.set_network(NetworkFaults {
            min_delay_ms: 0,
            max_delay_ms: 5,
            ..NetworkFaults::none()
        });
        sim.run_for(4_000).unwrap();
        sim.check_converged()
            .unwrap_or_else(|e| panic!("seed {seed}: not converged: {e}"));
        for n in &all {
            assert!(
                !sim.sessions(n).contains_key(&bob),
                "seed {seed}: the logged-out session is alive on {n}"
            );
            assert!(
                sim.replica(n).unwrap().tombstones().contains(&bob),
                "seed {seed}: {n} holds no tombstone"
            );
            assert!(
                sim.upsert(n, &bob, "again").is_err(),
                "seed {seed}: {n} accepted a write to the logged-out id"
            );
        }
    }
}

/// One step of seeded partitions: heal when the cut's end step has come,
/// or with probability `chance` cut one random node off for `lasts` steps.
/// Returns the step the current cut ends at.
fn cut_or_heal(
    sim: &mut Sim,
    rng: &mut Rng,
    step: u64,
    cut_until: Option<u64>,
    chance: f64,
    lasts: (u64, u64),
) -> Option<u64> {
    match cut_until {
        Some(t) if step >= t => {
            sim.heal();
            None
        }
        None if rng.chance(chance) => {
            let minority = rng.pick(&sim.node_ids()).expect("nodes").clone();
            sim.partition(&[minority]);
            Some(step + rng.range(lasts.0, lasts.1))
        }
        other => other,
    }
}

/// What a run of increments under seeded partitions did.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    acknowledged: u64,
    refused: u64,
    /// Acknowledged increments missing from the final counters.
    lost: u64,
}

/// `--partition-policy` on seeded partitions. Three nodes on a clean
/// network (1 to 5 ms, nothing dropped but what a partition cuts); six
/// counters, each increment a read of the node's own copy and a write of
/// one more (what the demo app's increment does). Every so often a random
/// minority is cut off, and the network heals a while later. At the end
/// the cluster heals and goes quiet, and each counter's final value is
/// compared with the increments acknowledged on it: with chained writes
/// the counter is at least their number, so any shortfall is an
/// acknowledged increment lost.
fn partitioned_increments(seed: u64, policy: PartitionPolicy) -> Result<Tally, String> {
    let mut rng = Rng::new(seed ^ 0xc0de);
    let mut cfg = SimConfig::new(3, seed);
    cfg.protocol.partition_policy = policy;
    cfg.network = NetworkFaults {
        min_delay_ms: 1,
        max_delay_ms: 5,
        ..NetworkFaults::none()
    };
    let mut sim = Sim::new(cfg);
    sim.run_for(500).map_err(|e| e.to_string())?;
    let nodes = sim.node_ids();
    let counters: Vec<SessionId> = (0..6).map(|i| session_id(&format!("c{i}"))).collect();
    let mut acknowledged: BTreeMap<SessionId, u64> = BTreeMap::new();
    // Writes waiting for their quorum: (node, write id) -> counter.
    let mut waiting: BTreeMap<(String, u64), SessionId> = BTreeMap::new();
    let mut tally = Tally::default();
    let mut cut_until: Option<u64> = None;
    let value = |sim: &Sim, node: &str, id: &SessionId| -> u64 {
        sim.sessions(node)
            .get(id)
            .and_then(|s| s.data().get("v")?.as_str()?.parse().ok())
            .unwrap_or(0)
    };
    for step in 0..400u64 {
        sim.run_for(rng.range(2, 20)).map_err(|e| e.to_string())?;
        cut_until = cut_or_heal(&mut sim, &mut rng, step, cut_until, 0.03, (40, 120));
        let node = rng.pick(&nodes).expect("nodes").clone();
        let id = rng.pick(&counters).expect("counters").clone();
        let next = value(&sim, &node, &id) + 1;
        match sim.upsert(&node, &id, &next.to_string()) {
            Ok(w) => match w.ack {
                AckWait::Pending(write) => {
                    waiting.insert((node, write), id);
                }
                AckWait::Async | AckWait::Done(ReplicationAck::Acked { .. }) => {
                    *acknowledged.entry(id).or_default() += 1;
                }
                AckWait::Done(other) => return Err(format!("step {step}: {other:?}")),
            },
            Err(SimError::Store(StoreError::NoMajority(_))) => tally.refused += 1,
            Err(e) => return Err(format!("step {step}: {e}")),
        }
    }
    sim.heal();
    sim.run_for(3_000).map_err(|e| e.to_string())?;
    sim.check_converged()?;
    for (node, write, ack) in sim.ack_results() {
        let Some(id) = waiting.remove(&(node.clone(), *write)) else {
            continue;
        };
        match ack {
            ReplicationAck::Acked { .. } => *acknowledged.entry(id).or_default() += 1,
            _ => tally.refused += 1,
        }
    }
    if !waiting.is_empty() {
        return Err(format!("{} writes never decided", waiting.len()));
    }
    for id in &counters {
        let acked = acknowledged.get(id).copied().unwrap_or(0);
        tally.acknowledged += acked;
        tally.lost += acked.saturating_sub(value(&sim, "node-1", id));
    }
    Ok(tally)
}

#[test]
fn under_partitions_consistent_refuses_writes_and_loses_none_available_the_opposite() {
    let (mut consistent, mut available) = (Tally::default(), Tally::default());
    let seeds = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24u64);
    for seed in 0..seeds {
        let c = partitioned_increments(seed, PartitionPolicy::Consistent)
            .unwrap_or_else(|e| panic!("seed {seed}, consistent: {e}"));
        assert_eq!(
            c.lost, 0,
            "seed {seed}: consistent lost acknowledged writes: {c:?}"
        );
        let a = partitioned_increments(seed, PartitionPolicy::Available)
            .unwrap_or_else(|e| panic!("seed {seed}, available: {e}"));
        assert_eq!(a.refused, 0, "seed {seed}: available refused: {a:?}");
        for (t, x) in [(&mut consistent, c), (&mut available, a)] {
            t.acknowledged += x.acknowledged;
            t.refused += x.refused;
            t.lost += x.lost;
        }
    }
    println!("consistent {consistent:?}\navailable {available:?}");
    assert!(consistent.refused > 0, "{consistent:?}");
    assert!(consistent.acknowledged > 1_000, "{consistent:?}");
    assert!(available.lost > 0, "{available:?}");
}

/// What became of the two tabs' writes of one run.
#[derive(Debug, Default, Clone, Copy)]
struct Tabs {
    writes: u64,
    /// Keys whose final value is not the one of their newest write.
    lost_keys: u64,
    keys: u64,
}

/// Two tabs per session, each writing only its own key (`tab-1`, `tab-2`),
/// each request on a random node (a round-robin LB), on a delaying,
/// dropping, duplicating network with a partition now and then (no
/// crashes: a crash loses unsent writes by design). After the heal and a
/// quiet period every node must hold the same copy, and with attribute
/// granularity every key must hold the value of its newest write (the
/// highest version among the writes of that key): concurrent changes to
/// different keys both survive. With whole-session granularity the newest
/// write of the *session* wins and the other tab's key falls back.
fn two_tabs(seed: u64, granularity: Granularity) -> Result<Tabs, String> {
    let mut rng = Rng::new(seed ^ 0x7ab5);
    let mut cfg = SimConfig::new(3, seed);
    cfg.protocol.granularity = granularity;
    cfg.network = NetworkFaults {
        min_delay_ms: 1,
        max_delay_ms: rng.range(5, 30),
        drop_rate: rng.range(0, 5) as f64 / 100.0,
        duplicate_rate: rng.range(0, 5) as f64 / 100.0,
        lost_reply_rate: 0.0,
    };
    let mut sim = Sim::new(cfg);
    sim.run_for(500).map_err(|e| e.to_string())?;
    let nodes = sim.node_ids();
    let ids: Vec<SessionId> = (0..4).map(|i| session_id(&format!("t{i}"))).collect();
    // (session, key) -> the newest write: its version and value.
    let mut newest: BTreeMap<(SessionId, String), (Version, String)> = BTreeMap::new();
    let mut tabs = Tabs::default();
    let mut cut_until = None;
    for step in 0..300u64 {
        sim.run_for(rng.range(0, 6)).map_err(|e| e.to_string())?;
        cut_until = cut_or_heal(&mut sim, &mut rng, step, cut_until, 0.02, (20, 60));
        let id = rng.pick(&ids).expect("ids").clone();
        let key = format!("tab-{}", rng.range(1, 2));
        let node = rng.pick(&nodes).expect("nodes").clone();
        let value = format!("{step}");
        let w = sim
            .set_key(&node, &id, &key, Some(&value))
            .map_err(|e| format!("step {step}: {e}"))?;
        tabs.writes += 1;
        let slot = newest
            .entry((id, key))
            .or_insert((w.version.clone(), value.clone()));
        if w.version > slot.0 {
            *slot = (w.version, value);
        }
    }
    sim.heal();
    sim.run_for(3_000).map_err(|e| e.to_string())?;
    sim.check_converged()?;
    let held = sim.sessions("node-1");
    for ((id, key), (_, value)) in &newest {
        tabs.keys += 1;
        let fin = held
            .get(id)
            .and_then(|s| s.data().get(key)?.as_str().map(str::to_owned));
        if fin.as_deref() != Some(value.as_str()) {
            tabs.lost_keys += 1;
        }
    }
    Ok(tabs)
}

#[test]
fn two_tabs_writing_different_keys_both_survive_with_attribute_granularity() {
    let seeds = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24u64);
    let (mut attribute, mut session) = (Tabs::default(), Tabs::default());
    for seed in 0..seeds {
        let a = two_tabs(seed, Granularity::Attribute)
            .unwrap_or_else(|e| panic!("seed {seed}, attribute: {e}"));
        assert_eq!(
            a.lost_keys, 0,
            "seed {seed}: attribute lost a key's newest write: {a:?}"
        );
        let s = two_tabs(seed, Granularity::Session)
            .unwrap_or_else(|e| panic!("seed {seed}, session: {e}"));
        for (t, x) in [(&mut attribute, a), (&mut session, s)] {
            t.writes += x.writes;
            t.keys += x.keys;
            t.lost_keys += x.lost_keys;
        }
    }
    println!("attribute {attribute:?}\nsession {session:?}");
    assert!(
        attribute.writes > 1_000 && attribute.keys > 20,
        "{attribute:?}"
    );
    assert!(
        session.lost_keys > 0,
        "whole-session replication should lose a tab's key: {session:?}"
    );
}
