//! Bounded fuzzing of what a client presents to the session layer: session
//! ids (bare and with a route suffix) and JWTs. Property tests over
//! arbitrary bytes and over id- and token-shaped text, plus a replay of the
//! checked-in seed corpus (`fuzz/corpus/`). The coverage-guided targets in
//! `fuzz/` check the same properties (`tests/fuzz/checks.rs`). The driver
//! is the test kit's [`sessionlab_testkit::fuzz_target!`].

#[path = "fuzz/checks.rs"]
mod checks;

sessionlab_testkit::fuzz_target! {
    session_id: checks::session_id, cases 512, bytes 80,
    text in "[A-Za-z0-9_\\-]{30,34}(\\.[a-z0-9\\-\\.]{0,8})?|[A-Za-z0-9_\\-\u{e9}+/=\\.]{0,40}",
}

sessionlab_testkit::fuzz_target! {
    jwt: checks::jwt, cases 512, bytes 300,
    text in "(ey[A-Za-z0-9_\\-]{0,60}\\.){0,3}[A-Za-z0-9_\\-=+/]{0,40}",
}
