//! End-to-end tests of `sessionlab` with real node and LB processes:
//! every subcommand in the modes that need no replication, plus the bad
//! inputs. Replicated modes are in `replicated.rs`.

mod support;

use std::time::{Duration, Instant};

use sessionlab_testkit::eventually;
use support::*;

#[test]
fn bad_input_exits_non_zero_and_lists_the_valid_choices() {
    let tc = TestCluster::new();
    let err = tc.fails(&["up", "--mode", "galaxy"]);
    assert!(
        err.contains(
            "possible values: local, sticky, replicated, sticky-replicated, backup, redis, redis-ha, jwt"
        ),
        "{err}"
    );
    let err = tc.fails(&["up", "--no-such-flag"]);
    assert!(
        err.contains("unexpected argument '--no-such-flag'"),
        "{err}"
    );
    let err = tc.fails(&["explode"]);
    assert!(err.contains("unrecognized subcommand 'explode'"), "{err}");
    assert!(err.contains("Usage: sessionlab"), "{err}");
    let err = tc.fails(&["kill", "node-1"]);
    assert!(err.contains("no cluster is up in run folder"), "{err}");
    let err = tc.fails(&["up", "--nodes", "0"]);
    assert!(err.contains("--nodes must be between 1 and 16"), "{err}");
    // `down` without a cluster is a no-op, so scripts can always call it.
    assert!(tc.ok(&["down"]).contains("nothing to stop"));
}

#[test]
fn up_refuses_a_missing_binary_before_starting_anything() {
    let tc = TestCluster::new();
    let empty = tc.dir.path().join("no-bins");
    std::fs::create_dir_all(&empty).unwrap();
    let err = tc.fails(&[
        "up",
        "--mode",
        "local",
        "--bin-dir",
        empty.to_str().unwrap(),
    ]);
    assert!(err.contains("sessionlab-node not found at"), "{err}");
    assert!(err.contains("cargo build"), "{err}");
    assert!(tc.run_folder().load().unwrap().is_none());
}

#[test]
fn up_refuses_a_taken_port() {
    require_binaries();
    let tc = TestCluster::new();
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let err = tc.fails(&["up", "--mode", "local", "--lb-port", &port]);
    assert!(
        err.contains(&format!("port {port} (LB) is already in use")),
        "{err}"
    );
    assert!(tc.run_folder().load().unwrap().is_none());
}

#[test]
fn a_node_that_crashes_during_up_fails_up_shows_its_log_and_stops_the_rest() {
    require_binaries();
    let tc = TestCluster::new();
    // A flag the node refuses makes every node exit at once with an error.
    let err = tc.fails(&[
        "up",
        "--mode",
        "local",
        "--nodes",
        "2",
        "--node-arg=--idle-timeout=0s",
    ]);
    assert!(err.contains("exited while starting up (exit code"), "{err}");
    assert!(err.contains("idle-timeout"), "the log tail is shown: {err}");
    assert!(err.contains("stopping what was started"), "{err}");
    assert!(
        tc.run_folder().load().unwrap().is_none(),
        "the state is cleared"
    );
    // Nothing of that attempt runs: a fresh `up` in the same folder works.
    let out = tc.sessionlab(&["up", "--mode", "local", "--nodes", "1"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_loses_the_login_and_down_leaves_nothing_running() {
    let started = Instant::now();
    let tc = TestCluster::up("local", 2);
    let took = started.elapsed();
    println!("local: `sessionlab up` to healthy took {took:?}");
    let st = tc.state();
    assert_eq!(st.nodes.len(), 2);
    assert!(
        st.lb
            .args
            .windows(2)
            .any(|w| w == ["--strategy", "round-robin"])
    );

    // Already up: a second `up` is refused and names the cluster.
    let err = tc.fails(&["up", "--mode", "sticky"]);
    assert!(
        err.contains("a cluster is already up (mode local, 2 nodes"),
        "{err}"
    );

    let base = tc.app_url();
    let client = browser();
    let who = login(&client, &base, "alice").await.by;
    // Round-robin sends the next requests to both nodes; the other node
    // never saw the login.
    let mut lost = 0;
    for _ in 0..4 {
        let s = session(&client, &base).await;
        if s.by == who {
            assert_eq!(user_of(&s).as_deref(), Some("alice"));
        } else {
            assert_eq!(user_of(&s), None, "{}", s.body);
            lost += 1;
        }
    }
    assert!(lost >= 1, "round-robin should reach the other node");

    let status = tc.status();
    assert_eq!(status["mode"], "local");
    let rows = status["rows"].as_array().unwrap();
    // The LB, the dashboard and the two nodes.
    assert_eq!(rows.len(), 4);
    for row in rows {
        assert_eq!(row["state"], "running", "{row}");
        assert_eq!(row["health"], "ok", "{row}");
    }
    let holder = rows.iter().find(|r| r["process"] == who.as_str()).unwrap();
    assert_eq!(holder["sessions"], 1);
    assert_eq!(holder["lb"], "up");
    let table = tc.ok(&["status"]);
    assert!(
        table.contains("PROCESS") && table.contains("node-2"),
        "{table}"
    );

    let procs = st.processes();
    let out = tc.ok(&["down"]);
    assert!(
        out.contains("stopped lb, dashboard, node-1, node-2 (4 processes)"),
        "{out}"
    );
    for (name, p) in procs {
        assert!(!p.is_alive(), "{name} still runs after down");
    }
    assert!(tc.run_folder().load().unwrap().is_none());
    // The logs stay for reading after the fact.
    let logs = tc.ok(&["logs", "node-1"]);
    assert!(!logs.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_mode_keeps_the_user_until_the_node_is_killed_then_restart_brings_it_back() {
    let tc = TestCluster::up("sticky", 2);
    let base = tc.app_url();
    let client = browser();
    let who = login(&client, &base, "bob").await.by;
    for _ in 0..4 {
        let s = session(&client, &base).await;
        assert_eq!(s.by, who, "sticky: always the same node");
        assert_eq!(user_of(&s).as_deref(), Some("bob"));
    }

    let out = tc.ok(&["kill", &who]);
    assert!(out.contains(&format!("killed {who} (pid")), "{out}");
    let err = tc.fails(&["kill", &who]);
    assert!(err.contains("is not running"), "{err}");
    let err = tc.fails(&["kill", "node-9"]);
    assert!(
        err.contains("unknown node `node-9`; the nodes of this cluster are: node-1, node-2"),
        "{err}"
    );

    // The LB fails over to the other node, which never saw bob's login.
    let after = eventually(Duration::from_secs(10), "failover", || {
        let client = client.clone();
        let base = base.clone();
        let who = who.clone();
        async move {
            let s = session(&client, &base).await;
            (s.status == 200 && s.by != who && !s.by.is_empty()).then_some(s)
        }
    })
    .await;
    assert_eq!(user_of(&after), None, "bob is logged out: {}", after.body);

    let status = tc.status();
    let row = status_row(&status, &who).unwrap();
    assert_eq!(row["state"], "stopped");
    assert!(row["pid"].is_null());

    let out = tc.ok(&["restart", &who]);
    assert!(out.contains("healthy and back in the LB"), "{out}");
    let row = status_row(&tc.status(), &who).unwrap();
    assert_eq!(row["state"], "running");
    assert_eq!(row["health"], "ok");
    assert_eq!(row["lb"], "up");
    // Its memory is gone with the old process.
    assert_eq!(row["sessions"], 0);

    // partition needs replication; the message says why.
    let err = tc.fails(&["partition", "node-1"]);
    assert!(err.contains("mode sticky has none"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_scale_and_logs_work_at_run_time() {
    let tc = TestCluster::up("local", 2);
    let base = tc.app_url();
    let lb_row =
        |status: &serde_json::Value, id: &str| status_row(status, id).map(|r| r["lb"].clone());

    assert!(tc.ok(&["drain", "node-2"]).contains("draining node-2"));
    assert_eq!(
        lb_row(&tc.status(), "node-2").unwrap(),
        "up draining",
        "the LB shows it draining"
    );
    // New sessions only go to node-1 now.
    for _ in 0..4 {
        let s = session(&browser(), &base).await;
        assert_eq!(s.by, "node-1");
    }
    tc.ok(&["undrain", "node-2"]);
    assert_eq!(lb_row(&tc.status(), "node-2").unwrap(), "up");
    let err = tc.fails(&["drain", "node-7"]);
    assert!(err.contains("unknown node `node-7`"), "{err}");

    // Scale up: node-3 starts, joins the LB and serves.
    let out = tc.ok(&["scale", "--nodes", "3"]);
    assert!(out.contains("3 nodes: node-1, node-2, node-3"), "{out}");
    assert_eq!(lb_row(&tc.status(), "node-3").unwrap(), "up");
    let served: std::collections::BTreeSet<String> = {
        let mut set = std::collections::BTreeSet::new();
        for _ in 0..6 {
            set.insert(session(&browser(), &base).await.by);
        }
        set
    };
    assert!(served.contains("node-3"), "node-3 serves: {served:?}");

    // Scale down: node-2 and node-3 leave the LB and stop.
    let before = tc.state();
    let out = tc.ok(&["scale", "--nodes", "1"]);
    assert!(out.contains("1 nodes: node-1"), "{out}");
    for id in ["node-2", "node-3"] {
        assert!(!before.node(id).unwrap().process.unwrap().is_alive());
        assert_eq!(lb_row(&tc.status(), id), None);
    }
    let lb = tc.ok(&["status", "--json"]);
    assert!(!lb.contains("node-2"), "{lb}");
    for _ in 0..3 {
        assert_eq!(session(&browser(), &base).await.by, "node-1");
    }
    let err = tc.fails(&["scale", "--nodes", "17"]);
    assert!(err.contains("between 1 and 16"), "{err}");

    // Logs: all processes prefixed, one plain, unknown names listed.
    let all = tc.ok(&["logs", "-n", "5"]);
    assert!(all.lines().any(|l| l.starts_with("lb ")), "{all}");
    assert!(all.lines().any(|l| l.starts_with("node-1 ")), "{all}");
    let err = tc.fails(&["logs", "node-42"]);
    assert!(err.contains("processes with logs: lb, node-1"), "{err}");

    // --follow streams new lines and ends by itself when the cluster goes down.
    let mut follow = std::process::Command::new(env!("CARGO_BIN_EXE_sessionlab"))
        .args(["logs", "--follow", "-n", "0"])
        .env("SESSIONLAB_RUN_DIR", &tc.run_dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tc.ok(&["down"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = follow.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = follow.kill();
            panic!("logs --follow did not end after down");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    let mut printed = String::new();
    std::io::Read::read_to_string(&mut follow.stdout.take().unwrap(), &mut printed).unwrap();
    assert!(
        printed.lines().all(|l| l.contains(" | ")),
        "only new, prefixed lines: {printed}"
    );
}
