#![no_main]
//! See crates/replication-core/tests/fuzz/checks.rs (the same check runs in the test suite).

#[allow(dead_code)]
#[path = "../../crates/replication-core/tests/fuzz/checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::batch(data));
