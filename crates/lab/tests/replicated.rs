//! End-to-end tests of the replicated modes with real processes: failover
//! keeps the session, partition and heal converge, scale rolls the peers.

mod support;

use std::time::{Duration, Instant};

use sessionlab_testkit::eventually;
use support::*;

/// The version of the session whose id starts with `prefix` on each node
/// (`None`: the node does not hold it), read from `/admin/v1/sessions`.
async fn versions(tc: &TestCluster, prefix: &str) -> Vec<(String, Option<String>)> {
    let secret = tc.run_folder().read_secret().unwrap();
    let mut out = Vec::new();
    for node in tc.state().nodes {
        if !node.process.is_some_and(|p| p.is_alive()) {
            continue;
        }
        let addr = format!("127.0.0.1:{}", node.cluster_port);
        let (_, body) = signed_get(&addr, &secret, "/admin/v1/sessions")
            .await
            .expect("a node's sessions");
        out.push((node.id, version_in(&body, prefix)));
    }
    out
}

/// A node's fault set (`GET /admin/v1/faults`, signed): the peers it drops.
async fn drops_of(tc: &TestCluster, node: &str) -> Vec<String> {
    let secret = tc.run_folder().read_secret().unwrap();
    let addr = tc.cluster_url(node).replace("http://", "");
    let (status, body) = signed_get(&addr, &secret, "/admin/v1/faults")
        .await
        .expect("a node's fault set");
    assert_eq!(status, 200);
    body["drop"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Waits until every running node holds the same version of the session.
async fn converged(tc: &TestCluster, prefix: &str) -> String {
    eventually(
        Duration::from_secs(20),
        "all copies to converge",
        || async {
            let v = versions(tc, prefix).await;
            let first = v.first()?.1.clone()?;
            v.iter()
                .all(|(_, x)| x.as_ref() == Some(&first))
                .then_some(first)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_replicated_fails_over_with_the_session_and_heals_after_a_partition() {
    let started = Instant::now();
    let tc = TestCluster::up("sticky-replicated", 3);
    println!(
        "sticky-replicated x3: `sessionlab up` to healthy took {:?}",
        started.elapsed()
    );
    let base = tc.app_url();
    let client = browser();
    let who = login(&client, &base, "alice").await.by;
    let c1 = increment(&client, &base).await;
    assert_eq!(c1.by, who);
    let counter = c1.body["counter"].as_u64().unwrap();
    let s = session(&client, &base).await;
    let prefix = s.body["session"]["id_prefix"].as_str().unwrap().to_string();
    converged(&tc, &prefix).await;

    // Kill the node that served alice: the next request lands elsewhere,
    // with the same session.
    tc.ok(&["kill", &who]);
    let after = served_elsewhere(&client, &base, &who, Duration::from_secs(10)).await;
    assert_eq!(user_of(&after).as_deref(), Some("alice"), "{}", after.body);
    assert_eq!(after.body["session"]["data"]["counter"], counter);
    let survivor = after.by.clone();

    // The killed node comes back with a snapshot: it holds alice's session.
    tc.ok(&["restart", &who]);
    converged(&tc, &prefix).await;

    // Cut the survivor off from the others, write on it: the others keep
    // the old version until the heal.
    let out = tc.ok(&["partition", &survivor]);
    assert!(
        out.contains(&format!("partitioned {survivor} from")),
        "{out}"
    );
    let status = tc.status();
    let row = |id: &str| status_row(&status, id).unwrap();
    assert_eq!(row(&survivor)["cut_from"].as_array().unwrap().len(), 2);
    let w = increment(&client, &base).await;
    assert_eq!(w.by, survivor, "the LB still reaches the partitioned node");
    let split = versions(&tc, &prefix).await;
    let mine = split
        .iter()
        .find(|(n, _)| n == &survivor)
        .unwrap()
        .1
        .clone();
    for (node, v) in &split {
        if node != &survivor {
            assert_ne!(v, &mine, "{node} got the write across the partition");
        }
    }
    let out = tc.ok(&["heal"]);
    assert!(out.contains("healed"), "{out}");
    let v = converged(&tc, &prefix).await;
    assert_eq!(Some(v), mine, "the newer write wins everywhere");
    let status = tc.status();
    for r in node_rows(&status) {
        assert!(r["cut_from"].as_array().unwrap().is_empty(), "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_scale_rolls_the_peer_lists_and_new_nodes_get_the_sessions() {
    let tc = TestCluster::up("replicated", 2);
    let base = tc.app_url();
    let client = browser();
    login(&client, &base, "carol").await;
    // Round-robin: the next request may reach the other node before the
    // copy does (asynchronous replication), so ask until one answers with it.
    let prefix = eventually(
        Duration::from_secs(10),
        "the session to be readable",
        || {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let s = session(&client, &base).await;
                s.body["session"]["id_prefix"].as_str().map(str::to_string)
            }
        },
    )
    .await;
    converged(&tc, &prefix).await;

    tc.ok(&["scale", "--nodes", "3"]);
    let st = tc.state();
    assert_eq!(st.node_ids(), vec!["node-1", "node-2", "node-3"]);
    for n in &st.nodes {
        let peers = n.args.iter().filter(|a| *a == "--peer").count();
        assert_eq!(peers, 2, "{} knows both others: {:?}", n.id, n.args);
    }
    converged(&tc, &prefix).await;
    let held: Vec<_> = versions(&tc, &prefix).await;
    assert_eq!(held.len(), 3);
    every_node_sees_peers(&tc, 2).await;

    tc.ok(&["scale", "--nodes", "2"]);
    let st = tc.state();
    assert_eq!(st.node_ids(), vec!["node-1", "node-2"]);
    every_node_sees_peers(&tc, 1).await;
    let s = session(&client, &base).await;
    assert_eq!(user_of(&s).as_deref(), Some("carol"));

    // Partition with --from: only that link is cut, both ways, and a
    // restarted node is put back behind its cut.
    tc.ok(&["partition", "node-1", "--from", "node-2"]);
    assert_eq!(tc.state().cuts.len(), 1);
    assert_eq!(drops_of(&tc, "node-1").await, vec!["node-2"]);
    assert_eq!(drops_of(&tc, "node-2").await, vec!["node-1"]);
    tc.ok(&["restart", "node-1"]);
    assert_eq!(drops_of(&tc, "node-1").await, vec!["node-2"]);
    let err = tc.fails(&["partition", "node-1", "--from", "node-1"]);
    assert!(err.contains("from itself"), "{err}");
    let err = tc.fails(&["partition", "node-1", "--from", "node-5"]);
    assert!(err.contains("unknown node `node-5`"), "{err}");
    tc.ok(&["heal"]);
    assert!(drops_of(&tc, "node-1").await.is_empty());
    assert!(drops_of(&tc, "node-2").await.is_empty());
    assert!(tc.state().cuts.is_empty());
}

/// Waits until `sessionlab status` shows every node knowing `n` peers, all up.
async fn every_node_sees_peers(tc: &TestCluster, n: u64) {
    eventually(
        Duration::from_secs(15),
        &format!("every node to see {n} peers up"),
        || async {
            let status = tc.status();
            node_rows(&status)
                .into_iter()
                .all(|r| r["peers_up"] == n && r["peers"] == n)
                .then_some(())
        },
    )
    .await;
}
