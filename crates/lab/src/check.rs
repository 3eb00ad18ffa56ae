//! `sessionlab check HISTORY`: the session guarantees a history keeps, and
//! the operations that break the others.
//!
//! A history is what `sessionlab load --history FILE` (or `compare`, one
//! per mode) writes: every operation of every simulated user, one JSON
//! object per line (format in `docs/lab.md`). The checking is done by
//! `sessionlab_load::check`, the same code `load` and `compare` run on
//! their own histories; this command reads a file, prints the result, and
//! draws each counterexample as a space-time diagram (SVG) in a folder
//! beside the file. When the nodes' replication events of the run lie
//! beside it too (`FILE.replication.json`, [`replication_file`]), the
//! pictures also draw the copies of the writes. It exits 1 when a guarantee is broken, so a script can
//! test a cluster with it.

use std::path::{Path, PathBuf};

use clap::Args;
use sessionlab_load::check::replication::{self, ReplicationLog};
use sessionlab_load::check::{self, CheckReport};
use sessionlab_load::history;

use crate::error::{LabError, Result};

/// `sessionlab check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The history file (one JSON operation per line).
    pub history: PathBuf,
    /// Print the result as JSON (counts and counterexamples).
    #[arg(long)]
    pub json: bool,
    /// Where the counterexample pictures go [default: HISTORY's name with
    /// `-counterexamples`, beside it]. Nothing is written when every
    /// guarantee holds.
    #[arg(long)]
    pub svg_dir: Option<PathBuf>,
}

/// The folder for a history's pictures: `run.jsonl` -> `run-counterexamples`.
pub fn default_svg_dir(history: &Path) -> PathBuf {
    beside(history, "-counterexamples")
}

/// The nodes' replication events of a history's run, beside it:
/// `run.jsonl` -> `run.replication.json` (format in `docs/lab.md`).
pub fn replication_file(history: &Path) -> PathBuf {
    beside(history, ".replication.json")
}

/// A file in the history's folder named after its stem and `suffix`
/// (`history` when the path has no stem).
fn beside(history: &Path, suffix: &str) -> PathBuf {
    let stem = history
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "history".into());
    history.with_file_name(format!("{stem}{suffix}"))
}

/// The replication events beside a history, if there are any.
pub fn read_replication(history: &Path) -> Result<Option<ReplicationLog>> {
    let path = replication_file(history);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LabError::io(format!("reading {}", path.display()))(e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| LabError::InvalidArgument(format!("{}: {e}", path.display())))
}

/// Write one SVG per counterexample (`1-read-your-writes.svg`, ...), with
/// the copies of the writes when the run's replication events are given;
/// returns the files written.
pub fn write_diagrams(
    report: &CheckReport,
    dir: &Path,
    events: Option<&ReplicationLog>,
) -> Result<Vec<PathBuf>> {
    if report.examples.is_empty() {
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(dir).map_err(LabError::io(format!("creating {}", dir.display())))?;
    let mut files = Vec::new();
    for (i, ex) in report.examples.iter().enumerate() {
        let path = dir.join(format!("{}-{}.svg", i + 1, ex.kind.slug()));
        let copies = events.map(|log| replication::arrows(ex, log));
        let svg = check::diagram_with(ex, copies.as_deref().unwrap_or_default());
        std::fs::write(&path, svg).map_err(LabError::io(format!("writing {}", path.display())))?;
        files.push(path);
    }
    Ok(files)
}

/// Read and check a history file.
pub fn read_and_check(path: &Path) -> Result<CheckReport> {
    let file = std::fs::File::open(path).map_err(LabError::io(format!(
        "opening the history {}",
        path.display()
    )))?;
    let ops = history::read(std::io::BufReader::new(file))
        .map_err(|e| LabError::InvalidArgument(format!("{}: {e}", path.display())))?;
    Ok(check::check(&ops))
}

/// Runs `sessionlab check`: the text (or JSON) to print, and how many
/// violations it found.
pub fn run(args: &CheckArgs) -> Result<(String, u64)> {
    let report = read_and_check(&args.history)?;
    let dir = args
        .svg_dir
        .clone()
        .unwrap_or_else(|| default_svg_dir(&args.history));
    let events = read_replication(&args.history)?;
    let files = write_diagrams(&report, &dir, events.as_ref())?;
    let out = if args.json {
        serde_json::to_string_pretty(&report)
            .map_err(|e| LabError::InvalidArgument(format!("the report does not serialize: {e}")))?
    } else {
        let mut text = report.text();
        if !files.is_empty() {
            text.push_str(&format!(
                "\npictures of the counterexamples: {}\n",
                dir.display()
            ));
        }
        text
    };
    Ok((out.trim_end().to_owned(), report.total()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_go_beside_the_history() {
        assert_eq!(
            default_svg_dir(Path::new("/tmp/x/run.jsonl")),
            PathBuf::from("/tmp/x/run-counterexamples")
        );
    }

    #[test]
    fn a_broken_history_is_reported_with_pictures_and_a_clean_one_passes() {
        let dir = tempfile::tempdir().unwrap();
        let line = |op: &str, t: u64, node: &str, counter: Option<i64>| {
            serde_json::json!({
                "user": 0, "client": 0, "op": op, "invoke_us": t, "complete_us": t + 5,
                "node": node, "status": 200, "counter": counter, "version": null,
                "logged_in": true,
            })
            .to_string()
        };
        // A login, an increment to 1 on node-1, and a read on node-2 that
        // says `read`, written as `name.jsonl` and checked.
        let check = |name: &str, read: i64, json: bool| {
            let history = [
                line("login", 0, "node-1", None),
                line("increment", 10, "node-1", Some(1)),
                line("read", 20, "node-2", Some(read)),
            ]
            .join("\n");
            let path = dir.path().join(format!("{name}.jsonl"));
            std::fs::write(&path, history).unwrap();
            run(&CheckArgs {
                history: path,
                json,
                svg_dir: None,
            })
            .unwrap()
        };
        let (text, violations) = check("bad", 0, false);
        // The read misses the increment, and being the last read, it is a lost update too.
        assert_eq!(violations, 2);
        assert!(text.contains("read-your-writes"), "{text}");
        let svg = dir
            .path()
            .join("bad-counterexamples/1-read-your-writes.svg");
        assert!(std::fs::read_to_string(svg).unwrap().contains("node-2"));

        let (json, violations) = check("good", 1, true);
        assert_eq!(violations, 0);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["operations"], 3);
        assert!(!dir.path().join("good-counterexamples").exists());
    }

    #[test]
    fn replication_events_beside_the_history_are_drawn() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        assert_eq!(
            replication_file(&path),
            dir.path().join("run.replication.json")
        );
        let history = [
            r#"{"user":0,"client":0,"op":"login","invoke_us":0,"complete_us":500,"node":"node-1","status":200,"counter":null,"version":null,"logged_in":true}"#,
            r#"{"user":0,"client":0,"op":"increment","invoke_us":1000,"complete_us":2000,"node":"node-1","status":200,"counter":1,"version":null,"logged_in":true}"#,
            r#"{"user":0,"client":0,"op":"read","invoke_us":3000,"complete_us":4000,"node":"node-2","status":200,"counter":0,"version":"1@node-1","logged_in":true,"session":"ab12cd"}"#,
        ]
        .join("\n");
        std::fs::write(&path, history).unwrap();
        let svg = || {
            std::fs::read_to_string(
                dir.path()
                    .join("run-counterexamples/1-read-your-writes.svg"),
            )
            .unwrap()
        };
        let args = CheckArgs {
            history: path.clone(),
            json: false,
            svg_dir: None,
        };
        run(&args).unwrap();
        assert!(
            !svg().contains("class=\"replication\""),
            "no events, no copies"
        );
        // The increment's write, made at 1.5 ms on node-1, applied on
        // node-2 at 6 ms (the node's event, extra fields and all).
        let events = serde_json::json!({
            "run_start_ms": 1_700_000_000_000u64,
            "nodes": {"node-2": [{
                "seq": 9, "time_ms": 1_700_000_000_006u64, "kind": "upsert",
                "peer": "node-1", "session": "ab12", "version": "2@node-1",
                "outcome": "stored", "lag_ms": 4.5, "text": "node-1 -> node-2 upsert ab12.."
            }]},
        });
        std::fs::write(replication_file(&path), events.to_string()).unwrap();
        run(&args).unwrap();
        assert_eq!(svg().matches("class=\"replication\"").count(), 1);
        std::fs::write(replication_file(&path), "garbled").unwrap();
        let e = run(&args).unwrap_err();
        assert!(e.to_string().contains("run.replication.json"), "{e}");
    }

    #[test]
    fn a_missing_or_garbled_history_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_and_check(&dir.path().join("nope.jsonl")).unwrap_err();
        assert!(e.to_string().contains("opening the history"), "{e}");
        let path = dir.path().join("garbled.jsonl");
        std::fs::write(&path, "not json\n").unwrap();
        let e = read_and_check(&path).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }
}
