//! `sessionlab attack`: each scripted attack against real node processes,
//! asserting the vulnerable and the defended outcome of every step.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::*;

/// Runs `sessionlab attack ARGS --json`; returns step -> outcome.
fn attack(args: &[&str]) -> BTreeMap<String, String> {
    attack_with_story(args).0
}

/// [`attack`], and the story it told (stderr).
fn attack_with_story(args: &[&str]) -> (BTreeMap<String, String>, String) {
    require_binaries();
    let out = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_sessionlab"))
            .arg("attack")
            .args(args)
            .arg("--json")
            .env("SESSIONLAB_BIN_DIR", bin_dir()),
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "{}", text(&out));
    let story = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        story.contains("=> VULNERABLE") && story.contains("=> DEFENDED"),
        "{story}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let found = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["step"].as_str().unwrap().to_string(),
                f["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (found, story)
}

fn expect(found: &BTreeMap<String, String>, want: &[(&str, &str)]) {
    let want: BTreeMap<String, String> = want
        .iter()
        .map(|(s, o)| (s.to_string(), o.to_string()))
        .collect();
    assert_eq!(found, &want);
}

#[test]
fn hijack_a_session_id_and_each_defence() {
    let (found, story) = attack_with_story(&["hijack"]);
    // The wiretap's find is shown masked: six characters and an ellipsis.
    let shown = story
        .split("in cleartext: SLSESSION=")
        .nth(1)
        .expect("the wiretap found the cookie over HTTP");
    let masked: String = shown.chars().take(7).collect();
    assert!(
        masked.ends_with('…') && !masked[..6].contains(char::is_whitespace),
        "{shown}"
    );
    expect(
        &found,
        &[
            ("steal-cookie", "vulnerable"),
            ("logout", "defended"),
            ("idle-expiry", "defended"),
            ("bind-user-agent", "defended"),
            ("bind-copied-user-agent", "vulnerable"),
            ("cookie-over-http", "vulnerable"),
            ("secure-cookie", "defended"),
            ("wiretap-http", "vulnerable"),
            ("wiretap-https", "defended"),
            ("secure-cookie-plain-port", "defended"),
        ],
    );
}

#[test]
fn hijack_a_token_and_what_stops_it() {
    expect(
        &attack(&["hijack", "--auth", "jwt"]),
        &[
            ("steal-token", "vulnerable"),
            ("logout-not-shared", "vulnerable"),
            ("logout-deny-list", "defended"),
            ("short-access-ttl", "defended"),
            ("refresh-reuse", "defended"),
        ],
    );
}

#[test]
fn fixation_is_defeated_by_rotation_and_the_url_leak_by_referrer_policy() {
    expect(
        &attack(&["fixation"]),
        &[
            ("planted-before-login", "vulnerable"),
            ("login-rotates-id", "defended"),
            ("made-up-id", "defended"),
            ("url-login-rotates-id", "defended"),
            ("referer-leak", "vulnerable"),
            ("referrer-policy", "defended"),
        ],
    );
}

#[test]
fn login_csrf_works_without_the_origin_check_and_fails_with_it() {
    expect(
        &attack(&["csrf"]),
        &[
            ("login-csrf", "vulnerable"),
            ("origin-check", "defended"),
            ("samesite-lax", "defended"),
        ],
    );
}

#[test]
fn hijack_through_a_running_cluster() {
    // Two nodes behind the LB, sessions in one Redis: the copied cookie
    // works whichever node the LB picks, and logout kills it on all.
    let tc = TestCluster::up("redis", 2);
    let found = attack(&["hijack", "--target", &tc.app_url()]);
    assert_eq!(found["steal-cookie"], "vulnerable");
    assert_eq!(found["logout"], "defended");
}
