//! `sessionlab study` end to end: real clusters, figures checked against
//! what the modes and strategies must show.
//!
//! - `study scale`, local against sticky-replicated at 2 and 3 nodes:
//!   local copies nothing (0 replication bytes per write); all-to-all
//!   holds one copy of every session per node, and its bytes per write
//!   grow with N (one copy more to send per write).
//! - `study churn`, one step 1 -> 2: the inserted cookie keeps every user
//!   on its node when one is added; round-robin moves users with no change
//!   at all.

mod support;

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use sessionlab_lab::RunFolder;
use support::*;

/// Stops whatever a study left running under `tmp` (if the test failed
/// half way; a successful study leaves nothing).
struct Leftovers(std::path::PathBuf);

impl Drop for Leftovers {
    fn drop(&mut self) {
        let Ok(rd) = std::fs::read_dir(&self.0) else {
            return;
        };
        for dir in rd.flatten().map(|e| e.path()) {
            if let Ok(Some(state)) = RunFolder::new(&dir).load() {
                for (_, p) in state.processes() {
                    let _ = p.signal(Signal::SIGKILL);
                }
            }
        }
    }
}

/// A finished study: its report, and the folder it ran in (removed, after
/// whatever it left running is stopped, when this is dropped).
struct Study {
    json: serde_json::Value,
    /// `report/` holds the report and its charts.
    out_dir: std::path::PathBuf,
    _cleanup: Leftovers,
    _tmp: tempfile::TempDir,
}

impl Study {
    /// The report's cells (one a mode and size, or a strategy).
    fn cells(&self) -> &Vec<serde_json::Value> {
        self.json["cells"].as_array().unwrap()
    }
}

/// `sessionlab study ARGS --out OUT` with run folders in a fresh temp
/// folder; panics unless it succeeds.
fn study(args: &[&str]) -> Study {
    require_binaries();
    let tmp = tempfile::tempdir().unwrap();
    let cleanup = Leftovers(tmp.path().to_path_buf());
    let out_dir = tmp.path().join("report");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sessionlab"));
    cmd.arg("study")
        .args(args)
        .arg("--out")
        .arg(&out_dir)
        .env("SESSIONLAB_BIN_DIR", bin_dir())
        .env("SESSIONLAB_GRACE", "3s")
        .env("TMPDIR", tmp.path());
    let out = run_bounded(&mut cmd, Duration::from_secs(55));
    assert!(out.status.success(), "study failed:\n{}", text(&out));
    let json = std::fs::read_to_string(out_dir.join("report.json")).unwrap();
    Study {
        json: serde_json::from_str(&json).unwrap(),
        out_dir,
        _cleanup: cleanup,
        _tmp: tmp,
    }
}

#[test]
fn scale_shows_all_to_all_growing_and_local_copying_nothing() {
    let run = study(&[
        "scale",
        "--nodes",
        "2,3",
        "--modes",
        "local,sticky-replicated",
        "--duration",
        "2s",
        "--users-per-node",
        "4",
    ]);
    let cells = run.cells();
    let cell = |mode: &str, n: u64| {
        cells
            .iter()
            .find(|c| c["mode"] == mode && c["nodes"] == n)
            .unwrap_or_else(|| panic!("no {mode} x{n} in {}", run.json))
    };
    let f = |c: &serde_json::Value, k: &str| c[k].as_f64().unwrap();
    for n in [2, 3] {
        let local = cell("local", n);
        assert_eq!(f(local, "replication_bytes_per_write"), 0.0, "{local}");
        assert!(f(local, "writes") > 0.0, "{local}");
        let sr = cell("sticky-replicated", n);
        let copies = f(sr, "copies_per_session");
        assert!(
            (copies - n as f64).abs() < 0.01,
            "all-to-all: one copy per node, {copies} at {n}"
        );
        assert_eq!(sr["lost_without_fault"], 0, "{sr}");
        assert!(f(sr, "memory_per_node_mib") > 1.0, "{sr}");
        assert!(f(sr, "cpu_ms_per_write") > 0.0, "{sr}");
        assert_eq!(sr["kill_users"], 4 * n, "{sr}");
    }
    let (b2, b3) = (
        f(cell("sticky-replicated", 2), "replication_bytes_per_write"),
        f(cell("sticky-replicated", 3), "replication_bytes_per_write"),
    );
    assert!(
        b2 > 0.0 && b3 > b2 * 1.4,
        "bytes per write 2 -> 3 nodes: {b2} -> {b3}"
    );
    for svg in [
        "bytes_per_write.svg",
        "memory_per_node.svg",
        "throughput.svg",
        "latency_p99.svg",
    ] {
        let text = std::fs::read_to_string(run.out_dir.join(svg)).unwrap();
        assert!(
            text.contains("sticky-replicated") && text.contains("nodes"),
            "{svg}"
        );
    }
}

#[test]
fn churn_cookie_moves_nobody_on_add_and_round_robin_moves_users() {
    let run = study(&[
        "churn",
        "--from",
        "1",
        "--to",
        "2",
        "--modes",
        "sticky",
        "--strategies",
        "round-robin,sticky-cookie",
        "--users",
        "20",
    ]);
    let cells = run.cells();
    let step = |strategy: &str, step: &str| {
        let c = cells.iter().find(|c| c["strategy"] == strategy).unwrap();
        c["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == step)
            .unwrap()
            .clone()
    };
    let cookie_add = step("sticky-cookie", "add");
    assert_eq!(cookie_add["users"], 20);
    assert_eq!(cookie_add["moved"], 0, "{cookie_add}");
    assert_eq!(cookie_add["lost"], 0, "{cookie_add}");
    let rr_add = step("round-robin", "add");
    assert!(rr_add["moved"].as_u64().unwrap() >= 5, "{rr_add}");
}
