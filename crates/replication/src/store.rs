//! `ReplicatedStore`: the `SessionStore` of the replicated modes.
//!
//! The node's handlers are written against [`SessionStore`] and do not know
//! whether sessions are replicated. This store makes the difference
//! invisible to them:
//!
//! - reads go straight to the local [`MemoryStore`] (in all-to-all every
//!   node holds every session, so a read never leaves the node: that is
//!   the point of all-to-all replication, and why it reads stale data
//!   under lag); in the backup topology a session this node does not hold
//!   is fetched from an owner ([`crate::fetch`]);
//! - new session ids are drawn until this node owns one
//!   ([`Replica::pick_owned_id`](sessionlab_replication_core::Replica::pick_owned_id)),
//!   so the node a sticky balancer keeps a user on holds a copy;
//! - writes, deletes and touches go through the [`Replica`](crate::Replica),
//!   which stores them locally and queues them for the peers;
//! - `put` answers according to the ack mode: at once with
//!   [`ReplicationAck::Async`] (`none`), or after the peers confirmed (or
//!   the ack timeout passed) with `Acked` / `TimedOut` (`all`, `quorum`).
//!   The node puts that in its `X-Replication-Ack` header.
//! - `delete` (a logout) waits for the same acks before it returns, so
//!   with `all` a logout is answered only once every live peer holds the
//!   tombstone: the old cookie no longer works on any of them. It is never
//!   refused or rolled back, whatever the partition policy.
//! - with `--partition-policy consistent`, a write the replica refuses
//!   (this node sees no majority, or a majority did not take it in time)
//!   is [`StoreError::NoMajority`]: the node answers 503, the write is
//!   rolled back here (a peer that applied it before the refusal keeps it:
//!   refused is not "never happened"), and `replication_refused_writes_total`
//!   counts it.
//!
//! A write to a session deleted elsewhere (a request racing a logout) is
//! refused with [`StoreError::Conflict`]: the logout wins.

use std::sync::Arc;

use async_trait::async_trait;
use sessionlab_replication_core::AckWait;
use sessionlab_session::{
    PutReceipt, ReplicationAck, Session, SessionId, SessionMeta, SessionStore, StoreError,
    StoreStats, clock,
};

use crate::runtime::Shared;

/// The replicated session store; see the module docs.
pub struct ReplicatedStore {
    shared: Arc<Shared>,
}

impl ReplicatedStore {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        ReplicatedStore { shared }
    }
}

enum Wait {
    Now(ReplicationAck),
    Later(u64, tokio::sync::oneshot::Receiver<ReplicationAck>, usize),
}

impl Wait {
    /// What to wait for; called under the replica lock, so the ack cannot
    /// be dispatched before the waiter exists.
    fn of(shared: &Shared, ack: AckWait, peers: usize) -> Wait {
        match ack {
            AckWait::Async => Wait::Now(ReplicationAck::Async),
            AckWait::Done(a) => Wait::Now(a),
            AckWait::Pending(id) => Wait::Later(id, shared.register_waiter(id), peers),
        }
    }

    async fn outcome(self, shared: &Shared) -> ReplicationAck {
        match self {
            Wait::Now(a) => a,
            Wait::Later(id, rx, peers) => {
                // The replica settles every write by its deadline; the extra
                // second only guards against a stopped driver.
                let limit = shared.ack_timeout + std::time::Duration::from_secs(1);
                match tokio::time::timeout(limit, rx).await {
                    Ok(Ok(a)) => a,
                    _ => {
                        shared.forget_waiter(id);
                        ReplicationAck::TimedOut {
                            acked: 0,
                            expected: peers,
                        }
                    }
                }
            }
        }
    }
}

#[async_trait]
impl SessionStore for ReplicatedStore {
    fn kind(&self) -> &'static str {
        "replicated"
    }

    async fn get(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        if let Some(s) = self.shared.store.get_live(id, clock::now_ms()) {
            return Ok(Some(s));
        }
        // A tombstone held here wins over any copy an owner may still have
        // (its delete may be in flight to it): a logged-out session is not
        // fetched back, whether the delete is older than the ask or arrives
        // while it runs.
        let deleted_here = || self.shared.replica.lock().tombstones().contains(id);
        if !self.shared.replica.lock().topology().is_backup() || deleted_here() {
            return Ok(None);
        }
        let found = crate::fetch::from_owners(&self.shared, id)
            .await
            .map_err(|_| StoreError::Unavailable("too many remote fetches in flight".into()))?;
        Ok(found.filter(|_| !deleted_here()))
    }

    fn new_id(&self) -> SessionId {
        self.shared
            .replica
            .lock()
            .pick_owned_id(SessionId::generate)
    }

    async fn put(&self, session: Session) -> Result<PutReceipt, StoreError> {
        let shared = &self.shared;
        let (version, wait) = shared.with_replica(|r, now| {
            let w = r.upsert(session, now).inspect_err(|e| {
                if matches!(e, StoreError::NoMajority(_)) {
                    shared.metrics.on_refused_write("no_majority");
                }
            })?;
            let wait = Wait::of(shared, w.ack, r.peers().len());
            Ok::<_, StoreError>((w.version, wait))
        })?;
        let replication = wait.outcome(shared).await;
        if let (true, ReplicationAck::TimedOut { acked, expected }) =
            (shared.consistent, &replication)
        {
            // The replica has already rolled the write back.
            shared.metrics.on_refused_write("not_acknowledged");
            return Err(StoreError::NoMajority(format!(
                "{acked} of the {expected} peers a majority needs took the write in time \
                 (--partition-policy consistent)"
            )));
        }
        Ok(PutReceipt {
            version,
            replication,
        })
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        let shared = &self.shared;
        let (existed, wait) = shared.with_replica(|r, now| {
            let d = r.delete_acked(id, now);
            (d.existed, Wait::of(shared, d.ack, r.peers().len()))
        });
        // The logout's answer does not report the acks (the store trait has
        // no receipt for a delete); a timed-out wait still deleted here, and
        // the tombstone reaches the others by resync.
        wait.outcome(shared).await;
        Ok(existed)
    }

    async fn touch(&self, id: &SessionId, at_ms: u64) -> Result<bool, StoreError> {
        Ok(self.shared.with_replica(|r, now| r.touch(id, at_ms, now)))
    }

    /// The listing, with each session's owners in the backup topology as
    /// the replica computes them (its `owner_map`, taken first: the replica
    /// is not held while the store's shards are read).
    async fn list(&self, limit: usize) -> Result<Vec<SessionMeta>, StoreError> {
        let map = self.shared.replica.lock().owner_map();
        Ok(match map {
            Some(map) => self
                .shared
                .store
                .list_meta_with(limit, |id| Some(map.owners(id))),
            None => self.shared.store.list_meta(limit),
        })
    }

    async fn count(&self) -> Result<usize, StoreError> {
        Ok(self.shared.store.len())
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        self.shared.store.stats().await
    }
}
