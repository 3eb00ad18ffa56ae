//! End-to-end tests of `sessionlab up --lb haproxy|nginx`: the real
//! HAProxy and nginx (Debian's packages; scripts/test.sh installs them) in
//! front of real nodes, configured by the file the lab generates.

mod support;

use std::time::Duration;

use support::*;

/// Panics with the package to install if `program` is missing.
fn require(program: &str) {
    let found = ["/usr/sbin", "/usr/local/sbin", "/usr/bin"]
        .iter()
        .any(|d| std::path::Path::new(d).join(program).is_file());
    assert!(
        found,
        "{program} is not installed: `apt-get install {program}` (scripts/test.sh does)"
    );
}

/// The done-when test of issue 15: behind HAProxy in the classic cluster
/// mode, the node that served the login is SIGKILLed and the very next
/// request is served by another node, still logged in (cookie insert,
/// `option redispatch`, replication).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_sticky_replicated_survives_the_serving_nodes_sigkill() {
    require("haproxy");
    let tc = TestCluster::up_with("sticky-replicated", 3, &["--lb", "haproxy"]);
    let config = tc.ok(&["config", "lb"]);
    assert!(
        config.contains("    cookie SLSRV insert indirect nocache httponly\n"),
        "{config}"
    );
    assert!(config.contains("    option redispatch 1\n"), "{config}");
    let st = tc.state();
    assert!(tc.run_dir.join("lb/haproxy.cfg").is_file());
    let status = tc.status();
    assert_eq!(status["lb_kind"], "haproxy");
    for row in node_rows(&status) {
        assert_eq!(row["lb"], "up", "HAProxy's view: {row}");
    }

    let base = tc.app_url();
    let client = browser();
    let who = login(&client, &base, "alice").await.by;
    let again = session(&client, &base).await;
    assert_eq!(again.by, who, "cookie insert keeps alice on {who}");
    assert_eq!(user_of(&again).as_deref(), Some("alice"));

    // Drain goes through HAProxy's runtime API; alice (pinned) stays.
    let said = tc.ok(&["drain", &who]);
    assert!(said.contains("set server nodes/"), "{said}");
    let row = status_row(&tc.status(), &who).unwrap();
    assert_eq!(row["lb"], "up draining", "{row}");
    assert_eq!(
        session(&client, &base).await.by,
        who,
        "drain keeps sticky users"
    );
    tc.ok(&["undrain", &who]);

    tc.ok(&["kill", &who]);
    // No waiting for a health check: the next request is redispatched.
    let next = session(&client, &base).await;
    assert_eq!(next.status, 200, "{}", next.body);
    assert_ne!(next.by, who, "served by a live node");
    assert!(!next.by.is_empty());
    assert_eq!(
        user_of(&next).as_deref(),
        Some("alice"),
        "the session survived the kill: {}",
        next.body
    );
    // And alice stays on her new node.
    let after = served_elsewhere(&client, &base, &who, Duration::from_secs(10)).await;
    assert_eq!(after.by, next.by);
    assert_eq!(st.lb.kind, sessionlab_lab::LbKind::Haproxy);
}

/// nginx has no cookie insert: the sticky mode runs the nodes with the
/// route suffix and nginx maps it to the node; login and the next request
/// go through nginx to the same node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_routes_a_login_by_the_session_ids_suffix() {
    require("nginx");
    let tc = TestCluster::up_with("sticky", 2, &["--lb", "nginx"]);
    let config = tc.ok(&["config", "lb"]);
    assert!(config.contains("no cookie-insert stickiness"), "{config}");
    assert!(
        config.contains("proxy_pass http://$sl_upstream;"),
        "{config}"
    );
    let base = tc.app_url();
    let client = browser();
    let who = login(&client, &base, "bob").await.by;
    for _ in 0..3 {
        let s = session(&client, &base).await;
        assert_eq!((s.status, s.by.as_str()), (200, who.as_str()), "{}", s.body);
        assert_eq!(user_of(&s).as_deref(), Some("bob"));
    }
    let said = tc.ok(&["drain", &who]);
    assert!(said.contains("SIGHUP"), "{said}");
    assert!(tc.ok(&["config", "lb"]).contains("fail_timeout=2s down;"));
    let status = tc.status();
    assert_eq!(status["lb_kind"], "nginx");
    assert_eq!(status_row(&status, "lb").unwrap()["health"], "ok");
}

#[test]
fn a_missing_lb_names_its_package_and_starts_nothing() {
    require_binaries();
    let tc = TestCluster::new();
    let mut cmd = tc.command(&["up", "--mode", "sticky", "--lb", "haproxy"]);
    cmd.env("SESSIONLAB_HAPROXY_BIN", tc.dir.path().join("no-haproxy"));
    let out = run_bounded(&mut cmd, Duration::from_secs(60));
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--lb haproxy:"), "{err}");
    assert!(err.contains("apt-get install haproxy"), "{err}");
    assert!(tc.run_folder().load().unwrap().is_none(), "nothing started");

    let mut cmd = tc.command(&["up", "--lb", "nginx", "--mode", "local"]);
    cmd.env("PATH", "/nonexistent")
        .env("SESSIONLAB_NGINX_BIN", "/nonexistent/nginx");
    let out = run_bounded(&mut cmd, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("apt-get install nginx"),
        "{err}"
    );

    let err = tc.fails(&["up", "--lb", "haproxy", "--lb-arg=--strategy=random"]);
    assert!(err.contains("--lb-arg configures sessionlab-lb"), "{err}");
    let err = tc.fails(&["up", "--lb", "traefik"]);
    assert!(
        err.contains("possible values: sessionlab, haproxy, nginx"),
        "{err}"
    );
}
