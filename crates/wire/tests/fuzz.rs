//! Bounded fuzzing of the wire parsers in the normal test suite: property
//! tests over arbitrary bytes (and over cookie-shaped text, which random
//! bytes rarely hit), plus a replay of the checked-in seed corpus. The
//! coverage-guided targets in `fuzz/` check the same properties
//! (`tests/fuzz/checks.rs`); `docs/fuzzing.md` says how to run them. The
//! driver is the test kit's [`sessionlab_testkit::fuzz_target!`].

#[path = "fuzz/checks.rs"]
mod checks;

sessionlab_testkit::fuzz_target! {
    cookie: checks::cookie, cases 512, bytes 300,
    text in "[A-Za-z0-9_-]{0,10}\n([ A-Za-z0-9_\\-=;\"\\.,\t\u{e9}\n]{0,40}|SLSESSION=[a-z\\.\"]{0,6}|SLROUTE=[a-z\\-0-9]{0,6}; ){0,6}",
}

sessionlab_testkit::fuzz_target! {
    route: checks::route, cases 512, bytes 200,
    text in "[A-Za-z0-9_\\-\\.\u{e9}]{0,40}",
}
