//! The membership protocol (SWIM) on a seeded, hostile network: joins,
//! leaves, crashes, restarts, one bad link, partitions, lossy links.
//!
//! Every node is a `Membership` state machine; the network here delivers
//! its messages after a random delay, drops some, and cuts the links a
//! test names. Time only moves when the test moves it, and all randomness
//! is one seeded generator, so each seed replays exactly.

use std::collections::{BTreeMap, BTreeSet};

use sessionlab_replication_core::Rng;
use sessionlab_replication_core::membership::{
    MemberEvent, MemberState, Membership, SwimConfig, SwimMessage,
};

const STEP_MS: u64 = 10;

struct Net {
    now: u64,
    rng: Rng,
    nodes: BTreeMap<String, Membership>,
    /// Messages in flight: (deliver at, sequence, to addr, from id, message).
    flight: Vec<(u64, u64, String, String, SwimMessage)>,
    sent: u64,
    drop_rate: f64,
    /// Links cut in both directions, as sorted pairs of ids.
    cut: BTreeSet<(String, String)>,
    crashed: BTreeSet<String>,
    events: Vec<(u64, String, MemberEvent)>,
    config: SwimConfig,
    messages: u64,
}

fn addr(id: &str) -> String {
    format!("{id}:9000")
}

fn id_of(addr: &str) -> String {
    addr.trim_end_matches(":9000").to_owned()
}

fn pair(a: &str, b: &str) -> (String, String) {
    if a < b {
        (a.into(), b.into())
    } else {
        (b.into(), a.into())
    }
}

impl Net {
    fn new(seed: u64) -> Self {
        Net {
            now: 1_000_000,
            rng: Rng::new(seed),
            nodes: BTreeMap::new(),
            flight: Vec::new(),
            sent: 0,
            drop_rate: 0.0,
            cut: BTreeSet::new(),
            crashed: BTreeSet::new(),
            events: Vec::new(),
            config: SwimConfig::default(),
            messages: 0,
        }
    }

    /// Start `id` and join it through `seeds`.
    fn start(&mut self, id: &str, seeds: &[&str]) {
        self.crashed.remove(id);
        let mut m = Membership::new(id, &addr(id), self.now, self.config.clone());
        let seeds: Vec<String> = seeds.iter().map(|s| addr(s)).collect();
        let step = m.join(&seeds, self.now);
        self.nodes.insert(id.into(), m);
        self.absorb(id, step);
    }

    /// `n` nodes, node-2.. joining through node-1, settled.
    fn cluster(seed: u64, n: usize) -> Self {
        let mut net = Net::new(seed);
        net.start("node-1", &[]);
        for i in 2..=n {
            net.start(&format!("node-{i}"), &["node-1"]);
        }
        net.run(3_000);
        net
    }

    fn absorb(&mut self, from: &str, step: sessionlab_replication_core::membership::Step) {
        for e in step.events {
            self.events.push((self.now, from.into(), e));
        }
        for (to, msg) in step.sends {
            self.messages += 1;
            let to_id = id_of(&to);
            if self.cut.contains(&pair(from, &to_id)) || self.rng.chance(self.drop_rate) {
                continue;
            }
            let at = self.now + self.rng.range(1, 15);
            self.sent += 1;
            self.flight.push((at, self.sent, to, from.into(), msg));
        }
    }

    fn run(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now += STEP_MS;
            let now = self.now;
            let mut due: Vec<_> = Vec::new();
            self.flight.retain(|m| {
                if m.0 <= now {
                    due.push(m.clone());
                    false
                } else {
                    true
                }
            });
            due.sort_by_key(|m| (m.0, m.1));
            for (_, _, to, from, msg) in due {
                let to = id_of(&to);
                if self.crashed.contains(&to) || self.cut.contains(&pair(&from, &to)) {
                    continue;
                }
                msg.check()
                    .expect("every message sent is within the limits");
                if let Some(node) = self.nodes.get_mut(&to) {
                    let step = node.on_message(msg, now);
                    self.absorb(&to, step);
                }
            }
            let ids: Vec<String> = self.nodes.keys().cloned().collect();
            for id in ids {
                if self.crashed.contains(&id) {
                    continue;
                }
                let step = self.nodes.get_mut(&id).unwrap().tick(now);
                self.absorb(&id, step);
            }
        }
    }

    fn crash(&mut self, id: &str) {
        self.crashed.insert(id.into());
    }

    fn view(&self, of: &str) -> Vec<String> {
        self.nodes[of]
            .live()
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn running(&self) -> Vec<String> {
        self.nodes
            .keys()
            .filter(|id| !self.crashed.contains(*id))
            .cloned()
            .collect()
    }

    /// Every running node's live view is exactly `expected`.
    fn all_see(&self, expected: &[&str]) -> bool {
        self.running()
            .iter()
            .filter(|id| expected.contains(&id.as_str()))
            .all(|id| self.view(id) == expected)
    }

    /// Nodes some other node declared dead, since `since`.
    fn declared_dead(&self, since: u64) -> BTreeSet<String> {
        self.events
            .iter()
            .filter(|(t, _, e)| *t >= since && e.state == MemberState::Dead)
            .map(|(_, _, e)| e.id.clone())
            .collect()
    }

    /// Suspicions raised since `since` (by any node, of any node).
    fn suspicions(&self, since: u64) -> usize {
        self.events
            .iter()
            .filter(|(t, _, e)| *t >= since && e.state == MemberState::Suspect)
            .count()
    }

    /// Run until `done` holds or `limit_ms` passes; the time it took.
    fn until(&mut self, limit_ms: u64, done: impl Fn(&Net) -> bool) -> Option<u64> {
        let start = self.now;
        while self.now < start + limit_ms {
            if done(self) {
                return Some(self.now - start);
            }
            self.run(STEP_MS);
        }
        done(self).then(|| self.now - start)
    }
}

const FIVE: [&str; 5] = ["node-1", "node-2", "node-3", "node-4", "node-5"];

#[test]
fn five_nodes_joining_through_one_seed_all_see_each_other() {
    for seed in 0..20 {
        let mut net = Net::new(seed);
        net.start("node-1", &[]);
        for id in &FIVE[1..] {
            net.start(id, &["node-1"]);
        }
        let took = net.until(3_000, |n| n.all_see(&FIVE));
        assert!(
            took.is_some(),
            "seed {seed}: views {:?}",
            net.running()
                .iter()
                .map(|i| net.view(i))
                .collect::<Vec<_>>()
        );
        // Settled, the views stay put and nobody is suspected.
        let since = net.now;
        net.run(10_000);
        assert!(net.all_see(&FIVE), "seed {seed}");
        assert!(net.declared_dead(since).is_empty(), "seed {seed}");
    }
}

#[test]
fn a_sixth_node_joining_a_running_cluster_is_listed_everywhere_within_3_s() {
    let mut worst = 0;
    for seed in 0..20 {
        let mut net = Net::cluster(seed, 5);
        let versions: Vec<u64> = FIVE.iter().map(|id| net.nodes[*id].version()).collect();
        // Through any member, not only the first.
        net.start("node-6", &["node-4"]);
        let six = ["node-1", "node-2", "node-3", "node-4", "node-5", "node-6"];
        let took = net
            .until(3_000, |n| n.all_see(&six))
            .unwrap_or_else(|| panic!("seed {seed}: not everywhere in 3 s"));
        worst = worst.max(took);
        for (id, before) in FIVE.iter().zip(versions) {
            assert!(
                net.nodes[*id].version() > before,
                "the view's version moves"
            );
        }
    }
    println!("node-6 listed everywhere within {worst} ms (worst of 20 seeds)");
}

#[test]
fn a_crashed_node_is_declared_dead_by_everyone_and_nobody_else_is() {
    let mut worst = 0;
    for seed in 0..20 {
        let mut net = Net::cluster(seed, 5);
        let since = net.now;
        net.crash("node-3");
        let rest = ["node-1", "node-2", "node-4", "node-5"];
        let took = net
            .until(10_000, |n| {
                rest.iter()
                    .all(|id| n.nodes[*id].state_of("node-3") == Some(MemberState::Dead))
            })
            .unwrap_or_else(|| panic!("seed {seed}: node-3 not dead everywhere in 10 s"));
        worst = worst.max(took);
        assert!(net.all_see(&rest), "seed {seed}");
        assert_eq!(
            net.declared_dead(since),
            BTreeSet::from(["node-3".to_string()]),
            "seed {seed}"
        );
    }
    // Probe period + indirect probes + suspicion (0.5 + 0.5 + 2 s), plus
    // the gossip of the verdict.
    assert!(worst <= 4_000, "{worst} ms");
    println!("a crash is known everywhere within {worst} ms (worst of 20 seeds)");
}

/// The reason for indirect probes: with one bad link between two healthy
/// nodes, plain heartbeats would have each end declare the other dead.
/// Through `k` other members the probe still gets its answer, so nobody is
/// even suspected; without them, the two ends suspect each other every
/// time they meet, and only the refutation keeps them in.
#[test]
fn one_bad_link_evicts_nobody_thanks_to_indirect_probes() {
    for seed in 0..20 {
        let mut net = Net::cluster(seed, 5);
        let since = net.now;
        net.cut.insert(pair("node-1", "node-2"));
        net.run(30_000);
        assert!(net.declared_dead(since).is_empty(), "seed {seed}");
        assert_eq!(net.suspicions(since), 0, "seed {seed}");
        assert!(net.all_see(&FIVE), "seed {seed}");
    }
    let mut net = Net::new(1);
    net.config.indirect_probes = 0;
    net.start("node-1", &[]);
    for id in &FIVE[1..] {
        net.start(id, &["node-1"]);
    }
    net.run(3_000);
    let since = net.now;
    net.cut.insert(pair("node-1", "node-2"));
    net.run(30_000);
    let churn = net.suspicions(since);
    println!("without indirect probes: {churn} suspicions in 30 s over one bad link");
    assert!(churn >= 10, "{churn}");
}

#[test]
fn a_graceful_leave_is_known_at_once_and_is_not_a_death() {
    for seed in 0..10 {
        let mut net = Net::cluster(seed, 5);
        let since = net.now;
        let step = net.nodes.get_mut("node-4").unwrap().leave();
        net.absorb("node-4", step);
        net.crash("node-4"); // the process exits
        let rest = ["node-1", "node-2", "node-3", "node-5"];
        let took = net
            .until(1_000, |n| {
                rest.iter()
                    .all(|id| n.nodes[*id].state_of("node-4") == Some(MemberState::Left))
            })
            .unwrap_or_else(|| panic!("seed {seed}: the goodbye did not arrive"));
        assert!(took <= 100, "{took} ms: told directly");
        net.run(10_000);
        assert!(
            net.declared_dead(since).is_empty(),
            "seed {seed}: left, not dead"
        );
        assert!(net.all_see(&rest));
    }
}

#[test]
fn a_restarted_node_comes_back_with_a_newer_incarnation() {
    for seed in 0..10 {
        let mut net = Net::cluster(seed, 5);
        net.crash("node-2");
        net.run(6_000);
        assert_eq!(
            net.nodes["node-1"].state_of("node-2"),
            Some(MemberState::Dead)
        );
        // The same id, a new process with an empty memory.
        net.start("node-2", &["node-5"]);
        net.until(3_000, |n| n.all_see(&FIVE))
            .unwrap_or_else(|| panic!("seed {seed}: node-2 not back"));
    }
}

#[test]
fn after_a_partition_heals_both_sides_merge_again() {
    for seed in 0..10 {
        let mut net = Net::cluster(seed, 5);
        let (a, b) = (["node-1", "node-2"], ["node-3", "node-4", "node-5"]);
        for x in a {
            for y in b {
                net.cut.insert(pair(x, y));
            }
        }
        net.run(8_000);
        assert!(
            net.all_see(&a) && net.all_see(&b),
            "seed {seed}: each side alone"
        );
        net.cut.clear();
        // Each side pings the members it holds dead; they refute.
        net.until(10_000, |n| n.all_see(&FIVE))
            .unwrap_or_else(|| panic!("seed {seed}: the sides did not merge"));
    }
}

/// Longer than `dead_retain_ms` (60 s): each side forgets the other and
/// pings nobody of it. The side whose seed is on the other side joins
/// through it again, and the two merge.
#[test]
fn after_a_partition_longer_than_the_dead_are_remembered_the_sides_still_merge() {
    for seed in 0..5 {
        let mut net = Net::cluster(seed, 4);
        let (a, b) = (["node-1", "node-2"], ["node-3", "node-4"]);
        for x in a {
            for y in b {
                net.cut.insert(pair(x, y));
            }
        }
        net.run(70_000);
        assert!(
            net.all_see(&a) && net.all_see(&b),
            "seed {seed}: each side alone, the other forgotten"
        );
        net.cut.clear();
        net.until(20_000, |n| {
            n.all_see(&["node-1", "node-2", "node-3", "node-4"])
        })
        .unwrap_or_else(|| panic!("seed {seed}: the sides never merged"));
    }
}

#[test]
fn on_lossy_links_nobody_healthy_is_declared_dead() {
    for seed in 0..10 {
        let mut net = Net::cluster(seed, 8);
        let since = net.now;
        net.drop_rate = 0.05;
        net.run(60_000);
        assert!(
            net.declared_dead(since).is_empty(),
            "seed {seed}: {:?}",
            net.declared_dead(since)
        );
        let eight: Vec<String> = (1..=8).map(|i| format!("node-{i}")).collect();
        let eight: Vec<&str> = eight.iter().map(String::as_str).collect();
        assert!(net.all_see(&eight), "seed {seed}");
    }
}

/// SWIM's promise: the load on each node does not grow with the cluster.
#[test]
fn messages_per_node_stay_flat_as_the_cluster_grows() {
    let mut per_node = Vec::new();
    for n in [4usize, 8, 16] {
        let mut net = Net::cluster(7, n);
        let before = net.messages;
        net.run(20_000);
        per_node.push((net.messages - before) as f64 / n as f64 / 20.0);
    }
    println!("messages per node per second at 4/8/16 nodes: {per_node:?}");
    let (small, large) = (per_node[0], per_node[2]);
    assert!(large < small * 1.5, "{per_node:?}");
}
