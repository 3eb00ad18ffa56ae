//! Proxy hygiene: hop-by-hop headers, X-Forwarded-*, body limit, timeouts.

use std::time::{Duration, Instant};

use http::Method;
use sessionlab_testkit::{Http, echo, lb_over, lb_over_echoes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_stripped_and_forwarded_headers_added() {
    let ([_node], lb) = lb_over_echoes(&[]).await;
    let http = Http::default();
    let r = http
        .get(
            &lb.url("/_echo/headers"),
            &[
                ("connection", "keep-alive, x-secret"),
                ("x-secret", "do-not-forward"),
                ("keep-alive", "timeout=5"),
                ("te", "trailers"),
                ("proxy-authorization", "Basic Zm9vOmJhcg=="),
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
                ("x-app", "kept"),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    let seen = r.body.to_lowercase();
    for gone in [
        "x-secret",
        "keep-alive:",
        "\nte:",
        "proxy-authorization",
        "https",
    ] {
        assert!(!seen.contains(gone), "{gone} forwarded:\n{seen}");
    }
    assert!(seen.contains("x-app: kept"), "{seen}");
    // Not a --trusted-proxy: its own X-Forwarded-For is replaced (tls.rs
    // has the trusted case).
    assert!(!seen.contains("203.0.113.9"), "{seen}");
    assert!(seen.contains("x-forwarded-for: 127.0.0.1\n"), "{seen}");
    assert!(seen.contains("x-forwarded-proto: http\n"), "{seen}");
    assert!(
        seen.contains(&format!("x-forwarded-host: {}\n", lb.addr)),
        "{seen}"
    );
    assert!(
        seen.contains(&format!("host: {}\n", lb.addr)),
        "Host passes through: {seen}"
    );

    // Response side: the header named by the backend's Connection is dropped,
    // X-Served-By passes through.
    let r = http.get(&lb.url("/?hop=1"), &[]).await;
    assert!(r.headers.get("x-hop").is_none(), "{:?}", r.headers);
    assert_eq!(r.served_by(), "node-1");
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_pass_through_up_to_the_limit_and_413_beyond() {
    let ([node], lb) = lb_over_echoes(&["--body-limit", "1024"]).await;
    let http = Http::default();

    let ok = vec![b'a'; 1024];
    let r = http
        .send(Method::POST, &lb.url("/_echo/body"), &[], &ok)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 1024);

    let big = vec![b'a'; 1025];
    let r = http
        .send(Method::POST, &lb.url("/_echo/body"), &[], &big)
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"], "body_too_large");
    assert_eq!(r.json()["origin"], "client");
    assert_eq!(
        node.state.requests(),
        1,
        "the oversized body never reached the backend"
    );
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_backend_is_a_504_and_not_retried() {
    let ([a, b], lb) = lb_over_echoes(&["--read-timeout", "200ms"]).await;
    let http = Http::default();
    let started = Instant::now();
    let r = http.get(&lb.url("/?delay_ms=3000"), &[]).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["error"], "upstream_read_timeout");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        a.state.requests() + b.state.requests(),
        1,
        "a timeout is not retried"
    );
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_kept_alive_and_reused() {
    let node = echo("node-1").await;
    // One worker thread: each thread keeps its own pool.
    let lb = lb_over(&[node.spec()], &["--threads", "1"]).await;
    let http = Http::default();
    for (method, path) in [
        (Method::GET, "/"),
        (Method::HEAD, "/"),
        (Method::GET, "/?status=204"),
        (Method::POST, "/_echo/body"),
        (Method::GET, "/_echo/headers"),
    ] {
        for _ in 0..10 {
            let r = http.send(method.clone(), &lb.url(path), &[], b"x").await;
            assert!(r.status.is_success(), "{method} {path}: {}", r.status);
        }
    }
    let list = http
        .get(&lb.admin_url("/admin/v1/backends"), &[])
        .await
        .json();
    assert_eq!(
        list["backends"][0]["connects"], 1,
        "one connection for 50 sequential requests: {list}"
    );
    assert_eq!(list["backends"][0]["idle_connections"], 1);
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_both_ways_and_the_connection_is_reused() {
    let ([_node], lb) = lb_over_echoes(&["--threads", "1"]).await;
    let http = Http::default();
    let body: Vec<u8> = (0..900_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    for _ in 0..3 {
        let r = http
            .send(Method::POST, &lb.url("/_echo/body"), &[], &body)
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), body.len());
        assert!(r.body.as_bytes() == body.as_slice(), "body corrupted");
    }
    let list = http
        .get(&lb.admin_url("/admin/v1/backends"), &[])
        .await
        .json();
    assert_eq!(list["backends"][0]["connects"], 1, "{list}");
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_connections_are_bounded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ([_node], lb) = lb_over_echoes(&["--max-connections", "1", "--threads", "1"]).await;
    let request = b"GET / HTTP/1.1\r\nHost: lb\r\n\r\n";
    async fn read_some(s: &mut tokio::net::TcpStream) -> String {
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    let mut first = tokio::net::TcpStream::connect(lb.addr).await.unwrap();
    first.write_all(request).await.unwrap();
    assert!(read_some(&mut first).await.starts_with("HTTP/1.1 200"));

    // The second connection waits in the backlog while the first is open.
    let mut second = tokio::net::TcpStream::connect(lb.addr).await.unwrap();
    second.write_all(request).await.unwrap();
    let early = tokio::time::timeout(Duration::from_millis(300), read_some(&mut second)).await;
    assert!(early.is_err(), "served beyond --max-connections: {early:?}");

    drop(first);
    let answer = tokio::time::timeout(Duration::from_secs(5), read_some(&mut second))
        .await
        .expect("served once the first connection closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    lb.stop().await;
}
