//! The `redis-ha` mode with real processes: a Redis primary, its replica
//! and three Sentinels; a login and a write through the LB; the primary
//! SIGKILLed; the same session served with its data once the Sentinels
//! promoted the replica; the killed server back as a replica; the clear
//! error when redis-sentinel is missing.

mod support;

use std::time::{Duration, Instant};

use sessionlab_testkit::eventually;
use support::*;

#[tokio::test]
async fn redis_ha_survives_the_primary_s_sigkill_with_the_session_intact() {
    let tc = TestCluster::up("redis-ha", 2);
    let st = tc.state();
    let ha = st
        .redis_ha
        .clone()
        .expect("the lab started the Redis topology");
    assert_eq!(ha.servers.len(), 2);
    assert_eq!(ha.sentinels.len(), 3);
    for n in &st.nodes {
        let args = n.args.join(" ");
        assert_eq!(args.matches("--redis-sentinel").count(), 3, "{args}");
        assert!(args.contains("--redis-master-name sessionlab"), "{args}");
        assert!(!args.contains("--redis-url"), "{args}");
    }
    let status = tc.status();
    assert_eq!(status["redis_primary"], "redis-1");
    let role = |status: &serde_json::Value, p: &str| {
        status_row(status, p).and_then(|r| r["health"].as_str().map(str::to_owned))
    };
    assert_eq!(role(&status, "redis-1").as_deref(), Some("primary"));
    assert_eq!(role(&status, "redis-2").as_deref(), Some("replica"));

    let app = tc.app_url();
    let b = browser();
    login(&b, &app, "alice").await;
    for _ in 0..3 {
        let s = increment(&b, &app).await;
        assert_eq!(s.status, 200, "{}", s.body);
    }
    // The replica has the writes before the kill (replication is
    // asynchronous; WAIT on the primary returns once the replica confirmed
    // them): what this test checks is the failover, not the window it may
    // lose (that is `compare --scenario redis-failover`'s figure).
    let primary = format!("redis://127.0.0.1:{}/", ha.servers[0].port);
    let mut conn = redis::Client::open(primary)
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    let synced: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(2000)
        .query(&mut conn)
        .unwrap();
    assert_eq!(synced, 1, "the replica confirmed the writes");

    let killed_at = Instant::now();
    tc.ok(&["kill", "redis-primary"]);
    let s = eventually(
        Duration::from_secs(20),
        "the session served again after the failover",
        || async {
            let s = session(&b, &app).await;
            (s.status == 200).then_some(s)
        },
    )
    .await;
    let took = killed_at.elapsed();
    assert_eq!(user_of(&s).as_deref(), Some("alice"), "{}", s.body);
    assert_eq!(s.body["session"]["data"]["counter"], 3, "{}", s.body);
    let s = increment(&b, &app).await;
    assert_eq!(s.status, 200, "writes go to the new primary: {}", s.body);
    eprintln!("served again {:.1} s after the kill", took.as_secs_f64());

    let status = tc.status();
    assert_eq!(status["redis_primary"], "redis-2");
    assert_eq!(role(&status, "redis-1").as_deref(), Some("-"));

    // The killed server comes back as a replica of the new primary.
    tc.ok(&["restart", "redis-primary"]);
    let status = tc.status();
    assert_eq!(status["redis_primary"], "redis-2");
    assert_eq!(role(&status, "redis-1").as_deref(), Some("replica"));
    let err = tc.fails(&["kill", "redis"]);
    assert!(err.contains("redis-primary"), "{err}");

    let down = tc.ok(&["down"]);
    for p in ["redis-1", "redis-2", "sentinel-1", "sentinel-3"] {
        assert!(down.contains(p), "{down}");
    }
    for m in ha.members() {
        assert!(
            m.process.is_none_or(|p| !p.is_alive()),
            "{} still runs",
            m.id
        );
    }
}

#[test]
fn redis_ha_without_redis_sentinel_names_the_package() {
    require_binaries();
    // A PATH with redis-server but without redis-sentinel.
    let tc = TestCluster::new();
    let bin = tc.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let server = redis_server_on_path();
    std::os::unix::fs::symlink(server, bin.join("redis-server")).unwrap();
    let err = tc.fails_with_path(&["up", "--mode", "redis-ha", "--nodes", "1"], &bin);
    assert!(
        err.contains("redis-sentinel") && err.contains("apt-get install redis-sentinel"),
        "{err}"
    );
    assert!(tc.run_folder().load().unwrap().is_none(), "nothing started");
}

/// Where this machine's redis-server is.
fn redis_server_on_path() -> std::path::PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("redis-server"))
        .find(|p| p.is_file())
        .expect("redis-server is installed (scripts/test.sh installs it)")
}
