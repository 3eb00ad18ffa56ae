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

#[test]
fn writes_land_on_the_owners_only() {
    let mut sim = backup_sim(4, 1, 1);
    sim.run_for(500).unwrap();
    write_many(&mut sim, 40);
    sim.run_for(1_000).unwrap();
    sim.check_placement().unwrap();
    assert_eq!(sim.holders().len(), 40);
}

#[test]
fn a_join_moves_its_share_to_the_new_node() {
    let mut sim = backup_sim(3, 1, 2);
    sim.run_for(500).unwrap();
    write_many(&mut sim, 60);
    sim.run_for(1_000).unwrap();
    sim.check_placement().unwrap();
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
    let mut sim = backup_sim(5, 1, 3);
    sim.run_for(500).unwrap();
    write_many(&mut sim, 60);
    sim.run_for(1_000).unwrap();
    sim.check_placement().unwrap();
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
