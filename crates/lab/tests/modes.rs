//! The `redis` and `jwt` modes with real processes: the lab's own
//! redis-server (or one given with --redis-url), logins through the LB that
//! survive a killed node, and the clear error when no Redis can be had.

mod support;

use std::time::Duration;

use serde_json::Value;
use sessionlab_testkit::eventually;
use support::*;

#[tokio::test]
async fn redis_mode_starts_its_redis_and_survives_a_node_but_not_redis() {
    let tc = TestCluster::up("redis", 2);
    let st = tc.state();
    let redis = st.redis.clone().expect("the lab started a Redis");
    let redis_pid = redis.process.expect("its pid is recorded");
    assert!(redis_pid.is_alive());
    assert!(tc.run_folder().log_path("redis").is_file());
    for n in &st.nodes {
        assert!(n.args.join(" ").contains("--store redis"), "{:?}", n.args);
        assert!(n.args.contains(&redis.url()), "{:?}", n.args);
    }

    let app = tc.app_url();
    let b = browser();
    login(&b, &app, "alice").await;
    let mut served_by = Vec::new();
    for _ in 0..2 {
        let s = increment(&b, &app).await;
        assert_eq!(s.status, 200, "{}", s.body);
        served_by.push(s.by);
    }
    served_by.sort();
    assert_eq!(served_by, ["node-1", "node-2"], "round-robin over both");
    let status = tc.status();
    let row = status_row(&status, "redis").expect("a status row for redis");
    assert_eq!(
        (row["state"].as_str(), row["health"].as_str()),
        (Some("running"), Some("ok"))
    );

    // A node dies: the other one has the same sessions (they are in Redis).
    tc.ok(&["kill", "node-1"]);
    let s = eventually(Duration::from_secs(15), "served by node-2", || async {
        let s = session(&b, &app).await;
        (s.by == "node-2" && s.status == 200).then_some(s)
    })
    .await;
    assert_eq!(user_of(&s).as_deref(), Some("alice"));
    assert_eq!(s.body["session"]["data"]["counter"], 2);
    tc.ok(&["restart", "node-1"]);

    // Redis dies: every node is degraded; sessions can't be read.
    tc.ok(&["kill", "redis"]);
    let s = session(&b, &app).await;
    assert_eq!(s.status, 503, "{}", s.body);
    assert_eq!(s.body["error"], "store_unavailable");
    // Each node notices within its health interval (1 s): degraded, not down.
    let node2 = tc.cluster_url("node-2");
    eventually(Duration::from_secs(10), "node-2 degraded", || async {
        let h: Value = reqwest::get(format!("{node2}/healthz"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (h["status"] == "degraded" && h["store"] == "redis unreachable").then_some(())
    })
    .await;
    eventually(
        Duration::from_secs(10),
        "both nodes degraded in status",
        || async {
            let status = tc.status();
            let rows = status["rows"].as_array().cloned().unwrap_or_default();
            let degraded = rows.iter().filter(|r| r["health"] == "degraded").count();
            (degraded == 2).then_some(())
        },
    )
    .await;
    tc.ok(&["restart", "redis"]);
    let s = eventually(Duration::from_secs(15), "nodes reconnected", || async {
        let s = session(&b, &app).await;
        (s.status == 200).then_some(s)
    })
    .await;
    assert_eq!(user_of(&s), None, "the restarted Redis kept nothing");

    let down = tc.ok(&["down"]);
    assert!(down.contains("redis"), "{down}");
    let pid = tc
        .run_folder()
        .load()
        .unwrap()
        .map(|s| s.redis.and_then(|r| r.process));
    assert!(pid.flatten().is_none_or(|p| !p.is_alive()));
}

#[test]
fn redis_mode_uses_a_given_redis_or_says_what_is_missing() {
    require_binaries();
    // No redis-server on PATH and no --redis-url: refused before anything starts.
    let tc = TestCluster::new();
    let err = tc.fails_with_path(&["up", "--mode", "redis", "--nodes", "1"], tc.dir.path());
    assert!(
        err.contains("redis-server is not on PATH") && err.contains("--redis-url"),
        "{err}"
    );
    assert!(tc.run_folder().load().unwrap().is_none());

    // --redis-url: the lab starts no Redis and the nodes use the given one.
    let server = sessionlab_testkit::RedisServer::start();
    let tc = TestCluster::new();
    let url = server.url();
    let out = tc.sessionlab(&["up", "--mode", "redis", "--nodes", "1", "--redis-url", &url]);
    server.kill();
    assert!(out.status.success(), "{}", text(&out));
    let st = tc.state();
    assert!(st.redis.is_none(), "no Redis of the lab's own");
    assert!(st.nodes[0].args.contains(&format!("--redis-url={url}")));
    let err = tc.fails(&["kill", "redis"]);
    assert!(err.contains("no Redis of its own"), "{err}");
}

async fn token_login(c: &reqwest::Client, app: &str) -> Value {
    let res = c
        .post(format!("{app}/auth/login"))
        .form(&[("username", "alice"), ("password", "sessionlab")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn bearer_get(c: &reqwest::Client, url: String, token: &str) -> (u16, String, Value) {
    let res = c.get(url).bearer_auth(token).send().await.unwrap();
    let by = res
        .headers()
        .get("x-served-by")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        res.status().as_u16(),
        by,
        res.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn jwt_mode_logs_in_through_the_lb_and_survives_a_node() {
    let tc = TestCluster::up("jwt", 2);
    let st = tc.state();
    for n in &st.nodes {
        let args = n.args.join(" ");
        assert!(args.contains("--auth jwt"), "{args}");
        assert!(
            !args.contains("--jwt-secret"),
            "the key stays off the command line"
        );
    }
    let app = tc.app_url();
    let c = reqwest::Client::new();
    let pair = token_login(&c, &app).await;
    let access = pair["access_token"].as_str().unwrap().to_owned();
    let res = c
        .post(format!("{app}/api/counter/increment"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    tc.ok(&["kill", "node-1"]);
    // node-2 knows the token (same key) and has the login's data (replicated).
    let (_, by, v) = eventually(Duration::from_secs(15), "node-2 serves the login", || {
        let (c, app, access) = (c.clone(), app.clone(), access.clone());
        async move {
            let r = bearer_get(&c, format!("{app}/api/session"), &access).await;
            (r.0 == 200 && r.1 == "node-2" && r.2["session"]["data"]["counter"] == 1).then_some(r)
        }
    })
    .await;
    assert_eq!(by, "node-2");
    assert_eq!(v["session"]["user"], "alice");

    // Refresh works on the survivor (the family record was replicated), and
    // logout deny-lists the token.
    let res = c
        .post(format!("{app}/auth/refresh"))
        .form(&[("refresh_token", pair["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let fresh: Value = res.json().await.unwrap();
    let fresh = fresh["access_token"].as_str().unwrap();
    let res = c
        .post(format!("{app}/auth/logout"))
        .bearer_auth(fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (s, _, v) = bearer_get(&c, format!("{app}/api/session"), fresh).await;
    assert_eq!((s, v["reason"].as_str()), (401, Some("revoked")));
}
