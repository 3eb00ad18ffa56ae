//! HTTPS at the LB: TLS termination, X-Forwarded-Proto, HSTS, the redirect
//! from plain HTTP, trusted proxies, and a garbage client hello.

use std::time::Duration;

use sessionlab_testkit::{Http, Lb, TestCerts, lb_over_echoes, scrape};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn metric(lb: &Lb, series: &str) -> f64 {
    scrape(
        &sessionlab_testkit::client(),
        &lb.admin_url("/metrics"),
        series,
    )
    .await
}

fn flags<'a>(tls: &'a [String], more: &[&'a str]) -> Vec<&'a str> {
    tls.iter()
        .map(String::as_str)
        .chain(more.iter().copied())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_forwarded_as_https_with_hsts_and_plain_as_http_without() {
    let certs = TestCerts::new();
    let tls = certs.lb_flags();
    let ([_node], lb) = lb_over_echoes(&flags(
        &tls,
        &["--hsts-max-age", "300s", "--body-limit", "4"],
    ))
    .await;
    let https = certs.client();
    let r = https
        .get(lb.tls_url("/_echo/headers"))
        .header("x-forwarded-proto", "http")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["strict-transport-security"], "max-age=300");
    let seen = r.text().await.unwrap();
    assert!(seen.contains("x-forwarded-proto: https\n"), "{seen}");
    assert!(!seen.contains("x-forwarded-proto: http\n"), "{seen}");

    let r = Http::default().get(&lb.url("/_echo/headers"), &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.headers.get("strict-transport-security").is_none());
    assert!(r.body.contains("x-forwarded-proto: http\n"), "{}", r.body);

    // The LB's own answers over HTTPS carry HSTS too.
    let too_large = https
        .post(lb.tls_url("/_echo/body"))
        .body("too large")
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), 413);
    assert!(
        too_large
            .headers()
            .contains_key("strict-transport-security")
    );
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_http_answers_308_to_the_same_path_over_https() {
    let certs = TestCerts::new();
    let tls = certs.lb_flags();
    let ([node], lb) = lb_over_echoes(&flags(&tls, &["--redirect-http"])).await;
    let tls_port = lb.tls_addr.unwrap().port();
    let r = Http::default().get(&lb.url("/cart?x=1"), &[]).await;
    assert_eq!(r.status, 308);
    assert_eq!(
        r.headers["location"],
        format!("https://127.0.0.1:{tls_port}/cart?x=1").as_str()
    );
    assert_eq!(
        node.state.requests(),
        0,
        "a redirected request is not forwarded"
    );
    // Following it works.
    let r = certs
        .client()
        .get(format!("https://127.0.0.1:{tls_port}/cart?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-served-by"], "node-1");
    assert_eq!(
        metric(&lb, "sessionlab_lb_https_redirects_total").await,
        1.0
    );
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_keeps_its_forwarded_headers() {
    let ([_node], lb) = lb_over_echoes(&["--trusted-proxy", "127.0.0.0/8"]).await;
    let r = Http::default()
        .get(
            &lb.url("/_echo/headers"),
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
            ],
        )
        .await;
    let seen = r.body;
    assert!(seen.contains("x-forwarded-for: 203.0.113.9\n"), "{seen}");
    assert!(seen.contains("x-forwarded-for: 127.0.0.1\n"), "{seen}");
    assert!(seen.contains("x-forwarded-proto: https\n"), "{seen}");
    lb.stop().await;
}

/// Read until the LB closes the connection (or 10 s pass: a failure).
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got))
        .await
        .expect("the LB closes the connection")
        .ok();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_client_hello_closes_only_that_connection() {
    let certs = TestCerts::new();
    let tls = certs.lb_flags();
    let ([_node], lb) = lb_over_echoes(&flags(&tls, &["--tls-handshake-timeout", "1s"])).await;
    let https = certs.client();
    let ok = |r: reqwest::Response| assert_eq!(r.status(), 200);
    // A kept-alive HTTPS connection before, used again after.
    ok(https.get(lb.tls_url("/")).send().await.unwrap());

    let tls_addr = lb.tls_addr.unwrap();
    // 1. Plain HTTP on the TLS port; 2. a TLS record header with a
    // nonsense handshake; 3. a client that stops halfway (the timeout).
    let garbage: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x00\x08\x01\x00\x00\x04garbage!",
        b"\x16\x03\x01\x02\x00\x01",
    ];
    for bytes in garbage {
        let mut raw = TcpStream::connect(tls_addr).await.unwrap();
        raw.write_all(bytes).await.unwrap();
        let answer = read_to_close(&mut raw).await;
        assert!(
            !answer.windows(4).any(|w| w == b"HTTP"),
            "no HTTP answer to garbage: {answer:?}"
        );
    }
    ok(https.get(lb.tls_url("/")).send().await.unwrap());
    assert_eq!(Http::default().get(&lb.url("/"), &[]).await.status, 200);
    let failures = metric(&lb, "sessionlab_lb_tls_handshake_failures_total").await;
    assert_eq!(failures, 3.0);
    lb.stop().await;
}
