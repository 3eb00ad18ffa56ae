//! The admin API: list, add, remove, drain, undrain, requests log, metrics,
//! bad input and the admin token.

use std::time::Duration;

use http::Method;
use sessionlab_testkit::{Http, echo, lb, lb_over, lb_over_echoes, until};

mod common;
use common::{JSON, add_backend, admin, backend_action, remove_backend};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_add_remove_and_route_to_new_backends() {
    let (a, b) = (echo("node-1").await, echo("node-2").await);
    let lb = lb_over(&[a.spec()], &["--strategy", "sticky-cookie"]).await;
    let http = Http::default();

    let list = http.get(&lb.admin_url("/admin/v1/backends"), &[]).await;
    assert_eq!(list.status, 200);
    let list = list.json();
    assert_eq!(list["strategy"], "sticky-cookie");
    let node = &list["backends"][0];
    assert_eq!(node["id"], "node-1");
    assert_eq!(node["addr"], a.addr.to_string());
    assert_eq!(node["state"], "up");
    assert_eq!(node["draining"], false);
    for field in [
        "in_flight",
        "requests",
        "errors",
        "latency_ms_p50",
        "latency_ms_p99",
        "health_history",
        "requests_per_sec",
    ] {
        assert!(node.get(field).is_some(), "missing {field}: {node}");
    }

    // Scale out.
    let body = format!(r#"{{"id":"node-2","addr":"{}"}}"#, b.addr);
    let r = add_backend(&http, &lb, &body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["id"], "node-2");
    let r = add_backend(&http, &lb, &body).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["error"], "duplicate");
    until(
        Duration::from_secs(5),
        "new backend gets new users",
        || async { http.get(&lb.url("/"), &[]).await.served_by() == "node-2" },
    )
    .await;

    // Scale in.
    let r = remove_backend(&http, &lb, "node-2").await;
    assert_eq!(r.status, 200);
    let before = b.state.requests();
    for _ in 0..4 {
        assert_eq!(http.get(&lb.url("/"), &[]).await.served_by(), "node-1");
    }
    assert_eq!(b.state.requests(), before);
    let r = remove_backend(&http, &lb, "node-2").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "not_found");
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_and_undrain() {
    let ([_a, _b], lb) = lb_over_echoes(&[]).await;
    let http = Http::default();

    let r = backend_action(&http, &lb, "node-1", "drain").await;
    assert_eq!(r.json()["draining"], true);
    for _ in 0..4 {
        assert_eq!(http.get(&lb.url("/"), &[]).await.served_by(), "node-2");
    }
    let r = backend_action(&http, &lb, "node-1", "undrain").await;
    assert_eq!(r.json()["draining"], false);
    let mut served = std::collections::HashSet::new();
    for _ in 0..4 {
        served.insert(http.get(&lb.url("/"), &[]).await.served_by().to_string());
    }
    assert!(served.contains("node-1"));
    let r = backend_action(&http, &lb, "node-9", "drain").await;
    assert_eq!(r.status, 404);
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_admin_input_is_a_4xx_with_json() {
    let lb = lb(&[]).await;
    let http = Http::default();
    let post = |body: &'static str| add_backend(&http, &lb, body);
    for (body, error) in [
        ("not json", "bad_json"),
        (r#"{"id":"node-1"}"#, "bad_json"),
        (
            r#"{"id":"node-1","addr":"127.0.0.1:1","weight":3}"#,
            "bad_json",
        ),
        (r#"{"id":"node 1","addr":"127.0.0.1:1"}"#, "bad_backend"),
        (r#"{"id":"node-1","addr":"localhost"}"#, "bad_backend"),
    ] {
        let r = post(body).await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.json()["error"], error, "{body}");
    }
    let r = http.get(&lb.admin_url("/admin/v1/nope"), &[]).await;
    assert_eq!(r.status, 404);
    let r = admin(&http, &lb, Method::PUT, "/admin/v1/backends").await;
    assert_eq!(r.status, 405);
    let r = http
        .get(&lb.admin_url("/admin/v1/requests?limit=many"), &[])
        .await;
    assert_eq!(r.status, 400);
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_guards_admin_calls_only() {
    let lb = lb(&["--admin-token", "s3cret"]).await;
    let http = Http::default();
    let url = lb.admin_url("/admin/v1/backends");
    assert_eq!(http.get(&url, &[]).await.status, 401);
    assert_eq!(
        http.get(&url, &[("authorization", "Bearer wrong")])
            .await
            .status,
        401
    );
    assert_eq!(
        http.get(&url, &[("authorization", "s3cret")]).await.status,
        401
    );
    assert_eq!(
        http.get(&url, &[("authorization", "Bearer s3cret")])
            .await
            .status,
        200
    );
    let r = add_backend(&http, &lb, r#"{"id":"x","addr":"127.0.0.1:1"}"#).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "unauthorized");
    assert_eq!(http.get(&lb.admin_url("/healthz"), &[]).await.status, 200);
    assert_eq!(http.get(&lb.admin_url("/metrics"), &[]).await.status, 200);
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_the_requests_log_reflect_traffic() {
    let ([_a], lb) = lb_over_echoes(&[]).await;
    let http = Http::default();
    for path in ["/one", "/two?token=secret", "/three"] {
        assert_eq!(http.get(&lb.url(path), &[]).await.status, 200);
    }
    let log = http
        .get(&lb.admin_url("/admin/v1/requests?limit=2"), &[])
        .await
        .json();
    let entries = log["requests"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["path"], "/three");
    assert_eq!(entries[1]["path"], "/two", "query strings are not logged");
    assert_eq!(entries[0]["backend"], "node-1");
    assert_eq!(entries[0]["status"], 200);
    assert_eq!(entries[0]["method"], "GET");
    assert_eq!(entries[0]["failover"], false);

    let metrics = http.get(&lb.admin_url("/metrics"), &[]).await.body;
    assert!(
        metrics.contains("sessionlab_lb_requests_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sessionlab_lb_backend_requests_total{backend="node-1"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sessionlab_lb_backend_up{backend="node-1"} 1"#),
        "{metrics}"
    );
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_backend_keeps_its_nodes_cluster_listener_for_readers() {
    let (a, c) = (echo("node-1").await, echo("node-3").await);
    let lb = lb_over(&[a.spec()], &[]).await;
    let http = Http::default();
    let url = lb.admin_url("/admin/v1/backends");

    // The add call takes the node's cluster listener too, and the listing
    // shows it (the dashboard reads it there); remove forgets it.
    let body = format!(
        r#"{{"id":"node-3","addr":"{}","admin":"127.0.0.1:9"}}"#,
        c.addr
    );
    let r = add_backend(&http, &lb, &body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["admin"], "127.0.0.1:9");
    let list = http.get(&url, &[]).await.json();
    assert_eq!(list["backends"][0]["admin"], serde_json::Value::Null);
    assert_eq!(list["backends"][1]["admin"], "127.0.0.1:9");
    let r = remove_backend(&http, &lb, "node-3").await;
    assert_eq!(r.status, 200);
    let bad = r#"{"id":"node-4","addr":"127.0.0.1:8084","admin":"not-an-address"}"#;
    let r = add_backend(&http, &lb, bad).await;
    assert_eq!(r.status, 400);
    let list = http.get(&url, &[]).await.json();
    assert_eq!(
        list["backends"].as_array().unwrap().len(),
        1,
        "a refused add adds nothing"
    );
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_totals_are_served_as_histograms() {
    use base64::Engine as _;
    use hdrhistogram::serialization::Deserializer;

    let ([_a], lb) = lb_over_echoes(&[]).await;
    let http = Http::default();
    for _ in 0..5 {
        assert_eq!(http.get(&lb.url("/x"), &[]).await.status, 200);
    }
    let r = http.get(&lb.admin_url("/admin/v1/latency"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["encoding"], "hdrhistogram-v2-base64");
    let b = &body["backends"][0];
    assert_eq!(
        (b["id"].as_str(), b["requests"].as_u64()),
        (Some("node-1"), Some(5))
    );
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b["histogram"].as_str().unwrap())
        .unwrap();
    let h: hdrhistogram::Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .unwrap();
    assert_eq!(h.len(), 5, "one latency per request");
    let r = admin(&http, &lb, Method::POST, "/admin/v1/latency").await;
    assert_eq!(r.status, 405);
    lb.stop().await;
}

/// The attack: a web page the operator visits posts to the admin API
/// (`text/plain` needs no CORS preflight), or rebinds its own name to
/// 127.0.0.1. Each is refused before any route runs, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_web_sites_cannot_drive_the_admin_api() {
    let (a, evil) = (echo("node-1").await, echo("evil").await);
    let lb = lb_over(&[a.spec()], &[]).await;
    let http = Http::default();
    // What an attack could change: which backends there are, and their drain
    // flags (health history and counters move on their own).
    let list = || async {
        let list = admin(&http, &lb, Method::GET, "/admin/v1/backends")
            .await
            .json();
        let backends = list["backends"].as_array().cloned().unwrap_or_default();
        backends
            .iter()
            .map(|b| {
                (
                    b["id"].to_string(),
                    b["addr"].to_string(),
                    b["draining"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    let before = list().await;

    let body = format!(r#"{{"id":"evil","addr":"{}"}}"#, evil.addr);
    let from_evil = [
        ("origin", "http://evil.example"),
        ("content-type", "text/plain"),
    ];
    let r = http
        .send(
            Method::POST,
            &lb.admin_url("/admin/v1/backends"),
            &from_evil,
            body.as_bytes(),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"], "cross_origin");
    let url = lb.admin_url("/admin/v1/backends/node-1/drain");
    let r = http.send(Method::POST, &url, &from_evil, b"").await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = http
        .send(Method::POST, &url, &[("sec-fetch-site", "cross-site")], b"")
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // DNS rebinding: the page's own name, pointed at 127.0.0.1.
    let port = lb.admin.port();
    let rebound = format!("evil.example:{port}");
    let r = http
        .get(&lb.admin_url("/admin/v1/requests"), &[("host", &rebound)])
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"], "foreign_host");
    let r = http
        .get(&lb.admin_url("/metrics"), &[("host", &rebound)])
        .await;
    assert_eq!(r.status, 403, "every route is guarded");

    // A form post with the right origin but no JSON is refused too.
    let own = format!("http://127.0.0.1:{port}");
    let r = http
        .send(
            Method::POST,
            &lb.admin_url("/admin/v1/backends"),
            &[("origin", &own), ("content-type", "text/plain")],
            body.as_bytes(),
        )
        .await;
    assert_eq!(r.status, 415, "{}", r.body);

    assert_eq!(list().await, before, "nothing changed");
    assert_eq!(evil.state.requests(), 0);
    for _ in 0..4 {
        assert_eq!(http.get(&lb.url("/"), &[]).await.served_by(), "node-1");
    }
    // The operator's own page and tools still get through.
    let r = http
        .send(
            Method::POST,
            &lb.admin_url("/admin/v1/backends/node-1/drain"),
            &[("origin", &own), ("host", &format!("localhost:{port}"))],
            b"",
        )
        .await;
    assert_eq!(r.status, 403, "Origin must match Host");
    let r = http
        .send(
            Method::POST,
            &lb.admin_url("/admin/v1/backends"),
            &[("origin", &own), JSON],
            body.as_bytes(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_backend_starts_down_until_its_checks_pass() {
    let (a, b) = (echo("node-1").await, echo("node-2").await);
    let lb = lb_over(&[a.spec()], &["--health-interval", "2s"]).await;
    let http = Http::default();
    let body = format!(r#"{{"id":"node-2","addr":"{}"}}"#, b.addr);
    let r = add_backend(&http, &lb, &body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["state"], "down", "unchecked: no traffic yet");
    for _ in 0..4 {
        assert_eq!(http.get(&lb.url("/"), &[]).await.served_by(), "node-1");
    }
    assert_eq!(b.state.requests(), 0);
    sessionlab_testkit::until_backend(&http, &lb, "node-2", "up", Duration::from_secs(15)).await;
    until(Duration::from_secs(5), "node-2 takes new users", || async {
        http.get(&lb.url("/"), &[]).await.served_by() == "node-2"
    })
    .await;
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requests_log_shows_only_an_id_prefix_of_path_parameters() {
    let ([_a], lb) = lb_over_echoes(&[]).await;
    let http = Http::default();
    let sid = "Xa81kqZP0f3mLw9sT4vB7nQe2YhR6uJc";
    let path = format!("/cart;sid={sid}/add");
    assert_eq!(http.get(&lb.url(&path), &[]).await.status, 200);
    let r = admin(&http, &lb, Method::GET, "/admin/v1/requests?limit=1").await;
    assert!(!r.body.contains(sid), "a whole id in the log: {}", r.body);
    assert_eq!(r.json()["requests"][0]["path"], "/cart;sid=Xa81kq…/add");
    lb.stop().await;
}
