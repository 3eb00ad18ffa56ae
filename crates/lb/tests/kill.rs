//! A backend process is SIGKILLed in the middle of a sticky, idempotent
//! load. Requirements: no request is lost (every one gets a 200, thanks to
//! failover), the health state flips to down, and every affected user's
//! sticky cookie is rewritten to a live backend, after which they stick.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sessionlab_testkit::{Http, lb_over, until, until_backend};

const ECHO: &str = env!("CARGO_BIN_EXE_sessionlab-echo");

/// A backend process; killed (SIGKILL) on drop if still running.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_echo(id: &str) -> (Process, String) {
    let mut child = Command::new(ECHO)
        .args(["--id", id, "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn sessionlab-echo");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .expect("address line")
        .to_string();
    (Process(child), format!("{id}={addr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_loses_no_idempotent_request_and_rewrites_the_cookie() {
    let (_p1, s1) = spawn_echo("node-1");
    let (mut victim, s2) = spawn_echo("node-2");
    let (_p3, s3) = spawn_echo("node-3");
    let lb = lb_over(
        &[s1, s2, s3],
        &[
            "--strategy",
            "sticky-cookie",
            "--health-interval",
            "100ms",
            "--health-timeout",
            "100ms",
            "--health-fall",
            "3",
            "--health-rise",
            "2",
        ],
    )
    .await;
    let http = Arc::new(Http::default());
    let url = lb.url("/");

    // Four users, all pinned to node-2, in closed loops.
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (http, url, sent, stop) = (http.clone(), url.clone(), sent.clone(), stop.clone());
            tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(20);
                let mut cookie = "SLROUTE=node-2".to_string();
                let mut served = Vec::new();
                let mut rewrites = Vec::new();
                for i in 0..20_000 {
                    if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                        break;
                    }
                    let r = http.get(&url, &[("cookie", &cookie)]).await;
                    assert_eq!(r.status, 200, "request {i} lost: {}", r.body);
                    if let Some(new) = r.route_cookie() {
                        assert_eq!(new, r.served_by());
                        rewrites.push(new.clone());
                        cookie = format!("SLROUTE={new}");
                    }
                    served.push(r.served_by().to_string());
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                (served, rewrites, cookie)
            })
        })
        .collect();

    until(Duration::from_secs(10), "load running", || async {
        sent.load(Ordering::Relaxed) >= 200
    })
    .await;
    victim.0.kill().unwrap(); // SIGKILL
    victim.0.wait().unwrap();
    let killed_at = sent.load(Ordering::Relaxed);

    let http2 = Http::default();
    until_backend(&http2, &lb, "node-2", "down", Duration::from_secs(10)).await;
    let flipped_at = sent.load(Ordering::Relaxed);
    until(
        Duration::from_secs(10),
        "more load after the flip",
        || async { sent.load(Ordering::Relaxed) >= flipped_at + 200 },
    )
    .await;
    stop.store(true, Ordering::Relaxed);

    for w in workers {
        let (served, rewrites, cookie) = w.await.expect("no request lost");
        assert_eq!(
            rewrites.len(),
            1,
            "cookie rewritten exactly once: {rewrites:?}"
        );
        assert_ne!(rewrites[0], "node-2");
        assert_eq!(cookie, format!("SLROUTE={}", rewrites[0]));
        let tail = &served[served.len().saturating_sub(20)..];
        assert!(
            tail.iter().all(|s| *s == rewrites[0]),
            "sticks to the new backend: {tail:?}"
        );
        assert!(
            served.iter().take(10).all(|s| s == "node-2"),
            "started on node-2"
        );
    }
    assert!(killed_at > 0);
    let log = http2
        .get(&lb.admin_url("/admin/v1/backends"), &[])
        .await
        .json();
    assert_eq!(log["backends"][1]["state"], "down", "{log}");
    lb.stop().await;
}
