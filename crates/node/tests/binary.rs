//! The real binary: flag errors, SIGTERM, and the users file.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_sessionlab-node");

fn run_with(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn a_bad_flag_exits_non_zero_naming_the_flag() {
    for (args, flag) in [
        (&["--idle-timeout", "soon"][..], "--idle-timeout"),
        (&["--tracking", "ssl"][..], "--tracking"),
        (&["--listen", "not-an-address"][..], "--listen"),
        (&["--no-such-flag"][..], "--no-such-flag"),
    ] {
        let out = run_with(args, &[]);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
    // The same checks apply to values from the environment.
    let out = run_with(&[], &[("SESSIONLAB_MAX_SESSIONS", "many")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-sessions"));
}

/// Start the binary on port 0 and read its app URL from the start-up log.
fn start(extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--cluster-listen",
            "127.0.0.1:0",
            "--workers",
            "1",
        ])
        .args(extra)
        .env("SESSIONLAB_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(at) = line.find("node started: ") {
                let url = line[at + "node started: ".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .trim_end_matches('/')
                    .to_owned();
                let _ = tx.send(url);
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the node logs its URL within 20 s");
    (child, url)
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    sessionlab_testkit::wait_exit(child, within)
        .unwrap_or_else(|| panic!("did not exit within {within:?}"))
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let (mut child, url) = start(&[]);
    let res = reqwest::get(format!("{url}/healthz")).await.unwrap();
    assert_eq!(res.status(), 200);
    sessionlab_testkit::sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[tokio::test]
async fn hash_password_makes_a_users_file_entry() {
    let mut hasher = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    hasher
        .stdin
        .take()
        .unwrap()
        .write_all(b"hunter2\n")
        .unwrap();
    let out = hasher.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.starts_with("$argon2id$"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users");
    std::fs::write(&file, format!("# test users\ndave:{hash}")).unwrap();
    let (mut child, url) = start(&["--users", file.to_str().unwrap()]);
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = |user: &'static str, pw: &'static str| {
        c.post(format!("{url}/login"))
            .form(&[("username", user), ("password", pw)])
            .send()
    };
    assert_eq!(login("dave", "hunter2").await.unwrap().status(), 303);
    assert_eq!(login("alice", "sessionlab").await.unwrap().status(), 401);
    sessionlab_testkit::sigterm(&child);
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(15)).code(),
        Some(0)
    );

    // A broken users file stops the node with a message naming it.
    std::fs::write(&file, "dave:not-a-hash").unwrap();
    let out = run_with(
        &[
            "--users",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--cluster-listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1"));
}
