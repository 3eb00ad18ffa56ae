//! Bounded fuzzing of how the node reads a presented session id from the
//! URL (`;sid=`, url tracking mode) and the cookie value form
//! `<id>[.<route>]`: property tests over arbitrary bytes and over
//! path-shaped text, plus a replay of the checked-in seed corpus
//! (`fuzz/corpus/node_sid/`). The coverage-guided target
//! `fuzz/fuzz_targets/node_sid.rs` checks the same properties
//! (`tests/fuzz/checks.rs`). The cookie header parser itself is fuzzed in
//! `sessionlab-wire`. The driver is the test kit's
//! [`sessionlab_testkit::fuzz_target!`].

#[path = "fuzz/checks.rs"]
mod checks;
sessionlab_testkit::fuzz_target! {
    node_sid: checks::node_sid, cases 256, bytes 200,
    text in "/[a-z/%]{0,12}(;sid=([A-Za-z0-9_\\-]{30,34}(\\.[a-z0-9\\-\\.]{0,8})?|[ -~]{0,10}))?(;sid=[a-z]{0,4})?(\\?[ -~]{0,12})?",
}
