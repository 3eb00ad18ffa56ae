//! Bounded fuzzing of the cluster message decoder in the normal test suite:
//! property tests over arbitrary bytes, over batches built from arbitrary
//! numbers (every message kind, values up to `u64::MAX`), and over those
//! batches' JSON with bytes changed, plus a replay of the checked-in seed
//! corpus (`fuzz/corpus/batch/`). The coverage-guided target
//! `fuzz/fuzz_targets/batch.rs` checks the same properties
//! (`tests/fuzz/checks.rs`). The driver is the test kit's
//! [`sessionlab_testkit::fuzz_target!`].

#[path = "fuzz/checks.rs"]
mod checks;

use proptest::prelude::*;
use serde_json::json;

/// Numbers a peer could send: small, near the receiver's clock, or huge.
fn number() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..1_000u64,
        1_700_000_000_000..1_700_000_100_000u64,
        u64::MAX - 1_000..=u64::MAX,
        any::<u64>(),
    ]
}

fn id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{32}"
}

fn session() -> impl Strategy<Value = serde_json::Value> {
    (
        id(),
        proptest::option::of("[a-z]{0,8}"),
        prop::array::uniform5(number()),
        "[a-z0-9-]{0,8}",
    )
        .prop_map(|(id, user, [c, l, i, a, lamport], node)| {
            json!({
                "id": id, "user": user, "data": {"k": [1, "v"]},
                "created_ms": c, "last_access_ms": l,
                "idle_timeout_ms": i, "absolute_timeout_ms": a,
                "version": {"lamport": lamport, "node": node},
            })
        })
}

fn delete() -> impl Strategy<Value = serde_json::Value> {
    (id(), number(), number(), proptest::option::of(number())).prop_map(|(id, l, e, o)| {
        json!({"id": id, "version": {"lamport": l, "node": "node-2"}, "expires_ms": e, "origin_ms": o})
    })
}

fn message() -> impl Strategy<Value = serde_json::Value> {
    let opt_id = || proptest::option::of(id());
    prop_oneof![
        (
            session(),
            proptest::option::of(number()),
            proptest::option::of(number())
        )
            .prop_map(|(s, o, a)| json!({"upsert": {"session": s, "origin_ms": o, "ack": a}})),
        delete().prop_map(|d| json!({ "delete": d })),
        (id(), number()).prop_map(|(id, at)| json!({"touch": {"id": id, "at_ms": at}})),
        (number(), any::<bool>()).prop_map(|(b, r)| json!({"heartbeat": {"boot": b, "ready": r}})),
        proptest::collection::vec(number(), 0..8).prop_map(|w| json!({"ack": {"writes": w}})),
        opt_id().prop_map(|a| json!({"snapshot_request": {"after": a}})),
        (
            opt_id(),
            opt_id(),
            proptest::collection::vec(
                prop_oneof![
                    session().prop_map(|s| json!({ "session": s })),
                    delete().prop_map(|d| json!({ "tombstone": d })),
                ],
                0..4,
            )
        )
            .prop_map(|(a, u, e)| json!({"snapshot_page": {"after": a, "upto": u, "entries": e}})),
        (number(), opt_id()).prop_map(|(r, a)| json!({"digest_request": {"round": r, "after": a}})),
        (
            number(),
            opt_id(),
            opt_id(),
            proptest::collection::vec(
                (id(), number(), number(), any::<bool>(), any::<u64>()),
                0..4,
            )
        )
            .prop_map(|(r, a, u, e)| {
                let e: Vec<_> = e
                    .into_iter()
                    .map(|(id, l, t, d, c)| {
                        json!({
                            "id": id, "version": {"lamport": l, "node": "node-3"},
                            "last_access_ms": t, "deleted": d, "content": c,
                        })
                    })
                    .collect();
                json!({"digest": {"round": r, "after": a, "upto": u, "entries": e}})
            }),
    ]
}

fn batch_json() -> impl Strategy<Value = Vec<u8>> {
    (number(), number(), proptest::collection::vec(message(), 0..6)).prop_map(|(seq, sent, m)| {
        let b = json!({"from": "node-2", "to": "node-1", "seq": seq, "sent_ms": sent, "messages": m});
        serde_json::to_vec(&b).expect("JSON encodes")
    })
}

/// A batch's JSON with one to three bytes changed.
fn batch_json_changed() -> impl Strategy<Value = Vec<u8>> {
    (
        batch_json(),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    )
        .prop_map(|(mut data, edits)| {
            for (at, byte) in edits {
                let i = at.index(data.len());
                data[i] = byte;
            }
            data
        })
}

sessionlab_testkit::fuzz_target! {
    batch: checks::batch, cases 256, bytes 300,
    structured in batch_json(),
    structured_then_changed in batch_json_changed(),
}
