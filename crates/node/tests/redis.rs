//! `--store redis` against a real `redis-server`: nodes share sessions, the
//! compare-and-set write keeps concurrent increments (and without it they
//! get lost), and a Redis that dies and returns is survived.

use std::time::Duration;

use serde_json::Value;
use sessionlab_node::{NodeOptions, StoreOptions, wire};
use sessionlab_session::RedisTarget;
use sessionlab_testkit::RedisServer;
use sessionlab_testkit::node::*;

/// A node on `redis`; `cas` is `--redis-cas` (`on` or `off`).
fn redis_config(id: &str, redis: &RedisServer, cas: &str) -> NodeOptions {
    let url = redis.url();
    config_with(
        id,
        &["--store", "redis", "--redis-url", &url, "--redis-cas", cas],
    )
}

async fn redis_node(id: &str, redis: &RedisServer, cas: &str) -> TestNode {
    let cfg = redis_config(id, redis, cas);
    let wiring = wire(&cfg).await.expect("redis wiring");
    TestNode::start_with(cfg, wiring).await
}

async fn metric(c: &reqwest::Client, node: &TestNode, name: &str) -> u64 {
    sessionlab_testkit::scrape(c, &format!("{}/metrics", node.cluster), name).await as u64
}

/// Wait until `/healthz` on the cluster port says `want`.
async fn wait_health(c: &reqwest::Client, node: &TestNode, want: &str) -> Value {
    let what = format!("/healthz saying {want}");
    sessionlab_testkit::eventually(Duration::from_secs(15), &what, || async {
        let res = c.get(format!("{}/healthz", node.app)).send().await.unwrap();
        assert_eq!(res.status(), 200, "degraded or not, /healthz stays 200");
        let v: Value = res.json().await.unwrap();
        (v["status"] == want).then_some(v)
    })
    .await
}

#[tokio::test]
async fn two_nodes_sharing_one_redis_see_the_same_session() {
    let redis = RedisServer::start();
    let a = redis_node("node-a", &redis, "on").await;
    let b = redis_node("node-b", &redis, "on").await;
    let c = client();

    let res = login(&c, &a.app, "", "alice", false).await;
    assert_eq!(res.status(), 303);
    let cookie = session_cookie(res.headers()).unwrap();
    let (n, h) = increment(&c, &b.app, &cookie).await;
    assert_eq!(n, 1);
    assert_eq!(h["x-served-by"], "node-b");
    assert_eq!(h["x-replication-ack"], "none");
    let v = session(&c, &a.app, &cookie).await;
    assert_eq!(v["node_id"], "node-a");
    assert_eq!(v["session"]["user"], "alice");
    assert_eq!(v["session"]["data"]["counter"], 1);

    // Logout on one node ends the session on both: one store.
    let res = b.app_client(&c).post("/logout", &cookie).await;
    assert_eq!(res.status(), 303);
    assert_eq!(session(&c, &a.app, &cookie).await["session"], Value::Null);

    // The admin view lists Redis's sessions (none left) and says redis.
    let st = status(&c, &a).await;
    assert_eq!(st["store"], "redis");
    assert_eq!(st["sessions"], 0);
    wait_health(&c, &a, "ok").await;
}

/// 16 clients increment one session's counter at once, alternating between
/// two nodes. Returns (answers 200, answers 409, the final counter).
async fn hammer(a: &TestNode, b: &TestNode, cookie: &str) -> (u64, u64, u64) {
    const CLIENTS: usize = 16;
    const EACH: usize = 25;
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let node = if i % 2 == 0 { a } else { b };
        let app = node.app_client(&client());
        let cookie = cookie.to_owned();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut conflict) = (0u64, 0u64);
            for _ in 0..EACH {
                let res = app.post("/api/counter/increment", &cookie).await;
                match res.status().as_u16() {
                    200 => ok += 1,
                    409 => {
                        let v: Value = res.json().await.unwrap();
                        assert_eq!(v["error"], "conflict");
                        conflict += 1;
                    }
                    s => panic!("unexpected status {s}"),
                }
            }
            (ok, conflict)
        }));
    }
    let (mut ok, mut conflict) = (0, 0);
    for t in tasks {
        let (o, c) = t.await.unwrap();
        ok += o;
        conflict += c;
    }
    let v = session(&client(), &a.app, cookie).await;
    let counter = v["session"]["data"]["counter"].as_u64().unwrap();
    (ok, conflict, counter)
}

async fn logged_in_cookie(node: &TestNode) -> String {
    let res = login(&client(), &node.app, "", "alice", false).await;
    session_cookie(res.headers()).unwrap()
}

/// Two nodes on `redis` with `--redis-cas cas`, alice logged in on
/// node-a, and [`hammer`] over both: the nodes and what it counted.
async fn hammered(redis: &RedisServer, cas: &str) -> (TestNode, TestNode, (u64, u64, u64)) {
    let a = redis_node("node-a", redis, cas).await;
    let b = redis_node("node-b", redis, cas).await;
    let cookie = logged_in_cookie(&a).await;
    let counts = hammer(&a, &b, &cookie).await;
    (a, b, counts)
}

#[tokio::test]
async fn with_cas_concurrent_increments_are_all_kept() {
    let redis = RedisServer::start();
    let (a, b, (ok, conflict, counter)) = hammered(&redis, "on").await;
    println!("CAS on: {ok} increments acknowledged, {conflict} answered 409, counter {counter}");
    assert_eq!(ok + conflict, 400);
    assert_eq!(
        counter, ok,
        "every increment answered 200 is in the store, no more, no less"
    );
    let c = client();
    let conflicts = metric(&c, &a, "sessionlab_redis_conflicts_total").await
        + metric(&c, &b, "sessionlab_redis_conflicts_total").await;
    let retries = metric(&c, &a, "sessionlab_session_write_retries_total").await
        + metric(&c, &b, "sessionlab_session_write_retries_total").await;
    println!("CAS on: {conflicts} conflicts, {retries} replays");
    assert!(conflicts > 0, "16 concurrent writers never collided");
    // Each refused write was either replayed once more or, after the last
    // retry, answered 409.
    assert_eq!(conflicts, retries + conflict);
}

#[tokio::test]
async fn without_cas_concurrent_increments_get_lost() {
    let redis = RedisServer::start();
    let (a, _b, (ok, conflict, counter)) = hammered(&redis, "off").await;
    let lost = ok - counter;
    println!("CAS off: {ok} increments acknowledged, counter {counter}: {lost} lost updates");
    assert_eq!((ok, conflict), (400, 0), "no CAS: every write is accepted");
    assert!(
        counter < ok,
        "last write wins on the whole session: some acknowledged increments must be lost"
    );
    let c = client();
    assert_eq!(metric(&c, &a, "sessionlab_redis_conflicts_total").await, 0);
}

#[tokio::test]
async fn redis_down_is_503_json_the_node_stays_up_and_recovers() {
    let redis = RedisServer::start();
    let port = redis.port();
    let node = redis_node("node-a", &redis, "on").await;
    let c = client();
    let cookie = logged_in_cookie(&node).await;
    wait_health(&c, &node, "ok").await;

    redis.kill();
    let app = node.app_client(&c);
    let res = app.get("/api/session", &cookie).await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["x-served-by"], "node-a");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"], "store_unavailable");
    assert!(v["detail"].as_str().unwrap().contains("unavailable"), "{v}");
    // Requests that need no session still work; health says degraded.
    let res = app.get("/", "").await;
    assert_eq!(res.status(), 200);
    let h = wait_health(&c, &node, "degraded").await;
    assert_eq!(h["store"], "redis unreachable");
    let st = status(&c, &node).await;
    assert_eq!(st["store_ok"], false, "{st}");
    assert_eq!(st["store_problem"], "redis unreachable");
    assert_eq!(metric(&c, &node, "sessionlab_redis_up").await, 0);

    // Redis returns (empty: it kept nothing on disk); the node reconnects
    // by itself.
    let _redis = RedisServer::start_on(port);
    wait_health(&c, &node, "ok").await;
    let v = session(&c, &node.app, &cookie).await;
    assert_eq!(v["session"], Value::Null, "the restarted Redis is empty");
    let cookie = logged_in_cookie(&node).await;
    let (n, _) = increment(&c, &node.app, &cookie).await;
    assert_eq!(n, 1);
    assert_eq!(metric(&c, &node, "sessionlab_redis_up").await, 1);
}

#[tokio::test]
async fn the_node_starts_while_redis_is_down_and_bad_urls_name_the_flag() {
    // Nothing listens on this port: the node must start anyway, degraded.
    let port = sessionlab_testkit::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let cfg = config_with("node-a", &["--store", "redis", "--redis-url", &url]);
    let node = TestNode::start_with(cfg.clone(), wire(&cfg).await.unwrap()).await;
    let c = client();
    wait_health(&c, &node, "degraded").await;
    let res = login(&c, &node.app, "", "alice", false).await;
    assert_eq!(res.status(), 503);

    let mut bad = cfg;
    let StoreOptions::Redis(redis) = &mut bad.store else {
        panic!("not redis: {:?}", bad.store);
    };
    redis.target = RedisTarget::Url("postgres://nope".into());
    let err = wire(&bad).await.err().expect("refused");
    assert!(err.to_string().contains("--redis-url"), "{err}");
}

#[tokio::test]
async fn with_redis_wait_a_write_no_replica_confirmed_is_answered_and_counted() {
    // A lone Redis has no replica: WAIT 1 times out on every write.
    let redis = RedisServer::start();
    let url = redis.url();
    let cfg = config_with(
        "node-a",
        &[
            "--store",
            "redis",
            "--redis-url",
            &url,
            "--redis-wait",
            "1,20ms",
        ],
    );
    let node = TestNode::start_with(cfg.clone(), wire(&cfg).await.unwrap()).await;
    let c = client();
    let res = login(&c, &node.app, "", "alice", false).await;
    assert_eq!(res.status(), 303);
    let cookie = session_cookie(res.headers()).unwrap();
    let (n, h) = increment(&c, &node.app, &cookie).await;
    assert_eq!(n, 1, "the write stands: Redis cannot undo it");
    assert_eq!(h["x-replication-ack"], "timeout; acked=0; expected=1");
    // The login and the increment: two writes nobody confirmed.
    let unreplicated = metric(&c, &node, "sessionlab_redis_unreplicated_writes_total").await;
    assert_eq!(unreplicated, 2);
}
