//! A logout that wins across replicas, with real processes: the lab's own
//! reproduction of a lost logout.
//!
//! `sessionlab up --mode sticky-replicated`, `sessionlab partition node-2`,
//! bob logs in on node-1 (so node-2, cut off, never holds his session), his
//! cookie's `POST /logout` goes to node-2 (which answers 303 and expires
//! the cookie), `sessionlab heal`: bob's cookie must be logged out on all
//! three nodes, node-2 included, and stay so.

mod support;

use std::time::Duration;

// `client()` sends only the cookies it is given (no cookie store), so one
// cookie can be replayed to any node.
use sessionlab_testkit::{client, cookie_pair, eventually};
use support::*;

/// The user `cookie` is logged in as on the node at `port` (`None`: not
/// logged in there).
async fn user_on(http: &reqwest::Client, port: u16, cookie: &str) -> Option<String> {
    let resp = http
        .get(format!("http://127.0.0.1:{port}/api/session"))
        .header("cookie", cookie)
        .send()
        .await
        .ok()?;
    let body: serde_json::Value = resp.json().await.ok()?;
    body["session"]["user"].as_str().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_a_partitioned_node_stays_logged_out_everywhere_after_heal() {
    let tc = TestCluster::up("sticky-replicated", 3);
    let st = tc.state();
    let port = |id: &str| st.node(id).unwrap().app_port;
    let http = client();

    let out = tc.ok(&["partition", "node-2"]);
    assert!(out.contains("partitioned node-2"), "{out}");

    // bob logs in on node-1; node-3 gets his session, node-2 cannot.
    let resp = http
        .post(format!("http://127.0.0.1:{}/login", port("node-1")))
        .header("accept", "application/json")
        .form(&[("username", "bob"), ("password", "sessionlab")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = cookie_pair(resp.headers(), sessionlab_wire::SESSION_COOKIE)
        .expect("login sets the session cookie");
    eventually(
        Duration::from_secs(5),
        "bob's session on node-3",
        || async {
            (user_on(&http, port("node-3"), &cookie).await.as_deref() == Some("bob")).then_some(())
        },
    )
    .await;
    assert_eq!(
        user_on(&http, port("node-2"), &cookie).await,
        None,
        "node-2 is cut off and must not hold bob's session"
    );

    // His logout reaches node-2, which does not hold the session.
    let resp = http
        .post(format!("http://127.0.0.1:{}/logout", port("node-2")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let expired = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.starts_with("SLSESSION=") && v.contains("Max-Age=0"));
    assert!(expired, "the logout expires the cookie");
    // Still logged in across the partition, for now: node-1 and node-3
    // cannot hear node-2.
    assert_eq!(
        user_on(&http, port("node-1"), &cookie).await.as_deref(),
        Some("bob")
    );

    let out = tc.ok(&["heal"]);
    assert!(out.contains("healed"), "{out}");

    // After the heal the logout wins on every node...
    for node in ["node-1", "node-2", "node-3"] {
        eventually(
            Duration::from_secs(10),
            &format!("bob logged out on {node}"),
            || async {
                user_on(&http, port(node), &cookie)
                    .await
                    .is_none()
                    .then_some(())
            },
        )
        .await;
    }
    // ...and stays won: a write with the old cookie does not bring the
    // session back anywhere.
    for node in ["node-1", "node-3"] {
        let _ = http
            .post(format!(
                "http://127.0.0.1:{}/api/counter/increment",
                port(node)
            ))
            .header("cookie", &cookie)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for node in ["node-1", "node-2", "node-3"] {
        assert_eq!(
            user_on(&http, port(node), &cookie).await,
            None,
            "bob's logged-out cookie works again on {node}"
        );
    }
}
