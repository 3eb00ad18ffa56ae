//! The cluster listener (health, metrics, admin) and the hooks later
//! features plug into: readiness, extra cluster routes, status peers, and a
//! store shared between nodes.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use serde_json::Value;
use sessionlab_node::{PeerStatus, Readiness, StatusProvider, wire};
use sessionlab_session::{MemoryStore, SessionStore};
use sessionlab_testkit::node::*;

#[tokio::test]
async fn metrics_and_admin_live_on_the_cluster_port_only() {
    let node = TestNode::start(config("node-1")).await;
    let c = client();
    let res = login(&c, &node.app, "", "alice", false).await;
    let cookie = session_cookie(res.headers()).unwrap();
    let full_id = cookie.trim_start_matches("SLSESSION=").to_owned();
    increment(&c, &node.app, &cookie).await;

    for port in [&node.app, &node.cluster] {
        let res = c.get(format!("{port}/healthz")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.json::<Value>().await.unwrap()["status"], "ok");
    }

    let metrics = get_text(&c, format!("{}/metrics", node.cluster)).await;
    for series in [
        r#"sessionlab_http_requests_total{node="node-1",route="api_counter",status="200"} 1"#,
        r#"sessionlab_logins_total{node="node-1",result="ok"} 1"#,
        r#"sessionlab_sessions{node="node-1"} 1"#,
        "sessionlab_session_bytes{",
        "sessionlab_sessions_expired_total{",
        "sessionlab_http_request_duration_seconds_bucket{",
    ] {
        assert!(
            metrics.contains(series),
            "{series} missing from:\n{metrics}"
        );
    }

    let status = status(&c, &node).await;
    assert_eq!(status["node_id"], "node-1");
    assert_eq!(status["store"], "memory");
    assert_eq!(status["auth"], "session");
    assert_eq!(status["tracking"], "cookie");
    assert_eq!(status["ready"], true);
    assert_eq!(status["sessions"], 1);
    assert!(status["session_bytes"].as_u64().unwrap() > 0);
    assert!(status["uptime_ms"].is_u64());
    if cfg!(target_os = "linux") {
        assert!(status["memory_rss_bytes"].as_u64().unwrap() > 0, "{status}");
    }
    assert_eq!(status["peers"], serde_json::json!([]));

    let cluster = node.cluster_client(&c);
    let text = cluster.text("/admin/v1/sessions?limit=10", "").await;
    assert!(
        !text.contains(&full_id),
        "admin views never show a whole id"
    );
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list["node_id"], "node-1");
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["user"], "alice");
    assert_eq!(sessions[0]["id_prefix"], &full_id[..6]);

    // None of it on the app port.
    for path in ["/metrics", "/admin/v1/status", "/admin/v1/sessions"] {
        let res = node.app_client(&c).get(path, &cookie).await;
        assert_eq!(res.status(), 404, "{path}");
        assert_eq!(res.headers()["x-served-by"], "node-1");
    }
    node.stop().await;
}

struct FakePeers;
impl StatusProvider for FakePeers {
    fn peers(&self) -> Vec<PeerStatus> {
        vec![PeerStatus {
            id: "node-2".into(),
            addr: "127.0.0.1:9082".into(),
            up: true,
            queue_depth: 3,
            needs_resync: false,
        }]
    }
}

#[tokio::test]
async fn store_wiring_hooks_readiness_routes_and_peers() {
    let cfg = config("node-1");
    let mut wiring = wire(&cfg).await.unwrap();
    let readiness = Readiness::not_ready();
    wiring.readiness = readiness.clone();
    wiring.status = Some(Arc::new(FakePeers));
    wiring.cluster_routes = Some(Arc::new(|c: &mut web::ServiceConfig| {
        c.route(
            "/cluster/v1/ping",
            web::get().to(|| async { HttpResponse::Ok().body("pong") }),
        );
    }));
    let node = TestNode::start_with(cfg, wiring).await;
    let c = client();

    // Not ready: both health endpoints say so.
    for port in [&node.app, &node.cluster] {
        let res = c.get(format!("{port}/healthz")).send().await.unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(res.json::<Value>().await.unwrap()["status"], "starting");
    }
    readiness.set_ready(true);
    for port in [&node.app, &node.cluster] {
        let res = c.get(format!("{port}/healthz")).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }

    let ping = node.cluster_client(&c).text("/cluster/v1/ping", "").await;
    assert_eq!(ping, "pong");
    let res = node.app_client(&c).get("/cluster/v1/ping", "").await;
    assert_eq!(res.status(), 404, "cluster routes are not on the app port");

    let status = status(&c, &node).await;
    assert_eq!(status["peers"][0]["id"], "node-2");
    assert_eq!(status["peers"][0]["queue_depth"], 3);
    node.stop().await;
}

#[tokio::test]
async fn a_shared_store_serves_the_session_on_another_node_and_moves_the_route() {
    // Two nodes over one store: what a replicated or Redis store gives.
    let store = Arc::new(MemoryStore::new(Default::default()));
    let wiring = |id: &str| {
        let cfg = config_with(id, &["--route-suffix"]);
        let store = store.clone();
        async move {
            let mut w = wire(&cfg).await.unwrap();
            w.store = store as Arc<dyn SessionStore>;
            (cfg, w)
        }
    };
    let (cfg1, w1) = wiring("node-1").await;
    let (cfg2, w2) = wiring("node-2").await;
    let n1 = TestNode::start_with(cfg1, w1).await;
    let n2 = TestNode::start_with(cfg2, w2).await;
    let c = client();

    let (_, h) = increment(&c, &n1.app, "").await;
    let cookie = session_cookie(&h).unwrap();
    assert!(cookie.ends_with(".node-1"));
    // node-1 "failed"; the balancer sent the user to node-2.
    let (n, h) = increment(&c, &n2.app, &cookie).await;
    assert_eq!(n, 2, "node-2 found the session");
    let moved = session_cookie(&h).expect("node-2 re-issues the cookie with its route");
    assert!(moved.ends_with(".node-2"));
    assert_eq!(
        moved.trim_end_matches(".node-2"),
        cookie.trim_end_matches(".node-1"),
        "same session id, new route"
    );
    n1.stop().await;
    n2.stop().await;
}
