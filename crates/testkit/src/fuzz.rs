//! The bounded-fuzzing driver of every crate's `tests/fuzz.rs`.
//!
//! Each fuzz target's properties are written once, as a function over
//! arbitrary bytes that panics only when a property fails
//! (`crates/<crate>/tests/fuzz/checks.rs`); the coverage-guided targets in
//! `fuzz/` call the same function under libFuzzer. In the normal test suite
//! the same function runs three ways, and that is what [`fuzz_target!`]
//! writes for a target, so no crate repeats it:
//!
//! - `corpus`: every file of `fuzz/corpus/<target>/` (the seeds the
//!   coverage-guided fuzzer starts from, and every input that once found a
//!   bug), so a fixed finding stays fixed even where the fuzzer itself is
//!   not installed;
//! - `bytes`: proptest over arbitrary bytes up to a bound;
//! - one test per shaped input (a regex, or any strategy whose values are
//!   bytes or text), because random bytes rarely hit the shapes a parser
//!   cares about (a cookie header, a signed request, a batch).
//!
//! The number of cases is a few seconds' worth by default;
//! `PROPTEST_CASES` raises it for long runs (`scripts/fuzz.sh`).

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

/// The tests of one fuzz target (see the module docs): a module named after
/// the target with `corpus`, `bytes` and one test per shaped input.
///
/// ```ignore
/// sessionlab_testkit::fuzz_target! {
///     /// What the target reads.
///     cookie: checks::cookie, cases 512, bytes 300,
///     text in "[A-Za-z0-9=; ]{0,40}",
/// }
/// ```
///
/// `cases` is the default number of cases per proptest test, `bytes` the
/// longest arbitrary input; each `name in strategy` is a test over the
/// strategy's values, passed to the check as bytes (`AsRef<[u8]>`).
#[macro_export]
macro_rules! fuzz_target {
    (
        $(#[$doc:meta])*
        $target:ident: $check:path, cases $cases:expr, bytes $max:expr
        $(, $shaped:ident in $strategy:expr)* $(,)?
    ) => {
        $(#[$doc])*
        mod $target {
            #[allow(unused_imports)]
            use super::*;
            use $crate::proptest::prelude::*;

            #[test]
            fn corpus() {
                $crate::fuzz::replay(stringify!($target), $check);
            }

            $crate::proptest::proptest! {
                #![proptest_config(ProptestConfig::with_cases($crate::fuzz::cases($cases)))]

                #[test]
                fn bytes(data in $crate::proptest::collection::vec(any::<u8>(), 0..$max)) {
                    $check(&data);
                }

                $(
                    #[test]
                    fn $shaped(data in $strategy) {
                        $check(AsRef::<[u8]>::as_ref(&data));
                    }
                )*
            }
        }
    };
}
