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
//!
//! ## Skew, on purpose
//!
//! Real machines' clocks disagree by milliseconds to seconds (NTP keeps
//! them close, not equal), and everything a node decides from absolute
//! times disagrees with them: whether a replicated session has expired,
//! whether a token's `iat` is in the future or its `exp` has passed. To show
//! that on one machine, a node can run with a skewed clock
//! (`--clock-skew +2s`, or the lab's `skew:NODE:+2s@T` fault): [`set_skew_ms`]
//! adds a signed offset to everything this module returns, for the whole
//! process. Elapsed time within the process is unchanged (the offset is
//! constant until set again), so only decisions that compare this node's
//! time with another node's timestamps see it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

struct Anchor {
    wall_us: u64,
    instant: std::time::Instant,
}

static ANCHOR: OnceLock<Anchor> = OnceLock::new();

/// The process's clock skew in microseconds (see the module docs).
static SKEW_US: AtomicI64 = AtomicI64::new(0);

/// Skew this process's clock by `ms` (negative: behind), from now on.
/// Bounded to a day either way.
pub fn set_skew_ms(ms: i64) {
    let ms = ms.clamp(-MAX_SKEW_MS, MAX_SKEW_MS);
    SKEW_US.store(ms * 1_000, Ordering::Relaxed);
}

/// The skew set by [`set_skew_ms`], in milliseconds.
pub fn skew_ms() -> i64 {
    SKEW_US.load(Ordering::Relaxed) / 1_000
}

/// The largest skew accepted, either way: a day.
pub const MAX_SKEW_MS: i64 = 24 * 60 * 60 * 1_000;

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
    let unskewed = a.wall_us + elapsed.as_micros() as u64;
    unskewed.saturating_add_signed(SKEW_US.load(Ordering::Relaxed))
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
