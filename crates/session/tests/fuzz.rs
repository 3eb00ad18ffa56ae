//! Bounded fuzzing of what a client presents to the session layer: session
//! ids (bare and with a route suffix) and JWTs. Property tests over
//! arbitrary bytes and over id- and token-shaped text, plus a replay of the
//! checked-in seed corpus (`fuzz/corpus/`). The coverage-guided targets in
//! `fuzz/` check the same properties (`tests/fuzz/checks.rs`).

#[path = "fuzz/checks.rs"]
mod checks;
#[path = "../../../fuzz/replay.rs"]
mod replay;

use proptest::prelude::*;

#[test]
fn session_id_corpus() {
    replay::replay("session_id", checks::session_id);
}

#[test]
fn jwt_corpus() {
    replay::replay("jwt", checks::jwt);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(replay::cases(512)))]

    #[test]
    fn session_id_bytes(data in proptest::collection::vec(any::<u8>(), 0..80)) {
        checks::session_id(&data);
    }

    #[test]
    fn session_id_text(data in "[A-Za-z0-9_\\-]{30,34}(\\.[a-z0-9\\-\\.]{0,8})?|[A-Za-z0-9_\\-\u{e9}+/=\\.]{0,40}") {
        checks::session_id(data.as_bytes());
    }

    #[test]
    fn jwt_bytes(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        checks::jwt(&data);
    }

    #[test]
    fn jwt_text(data in "(ey[A-Za-z0-9_\\-]{0,60}\\.){0,3}[A-Za-z0-9_\\-=+/]{0,40}") {
        checks::jwt(data.as_bytes());
    }
}
