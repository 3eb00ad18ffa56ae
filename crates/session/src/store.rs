//! The `SessionStore` trait: what the web node needs from wherever sessions live.
//!
//! The node's handlers are written once against this trait. Which
//! implementation is behind it is the lesson of the lab: a plain
//! [`MemoryStore`](crate::MemoryStore) (sessions die with the node), a
//! replicated memory store (copies on every node, kept in step by the
//! replication protocol), or Redis (one shared store, one more network hop).
//!
//! ## Versions and writes
//! `put` takes the session as the caller last read it (its `version` is the
//! *base* version: default for a new session) and returns a [`PutReceipt`]
//! with the version the store stamped on the write. Stores that can detect a
//! concurrent write (Redis with compare-and-set) use the base version for it;
//! the memory stores resolve concurrent writes by last-writer-wins.

use async_trait::async_trait;
use serde::Serialize;

use crate::id::SessionId;
use crate::session::{Session, SessionMeta};
use crate::version::Version;

/// Why a store operation failed. Each maps to one HTTP status in the node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The session's data is over the per-session limit (HTTP 413). The
    /// stored copy is unchanged.
    #[error("session data is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// The store holds its maximum number of sessions (HTTP 503).
    #[error("the session store is full ({limit} sessions)")]
    Full { limit: usize },
    /// The write needs bytes the store's budget does not have (HTTP 503,
    /// with `Retry-After`): the whole store's, or (`anonymous`) the smaller
    /// one of sessions with no user. The stored copy is unchanged.
    #[error("the session store is at its byte budget ({budget_bytes} bytes{})", budget_scope(.anonymous))]
    OverBudget { budget_bytes: u64, anonymous: bool },
    /// A concurrent write won and retries were exhausted (HTTP 409).
    #[error("the session was changed concurrently; try again")]
    Conflict,
    /// The write was refused because it could not reach a majority of the
    /// cluster (`--partition-policy consistent`; HTTP 503, with
    /// `Retry-After`). The copy held here is unchanged (the write is rolled
    /// back); a peer that applied it before the refusal may keep it.
    #[error("write refused: {0}")]
    NoMajority(String),
    /// The store cannot be reached (HTTP 503), e.g. Redis is down.
    #[error("the session store is unavailable: {0}")]
    Unavailable(String),
}

fn budget_scope(anonymous: &bool) -> &'static str {
    if *anonymous {
        " for sessions without a login"
    } else {
        ""
    }
}

/// What happened to a write beyond the local store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum ReplicationAck {
    /// The store does not replicate (memory, Redis).
    NotReplicated,
    /// Queued for the peers; the client is answered at once.
    Async,
    /// Handed to the transport for every live peer (`--replication-ack
    /// sent`): in a batch on its way, not yet confirmed by anyone.
    Sent { peers: usize },
    /// Every peer that had to confirm did so.
    Acked { peers: usize },
    /// The ack timeout passed before enough peers confirmed.
    TimedOut { acked: usize, expected: usize },
}

impl ReplicationAck {
    /// The value of the `X-Replication-Ack` response header.
    pub fn header_value(&self) -> String {
        match self {
            ReplicationAck::NotReplicated => "none".into(),
            ReplicationAck::Async => "async".into(),
            ReplicationAck::Sent { peers } => format!("sent; peers={peers}"),
            ReplicationAck::Acked { peers } => format!("acked; peers={peers}"),
            ReplicationAck::TimedOut { acked, expected } => {
                format!("timeout; acked={acked}; expected={expected}")
            }
        }
    }
}

/// The result of a successful `put`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutReceipt {
    /// The version the store stamped on this write.
    pub version: Version,
    pub replication: ReplicationAck,
}

/// Gauges a store reports for status pages and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// Sessions held (a store may include expired ones not yet reaped).
    pub sessions: u64,
    /// Approximate bytes held by sessions (0 if the store cannot tell).
    pub bytes: u64,
    /// Sessions removed by expiry since start (0 if the store cannot tell).
    pub expired_total: u64,
    /// The store's byte budget (0 if it has none it can tell).
    pub budget_bytes: u64,
    /// Approximate bytes held by sessions with no user.
    pub anonymous_bytes: u64,
    /// The budget of sessions with no user (0 if none it can tell).
    pub anonymous_budget_bytes: u64,
    /// Writes refused since start by the byte budget.
    pub refused_budget: u64,
    /// Writes refused since start by the anonymous budget.
    pub refused_anonymous: u64,
}

/// Where sessions live. All methods are async because some stores are remote.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// A short name for logs and status pages: `memory`, `replicated`, `redis`.
    fn kind(&self) -> &'static str;

    /// A fresh id for a new session, from the OS's CSPRNG. A store that
    /// places sessions (the backup topology) draws until the id lands on
    /// this node.
    fn new_id(&self) -> SessionId {
        SessionId::generate()
    }

    /// The live session with this id. Expired sessions read as `None`.
    async fn get(&self, id: &SessionId) -> Result<Option<Session>, StoreError>;

    /// Create or replace a session (see the module docs on versions).
    async fn put(&self, session: Session) -> Result<PutReceipt, StoreError>;

    /// Remove a session (logout). Returns whether it existed.
    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError>;

    /// Record an access at `at_ms` (moves idle expiry) without a new version.
    /// Returns whether the session exists.
    async fn touch(&self, id: &SessionId, at_ms: u64) -> Result<bool, StoreError>;

    /// Admin view of up to `limit` sessions.
    async fn list(&self, limit: usize) -> Result<Vec<SessionMeta>, StoreError>;

    /// How many live sessions the store holds.
    async fn count(&self) -> Result<usize, StoreError>;

    /// Gauges for status pages and metrics. The default knows only the
    /// count; stores that track bytes and expirations override it.
    async fn stats(&self) -> Result<StoreStats, StoreError> {
        Ok(StoreStats {
            sessions: self.count().await? as u64,
            ..StoreStats::default()
        })
    }
}
