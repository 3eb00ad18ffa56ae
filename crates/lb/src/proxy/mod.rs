//! The proxy path: everything a client request touches between the public
//! listener and a backend's answer.
//!
//! | file | concept |
//! |---|---|
//! | [`server`] | accept loop, keep-alive, limits, graceful shutdown, worker threads |
//! | [`path`] | one request: read the body, select, rewrite, try candidates, answer |
//! | [`forward`] | hop-by-hop headers out, `X-Forwarded-*` in |
//! | [`upstream`] | one attempt against one backend, bounded by timeouts |
//! | [`pool`] | idle keep-alive connections to a backend, per worker thread |
//! | [`error`] | what went wrong, whether a retry is safe, the JSON error body |
//! | [`cookie`] | finding, stripping and recognising cookies in headers |
//!
//! Why these are one part: they are the hot path. Nothing here takes a lock
//! shared between worker threads, and every buffer has a bound (head size,
//! body limit, pool size), so one client cannot make the LB allocate
//! without limit. The parts beside it (selection, health, the admin API)
//! are read from here but never block it.

pub(crate) mod cookie;
pub(crate) mod error;
pub(crate) mod forward;
pub(crate) mod path;
pub(crate) mod pool;
pub(crate) mod server;
pub(crate) mod upstream;

pub(crate) use path::Proxy;
