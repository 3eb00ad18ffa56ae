//! Client limits on the public listener, with short configured bounds and
//! raw TCP clients: a slowloris head, a trickled body, an idle keep-alive
//! connection, and one IP opening too many connections.

use std::time::Duration;

use sessionlab_testkit::{Http, lb_over_echoes, until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes; `None` if it is still open after `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&got).into_owned())
}

/// One whole request on a raw connection that stays open.
async fn request_on(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: lb\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_head_is_cut_off_after_the_header_timeout() {
    let ([a], lb) = lb_over_echoes(&["--header-timeout", "300ms"]).await;
    let mut slow = TcpStream::connect(lb.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: lb\r\nX-Slow: 1")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let answer = closed_within(&mut slow, Duration::from_secs(5))
        .await
        .expect("the LB closes a connection that never finishes its head");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert!(!answer.contains("200 OK"), "{answer}");
    assert_eq!(a.state.requests(), 0, "nothing reached the backend");
    // A client that sends its head at once is served.
    let http = Http::default();
    assert_eq!(http.get(&lb.url("/"), &[]).await.status, 200);
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_gets_408_after_the_body_timeout() {
    let ([a], lb) =
        lb_over_echoes(&["--body-timeout", "300ms", "--body-min-rate", "1000000"]).await;
    let mut slow = TcpStream::connect(lb.addr).await.unwrap();
    slow.write_all(
        b"POST /_echo/body HTTP/1.1\r\nHost: lb\r\nContent-Length: 100\r\n\r\n0123456789",
    )
    .await
    .unwrap();
    let answer = closed_within(&mut slow, Duration::from_secs(5))
        .await
        .expect("an answer and a close");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    assert_eq!(a.state.requests(), 0);
    lb.stop().await;
}

/// Most of a large body sent fast earns minutes at the minimum rate; a
/// pause after it still ends at `--body-timeout`, not when that credit runs
/// out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_after_a_fast_start_gets_408_after_the_body_timeout() {
    let ([a], lb) = lb_over_echoes(&["--body-timeout", "300ms", "--body-min-rate", "1000"]).await;
    let mut stalled = TcpStream::connect(lb.addr).await.unwrap();
    stalled
        .write_all(b"POST /_echo/body HTTP/1.1\r\nHost: lb\r\nContent-Length: 200000\r\n\r\n")
        .await
        .unwrap();
    // 150 kB at once: 150 s of credit at 1000 B/s.
    stalled.write_all(&[b'x'; 150_000]).await.unwrap();
    let started = std::time::Instant::now();
    let answer = closed_within(&mut stalled, Duration::from_secs(5))
        .await
        .expect("an answer and a close well before the credit runs out");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(a.state.requests(), 0);
    lb.stop().await;
}

/// A backend that answers `GET /stall` with its head and 10 of the 100
/// bytes it announced, then holds the connection without a word; anything
/// else (the health checks) gets a whole answer.
async fn stalling_backend() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut head = [0u8; 2048];
            let n = sock.read(&mut head).await.unwrap_or(0);
            if head[..n].starts_with(b"GET /stall ") {
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
                    .await;
                held.push(sock); // never another byte
            } else {
                let _ = sock
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            }
        }
    });
    addr
}

/// `--read-timeout` ends with the response head; a body that then stops
/// moving is cut off with its connection after the idle bound, so a
/// stalled backend cannot hold a client's slot, an upstream connection and
/// an in-flight count for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_body_that_stops_moving_is_cut_off() {
    let backend = stalling_backend().await;
    let lb = sessionlab_testkit::lb_over(
        &[format!("stall={backend}")],
        &["--header-timeout", "300ms"],
    )
    .await;
    let mut client = TcpStream::connect(lb.addr).await.unwrap();
    client
        .write_all(b"GET /stall HTTP/1.1\r\nHost: lb\r\n\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let answer = closed_within(&mut client, Duration::from_secs(5))
        .await
        .expect("the LB closes a response that stopped moving");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with("0123456789"),
        "the part that came: {answer}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keepalive_connection_is_closed() {
    let ([_a], lb) = lb_over_echoes(&["--keepalive-timeout", "300ms"]).await;
    let mut conn = TcpStream::connect(lb.addr).await.unwrap();
    assert!(request_on(&mut conn).await.starts_with("HTTP/1.1 200"));
    let closed = closed_within(&mut conn, Duration::from_secs(5)).await;
    assert_eq!(closed.as_deref(), Some(""), "closed without another answer");
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_ip_gets_at_most_its_cap_of_connections() {
    let ([_a], lb) = lb_over_echoes(&["--max-connections-per-ip", "2"]).await;
    let mut first = TcpStream::connect(lb.addr).await.unwrap();
    let mut second = TcpStream::connect(lb.addr).await.unwrap();
    assert!(request_on(&mut first).await.starts_with("HTTP/1.1 200"));
    assert!(request_on(&mut second).await.starts_with("HTTP/1.1 200"));

    let mut third = TcpStream::connect(lb.addr).await.unwrap();
    let _ = third.write_all(b"GET / HTTP/1.1\r\nHost: lb\r\n\r\n").await;
    let refused = closed_within(&mut third, Duration::from_secs(5)).await;
    assert_eq!(refused.as_deref(), Some(""), "closed at once, unanswered");

    let http = Http::default();
    let metrics = http.get(&lb.admin_url("/metrics"), &[]).await.body;
    assert!(
        metrics.contains("sessionlab_lb_connections_refused_total 1"),
        "{metrics}"
    );
    // The open ones still work; closing one makes room.
    assert!(request_on(&mut first).await.starts_with("HTTP/1.1 200"));
    drop(second);
    until(
        Duration::from_secs(5),
        "room for a new connection",
        || async {
            let mut next = TcpStream::connect(lb.addr).await.unwrap();
            let _ = next.write_all(b"GET / HTTP/1.1\r\nHost: lb\r\n\r\n").await;
            let mut buf = [0u8; 64];
            matches!(
                tokio::time::timeout(Duration::from_secs(2), next.read(&mut buf)).await,
                Ok(Ok(n)) if n > 0
            )
        },
    )
    .await;
    lb.stop().await;
}
