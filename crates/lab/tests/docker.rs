//! The container end-to-end test: docker-compose.yml's `sticky-replicated`
//! profile on a private Docker network, broken the Docker way.
//!
//! 1. compose up; log in through the LB;
//! 2. `docker kill` the node that served the session: the next request is
//!    served by another node, with the same session;
//! 3. `docker network disconnect` a node, write, reconnect: every copy
//!    converges to the new version;
//! 4. compose down leaves no container and no network behind.
//!
//! And the `backup` profile, where the nodes are one service found by DNS:
//! `--scale node=3`, a login, `--scale node=5`, `--scale node=3`; the LB
//! follows each step by itself and the login keeps its data throughout.
//!
//! Ignored by default (it needs a Docker engine and the image):
//! `scripts/test.sh` runs it after `scripts/docker-up.sh build` when
//! `docker info` works. The image is `$SESSIONLAB_DOCKER_IMAGE`
//! (default `sessionlab:local`). Nodes find their peers and the LB its
//! backends by compose service name (`node-2:9081`).

mod support;

use std::process::Command;
use std::time::Duration;

use sessionlab_testkit::eventually;
use support::*;

const MODE: &str = "sticky-replicated";

fn docker(args: &[&str]) -> String {
    let out = run_bounded(Command::new("docker").args(args), Duration::from_secs(120));
    assert!(out.status.success(), "docker {args:?}:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A compose project of its own (name, ports, secrets); `down` on drop.
struct Project {
    name: String,
    image: String,
    secret: String,
    token: String,
    lb_port: u16,
    admin_port: u16,
    dashboard_port: u16,
}

impl Project {
    /// A project named `prefix` + this process's id, on free ports, with
    /// new secrets, using `$SESSIONLAB_DOCKER_IMAGE` (which must exist).
    fn new(prefix: &str) -> Self {
        let image =
            std::env::var("SESSIONLAB_DOCKER_IMAGE").unwrap_or_else(|_| "sessionlab:local".into());
        docker(&["image", "inspect", "-f", "{{.Id}}", &image]);
        Project {
            name: format!("{prefix}{}", std::process::id()),
            image,
            secret: sessionlab_lab::generate_secret().unwrap(),
            token: sessionlab_lab::generate_secret().unwrap(),
            lb_port: sessionlab_testkit::free_port(),
            admin_port: sessionlab_testkit::free_port(),
            dashboard_port: sessionlab_testkit::free_port(),
        }
    }

    fn compose(&self, args: &[&str]) -> String {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let mut cmd = Command::new("docker-compose");
        cmd.current_dir(root)
            .args(["-p", &self.name])
            .args(args)
            .env("SESSIONLAB_IMAGE", &self.image)
            .env("SESSIONLAB_CLUSTER_SECRET", &self.secret)
            .env("SESSIONLAB_ADMIN_TOKEN", &self.token)
            .env("SESSIONLAB_LB_PORT", self.lb_port.to_string())
            .env("SESSIONLAB_ADMIN_PORT", self.admin_port.to_string())
            .env("SESSIONLAB_DASHBOARD_PORT", self.dashboard_port.to_string());
        let out = run_bounded(&mut cmd, Duration::from_secs(180));
        assert!(
            out.status.success(),
            "docker-compose {args:?}:\n{}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn down(&self) -> String {
        self.compose(&[
            "--profile",
            "local",
            "--profile",
            "sticky",
            "--profile",
            "replicated",
            "--profile",
            MODE,
            "--profile",
            "backup",
            "down",
            "--remove-orphans",
            "--timeout",
            "5",
        ])
    }

    fn container(&self, node: &str) -> String {
        self.compose(&["ps", "-q", &format!("{MODE}-{node}")])
    }

    fn network(&self) -> String {
        format!("{}_lab", self.name)
    }

    /// The host address of a node's published cluster port.
    fn cluster_addr(&self, node: &str) -> String {
        self.compose(&["port", &format!("{MODE}-{node}"), "9081"])
    }

    fn leftovers(&self) -> (String, String) {
        let label = format!("label=com.docker.compose.project={}", self.name);
        (
            docker(&["ps", "-aq", "--filter", &label]),
            docker(&["network", "ls", "-q", "--filter", &label]),
        )
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.down()));
    }
}

/// The version of the session `prefix` on `node` (None: not held).
async fn version_on(p: &Project, node: &str, prefix: &str) -> Option<String> {
    let addr = p.cluster_addr(node);
    let (_, body) = signed_get(&addr, &p.secret, "/admin/v1/sessions").await?;
    version_in(&body, prefix)
}

/// `GET url` with the admin token, as JSON (None until it answers).
async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> Option<serde_json::Value> {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

async fn converged(p: &Project, nodes: &[&str], prefix: &str) -> String {
    eventually(Duration::from_secs(30), "copies to converge", || async {
        let mut seen = Vec::new();
        for n in nodes {
            seen.push(version_on(p, n, prefix).await?);
        }
        seen.windows(2)
            .all(|w| w[0] == w[1])
            .then(|| seen[0].clone())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine and the sessionlab image; scripts/test.sh runs it"]
async fn compose_sticky_replicated_survives_kill_and_disconnect_and_down_cleans_up() {
    let p = Project::new("sltest");
    let began = std::time::Instant::now();
    p.compose(&["--profile", MODE, "up", "-d", "--no-build"]);
    let base = format!("http://127.0.0.1:{}", p.lb_port);
    let admin = format!("http://127.0.0.1:{}/admin/v1/backends", p.admin_port);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    eventually(
        Duration::from_secs(60),
        "the LB to see 3 nodes up",
        || async {
            let view = get_json(&http, &admin, &p.token).await?;
            let up = count_where(&view["backends"], "state", "up".into())?;
            let app = http.get(format!("{base}/healthz")).send().await.ok()?;
            (up == 3 && app.status().is_success()).then_some(())
        },
    )
    .await;
    println!("compose {MODE}: up to healthy in {:?}", began.elapsed());

    // The dashboard service sees the three nodes through the LB and each
    // node's cluster listener.
    let cluster = format!("http://127.0.0.1:{}/admin/v1/cluster", p.dashboard_port);
    eventually(
        Duration::from_secs(30),
        "the dashboard to read every node",
        || async {
            let view = get_json(&http, &cluster, &p.token).await?;
            let readable = count_where(&view["nodes"], "reachable", true.into())?;
            (readable == 3).then_some(())
        },
    )
    .await;

    // 1. Log in through the LB.
    let client = browser();
    let owner = login(&client, &base, "alice").await.by;
    let counter = increment(&client, &base).await.body["counter"]
        .as_u64()
        .unwrap();
    let s = session(&client, &base).await;
    let prefix = s.body["session"]["id_prefix"].as_str().unwrap().to_string();
    let all = ["node-1", "node-2", "node-3"];
    converged(&p, &all, &prefix).await;

    // 2. docker kill the owner: another node serves the same session.
    docker(&["kill", &p.container(&owner)]);
    let after = served_elsewhere(&client, &base, &owner, Duration::from_secs(15)).await;
    assert_eq!(user_of(&after).as_deref(), Some("alice"), "{}", after.body);
    assert_eq!(after.body["session"]["data"]["counter"], counter);
    let serving = after.by.clone();

    // 3. Cut the third node off the network, write, reconnect: converge.
    let cut = *all.iter().find(|n| **n != owner && **n != serving).unwrap();
    let cid = p.container(cut);
    docker(&["network", "disconnect", &p.network(), &cid]);
    let w = increment(&client, &base).await;
    assert_eq!(w.by, serving);
    assert_eq!(w.body["counter"].as_u64(), Some(counter + 1));
    let service_alias = format!("{MODE}-{cut}");
    docker(&[
        "network",
        "connect",
        "--alias",
        cut,
        "--alias",
        &service_alias,
        &p.network(),
        &cid,
    ]);
    let v = converged(&p, &[serving.as_str(), cut], &prefix).await;
    assert_eq!(version_on(&p, &serving, &prefix).await, Some(v));

    // 4. Down leaves nothing behind.
    p.down();
    let (containers, networks) = p.leftovers();
    assert!(containers.is_empty(), "containers left: {containers}");
    assert!(networks.is_empty(), "networks left: {networks}");
    println!("compose {MODE}: whole test took {:?}", began.elapsed());
}

/// The LB's backends that are up (None until it answers).
async fn up_backends(http: &reqwest::Client, p: &Project) -> Option<usize> {
    let admin = format!("http://127.0.0.1:{}/admin/v1/backends", p.admin_port);
    let view = get_json(http, &admin, &p.token).await?;
    count_where(&view["backends"], "state", "up".into())
}

/// How many of the LB's up backends hold the session `prefix`, read from
/// each node's session list at the cluster listener the LB shows as its
/// `admin` (the container's address: the scaled nodes publish no ports).
async fn copies_behind_lb(http: &reqwest::Client, p: &Project, prefix: &str) -> Option<usize> {
    let admin = format!("http://127.0.0.1:{}/admin/v1/backends", p.admin_port);
    let view = get_json(http, &admin, &p.token).await?;
    let mut held = 0;
    for b in view["backends"].as_array()? {
        if b["state"] != "up" {
            continue;
        }
        let addr = b["admin"].as_str()?;
        let (_, body) = signed_get(addr, &p.secret, "/admin/v1/sessions").await?;
        held += usize::from(version_in(&body, prefix).is_some());
    }
    Some(held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine and the sessionlab image; scripts/test.sh runs it"]
async fn compose_backup_scales_3_to_5_to_3_under_a_login_and_loses_nothing() {
    let p = Project::new("slbackup");
    let began = std::time::Instant::now();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://127.0.0.1:{}", p.lb_port);
    let scale = |n: usize| {
        let arg = format!("node={n}");
        p.compose(&[
            "--profile",
            "backup",
            "up",
            "-d",
            "--no-build",
            "--scale",
            &arg,
        ]);
    };
    let exactly = |n: usize, what: &'static str| {
        let (http, p) = (&http, &p);
        eventually(Duration::from_secs(90), what, move || async move {
            (up_backends(http, p).await? == n).then_some(())
        })
    };
    scale(3);
    exactly(3, "the LB to find 3 nodes by DNS").await;
    println!("compose backup: 3 nodes up in {:?}", began.elapsed());

    let client = browser();
    login(&client, &base, "alice").await;
    let mut counter = increment(&client, &base).await.body["counter"]
        .as_u64()
        .unwrap();
    let s = session(&client, &base).await;
    let prefix = s.body["session"]["id_prefix"].as_str().unwrap().to_string();
    // Exactly K + 1 = 2 copies, whatever the cluster's size: on 3 nodes
    // now, and after each scale once the rebalance has settled.
    let two_copies = || {
        let (http, p, prefix) = (&http, &p, prefix.as_str());
        eventually(
            Duration::from_secs(60),
            "exactly two copies of alice's session",
            move || async move { (copies_behind_lb(http, p, prefix).await? == 2).then_some(()) },
        )
    };
    two_copies().await;

    for n in [5, 3] {
        let step = std::time::Instant::now();
        scale(n);
        exactly(n, "the LB to follow the scale").await;
        println!("compose backup: scaled to {n} in {:?}", step.elapsed());
        let s = session(&client, &base).await;
        assert_eq!(user_of(&s).as_deref(), Some("alice"), "{}", s.body);
        assert_eq!(
            s.body["session"]["data"]["counter"].as_u64(),
            Some(counter),
            "{}",
            s.body
        );
        let w = increment(&client, &base).await;
        assert_eq!(w.body["counter"].as_u64(), Some(counter + 1), "{}", w.body);
        counter += 1;
        two_copies().await;
    }
    p.down();
    let (containers, networks) = p.leftovers();
    assert!(containers.is_empty(), "containers left: {containers}");
    assert!(networks.is_empty(), "networks left: {networks}");
    println!("compose backup: whole test took {:?}", began.elapsed());
}

/// How many objects of the JSON array `list` have `field` equal to `value`
/// (`None` when `list` is not an array).
fn count_where(list: &serde_json::Value, field: &str, value: serde_json::Value) -> Option<usize> {
    Some(
        list.as_array()?
            .iter()
            .filter(|item| item[field] == value)
            .count(),
    )
}
