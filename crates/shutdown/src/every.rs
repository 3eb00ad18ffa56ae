//! A background loop's clock: a tick every period until a stop signal.
//!
//! The LB's health checks and DNS discovery and the dashboard's samplers
//! all run the same loop: wait for the next period, or return at once if
//! the server is stopping; do one round; again. Written out each time it is
//! eight lines of `select!` that must get two details right:
//!
//! | detail | here |
//! |---|---|
//! | the first tick | at once (a round at start, not one period late) |
//! | a late round (a slow probe) | the next tick waits a whole period: ticks are never bunched up to catch up |
//! | a stop while waiting | returns at once |
//! | a stop already given, or the sender gone | no tick at all |
//!
//! ```no_run
//! # async fn round() {}
//! # async fn example(stop: tokio::sync::watch::Receiver<bool>) {
//! use sessionlab_shutdown::Every;
//!
//! let mut every = Every::new(std::time::Duration::from_secs(2), stop);
//! while every.tick().await {
//!     round().await;
//! }
//! # }
//! ```

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior, interval};

/// Ticks every period until `stop` turns true; see the module docs.
pub struct Every {
    ticks: Interval,
    stop: watch::Receiver<bool>,
}

impl Every {
    /// Ticks every `period` (positive) from now until `stop` turns true or
    /// its sender is dropped.
    pub fn new(period: Duration, stop: watch::Receiver<bool>) -> Every {
        let mut ticks = interval(period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Every { ticks, stop }
    }

    /// Waits for the next tick: `true` then, `false` once the loop should
    /// end.
    pub async fn tick(&mut self) -> bool {
        loop {
            // Marks the current value seen, so `changed` waits for a new one.
            if *self.stop.borrow_and_update() {
                return false;
            }
            tokio::select! {
                _ = self.ticks.tick() => return !*self.stop.borrow(),
                changed = self.stop.changed() => {
                    if changed.is_err() {
                        return false; // the sender is gone: nobody can stop us later
                    }
                    // A new value: a stop ends the loop at the top; any other
                    // keeps waiting for the same tick.
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn ticks_at_once_then_every_period_until_stopped() {
        let (tx, rx) = watch::channel(false);
        let mut every = Every::new(Duration::from_secs(2), rx);
        let t0 = Instant::now();
        assert!(every.tick().await);
        assert_eq!(t0.elapsed(), Duration::ZERO, "the first tick is at once");
        assert!(every.tick().await);
        assert_eq!(t0.elapsed(), Duration::from_secs(2));
        // A round that overruns: the next tick is a period after it, not
        // a burst of the missed ones.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(every.tick().await);
        assert!(every.tick().await);
        assert_eq!(t0.elapsed(), Duration::from_secs(9));
        // A stop while waiting ends the loop at once.
        let waiting = tokio::spawn(async move { every.tick().await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        tx.send(true).unwrap();
        assert!(!waiting.await.unwrap());
        assert!(t0.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_given_before_or_a_dropped_sender_means_no_tick() {
        let (tx, rx) = watch::channel(true);
        assert!(!Every::new(Duration::from_secs(1), rx).tick().await);
        drop(tx);
        let (tx, rx) = watch::channel(false);
        let mut every = Every::new(Duration::from_secs(1), rx);
        assert!(every.tick().await);
        drop(tx);
        assert!(!every.tick().await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_that_is_no_stop_keeps_the_period_and_a_later_stop_still_ends_it() {
        let (tx, rx) = watch::channel(false);
        let mut every = Every::new(Duration::from_secs(2), rx);
        let t0 = Instant::now();
        assert!(every.tick().await);
        let waiting = tokio::spawn(async move { every.tick().await });
        tokio::time::sleep(Duration::from_millis(500)).await;
        tx.send(false).unwrap(); // not a stop
        tokio::time::sleep(Duration::from_millis(500)).await;
        tx.send(true).unwrap(); // a stop, before the tick is due
        assert!(!waiting.await.unwrap());
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    }
}
