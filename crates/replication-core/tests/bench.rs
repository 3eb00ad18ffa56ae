//! Micro-benchmarks of the backup topology, in the simulation (sans I/O):
//! ignored by default, run them with
//!
//! ```text
//! cargo test --release -p sessionlab-replication-core --test bench -- --ignored --nocapture
//! ```
//!
//! - **Traffic per write**: replication messages and bytes per client write
//!   in all-to-all and in backup with `K = 1`, at 2, 4, 8 and 16 nodes.
//!   Every write is made on a node that owns the session (the node picks
//!   the id with `Replica::pick_owned_id`, as the runtime does, and the
//!   sticky load balancer keeps the user there). Writes are spaced so each
//!   travels in a batch of its own, and anti-entropy is switched off for
//!   the window, so a data batch carries the write and at most a heartbeat.
//!   Bytes are the batches' wire form (`codec::encode`).
//! - **Rebalance of 100,000 sessions on a join**: four nodes hold 100,000
//!   sessions (`K = 1`, 200,000 copies); a fifth joins; measured are the
//!   simulated time until every node's pass finished (the protocol's own
//!   pace: the per-tick bound, round trips of the digest rounds) and the
//!   wall-clock time the replicas' computation took.

use std::time::Instant;

use sessionlab_replication_core::{
    AckMode, NetworkFaults, ProtocolConfig, Sim, SimConfig, Topology, session_id,
};
use sessionlab_session::SessionId;

/// About the size of a lab session's data (a user, a cart, a few keys).
fn payload() -> String {
    "x".repeat(200)
}

fn sim(nodes: usize, topology: Topology, anti_entropy: bool) -> Sim {
    let mut cfg = SimConfig::new(nodes, 7);
    cfg.protocol = ProtocolConfig {
        topology,
        ack_mode: AckMode::None,
        ..ProtocolConfig::fast()
    };
    if !anti_entropy {
        // No periodic digest round in the window (a resync would still run).
        cfg.protocol.anti_entropy_interval_ms = 3_600_000;
    }
    cfg.network = NetworkFaults::none();
    Sim::new(cfg)
}

/// A fresh id owned by `node` (the runtime's `new_id`).
fn owned_id(sim: &Sim, node: &str, counter: &mut u64) -> SessionId {
    let r = sim.replica(node).expect("live");
    r.pick_owned_id(|| {
        *counter += 1;
        session_id(&format!("w{counter}"))
    })
}

/// (data messages, bytes) per write.
fn per_write(nodes: usize, topology: Topology) -> (f64, f64) {
    let mut s = sim(nodes, topology, false);
    s.run_for(500).unwrap();
    let writes = 400u64;
    let mut counter = 0;
    s.set_metering(true);
    for i in 0..writes {
        let node = format!("node-{}", 1 + (i as usize % nodes));
        let id = owned_id(&s, &node, &mut counter);
        s.upsert(&node, &id, &payload()).unwrap();
        s.run_for(20).unwrap();
    }
    s.run_for(200).unwrap();
    let t = s.traffic();
    (
        t.data_messages as f64 / writes as f64,
        t.data_bytes as f64 / writes as f64,
    )
}

#[test]
#[ignore = "a benchmark: run with --release --ignored --nocapture"]
fn traffic_per_write_backup_vs_all_to_all() {
    println!("topology      nodes  msgs/write  bytes/write  bytes vs 2 nodes");
    for (name, topology) in [
        ("all-to-all", Topology::AllToAll),
        ("backup K=1", Topology::Backup { backups: 1 }),
    ] {
        let mut reference = None;
        for nodes in [2, 4, 8, 16] {
            let (msgs, bytes) = per_write(nodes, topology);
            let r = *reference.get_or_insert(bytes);
            println!(
                "{name:<12}  {nodes:>5}  {msgs:>10.2}  {bytes:>11.0}  {:>15.2}x",
                bytes / r
            );
            if topology.is_backup() {
                assert!(bytes / r < 1.5, "backup stays flat: {bytes} vs {r}");
            }
        }
    }
}

#[test]
#[ignore = "a benchmark: run with --release --ignored --nocapture"]
fn rebalance_of_100k_sessions_when_a_node_joins() {
    let sessions: u64 = std::env::var("BENCH_SESSIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let mut s = sim(4, Topology::Backup { backups: 1 }, true);
    s.run_for(300).unwrap();
    let mut counter = 0;
    let fill = Instant::now();
    for i in 0..sessions {
        let node = format!("node-{}", 1 + (i % 4));
        let id = owned_id(&s, &node, &mut counter);
        s.upsert(&node, &id, &payload()).unwrap();
        if i % 500 == 499 {
            s.run_for(10).unwrap();
        }
    }
    s.run_for(1_000).unwrap();
    let held: usize = s.members().iter().map(|n| s.sessions(n).len()).sum();
    assert_eq!(held as u64, 2 * sessions, "K + 1 = 2 copies each");
    println!(
        "filled {sessions} sessions ({held} copies) in {:.1} s wall",
        fill.elapsed().as_secs_f64()
    );

    s.set_metering(true);
    let t0 = s.now_ms();
    let wall = Instant::now();
    s.add_node("node-5").unwrap();
    let mut done_ms = None;
    for _ in 0..10_000 {
        s.run_for(10).unwrap();
        let all_done = s.members().iter().filter(|n| *n != "node-5").all(|n| {
            s.replica(n)
                .is_some_and(|r| r.rebalance_view().passes >= 1 && !r.rebalance_view().in_progress)
        });
        if all_done {
            done_ms = Some(s.now_ms() - t0);
            break;
        }
    }
    let wall_s = wall.elapsed().as_secs_f64();
    let done_ms = done_ms.expect("the rebalance finished");
    s.check_placement().unwrap();
    let new = s.sessions("node-5").len();
    let (mut moved, mut bytes) = (0, 0);
    for n in s.members() {
        let v = s.replica(&n).unwrap().rebalance_view();
        moved += v.sessions_moved;
        bytes += v.bytes_moved;
    }
    let t = s.traffic();
    println!(
        "join of node-5: node-5 now holds {new} sessions; rebalanced in {done_ms} ms of \
         simulated time, {wall_s:.2} s wall; {moved} sessions ({bytes} bytes) sent by the \
         rebalance; network: {} batches, {} bytes",
        t.batches, t.bytes
    );
}
