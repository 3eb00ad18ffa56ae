//! Two tabs per user (`load --clients-per-user 2`) against a real sticky
//! cluster, with a history: the tabs share one login (one cookie jar), both
//! appear in the history, and the report's lost increments are exactly the
//! checker's (each tab alone knows only its own increments; the history
//! knows them all).

mod support;

use sessionlab_load::history;
use support::*;

#[test]
fn two_tabs_share_a_login_and_the_history_counts_their_updates() {
    let tc = TestCluster::up("sticky", 2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tabs.jsonl");
    let out = tc.ok(&[
        "load",
        "--duration",
        "3s",
        "--users",
        "4",
        "--clients-per-user",
        "2",
        "--think",
        "0ms",
        "--ramp-up",
        "200ms",
        "--mix",
        "read=30,increment=70",
        "--json",
        "--history",
        path.to_str().unwrap(),
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).expect("--json prints the report");
    let ops = history::read(std::io::BufReader::new(std::fs::File::open(&path).unwrap())).unwrap();
    for user in 0..4 {
        for client in 0..2 {
            assert!(
                ops.iter().any(|o| o.user == user && o.client == client),
                "user {user} client {client} is in the history"
            );
        }
    }
    // One tab logs in for both: a login per user unless a session was lost.
    let logins = ops
        .iter()
        .filter(|o| o.op == history::OpKind::Login && o.ok())
        .count() as u64;
    assert_eq!(logins, report["logins"].as_u64().unwrap());
    assert!(
        logins <= 4 + report["sessions_lost"].as_u64().unwrap(),
        "{logins} logins for 4 users: {report}"
    );
    let acked = ops.iter().filter(|o| o.acked_increment().is_some()).count() as u64;
    assert!(acked > 50, "the tabs incremented: {acked}");
    assert_eq!(report["acked_increments"].as_u64(), Some(acked));
    assert_eq!(
        report["lost_increments"], report["guarantees"]["lost_increments"],
        "{report}"
    );
}

#[test]
fn several_tabs_need_session_cookies() {
    let tc = TestCluster::up("jwt", 1);
    let err = tc.fails(&["load", "--duration", "1s", "--clients-per-user", "2"]);
    assert!(err.contains("--clients-per-user"), "{err}");
}
