//! The runtime in one process: real actix servers on loopback port 0, real
//! HTTP between them, each node with its own memory store and replication.
//!
//! [`TestCluster`] starts N nodes and stops them all when dropped. Waiting
//! is always a bounded poll of an observable condition (a session appears,
//! a peer is seen down), never a blind sleep: protocol timing itself is
//! tested deterministically in the simulation.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{App, HttpServer, dev::ServerHandle};
use sessionlab_replication::auth::{self, sign_request};
use sessionlab_replication::{
    AckMode, Batch, Message, ProtocolConfig, ReplicatedStore, Replication, ReplicationConfig,
    ReplicationHandle, Upsert,
};
use sessionlab_session::ReplicationAck;
use sessionlab_session::{MemoryStore, MemoryStoreConfig, Session, SessionId, SessionStore, clock};

const SECRET: &[u8] = b"test-cluster-secret-of-32-bytes!!";
const DEADLINE: Duration = Duration::from_secs(10);

fn protocol(ack: AckMode) -> ProtocolConfig {
    ProtocolConfig {
        ack_mode: ack,
        ack_timeout_ms: 2_000,
        heartbeat_interval_ms: 50,
        // Generous, so a loaded CI machine does not see spurious downs.
        peer_down_after_ms: 1_500,
        touch_flush_ms: 100,
        anti_entropy_interval_ms: 300,
        request_timeout_ms: 1_000,
        join_timeout_ms: 8_000,
        join_grace_ms: 300,
        batch_max_bytes: 64 * 1024,
        snapshot_page_bytes: 64 * 1024,
        ..ProtocolConfig::default()
    }
}

struct TestNode {
    id: String,
    addr: SocketAddr,
    store: Arc<ReplicatedStore>,
    handle: ReplicationHandle,
    server: ServerHandle,
}

/// N replicating nodes on loopback; stopped on drop.
struct TestCluster {
    nodes: Vec<Option<TestNode>>,
    addrs: Vec<SocketAddr>,
    ack: AckMode,
    http: reqwest::Client,
}

const MAX_BODY: usize = 256 * 1024;

fn start_node(i: usize, listener: TcpListener, addrs: &[SocketAddr], ack: AckMode) -> TestNode {
    let id = format!("node-{}", i + 1);
    let peers = addrs
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(j, a)| (format!("node-{}", j + 1), (*a).into()))
        .collect();
    let mut cfg = ReplicationConfig::new(id.clone(), peers, SECRET);
    cfg.protocol = protocol(ack);
    cfg.max_body_bytes = MAX_BODY;
    let memory = Arc::new(MemoryStore::new(MemoryStoreConfig {
        node_id: id.clone(),
        ..MemoryStoreConfig::default()
    }));
    let (store, handle) = Replication::start(cfg, memory).expect("replication starts");
    let h = handle.clone();
    let server = HttpServer::new(move || {
        let h = h.clone();
        App::new().configure(move |c| h.configure(c))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .expect("listen")
    .run();
    let server_handle = server.handle();
    tokio::spawn(server);
    TestNode {
        id,
        addr: addrs[i],
        store,
        handle,
        server: server_handle,
    }
}

impl TestCluster {
    async fn start(n: usize, ack: AckMode) -> Self {
        let listeners: Vec<TcpListener> = (0..n)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind port 0"))
            .collect();
        let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let nodes = listeners
            .into_iter()
            .enumerate()
            .map(|(i, l)| Some(start_node(i, l, &addrs, ack)))
            .collect();
        let c = TestCluster {
            nodes,
            addrs,
            ack,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        };
        for n in c.nodes.iter().flatten() {
            tokio::time::timeout(DEADLINE, n.handle.wait_ready())
                .await
                .unwrap_or_else(|_| panic!("{} did not get ready", n.id));
        }
        c
    }

    fn node(&self, i: usize) -> &TestNode {
        self.nodes[i].as_ref().expect("node is running")
    }

    /// Stop node `i` (its memory is gone with it).
    async fn stop(&mut self, i: usize) {
        if let Some(n) = self.nodes[i].take() {
            n.server.stop(false).await;
            n.handle.shutdown().await;
        }
    }

    /// Start node `i` again, empty, on the same address.
    fn restart(&mut self, i: usize) {
        let listener = TcpListener::bind(self.addrs[i]).expect("rebind the node's port");
        self.nodes[i] = Some(start_node(i, listener, &self.addrs, self.ack));
    }

    /// A signed request to node `i`, signed as `signer`.
    async fn signed(
        &self,
        i: usize,
        signer: &str,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let h = sign_request(SECRET, signer, method, path, &body, clock::now_ms());
        let url = format!("http://{}{path}", self.node(i).addr);
        let mut req = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url),
        };
        for (k, v) in h.pairs() {
            req = req.header(k, v);
        }
        req.body(body).send().await.expect("request")
    }

    /// [`signed`](Self::signed) `POST path` of `body`.
    async fn post_signed(
        &self,
        i: usize,
        signer: &str,
        path: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        self.signed(i, signer, "POST", path, body).await
    }

    /// Wait until node `i` holds session `id`; how long that took.
    async fn until_held(&self, i: usize, id: &SessionId, what: &str) -> Duration {
        eventually(what, || holds(&self.node(i).store, id)).await
    }

    /// [`signed`](Self::signed) `GET path`.
    async fn get_signed(&self, i: usize, signer: &str, path: &str) -> reqwest::Response {
        self.signed(i, signer, "GET", path, vec![]).await
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for n in self.nodes.iter().flatten() {
            // Both signal at once; the futures only wait for completion.
            drop(n.server.stop(false));
            drop(n.handle.shutdown());
        }
    }
}

/// Poll `cond` until it holds or `DEADLINE` passes; how long it took.
async fn eventually<F, Fut>(what: &str, cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    sessionlab_testkit::until(DEADLINE, what, cond).await;
    start.elapsed()
}

fn new_session() -> Session {
    Session::new(
        SessionId::generate(),
        clock::now_ms(),
        30 * 60_000,
        8 * 3_600_000,
    )
}

async fn holds(store: &ReplicatedStore, id: &SessionId) -> bool {
    store.get(id).await.unwrap().is_some()
}

/// Restart node `i`, wait until it is ready, and check that it holds
/// every session of `ids` at once (ready means caught up).
async fn restart_and_check(c: &mut TestCluster, i: usize, ids: &[SessionId]) {
    c.restart(i);
    let restarted = c.node(i);
    tokio::time::timeout(DEADLINE, restarted.handle.wait_ready())
        .await
        .expect("ready");
    for id in ids {
        assert!(holds(&restarted.store, id).await, "{id} after the snapshot");
    }
}

/// A new session written on node-1, once node-2 holds it too.
async fn written_and_replicated(c: &TestCluster) -> Session {
    let s = new_session();
    c.node(0).store.put(s.clone()).await.unwrap();
    c.until_held(1, &s.id, "node-2 holds the session").await;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_node_is_read_on_the_others() {
    let c = TestCluster::start(3, AckMode::None).await;
    let s = new_session();
    let receipt = c.node(0).store.put(s.clone()).await.unwrap();
    assert_eq!(receipt.replication, ReplicationAck::Async);
    let took = c.until_held(2, &s.id, "node-3 holds the session").await;
    c.until_held(1, &s.id, "node-2 holds the session").await;
    let copy = c.node(2).store.get(&s.id).await.unwrap().unwrap();
    assert_eq!(copy.version, receipt.version);
    println!("write on node-1 readable on node-3 after {took:?}");

    // Status lists every peer with its address, up, nothing left to resync.
    let peers = c.node(0).handle.peer_status();
    assert_eq!(peers.len(), 2);
    assert_eq!(peers[0].addr, c.node(1).addr.to_string());
    let h = c.node(0).handle.clone();
    eventually("node-1 sees both peers up and in sync", || {
        let peers = h.peer_status();
        async move { peers.iter().all(|p| p.up && !p.needs_resync) }
    })
    .await;

    // A logout on node-3 removes it everywhere.
    assert!(c.node(2).store.delete(&s.id).await.unwrap());
    eventually("node-1 dropped the session", || async {
        !holds(&c.node(0).store, &s.id).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_all_waits_for_every_live_peer() {
    let c = TestCluster::start(3, AckMode::All).await;
    let receipt = c.node(1).store.put(new_session()).await.unwrap();
    assert_eq!(receipt.replication, ReplicationAck::Acked { peers: 2 });
}

/// `--replication-ack sent`: the write is answered once its batch is
/// handed to the transport for both peers, without waiting for them to
/// apply it. When node-2 refuses everything from node-1 (a cut link, not
/// yet known as one), the write is still answered `sent` to both, and
/// only node-3 has it until the link heals and the resync repairs node-2:
/// handed over is not delivered. node-2 also drops node-3 while the
/// write is checked, or node-3's anti-entropy could repair node-2 before
/// the check (a race, not a failure of `sent`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_sent_answers_once_handed_over_without_waiting_for_the_peers() {
    let c = TestCluster::start(3, AckMode::Sent).await;
    let s = new_session();
    let receipt = c.node(0).store.put(s.clone()).await.unwrap();
    assert_eq!(receipt.replication, ReplicationAck::Sent { peers: 2 });
    for i in [1, 2] {
        c.until_held(i, &s.id, "a peer holds the session").await;
    }

    assert_eq!(
        set_faults(&c, 1, r#"{"drop":["node-1","node-3"]}"#).await,
        200
    );
    let s2 = new_session();
    let receipt = c.node(0).store.put(s2.clone()).await.unwrap();
    assert_eq!(receipt.replication, ReplicationAck::Sent { peers: 2 });
    c.until_held(2, &s2.id, "node-3 holds the second session")
        .await;
    assert!(
        !holds(&c.node(1).store, &s2.id).await,
        "node-2 refuses node-1"
    );
    assert_eq!(set_faults(&c, 1, r#"{"drop":[]}"#).await, 200);
    c.until_held(1, &s2.id, "the resync repairs node-2").await;
}

/// With ack=all a logout returns only once every live peer holds the
/// tombstone: right after it, no node holds the session (the soak in
/// crates/lab/tests/soak.rs found the old cookie still working on a peer
/// for a few milliseconds when the delete did not wait).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_all_logout_returns_after_every_live_peer_dropped_the_session() {
    let c = TestCluster::start(3, AckMode::All).await;
    for _ in 0..20 {
        let s = new_session();
        let receipt = c.node(0).store.put(s.clone()).await.unwrap();
        assert_eq!(receipt.replication, ReplicationAck::Acked { peers: 2 });
        assert!(c.node(1).store.delete(&s.id).await.unwrap());
        for i in 0..3 {
            assert!(
                !holds(&c.node(i).store, &s.id).await,
                "node {i} still holds the session right after the logout"
            );
        }
    }
}

fn batch_json(from: &str, to: &str, s: &Session) -> Vec<u8> {
    let mut s = s.clone();
    s.version = sessionlab_session::Version::new(1, from);
    serde_json::to_vec(&Batch {
        from: from.into(),
        to: to.into(),
        seq: 1,
        sent_ms: clock::now_ms(),
        messages: vec![Message::Upsert(
            Upsert {
                session: s,
                origin_ms: Some(clock::now_ms()),
                origin_us: None,
                ack: None,
                base: None,
            }
            .into(),
        )],
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_forged_stale_replayed_and_bad_requests_are_refused_and_change_nothing() {
    let c = TestCluster::start(2, AckMode::None).await;
    let n1 = c.node(0);
    let path = "/cluster/v1/batch";
    let url = format!("http://{}{path}", n1.addr);
    let s = new_session();
    let body = batch_json("node-2", "node-1", &s);
    let post = |headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let mut req = c.http.post(url.clone());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.body(body).send()
    };
    let headers = |h: auth::SignedHeaders| -> Vec<(&'static str, String)> {
        h.pairs().iter().map(|(k, v)| (*k, v.to_string())).collect()
    };

    let unsigned = post(vec![], body.clone()).await.unwrap();
    assert_eq!(unsigned.status(), 401);
    let err: serde_json::Value = unsigned.json().await.unwrap();
    assert!(err["error"].as_str().unwrap().contains("missing header"));

    let wrong_key: &[u8] = b"not-the-cluster-secret-not-at-all";
    let forged = sign_request(wrong_key, "node-2", "POST", path, &body, clock::now_ms());
    assert_eq!(
        post(headers(forged), body.clone()).await.unwrap().status(),
        401
    );

    let long_ago = clock::now_ms() - 31_000;
    let stale = sign_request(SECRET, "node-2", "POST", path, &body, long_ago);
    assert_eq!(
        post(headers(stale), body.clone()).await.unwrap().status(),
        401
    );

    let other_body = batch_json("node-2", "node-1", &new_session());
    let tampered = sign_request(SECRET, "node-2", "POST", path, &other_body, clock::now_ms());
    assert_eq!(
        post(headers(tampered), body.clone())
            .await
            .unwrap()
            .status(),
        401
    );

    assert!(
        !holds(&n1.store, &s.id).await,
        "nothing refused was applied"
    );
    for reason in ["unsigned", "forged", "stale"] {
        assert!(n1.handle.rejected_count(reason) >= 1, "{reason} counted");
    }

    // The genuine request is applied once; its replay is refused.
    let good = sign_request(SECRET, "node-2", "POST", path, &body, clock::now_ms());
    assert_eq!(
        post(headers(good.clone()), body.clone())
            .await
            .unwrap()
            .status(),
        204
    );
    assert!(holds(&n1.store, &s.id).await);
    assert_eq!(
        post(headers(good), body.clone()).await.unwrap().status(),
        401
    );
    assert_eq!(n1.handle.rejected_count("replay"), 1);

    // Signed, but not JSON: 400. Signed by one node, sent as another: 401.
    let resp = c
        .post_signed(0, "node-2", path, b"{not json".to_vec())
        .await;
    assert_eq!(resp.status(), 400);
    let s2 = new_session();
    let batch = |from: &str, to: &str| batch_json(from, to, &s2);
    let resp = c
        .post_signed(0, "node-3", path, batch("node-2", "node-1"))
        .await;
    assert_eq!(resp.status(), 401);
    // From a node that is not a peer: 403. Misaddressed: 400.
    let resp = c
        .post_signed(0, "node-9", path, batch("node-9", "node-1"))
        .await;
    assert_eq!(resp.status(), 403);
    let resp = c
        .post_signed(0, "node-2", path, batch("node-2", "node-5"))
        .await;
    assert_eq!(resp.status(), 400);
    assert!(!holds(&n1.store, &s2.id).await);

    // Oversized: refused before the body is read (413), also when it is
    // sent without a length.
    let huge = vec![b' '; MAX_BODY + 1];
    assert_eq!(
        c.post_signed(0, "node-2", path, huge.clone())
            .await
            .status(),
        413
    );
    let stream = futures::stream::iter(
        huge.chunks(8192)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    // Signed and fresh headers (the listener checks those before it reads
    // a byte of the body; an unsigned stream is a 401 at once).
    let mut req = c.http.post(url.clone());
    for (k, v) in sign_request(SECRET, "node-2", "POST", path, &huge, clock::now_ms()).pairs() {
        req = req.header(k, v);
    }
    let resp = req
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert!(n1.handle.rejected_count("oversized") >= 2);

    // The inspection and fault endpoints are signed too.
    let resp = c
        .http
        .get(format!("http://{}/cluster/v1/digest", n1.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = c
        .http
        .post(format!("http://{}/admin/v1/faults", n1.addr))
        .body(r#"{"drop":["node-2"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(n1.handle.faults().drop.is_empty());
    let resp = c.get_signed(0, "lab", "/cluster/v1/digest").await;
    assert_eq!(resp.status(), 200);
    let digest: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(digest["entries"].as_array().unwrap().len(), 1);
}

async fn set_faults(c: &TestCluster, i: usize, json: &str) -> reqwest::StatusCode {
    let body = json.as_bytes().to_vec();
    c.post_signed(i, "lab", "/admin/v1/faults", body)
        .await
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_by_fault_injection_heals_and_converges() {
    let c = TestCluster::start(3, AckMode::None).await;
    assert_eq!(
        set_faults(&c, 2, r#"{"drop":["node-1","node-2"],"delay_ms":0}"#).await,
        200
    );
    assert_eq!(
        set_faults(&c, 2, r#"{"drop":["node-7"]}"#).await,
        400,
        "unknown peer"
    );
    let resp = c.get_signed(2, "lab", "/admin/v1/faults").await;
    let current: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        current,
        serde_json::json!({"drop": ["node-1", "node-2"], "delay_ms": 0})
    );

    // Both sides see the cut.
    let seen_down = |i: usize, peer: &'static str| {
        let h = c.node(i).handle.clone();
        move || {
            let h = h.clone();
            async move { h.peer_status().iter().any(|p| p.id == peer && !p.up) }
        }
    };
    eventually("node-1 sees node-3 down", seen_down(0, "node-3")).await;
    eventually("node-3 sees node-1 down", seen_down(2, "node-1")).await;

    // Writes on both sides of the cut.
    let left = new_session();
    let right = new_session();
    c.node(0).store.put(left.clone()).await.unwrap();
    c.node(2).store.put(right.clone()).await.unwrap();
    c.until_held(1, &left.id, "node-2 gets the write from node-1")
        .await;
    assert!(
        !holds(&c.node(2).store, &left.id).await,
        "node-3 is cut off"
    );
    assert!(
        !holds(&c.node(0).store, &right.id).await,
        "node-1 is cut off"
    );

    // Heal: no new writes, anti-entropy brings both sides together.
    assert_eq!(set_faults(&c, 2, r#"{"drop":[],"delay_ms":0}"#).await, 200);
    for i in 0..3 {
        eventually("every node holds both writes", || async {
            holds(&c.node(i).store, &left.id).await && holds(&c.node(i).store, &right.id).await
        })
        .await;
    }
    // The digests agree (versions and last access included).
    let mut digests = Vec::new();
    for i in 0..3 {
        let resp = c.get_signed(i, "lab", "/cluster/v1/digest").await;
        let d: serde_json::Value = resp.json().await.unwrap();
        digests.push(d["entries"].clone());
    }
    assert_eq!(digests[0], digests[1]);
    assert_eq!(digests[1], digests[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_catches_up_before_it_is_ready() {
    let mut c = TestCluster::start(3, AckMode::None).await;
    c.stop(1).await;
    let mut ids = Vec::new();
    for _ in 0..50 {
        let s = new_session();
        c.node(0).store.put(s.clone()).await.unwrap();
        ids.push(s.id);
    }
    // Ready means caught up: every session is there already.
    restart_and_check(&mut c, 1, &ids).await;
}

/// The value of one sample of a Prometheus text exposition (0 if absent).
fn sample(text: &str, name_and_labels: &str) -> f64 {
    sessionlab_testkit::sample(text, name_and_labels).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_writes_is_batched_and_counted() {
    let c = TestCluster::start(3, AckMode::None).await;
    let mut registry = prometheus_client::registry::Registry::default();
    c.node(0).handle.register_metrics(&mut registry);
    let mut receiver = prometheus_client::registry::Registry::default();
    c.node(2).handle.register_metrics(&mut receiver);

    const WRITES: usize = 2_000;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut ids = Vec::new();
    for _ in 0..WRITES {
        let s = new_session();
        ids.push(s.id.clone());
        let store = c.node(0).store.clone();
        tasks.spawn(async move { store.put(s).await.map(|_| ()) });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    let written = start.elapsed();
    let last = ids.last().unwrap().clone();
    eventually("node-3 holds the last write", || {
        holds(&c.node(2).store, &last)
    })
    .await;
    eventually("node-3 holds every write", || async {
        c.node(2).store.count().await.unwrap() == WRITES
    })
    .await;
    let replicated = start.elapsed();

    let encode = || {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    };
    let sent = r#"replication_messages_total{peer="node-3",direction="sent"}"#;
    let batches = r#"replication_batches_total{peer="node-3",direction="sent"}"#;
    // A send is counted when its response is back.
    eventually("every message to node-3 is counted", || {
        let text = encode();
        async move { sample(&text, sent) >= WRITES as f64 }
    })
    .await;
    let text = encode();
    let (messages, batches) = (sample(&text, sent), sample(&text, batches));
    println!(
        "{WRITES} writes in {written:?}, on node-3 after {replicated:?}; \
         {messages} messages in {batches} batches to node-3"
    );
    assert!(
        messages >= WRITES as f64,
        "every write was sent: {messages}"
    );
    assert!(
        messages / batches >= 4.0,
        "a burst travels in batches, not one request per write: {messages} / {batches}"
    );
    // node-3 measured the lag of every write from node-1.
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &receiver).unwrap();
    let lagged = sample(&text, r#"replication_lag_seconds_count{origin="node-1"}"#);
    // Delivery is at least once: a batch whose answer was lost to a timeout
    // (a loaded CI machine) is sent again, and its second arrival is
    // measured too. So at least one measurement per write, not exactly one.
    assert!(
        lagged >= WRITES as f64,
        "every write's lag measured: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_view_shows_applied_writes_lag_and_cut_links_unsigned() {
    let c = TestCluster::start(2, AckMode::None).await;
    let s = written_and_replicated(&c).await;
    let view = |i: usize, query: &'static str| {
        let url = format!("http://{}/admin/v1/replication{query}", c.node(i).addr);
        let http = c.http.clone();
        async move {
            let resp = http.get(url).send().await.expect("request");
            assert_eq!(resp.status(), 200, "unsigned GET is allowed");
            resp.json::<serde_json::Value>().await.expect("json")
        }
    };
    let v = view(1, "").await;
    assert_eq!(v["node_id"], "node-2");
    let applied = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "upsert" && e["session"] == s.id.short())
        .unwrap_or_else(|| panic!("no upsert of the session in {v}"))
        .clone();
    assert_eq!(applied["peer"], "node-1");
    assert_eq!(applied["outcome"], "stored");
    assert!(applied["lag_ms"].as_f64().is_some(), "{applied}");
    let text = applied["text"].as_str().unwrap();
    assert!(!text.contains(s.id.as_str()), "a whole id in {text}");
    let link = &v["links"][0];
    assert_eq!(link["peer"], "node-1");
    assert_eq!(link["cut"], false);
    assert!(link["lag_ms"].as_f64().is_some(), "{link}");

    // `since` returns only newer events.
    let next = v["next_seq"].as_u64().unwrap();
    let since = format!("?since={}", next - 1);
    let url = format!("http://{}/admin/v1/replication{since}", c.node(1).addr);
    let newer: serde_json::Value = c.http.get(url).send().await.unwrap().json().await.unwrap();
    assert!(
        newer["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["seq"].as_u64().unwrap() >= next),
        "{newer}"
    );

    // A cut link says so.
    assert_eq!(set_faults(&c, 1, r#"{"drop":["node-1"]}"#).await, 200);
    let v = view(1, "?limit=5").await;
    assert_eq!(v["links"][0]["cut"], true);
    assert!(v["events"].as_array().unwrap().len() <= 5);
}

/// The listener checks the signature headers and their freshness before it
/// reads a body: an unsigned or stale request with a body far over the
/// limit is a 401 (JSON), not a 413, and only a fresh signed one gets as far
/// as the size check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_and_freshness_are_checked_before_the_body_is_read() {
    let c = TestCluster::start(2, AckMode::None).await;
    let path = "/cluster/v1/batch";
    let url = format!("http://{}{path}", c.node(0).addr);
    let huge = vec![b'x'; MAX_BODY * 4];

    let unsigned = c.http.post(&url).body(huge.clone()).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    let err: serde_json::Value = unsigned.json().await.unwrap();
    assert!(
        err["error"].as_str().unwrap().contains("missing header"),
        "{err}"
    );

    let long_ago = clock::now_ms() - 120_000;
    let stale = sign_request(SECRET, "node-2", "POST", path, &huge, long_ago);
    let mut req = c.http.post(&url);
    for (k, v) in stale.pairs() {
        req = req.header(k, v);
    }
    let resp = req.body(huge.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let err: serde_json::Value = resp.json().await.unwrap();
    assert!(
        err["error"].as_str().unwrap().contains("timestamp"),
        "{err}"
    );

    // Fresh and signed, but over the limit: 413 with a JSON error.
    let resp = c.post_signed(0, "node-2", path, huge).await;
    assert_eq!(resp.status(), 413);
    let err: serde_json::Value = resp.json().await.unwrap();
    assert!(
        err["error"].as_str().unwrap().contains("body over"),
        "{err}"
    );
}

/// A signed batch from a real peer is still refused, whole, if a version's
/// Lamport value is near `u64::MAX` (400) or a `user` or node id is over
/// its limit (413); nothing of it is applied and the clock does not move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_lamports_and_oversized_fields_from_a_peer_are_refused() {
    let c = TestCluster::start(2, AckMode::None).await;
    let path = "/cluster/v1/batch";
    let send = |s: Session| {
        let body = serde_json::to_vec(&Batch {
            from: "node-2".into(),
            to: "node-1".into(),
            seq: 1,
            sent_ms: clock::now_ms(),
            messages: vec![Message::Upsert(
                Upsert {
                    session: s,
                    origin_ms: None,
                    origin_us: None,
                    ack: None,
                    base: None,
                }
                .into(),
            )],
        })
        .unwrap();
        c.post_signed(0, "node-2", path, body)
    };
    let mut cases = Vec::new();
    let mut s = new_session();
    s.version = sessionlab_session::Version::new(u64::MAX, "node-2");
    cases.push((s, 400, "lamport"));
    let mut s = new_session();
    s.version = sessionlab_session::Version::new(u64::MAX - 1, "node-2");
    cases.push((s, 400, "lamport"));
    let mut s = new_session();
    s.version = sessionlab_session::Version::new(1, "node-2");
    s.user = Some("u".repeat(sessionlab_replication::MAX_USER_LEN + 1));
    cases.push((s, 413, "user"));
    let mut s = new_session();
    s.version = sessionlab_session::Version::new(1, "n".repeat(65));
    cases.push((s, 413, "node id"));
    for (s, status, what) in cases {
        let id = s.id.clone();
        let resp = send(s).await;
        assert_eq!(resp.status(), status, "{what}");
        let err: serde_json::Value = resp.json().await.unwrap();
        assert!(err["error"].as_str().unwrap().contains(what), "{err}");
        assert!(!holds(&c.node(0).store, &id).await, "{what}: applied");
    }
    // The clock was not moved to the end of its range: a local write gets
    // a small version, and the next one a larger one (no overflow).
    let r1 = c.node(0).store.put(new_session()).await.unwrap();
    let r2 = c.node(0).store.put(new_session()).await.unwrap();
    assert!(r1.version.lamport < 1_000, "{}", r1.version);
    assert!(r2.version.lamport > r1.version.lamport);
}

/// A snapshot far bigger than the cluster body limit still transfers: it
/// goes in pages bounded by `snapshot_page_bytes`, each well under the
/// limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_bigger_than_the_body_limit_transfers_in_pages() {
    let mut c = TestCluster::start(2, AckMode::None).await;
    c.stop(1).await;
    let mut ids = Vec::new();
    let mut data = serde_json::Map::new();
    data.insert("blob".into(), serde_json::Value::from("y".repeat(8 * 1024)));
    for _ in 0..96 {
        let mut s = new_session();
        s.set_data(&data);
        c.node(0).store.put(s.clone()).await.unwrap();
        ids.push(s.id);
    }
    // About 780 KiB of sessions against a 256 KiB body limit.
    const { assert!(96 * 8 * 1024 > 2 * MAX_BODY) };
    restart_and_check(&mut c, 1, &ids).await;
}

/// The interleaving a logout must win in the replicated store: a request
/// loads the session, another logs it out, the first writes. The write is
/// refused (409) on the node of the logout and on a node that got the
/// delete, and the session stays gone everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_loaded_before_a_logout_cannot_bring_the_session_back() {
    let c = TestCluster::start(2, AckMode::None).await;
    let s = written_and_replicated(&c).await;
    let on_1 = c.node(0).store.get(&s.id).await.unwrap().unwrap();
    let on_2 = c.node(1).store.get(&s.id).await.unwrap().unwrap();
    assert!(c.node(0).store.delete(&s.id).await.unwrap());
    eventually("node-2 applied the delete", || async {
        !holds(&c.node(1).store, &s.id).await
    })
    .await;
    assert_eq!(
        c.node(0).store.put(on_1).await.err(),
        Some(sessionlab_session::StoreError::Conflict)
    );
    assert_eq!(
        c.node(1).store.put(on_2).await.err(),
        Some(sessionlab_session::StoreError::Conflict)
    );
    assert!(!holds(&c.node(0).store, &s.id).await);
    assert!(!holds(&c.node(1).store, &s.id).await);
}

/// A graceful stop hands the queued changes to the live peers before the
/// replication stops: with node-1's outgoing batches held back 300 ms, the
/// writes it answered are still in its queue when it is told to stop; its
/// peer gets every one of them (a rolling restart used to lose them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_hands_the_queued_writes_to_the_peers_first() {
    let mut c = TestCluster::start(2, AckMode::None).await;
    assert_eq!(
        set_faults(&c, 0, r#"{"drop":[],"delay_ms":300}"#).await,
        200
    );
    let mut ids = Vec::new();
    for _ in 0..20 {
        let s = new_session();
        c.node(0).store.put(s.clone()).await.unwrap();
        ids.push(s.id);
    }
    c.stop(0).await;
    for id in &ids {
        assert!(
            holds(&c.node(1).store, id).await,
            "node-2 lacks {id} after node-1's stop"
        );
    }
}
