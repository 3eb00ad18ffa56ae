//! The binaries: bad flags exit non-zero naming the flag; env vars work;
//! SIGTERM shuts down gracefully.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const LB: &str = env!("CARGO_BIN_EXE_sessionlab-lb");
const ECHO: &str = env!("CARGO_BIN_EXE_sessionlab-echo");

fn run_lb(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(LB)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("SESSIONLAB_LB_ADMIN_LISTEN")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_flags_exit_non_zero_naming_the_flag() {
    for (args, flag) in [
        (vec!["--backend", "node-1"], "--backend"),
        (
            vec!["--backend", "a=127.0.0.1:1", "--backend", "a=127.0.0.1:2"],
            "--backend",
        ),
        (vec!["--strategy", "fastest"], "--strategy"),
        (vec!["--health-interval", "0s"], "--health-interval"),
        (vec!["--admin-listen", "0.0.0.0:0"], "--admin-token"),
        (vec!["--config", "/nonexistent/lb.toml"], "--config"),
        // DNS discovery: a value that is no NAME:PORT, and its tuning
        // flags without it.
        (vec!["--discover", "node"], "--discover"),
        (vec!["--discover", "node:0"], "--discover"),
        (vec!["--discover", "no spaces:8081"], "--discover"),
        (vec!["--discover-interval", "1s"], "--discover-interval"),
        (
            vec!["--discover-admin-port", "9081"],
            "--discover-admin-port",
        ),
    ] {
        let (code, stderr) = run_lb(&args, &[]);
        assert_ne!(code, 0, "{args:?}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

#[test]
fn bad_certificates_and_keys_exit_non_zero_naming_the_flag() {
    let certs = sessionlab_testkit::TestCerts::new();
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let (cert, key) = (certs.cert.to_str().unwrap(), certs.key.to_str().unwrap());
    let other = certs.other_key.to_str().unwrap();
    let garbage = garbage.to_str().unwrap();
    let tls = |cert: &str, key: &str| -> Vec<String> {
        ["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]
            .into_iter()
            .chain([
                "--tls-listen",
                "127.0.0.1:0",
                "--tls-cert",
                cert,
                "--tls-key",
                key,
            ])
            .map(String::from)
            .collect()
    };
    for (args, starts) in [
        (tls("/nonexistent/cert.pem", key), "--tls-cert /nonexistent"),
        (tls(garbage, key), "--tls-cert"),
        (tls(cert, "/nonexistent/key.pem"), "--tls-key /nonexistent"),
        (tls(cert, garbage), "--tls-key"),
        (tls(key, cert), "--tls-cert"),
        (tls(cert, other), "does not match --tls-cert"),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stderr) = run_lb(&args, &[]);
        assert_ne!(code, 0, "{args:?}");
        assert!(stderr.contains(starts), "{args:?}: {stderr}");
    }
    // The TLS flags come together.
    let (code, stderr) = run_lb(&["--tls-cert", cert], &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--tls-listen"), "{stderr}");
    let (code, stderr) = run_lb(&["--redirect-http"], &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--tls-listen"), "{stderr}");
}

#[test]
fn flags_also_come_from_env() {
    let (code, stderr) = run_lb(&[], &[("SESSIONLAB_LB_STRATEGY", "fastest")]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--strategy"), "{stderr}");
    let (code, stderr) = run_lb(&[], &[("SESSIONLAB_LB_BACKENDS", "a=127.0.0.1:1,broken")]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--backend"), "{stderr}");
}

#[test]
fn a_busy_port_names_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, stderr) = run_lb(&["--listen", &addr, "--admin-listen", "127.0.0.1:0"], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--listen"), "{stderr}");
}

#[test]
fn echo_and_lb_stop_on_sigterm() {
    let mut echo = Command::new(ECHO)
        .args(["--id", "node-1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(echo.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on 127.0.0.1:"), "{line}");
    let mut lb = Command::new(LB)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the start-up log line: signal handlers are in place by then.
    let mut lb_out = BufReader::new(lb.stdout.take().unwrap());
    let mut started = false;
    for _ in 0..50 {
        line.clear();
        if lb_out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if line.contains("sessionlab-lb started") {
            started = true;
            break;
        }
    }
    assert!(started, "no start-up line; last: {line}");
    for child in [&mut echo, &mut lb] {
        sessionlab_testkit::sigterm(child);
    }
    for child in [&mut echo, &mut lb] {
        let status = sessionlab_testkit::wait_exit(child, Duration::from_secs(10))
            .expect("did not stop on SIGTERM");
        assert!(status.success(), "{status:?}");
    }
}
