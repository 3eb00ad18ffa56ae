//! Bounded fuzzing of the wire parsers in the normal test suite: property
//! tests over arbitrary bytes (and over cookie-shaped text, which random
//! bytes rarely hit), plus a replay of the checked-in seed corpus. The
//! coverage-guided targets in `fuzz/` check the same properties
//! (`tests/fuzz/checks.rs`); `docs/fuzzing.md` says how to run them.

#[path = "fuzz/checks.rs"]
mod checks;
#[path = "../../../fuzz/replay.rs"]
mod replay;

use proptest::prelude::*;

#[test]
fn cookie_corpus() {
    replay::replay("cookie", checks::cookie);
}

#[test]
fn route_corpus() {
    replay::replay("route", checks::route);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(replay::cases(512)))]

    #[test]
    fn cookie_bytes(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        checks::cookie(&data);
    }

    #[test]
    fn cookie_text(data in "[A-Za-z0-9_-]{0,10}\n([ A-Za-z0-9_\\-=;\"\\.,\t\u{e9}\n]{0,40}|SLSESSION=[a-z\\.\"]{0,6}|SLROUTE=[a-z\\-0-9]{0,6}; ){0,6}") {
        checks::cookie(data.as_bytes());
    }

    #[test]
    fn route_bytes(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        checks::route(&data);
    }

    #[test]
    fn route_text(data in "[A-Za-z0-9_\\-\\.\u{e9}]{0,40}") {
        checks::route(data.as_bytes());
    }
}
