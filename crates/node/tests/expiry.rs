//! Idle and absolute expiry through the whole app, on tokio's paused clock
//! (no sleeping: `tokio::time::advance` moves session time).

use std::time::Duration;

use actix_web::test::{TestRequest, call_service, init_service, read_body_json};
use actix_web::web;
use serde_json::Value;
use sessionlab_node::{NodeOptions, Timeouts, app, node_state, wire};

fn cfg() -> NodeOptions {
    NodeOptions {
        timeouts: Timeouts {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(300),
            anonymous_idle: Duration::from_secs(60),
            clock_skew_ms: 0,
        },
        ..NodeOptions::default()
    }
}

fn cookie_of(res: &actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>) -> String {
    res.headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// `POST /api/counter/increment`, with the session `cookie` if given.
fn incr(cookie: Option<&str>) -> TestRequest {
    let mut r = TestRequest::post().uri("/api/counter/increment");
    if let Some(c) = cookie {
        r = r.insert_header(("cookie", c.to_owned()));
    }
    r
}

#[tokio::test(start_paused = true)]
async fn idle_sessions_expire_and_use_keeps_them_alive_until_the_absolute_limit() {
    let cfg = cfg();
    let wiring = wire(&cfg).await.unwrap();
    let node = web::Data::new(node_state(cfg, &wiring).unwrap());
    let app = init_service(app(node)).await;

    let get = |cookie: &str| {
        TestRequest::get()
            .uri("/api/session")
            .insert_header(("cookie", cookie.to_owned()))
            .to_request()
    };

    let res = call_service(&app, incr(None).to_request()).await;
    let busy = cookie_of(&res);
    let res = call_service(&app, incr(None).to_request()).await;
    let idle = cookie_of(&res);

    // Every 40 s the busy user reads (a touch); the idle one does nothing.
    for _ in 0..3 {
        tokio::time::advance(Duration::from_secs(40)).await;
        let v: Value = read_body_json(call_service(&app, get(&busy)).await).await;
        assert_eq!(
            v["session"]["data"]["counter"], 1,
            "touched sessions live on"
        );
    }
    let v: Value = read_body_json(call_service(&app, get(&idle)).await).await;
    assert_eq!(v["session"], Value::Null, "120 s idle > 60 s idle timeout");

    // Busy or not, the absolute timeout (300 s) ends it.
    for _ in 0..5 {
        tokio::time::advance(Duration::from_secs(40)).await;
        let _ = call_service(&app, get(&busy)).await;
    }
    let v: Value = read_body_json(call_service(&app, get(&busy)).await).await;
    assert_eq!(v["session"], Value::Null, "320 s after creation");
}

/// A write is a use too: a user who only ever changes the session (every
/// increment a write, no read in between) keeps it alive, however long
/// after its creation, until the absolute limit.
#[tokio::test(start_paused = true)]
async fn writes_alone_keep_a_session_alive() {
    let cfg = cfg();
    let wiring = wire(&cfg).await.unwrap();
    let app = init_service(app(web::Data::new(node_state(cfg, &wiring).unwrap()))).await;
    let res = call_service(&app, incr(None).to_request()).await;
    let cookie = cookie_of(&res);
    // Every 40 s one more: 200 s in all, over three times the idle timeout.
    for n in 2..=6 {
        tokio::time::advance(Duration::from_secs(40)).await;
        let v: Value =
            read_body_json(call_service(&app, incr(Some(&cookie)).to_request()).await).await;
        assert_eq!(
            v["counter"],
            n,
            "the same session, {}s after its creation",
            (n - 1) * 40
        );
    }
}
