#![no_main]
//! See crates/wire/tests/fuzz/checks.rs (the same check runs in the test suite).

#[allow(dead_code)]
#[path = "../../crates/wire/tests/fuzz/checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::route(data));
