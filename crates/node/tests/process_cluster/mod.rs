//! `TestCluster`: real `sessionlab-node` processes replicating to each
//! other on loopback, for the tests that kill nodes.
//!
//! The process plumbing (spawning with a log file, signals, bounded waits,
//! free ports, the HTTP client) is the test kit's; what is here is the
//! cluster: which flags each node gets, and the requests the tests make.
//!
//! Ports are picked free by the OS before the nodes start (each node must
//! be told its peers' cluster ports up front), and kept for a restart so the
//! peers find the node again. Every process is SIGKILLed when the cluster is
//! dropped, so a failing test leaves nothing running. Each node's log goes
//! to a file in a temporary directory; failure messages quote its tail.
//!
//! Signed requests to the cluster port (faults, digests) use the crate's
//! own signer, [`sessionlab_replication::auth::sign_request`], as the lab
//! does.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use serde_json::Value;
use sessionlab_replication::auth;
use sessionlab_session::clock;
use sessionlab_testkit::node::{get_json, get_text, session_cookie};
use sessionlab_wire::status::NodeStatus;

pub const BIN: &str = env!("CARGO_BIN_EXE_sessionlab-node");
pub const SECRET: &str = "test-cluster-secret-0123456789abcdef";

/// One node: its id, ports, and the running process (if any).
pub struct ProcNode {
    pub id: String,
    pub app_port: u16,
    pub cluster_port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl ProcNode {
    pub fn app(&self) -> String {
        format!("http://127.0.0.1:{}", self.app_port)
    }

    pub fn cluster(&self) -> String {
        format!("http://127.0.0.1:{}", self.cluster_port)
    }
}

/// Real node processes; see the module docs.
pub struct TestCluster {
    pub nodes: Vec<ProcNode>,
    extra: Vec<String>,
    /// Members found at run time (`--replication backup`, `--join`)
    /// instead of `--peer` lists.
    joined: bool,
    _dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

impl TestCluster {
    /// Start `n` replicating nodes (`node-1` ..) with `extra` flags each,
    /// and wait until all report ready.
    pub async fn start(n: usize, extra: &[&str]) -> TestCluster {
        TestCluster::start_as(n, extra, false).await
    }

    /// Start `n` nodes in the backup topology that find each other at run
    /// time: node-1 first, alone, then every other with `--join` node-1;
    /// `extra` flags each (e.g. `--backups 2`).
    pub async fn start_joined(n: usize, extra: &[&str]) -> TestCluster {
        TestCluster::start_as(n, extra, true).await
    }

    async fn start_as(n: usize, extra: &[&str], joined: bool) -> TestCluster {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ports = sessionlab_testkit::free_ports(2 * n);
        let nodes = (1..=n)
            .map(|i| ProcNode {
                id: format!("node-{i}"),
                app_port: ports[2 * i - 2],
                cluster_port: ports[2 * i - 1],
                child: None,
                log: dir.path().join(format!("node-{i}.log")),
            })
            .collect();
        let mut c = TestCluster {
            nodes,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            joined,
            _dir: dir,
            http: sessionlab_testkit::client(),
        };
        if joined {
            // The first member must be up before the others join it.
            c.spawn(0);
            c.wait_ready(0, Duration::from_secs(30)).await;
        }
        for i in (joined as usize)..n {
            c.spawn(i);
        }
        for i in 0..n {
            c.wait_ready(i, Duration::from_secs(30)).await;
        }
        if joined {
            // Ready means "found a member", not "knows them all": the
            // tests compute owners over the whole cluster, so wait until
            // every node lists every other (gossip spreads the last joins).
            let all: BTreeSet<String> = c.nodes.iter().map(|n| n.id.clone()).collect();
            for i in 0..n {
                c.wait_members(i, &all, Duration::from_secs(30)).await;
            }
        }
        c
    }

    /// A joined cluster grows: start one more node (`node-{n+1}`) on new
    /// ports with `--join` the first running member; restarts nothing.
    /// Returns its index.
    pub fn add_node(&mut self) -> usize {
        let id = format!("node-{}", self.nodes.len() + 1);
        self.add_node_as(&id)
    }

    /// [`add_node`](Self::add_node) under the node id `id`.
    pub fn add_node_as(&mut self, id: &str) -> usize {
        let ports = sessionlab_testkit::free_ports(2);
        let i = self.nodes.len();
        let log = self
            .nodes
            .first()
            .and_then(|n| {
                n.log
                    .parent()
                    .map(|d| d.join(format!("node-{}.log", i + 1)))
            })
            .expect("a cluster has a first node");
        self.nodes.push(ProcNode {
            id: id.to_owned(),
            app_port: ports[0],
            cluster_port: ports[1],
            child: None,
            log,
        });
        self.spawn(i);
        i
    }

    pub fn node(&self, i: usize) -> &ProcNode {
        &self.nodes[i]
    }

    /// Start node `i`'s process (again) on its ports.
    pub fn spawn(&mut self, i: usize) {
        let me = &self.nodes[i];
        let mut args: Vec<String> = vec![
            "--id".into(),
            me.id.clone(),
            "--listen".into(),
            format!("127.0.0.1:{}", me.app_port),
            "--cluster-listen".into(),
            format!("127.0.0.1:{}", me.cluster_port),
            "--workers".into(),
            "1".into(),
            "--replication".into(),
            if self.joined { "backup" } else { "all-to-all" }.into(),
        ];
        if self.joined {
            // Join through the first other member that runs (none: the
            // first node of the cluster, alone).
            if let Some(p) = self
                .nodes
                .iter()
                .find(|p| p.id != me.id && p.child.is_some())
            {
                args.push("--join".into());
                args.push(format!("127.0.0.1:{}", p.cluster_port));
            }
        } else {
            for p in self.nodes.iter().filter(|p| p.id != me.id) {
                args.push("--peer".into());
                args.push(format!("{}=127.0.0.1:{}", p.id, p.cluster_port));
            }
        }
        args.extend(self.extra.iter().cloned());
        let envs = [
            ("SESSIONLAB_CLUSTER_SECRET", SECRET),
            ("SESSIONLAB_LOG", "info,actix_server=warn"),
        ];
        let child = sessionlab_testkit::spawn_logged(BIN, &args, &envs, &me.log);
        self.nodes[i].child = Some(child);
    }

    /// Node `i`'s process id (0 if it does not run).
    pub fn pid(&self, i: usize) -> u32 {
        self.nodes[i].child.as_ref().map_or(0, Child::id)
    }

    /// Whether node `i`'s process still runs.
    pub fn running(&mut self, i: usize) -> bool {
        self.nodes[i]
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL node `i` and reap it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            sessionlab_testkit::kill(&mut child);
        }
    }

    /// SIGTERM node `i` and wait (bounded) for it to exit.
    pub fn terminate(&mut self, i: usize, within: Duration) -> Option<ExitStatus> {
        let mut child = self.nodes[i].child.take()?;
        sessionlab_testkit::terminate(&mut child, within)
    }

    /// The last lines of node `i`'s log, for failure messages.
    pub fn log_tail(&self, i: usize) -> String {
        let tail = sessionlab_testkit::log_tail(&self.nodes[i].log, 30);
        format!("--- {} log ---\n{tail}", self.nodes[i].id)
    }

    /// The status of `GET /healthz` on node `i`'s cluster listener (0 if it
    /// does not answer).
    pub async fn health(&self, i: usize) -> u16 {
        match self
            .http
            .get(format!("{}/healthz", self.nodes[i].cluster()))
            .timeout(Duration::from_secs(2))
            .send()
            .await
        {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }

    /// Poll node `i` until it reports ready.
    pub async fn wait_ready(&self, i: usize, within: Duration) {
        let ready =
            sessionlab_testkit::within(within, || async { self.health(i).await == 200 }).await;
        assert!(
            ready,
            "node-{} not ready within {within:?}\n{}",
            i + 1,
            self.log_tail(i)
        );
    }

    /// The ids of the live members (alive or suspect) node `i` lists in
    /// its status.
    pub async fn members_seen(&self, i: usize) -> BTreeSet<String> {
        let status: NodeStatus = serde_json::from_value(self.status(i).await)
            .expect("the node's status follows the contract");
        let members = status.membership.map(|m| m.members).unwrap_or_default();
        members
            .into_iter()
            .filter(|m| m.state == "alive" || m.state == "suspect")
            .map(|m| m.id)
            .collect()
    }

    /// Poll node `i` until it lists every member of `want` as live.
    pub async fn wait_members(&self, i: usize, want: &BTreeSet<String>, within: Duration) {
        let seen = sessionlab_testkit::within(within, || async {
            self.members_seen(i).await.is_superset(want)
        })
        .await;
        assert!(
            seen,
            "node-{} does not list {want:?} within {within:?} (it lists {:?})\n{}",
            i + 1,
            self.members_seen(i).await,
            self.log_tail(i)
        );
    }

    /// A signed request to node `i`'s cluster listener, as `signer`.
    pub async fn signed(
        &self,
        i: usize,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
        secret: &str,
    ) -> reqwest::Response {
        let h = auth::sign_request(
            secret.as_bytes(),
            "lab",
            method.as_str(),
            path,
            &body,
            clock::now_ms(),
        );
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.nodes[i].cluster()))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in h.pairs() {
            req = req.header(k, v);
        }
        req.send().await.expect("the cluster listener answers")
    }

    /// Replace node `i`'s fault set (signed, as the lab does).
    pub async fn set_faults(&self, i: usize, drop: &[&str]) {
        let body = serde_json::to_vec(&serde_json::json!({"drop": drop, "delay_ms": 0})).unwrap();
        let res = self
            .signed(i, reqwest::Method::POST, "/admin/v1/faults", body, SECRET)
            .await;
        assert_eq!(res.status(), 200, "faults on node-{}", i + 1);
    }

    /// Node `i`'s signed digest: every live session and tombstone as
    /// `id -> (version, deleted, content digest)`.
    pub async fn digest(&self, i: usize) -> BTreeMap<String, (String, bool, u64)> {
        let res = self
            .signed(
                i,
                reqwest::Method::GET,
                "/cluster/v1/digest?limit=100000",
                Vec::new(),
                SECRET,
            )
            .await;
        let status = res.status();
        if status != 200 {
            let body = res.text().await.unwrap_or_default();
            panic!(
                "digest of node-{}: {status} {body}\n{}",
                i + 1,
                self.log_tail(i)
            );
        }
        let v: Value = res.json().await.unwrap();
        assert!(v["upto"].is_null(), "digest did not fit one page: {v}");
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let version = e["version"].to_string();
                (
                    e["id"].as_str().unwrap().to_owned(),
                    (
                        version,
                        e["deleted"].as_bool().unwrap_or(false),
                        e["content"].as_u64().unwrap_or(0),
                    ),
                )
            })
            .collect()
    }

    /// Poll until every running node in `nodes` holds the same digest.
    pub async fn wait_converged(
        &self,
        nodes: &[usize],
        within: Duration,
    ) -> BTreeMap<String, (String, bool, u64)> {
        let deadline = Instant::now() + within;
        loop {
            let mut digests = Vec::new();
            for &i in nodes {
                digests.push(self.digest(i).await);
            }
            if digests.windows(2).all(|w| w[0] == w[1]) {
                return digests.swap_remove(0);
            }
            if Instant::now() > deadline {
                let sizes: Vec<usize> = digests.iter().map(|d| d.len()).collect();
                let logs: Vec<String> = nodes.iter().map(|&i| self.log_tail(i)).collect();
                panic!(
                    "nodes {nodes:?} did not converge within {within:?} (sizes {sizes:?})\n{}",
                    logs.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `POST /api/counter/increment` on node `i` with `cookie` (may be
    /// empty: a new session). Returns (counter, cookie to use next, headers).
    pub async fn increment(&self, i: usize, cookie: &str) -> (u64, String, HeaderMap) {
        increment(&self.http, &self.nodes[i].app(), cookie).await
    }

    /// The counter of the session `cookie` as node `i` serves it (`None`:
    /// no such session there).
    pub async fn counter(&self, i: usize, cookie: &str) -> Option<u64> {
        let res = self
            .http
            .get(format!("{}/api/session", self.nodes[i].app()))
            .header("cookie", cookie)
            .send()
            .await
            .expect("the app answers");
        assert_eq!(res.status(), 200);
        let v: Value = res.json().await.unwrap();
        v["session"]["data"]["counter"].as_u64()
    }

    /// `GET /admin/v1/status` of node `i`.
    pub async fn status(&self, i: usize) -> Value {
        get_json(
            &self.http,
            format!("{}/admin/v1/status", self.nodes[i].cluster()),
        )
        .await
    }

    /// `GET /metrics` of node `i`.
    pub async fn metrics(&self, i: usize) -> String {
        get_text(&self.http, format!("{}/metrics", self.nodes[i].cluster())).await
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// `POST /api/counter/increment` at `app` with `cookie` (may be empty: a
/// new session). Returns (counter, cookie to use next, headers).
pub async fn increment(
    http: &reqwest::Client,
    app: &str,
    cookie: &str,
) -> (u64, String, HeaderMap) {
    let mut req = http.post(format!("{app}/api/counter/increment"));
    if !cookie.is_empty() {
        req = req.header("cookie", cookie);
    }
    let res = req.send().await.expect("the app answers");
    assert_eq!(res.status(), 200, "increment at {app}");
    let headers = res.headers().clone();
    let cookie = session_cookie(&headers).unwrap_or_else(|| cookie.to_owned());
    let v: Value = res.json().await.unwrap();
    (v["counter"].as_u64().unwrap(), cookie, headers)
}

/// The session id in a `SLSESSION=<id>` cookie.
pub fn cookie_id(cookie: &str) -> &str {
    cookie.trim_start_matches("SLSESSION=")
}
