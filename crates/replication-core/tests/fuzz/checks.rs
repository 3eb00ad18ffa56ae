//! The properties the cluster message fuzz target checks.
//!
//! Shared by the bounded property tests (`tests/fuzz.rs`) and the
//! coverage-guided target (`fuzz/fuzz_targets/batch.rs`). The function
//! takes arbitrary bytes (a cluster request body, after its signature was
//! checked) and panics only when a property fails.

use std::sync::Arc;

use sessionlab_replication_core::{Batch, ProtocolConfig, Replica, codec};
use sessionlab_session::{MemoryStore, MemoryStoreConfig, Session, SessionId};

/// The receiving replica's clock (any fixed instant).
const NOW: u64 = 1_700_000_000_000;

/// Target `batch`: the body of `POST /cluster/v1/batch`, decoded as the
/// listener does (`serde_json::from_slice::<Batch>`), then applied.
///
/// Properties: decoding never panics; a decoded batch encodes and decodes
/// back to itself; its one-line descriptions never show a session id whole;
/// applying it (readdressed from a known peer, so it passes routing) to a
/// fresh replica, then ticking and flushing, never panics, whatever the
/// numbers in it (lamports, times, timeouts near `u64::MAX`); the
/// replica's own writes after it are not lost.
///
/// The binary form ([`codec`]): decoding arbitrary bytes never panics, and
/// every batch the JSON decoder accepts travels through it unchanged.
pub fn batch(data: &[u8]) {
    if let Ok(b) = codec::decode(data) {
        assert_eq!(
            codec::decode(&codec::encode(&b)),
            Ok(b),
            "binary round trip"
        );
    }
    let Ok(mut batch) = serde_json::from_slice::<Batch>(data) else {
        return;
    };
    let text = serde_json::to_vec(&batch).expect("a batch encodes");
    let back: Batch = serde_json::from_slice(&text).expect("and decodes");
    assert_eq!(back, batch, "round trip");
    let bytes = codec::encode(&batch);
    assert_eq!(codec::decode(&bytes).as_ref(), Ok(&batch), "binary form");
    for m in &batch.messages {
        let line = m.to_string();
        let _ = m.approx_bytes();
        for id in find_ids(data) {
            assert!(!line.contains(id), "{line} shows an id whole");
        }
    }
    let _ = batch.validate();

    // Readdressed (so it passes routing), it is applied exactly when it
    // validates.
    batch.from = "node-2".into();
    batch.to = "node-1".into();
    let validated = batch.validate();
    let store = Arc::new(MemoryStore::new(MemoryStoreConfig::default()));
    let peers = ["node-2".to_owned(), "node-3".to_owned()];
    let mut replica = Replica::new("node-1", peers, ProtocolConfig::default(), store, NOW);
    let applied = replica.on_batch(batch, NOW);
    assert_eq!(
        applied.is_ok(),
        validated.is_ok(),
        "{applied:?} {validated:?}"
    );
    // This node's own writes after it: a new session and a logout. What a
    // peer sent must not break them (a version the local clock cannot pass).
    let id = SessionId::generate();
    let local = Session::new(id.clone(), NOW, 60_000, 60_000);
    if let Ok(w) = replica.upsert(local, NOW) {
        let _ = w;
        let held = replica.store().get_raw(&id);
        assert!(held.is_some(), "a local write was lost");
    }
    replica.delete(&id, NOW);
    for later in [NOW + 1, NOW + 60_000, u64::MAX / 2] {
        replica.tick(later);
        replica.flush(later);
        let _ = replica.take_outputs();
    }
}

/// The 32-character runs of the id alphabet in `data` (candidate ids).
fn find_ids(data: &[u8]) -> Vec<&str> {
    let text = std::str::from_utf8(data).unwrap_or("");
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .filter(|w| w.len() == 32)
        .collect()
}
