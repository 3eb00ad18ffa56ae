//! All-to-all replication between real `sessionlab-node` processes on
//! loopback: reads on another node, a SIGKILLed node that catches up before
//! it reports ready, a partition that heals, refused unsigned messages, and
//! synchronous acks. See `process_cluster` for the helper.

mod process_cluster;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use process_cluster::{SECRET, TestCluster, cookie_id, increment};
use reqwest::Method;
use sessionlab_replication::{Batch, Message, Upsert};
use sessionlab_session::{Session, SessionId, Version, clock};
use std::sync::Mutex;

fn ack_header(h: &reqwest::header::HeaderMap) -> String {
    h.get("x-replication-ack")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("<missing>")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_node_1_is_read_on_node_3_within_100ms() {
    let mut c = TestCluster::start(3, &[]).await;

    let (n, cookie, h) = c.increment(0, "").await;
    assert_eq!(n, 1);
    assert_eq!(ack_header(&h), "async");
    let written = Instant::now();
    let deadline = written + Duration::from_secs(5);
    while c.counter(2, &cookie).await != Some(1) {
        assert!(Instant::now() < deadline, "node-3 never saw the write");
    }
    let seen = written.elapsed();
    println!("write on node-1 readable on node-3 after {seen:?}");
    assert!(seen < Duration::from_millis(100), "took {seen:?}");
    // And the next write, made on node-3, is read on node-1.
    let (n, _, _) = c.increment(2, &cookie).await;
    assert_eq!(n, 2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.counter(0, &cookie).await != Some(2) {
        assert!(Instant::now() < deadline, "node-1 never saw node-3's write");
    }

    // The status names the store and the peers; the metrics have the
    // replication series.
    let status = c.status(0).await;
    assert_eq!(status["store"], "replicated", "{status}");
    assert_eq!(status["ready"], true);
    let peers: Vec<(String, bool)> = status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_owned(),
                p["up"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        peers,
        [("node-2".to_owned(), true), ("node-3".to_owned(), true)]
    );
    let metrics = c.metrics(2).await;
    for series in [
        r#"sessionlab_replication_lag_seconds_count{node="node-3",origin="node-1"}"#,
        r#"sessionlab_replication_messages_total{node="node-3",peer="node-1",direction="received"}"#,
        r#"sessionlab_replication_ready{node="node-3"} 1"#,
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }

    // SIGTERM: the node drains, stops replicating and exits 0.
    let status = c.terminate(0, Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        c.log_tail(0)
    );
    assert!(c.log_tail(0).contains("node stopped"), "{}", c.log_tail(0));
}

/// Sessions written by a background load: (cookie, the node that writes
/// it, its last counter). Each session is written by one node only, so its
/// last counter is the value every node must end up with.
type Written = Arc<Mutex<Vec<(String, usize, u64)>>>;

fn start_writes(
    c: &TestCluster,
    on: &[usize],
) -> (Written, Arc<AtomicBool>, tokio::task::JoinHandle<()>) {
    let written: Written = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let apps: Vec<(usize, String)> = on.iter().map(|&i| (i, c.node(i).app())).collect();
    let http = c.http.clone();
    let task = {
        let (written, stop) = (written.clone(), stop.clone());
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            for n in 0..20_000usize {
                if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                    break;
                }
                let (node, app) = &apps[n % apps.len()];
                let pick = {
                    let w = written.lock().unwrap();
                    let mine: Vec<usize> = (0..w.len()).filter(|&k| w[k].1 == *node).collect();
                    (n % 4 != 0 && !mine.is_empty()).then(|| {
                        let k = mine[n % mine.len()];
                        (k, w[k].0.clone())
                    })
                };
                match pick {
                    Some((k, cookie)) => {
                        let (v, _, _) = increment(&http, app, &cookie).await;
                        written.lock().unwrap()[k].2 = v;
                    }
                    None => {
                        let (v, cookie, _) = increment(&http, app, "").await;
                        written.lock().unwrap().push((cookie, *node, v));
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    (written, stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_catches_up_before_it_reports_ready() {
    let mut c = TestCluster::start(3, &[]).await;
    let (written, stop, writer) = start_writes(&c, &[0, 2]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while written.lock().unwrap().len() < 20 {
        assert!(Instant::now() < deadline, "the writes do not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // SIGKILL node-2 while the writes go on.
    c.kill(1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while written.lock().unwrap().len() < 40 {
        assert!(Instant::now() < deadline, "the writes stopped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Restart it with its peers cut off, so it cannot catch up: it must
    // answer 503 (not ready) the whole time.
    c.set_faults(0, &["node-2"]).await;
    c.set_faults(2, &["node-2"]).await;
    c.spawn(1);
    let watch_until = Instant::now() + Duration::from_secs(1);
    let mut answered_503 = 0;
    while Instant::now() < watch_until {
        match c.health(1).await {
            200 => panic!("node-2 reported ready without its peers\n{}", c.log_tail(1)),
            503 => answered_503 += 1,
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        answered_503 > 0,
        "node-2 never answered /healthz\n{}",
        c.log_tail(1)
    );

    // Let it reach its peers: ready only once it holds every session that
    // existed before.
    let before: Vec<String> = written
        .lock()
        .unwrap()
        .iter()
        .map(|w| w.0.clone())
        .collect();
    c.set_faults(0, &[]).await;
    c.set_faults(2, &[]).await;
    c.wait_ready(1, Duration::from_secs(15)).await;
    let held = c.digest(1).await;
    let missing = before
        .iter()
        .filter(|k| !held.contains_key(cookie_id(k)))
        .count();
    assert_eq!(
        missing,
        0,
        "node-2 was ready with {missing} of {} sessions missing",
        before.len()
    );

    // Stop the writes; all three converge and node-2 serves every session
    // with its last value.
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("the writer did not panic");
    let digest = c.wait_converged(&[0, 1, 2], Duration::from_secs(20)).await;
    let written = written.lock().unwrap().clone();
    assert!(digest.len() >= written.len());
    for (cookie, _, last) in &written {
        assert_eq!(
            c.counter(1, cookie).await,
            Some(*last),
            "node-2 serves a stale or no copy"
        );
    }
    println!(
        "node-2 was down and cut off for ~1 s, caught up, and serves all {} sessions ({} answers 503 while not ready)",
        written.len(),
        answered_503
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_node_converges_after_the_heal() {
    let c = TestCluster::start(3, &[]).await;
    let (_, s1, _) = c.increment(0, "").await;
    let (_, s2, _) = c.increment(1, "").await;
    let (_, s3, _) = c.increment(2, "").await;
    c.wait_converged(&[0, 1, 2], Duration::from_secs(10)).await;

    // Cut node-3 off (it drops everything to and from both peers).
    c.set_faults(2, &["node-1", "node-2"]).await;
    assert_eq!(c.increment(0, &s1).await.0, 2);
    let (_, new1, _) = c.increment(0, "").await;
    assert_eq!(c.increment(2, &s3).await.0, 2);
    let (_, new3, _) = c.increment(2, "").await;
    // The same session written on both sides: last writer wins.
    assert_eq!(c.increment(0, &s2).await.0, 2);
    c.increment(2, &s2).await;
    assert_eq!(c.increment(2, &s2).await.0, 3);

    // node-2 gets node-1's write; node-3 does not.
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.counter(1, &s1).await != Some(2) {
        assert!(Instant::now() < deadline, "node-2 never saw node-1's write");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(c.counter(2, &s1).await, Some(1), "the partition leaked");
    assert_eq!(c.counter(0, &new3).await, None, "the partition leaked");

    // Heal: every node ends with the same sessions at the same versions.
    c.set_faults(2, &[]).await;
    let digest = c.wait_converged(&[0, 1, 2], Duration::from_secs(20)).await;
    assert_eq!(digest.len(), 5);
    for i in 0..3 {
        assert_eq!(c.counter(i, &s1).await, Some(2));
        assert_eq!(c.counter(i, &s3).await, Some(2));
        assert_eq!(c.counter(i, &new1).await, Some(1));
        assert_eq!(c.counter(i, &new3).await, Some(1));
    }
    let s2_values: Vec<Option<u64>> = [
        c.counter(0, &s2).await,
        c.counter(1, &s2).await,
        c.counter(2, &s2).await,
    ]
    .into();
    assert!(
        s2_values.iter().all(|v| *v == s2_values[0]),
        "{s2_values:?}"
    );
    assert!(matches!(s2_values[0], Some(2) | Some(3)), "{s2_values:?}");
    println!("after the heal the concurrent writes to one session settled on {s2_values:?}");
}

/// A batch from "node-2" that would create a new session on node-1.
fn forged_batch() -> (Vec<u8>, String) {
    let id = SessionId::generate();
    let now = clock::now_ms();
    let mut session = Session::new(id.clone(), now, 60_000, 3_600_000);
    session.version = Version::new(1_000_000, "node-2");
    let batch = Batch {
        from: "node-2".into(),
        to: "node-1".into(),
        seq: 1,
        sent_ms: now,
        messages: vec![Message::Upsert(
            Upsert {
                session,
                origin_ms: Some(now),
                origin_us: None,
                ack: None,
                base: None,
            }
            .into(),
        )],
    };
    (serde_json::to_vec(&batch).unwrap(), id.as_str().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_or_forged_messages_are_refused_and_change_nothing() {
    let c = TestCluster::start(3, &[]).await;
    c.increment(0, "").await;
    let before = c.wait_converged(&[0, 1, 2], Duration::from_secs(10)).await;
    let (body, id) = forged_batch();
    let url = format!("{}/cluster/v1/batch", c.node(0).cluster());

    // No signature.
    let res = c.http.post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(res.status(), 401);
    // Signed with another secret.
    let wrong = "not-the-cluster-secret-0123456789abcdef";
    let res = c
        .signed(0, Method::POST, "/cluster/v1/batch", body.clone(), wrong)
        .await;
    assert_eq!(res.status(), 401);
    // Signed with the right secret, then the body changed.
    let h = sessionlab_replication::auth::sign_request(
        SECRET.as_bytes(),
        "node-2",
        "POST",
        "/cluster/v1/batch",
        b"{}",
        clock::now_ms(),
    );
    let mut req = c.http.post(&url).body(body.clone());
    for (k, v) in h.pairs() {
        req = req.header(k, v);
    }
    assert_eq!(req.send().await.unwrap().status(), 401);

    // Nothing changed anywhere, and the refusals were counted.
    assert_eq!(c.digest(0).await, before);
    assert!(!c.digest(0).await.contains_key(&id));
    let metrics = c.metrics(0).await;
    for (reason, at_least) in [("unsigned", 1), ("forged", 2)] {
        let series =
            format!(r#"sessionlab_replication_rejected_total{{node="node-1",reason="{reason}"}}"#);
        let n = sessionlab_testkit::sample(&metrics, &series).unwrap_or(0.0) as u64;
        assert!(n >= at_least, "{reason}: {n}\n{metrics}");
    }

    // The control: the same batch, properly signed as node-2, is applied.
    let h = sessionlab_replication::auth::sign_request(
        SECRET.as_bytes(),
        "node-2",
        "POST",
        "/cluster/v1/batch",
        &body,
        clock::now_ms(),
    );
    let mut req = c.http.post(&url).body(body);
    for (k, v) in h.pairs() {
        req = req.header(k, v);
    }
    assert_eq!(req.send().await.unwrap().status(), 204);
    assert!(c.digest(0).await.contains_key(&id));
}

/// Three nodes with `--replication-ack mode` and
/// `--replication-ack-timeout timeout`.
async fn acking_cluster(mode: &str, timeout: &str) -> TestCluster {
    let flags = [
        "--replication-ack",
        mode,
        "--replication-ack-timeout",
        timeout,
    ];
    TestCluster::start(3, &flags).await
}

/// Drop node-2's traffic at node-1, then write there once: the counter,
/// the answer's headers, and how long the answer took.
async fn write_with_node_2_dropped(
    c: &TestCluster,
    cookie: &str,
) -> (u64, reqwest::header::HeaderMap, Duration) {
    c.set_faults(0, &["node-2"]).await;
    let t = Instant::now();
    let (n, _, h) = c.increment(0, cookie).await;
    (n, h, t.elapsed())
}

/// Write at node-1 until the answer's ack header says `want` (within
/// 10 s); every answer before it says `meanwhile`, when given.
async fn write_until_ack(c: &TestCluster, cookie: &str, want: &str, meanwhile: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, _, h) = c.increment(0, cookie).await;
        if ack_header(&h) == want {
            break;
        }
        if let Some(meanwhile) = meanwhile {
            assert_eq!(ack_header(&h), meanwhile);
        }
        assert!(Instant::now() < deadline, "still {}", ack_header(&h));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_all_waits_for_both_peers_and_times_out_without_one() {
    let c = acking_cluster("all", "300ms").await;
    let (_, cookie, h) = c.increment(0, "").await;
    assert_eq!(ack_header(&h), "acked; peers=2");

    // Drop node-2's traffic: it still counts as up for a while, so the
    // next write waits for it until the ack timeout, and says so.
    let (n, h, took) = write_with_node_2_dropped(&c, &cookie).await;
    assert_eq!(n, 2, "a timed-out write is not undone");
    assert_eq!(ack_header(&h), "timeout; acked=1; expected=2");
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(1_300),
        "answered after {took:?} with a 300 ms ack timeout"
    );
    println!(
        "ack=all with a dropped peer answered after {took:?}: {}",
        ack_header(&h)
    );

    // Once node-2 is seen down, writes wait only for the live peer.
    write_until_ack(&c, &cookie, "acked; peers=1", None).await;
}

/// `--replication-ack sent` on real processes: the answer says the write
/// left for both peers. With node-2's traffic dropped (node-1 does not yet
/// know it is gone) the write is still answered at once, `sent` to both,
/// where `all` waited out its timeout above: handed over, not confirmed.
/// Once node-2 is seen down, only the live peer counts. About 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_sent_answers_once_the_write_left_for_every_live_peer() {
    let c = acking_cluster("sent", "2s").await;
    let (_, cookie, h) = c.increment(0, "").await;
    assert_eq!(ack_header(&h), "sent; peers=2");

    let (n, h, took) = write_with_node_2_dropped(&c, &cookie).await;
    assert_eq!(n, 2);
    assert_eq!(ack_header(&h), "sent; peers=2");
    assert!(
        took < Duration::from_millis(1_000),
        "sent waited {took:?} (a peer's ack is not what it waits for)"
    );
    write_until_ack(&c, &cookie, "sent; peers=1", Some("sent; peers=2")).await;
}

/// `--partition-policy consistent` on real processes: node-1 is cut off
/// from both peers. Its writes are refused with 503 `no_majority`, first
/// after waiting for a quorum that cannot come (the ack timeout), then at
/// once when it has seen its peers down; nothing of them stays, and the
/// majority side keeps writing. After the heal node-1 takes the majority's
/// copy and writes again. About 3 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_refuses_writes_cut_off_from_the_majority_and_keeps_none() {
    let c = TestCluster::start(
        3,
        &[
            "--partition-policy",
            "consistent",
            "--replication-ack-timeout",
            "300ms",
        ],
    )
    .await;
    let post = |i: usize, cookie: String| {
        let req = c
            .http
            .post(format!("{}/api/counter/increment", c.node(i).app()));
        let req = if cookie.is_empty() {
            req
        } else {
            req.header("cookie", cookie)
        };
        req.send()
    };
    // A node answers writes once it has heard a majority.
    let deadline = Instant::now() + Duration::from_secs(10);
    let cookie = loop {
        let res = post(0, String::new()).await.unwrap();
        if res.status() == 200 {
            assert_eq!(ack_header(res.headers()), "acked; peers=1");
            break sessionlab_testkit::node::session_cookie(res.headers()).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "never took a write: {}",
            res.status()
        );
    };

    c.set_faults(0, &["node-2", "node-3"]).await;
    let mut waited_out = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = post(0, cookie.clone()).await.unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "1");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"], "no_majority", "{body}");
        let detail = body["detail"].as_str().unwrap();
        if detail.contains("reaches 1 of 3 members") {
            break;
        }
        assert!(detail.contains("took the write in time"), "{detail}");
        waited_out = true;
        assert!(Instant::now() < deadline, "node-1 never saw its peers down");
    }
    assert!(waited_out, "the first refusal waits for the quorum");
    assert_eq!(
        c.counter(0, &cookie).await,
        Some(1),
        "nothing refused stays: no peer could take it"
    );
    let metrics = c.metrics(0).await;
    for reason in ["no_majority", "not_acknowledged"] {
        let series = format!(
            "sessionlab_replication_refused_writes_total{{node=\"node-1\",reason=\"{reason}\"}}"
        );
        let n = sessionlab_testkit::sample(&metrics, &series).unwrap_or(0.0);
        assert!(n >= 1.0, "{series}: {n}\n{metrics}");
    }
    // The majority side writes on.
    let (n, _, _) = c.increment(1, &cookie).await;
    assert_eq!(n, 2);

    c.set_faults(0, &[]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = post(0, cookie.clone()).await.unwrap();
        if res.status() == 200 {
            let v: serde_json::Value = res.json().await.unwrap();
            assert_eq!(v["counter"], 3, "made from the majority's copy");
            break;
        }
        assert_eq!(res.status(), 503);
        assert!(Instant::now() < deadline, "node-1 never wrote again");
    }
}

/// A clock 10 s ahead (the lab's `skew:node-2:+10s` fault, through the
/// signed fault endpoint) with a 5 s idle timeout: every copy node-2 gets
/// from node-1 is already expired by node-2's clock, so node-2 serves no
/// session where node-1 serves a live one. Expiry is a pure function of
/// replicated fields and the local clock; clocks that disagree by more than
/// the idle timeout disagree on whether a user is logged in. Put right,
/// the next copy lands again. About 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skewed_clock_sees_live_sessions_as_expired() {
    let c = TestCluster::start(2, &["--idle-timeout", "5s"]).await;
    let skew = |ms: i64| {
        let body = serde_json::to_vec(&serde_json::json!({"drop": [], "skew_ms": ms})).unwrap();
        c.signed(1, Method::POST, "/admin/v1/faults", body, SECRET)
    };
    let (_, cookie, _) = c.increment(0, "").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.counter(1, &cookie).await != Some(1) {
        assert!(Instant::now() < deadline, "node-2 never got the session");
    }

    assert_eq!(skew(10_000).await.status(), 200);
    let res = c
        .signed(1, Method::GET, "/admin/v1/faults", vec![], SECRET)
        .await;
    let set: serde_json::Value = res.json().await.unwrap();
    assert_eq!(set["skew_ms"], 10_000, "{set}");
    assert_eq!(
        c.counter(1, &cookie).await,
        None,
        "expired by node-2's clock"
    );
    let (n, _, _) = c.increment(0, &cookie).await;
    assert_eq!(n, 2);
    assert_eq!(c.counter(0, &cookie).await, Some(2), "live on node-1");
    let m = c.metrics(1).await;
    let expired = |m: &str| {
        sessionlab_testkit::sample(
            m,
            "sessionlab_replication_applied_total{node=\"node-2\",kind=\"upsert\",outcome=\"expired\"}",
        )
        .unwrap_or(0.0)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while expired(&c.metrics(1).await) < 1.0 {
        assert!(
            Instant::now() < deadline,
            "no copy dropped as expired:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(c.counter(1, &cookie).await, None);

    assert_eq!(skew(0).await.status(), 200);
    let (n, _, _) = c.increment(0, &cookie).await;
    assert_eq!(n, 3);
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.counter(1, &cookie).await != Some(3) {
        assert!(
            Instant::now() < deadline,
            "node-2 never took the copy again"
        );
    }
}

#[test]
fn the_binary_refuses_replication_flags_that_cannot_work() {
    let short = "too-short-secret";
    for (args, secret, expect) in [
        (
            &["--replication", "all-to-all"][..],
            None,
            "--cluster-secret is required",
        ),
        (
            &["--replication", "all-to-all"][..],
            Some(short),
            "--cluster-secret must be at least 32 bytes",
        ),
        (
            &["--peer", "node-2=127.0.0.1:9082"][..],
            Some(SECRET),
            "--peer needs --replication all-to-all",
        ),
        (&["--peer", "node-2:9082"][..], None, "--peer"),
        (
            &["--replication-ack", "some"][..],
            None,
            "--replication-ack",
        ),
    ] {
        let mut cmd = std::process::Command::new(process_cluster::BIN);
        cmd.args(["--listen", "127.0.0.1:0", "--cluster-listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("SESSIONLAB_CLUSTER_SECRET");
        if let Some(s) = secret {
            cmd.env("SESSIONLAB_CLUSTER_SECRET", s);
        }
        let out = cmd.output().expect("run sessionlab-node");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert!(!stderr.contains(short), "the secret is echoed: {stderr}");
    }
}
