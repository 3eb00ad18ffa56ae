//! The sticky rules, with real backends on loopback.
//!
//! sticky-cookie follows HAProxy's `cookie SLROUTE insert indirect nocache`:
//! - no cookie -> pick by the fallback strategy and set the cookie;
//! - valid cookie, healthy backend -> stick, don't reissue;
//! - valid cookie, backend down or removed -> redispatch, rewrite the cookie;
//! - draining backend -> existing sticky users stay, new users go elsewhere;
//! - invalid cookie -> treat as none and reset it.

use std::collections::HashMap;
use std::time::Duration;

use sessionlab_testkit::{Http, lb_over_echoes, until_backend};

mod common;
use common::{backend_action, remove_backend};

const STICKY: &[&str] = &["--strategy", "sticky-cookie"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cookie_picks_round_robin_and_sets_the_cookie() {
    let (_echoes, lb) = lb_over_echoes::<3>(STICKY).await;
    let http = Http::default();

    let mut seen = HashMap::new();
    for _ in 0..6 {
        let r = http.get(&lb.url("/"), &[]).await;
        assert_eq!(r.status, 200);
        let cookie = r.route_cookie().expect("cookie inserted for a new user");
        assert_eq!(
            cookie,
            r.served_by(),
            "cookie names the backend that served"
        );
        let raw = r.headers["set-cookie"].to_str().unwrap();
        assert_eq!(
            raw,
            format!("SLROUTE={cookie}; Path=/; HttpOnly; SameSite=Lax")
        );
        assert_eq!(r.headers["cache-control"], "private", "nocache");
        *seen.entry(cookie).or_insert(0) += 1;
    }
    assert_eq!(
        seen.len(),
        3,
        "round-robin fallback spreads new users: {seen:?}"
    );
    assert!(seen.values().all(|&n| n == 2), "{seen:?}");
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_cookie_sticks_without_reissuing_and_is_hidden_from_backends() {
    let (echoes, lb) = lb_over_echoes::<3>(STICKY).await;
    let http = Http::default();

    for _ in 0..10 {
        let r = http
            .get(&lb.url("/"), &[("cookie", "SLROUTE=node-2")])
            .await;
        assert_eq!(r.served_by(), "node-2");
        assert!(r.headers.get("set-cookie").is_none(), "not reissued");
        assert!(r.headers.get("cache-control").is_none());
    }
    assert_eq!(echoes[1].state.requests(), 10);

    // `indirect`: the backend never sees SLROUTE, other cookies pass.
    let r = http
        .get(
            &lb.url("/_echo/headers"),
            &[("cookie", "theme=dark; SLROUTE=node-2")],
        )
        .await;
    assert!(r.body.contains("cookie: theme=dark\n"), "{}", r.body);
    assert!(!r.body.contains("SLROUTE"), "{}", r.body);

    // `insert`: a backend's own SLROUTE is removed; the LB owns that cookie.
    let r = http
        .get(&lb.url("/?set_route=evil"), &[("cookie", "SLROUTE=node-2")])
        .await;
    assert_eq!(r.route_cookie(), None, "{:?}", r.headers);
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_down_redispatches_and_rewrites_the_cookie() {
    let flags = [STICKY, &["--health-interval", "50ms", "--health-fall", "2"]].concat();
    let (echoes, lb) = lb_over_echoes::<3>(&flags).await;
    let http = Http::default();

    echoes[1].state.set_healthy(false);
    until_backend(&http, &lb, "node-2", "down", Duration::from_secs(5)).await;

    let r = http
        .get(&lb.url("/"), &[("cookie", "SLROUTE=node-2")])
        .await;
    assert_eq!(r.status, 200);
    let new = r.route_cookie().expect("cookie rewritten");
    assert_ne!(new, "node-2");
    assert_eq!(new, r.served_by());

    // With the new cookie the user sticks to the new backend, no reissue.
    let cookie = format!("SLROUTE={new}");
    let r = http.get(&lb.url("/"), &[("cookie", &cookie)]).await;
    assert_eq!(r.served_by(), new);
    assert_eq!(r.route_cookie(), None);

    let log = http
        .get(&lb.admin_url("/admin/v1/requests?limit=2"), &[])
        .await
        .json();
    assert_eq!(log["requests"][1]["redispatch"], true, "{log}");
    assert_eq!(log["requests"][0]["redispatch"], false, "{log}");
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_removed_redispatches_and_rewrites_the_cookie() {
    let (echoes, lb) = lb_over_echoes::<3>(STICKY).await;
    let http = Http::default();

    let r = remove_backend(&http, &lb, "node-3").await;
    assert_eq!(r.status, 200);
    for _ in 0..4 {
        let r = http
            .get(&lb.url("/"), &[("cookie", "SLROUTE=node-3")])
            .await;
        assert_eq!(r.status, 200);
        assert_ne!(r.served_by(), "node-3");
        assert_eq!(r.route_cookie().as_deref(), Some(r.served_by()));
    }
    assert_eq!(echoes[2].state.requests(), 0);
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_keeps_existing_users_and_sends_new_ones_elsewhere() {
    let (echoes, lb) = lb_over_echoes::<3>(STICKY).await;
    let http = Http::default();

    let r = backend_action(&http, &lb, "node-1", "drain").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["draining"], true);

    for _ in 0..5 {
        let r = http
            .get(&lb.url("/"), &[("cookie", "SLROUTE=node-1")])
            .await;
        assert_eq!(r.served_by(), "node-1", "existing sticky user stays");
        assert_eq!(r.route_cookie(), None);
    }
    for _ in 0..9 {
        let r = http.get(&lb.url("/"), &[]).await;
        assert_ne!(
            r.served_by(),
            "node-1",
            "no new users on a draining backend"
        );
        assert_eq!(r.route_cookie().as_deref(), Some(r.served_by()));
    }
    assert_eq!(echoes[0].state.requests(), 5);
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_cookie_is_treated_as_none_and_reset() {
    let (_echoes, lb) = lb_over_echoes::<3>(STICKY).await;
    let http = Http::default();

    for bad in [
        "SLROUTE=node-99",
        "SLROUTE=",
        "SLROUTE=127.0.0.1:1",
        "SLROUTE=%00%ff",
    ] {
        let r = http.get(&lb.url("/"), &[("cookie", bad)]).await;
        assert_eq!(r.status, 200, "{bad}");
        assert_eq!(
            r.route_cookie().as_deref(),
            Some(r.served_by()),
            "{bad} reset"
        );
    }
    lb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_route_follows_the_session_suffix() {
    let flags = [
        "--strategy",
        "sticky-route",
        "--health-interval",
        "50ms",
        "--health-fall",
        "2",
    ];
    let (echoes, lb) = lb_over_echoes::<3>(&flags).await;
    let http = Http::default();

    for _ in 0..5 {
        let r = http
            .get(&lb.url("/"), &[("cookie", "SLSESSION=s3cr3t.node-3")])
            .await;
        assert_eq!(r.served_by(), "node-3");
        assert!(
            r.headers.get("set-cookie").is_none(),
            "the LB sets no cookie"
        );
    }
    // An unknown suffix or none: any backend, round-robin.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..3 {
        let r = http
            .get(&lb.url("/"), &[("cookie", "SLSESSION=plainid")])
            .await;
        seen.insert(r.served_by().to_string());
    }
    assert_eq!(seen.len(), 3);
    // The routed node down: the session goes elsewhere (the node that
    // receives it issues a new id with its own suffix).
    echoes[2].state.set_healthy(false);
    until_backend(&http, &lb, "node-3", "down", Duration::from_secs(5)).await;
    let r = http
        .get(&lb.url("/"), &[("cookie", "SLSESSION=s3cr3t.node-3")])
        .await;
    assert_eq!(r.status, 200);
    assert_ne!(r.served_by(), "node-3");
    lb.stop().await;
}

/// The hash strategies (the ring and Maglev) over real backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_keeps_a_session_on_one_backend_and_spreads_sessions() {
    for strategy in ["consistent-hash", "maglev"] {
        hash_keeps_a_session_on_one_backend_and_spreads_sessions(strategy).await;
    }
}

async fn hash_keeps_a_session_on_one_backend_and_spreads_sessions(strategy: &str) {
    let (_echoes, lb) = lb_over_echoes::<3>(&["--strategy", strategy]).await;
    let http = Http::default();

    let mut owners = HashMap::new();
    for user in 0..60 {
        let cookie = format!("SLSESSION=user-{user}");
        let first = http.get(&lb.url("/"), &[("cookie", &cookie)]).await;
        for _ in 0..2 {
            let again = http.get(&lb.url("/"), &[("cookie", &cookie)]).await;
            assert_eq!(again.served_by(), first.served_by(), "user-{user} moved");
        }
        *owners.entry(first.served_by().to_string()).or_insert(0) += 1;
    }
    assert_eq!(owners.len(), 3, "{owners:?}");
    assert!(owners.values().all(|&n| n >= 8), "{owners:?}");
    lb.stop().await;
}

/// `--sticky-strict` (Envoy's strict mode): a user whose backend went down
/// gets a 503 that says why, not a silent move to a node without its
/// session; the same after the backend is removed; new users still get
/// served, and a bound user whose backend is up is served by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_stickiness_answers_503_when_the_backend_is_gone() {
    let flags = [
        STICKY,
        &[
            "--sticky-strict",
            "--health-interval",
            "50ms",
            "--health-fall",
            "2",
        ],
    ]
    .concat();
    let (echoes, lb) = lb_over_echoes::<3>(&flags).await;
    let http = Http::default();
    let bound = [("cookie", "SLROUTE=node-2")];
    let r = http.get(&lb.url("/"), &bound).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.served_by(), "node-2");

    echoes[1].state.set_healthy(false);
    until_backend(&http, &lb, "node-2", "down", Duration::from_secs(5)).await;
    let r = http.get(&lb.url("/"), &bound).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["error"], "sticky_target_gone");
    assert_eq!(r.json()["origin"], "balancer");
    assert_eq!(
        http.get(&lb.url("/"), &[]).await.status,
        200,
        "new users are served"
    );

    assert_eq!(remove_backend(&http, &lb, "node-2").await.status, 200);
    let r = http.get(&lb.url("/"), &bound).await;
    assert_eq!(r.status, 503, "removed is gone too: {}", r.body);
    // A cookie that never named a backend is no affinity: served.
    let r = http
        .get(&lb.url("/"), &[("cookie", "SLROUTE=nobody")])
        .await;
    assert_eq!(r.status, 200);
    lb.stop().await;
}
