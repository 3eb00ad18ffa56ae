//! The dashboard's side of the admin listener: the page, the cluster view,
//! the traffic history, the lab buttons, and the guards around them.
//! (The page itself is tested in a real browser by
//! `crates/lab/tests/dashboard.rs`.)

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{Http, echo, eventually, lb};
use http::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_loads_without_a_token_but_its_data_needs_one() {
    let a = echo("node-1").await;
    let lb = lb(&["--backend", &a.spec(), "--admin-token", "s3cret"]).await;
    let http = Http::default();

    for path in [
        "/",
        "/dashboard",
        "/dashboard/app.js",
        "/dashboard/style.css",
    ] {
        let r = http.get(&lb.admin_url(path), &[]).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(r.headers.contains_key("content-security-policy"), "{path}");
    }
    let page = http.get(&lb.admin_url("/dashboard"), &[]).await;
    assert!(page.body.contains("/dashboard/app.js"));
    assert!(
        page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );

    for path in ["/admin/v1/cluster", "/admin/v1/history"] {
        let r = http.get(&lb.admin_url(path), &[]).await;
        assert_eq!(r.status, 401, "{path}");
        let r = http
            .get(&lb.admin_url(path), &[("authorization", "Bearer s3cret")])
            .await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    let r = http
        .send(Method::POST, &lb.admin_url("/admin/v1/lab/heal"), &[], b"")
        .await;
    assert_eq!(r.status, 401);
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_view_lists_backends_with_their_node_admin_addresses() {
    let (a, b) = (echo("node-1").await, echo("node-2").await);
    // node-1's "cluster listener" is an echo server: it answers, but not
    // with JSON, so the view says the node is not readable.
    let admin_of_a = format!("node-1={}", b.addr);
    let lb = lb(&["--backend", &a.spec(), "--node-admin", &admin_of_a]).await;
    let http = Http::default();

    let view = http.get(&lb.admin_url("/admin/v1/cluster"), &[]).await;
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

    // The add call takes the node's cluster listener too; remove forgets it.
    let c = echo("node-3").await;
    let body = format!(
        r#"{{"id":"node-3","addr":"{}","admin":"127.0.0.1:9"}}"#,
        c.addr
    );
    let r = http
        .send(
            Method::POST,
            &lb.admin_url("/admin/v1/backends"),
            &[],
            body.as_bytes(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let view = http
        .get(&lb.admin_url("/admin/v1/cluster"), &[])
        .await
        .json();
    assert_eq!(view["nodes"][1]["admin_addr"], "127.0.0.1:9");
    assert_eq!(view["nodes"][1]["reachable"], false);
    let r = http
        .send(
            Method::DELETE,
            &lb.admin_url("/admin/v1/backends/node-3"),
            &[],
            b"",
        )
        .await;
    assert_eq!(r.status, 200);
    let bad = r#"{"id":"node-4","addr":"127.0.0.1:8084","admin":"not-an-address"}"#;
    let r = http
        .send(
            Method::POST,
            &lb.admin_url("/admin/v1/backends"),
            &[],
            bad.as_bytes(),
        )
        .await;
    assert_eq!(r.status, 400);
    let list = http
        .get(&lb.admin_url("/admin/v1/backends"), &[])
        .await
        .json();
    assert_eq!(
        list["backends"].as_array().unwrap().len(),
        1,
        "a refused add adds nothing"
    );
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_counts_requests_per_second_per_backend() {
    let a = echo("node-1").await;
    let lb = lb(&["--backend", &a.spec()]).await;
    let http = Http::default();
    eventually(Duration::from_secs(10), "a second with traffic", || async {
        for _ in 0..20 {
            assert_eq!(http.get(&lb.url("/x"), &[]).await.status, 200);
        }
        let h = http
            .get(&lb.admin_url("/admin/v1/history"), &[])
            .await
            .json();
        h["backends"][0]["points"].as_array().is_some_and(|p| {
            p.iter()
                .any(|p| p[1].as_f64() > Some(0.0) && p[2].is_number())
        })
    })
    .await;
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_buttons_run_the_lab_command_or_say_why_not() {
    let a = echo("node-1").await;
    let http = Http::default();

    // Without --lab-dir.
    let plain = lb(&["--backend", &a.spec()]).await;
    let r = http
        .send(
            Method::POST,
            &plain.admin_url("/admin/v1/lab/kill/node-1"),
            &[],
            b"",
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["error"], "lab_not_configured");
    // Another web site may not press buttons, even when the LB could.
    let r = http
        .send(
            Method::POST,
            &plain.admin_url("/admin/v1/lab/heal"),
            &[("origin", "http://evil.example")],
            b"",
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "cross_origin");
    plain.stop().await;

    // With a run folder whose recorded bin_dir holds a stand-in for
    // `sessionlab` that prints its arguments.
    let run = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    let fake = bin.path().join("sessionlab");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho \"sessionlab $*\"\n[ \"$3\" = heal ] && exit 0\necho \"no such node\" >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        run.path().join("cluster.json"),
        serde_json::json!({ "bin_dir": bin.path() }).to_string(),
    )
    .unwrap();
    let run_dir = run.path().to_str().unwrap();
    let lab = lb(&["--backend", &a.spec(), "--lab-dir", run_dir]).await;
    let view = http
        .get(&lab.admin_url("/admin/v1/cluster"), &[])
        .await
        .json();
    assert_eq!(view["lab"]["enabled"], true, "{}", view["lab"]);

    let r = http
        .send(Method::POST, &lab.admin_url("/admin/v1/lab/heal"), &[], b"")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["stdout"],
        format!("sessionlab --run-dir {run_dir} heal")
    );
    let r = http
        .send(
            Method::POST,
            &lab.admin_url("/admin/v1/lab/kill/node-9"),
            &[],
            b"",
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    let body = r.json();
    assert_eq!(body["error"], "lab_command_failed");
    assert_eq!(body["stderr"], "no such node");
    assert_eq!(
        body["stdout"],
        format!("sessionlab --run-dir {run_dir} kill -- node-9")
    );
    let r = http
        .send(
            Method::POST,
            &lab.admin_url("/admin/v1/lab/kill/--help"),
            &[],
            b"",
        )
        .await;
    assert_eq!(r.status, 404, "a flag is not a node name");
    let r = http.get(&lab.admin_url("/admin/v1/lab/heal"), &[]).await;
    assert_eq!(r.status, 405);
    lab.stop().await;
}
