//! Bounded fuzzing of the cluster listener's signature check in the normal
//! test suite: property tests over arbitrary bytes and over header-shaped
//! text, plus a replay of the checked-in seed corpus
//! (`fuzz/corpus/signature/`). The coverage-guided target
//! `fuzz/fuzz_targets/signature.rs` checks the same properties
//! (`tests/fuzz/checks.rs`). The body decoder is fuzzed in
//! `sessionlab-replication-core`'s `tests/fuzz.rs`.

#[path = "fuzz/checks.rs"]
mod checks;
#[path = "../../../fuzz/replay.rs"]
mod replay;

use proptest::prelude::*;

#[test]
fn signature_corpus() {
    replay::replay("signature", checks::signature);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(replay::cases(256)))]

    #[test]
    fn signature_bytes(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        checks::signature(&data);
    }

    #[test]
    fn signature_text(data in "[a-z0-9-]{0,70}\n[0-9]{0,22}\n[0-9a-fA-F]{30,34}\n[0-9a-f]{62,66}\n(POST|GET|post)\n/[a-z/?=]{0,20}\n.{0,40}") {
        checks::signature(data.as_bytes());
    }
}
