//! `sessionlab check HISTORY`: the session guarantees a history keeps, and
//! the operations that break the others.
//!
//! A history is what `sessionlab load --history FILE` (or `compare`, one
//! per mode) writes: every operation of every simulated user, one JSON
//! object per line (format in `docs/lab.md`). The checking is done by
//! `sessionlab_load::check`, the same code `load` and `compare` run on
//! their own histories; this command reads a file, prints the result, and
//! draws each counterexample as a space-time diagram (SVG) in a folder
//! beside the file. It exits 1 when a guarantee is broken, so a script can
//! test a cluster with it.

use std::path::{Path, PathBuf};

use clap::Args;
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
    let stem = history
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "history".into());
    history.with_file_name(format!("{stem}-counterexamples"))
}

/// Write one SVG per counterexample (`1-read-your-writes.svg`, ...);
/// returns the files written.
pub fn write_diagrams(report: &CheckReport, dir: &Path) -> Result<Vec<PathBuf>> {
    if report.examples.is_empty() {
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(dir).map_err(LabError::io(format!("creating {}", dir.display())))?;
    let mut files = Vec::new();
    for (i, ex) in report.examples.iter().enumerate() {
        let path = dir.join(format!("{}-{}.svg", i + 1, ex.kind.slug()));
        std::fs::write(&path, check::diagram(ex))
            .map_err(LabError::io(format!("writing {}", path.display())))?;
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
    let files = write_diagrams(&report, &dir)?;
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
