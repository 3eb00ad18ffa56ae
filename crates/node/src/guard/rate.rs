//! Per-client rate limits: new sessions and login attempts.
//!
//! Each is a GCRA limiter (`governor`) keyed by client ([`super::client`]):
//! a client may do `burst` at once, then one more every `period`
//! (`--session-rate 100/s --session-burst 200`). Past it the request is
//! answered 429 with `Retry-After`, the whole seconds until the next one
//! would pass, and nothing is stored or checked.
//!
//! | limit | counts | where |
//! |---|---|---|
//! | `new_session` | a request that would store a session for a client that presented none (a first cart item, a login without a session), and a logout of an id this node does not hold (its tombstone is a write too, kept on every node) | before the write, after the handler |
//! | `login` | every login attempt, right or wrong, before its password check | `POST /login`, `POST /auth/login` |
//!
//! The defaults let one address burst to 200 of each, then 100 new
//! sessions and 50 login attempts a second: the lab's load tool runs 50 or
//! more users from one address, and they may all log in at once (and, in
//! the `local` mode, lose their session and start a new one on nearly
//! every request). The flood of the reproduction (tens of thousands of new
//! sessions a second from one client) is cut to the burst plus 100 a
//! second, and what passes is bounded again by the anonymous budget and
//! idle timeout.
//!
//! The map of clients is bounded: past [`MAX_CLIENTS`] entries it drops
//! the clients whose limit has fully recovered (they are as good as new);
//! if it is still full, unseen clients share one entry until it shrinks.

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::{ClientOptions, RateLimit};

/// Most clients remembered by one limiter (about 100 bytes each).
pub const MAX_CLIENTS: usize = 100_000;

/// The key every client shares while the map is full.
const OVERFLOW: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// Which limit refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    NewSession,
    Login,
}

impl Limit {
    /// The `limit` label of the metrics.
    pub fn label(self) -> &'static str {
        match self {
            Limit::NewSession => "new_session",
            Limit::Login => "login",
        }
    }

    /// What the client did too often, for the error's text.
    pub fn what(self) -> &'static str {
        match self {
            Limit::NewSession => "new sessions",
            Limit::Login => "login attempts",
        }
    }
}

struct Keyed {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl Keyed {
    fn new(r: RateLimit) -> Keyed {
        let burst = NonZeroU32::new(r.burst).unwrap_or(NonZeroU32::MIN);
        let period = r.period.max(Duration::from_nanos(1));
        let quota = Quota::with_period(period)
            .expect("the period is above zero")
            .allow_burst(burst);
        Keyed {
            limiter: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        }
    }

    /// `Err(wait)` when `client` is over its limit.
    fn check(&self, client: IpAddr) -> Result<(), Duration> {
        let mut key = client;
        if self.limiter.len() >= MAX_CLIENTS {
            self.limiter.retain_recent();
            if self.limiter.len() >= MAX_CLIENTS {
                key = OVERFLOW;
            }
        }
        self.limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// The node's per-client limits; see the module docs.
pub struct RateLimits {
    new_sessions: Option<Keyed>,
    logins: Option<Keyed>,
}

impl RateLimits {
    pub fn new(opts: &ClientOptions) -> Self {
        RateLimits {
            new_sessions: opts.new_sessions.map(Keyed::new),
            logins: opts.logins.map(Keyed::new),
        }
    }

    /// Count one event of `limit` for `client`; `Err(retry after, whole
    /// seconds, at least 1)` if it is over.
    pub fn check(&self, limit: Limit, client: IpAddr) -> Result<(), u64> {
        let keyed = match limit {
            Limit::NewSession => &self.new_sessions,
            Limit::Login => &self.logins,
        };
        match keyed {
            None => Ok(()),
            Some(k) => k
                .check(client)
                .map_err(|wait| wait.as_secs_f64().ceil().max(1.0) as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(burst: u32, period: Duration) -> RateLimits {
        let r = Some(RateLimit { period, burst });
        RateLimits::new(&ClientOptions {
            new_sessions: r,
            logins: None,
            login_queue: 8,
            trusted_proxies: Vec::new(),
            csrf_check: true,
        })
    }

    #[test]
    fn a_client_gets_its_burst_then_waits_and_others_are_untouched() {
        let l = limits(3, Duration::from_secs(3600));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(l.check(Limit::NewSession, a), Ok(()));
        }
        let wait = l.check(Limit::NewSession, a).unwrap_err();
        assert!((3000..=3600).contains(&wait), "{wait}");
        assert_eq!(l.check(Limit::NewSession, b), Ok(()));
        // An unset limit never refuses.
        for _ in 0..10 {
            assert_eq!(l.check(Limit::Login, a), Ok(()));
        }
    }
}
