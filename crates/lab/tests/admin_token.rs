//! `sessionlab up` puts the LB's admin API behind a token it generates into
//! the run folder: without it (or from another web site) the API refuses,
//! and the lab's own commands and the dashboard still work with it.

mod support;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_guards_the_lb_admin_api_with_a_generated_token() {
    let tc = tokio::task::spawn_blocking(|| TestCluster::up("sticky", 2))
        .await
        .expect("sessionlab up");
    let token = tc
        .run_folder()
        .read_admin_token()
        .unwrap()
        .expect("up wrote an admin token");
    assert_eq!(token.len(), 64);
    let st = tc.state();
    assert!(
        st.lb.args.iter().all(|a| !a.contains(&token)),
        "the token is not on the LB's command line"
    );

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let backends = format!("{}/admin/v1/backends", tc.admin_url());
    let anonymous = http.get(&backends).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let evil = http
        .post(format!("{}/admin/v1/backends/node-1/drain", tc.admin_url()))
        .bearer_auth(&token)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), 403, "another site, even with the token");
    let operator = http
        .get(&backends)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(operator.status(), 200);
    let list: serde_json::Value = operator.json().await.unwrap();
    assert_eq!(list["backends"][0]["draining"], false, "nothing changed");

    // The dashboard reads the LB with it (its page asks the browser for none).
    if st.dashboard.is_some() {
        let view = http
            .get(format!("{}/admin/v1/cluster", tc.dashboard_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(view.status(), 200);
        let view = view.text().await.unwrap();
        assert!(view.contains("node-1"), "{view}");
    }

    // The lab's own commands send the token.
    tc.ok(&["drain", "node-1"]);
    tc.ok(&["undrain", "node-1"]);
    let status = tc.ok(&["status"]);
    assert!(status.contains("node-1"), "{status}");
    tc.ok(&["down"]);
    assert_eq!(tc.run_folder().read_admin_token().unwrap(), None);
}
