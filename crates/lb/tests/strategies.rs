//! How each non-sticky strategy spreads requests over real backends.

use std::sync::Arc;
use std::time::Duration;

use sessionlab_lb::echo::{self as echo_server, EchoState};
use sessionlab_testkit::{Http, echo, lb_over, lb_over_echoes};
use tokio::net::TcpListener;

async fn counts_after(strategy: &str, requests: usize) -> Vec<u64> {
    let (echoes, lb) = lb_over_echoes::<3>(&["--strategy", strategy]).await;
    let http = Http::default();
    for _ in 0..requests {
        assert_eq!(http.get(&lb.url("/"), &[]).await.status, 200);
    }
    lb.stop().await;
    echoes.iter().map(|e| e.state.requests()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_is_exactly_even() {
    assert_eq!(counts_after("round-robin", 30).await, vec![10, 10, 10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_reaches_every_backend_roughly_evenly() {
    let counts = counts_after("random", 300).await;
    assert_eq!(counts.iter().sum::<u64>(), 300);
    assert!(counts.iter().all(|&c| c >= 60), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_conn_sends_little_to_a_slow_backend() {
    // node-1 takes 100 ms per answer; the others answer at once. With 6
    // clients in a closed loop, least-conn keeps node-1's in-flight count
    // level with the others', so it serves only a small share (round-robin
    // would give it exactly a third).
    let slow_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_addr = slow_listener.local_addr().unwrap();
    let slow = EchoState::with_delay("node-1", Duration::from_millis(100));
    let (_stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(echo_server::run(slow.clone(), slow_listener, async {
        let _ = stop_rx.await;
    }));
    let fast = [echo("node-2").await, echo("node-3").await];
    let slow_spec = format!("node-1={slow_addr}");
    let (s2, s3) = (fast[0].spec(), fast[1].spec());
    let lb = lb_over(&[slow_spec, s2, s3], &["--strategy", "least-conn"]).await;
    let http = Arc::new(Http::default());
    let url = lb.url("/");
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                for _ in 0..50 {
                    assert_eq!(http.get(&url, &[]).await.status, 200);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let total = slow.requests() + fast.iter().map(|e| e.state.requests()).sum::<u64>();
    assert_eq!(total, 300);
    assert!(
        slow.requests() < 40,
        "slow backend got {} of 300",
        slow.requests()
    );
    lb.stop().await;
}
