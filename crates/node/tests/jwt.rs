//! `--auth jwt` through HTTP: login, the same API shapes as session mode,
//! refresh rotation and reuse detection, logout's deny-list, every kind of
//! bad token refused with its reason, and the key flags.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};
use sessionlab_node::NodeOptions;
use sessionlab_session::jwt::{Claims, TokenType, peek_payload};
use sessionlab_session::{SessionId, clock};
use sessionlab_testkit::node::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn jwt_config(id: &str) -> NodeOptions {
    jwt_config_with(id, &[])
}

fn jwt_config_with(id: &str, flags: &[&str]) -> NodeOptions {
    let jwt = ["--auth", "jwt", "--jwt-secret", SECRET];
    config_with(id, &[&jwt[..], flags].concat())
}

async fn jwt_node(id: &str) -> TestNode {
    TestNode::start(jwt_config(id)).await
}

/// `POST /auth/login` with JSON `body`; returns the answer.
async fn json_login(app: &NodeClient, body: Value) -> reqwest::Response {
    NodeClient::send(app.request(Method::POST, "/auth/login", "").json(&body)).await
}

/// `POST /auth/login` as JSON; returns the body.
async fn token_login(app: &NodeClient, user: &str) -> Value {
    let res = json_login(app, json!({"username": user, "password": "sessionlab"})).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// `method path` with `token` as the bearer; returns (status, JSON body).
async fn call(app: &NodeClient, method: Method, path: &str, token: &str) -> (u16, Value) {
    let res = NodeClient::send(app.request(method, path, "").bearer_auth(token)).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn get_session(app: &NodeClient, token: &str) -> (u16, Value) {
    call(app, Method::GET, "/api/session", token).await
}

async fn refresh(app: &NodeClient, refresh_token: &str) -> (u16, Value) {
    let form = [("refresh_token", refresh_token)];
    let res = app.post_form("/auth/refresh", "", &form).await;
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn login_then_the_api_answers_as_in_session_mode() {
    let node = jwt_node("node-j").await;
    let app = node.app_client(&client());
    let pair = token_login(&app, "alice").await;
    let keys: Vec<&str> = pair
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "access_token",
            "expires_in",
            "refresh_expires_in",
            "refresh_token",
            "token_type"
        ]
    );
    assert_eq!(pair["token_type"], "Bearer");
    assert_eq!(pair["expires_in"], 300);
    assert_eq!(pair["refresh_expires_in"], 3600);
    let access = pair["access_token"].as_str().unwrap();
    // Signed, not encrypted: anyone can read who it is for.
    assert_eq!(peek_payload(access).unwrap()["sub"], "alice");

    let (s, v) = get_session(&app, access).await;
    assert_eq!(s, 200);
    assert_eq!(v["node_id"], "node-j");
    assert_eq!(v["session"]["user"], "alice");
    assert_eq!(v["session"]["data"], serde_json::json!({}));

    let url = "/api/counter/increment";
    let res = NodeClient::send(app.request(Method::POST, url, "").bearer_auth(access)).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers().get("set-cookie").is_none(),
        "no cookies in jwt mode"
    );
    let v: Value = res.json().await.unwrap();
    assert_eq!(v, serde_json::json!({"node_id": "node-j", "counter": 1}));
    let (s, v) = call(&app, Method::PUT, "/api/cart/apple?qty=2", access).await;
    assert_eq!((s, &v["cart"]), (200, &serde_json::json!({"apple": 2})));
    let (_, v) = get_session(&app, access).await;
    assert_eq!(v["session"]["data"]["counter"], 1);
    assert_eq!(v["session"]["data"]["cart"]["apple"], 2);
    let (s, v) = call(&app, Method::DELETE, "/api/cart/apple", access).await;
    assert_eq!((s, &v["cart"]), (200, &serde_json::json!({})));

    // A form login works too, and is a separate login with its own data.
    let form = [("username", "alice"), ("password", "sessionlab")];
    let res = app.post_form("/auth/login", "", &form).await;
    let other: Value = res.json().await.unwrap();
    let (_, v) = get_session(&app, other["access_token"].as_str().unwrap()).await;
    assert_eq!(v["session"]["data"], serde_json::json!({}));

    // No token: reads show no session, writes need a login.
    let v = app.session("").await;
    assert_eq!(v["session"], Value::Null);
    let res = app.post(url, "").await;
    assert_eq!(res.status(), 401);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["reason"], "missing_token");

    // Wrong password, and the session-mode form login, are refused.
    let res = json_login(&app, json!({"username": "alice", "password": "nope"})).await;
    assert_eq!(res.status(), 401);
    let res = app.login("alice", "").await;
    assert_eq!(res.status(), 400);
    let res = NodeClient::send(app.request(Method::POST, "/logout", "").bearer_auth(access)).await;
    assert_eq!(
        res.status(),
        400,
        "the form logout would not deny the token"
    );
    // The demo page is the script page, showing the decoded payload.
    let page = app.get("/", "").await;
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("/auth/login") && html.contains("decoded"),
        "{html}"
    );
}

#[tokio::test]
async fn refresh_rotates_reuse_revokes_the_family_and_logout_denies_the_token() {
    let node = jwt_node("node-j").await;
    let app = node.app_client(&client());
    let first = token_login(&app, "bob").await;
    let r1 = first["refresh_token"].as_str().unwrap();
    let (s, second) = refresh(&app, r1).await;
    assert_eq!(s, 200);
    let a2 = second["access_token"].as_str().unwrap();
    let r2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(r1, r2);
    assert_eq!(get_session(&app, a2).await.0, 200);

    // The used refresh token comes back (a thief replaying it): the whole
    // family dies, the legitimate holder's newer token with it.
    let (s, v) = refresh(&app, r1).await;
    assert_eq!(
        (s, v["reason"].as_str()),
        (401, Some("refresh_reuse_detected"))
    );
    let (s, v) = refresh(&app, r2).await;
    assert_eq!((s, v["reason"].as_str()), (401, Some("revoked")));
    // Its access token still works until it expires: only logout
    // deny-lists an access token.
    assert_eq!(get_session(&app, a2).await.0, 200);

    let pair = token_login(&app, "carol").await;
    let access = pair["access_token"].as_str().unwrap();
    let (s, _) = call(&app, Method::POST, "/api/counter/increment", access).await;
    assert_eq!(s, 200);
    let (s, v) = call(&app, Method::POST, "/auth/logout", access).await;
    assert_eq!((s, &v["logged_out"]), (200, &Value::Bool(true)));
    let (s, v) = get_session(&app, access).await;
    assert_eq!((s, v["reason"].as_str()), (401, Some("revoked")));
    let (s, v) = refresh(&app, pair["refresh_token"].as_str().unwrap()).await;
    assert_eq!((s, v["reason"].as_str()), (401, Some("revoked")));
    let res = app.post("/auth/logout", "").await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
}

/// Claims like the node's, for forging tokens.
fn claims(typ: TokenType, exp_in: i64) -> Claims {
    let now = clock::now_ms() / 1000;
    Claims {
        iss: "sessionlab".into(),
        aud: "sessionlab-demo".into(),
        sub: "alice".into(),
        exp: (now as i64 + exp_in) as u64,
        nbf: now - 120,
        iat: now - 120,
        jti: SessionId::generate().as_str().to_owned(),
        typ,
        fam: SessionId::generate().as_str().to_owned(),
    }
}

fn sign(alg: Algorithm, c: &Claims) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        c,
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn bad_tokens_are_401_with_their_reason() {
    let node = jwt_node("node-j").await;
    let c = client();
    let app = node.app_client(&c);
    let pair = token_login(&app, "alice").await;
    let access = pair["access_token"].as_str().unwrap();

    // Tampered: the payload says mallory, the signature was for alice.
    let parts: Vec<&str> = access.split('.').collect();
    let mut payload = peek_payload(access).unwrap();
    payload["sub"] = "mallory".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap()),
        parts[2]
    );
    // alg none: no signature at all.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    let cases = [
        ("tampered", forged, "bad_signature"),
        ("alg none", none, "wrong_algorithm"),
        (
            "HS384 with the right secret",
            sign(Algorithm::HS384, &claims(TokenType::Access, 300)),
            "wrong_algorithm",
        ),
        (
            "expired a second ago",
            sign(Algorithm::HS256, &claims(TokenType::Access, -1)),
            "expired",
        ),
        (
            "a refresh token as access token",
            pair["refresh_token"].as_str().unwrap().to_owned(),
            "wrong_type",
        ),
        ("garbage", "not.a.jwt".to_owned(), "malformed"),
    ];
    for (what, token, reason) in cases {
        let req = app.request(Method::GET, "/api/session", "");
        let res = NodeClient::send(req.bearer_auth(&token)).await;
        assert_eq!(res.status(), 401, "{what}");
        assert!(
            res.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"], "invalid_token", "{what}: {v}");
        assert_eq!(v["reason"], reason, "{what}: {v}");
    }
    // A correctly signed token of ours still passes (the forging helper
    // itself is right).
    let good = sign(Algorithm::HS256, &claims(TokenType::Access, 300));
    assert_eq!(get_session(&app, &good).await.0, 200);
    // An access token where a refresh token belongs.
    let (s, v) = refresh(&app, access).await;
    assert_eq!((s, v["reason"].as_str()), (401, Some("wrong_type")));
    let metrics = get_text(&c, format!("{}/metrics", node.cluster)).await;
    assert!(
        metrics
            .contains(r#"sessionlab_tokens_refused_total{node="node-j",reason="bad_signature"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn logout_is_node_local_unless_the_deny_list_is_shared() {
    // Two nodes with the same secret but their own memory: a token from one
    // is accepted by the other (stateless), and so is a token logged out on
    // the other, because the deny-list lives in a store they do not share.
    let a = jwt_node("node-a").await;
    let b = jwt_node("node-b").await;
    let c = client();
    let (app_a, app_b) = (a.app_client(&c), b.app_client(&c));
    let pair = token_login(&app_a, "alice").await;
    let access = pair["access_token"].as_str().unwrap();
    assert_eq!(get_session(&app_b, access).await.0, 200);
    let (s, _) = call(&app_a, Method::POST, "/auth/logout", access).await;
    assert_eq!(s, 200);
    assert_eq!(get_session(&app_a, access).await.0, 401);
    assert_eq!(
        get_session(&app_b, access).await.0,
        200,
        "node-b never heard of the logout"
    );

    // With one shared store (Redis) the logout holds everywhere.
    let redis = sessionlab_testkit::RedisServer::start();
    let url = redis.url();
    let shared = |id: &str| jwt_config_with(id, &["--store", "redis", "--redis-url", &url]);
    let node_a = TestNode::start(shared("node-a")).await;
    let node_b = TestNode::start(shared("node-b")).await;
    let (ra, rb) = (node_a.app_client(&c), node_b.app_client(&c));
    let pair = token_login(&ra, "alice").await;
    let access = pair["access_token"].as_str().unwrap();
    let (s, _) = call(&rb, Method::POST, "/api/counter/increment", access).await;
    assert_eq!(s, 200);
    let (_, v) = get_session(&ra, access).await;
    assert_eq!(
        v["session"]["data"]["counter"], 1,
        "the login's data is shared"
    );
    let (s, _) = call(&rb, Method::POST, "/auth/logout", access).await;
    assert_eq!(s, 200);
    let (s, v) = get_session(&ra, access).await;
    assert_eq!((s, v["reason"].as_str()), (401, Some("revoked")));
}

#[tokio::test]
async fn eddsa_key_files_sign_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("jwt.key");
    let public = dir.path().join("jwt.pub");
    std::fs::write(&private, "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIH7BX5eIS9k4OHyF31hv7raff7aT1fH9S78j+50G83Tt\n-----END PRIVATE KEY-----\n").unwrap();
    std::fs::write(&public, "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAnyIsxUxg60aHCqJ8F4dfiEu3TVeOKrEb3CCnXNJye+Q=\n-----END PUBLIC KEY-----\n").unwrap();
    let cfg = config_with(
        "node-e",
        &[
            "--auth",
            "jwt",
            "--jwt-private-key",
            private.to_str().unwrap(),
            "--jwt-public-key",
            public.to_str().unwrap(),
        ],
    );
    let node = TestNode::start(cfg).await;
    let app = node.app_client(&client());
    let pair = token_login(&app, "carol").await;
    let access = pair["access_token"].as_str().unwrap();
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(access.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "EdDSA");
    let (s, v) = get_session(&app, access).await;
    assert_eq!((s, &v["session"]["user"]), (200, &Value::from("carol")));
    // An HS256 token, even with a "secret" an attacker might guess, is the
    // wrong algorithm here.
    let hs = sign(Algorithm::HS256, &claims(TokenType::Access, 300));
    let (s, v) = get_session(&app, &hs).await;
    assert_eq!((s, v["reason"].as_str()), (401, Some("wrong_algorithm")));
}

const BIN: &str = env!("CARGO_BIN_EXE_sessionlab-node");

fn run(args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(args)
        .env_clear()
        .output()
        .unwrap()
}

#[test]
fn the_binary_refuses_jwt_flags_that_cannot_work_naming_the_flag() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["--auth", "jwt", "--jwt-secret", "too-short"],
            "--jwt-secret must be at least 32 bytes (got 9)",
        ),
        (&["--auth", "jwt"], "--auth jwt needs --jwt-secret"),
        (&["--jwt-secret", SECRET], "--jwt-secret needs --auth jwt"),
        (
            &["--auth", "jwt", "--jwt-private-key", "/nonexistent"],
            "--jwt-public-key is required with --jwt-private-key",
        ),
        (
            &["--store", "redis", "--replication", "all-to-all"],
            "cannot be combined with --store redis",
        ),
    ];
    for (args, want) in cases {
        let out = run(args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("too-short\n"), "{err}");
    }
    let out = run(&["--auth", "jwt", "--access-ttl", "soon"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--access-ttl"));
}
