//! The backup topology between real processes that find each other at run
//! time (`--replication backup`, `--join`): where a session's copies are,
//! what a join and a crash do to them, and that any node serves any
//! session.
//!
//! This is the issue's "done when": five nodes; a write exists on exactly
//! two of them (K = 1); a sixth joins with `--join` while nothing restarts,
//! every member lists it within 3 s and ownership moves to it; the primary
//! of a session is SIGKILLed and every other node serves the session with
//! its data, and its copies are back to two.

mod process_cluster;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use process_cluster::{TestCluster, cookie_id};
use sessionlab_replication::ownership;

const SESSIONS: usize = 40;

/// Which nodes (by index) hold a live copy of each session id.
async fn holders(c: &TestCluster, nodes: &[usize]) -> BTreeMap<String, BTreeSet<usize>> {
    let mut out: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for &i in nodes {
        for (id, (_, deleted, _)) in c.digest(i).await {
            if !deleted {
                out.entry(id).or_default().insert(i);
            }
        }
    }
    out
}

/// The owners of `id` (indices) among the members `nodes`, primary first.
fn owners_of(c: &TestCluster, id: &str, nodes: &[usize], copies: usize) -> Vec<usize> {
    let ids: Vec<&str> = nodes.iter().map(|&i| c.nodes[i].id.as_str()).collect();
    ownership::owners(id.as_bytes(), &ids, copies)
        .into_iter()
        .map(|o| c.nodes.iter().position(|n| n.id == o).unwrap())
        .collect()
}

/// Poll until every session in `ids` is held by exactly its two owners
/// among `nodes`; panics with the placement seen.
async fn wait_placed(c: &TestCluster, ids: &[String], nodes: &[usize], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let held = holders(c, nodes).await;
        let wrong: Vec<String> = ids
            .iter()
            .filter_map(|id| {
                let want: BTreeSet<usize> = owners_of(c, id, nodes, 2).into_iter().collect();
                let have = held.get(id).cloned().unwrap_or_default();
                (have != want).then(|| format!("{id:.8}: held by {have:?}, owners {want:?}"))
            })
            .collect();
        if wrong.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = nodes.iter().map(|&i| c.log_tail(i)).collect();
            panic!(
                "{} of {} sessions not on exactly their 2 owners within {within:?}: {:?}\n{}",
                wrong.len(),
                ids.len(),
                &wrong[..wrong.len().min(5)],
                logs.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_keeps_two_copies_through_a_join_and_a_crash_and_any_node_serves() {
    let mut c = TestCluster::start_joined(
        5,
        &[
            "--backups",
            "1",
            "--replication-ack",
            "all",
            "--replication-ack-timeout",
            "5s",
        ],
    )
    .await;
    let five: Vec<usize> = (0..5).collect();
    for i in &five {
        let s = c.status(*i).await;
        assert_eq!(s["topology"], "backup", "{s}");
        assert_eq!(s["backups"], 1, "{s}");
    }

    // Writes on node-1: each on exactly two nodes, its owners (node-1 is
    // one of them: it picks ids it owns).
    let mut cookies = Vec::new();
    for _ in 0..SESSIONS {
        let (n, cookie, headers) = c.increment(0, "").await;
        assert_eq!(n, 1);
        let ack = headers.get("x-replication-ack").unwrap().to_str().unwrap();
        assert!(ack.starts_with("acked"), "{ack}");
        cookies.push(cookie);
    }
    let ids: Vec<String> = cookies.iter().map(|k| cookie_id(k).to_owned()).collect();
    let held = holders(&c, &five).await;
    for id in &ids {
        let on = held.get(id).cloned().unwrap_or_default();
        assert_eq!(
            on.len(),
            2,
            "{id:.8} is on {on:?}, not on exactly two nodes"
        );
        assert!(on.contains(&0), "node-1 created {id:.8} but holds no copy");
    }
    wait_placed(&c, &ids, &five, Duration::from_secs(5)).await;

    // Any node serves any session (the others fetch it from an owner).
    for i in &five {
        assert_eq!(c.counter(*i, &cookies[0]).await, Some(1), "node-{}", i + 1);
    }
    let owners = owners_of(&c, &ids[0], &five, 2);
    let other = *five.iter().find(|i| !owners.contains(i)).unwrap();
    let metrics = c.metrics(other).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("replication_remote_fetches_total{")
                && l.contains("outcome=\"hit\"")
                && !l.ends_with(" 0")),
        "node-{} served a session it does not own without a remote fetch counted",
        other + 1
    );

    // node-6 joins through node-1; nothing restarts.
    let pids: Vec<u32> = five.iter().map(|&i| c.pid(i)).collect();
    let joined_at = Instant::now();
    let six = c.add_node();
    let mut listed = false;
    while joined_at.elapsed() < Duration::from_secs(3) {
        let mut all = true;
        for i in &five {
            all &= c.members_seen(*i).await.contains("node-6");
        }
        if all {
            listed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        listed,
        "not every member listed node-6 within 3 s of its start\n{}",
        c.log_tail(six)
    );
    println!("node-6 listed by all five after {:?}", joined_at.elapsed());
    c.wait_ready(six, Duration::from_secs(10)).await;
    let six_nodes: Vec<usize> = (0..6).collect();
    wait_placed(&c, &ids, &six_nodes, Duration::from_secs(10)).await;
    let moved = holders(&c, &[six]).await.len();
    assert!(moved > 0, "no session moved to node-6");
    println!("rebalanced: node-6 now holds {moved} of {SESSIONS} sessions");
    for (i, pid) in five.iter().zip(&pids) {
        assert_eq!(c.pid(*i), *pid, "node-{} was restarted", i + 1);
        assert!(c.running(*i), "node-{} stopped", i + 1);
    }

    // SIGKILL the primary of the first session: every other node serves it
    // with its data, and its copies are back to two.
    let id = ids[0].clone();
    let primary = owners_of(&c, &id, &six_nodes, 2)[0];
    c.kill(primary);
    let rest: Vec<usize> = six_nodes
        .iter()
        .copied()
        .filter(|i| *i != primary)
        .collect();
    for &i in &rest {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let n = c.counter(i, &cookies[0]).await;
            if n == Some(1) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node-{} does not serve {id:.8} after its primary node-{} died: {n:?}\n{}",
                i + 1,
                primary + 1,
                c.log_tail(i)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The failure detector removes the dead member; the backups restore
    // K + 1 = 2 copies of everything it held.
    wait_placed(&c, &ids, &rest, Duration::from_secs(20)).await;
    let (n, _, _) = c.increment(rest[0], &cookies[0]).await;
    assert_eq!(n, 2, "the session's data survived its primary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_under_an_id_in_use_is_refused_and_the_member_stays() {
    let mut c = TestCluster::start_joined(2, &[]).await;
    // A third process that calls itself node-2.
    let i = c.add_node_as("node-2");
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.health(i).await == 0 {
        assert!(
            Instant::now() < deadline,
            "never listened\n{}",
            c.log_tail(i)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loop {
        let s = c.status(i).await;
        let problem = s["membership"]["problem"].as_str().unwrap_or("").to_owned();
        if problem.contains("already in use") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no refusal shown: {s}\n{}",
            c.log_tail(i)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(c.health(i).await, 503, "a refused joiner reports ready");
    let seen = c.members_seen(0).await;
    assert_eq!(seen, BTreeSet::from(["node-1".into(), "node-2".into()]));
    let addr = c.status(0).await["membership"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "node-2")
        .map(|m| m["addr"].as_str().unwrap().to_owned())
        .unwrap();
    assert_eq!(addr, format!("127.0.0.1:{}", c.nodes[1].cluster_port));
}

/// Bad input on the membership paths: an unsigned join (or a leave, the
/// same endpoint) and an unsigned remote fetch are 401 and change
/// nothing; a node whose `--discover` name does not resolve keeps running
/// and retrying, says why in its status, and does not report ready alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_membership_requests_are_refused_and_an_unresolvable_name_is_retried() {
    let c = TestCluster::start_joined(2, &[]).await;
    let join = r#"{"type":"join","from":{"id":"node-9","addr":"127.0.0.1:1","incarnation":1}}"#;
    for body in [
        join.to_owned(),
        r#"{"type":"gossip","from":{"id":"node-9","addr":"127.0.0.1:1","incarnation":1},"updates":[]}"#.to_owned(),
    ] {
        let resp = c
            .http
            .post(format!("{}/cluster/v1/swim", c.nodes[0].cluster()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
    }
    let resp = c
        .http
        .get(format!("{}/cluster/v1/fetch?id=abc", c.nodes[0].cluster()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..2 {
        let seen = c.members_seen(i).await;
        assert_eq!(seen, BTreeSet::from(["node-1".into(), "node-2".into()]));
    }

    // A node that finds its members by a name that does not resolve.
    let ports = sessionlab_testkit::free_ports(2);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("lost.log");
    let args: Vec<String> = [
        "--id",
        "lost",
        "--listen",
        &format!("127.0.0.1:{}", ports[0]),
        "--cluster-listen",
        &format!("127.0.0.1:{}", ports[1]),
        "--workers",
        "1",
        "--replication",
        "backup",
        "--discover",
        "no-such-name.invalid:9081",
        "--discover-interval",
        "200ms",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut child = sessionlab_testkit::spawn_logged(
        process_cluster::BIN,
        &args,
        &[("SESSIONLAB_CLUSTER_SECRET", process_cluster::SECRET)],
        &log,
    );
    let cluster = format!("127.0.0.1:{}", ports[1]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        let s = match c
            .http
            .get(format!("http://{cluster}/admin/v1/status"))
            .send()
            .await
        {
            Ok(r) => r.json::<serde_json::Value>().await.ok(),
            Err(_) => None, // not listening yet
        };
        if s.as_ref().is_some_and(|s| {
            s["membership"]["discovery"]["error"]
                .as_str()
                .is_some_and(|e| !e.is_empty())
        }) {
            break s.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no discovery error shown: {s:?}\n{}",
            sessionlab_testkit::log_tail(&log, 30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        status["membership"]["discovery"]["target"], "no-such-name.invalid:9081",
        "{status}"
    );
    // Several re-resolutions later: still running, still not ready.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(matches!(child.try_wait(), Ok(None)), "the node exited");
    let health = c
        .http
        .get(format!("http://{cluster}/healthz"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(health, 503, "a node that found nobody reports ready");
    sessionlab_testkit::kill(&mut child);
}

/// A logout on a node that does not own the session leaves a tombstone
/// there. While its delete cannot reach the owners, that node must not
/// fetch the logged-out session back from them: the tombstone it holds
/// wins over their copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_a_non_owner_is_not_undone_by_a_remote_fetch() {
    let c = TestCluster::start_joined(3, &["--backups", "1"]).await;
    let (_, cookie, _) = c.increment(0, "").await;
    let id = cookie_id(&cookie).to_owned();
    let all: Vec<usize> = (0..3).collect();
    let owners = owners_of(&c, &id, &all, 2);
    let other = *all.iter().find(|i| !owners.contains(i)).unwrap();
    assert_eq!(
        c.counter(other, &cookie).await,
        Some(1),
        "fetched from an owner"
    );
    // Cut the non-owner's replication links: its delete cannot leave.
    let peers: Vec<&str> = owners.iter().map(|&i| c.nodes[i].id.as_str()).collect();
    c.set_faults(other, &peers).await;
    let res = c
        .http
        .post(format!("{}/logout", c.nodes[other].app()))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_redirection() || res.status().is_success(),
        "{}",
        res.status()
    );
    assert_eq!(
        c.counter(owners[0], &cookie).await,
        Some(1),
        "the owners have not heard of the logout yet"
    );
    assert_eq!(
        c.counter(other, &cookie).await,
        None,
        "logged out where it happened"
    );
}
