//! `sessionlab logs [PROCESS] [--follow]`: the per-process log files.
//!
//! Every process of the cluster writes stdout and stderr to
//! `<run folder>/logs/<process>.log`. The files stay after `down`, so the
//! log of a cluster that just misbehaved can still be read; this is also why
//! the set of valid names is taken from the files present, not from the
//! running cluster. With several files, each line is prefixed with its
//! process name (`node-2 | ...`), like docker-compose does.
//!
//! `--follow` polls the files for appended lines and ends by itself when the
//! cluster is brought down (the state file disappears), or on Ctrl-C. The
//! cluster runs in its own process group, so Ctrl-C here does not reach it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{LabError, Result};
use crate::runfolder::RunFolder;

/// The last `n` lines of a file (all if shorter), or a note if unreadable.
pub fn tail_lines(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// The log files in the run folder: (process name, path), `lb` first, then
/// nodes in numeric order.
pub fn log_files(rf: &RunFolder) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(rf.logs_dir()) else {
        return Vec::new();
    };
    let mut files: Vec<(String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let path = e.path();
            let name = path
                .file_name()?
                .to_str()?
                .strip_suffix(".log")?
                .to_string();
            Some((name, path))
        })
        .collect();
    files.sort_by_key(|(name, _)| sort_key(name));
    files
}

fn sort_key(name: &str) -> (u8, u64, String) {
    if name == "lb" {
        return (0, 0, String::new());
    }
    match name.strip_prefix("node-").and_then(|n| n.parse().ok()) {
        Some(n) => (1, n, String::new()),
        None => (2, 0, name.to_string()),
    }
}

/// Options of `sessionlab logs`.
pub struct LogsOptions {
    pub process: Option<String>,
    pub follow: bool,
    /// Only the last `lines` lines of each file (all if `None`).
    pub lines: Option<usize>,
}

/// Prints the logs to `out`; with `follow`, keeps printing until the cluster
/// is down.
pub fn show(rf: &RunFolder, opts: &LogsOptions, out: &mut impl Write) -> Result<()> {
    let all = log_files(rf);
    if all.is_empty() {
        return Err(LabError::InvalidArgument(format!(
            "no logs in {} (start a cluster with `sessionlab up`)",
            rf.logs_dir().display()
        )));
    }
    let files: Vec<(String, PathBuf)> = match &opts.process {
        None => all,
        Some(name) => {
            let found: Vec<_> = all.iter().filter(|(n, _)| n == name).cloned().collect();
            if found.is_empty() {
                return Err(LabError::UnknownProcess {
                    name: name.clone(),
                    valid: all
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            found
        }
    };
    let prefixed = files.len() > 1;
    let width = files.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let mut readers = Vec::new();
    for (name, path) in &files {
        let prefix = if prefixed {
            format!("{name:width$} | ")
        } else {
            String::new()
        };
        let mut reader = Follower::open(path)?;
        let text = reader.read_new()?;
        let lines: Vec<&str> = text.lines().collect();
        let from = opts.lines.map_or(0, |n| lines.len().saturating_sub(n));
        for line in &lines[from..] {
            writeln!(out, "{prefix}{line}").map_err(LabError::io("writing logs"))?;
        }
        readers.push((prefix, reader));
    }
    out.flush().map_err(LabError::io("writing logs"))?;
    if !opts.follow {
        return Ok(());
    }
    while rf.state_path().exists() {
        for (prefix, reader) in &mut readers {
            for line in reader.read_new()?.lines() {
                writeln!(out, "{prefix}{line}").map_err(LabError::io("writing logs"))?;
            }
        }
        out.flush().map_err(LabError::io("writing logs"))?;
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Reads a growing file from where it last stopped, whole lines only.
struct Follower {
    file: File,
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl Follower {
    fn open(path: &Path) -> Result<Follower> {
        let file = File::open(path).map_err(LabError::io(format!("opening {}", path.display())))?;
        Ok(Follower {
            file,
            path: path.to_path_buf(),
            offset: 0,
            partial: Vec::new(),
        })
    }

    /// The complete lines appended since the last call. A file that shrank
    /// (truncated by a new `up`) is read again from the start.
    fn read_new(&mut self) -> Result<String> {
        let err = || LabError::io(format!("reading {}", self.path.display()));
        let len = self.file.metadata().map_err(err())?.len();
        if len < self.offset {
            self.offset = 0;
            self.partial.clear();
        }
        self.file
            .seek(SeekFrom::Start(self.offset))
            .map_err(err())?;
        let mut buf = Vec::new();
        self.file.read_to_end(&mut buf).map_err(err())?;
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let cut = self
            .partial
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let complete: Vec<u8> = self.partial.drain(..cut).collect();
        Ok(String::from_utf8_lossy(&complete).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder_with_logs() -> (tempfile::TempDir, RunFolder) {
        let dir = tempfile::tempdir().unwrap();
        let rf = RunFolder::new(dir.path());
        rf.create().unwrap();
        std::fs::write(rf.log_path("node-10"), "ten\n").unwrap();
        std::fs::write(rf.log_path("node-2"), "two-a\ntwo-b\n").unwrap();
        std::fs::write(rf.log_path("lb"), "balancer\n").unwrap();
        (dir, rf)
    }

    #[test]
    fn all_logs_are_prefixed_in_process_order() {
        let (_dir, rf) = folder_with_logs();
        let mut out = Vec::new();
        let opts = LogsOptions {
            process: None,
            follow: false,
            lines: Some(1),
        };
        show(&rf, &opts, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "lb      | balancer\nnode-2  | two-b\nnode-10 | ten\n"
        );
    }

    #[test]
    fn one_log_is_printed_plain_and_unknown_names_list_the_valid_ones() {
        let (_dir, rf) = folder_with_logs();
        let mut out = Vec::new();
        let mut opts = LogsOptions {
            process: Some("node-2".into()),
            follow: false,
            lines: None,
        };
        show(&rf, &opts, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "two-a\ntwo-b\n");
        opts.process = Some("node-7".into());
        let err = show(&rf, &opts, &mut Vec::new()).unwrap_err().to_string();
        assert_eq!(
            err,
            "no log for `node-7`; processes with logs: lb, node-2, node-10"
        );
    }

    #[test]
    fn follower_returns_whole_lines_and_survives_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, "a\nb").unwrap();
        let mut f = Follower::open(&path).unwrap();
        assert_eq!(f.read_new().unwrap(), "a\n");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"c\n").unwrap();
        assert_eq!(f.read_new().unwrap(), "bc\n");
        std::fs::write(&path, "new\n").unwrap();
        assert_eq!(f.read_new().unwrap(), "new\n");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        std::fs::write(&path, "1\n2\n3\n").unwrap();
        assert_eq!(tail_lines(&path, 2), "2\n3");
        assert!(tail_lines(&dir.path().join("none"), 2).starts_with("(cannot read"));
    }
}
