//! # sessionlab-session: what a server-side session *is*
//!
//! A server-side session is a small record kept on the server, found again on
//! every request by an unguessable id that the client carries (in a cookie, in
//! the URL, ...). This crate holds the pieces that do not depend on HTTP or on
//! how many servers there are:
//!
//! - [`SessionId`]: the credential. 192 bits from the OS CSPRNG, URL-safe text,
//!   parsed strictly, compared in constant time, never printed whole by `Debug`.
//! - [`Version`]: `(lamport, node)`, the order in which copies of a session
//!   were written. Replication uses it for last-writer-wins.
//! - [`Session`]: the record itself, with the timestamps and timeouts from
//!   which *every* node computes the same expiry without talking to the others.
//! - [`KeyStamps`]: per-key versions and removals, what attribute
//!   granularity merges (empty in whole-session mode).
//! - [`SessionStore`]: the async interface the web node programs against, so
//!   the same handlers run on a memory store, a replicated store or Redis.
//! - [`MemoryStore`]: the bounded, concurrent in-memory implementation, with a
//!   reaper for expired sessions.
//! - `RedisStore` (feature `redis`): sessions in a shared Redis, with
//!   compare-and-set writes against lost updates.
//! - `jwt` (feature `jwt`): access and refresh tokens, and the server-side
//!   state they need after all (refresh families, the logout deny-list).
//! - [`clock`]: wall-clock milliseconds that follow tokio's paused clock in
//!   tests, so expiry is tested without sleeping.
//!
//! The modules are private and the types are re-exported here; `clock` and
//! `jwt` stay public as namespaces (`clock::now_ms()`, `jwt::Claims`). The
//! crate enables only tokio's timer and task features (no networking), so
//! the replication protocol core can depend on it and stay free of I/O.

pub mod clock;
mod id;
#[cfg(feature = "jwt")]
pub mod jwt;
mod memory;
#[cfg(feature = "redis")]
mod redis_link;
#[cfg(feature = "redis")]
mod redis_store;
mod session;
mod stamps;
mod store;
mod version;

pub use id::{InvalidSessionId, SessionId};
pub use memory::{Applied, MemoryStore, MemoryStoreConfig};
#[cfg(feature = "redis")]
pub use redis_link::RedisTarget;
#[cfg(feature = "redis")]
pub use redis_store::{RedisStore, RedisStoreConfig, WAIT_CONNECTIONS, WaitPolicy};
pub use session::{Session, SessionMeta};
pub use stamps::{KeyStamps, MAX_REMOVED_KEY_BYTES, MAX_REMOVED_KEYS, bound_removed};
pub use store::{PutReceipt, ReplicationAck, SessionStore, StoreError, StoreStats};
pub use version::{MAX_LAMPORT, Version};
