//! Bounded fuzzing of the cluster listener's signature check in the normal
//! test suite: property tests over arbitrary bytes and over header-shaped
//! text, plus a replay of the checked-in seed corpus
//! (`fuzz/corpus/signature/`). The coverage-guided target
//! `fuzz/fuzz_targets/signature.rs` checks the same properties
//! (`tests/fuzz/checks.rs`). The body decoder is fuzzed in
//! `sessionlab-replication-core`'s `tests/fuzz.rs`. The driver is the test
//! kit's [`sessionlab_testkit::fuzz_target!`].

#[path = "fuzz/checks.rs"]
mod checks;
sessionlab_testkit::fuzz_target! {
    signature: checks::signature, cases 256, bytes 300,
    text in "[a-z0-9-]{0,70}\n[0-9]{0,22}\n[0-9a-fA-F]{30,34}\n[0-9a-f]{62,66}\n(POST|GET|post)\n/[a-z/?=]{0,20}\n.{0,40}",
}
