//! Failover and its limits: connect failures move on for any method,
//! failures after sending move on only for idempotent methods, retries are
//! bounded, and with nothing healthy the LB answers 503 saying why.

use std::time::Duration;

use http::Method;
use sessionlab_testkit::{
    DeadAddr, Echo, Http, Lb, backend_state, dead_addr, echo, lb, lb_over, lb_over_echoes, until,
    until_backend,
};

/// `node-1`, where nothing listens, and `node-2`, a live echo, behind an LB
/// whose active checks run once a minute and that marks a backend down
/// after `fall` failures.
async fn dead_and_live(fall: &str) -> (DeadAddr, Echo, Lb) {
    let dead = dead_addr();
    let live = echo("node-2").await;
    let backends = [format!("node-1={}", dead.addr), live.spec()];
    let flags = ["--health-interval", "60s", "--health-fall", fall];
    let lb = lb_over(&backends, &flags).await;
    (dead, live, lb)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failure_moves_to_the_next_candidate_for_any_method() {
    // A long health interval: only the failover path is under test here.
    let (_dead, live, lb) = dead_and_live("100").await;
    let http = Http::default();
    for method in [Method::POST, Method::PATCH, Method::GET] {
        for _ in 0..2 {
            let r = http
                .send(method.clone(), &lb.url("/"), &[], b"payload")
                .await;
            assert_eq!(r.status, 200, "{method}");
            assert_eq!(r.served_by(), "node-2");
        }
    }
    assert_eq!(live.state.requests(), 6);
    let log = http
        .get(&lb.admin_url("/admin/v1/requests?limit=6"), &[])
        .await
        .json();
    let failovers = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["failover"] == true)
        .count();
    assert_eq!(
        failovers, 3,
        "every other request tried node-1 first: {log}"
    );
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_idempotent_requests_are_not_retried_after_sending() {
    let ([a, b], lb) = lb_over_echoes(&[]).await;
    let http = Http::default();

    // The backend reads the request, then drops the connection.
    let r = http
        .send(Method::POST, &lb.url("/?drop=1"), &[], b"order=1")
        .await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"], "upstream_failed");
    assert_eq!(
        a.state.requests() + b.state.requests(),
        1,
        "POST sent once only"
    );

    // An idempotent method is retried on the next candidate.
    let r = http.send(Method::PUT, &lb.url("/?drop=1"), &[], b"x").await;
    assert_eq!(r.status, 502);
    assert_eq!(
        a.state.requests() + b.state.requests(),
        3,
        "PUT tried on both"
    );
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_bounded() {
    let (echoes, lb) = lb_over_echoes::<3>(&["--retries", "1"]).await;
    let http = Http::default();
    let r = http.get(&lb.url("/?drop=1"), &[]).await;
    assert_eq!(r.status, 502);
    let total: u64 = echoes.iter().map(|e| e.state.requests()).sum();
    assert_eq!(total, 2, "1 try + 1 retry");
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_down_is_a_503_naming_the_reason() {
    let ([a, b], lb) = lb_over_echoes(&["--health-interval", "50ms", "--health-fall", "2"]).await;
    let http = Http::default();
    a.state.set_healthy(false);
    b.state.set_healthy(false);
    for id in ["node-1", "node-2"] {
        until_backend(&http, &lb, id, "down", Duration::from_secs(5)).await;
    }
    let r = http.get(&lb.url("/"), &[]).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.headers["content-type"], "application/json");
    let body = r.json();
    assert_eq!(body["error"], "all_backends_down");
    assert_eq!(body["origin"], "balancer");
    assert_eq!(body["detail"], "all backends are down");

    // Back up after `rise` good checks.
    a.state.set_healthy(true);
    until(Duration::from_secs(5), "node-1 up again", || async {
        http.get(&lb.url("/"), &[]).await.status == 200
    })
    .await;
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_backends_is_a_503_too() {
    let lb = lb(&[]).await;
    let r = Http::default().get(&lb.url("/"), &[]).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "no_backends");
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_mark_a_backend_down_passively() {
    // Active checks every minute: any flip within the test is passive.
    let (_dead, _live, lb) = dead_and_live("3").await;
    let http = Http::default();
    // The first active check runs at start and fails (1 of 3).
    until(
        Duration::from_secs(5),
        "first active check done",
        || async {
            let list = http
                .get(&lb.admin_url("/admin/v1/backends"), &[])
                .await
                .json();
            list["backends"][0]["health_history"]
                .as_array()
                .is_some_and(|h| !h.is_empty())
        },
    )
    .await;
    for _ in 0..4 {
        assert_eq!(http.get(&lb.url("/"), &[]).await.status, 200);
    }
    assert_eq!(
        backend_state(&http, &lb, "node-1").await.as_deref(),
        Some("down")
    );
    let errors_before = http
        .get(&lb.admin_url("/admin/v1/backends"), &[])
        .await
        .json()["backends"][0]["errors"]
        .clone();
    for _ in 0..4 {
        assert_eq!(http.get(&lb.url("/"), &[]).await.served_by(), "node-2");
    }
    let errors_after = http
        .get(&lb.admin_url("/admin/v1/backends"), &[])
        .await
        .json()["backends"][0]["errors"]
        .clone();
    assert_eq!(
        errors_before, errors_after,
        "a down backend gets no traffic"
    );
    lb.stop().await;
}
