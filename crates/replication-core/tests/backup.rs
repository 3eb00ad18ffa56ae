//! The backup topology in the simulation: writes go to the owners only,
//! and joins, leaves and deaths move the copies to their new owners.

use sessionlab_replication_core::{
    AckMode, Event, ProtocolConfig, Sim, SimConfig, Topology, session_id,
};

fn backup_sim(nodes: usize, k: usize, seed: u64) -> Sim {
    let mut cfg = SimConfig::new(nodes, seed);
    cfg.protocol = ProtocolConfig {
        topology: Topology::Backup { backups: k },
        ack_mode: AckMode::All,
        ..ProtocolConfig::fast()
    };
    Sim::new(cfg)
}

fn write_many(sim: &mut Sim, n: usize) {
    let nodes: Vec<String> = sim.members();
    for i in 0..n {
        let node = &nodes[i % nodes.len()];
        sim.upsert(node, &session_id(&format!("s{i}")), &format!("v{i}"))
            .unwrap();
        sim.run_for(5).unwrap();
    }
}

/// A backup cluster of `nodes` that has met, taken `writes` writes spread
/// over its members and settled, with every copy on its owners.
fn settled(nodes: usize, k: usize, seed: u64, writes: usize) -> Sim {
    let mut sim = backup_sim(nodes, k, seed);
    sim.run_for(500).unwrap();
    write_many(&mut sim, writes);
    sim.run_for(1_000).unwrap();
    sim.check_placement().unwrap();
    sim
}

#[test]
fn writes_land_on_the_owners_only() {
    let sim = settled(4, 1, 1, 40);
    assert_eq!(sim.holders().len(), 40);
}

#[test]
fn a_join_moves_its_share_to_the_new_node() {
    let mut sim = settled(3, 1, 2, 60);
    sim.add_node("node-4").unwrap();
    sim.run_for(3_000).unwrap();
    sim.check_placement().unwrap();
    let on_new = sim.sessions("node-4").len();
    assert!(on_new > 10, "node-4 holds {on_new}");
    assert!(
        sim.events()
            .iter()
            .any(|e| matches!(e, Event::Rebalanced { .. }))
    );
    let moved: u64 = sim
        .members()
        .iter()
        .filter_map(|n| sim.replica(n))
        .map(|r| r.rebalance_view().sessions_moved)
        .sum();
    assert!(moved >= on_new as u64, "{moved} < {on_new}");
    assert!(
        sim.members()
            .iter()
            .filter_map(|n| sim.replica(n))
            .all(|r| !r.rebalance_view().in_progress)
    );
}

#[test]
fn a_leave_and_a_death_restore_the_copies() {
    let mut sim = settled(5, 1, 3, 60);
    sim.remove_node("node-2").unwrap();
    sim.run_for(3_000).unwrap();
    sim.check_placement().unwrap();
    assert_eq!(sim.holders().len(), 60);
    sim.crash("node-4").unwrap();
    sim.run_for(500).unwrap();
    sim.declare_dead("node-4").unwrap();
    sim.run_for(3_000).unwrap();
    sim.check_placement().unwrap();
    assert_eq!(sim.holders().len(), 60, "K = 1: one death loses nothing");
}

mod churn {
    //! Seeded runs of joins, leaves, crashes (some during a rebalance) and
    //! partitions on a lossy network, each followed by a quiet period that
    //! checks the backup topology's promises:
    //!
    //! - with `ack=all`, no acknowledged write is lost while at most `K`
    //!   owners fail at once (a crash, or a leave, which in the simulation
    //!   loses the node's memory at once);
    //! - after quiet, every live session has exactly `K + 1` copies, on
    //!   its owners, all equal;
    //! - the membership views converge.

    use std::collections::BTreeMap;

    use sessionlab_replication_core::{
        AckMode, AckWait, NetworkFaults, ProtocolConfig, Rng, Sim, SimConfig, Topology, session_id,
    };
    use sessionlab_session::{ReplicationAck, SessionId, Version};

    /// Acknowledged writes, and the writes still waiting for their acks.
    #[derive(Default)]
    struct Ledger {
        acked: BTreeMap<SessionId, Version>,
        pending: BTreeMap<(String, u64), (SessionId, Version)>,
        seen: usize,
    }

    impl Ledger {
        fn acknowledge(&mut self, id: SessionId, v: Version) {
            let e = self.acked.entry(id).or_insert_with(|| v.clone());
            if v > *e {
                *e = v;
            }
        }

        fn collect(&mut self, sim: &Sim) {
            let results = sim.ack_results();
            for (node, w, ack) in &results[self.seen..] {
                if let Some((id, v)) = self.pending.remove(&(node.clone(), *w)) {
                    if matches!(ack, ReplicationAck::Acked { .. }) {
                        self.acknowledge(id, v);
                    }
                }
            }
            self.seen = results.len();
        }

        /// A node crashed or left: its waiting writes will never be decided.
        fn forget(&mut self, node: &str) {
            self.pending.retain(|(n, _), _| n != node);
        }

        fn check(&self, sim: &Sim) -> Result<(), String> {
            let holders = sim.holders();
            for (id, v) in &self.acked {
                let best = holders
                    .get(id)
                    .and_then(|h| h.values().map(|s| s.version.clone()).max());
                if best.as_ref().is_none_or(|b| b < v) {
                    return Err(format!(
                        "acknowledged write {id} v={v} lost (best copy: {best:?})"
                    ));
                }
            }
            Ok(())
        }
    }

    fn live(sim: &Sim) -> Vec<String> {
        sim.members().into_iter().filter(|m| sim.is_up(m)).collect()
    }

    fn writes(sim: &mut Sim, rng: &mut Rng, ledger: &mut Ledger, n: usize) {
        for _ in 0..n {
            let nodes = live(sim);
            let node = rng.pick(&nodes).unwrap().clone();
            let id = session_id(&format!("u{}", rng.range(0, 39)));
            let value = format!("{}", rng.next_u64() % 1000);
            if let Ok(w) = sim.upsert(&node, &id, &value) {
                match w.ack {
                    AckWait::Done(ReplicationAck::Acked { .. }) => {
                        ledger.acknowledge(id, w.version)
                    }
                    AckWait::Pending(p) => {
                        ledger.pending.insert((node, p), (id, w.version));
                    }
                    _ => {}
                }
            }
            sim.run_for(rng.range(1, 30)).unwrap();
            ledger.collect(sim);
        }
    }

    fn run_seed(seed: u64) -> Result<(), String> {
        let mut rng = Rng::new(seed);
        let k = 1 + (seed % 2) as usize;
        let mut cfg = SimConfig::new(3 + k, seed);
        cfg.protocol = ProtocolConfig {
            topology: Topology::Backup { backups: k },
            ack_mode: AckMode::All,
            rebalance_per_tick: 8,
            ..ProtocolConfig::fast()
        };
        cfg.network = NetworkFaults {
            min_delay_ms: 1,
            max_delay_ms: 6,
            drop_rate: 0.02,
            duplicate_rate: 0.02,
            lost_reply_rate: 0.01,
        };
        let mut sim = Sim::new(cfg);
        let debug = std::env::var("SIM_TRACE").ok() == Some(seed.to_string());
        sim.set_tracing(debug, sessionlab_replication_core::TraceFilter::default());
        let mut ledger = Ledger::default();
        let mut next = 3 + k + 1;
        sim.run_for(300).unwrap();
        writes(&mut sim, &mut rng, &mut ledger, 30);
        for round in 0..6 {
            let nodes = live(&sim);
            match rng.range(0, 4) {
                // A join.
                0 => {
                    sim.add_node(&format!("node-{next}")).unwrap();
                    next += 1;
                }
                // A graceful leave (never below K + 2 members).
                1 if nodes.len() > k + 2 => {
                    let n = rng.pick(&nodes).unwrap().clone();
                    sim.remove_node(&n).unwrap();
                    ledger.forget(&n);
                }
                // A join, and a crash while the members rebalance for it.
                2 if nodes.len() > k + 1 => {
                    sim.add_node(&format!("node-{next}")).unwrap();
                    next += 1;
                    writes(&mut sim, &mut rng, &mut ledger, 3);
                    let n = rng.pick(&nodes).unwrap().clone();
                    sim.crash(&n).unwrap();
                    ledger.forget(&n);
                    sim.run_for(rng.range(100, 600)).unwrap();
                    sim.declare_dead(&n).unwrap();
                }
                // A partition that heals (no member changes).
                _ => {
                    let n = rng.pick(&nodes).unwrap().clone();
                    sim.partition(&[n]);
                    writes(&mut sim, &mut rng, &mut ledger, 10);
                    sim.run_for(400).unwrap();
                    sim.heal();
                }
            }
            writes(&mut sim, &mut rng, &mut ledger, 15);
            // Quiet: a perfect network, and time for resyncs and handoffs.
            sim.set_network(NetworkFaults::none());
            sim.run_for(4_000).unwrap();
            ledger.collect(&sim);
            if debug {
                for l in sim.take_trace() {
                    println!("{l}");
                }
            }
            sim.check_placement()
                .map_err(|e| format!("seed {seed} round {round}: {e}"))?;
            ledger
                .check(&sim)
                .map_err(|e| format!("seed {seed} round {round}: {e}"))?;
            sim.set_network(NetworkFaults {
                min_delay_ms: 1,
                max_delay_ms: 6,
                drop_rate: 0.02,
                duplicate_rate: 0.02,
                lost_reply_rate: 0.01,
            });
        }
        Ok(())
    }

    #[test]
    fn churn_keeps_acknowledged_writes_and_k_plus_one_copies() {
        let seeds: u64 = std::env::var("SIM_SEEDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(16);
        let only: Option<u64> = std::env::var("SIM_TRACE").ok().and_then(|s| s.parse().ok());
        let failures: Vec<String> = (1..=seeds)
            .filter(|s| only.is_none_or(|o| o == *s))
            .filter_map(|s| run_seed(s).err())
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
    }
}

#[test]
fn a_drained_leave_hands_everything_over_so_two_leaves_in_a_row_lose_nothing() {
    let mut sim = settled(5, 1, 4, 80);
    // Some sessions are owned by both node-2 and node-3: with K = 1 two
    // plain leaves in a row would lose them.
    let both = sim
        .holders()
        .values()
        .filter(|h| h.contains_key("node-2") && h.contains_key("node-3"))
        .count();
    assert!(both > 0);
    let took = sim.drain_and_leave("node-2", 5_000).unwrap();
    assert!(took < 5_000, "the handover finished: {took} ms");
    let took = sim.drain_and_leave("node-3", 5_000).unwrap();
    assert!(took < 5_000, "{took} ms");
    sim.run_for(3_000).unwrap();
    sim.check_placement().unwrap();
    assert_eq!(sim.holders().len(), 80, "nothing lost");

    // The same cluster with two plain leaves (no handover): the sessions
    // both owned are gone.
    let mut plain = settled(5, 1, 4, 80);
    plain.remove_node("node-2").unwrap();
    plain.remove_node("node-3").unwrap();
    plain.run_for(3_000).unwrap();
    assert_eq!(plain.holders().len(), 80 - both);
}
