//! The node's optional defences against a stolen or leaked id:
//! `--bind-session user-agent` and the demo page's `--referrer-policy`.

use reqwest::Method;
use serde_json::Value;
use sessionlab_node::ReferrerPolicy;
use sessionlab_testkit::node::*;

async fn read_as(c: &reqwest::Client, base: &str, cookie: &str, ua: &str) -> Value {
    let req = NodeClient::new(c, base).request(Method::GET, "/api/session", cookie);
    let res = NodeClient::send(req.header("user-agent", ua)).await;
    res.json().await.unwrap()
}

#[tokio::test]
async fn a_bound_session_presented_with_another_user_agent_is_no_session() {
    let cfg = config_with("node-b", &["--bind-session", "user-agent"]);
    let node = TestNode::start(cfg).await;
    let c = client();
    let form = [("username", "alice"), ("password", "sessionlab")];
    let req = node.app_client(&c).request(Method::POST, "/login", "");
    let res = NodeClient::send(req.header("user-agent", "Firefox/140").form(&form)).await;
    let cookie = session_cookie(res.headers()).unwrap();
    let v = read_as(&c, &node.app, &cookie, "Firefox/140").await;
    assert_eq!(v["session"]["user"], "alice");

    // The thief's client has its own User-Agent: refused, counted.
    let v = read_as(&c, &node.app, &cookie, "curl/8.5").await;
    assert_eq!(v["session"], Value::Null);
    let metrics = get_text(&c, format!("{}/metrics", node.cluster)).await;
    assert!(
        metrics.contains(r#"sessionlab_session_binding_refused_total{node="node-b"} 1"#),
        "{metrics}"
    );
    // A thief who copies the header too gets in: a weak defence.
    let v = read_as(&c, &node.app, &cookie, "Firefox/140").await;
    assert_eq!(v["session"]["user"], "alice");
}

#[tokio::test]
async fn url_mode_pages_link_out_and_say_no_referrer_unless_told_otherwise() {
    for (policy, header) in [
        (ReferrerPolicy::NoReferrer, Some("no-referrer")),
        (ReferrerPolicy::UnsafeUrl, Some("unsafe-url")),
        (ReferrerPolicy::Unset, None),
    ] {
        let mut cfg = config_with("node-u", &["--tracking", "url"]);
        cfg.referrer_policy = policy;
        let node = TestNode::start(cfg).await;
        let res = client().get(format!("{}/", node.app)).send().await.unwrap();
        assert_eq!(
            res.headers()
                .get("referrer-policy")
                .map(|v| v.to_str().unwrap()),
            header
        );
        let html = res.text().await.unwrap();
        assert!(html.contains(sessionlab_node::EXTERNAL_LINK));
    }
}
