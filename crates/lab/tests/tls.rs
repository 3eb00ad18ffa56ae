//! `sessionlab up --tls`: an HTTPS client with the printed CA logs in, the
//! session cookie is `Secure` and `__Host-` prefixed when asked, plain HTTP
//! redirects (308), HSTS is set; a `__Host-` name without `--tls` is
//! refused naming the flag; `sessionlab load` speaks HTTPS to a `--tls`
//! cluster, trusting the run's CA.

mod support;

use support::*;

/// The `Set-Cookie` of `resp` that starts with `start`.
fn set_cookie(resp: &reqwest::Response, start: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(start))
        .map(str::to_string)
}

/// `sessionlab up --mode sticky --nodes 2 --tls` with `extra`; its output.
fn up_tls(tc: &TestCluster, extra: &[&str]) -> std::process::Output {
    require_binaries();
    let mut args = vec!["up", "--mode", "sticky", "--nodes", "2"];
    args.extend(["--tls", "--tls-port", "0"]);
    args.extend(extra);
    let out = tc.sessionlab(&args);
    assert!(out.status.success(), "up failed:\n{}", text(&out));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_tls_serves_https_with_secure_host_prefixed_cookies() {
    let tc = TestCluster::new();
    let out = up_tls(&tc, &["--cookie-name", "__Host-SLSESSION"]);
    let banner = String::from_utf8_lossy(&out.stdout).into_owned();
    let st = tc.state();
    let port = st.lb.tls_port.expect("an HTTPS port");
    let ca_path = tc.run_dir.join("tls/ca.pem");
    let ca_abs = std::path::absolute(&ca_path).unwrap();
    assert!(
        banner.contains(&format!("curl --cacert {}", ca_abs.display())),
        "{banner}"
    );
    assert!(
        banner.contains(&format!("https://127.0.0.1:{port}/")),
        "{banner}"
    );

    let ca = reqwest::Certificate::from_pem(&std::fs::read(&ca_path).unwrap()).unwrap();
    let https = reqwest::Client::builder()
        .tls_certs_only([ca])
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{port}");
    let resp = https
        .post(format!("{base}/login"))
        .header("accept", "application/json")
        .form(&[("username", "alice"), ("password", "sessionlab")])
        .send()
        .await
        .expect("login over HTTPS");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["strict-transport-security"], "max-age=300");
    let cookie =
        set_cookie(&resp, "__Host-SLSESSION=").expect("the session cookie, __Host- prefixed");
    for attr in ["; Secure", "; Path=/", "; HttpOnly"] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    // The cookie works over HTTPS (the same node: sticky).
    let pair = cookie.split(';').next().unwrap().to_string();
    let route = set_cookie(&resp, "SLROUTE=")
        .map(|v| v.split(';').next().unwrap().to_string())
        .unwrap_or_default();
    let me: serde_json::Value = https
        .get(format!("{base}/api/session"))
        .header("cookie", format!("{pair}; {route}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["session"]["user"], "alice", "{me}");

    // Plain HTTP: 308 to the same path over HTTPS, never forwarded.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let r = plain
        .get(format!("http://127.0.0.1:{}/api/session?x=1", st.lb.port))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(
        r.headers()["location"],
        format!("https://127.0.0.1:{port}/api/session?x=1").as_str()
    );
    assert!(!r.headers().contains_key("strict-transport-security"));
    tc.ok(&["status"]);
    tc.ok(&["down"]);
}

#[test]
fn load_speaks_https_to_a_tls_cluster() {
    let tc = TestCluster::new();
    up_tls(&tc, &[]);
    let load = "load --duration 3s --users 4 --ramp-up 200ms --json";
    let out = tc.ok(&load.split(' ').collect::<Vec<_>>());
    let report: serde_json::Value = serde_json::from_str(&out).expect("--json prints the report");
    // The plain port answers every request with a 308, so answered logins
    // and requests without errors mean the users spoke HTTPS.
    assert_eq!(report["logins"], 4, "{report}");
    assert!(report["requests"].as_u64().unwrap() > 20, "{report}");
    assert_eq!(report["error_total"], 0, "{report}");
    assert_eq!(report["sessions_lost"], 0, "{report}");
    tc.ok(&["down"]);
}

#[test]
fn a_host_prefixed_cookie_name_without_tls_is_refused_naming_the_flag() {
    let tc = TestCluster::new();
    let err = tc.fails(&["up", "--cookie-name", "__Host-SLSESSION"]);
    assert!(err.contains("--cookie-name __Host-SLSESSION"), "{err}");
    assert!(err.contains("--tls"), "{err}");
    assert!(!tc.run_dir.join("cluster.json").exists(), "nothing started");
}
