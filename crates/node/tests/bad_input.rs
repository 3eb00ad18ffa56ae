//! Bad input never becomes a 500: garbage, oversized, duplicated or unknown
//! session cookies are "no session"; oversized bodies and oversized session
//! data are 413 with a JSON error, and the old data stays.

use serde_json::Value;
use sessionlab_testkit::node::*;

#[tokio::test]
async fn bad_session_cookies_give_a_fresh_session() {
    let node = TestNode::start(config("node-1")).await;
    let app = node.app_client(&client());
    let (_, h) = app.increment("").await;
    let real = session_cookie(&h).unwrap();
    let real_id = real.trim_start_matches("SLSESSION=");

    let cases = [
        ("garbage", "SLSESSION=<<not an id>>; other=1".to_owned()),
        ("oversized", format!("SLSESSION={}", "A".repeat(6000))),
        (
            "duplicated",
            format!("SLSESSION={real_id}; SLSESSION={}", "B".repeat(32)),
        ),
        ("unknown", format!("SLSESSION={}", "C".repeat(32))),
        ("empty", "SLSESSION=".to_owned()),
        ("route only", format!("SLSESSION=.{real_id}")),
    ];
    for (what, cookie) in cases {
        let s = app.session(&cookie).await;
        assert_eq!(s["session"], Value::Null, "{what}: reads as no session");
        let (n, h) = app.increment(&cookie).await;
        assert_eq!(n, 1, "{what}: a write starts a fresh session");
        let fresh = session_cookie(&h).expect("a fresh id is issued");
        assert!(
            !cookie.contains(fresh.trim_start_matches("SLSESSION=")),
            "{what}: never adopted"
        );
    }
    // The real session was untouched by all that.
    assert_eq!(app.session(&real).await["session"]["data"]["counter"], 1);
    node.stop().await;
}

#[tokio::test]
async fn oversized_body_is_413_json() {
    let node = TestNode::start(config_with("node-1", &["--max-body-bytes", "4096"])).await;
    let app = node.app_client(&client());
    let big = "x".repeat(10_000);
    for path in ["/login", "/cart/add"] {
        let form = [("username", big.as_str()), ("item", big.as_str())];
        let res = app.post_form(path, "", &form).await;
        assert_eq!(res.status(), 413, "{path}");
        assert_eq!(res.headers()["x-served-by"], "node-1");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "body_too_large", "{path}");
    }
    node.stop().await;
}

#[tokio::test]
async fn session_data_over_the_limit_is_413_and_the_old_data_stays() {
    let node = TestNode::start(config_with("node-1", &["--max-session-bytes", "1024"])).await;
    let app = node.app_client(&client());
    let (_, h) = app.increment("").await;
    let cookie = session_cookie(&h).unwrap();

    // One huge item name.
    let huge = "h".repeat(2000);
    let res = app.put(&format!("/api/cart/{huge}"), &cookie).await;
    assert_eq!(res.status(), 413);
    assert_eq!(res.headers()["x-served-by"], "node-1");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "session_too_large");

    // Many items: accepted until the limit, then refused.
    let mut refused_at = None;
    for i in 0..200 {
        let res = app.put(&format!("/api/cart/item-{i:04}"), &cookie).await;
        if res.status() == 413 {
            refused_at = Some(i);
            break;
        }
        assert_eq!(res.status(), 200);
    }
    let refused_at = refused_at.expect("the cart hits the 1 KiB limit within 200 items");
    let s = app.session(&cookie).await;
    let data = &s["session"]["data"];
    assert_eq!(data["counter"], 1, "old data kept");
    let cart = data["cart"].as_object().unwrap();
    assert_eq!(cart.len(), refused_at, "everything before the refusal kept");
    assert!(!cart.contains_key(&huge));
    node.stop().await;
}

#[tokio::test]
async fn every_answer_names_the_node_even_404_and_405() {
    let node = TestNode::start(config("node-9")).await;
    let c = client();
    let app = node.app_client(&c);
    let res = app.get("/no/such/page", "").await;
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["x-served-by"], "node-9");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
    let res = app.delete("/api/session", "").await;
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["x-served-by"], "node-9");
    let res = app.put("/api/cart/x?qty=-1", "").await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["x-served-by"], "node-9");
    let res = node.cluster_client(&c).get("/nope", "").await;
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["x-served-by"], "node-9");
    node.stop().await;
}
