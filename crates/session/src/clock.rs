//! Wall-clock time in milliseconds since the Unix epoch, as the session fields
//! store it.
//!
//! Sessions carry absolute timestamps (created, last access) because they are
//! copied between machines: a peer must compute the same expiry from the same
//! fields. But tests want to move time without sleeping. So [`now_ms`] is the
//! system time read once (the *anchor*) plus the time elapsed on
//! [`tokio::time::Instant`] since then. In production the two agree; under
//! `#[tokio::test(start_paused = true)]` the elapsed part follows the paused
//! clock, and `tokio::time::advance` moves session time forward.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

struct Anchor {
    wall_us: u64,
    instant: std::time::Instant,
}

static ANCHOR: OnceLock<Anchor> = OnceLock::new();

fn anchor() -> &'static Anchor {
    ANCHOR.get_or_init(|| Anchor {
        wall_us: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0),
        instant: tokio::time::Instant::now().into_std(),
    })
}

/// Milliseconds since the Unix epoch, following tokio's clock (paused in tests).
pub fn now_ms() -> u64 {
    now_us() / 1_000
}

/// Microseconds since the Unix epoch, on the same clock as [`now_ms`]. For
/// measuring short spans between machines (replication lag), where whole
/// milliseconds are too coarse.
pub fn now_us() -> u64 {
    let a = anchor();
    let now = tokio::time::Instant::now().into_std();
    let elapsed = now.saturating_duration_since(a.instant);
    a.wall_us + elapsed.as_micros() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn follows_the_paused_clock() {
        let t0 = now_ms();
        tokio::time::advance(Duration::from_secs(3600)).await;
        let t1 = now_ms();
        assert!(t1 - t0 >= 3_600_000, "advanced {} ms", t1 - t0);
    }
}
