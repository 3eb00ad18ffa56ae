//! Algebraic properties of applying messages, checked with proptest on a
//! single replica (the simulation checks the cluster as a whole):
//!
//! - **order does not matter**: any permutation of the same upserts and
//!   deletes (concurrent writes from different nodes, late copies, deletes
//!   racing writes) leaves the same state;
//! - **duplicates do not matter**: applying any message twice in a row, or
//!   a whole batch twice, leaves the same state as applying it once.
//!
//! Together with "every replica eventually receives every message" (the job
//! of queues, resync and anti-entropy) these are what make all replicas end
//! up equal.

use std::sync::Arc;

use proptest::prelude::*;
use sessionlab_replication_core::{
    Batch, Delete, DigestEntry, Message, ProtocolConfig, Replica, Upsert, session_id,
};
use sessionlab_session::{MemoryStore, MemoryStoreConfig, Session, Version};

const NOW: u64 = 1_700_000_000_000;

/// A session write identified by `(id, version)`: the same pair always
/// means the same content, as in the real protocol (a version names one
/// write).
fn upsert(id: u8, lamport: u64, node: u8) -> Message {
    let mut s = Session::new(session_id(&format!("p{id}")), NOW, 3_600_000, 7_200_000);
    s.version = Version::new(lamport, format!("node-{node}"));
    s.last_access_ms = NOW + lamport * 10 + node as u64;
    let mut data = serde_json::Map::new();
    data.insert(
        "w".into(),
        serde_json::Value::from(format!("{lamport}@{node}")),
    );
    s.set_data(&data);
    Message::Upsert(
        Upsert {
            session: s,
            origin_ms: Some(NOW),
            origin_us: None,
            ack: None,
            base: None,
        }
        .into(),
    )
}

fn delete(id: u8, lamport: u64, node: u8) -> Message {
    Message::Delete(Delete {
        id: session_id(&format!("p{id}")),
        version: Version::new(lamport, format!("node-{node}")),
        expires_ms: NOW + 10_000_000,
        origin_ms: Some(NOW),
        origin_us: None,
        ack: None,
    })
}

fn touch(id: u8, at: u64) -> Message {
    Message::Touch {
        id: session_id(&format!("p{id}")),
        at_ms: NOW + at,
    }
}

fn data_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        6 => (0u8..4, 1u64..30, 2u8..4).prop_map(|(i, l, n)| upsert(i, l, n)),
        1 => (0u8..4, 1u64..30, 2u8..4).prop_map(|(i, l, n)| delete(i, l, n)),
    ]
}

fn any_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        6 => data_message(),
        2 => (0u8..4, 0u64..400).prop_map(|(i, a)| touch(i, a)),
    ]
}

fn replica() -> Replica {
    let store = Arc::new(MemoryStore::new(MemoryStoreConfig {
        node_id: "node-1".into(),
        ..MemoryStoreConfig::default()
    }));
    let peers = ["node-2", "node-3"].map(String::from);
    Replica::new("node-1", peers, ProtocolConfig::fast(), store, NOW)
}

fn batch(seq: u64, messages: Vec<Message>) -> Batch {
    Batch {
        from: "node-2".into(),
        to: "node-1".into(),
        seq,
        sent_ms: NOW,
        messages,
    }
}

/// Everything the replica holds: sessions in full, and the digest (which
/// includes tombstones).
fn state(r: &Replica) -> (Vec<Session>, Vec<DigestEntry>) {
    let mut sessions = r.store().snapshot();
    sessions.sort_by(|a, b| a.id.cmp(&b.id));
    let (digest, _) = r.digest(None, 1_000, NOW);
    (sessions, digest)
}

fn apply_each(messages: &[Message]) -> Replica {
    let mut r = replica();
    for (i, m) in messages.iter().enumerate() {
        r.on_batch(batch(i as u64, vec![m.clone()]), NOW).unwrap();
    }
    r
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_order_of_upserts_and_deletes_does_not_matter(
        (messages, shuffled) in prop::collection::vec(data_message(), 1..24)
            .prop_flat_map(|v| { let s = Just(v.clone()).prop_shuffle(); (Just(v), s) })
    ) {
        let a = apply_each(&messages);
        let b = apply_each(&shuffled);
        prop_assert_eq!(state(&a), state(&b));
    }

    #[test]
    fn applying_a_message_twice_changes_nothing(
        messages in prop::collection::vec((any_message(), any::<bool>()), 1..24)
    ) {
        let once: Vec<Message> = messages.iter().map(|(m, _)| m.clone()).collect();
        let twice: Vec<Message> = messages
            .iter()
            .flat_map(|(m, dup)| if *dup { vec![m.clone(), m.clone()] } else { vec![m.clone()] })
            .collect();
        prop_assert_eq!(state(&apply_each(&once)), state(&apply_each(&twice)));
    }

    /// A whole batch delivered again later (a retried HTTP request, a
    /// duplicate from the network). Touches are left out here on purpose: a
    /// touch that arrives before its session is dropped, and a later copy
    /// of it then *does* apply: last access moves to a real, later access
    /// time (a maximum, so never backwards), which anti-entropy would bring
    /// anyway.
    #[test]
    fn a_batch_delivered_twice_changes_nothing(
        messages in prop::collection::vec(data_message(), 1..24)
    ) {
        let mut r = replica();
        r.on_batch(batch(1, messages.clone()), NOW).unwrap();
        let first = state(&r);
        r.on_batch(batch(1, messages), NOW).unwrap();
        prop_assert_eq!(first, state(&r));
    }

    #[test]
    fn the_highest_version_wins_unless_deleted(
        writes in prop::collection::vec((1u64..50, 2u8..4), 1..12)
    ) {
        let messages: Vec<Message> = writes.iter().map(|(l, n)| upsert(0, *l, *n)).collect();
        let r = apply_each(&messages);
        let (l, n) = writes.iter().max().unwrap();
        let (sessions, _) = state(&r);
        prop_assert_eq!(sessions.len(), 1);
        prop_assert_eq!(&sessions[0].version, &Version::new(*l, format!("node-{n}")));
        // The Lamport clock moved past everything seen.
        prop_assert!(r.store().next_version() > sessions[0].version);
    }
}

#[test]
fn a_late_upsert_never_resurrects_a_deleted_session() {
    // Delete at version 2, then a *newer* write of the same session arrives
    // (a request that raced the logout on another node): deletes are final.
    let r = apply_each(&[upsert(0, 1, 2), delete(0, 2, 3), upsert(0, 9, 2)]);
    let (sessions, digest) = state(&r);
    assert!(sessions.is_empty());
    assert_eq!(digest.len(), 1);
    assert!(digest[0].deleted);
}
