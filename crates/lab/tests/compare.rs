//! `sessionlab compare` end to end: two real clusters, one after the other,
//! the same users and the same kill, and a report whose figures show what
//! the modes must show.
//!
//! - `local` (round-robin, no replication) logs users out without any
//!   fault: the next request lands on a node that never saw the login.
//! - `sticky-replicated` keeps every session through the kill of node-2:
//!   the users it served move to a node that has a copy.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use sessionlab_lab::RunFolder;
use support::*;

/// Stops whatever a compare left running under `tmp` (if the test failed
/// half way; a successful compare leaves nothing).
struct Leftovers(std::path::PathBuf);

impl Drop for Leftovers {
    fn drop(&mut self) {
        for dir in leftover_run_dirs(&self.0) {
            if let Ok(Some(state)) = RunFolder::new(&dir).load() {
                for (_, p) in state.processes() {
                    let _ = p.signal(Signal::SIGKILL);
                }
            }
        }
    }
}

fn leftover_run_dirs(tmp: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(tmp)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("sessionlab-compare-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `sessionlab compare ARGS --out OUT` with run folders under `tmp`.
fn compare(tmp: &Path, out: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sessionlab"));
    cmd.arg("compare")
        .args(args)
        .arg("--out")
        .arg(out)
        .env("SESSIONLAB_BIN_DIR", bin_dir())
        .env("SESSIONLAB_GRACE", "3s")
        .env("TMPDIR", tmp);
    run_bounded(&mut cmd, Duration::from_secs(50))
}

/// One `sessionlab compare` in a temporary folder of its own (its run
/// folders under it, the report in `report/`), which succeeded.
struct Compared {
    /// Declared first, so dropped first: stops what is left before the
    /// folder goes.
    _cleanup: Leftovers,
    tmp: tempfile::TempDir,
    out_dir: std::path::PathBuf,
    out: std::process::Output,
}

impl Compared {
    /// `report.json`, parsed.
    fn report(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.out_dir.join("report.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// The report's outcomes, one a run, in the order compared.
    fn outcomes(&self) -> Vec<serde_json::Value> {
        self.report()["outcomes"].as_array().unwrap().clone()
    }

    /// `report.md`.
    fn markdown(&self) -> String {
        std::fs::read_to_string(self.out_dir.join("report.md")).unwrap()
    }

    /// The run folders still in the temporary folder (none once every
    /// cluster was torn down).
    fn leftovers(&self) -> Vec<std::path::PathBuf> {
        leftover_run_dirs(self.tmp.path())
    }
}

/// `sessionlab compare ARGS` in a fresh temporary folder; panics unless it
/// succeeds.
fn compared(args: &[&str]) -> Compared {
    let tmp = tempfile::tempdir().unwrap();
    let _cleanup = Leftovers(tmp.path().to_path_buf());
    let out_dir = tmp.path().join("report");
    let out = compare(tmp.path(), &out_dir, args);
    assert!(out.status.success(), "compare failed:\n{}", text(&out));
    Compared {
        _cleanup,
        tmp,
        out_dir,
        out,
    }
}

#[test]
fn local_loses_sessions_and_sticky_replicated_keeps_them_through_a_kill() {
    let run = compared(&[
        "--modes",
        "local,sticky-replicated",
        "--duration",
        "5s",
        "--users",
        "12",
        "--ramp-up",
        "500ms",
    ]);
    let stdout = String::from_utf8_lossy(&run.out.stdout);
    assert!(stdout.contains("| local |") && stdout.contains("| sticky-replicated |"));

    let json = run.report();
    assert_eq!(json["settings"]["users"], 12);
    assert_eq!(json["settings"]["faults"][0], "kill node-2 at 2.5 s");
    let runs = json["outcomes"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{json}");
    let (local, sr) = (&runs[0], &runs[1]);
    assert_eq!(
        (local["label"].as_str(), sr["label"].as_str()),
        (Some("local"), Some("sticky-replicated"))
    );
    for run in runs {
        assert_eq!(run["outcome"], "ran");
        let mark = &run["marks"][0];
        assert_eq!(mark["label"], "kill node-2", "{}: {mark}", run["label"]);
        let at = mark["at_s"].as_f64().unwrap();
        assert!((2.4..3.5).contains(&at), "kill applied at {at} s");
        assert!(run["requests"].as_u64().unwrap() > 100, "{}", run["label"]);
    }

    // local: logged out before any fault.
    let kill_at = local["marks"][0]["at_s"].as_f64().unwrap();
    let lost_before_kill: u64 = local["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["t_s"].as_f64().unwrap() + 1.0 <= kill_at)
        .map(|p| p["sessions_lost"].as_u64().unwrap())
        .sum();
    assert!(
        lost_before_kill > 0,
        "local lost no session before the kill: {local}"
    );
    assert!(local["sessions_lost"].as_u64().unwrap() > 0);

    // sticky-replicated: node-2 served users, died, and none was logged out.
    assert!(sr["served_by"]["node-2"].as_u64().unwrap_or(0) > 0, "{sr}");
    assert_eq!(sr["sessions_lost"], 0, "{sr}");
    assert!(
        sr["node_switches"].as_u64().unwrap() > 0,
        "node-2's users moved to another node: {sr}"
    );
    let after_kill_on_node_2: u64 = sr["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["t_s"].as_f64().unwrap() >= kill_at.ceil())
        .map(|p| p["served_by"]["node-2"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(after_kill_on_node_2, 0, "node-2 served after it was killed");
    assert!(sr["server"]["replication_messages"].as_f64().unwrap() > 0.0);
    assert_eq!(local["server"]["replication_messages"].as_f64(), Some(0.0));

    let md = run.markdown();
    assert!(md.contains("| local |") && md.contains("| sticky-replicated |"));
    for svg in ["latency_p99.svg", "errors.svg", "losses.svg"] {
        let text = std::fs::read_to_string(run.out_dir.join(svg)).unwrap();
        assert!(
            text.starts_with("<svg") && text.contains("sticky-replicated"),
            "{svg}"
        );
    }
    assert!(md.contains("## Session guarantees"), "{md}");
    for mode in ["local", "sticky-replicated"] {
        let history = run.out_dir.join(format!("history-{mode}.jsonl"));
        let lines = std::fs::read_to_string(&history).unwrap();
        assert!(lines.lines().count() > 100, "{mode}: a line per operation");
    }
    // Both clusters were torn down and their run folders removed.
    assert!(run.leftovers().is_empty());
}

/// Users faster than the copies: with every replication link delayed by
/// 5 ms and no think time, round-robin `replicated` reads copies older
/// than the user's own acknowledged write, and the checker shows the very
/// requests (a longer delay is worse for the test, not better: the peers'
/// bounded queues then hold the writers back, and the users slow down to
/// the copies' pace);
/// `sticky-replicated` on the same workload keeps read-your-writes (a user
/// always reads the node that took its write). `sessionlab check` on the
/// replicated history says so too, and exits 1.
#[test]
fn the_checker_finds_read_your_writes_broken_in_replicated_and_kept_in_sticky_replicated() {
    let run = compared(&[
        "--modes",
        "replicated,sticky-replicated",
        "--duration",
        "4s",
        "--users",
        "8",
        "--ramp-up",
        "300ms",
        "--think",
        "0ms",
        "--mix",
        "read=50,increment=50",
        "--fault",
        "delay:5ms@0s",
    ]);
    let out_dir = &run.out_dir;
    let runs = run.outcomes();
    let (repl, sr) = (&runs[0]["guarantees"], &runs[1]["guarantees"]);
    let ryw = |g: &serde_json::Value| g["violations"]["read_your_writes"].as_u64().unwrap();
    assert!(ryw(repl) > 0, "replicated kept read-your-writes: {repl}");
    assert_eq!(ryw(sr), 0, "sticky-replicated broke read-your-writes: {sr}");
    assert_eq!(sr["violations"]["monotonic_reads"], 0, "{sr}");
    assert!(sr["operations"].as_u64().unwrap() > 100, "{sr}");

    let picture = out_dir.join("history-replicated-counterexamples");
    let svgs: Vec<_> = std::fs::read_dir(&picture).unwrap().flatten().collect();
    assert!(
        svgs.iter().any(|e| e
            .file_name()
            .to_string_lossy()
            .ends_with("read-your-writes.svg")),
        "{svgs:?}"
    );
    // The nodes' replication events were collected beside the history,
    // and the pictures draw the copies of the writes from them.
    let events: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("history-replicated.replication.json")).unwrap(),
    )
    .unwrap();
    assert!(events["run_start_ms"].as_u64().unwrap() > 0, "{events}");
    assert!(
        svgs.iter().any(|e| std::fs::read_to_string(e.path())
            .unwrap()
            .contains(r#"<line class="replication""#)),
        "no picture draws a copy of a write: {svgs:?}"
    );
    let md = run.markdown();
    assert!(
        md.contains("history-replicated-counterexamples/"),
        "the guarantees table links the pictures: {md}"
    );

    let check = Command::new(env!("CARGO_BIN_EXE_sessionlab"))
        .arg("check")
        .arg(out_dir.join("history-replicated.jsonl"))
        .arg("--svg-dir")
        .arg(run.tmp.path().join("pictures"))
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        stdout.contains("counterexample 1: read-your-writes"),
        "{stdout}"
    );
    let check = Command::new(env!("CARGO_BIN_EXE_sessionlab"))
        .arg("check")
        .arg(out_dir.join("history-sticky-replicated.jsonl"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        stdout.contains("read-your-writes            0  ok"),
        "{stdout}"
    );
    assert!(run.leftovers().is_empty());
}

/// `--scenario partition`: the last node is cut off from 30% to 70% of
/// the run, round-robin keeps sending it every third request. `replicated`
/// (available) takes writes on both sides and last writer wins at the
/// heal: acknowledged increments are lost and nothing is refused.
/// `replicated+consistent` refuses the cut-off node's writes (503) and
/// loses no acknowledged increment, by the load tool's count and by the
/// checker's. (Increments only: a refused write can still show up later,
/// if a peer applied it before the refusal, and the load tool counts a
/// cart that differs from the acknowledged one either way.) About 16 s.
#[test]
fn a_partition_loses_acknowledged_writes_when_available_and_refuses_them_when_consistent() {
    let run = compared(&[
        "--scenario",
        "partition",
        "--duration",
        "6s",
        "--users",
        "8",
        "--ramp-up",
        "300ms",
        "--mix",
        "read=50,increment=50",
    ]);
    let runs = run.outcomes();
    let (available, consistent) = (&runs[0], &runs[1]);
    assert_eq!(available["label"], "replicated");
    assert_eq!(consistent["label"], "replicated+consistent");
    let n = |r: &serde_json::Value, k: &str| r[k].as_u64().unwrap();
    let lost_update = |r: &serde_json::Value| {
        r["guarantees"]["violations"]["lost_update"]
            .as_u64()
            .unwrap()
    };
    assert!(
        n(available, "lost_increments") > 0,
        "available lost nothing"
    );
    assert!(lost_update(available) > 0, "{}", available["guarantees"]);
    assert_eq!(n(available, "refused_writes"), 0);
    assert_eq!(
        n(consistent, "lost_increments"),
        0,
        "consistent lost writes"
    );
    assert_eq!(lost_update(consistent), 0, "{}", consistent["guarantees"]);
    assert!(
        n(consistent, "refused_writes") > 0,
        "consistent refused nothing"
    );
    assert!(n(consistent, "acked_increments") > 50);
    let md = run.markdown();
    assert!(md.contains("| refused writes |"), "{md}");
    assert!(md.contains("partition node-3"), "{md}");
    assert!(run.leftovers().is_empty());
}

#[test]
fn a_bad_fault_or_mode_is_refused_before_anything_starts() {
    require_binaries();
    let tmp = tempfile::tempdir().unwrap();
    for (args, want) in [
        (
            vec!["compare", "--fault", "kill:node-2"],
            "valid forms: kill:NODE@T",
        ),
        (
            vec!["compare", "--modes", "local+ack-all"],
            "does not replicate",
        ),
        (
            vec!["load", "--fault", "explode@1s"],
            "unknown action `explode`",
        ),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sessionlab"));
        cmd.args(&args)
            .env("SESSIONLAB_RUN_DIR", tmp.path().join("run"))
            .env("TMPDIR", tmp.path());
        let out = run_bounded(&mut cmd, Duration::from_secs(20));
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert!(leftover_run_dirs(tmp.path()).is_empty());
}

/// `compare --lb haproxy,sessionlab`: the same mode behind both LBs, one
/// report, a row each, both through a kill without losing a session.
#[test]
fn the_same_mode_behind_haproxy_and_sessionlab_lb_in_one_report() {
    let run = compared(&[
        "--modes",
        "sticky-replicated",
        "--lb",
        "haproxy,sessionlab",
        "--duration",
        "3s",
        "--users",
        "6",
        "--ramp-up",
        "300ms",
    ]);
    let stdout = String::from_utf8_lossy(&run.out.stdout);
    assert!(
        stdout.contains("| sticky-replicated/haproxy |")
            && stdout.contains("| sticky-replicated/sessionlab |"),
        "{stdout}"
    );
    let runs = run.outcomes();
    let labels: Vec<&str> = runs.iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert_eq!(
        labels,
        ["sticky-replicated/haproxy", "sticky-replicated/sessionlab"]
    );
    for r in &runs {
        assert_eq!(r["outcome"], "ran", "{r}");
        assert!(r["requests"].as_u64().unwrap() > 20, "{}", r["label"]);
        assert_eq!(r["marks"][0]["label"], "kill node-2", "{}", r["label"]);
    }
}

/// `--scenario redis-failover`: `redis-ha` and `redis-ha+wait`, the Redis
/// primary SIGKILLed halfway; the report's failover section has a row for
/// each, with writes failing after the kill and succeeding again within
/// the Sentinels' failover (1 s down-after plus the election: 2.5 s
/// measured; the bound is the rest of the run). About 25 s.
#[test]
fn a_redis_failover_is_measured_for_redis_ha_with_and_without_wait() {
    let run = compared(&[
        "--scenario",
        "redis-failover",
        "--duration",
        "10s",
        "--users",
        "8",
        "--ramp-up",
        "300ms",
    ]);
    let json = run.report();
    let labels: Vec<&str> = json["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["redis-ha", "redis-ha+wait"]);
    let rows = json["failover"].as_array().expect("a failover section");
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (row, label) in rows.iter().zip(["redis-ha", "redis-ha+wait"]) {
        assert_eq!(row["label"], label);
        assert_eq!(row["fault"], "kill redis-primary", "{row}");
        let at = row["fault_at_s"].as_f64().unwrap();
        assert!((4.5..6.5).contains(&at), "killed at {at} s");
        assert!(row["failed_writes"].as_u64().unwrap() > 0, "{row}");
        let back = row["writes_back_after_s"]
            .as_f64()
            .expect("writes came back");
        assert!((0.5..4.9).contains(&back), "writes back after {back} s");
        assert!(row["acked_increments"].as_u64().unwrap() > 20, "{row}");
    }
    let md = run.markdown();
    assert!(md.contains("## The Redis failover"), "{md}");
    assert!(md.contains("| redis-ha+wait | "), "{md}");
}
