//! Bounded fuzzing of the LB's request head handling in the normal test
//! suite: property tests over arbitrary bytes and over header-shaped text
//! (`Connection` lists, cookies, route suffixes), plus a replay of the
//! checked-in seed corpus (`fuzz/corpus/lb_head/`). The coverage-guided
//! target `fuzz/fuzz_targets/lb_head.rs` checks the same properties
//! (`tests/fuzz/checks.rs`). The driver is the test kit's
//! [`sessionlab_testkit::fuzz_target!`].

#[path = "fuzz/checks.rs"]
mod checks;

use proptest::prelude::*;

/// One header line a client could send.
fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        "(connection|Connection|keep-alive|te|upgrade|transfer-encoding|proxy-connection|x-a|x-b|host|cookie|x-forwarded-for|x-forwarded-host): [ -~]{0,30}",
        "[Cc]onnection: ((close|keep-alive|x-a|x-b|X-A|te|cookie|host|[a-z\\-]{1,6}| ),){0,6}[a-z\\-]{0,6}",
        "cookie: ((SLROUTE|SLSESSION|a|b)=(node-[0-4]|[A-Za-z0-9_\\-]{0,34}(\\.node-[1-4])?|\"node-1\")?;? ?){0,4}",
        "[ -~]{0,40}",
    ]
}

sessionlab_testkit::fuzz_target! {
    lb_head: checks::lb_head, cases 256, bytes 300,
    text in proptest::collection::vec(line(), 0..10).prop_map(|lines| lines.join("\n")),
}
