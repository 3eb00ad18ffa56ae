//! Memory per session: fill a `MemoryStore` (the node's store) with
//! sessions of about 200 bytes of data and report the growth of the
//! process's resident memory (VmRSS in /proc/self/status) per session, and
//! how much of it is overhead beyond the data itself.
//!
//! Usage: `memory_per_session [SESSIONS]` (default 100000). Used by
//! `scripts/bench-node.sh`; Linux only.

use serde_json::{Map, Value};
use sessionlab_session::{MemoryStore, MemoryStoreConfig, Session, SessionId, SessionStore, clock};

fn vm_rss_bytes() -> u64 {
    sessionlab_wire::rss::resident_bytes().expect("VmRSS in Linux /proc/self/status")
}

/// About 200 bytes of JSON: a counter, a user-ish string and a small cart.
fn data(i: usize) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("counter".into(), Value::from(i as u64));
    let mut cart = Map::new();
    for item in ["apple", "pear", "plum"] {
        cart.insert(format!("{item}-{:06}", i % 1_000_000), Value::from(2));
    }
    m.insert("cart".into(), Value::Object(cart));
    m.insert(
        "note".into(),
        Value::from(format!("{:0>115}", i)), // pads the text to ~200 bytes
    );
    m
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let store = MemoryStore::new(MemoryStoreConfig {
        node_id: "node-1".into(),
        max_sessions: n + 1,
        max_session_bytes: 16 * 1024,
        // Measuring what sessions cost: no budget in the way.
        ..MemoryStoreConfig::default()
    });
    // Prepare the sessions first, so the measured growth is the store's.
    let now = clock::now_ms();
    let before = vm_rss_bytes();
    let mut data_bytes = 0usize;
    for i in 0..n {
        let mut s = Session::new(SessionId::generate(), now, 1_800_000, 28_800_000);
        s.user = Some("alice".into());
        s.set_data(&data(i));
        data_bytes += s.data_len();
        store.put(s).await.expect("fits");
    }
    let after = vm_rss_bytes();
    assert_eq!(store.len(), n);
    let per_session = (after.saturating_sub(before)) as f64 / n as f64;
    let data_per_session = data_bytes as f64 / n as f64;
    println!("sessions: {n}");
    println!("data bytes per session: {data_per_session:.0}");
    println!("RSS delta per session: {per_session:.0}");
    println!(
        "overhead per session beyond the data: {:.0}",
        per_session - data_per_session
    );
}
