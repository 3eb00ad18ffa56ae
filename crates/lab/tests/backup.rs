//! The `backup` mode end to end with real processes: `sessionlab up
//! --mode backup`, logins through the LB, then `scale` 3 -> 5 -> 3. Run-time
//! membership means no node restarts (the pids stay), every session keeps
//! exactly two copies on the nodes that run, and every login still works.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use sessionlab_testkit::eventually;
use support::*;

/// Sessions opened (each client its own login, the demo users in turn).
const USERS: usize = 12;
const NAMES: [&str; 3] = ["alice", "bob", "carol"];

fn user(i: usize) -> &'static str {
    NAMES[i % NAMES.len()]
}

/// The pid of every running node, by id.
fn pids(tc: &TestCluster) -> BTreeMap<String, u32> {
    tc.state()
        .nodes
        .iter()
        .filter_map(|n| n.process.map(|p| (n.id.clone(), p.pid)))
        .collect()
}

/// Whether node `id` holds the session whose id starts with `prefix`.
async fn holds(tc: &TestCluster, secret: &str, id: &str, prefix: &str) -> bool {
    let addr = tc.cluster_url(id).replace("http://", "");
    matches!(
        signed_get(&addr, secret, "/admin/v1/sessions").await,
        Some((200, body)) if version_in(&body, prefix).is_some()
    )
}

/// How many running nodes hold the session whose id starts with `prefix`.
async fn copies(tc: &TestCluster, secret: &str, prefix: &str) -> usize {
    let mut held = 0;
    for id in tc.state().node_ids() {
        if holds(tc, secret, &id, prefix).await {
            held += 1;
        }
    }
    held
}

/// The live members node `id` lists (`/admin/v1/status`, membership).
async fn members(tc: &TestCluster, secret: &str, id: &str) -> usize {
    let addr = tc.cluster_url(id).replace("http://", "");
    let Some((200, body)) = signed_get(&addr, secret, "/admin/v1/status").await else {
        return 0;
    };
    body["membership"]["members"]
        .as_array()
        .map(|m| m.iter().filter(|m| m["state"] == "alive").count())
        .unwrap_or(0)
}

/// Every session on exactly two running nodes and every node listing `n`
/// live members, within a bound.
async fn settled(tc: &TestCluster, secret: &str, prefixes: &[String], n: usize) {
    eventually(
        Duration::from_secs(15),
        "every node to list the members",
        || async {
            for id in tc.state().node_ids() {
                if members(tc, secret, &id).await != n {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    eventually(
        Duration::from_secs(15),
        "two copies of every session",
        || async {
            for p in prefixes {
                if copies(tc, secret, p).await != 2 {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
}

/// Every user is still logged in, through the LB.
async fn all_logged_in(clients: &[reqwest::Client], base: &str) {
    for (i, client) in clients.iter().enumerate() {
        let s = session(client, base).await;
        assert_eq!(s.status, 200, "client {i}: {}", s.body);
        assert_eq!(user_of(&s).as_deref(), Some(user(i)), "{}", s.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_scales_3_to_5_to_3_without_restarts_and_keeps_every_login() {
    let tc = TestCluster::up("backup", 3);
    let secret = tc.run_folder().read_secret().unwrap();
    let base = tc.app_url();
    let mut clients = Vec::new();
    let mut prefixes = Vec::new();
    for i in 0..USERS {
        let client = browser();
        login(&client, &base, user(i)).await;
        let s = session(&client, &base).await;
        let prefix = s.body["session"]["id_prefix"]
            .as_str()
            .unwrap_or_else(|| panic!("a session prefix: {}", s.body))
            .to_string();
        prefixes.push(prefix);
        clients.push(client);
    }
    settled(&tc, &secret, &prefixes, 3).await;
    let before = pids(&tc);
    assert_eq!(before.len(), 3);

    let out = tc.ok(&["scale", "--nodes", "5"]);
    assert!(!out.contains("rolling restart"), "{out}");
    let grown = pids(&tc);
    assert_eq!(grown.len(), 5);
    for (id, pid) in &before {
        assert_eq!(grown.get(id), Some(pid), "{id} was not restarted");
    }
    settled(&tc, &secret, &prefixes, 5).await;
    all_logged_in(&clients, &base).await;
    // The new nodes own some of the sessions now: they were handed over.
    let mut on_new = 0;
    for p in &prefixes {
        for id in ["node-4", "node-5"] {
            if holds(&tc, &secret, id, p).await {
                on_new += 1;
            }
        }
    }
    assert!(on_new > 0, "no session moved to node-4 or node-5");

    let out = tc.ok(&["scale", "--nodes", "3"]);
    assert!(!out.contains("rolling restart"), "{out}");
    assert_eq!(
        pids(&tc),
        before,
        "the three first nodes run on, unrestarted"
    );
    settled(&tc, &secret, &prefixes, 3).await;
    all_logged_in(&clients, &base).await;
}
