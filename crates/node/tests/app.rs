//! The demo app over real HTTP: login, counter and cart, cookie policy,
//! rotation at login, logout, url tracking mode.

use reqwest::Method;
use serde_json::Value;
use sessionlab_testkit::node::*;

#[tokio::test]
async fn login_as_alice_and_wrong_password() {
    let node = TestNode::start(config("node-1")).await;
    let app = node.app_client(&client());

    // Wrong password: 401, JSON for API clients, the page for browsers.
    let res = app.login_json("alice", "nope").await;
    assert_eq!(res.status(), 401);
    assert!(session_cookie(res.headers()).is_none());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "bad_credentials");
    let form = [("username", "mallory"), ("password", "sessionlab")];
    let res = app.post_form("/login", "", &form).await;
    assert_eq!(res.status(), 401);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Wrong user name or password")
    );

    // Right password: redirect home with a session cookie, user is alice.
    let res = app.login("alice", "").await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/");
    let cookie = session_cookie(res.headers()).expect("login sets the session cookie");
    let s = app.session(&cookie).await;
    assert_eq!(s["node_id"], "node-1");
    assert_eq!(s["session"]["user"], "alice");

    // The page says who you are and which node answered.
    let page = app.text("", &cookie).await;
    assert!(page.contains("alice") && page.contains("node-1") && page.contains("log out"));

    // JSON login answers with JSON.
    let res = app.login_json("bob", "sessionlab").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"], "bob");
    node.stop().await;
}

#[tokio::test]
async fn counter_and_cart_persist_across_requests() {
    let node = TestNode::start(config("node-1")).await;
    let app = node.app_client(&client());
    let (n, h) = app.increment("").await;
    assert_eq!(n, 1);
    let cookie = session_cookie(&h).expect("the first write creates a session");
    for want in 2..=3 {
        let (n, h) = app.increment(&cookie).await;
        assert_eq!(n, want);
        assert!(session_cookie(&h).is_none(), "the id is sent only once");
    }
    for (item, qty) in [("apple", "2"), ("pear", "1")] {
        let res = app
            .put(&format!("/api/cart/{item}?qty={qty}"), &cookie)
            .await;
        assert_eq!(res.status(), 200);
    }
    let res = app.delete("/api/cart/pear", &cookie).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["cart"], serde_json::json!({"apple": 2}));

    // The page's forms work too (post/redirect/get), and item names are escaped.
    let item = [("item", "<script>alert(1)</script>")];
    let res = app.post_form("/cart/add", &cookie, &item).await;
    assert_eq!(res.status(), 303);
    let res = app.post("/counter/increment", &cookie).await;
    assert_eq!(res.status(), 303);

    let s = app.session(&cookie).await;
    assert_eq!(s["session"]["data"]["counter"], 4);
    assert_eq!(s["session"]["data"]["cart"]["apple"], 2);
    let page = app.text("", &cookie).await;
    assert!(!page.contains("<script>alert(1)</script>"));
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    node.stop().await;
}

#[tokio::test]
async fn reading_never_creates_a_session() {
    let node = TestNode::start(config("node-1")).await;
    let c = client();
    for path in ["/", "/api/session", "/healthz", "/favicon.ico"] {
        let res = c.get(format!("{}{path}", node.app)).send().await.unwrap();
        assert!(set_cookies(res.headers()).is_empty(), "{path}");
    }
    let status = status(&c, &node).await;
    assert_eq!(status["sessions"], 0);
    node.stop().await;
}

#[tokio::test]
async fn cookie_attributes() {
    let node = TestNode::start(config("node-1")).await;
    let c = client();
    let app = node.app_client(&c);
    let (_, h) = app.increment("").await;
    let set = set_cookies(&h);
    assert_eq!(set.len(), 1);
    let attrs: Vec<&str> = set[0].split("; ").collect();
    assert!(attrs[0].starts_with("SLSESSION=") && attrs[0].len() == "SLSESSION=".len() + 32);
    for a in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(attrs.contains(&a), "{a} in {set:?}");
    }
    assert!(!set[0].contains("Secure"), "plain HTTP: no Secure");
    assert!(!set[0].contains("Max-Age"), "a browser-session cookie");

    // Behind a TLS-terminating balancer: Secure.
    let req = app.request(Method::POST, "/api/counter/increment", "");
    let res = NodeClient::send(req.header("x-forwarded-proto", "https")).await;
    assert!(set_cookies(res.headers())[0].contains("; Secure"));

    // Remember me: a persistent cookie for the absolute timeout (8h).
    let res = login(&c, &node.app, "", "alice", true).await;
    let set = set_cookies(res.headers());
    assert!(set[0].contains("Max-Age=28800"), "{set:?}");
    let res = app.login("alice", "").await;
    assert!(!set_cookies(res.headers())[0].contains("Max-Age"));
    node.stop().await;

    // --secure-cookies: always Secure.
    let node = TestNode::start(config_with("node-1", &["--secure-cookies"])).await;
    let (_, h) = node.app_client(&c).increment("").await;
    assert!(set_cookies(&h)[0].contains("; Secure"));
    node.stop().await;
}

#[tokio::test]
async fn id_changes_at_login_and_data_is_kept() {
    let node = TestNode::start(config("node-1")).await;
    let app = node.app_client(&client());
    let (_, h) = app.increment("").await;
    let before = session_cookie(&h).unwrap();
    app.put("/api/cart/apple", &before).await;

    let res = app.login("alice", &before).await;
    let after = session_cookie(res.headers()).expect("login sends the new id");
    assert_ne!(before, after, "login rotates the id");
    let s = app.session(&after).await;
    assert_eq!(s["session"]["user"], "alice");
    assert_eq!(s["session"]["data"]["counter"], 1);
    assert_eq!(s["session"]["data"]["cart"]["apple"], 1);
    // The pre-login id is dead: a planted id is worth nothing after login.
    assert_eq!(app.session(&before).await["session"], Value::Null);
    node.stop().await;
}

#[tokio::test]
async fn logout_deletes_the_session_and_expires_the_cookie() {
    let node = TestNode::start(config("node-1")).await;
    let c = client();
    let app = node.app_client(&c);
    let res = app.login("carol", "").await;
    let cookie = session_cookie(res.headers()).unwrap();
    let res = app.post("/logout", &cookie).await;
    assert_eq!(res.status(), 303);
    let set = set_cookies(res.headers());
    assert_eq!(set.len(), 1);
    assert!(set[0].starts_with("SLSESSION=;") && set[0].contains("Max-Age=0"));
    // Even someone who kept a copy of the id gets nothing.
    assert_eq!(app.session(&cookie).await["session"], Value::Null);
    let status = status(&c, &node).await;
    assert_eq!(status["sessions"], 0);
    node.stop().await;
}

#[tokio::test]
async fn url_tracking_mode() {
    let node = TestNode::start(config_with("node-u", &["--tracking", "url"])).await;
    let c = client();
    let app = node.app_client(&c);

    // A form post creates the session; the redirect carries the id.
    let res = app.post("/counter/increment", "").await;
    assert_eq!(res.status(), 303);
    assert!(
        set_cookies(res.headers()).is_empty(),
        "no cookies in url mode"
    );
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let sid = location
        .strip_prefix("/;sid=")
        .expect("redirect carries ;sid=");
    assert_eq!(sid.len(), 32);

    // The page's links and forms all carry it.
    let page = app.text(&location, "").await;
    for action in ["/counter/increment", "/cart/add", "/login", "/api/session"] {
        assert!(
            page.contains(&format!("\"{action};sid={sid}\"")),
            "{action}"
        );
    }
    let s = app.json(&format!("/api/session;sid={sid}"), "").await;
    assert_eq!(s["session"]["data"]["counter"], 1);

    // A cookie carrying the same id is not read in url mode.
    assert_eq!(
        app.session(&format!("SLSESSION={sid}")).await["session"],
        Value::Null
    );

    // An unknown (well-formed) ;sid= is no session, and is never adopted.
    let unknown = "A".repeat(32);
    let s = app.json(&format!("/api/session;sid={unknown}"), "").await;
    assert_eq!(s["session"], Value::Null);
    let res = app
        .post(&format!("/api/counter/increment;sid={unknown}"), "")
        .await;
    let fresh = res.headers()["x-session-path-param"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(fresh.starts_with(";sid=") && !fresh.contains(&unknown));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["counter"], 1);

    // Login rotates the id in the URL too.
    let form = [("username", "alice"), ("password", "sessionlab")];
    let res = app.post_form(&format!("/login;sid={sid}"), "", &form).await;
    let location = res.headers()["location"].to_str().unwrap();
    assert!(location.starts_with("/;sid=") && !location.contains(sid));
    node.stop().await;
}

#[tokio::test]
async fn route_suffix_names_the_node() {
    let node = TestNode::start(config_with("node-7", &["--route-suffix"])).await;
    let app = node.app_client(&client());
    let (_, h) = app.increment("").await;
    let cookie = session_cookie(&h).unwrap();
    assert!(cookie.ends_with(".node-7"), "{cookie}");
    let (n, h) = app.increment(&cookie).await;
    assert_eq!(n, 2, "the suffixed value is accepted back");
    assert!(session_cookie(&h).is_none());
    node.stop().await;
}
