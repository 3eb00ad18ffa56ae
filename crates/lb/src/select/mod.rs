//! Selection: which backends may serve a request, first choice first.
//!
//! | file | concept |
//! |---|---|
//! | [`strategy`] | the strategies and the ordered candidate list they all return |
//! | [`ring`] | the consistent-hash ring (virtual nodes) behind `consistent-hash` |
//!
//! Why a list and not one backend: failover is then one code path for every
//! strategy (the proxy walks the list), and stickiness is a property of the
//! list's head, so a failed sticky backend is replaced by the next entry
//! without special cases.

pub(crate) mod ring;
pub(crate) mod strategy;

pub use strategy::Strategy;
pub(crate) use strategy::{Selection, Selector};
