//! Guards: what keeps one client, or one other web site, from taking more
//! than its share of a node.
//!
//! | guard | file | answers |
//! |---|---|---|
//! | who the client is: the peer's address, or `X-Forwarded-For` from a `--trusted-proxy` | [`client`] | (used by the others) |
//! | new sessions and login attempts per client (`--session-rate`, `--login-rate`) | [`rate`] | 429 `rate_limited` with `Retry-After` |
//! | state-changing requests from another site (`--csrf-check`) | [`origin`] | 403 `cross_site` |
//!
//! The other bounds live with what they bound: the store's byte budgets in
//! the memory store (`sessionlab_session::MemoryStore`), the password-check
//! queue in [`crate::auth::users`], the response headers (`Cache-Control`,
//! CSP, `nosniff`) in the session middleware
//! ([`crate::session::middleware`]).
//!
//! Why per client *and* overall: an overall bound alone (the store's
//! budget, the queue's length) stops a flood from taking the machine, but
//! the flood then takes every place and an ordinary user is refused with
//! it. A per-client bound that trips first keeps the flood to its share, so
//! the second client's login goes through at once.

mod client;
mod origin;
mod rate;

pub use client::{client_ip, from_trusted_proxy};
pub use origin::check as check_origin;
pub use rate::{Limit, RateLimits};
