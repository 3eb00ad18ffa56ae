//! Waiting for a condition with a deadline, never a fixed sleep.
//!
//! A test that sleeps "long enough" is slow when the machine is idle and
//! flaky when it is busy. These poll a check every 20 ms until it holds;
//! [`eventually`] and [`until`] fail the test with `what` once the limit has
//! passed, [`within`] says whether it held so the caller can fail with more
//! (a process's log, say).

use std::future::Future;
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_millis(20);

/// Poll `check` until it returns `Some` (that value) or `limit` passes
/// (`None`).
pub async fn poll<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// Poll `check` until it returns `Some`; that value is returned. Panics
/// with `what` after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll(limit, check)
        .await
        .unwrap_or_else(|| panic!("timed out after {limit:?} waiting for: {what}"))
}

/// Whether `check` returned true before `limit` passed.
pub async fn within<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    poll(limit, || {
        let fut = check();
        async move { fut.await.then_some(()) }
    })
    .await
    .is_some()
}

/// Poll `check` until it returns true. Panics with `what` after `limit`.
pub async fn until<F, Fut>(limit: Duration, what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    assert!(
        within(limit, check).await,
        "timed out after {limit:?} waiting for: {what}"
    );
}
