//! The wall clock, in milliseconds since the Unix epoch.
//!
//! For timestamps that cross process boundaries (signed requests, history
//! points, run records). Session fields use `sessionlab_session::clock`
//! instead, which follows tokio's clock so tests can move session time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_after_2023() {
        assert!(super::unix_ms() > 1_700_000_000_000);
    }
}
