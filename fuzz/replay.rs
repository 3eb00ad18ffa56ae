//! Shared by every crate's `tests/fuzz.rs`: the checked-in seed corpus and
//! the property-test settings.
//!
//! `fuzz/corpus/<target>/` holds small inputs (the seeds the coverage-guided
//! fuzzer starts from, and every input that once found a bug). The test
//! suite replays all of them on each run, so a fixed finding stays fixed
//! even where the fuzzer itself is not installed.

#![allow(dead_code)]

use std::path::PathBuf;

/// Every file of `fuzz/corpus/<target>/`; fails if there is none, so a
/// renamed target cannot silently replay nothing.
pub fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a readable corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: no seeds", dir.display());
    files
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).expect("a readable seed");
            (p, data)
        })
        .collect()
}

/// Run `check` on every seed of `target`, naming the seed that fails.
pub fn replay(target: &str, check: impl Fn(&[u8])) {
    for (path, data) in corpus(target) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&data)));
        if let Err(e) = outcome {
            eprintln!("seed {} failed", path.display());
            std::panic::resume_unwind(e);
        }
    }
}

/// Property-test cases per test: `PROPTEST_CASES` if set (`scripts/fuzz.sh`
/// sets it for longer runs), else `default` (a few seconds at most).
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
