//! The clock's skew is process-wide, so it is tested in a binary of its own
//! (nextest runs each test in its own process too).

use std::time::Duration;

use sessionlab_session::clock;

#[tokio::test(start_paused = true)]
async fn a_skewed_clock_moves_every_reading_and_keeps_elapsed_time() {
    let t0 = clock::now_ms();
    clock::set_skew_ms(2_000);
    assert_eq!(clock::skew_ms(), 2_000);
    let t1 = clock::now_ms();
    assert!((2_000..2_010).contains(&(t1 - t0)), "moved {} ms", t1 - t0);
    tokio::time::advance(Duration::from_secs(1)).await;
    let t2 = clock::now_ms();
    assert!(
        (1_000..1_010).contains(&(t2 - t1)),
        "elapsed {} ms",
        t2 - t1
    );
    clock::set_skew_ms(-3_000);
    let t3 = clock::now_ms();
    assert!(t2 - t3 >= 4_990, "back by {} ms", t2 - t3);
    clock::set_skew_ms(i64::MAX);
    assert_eq!(clock::skew_ms(), clock::MAX_SKEW_MS, "bounded");
    clock::set_skew_ms(0);
    assert!(clock::now_ms() - t0 < 1_100);
}

/// A token issued by a node whose clock runs 5 s ahead has its `nbf` (and
/// `iat`) in the future for a node on time: refused as not yet valid with
/// no leeway (the default), taken
/// with a leeway at least as large as the skew. And a node whose clock is
/// 5 s behind still takes an access token 4 s after its `exp`, where a node
/// on time refuses it.
#[tokio::test(start_paused = true)]
async fn a_skewed_issuer_needs_a_leeway_to_be_believed() {
    use std::sync::Arc;

    use sessionlab_session::jwt::{TokenConfig, TokenError, TokenKeys, TokenService};
    use sessionlab_session::{MemoryStore, MemoryStoreConfig};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    let store = Arc::new(MemoryStore::new(MemoryStoreConfig::default()));
    let service = |leeway_s| {
        TokenService::new(
            TokenKeys::hs256(SECRET).unwrap(),
            TokenConfig {
                access_ttl_s: 10,
                leeway_s,
                ..TokenConfig::default()
            },
            store.clone(),
        )
    };
    let (strict, lenient) = (service(0), service(5));

    clock::set_skew_ms(5_000);
    let pair = strict.login("alice").await.unwrap();
    clock::set_skew_ms(0);
    assert_eq!(
        strict.verify_access(&pair.access_token).await.unwrap_err(),
        TokenError::NotYetValid
    );
    assert!(lenient.verify_access(&pair.access_token).await.is_ok());

    // Issued on time, checked 14 s later (4 s after exp) by a node 5 s behind.
    let pair = strict.login("bob").await.unwrap();
    tokio::time::advance(Duration::from_secs(14)).await;
    assert_eq!(
        strict.verify_access(&pair.access_token).await.unwrap_err(),
        TokenError::Expired
    );
    clock::set_skew_ms(-5_000);
    assert!(strict.verify_access(&pair.access_token).await.is_ok());
    clock::set_skew_ms(0);
}
