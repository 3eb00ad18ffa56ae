//! Shared pieces of the end-to-end tests: a `TestCluster` that drives the
//! real `sessionlab` binary against the real node and LB binaries in a temp
//! run folder on free ports, and stops everything it started when dropped.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use sessionlab_lab::{ClusterState, RunFolder};

/// Where cargo put `sessionlab`, and so the node and LB binaries too.
pub fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_sessionlab"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Panics with the build command if the node, LB or dashboard binary is
/// missing.
pub fn require_binaries() {
    for name in ["sessionlab-node", "sessionlab-lb", "sessionlab-dashboard"] {
        assert!(
            bin_dir().join(name).is_file(),
            "{name} is missing from {}: build it first with \
             `cargo build -p sessionlab-node -p sessionlab-lb -p sessionlab-dashboard --bins`",
            bin_dir().display()
        );
    }
}

/// The node rows of `sessionlab status --json` (not the LB, the dashboard
/// or Redis).
pub fn node_rows(status: &serde_json::Value) -> Vec<&serde_json::Value> {
    status["rows"]
        .as_array()
        .expect("status rows")
        .iter()
        .filter(|r| {
            r["process"]
                .as_str()
                .is_some_and(|p| p.starts_with("node-"))
        })
        .collect()
}

/// The row of `process` in `sessionlab status --json`, if there is one.
pub fn status_row(status: &serde_json::Value, process: &str) -> Option<serde_json::Value> {
    status["rows"]
        .as_array()
        .expect("status rows")
        .iter()
        .find(|r| r["process"] == process)
        .cloned()
}

/// `GET path` on the cluster listener at `addr` (`HOST:PORT`), signed
/// with the cluster `secret`: the status and the JSON body (`None` while
/// the node does not answer with JSON, within 3 s).
pub async fn signed_get(addr: &str, secret: &str, path: &str) -> Option<(u16, serde_json::Value)> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .ok()?;
    let mut req = http.get(format!("http://{addr}{path}"));
    for (k, v) in sessionlab_lab::sign(secret, "GET", path, b"").pairs() {
        req = req.header(k, v);
    }
    let resp = req.send().await.ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.json().await.ok()?))
}

/// The version of the session whose id starts with `prefix` in a node's
/// `/admin/v1/sessions` answer (`None`: not held).
pub fn version_in(sessions: &serde_json::Value, prefix: &str) -> Option<String> {
    sessions["sessions"]
        .as_array()?
        .iter()
        .find(|s| s["id_prefix"].as_str() == Some(prefix))
        .map(|s| s["version"].to_string())
}

/// Runs a command with a deadline; kills it if it overruns.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning a command");
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("waiting").is_some() {
            return child.wait_with_output().expect("collecting output");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collecting output");
            panic!(
                "command {cmd:?} did not finish within {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A run folder of its own, and the `sessionlab` binary pointed at it.
pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub run_dir: PathBuf,
}

impl TestCluster {
    /// A fresh run folder, no cluster yet.
    pub fn new() -> TestCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let run_dir = dir.path().join("run");
        TestCluster { dir, run_dir }
    }

    /// `sessionlab up --mode MODE --nodes N` on free ports; panics on failure.
    pub fn up(mode: &str, nodes: usize) -> TestCluster {
        TestCluster::up_with(mode, nodes, &[])
    }

    /// `up` with more arguments (`--node-arg ...`).
    pub fn up_with(mode: &str, nodes: usize, extra: &[&str]) -> TestCluster {
        require_binaries();
        let tc = TestCluster::new();
        let n = nodes.to_string();
        let mut args = vec!["up", "--mode", mode, "--nodes", &n];
        args.extend_from_slice(extra);
        let out = tc.sessionlab(&args);
        assert!(out.status.success(), "up failed:\n{}", text(&out));
        tc
    }

    /// Runs `sessionlab ARGS` (free ports for `up`); returns its output.
    pub fn sessionlab(&self, args: &[&str]) -> Output {
        run_bounded(&mut self.command(args), Duration::from_secs(180))
    }

    /// `sessionlab ARGS` on this run folder and free ports, to run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sessionlab"));
        cmd.args(args)
            .env("SESSIONLAB_RUN_DIR", &self.run_dir)
            .env("SESSIONLAB_BIN_DIR", bin_dir())
            .env("SESSIONLAB_LB_PORT", "0")
            .env("SESSIONLAB_ADMIN_PORT", "0")
            .env("SESSIONLAB_DASHBOARD_PORT", "0")
            .env("SESSIONLAB_NODE_PORT", "0")
            .env("SESSIONLAB_CLUSTER_PORT", "0")
            .env("SESSIONLAB_GRACE", "3s");
        cmd
    }

    /// Runs `sessionlab ARGS`, panics unless it succeeds, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.sessionlab(args);
        assert!(
            out.status.success(),
            "sessionlab {args:?} failed:\n{}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `sessionlab ARGS`, panics if it succeeds, returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        failed(args, &self.sessionlab(args))
    }

    /// Runs `sessionlab ARGS` with only `path` on `PATH` (a minute at
    /// most), panics if it succeeds, returns stderr.
    pub fn fails_with_path(&self, args: &[&str], path: &Path) -> String {
        let out = run_bounded(
            self.command(args).env("PATH", path),
            Duration::from_secs(60),
        );
        failed(args, &out)
    }

    pub fn run_folder(&self) -> RunFolder {
        RunFolder::new(&self.run_dir)
    }

    pub fn state(&self) -> ClusterState {
        self.run_folder().load_required().expect("cluster state")
    }

    pub fn app_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.state().lb.port)
    }

    /// The LB's admin API.
    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.state().lb.admin_port)
    }

    /// The dashboard.
    pub fn dashboard_url(&self) -> String {
        let port = self.state().dashboard.expect("a dashboard").port;
        format!("http://127.0.0.1:{port}")
    }

    pub fn cluster_url(&self, node: &str) -> String {
        let st = self.state();
        let n = st.node(node).expect("node");
        format!("http://127.0.0.1:{}", n.cluster_port)
    }

    /// `sessionlab status --json`, parsed.
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).expect("status json")
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let Ok(Some(state)) = self.run_folder().load() else {
            return;
        };
        let _ = self.sessionlab(&["down"]);
        // Backstop: whatever is still recorded and alive gets SIGKILL.
        for (_, p) in state.processes() {
            let _ = p.signal(Signal::SIGKILL);
        }
    }
}

/// stdout and stderr of a command, for failure messages.
/// The stderr of `sessionlab ARGS`, which must have failed.
fn failed(args: &[&str], out: &Output) -> String {
    assert!(
        !out.status.success(),
        "sessionlab {args:?} should have failed:\n{}",
        text(out)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A browser-like client: keeps cookies, does not follow redirects.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .unwrap()
}

/// What one app request returned: the node that served it and the JSON body.
pub struct Served {
    pub by: String,
    pub status: u16,
    pub body: serde_json::Value,
}

async fn served(resp: reqwest::Response) -> Served {
    let by = resp
        .headers()
        .get("x-served-by")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(serde_json::Value::Null);
    Served { by, status, body }
}

/// Logs in as `user` through `base` (the LB); returns who served it.
pub async fn login(client: &reqwest::Client, base: &str, user: &str) -> Served {
    let resp = client
        .post(format!("{base}/login"))
        .header("accept", "application/json")
        .form(&[("username", user), ("password", "sessionlab")])
        .send()
        .await
        .expect("login request");
    let s = served(resp).await;
    assert_eq!(s.status, 200, "login: {}", s.body);
    s
}

/// `GET /api/session`.
pub async fn session(client: &reqwest::Client, base: &str) -> Served {
    let resp = client
        .get(format!("{base}/api/session"))
        .send()
        .await
        .expect("session request");
    served(resp).await
}

/// `POST /api/counter/increment`.
pub async fn increment(client: &reqwest::Client, base: &str) -> Served {
    let resp = client
        .post(format!("{base}/api/counter/increment"))
        .header("accept", "application/json")
        .send()
        .await
        .expect("increment request");
    served(resp).await
}

/// `GET /api/session` through `base` until a node other than `gone` answers
/// it with 200 (the LB failed over), within `within`; that answer.
pub async fn served_elsewhere(
    client: &reqwest::Client,
    base: &str,
    gone: &str,
    within: Duration,
) -> Served {
    sessionlab_testkit::eventually(within, "failover", || async {
        let s = session(client, base).await;
        (s.status == 200 && !s.by.is_empty() && s.by != gone).then_some(s)
    })
    .await
}

/// The user of the session in a `/api/session` answer, if any.
pub fn user_of(s: &Served) -> Option<String> {
    s.body["session"]["user"].as_str().map(str::to_string)
}
