//! The dashboard process in front of a real LB (in-process, on port 0):
//! the page, the cluster view, the traffic history, the lab buttons, and
//! the guards around them. (The page itself is tested in a real browser by
//! `crates/lab/tests/dashboard.rs`.)

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use http::Method;
use sessionlab_lab::Mode;
use sessionlab_lab::{ClusterState, LbState, NodeState, RunFolder};
use sessionlab_testkit::{Http, Lb, Resp, echo, lb};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A dashboard of this test: its address, and a sender that stops it when
/// dropped.
struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
    async fn stop(mut self) {
        drop(self.stop.take());
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), t)
                .await
                .expect("did not shut down")
                .unwrap();
        }
    }
}

/// A dashboard reading `lb`'s admin API, with these extra flags.
async fn dashboard(lb: &Lb, args: &[&str]) -> Running {
    let lb_admin = lb.admin_url("");
    let flags = ["sessionlab-dashboard", "--lb-admin", &lb_admin];
    let settings = sessionlab_dashboard::Config::try_parse_from(flags.iter().chain(args).copied())
        .expect("valid dashboard flags")
        .resolve()
        .expect("valid dashboard config");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        sessionlab_dashboard::run(settings, listener, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Running {
        addr,
        stop: Some(tx),
        task: Some(task),
    }
}

async fn send(method: Method, url: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    Http::default()
        .send(method, url, headers, body.as_bytes())
        .await
}

async fn get(url: &str, headers: &[(&str, &str)]) -> Resp {
    send(Method::GET, url, headers, "").await
}

async fn post(url: &str, headers: &[(&str, &str)]) -> Resp {
    send(Method::POST, url, headers, "").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_loads_without_a_token_but_its_data_needs_one() {
    let a = echo("node-1").await;
    let lb = lb(&["--backend", &a.spec(), "--admin-token", "s3cret"]).await;
    let dash = dashboard(&lb, &["--admin-token", "s3cret"]).await;

    for path in [
        "/",
        "/dashboard",
        "/dashboard/app.js",
        "/dashboard/style.css",
    ] {
        let r = get(&dash.url(path), &[]).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(r.headers.contains_key("content-security-policy"), "{path}");
    }
    let page = get(&dash.url("/dashboard"), &[]).await;
    assert!(page.body.contains("/dashboard/app.js"));
    assert!(
        page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );

    for path in [
        "/admin/v1/cluster",
        "/admin/v1/history",
        "/admin/v1/requests",
    ] {
        let r = get(&dash.url(path), &[]).await;
        assert_eq!(r.status, 401, "{path}");
        let r = get(&dash.url(path), &[("authorization", "Bearer s3cret")]).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    let r = post(&dash.url("/admin/v1/lab/heal"), &[]).await;
    assert_eq!(r.status, 401);
    // The dashboard's health, for the lab's wait.
    assert_eq!(get(&dash.url("/healthz"), &[]).await.status, 200);
    dash.stop().await;
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_view_lists_backends_with_their_node_admin_addresses() {
    let (a, b) = (echo("node-1").await, echo("node-2").await);
    // node-1's "cluster listener" is an echo server: it answers, but not
    // with JSON, so the view says the node is not readable.
    let admin_of_a = format!("node-1={}", b.addr);
    let lb = lb(&["--backend", &a.spec()]).await;
    let dash = dashboard(&lb, &["--node-admin", &admin_of_a]).await;

    let view = get(&dash.url("/admin/v1/cluster"), &[]).await;
    assert_eq!(view.status, 200, "{}", view.body);
    let view = view.json();
    assert_eq!(view["strategy"], "round-robin");
    assert_eq!(view["lab"]["enabled"], false);
    assert!(
        view["lab"]["reason"]
            .as_str()
            .unwrap()
            .contains("--lab-dir")
    );
    let n1 = &view["nodes"][0];
    assert_eq!(n1["id"], "node-1");
    assert_eq!(n1["admin_addr"], b.addr.to_string());
    assert_eq!(n1["lb"]["state"], "up");
    assert_eq!(n1["reachable"], false);
    assert!(n1["error"].as_str().unwrap().contains("not JSON"), "{n1}");

    // A backend added to the LB with its node's cluster listener shows with
    // it; removing it from the LB removes it from the view.
    let c = echo("node-3").await;
    let body = format!(
        r#"{{"id":"node-3","addr":"{}","admin":"127.0.0.1:9"}}"#,
        c.addr
    );
    let r = send(
        Method::POST,
        &format!("{}/admin/v1/backends", lb.admin_url("")),
        &[("content-type", "application/json")],
        &body,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let view = get(&dash.url("/admin/v1/cluster"), &[]).await.json();
    assert_eq!(view["nodes"][1]["admin_addr"], "127.0.0.1:9");
    assert_eq!(view["nodes"][1]["reachable"], false);
    let r = send(
        Method::DELETE,
        &format!("{}/admin/v1/backends/node-3", lb.admin_url("")),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    let view = get(&dash.url("/admin/v1/cluster"), &[]).await.json();
    assert_eq!(view["nodes"].as_array().unwrap().len(), 1, "{view}");

    // The routing log is the LB's, passed on.
    assert_eq!(get(&lb.url("/x"), &[]).await.status, 200);
    let log = get(&dash.url("/admin/v1/requests?limit=5"), &[]).await;
    assert_eq!(log.status, 200, "{}", log.body);
    assert_eq!(
        log.json()["requests"][0]["backend"],
        "node-1",
        "{}",
        log.body
    );
    let r = get(&dash.url("/admin/v1/requests?limit=lots"), &[]).await;
    assert_eq!(r.status, 400);

    // With the LB gone the view says so, promptly.
    lb.stop().await;
    let began = Instant::now();
    let r = get(&dash.url("/admin/v1/cluster"), &[]).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.json()["error"], "lb_unreachable");
    assert!(began.elapsed() < Duration::from_secs(5));
    dash.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_counts_requests_per_second_per_backend() {
    let a = echo("node-1").await;
    let lb = lb(&["--backend", &a.spec()]).await;
    let dash = dashboard(&lb, &[]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for _ in 0..20 {
            assert_eq!(get(&lb.url("/x"), &[]).await.status, 200);
        }
        let h = get(&dash.url("/admin/v1/history"), &[]).await.json();
        let seen = h["backends"][0]["points"].as_array().is_some_and(|p| {
            p.iter()
                .any(|p| p[1].as_f64() > Some(0.0) && p[2].is_number())
        });
        if seen {
            break;
        }
        assert!(Instant::now() < deadline, "a second with traffic: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    dash.stop().await;
    lb.stop().await;
}

/// A run folder with a `sticky-replicated` cluster of one node that is not
/// running (the lab's actions then act on the folder alone).
fn run_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let rf = RunFolder::new(dir.path());
    rf.create().unwrap();
    rf.write_secret(&sessionlab_lab::generate_secret().unwrap())
        .unwrap();
    let state = ClusterState {
        mode: Mode::StickyReplicated,
        bin_dir: "/nonexistent".into(),
        started_at_unix_ms: 1,
        ports: Default::default(),
        node_extra_args: vec![],
        lb_extra_args: vec![],
        lb: LbState {
            port: 1,
            admin_port: 1,
            process: None,
            args: vec![],
            ..Default::default()
        },
        dashboard: None,
        nodes: vec![NodeState {
            id: "node-1".into(),
            app_port: 1,
            cluster_port: 1,
            process: None,
            args: vec![],
        }],
        redis: None,
        redis_ha: None,
        cuts: Default::default(),
        delay_ms: 0,
        skews: Default::default(),
    };
    rf.save(&state).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_buttons_run_the_lab_command_or_say_why_not() {
    let a = echo("node-1").await;
    let lb = lb(&["--backend", &a.spec()]).await;

    // Without --lab-dir.
    let plain = dashboard(&lb, &[]).await;
    let r = post(&plain.url("/admin/v1/lab/kill/node-1"), &[]).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["error"], "lab_not_configured");
    // Another web site may not press buttons, even when the dashboard could.
    let r = post(
        &plain.url("/admin/v1/lab/heal"),
        &[("origin", "http://evil.example")],
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "cross_origin");
    // Drain needs no run folder: it is the LB's.
    let r = post(&plain.url("/admin/v1/lab/drain/node-1"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.json()["output"]
            .as_str()
            .unwrap()
            .contains("draining node-1")
    );
    let backends = get(&format!("{}/admin/v1/backends", lb.admin_url("")), &[]).await;
    assert_eq!(backends.json()["backends"][0]["draining"], true);
    plain.stop().await;

    // With a run folder: the lab's own actions, in the dashboard's process.
    let run = run_folder();
    let run_dir = run.path().to_str().unwrap();
    let lab = dashboard(&lb, &["--lab-dir", run_dir]).await;
    let view = get(&lab.url("/admin/v1/cluster"), &[]).await.json();
    assert_eq!(view["lab"]["enabled"], true, "{}", view["lab"]);

    let r = post(&lab.url("/admin/v1/lab/heal"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["command"], "sessionlab heal");
    assert!(
        r.json()["output"].as_str().unwrap().starts_with("healed"),
        "{}",
        r.body
    );
    let r = post(&lab.url("/admin/v1/lab/kill/node-9"), &[]).await;
    assert_eq!(r.status, 409, "{}", r.body);
    let body = r.json();
    assert_eq!(body["error"], "lab_command_failed");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("unknown node `node-9`; the nodes of this cluster are: node-1"),
        "{body}"
    );
    assert_eq!(body["command"], "sessionlab kill node-9");
    let r = post(&lab.url("/admin/v1/lab/kill/--help"), &[]).await;
    assert_eq!(r.status, 404, "a flag is not a node name");
    let r = get(&lab.url("/admin/v1/lab/heal"), &[]).await;
    assert_eq!(r.status, 405);
    lab.stop().await;
    lb.stop().await;
}

/// Without `--admin-token` the dashboard serves the user who started it
/// only: another user's connection (here `nobody`'s, which needs root to
/// arrange) is answered 403 on every route, the buttons included. Loopback
/// is open to every user of the machine; the kernel says whose socket it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_connection_to_a_tokenless_dashboard_is_refused() {
    let lb = lb(&[]).await;
    let dash = dashboard(&lb, &[]).await;
    assert_eq!(
        get(&dash.url("/"), &[]).await.status,
        200,
        "our own is served"
    );
    if !nix::unistd::geteuid().is_root() || !std::path::Path::new("/proc/net/tcp").exists() {
        println!("SKIPPED the other user's half: it needs root on Linux to connect as nobody");
        dash.stop().await;
        lb.stop().await;
        return;
    }
    let asks: Vec<(String, &str)> = [
        ("/", "GET"),
        ("/admin/v1/cluster", "GET"),
        ("/admin/v1/lab/heal", "POST"),
    ]
    .iter()
    .map(|(path, method)| (dash.url(path), *method))
    .collect();
    let answers = tokio::task::spawn_blocking(move || {
        use std::os::unix::process::CommandExt as _;
        asks.into_iter()
            .map(|(url, method)| {
                let out = std::process::Command::new("curl")
                    .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method])
                    .arg(&url)
                    .uid(65534)
                    .gid(65534)
                    .output()
                    .expect("curl");
                (
                    format!("{method} {url}"),
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                )
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for (ask, code) in answers {
        assert_eq!(code, "403", "{ask} as nobody");
    }
    assert_eq!(get(&dash.url("/"), &[]).await.status, 200, "ours still is");
    dash.stop().await;
    lb.stop().await;
}
