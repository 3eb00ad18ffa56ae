//! `MemoryStore`: sessions in this process's memory.
//!
//! This is the store of the `local` and `sticky` modes, and the local copy
//! under the replicated store. Three properties matter:
//!
//! - **Concurrent.** The map is split into shards, each behind a
//!   reader-writer lock, so many requests read sessions at once and writers
//!   only block the shard they touch.
//! - **Bounded.** A maximum number of sessions, a maximum size per session,
//!   a byte budget for the whole store, and a smaller budget for sessions
//!   with no user (all configurable). Over any limit is a clear
//!   [`StoreError`], never unbounded growth, and the stored copy stays as it
//!   was.
//! - **Expiring.** Reads treat expired sessions as absent at once; a reaper
//!   task removes them periodically and counts them. Expiry depends only on
//!   the session's fields (see [`Session::expires_at_ms`]).
//!
//! ## The byte budget
//!
//! Every session is counted at [`Session::size_bytes`] (its data, user, the
//! version's node id and a fixed overhead for the id, the numbers and the
//! map entry). Two budgets bound the sum, checked and reserved atomically
//! under the shard's lock before anything is stored:
//!
//! | budget | counts | a write that would pass it |
//! |---|---|---|
//! | `max_bytes` | every session | refused: [`StoreError::OverBudget`] (`anonymous: false`) |
//! | `max_anonymous_bytes` | sessions with no user (carts before a login) | refused: [`StoreError::OverBudget`] (`anonymous: true`) |
//!
//! Only writes that *need more bytes* are refused: a new session, a login
//! (a new id), data that grows. Reads, touches, deletes and writes that
//! shrink or keep the size always pass, so the sessions already held keep
//! working when the store is full. Because anonymous sessions have their own,
//! smaller budget, a flood of carts without a login fills that budget and
//! stops there, leaving the rest for users who log in.
//!
//! The same checks apply to copies applied from peers ([`MemoryStore::apply_with`]):
//! with replication every node holds every copy, so a node at its budget
//! refuses a peer's new copy as it would a local one (it is counted, and the
//! node simply does not hold that session; the user is served by the nodes
//! that do, and anti-entropy offers the copy again later). Nothing is
//! evicted to make room: evicting would log out a user to admit a stranger.
//!
//! Besides the [`SessionStore`] trait it offers the synchronous operations the
//! replication layer needs: stamp a version, apply a remote copy if it wins
//! against the held one or merge it with the held one (the caller decides
//! the order or the merge, under the shard's lock), remove, snapshot and
//! the ids in a range (anti-entropy's pages).

use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::RwLock;

use crate::clock;
use crate::id::SessionId;
use crate::session::{Session, SessionMeta};
use crate::store::{PutReceipt, ReplicationAck, SessionStore, StoreError, StoreStats};
use crate::version::{MAX_LAMPORT, Version};

const SHARDS: usize = 16;

/// Limits and identity of a memory store.
#[derive(Clone, Debug)]
pub struct MemoryStoreConfig {
    /// Stamped into versions written by this store.
    pub node_id: String,
    /// Most sessions held at once.
    pub max_sessions: usize,
    /// Most bytes of data in one session.
    pub max_session_bytes: usize,
    /// Most bytes held by all sessions together (see the module docs).
    pub max_bytes: u64,
    /// Most bytes held by sessions with no user.
    pub max_anonymous_bytes: u64,
}

impl Default for MemoryStoreConfig {
    fn default() -> Self {
        MemoryStoreConfig {
            node_id: "node-1".into(),
            max_sessions: 1_000_000,
            max_session_bytes: 16 * 1024,
            max_bytes: u64::MAX,
            max_anonymous_bytes: u64::MAX,
        }
    }
}

/// The outcome of applying a copy that came from elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// It was newer (or new) and is now stored.
    Stored,
    /// It replaced an older copy (a last-writer-wins overwrite).
    Overwrote,
    /// The stored copy is the same or newer; nothing changed.
    Stale,
    /// It broke a limit and was not stored.
    Rejected(StoreError),
}

fn applied(result: Result<Option<Session>, Option<StoreError>>) -> Applied {
    match result {
        Ok(None) => Applied::Stored,
        Ok(Some(_)) => Applied::Overwrote,
        Err(None) => Applied::Stale,
        Err(Some(e)) => Applied::Rejected(e),
    }
}

/// Sessions in memory; see the module docs.
pub struct MemoryStore {
    cfg: MemoryStoreConfig,
    shards: Box<[RwLock<HashMap<SessionId, Session>>]>,
    hasher: RandomState,
    lamport: AtomicU64,
    count: AtomicU64,
    bytes: AtomicU64,
    anonymous_bytes: AtomicU64,
    expired_total: AtomicU64,
    refused_budget: AtomicU64,
    refused_anonymous: AtomicU64,
}

/// Add `delta` to `counter` if the sum stays within `limit`.
fn reserve(counter: &AtomicU64, delta: u64, limit: u64) -> bool {
    delta == 0
        || counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(delta).filter(|sum| *sum <= limit)
            })
            .is_ok()
}

/// Change `counter` by `new - old`, without any limit.
fn adjust(counter: &AtomicU64, old: u64, new: u64) {
    if new >= old {
        counter.fetch_add(new - old, Ordering::AcqRel);
    } else {
        counter.fetch_sub(old - new, Ordering::AcqRel);
    }
}

/// Bytes a session counts against the anonymous budget.
fn anonymous_size(s: &Session) -> u64 {
    if s.user.is_none() {
        s.size_bytes() as u64
    } else {
        0
    }
}

impl MemoryStore {
    pub fn new(cfg: MemoryStoreConfig) -> Self {
        MemoryStore {
            cfg,
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            lamport: AtomicU64::new(0),
            count: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            anonymous_bytes: AtomicU64::new(0),
            expired_total: AtomicU64::new(0),
            refused_budget: AtomicU64::new(0),
            refused_anonymous: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> &MemoryStoreConfig {
        &self.cfg
    }

    fn shard(&self, id: &SessionId) -> &RwLock<HashMap<SessionId, Session>> {
        let h = self.hasher.hash_one(id.as_str()) as usize;
        &self.shards[h % SHARDS]
    }

    fn check_size(&self, s: &Session) -> Result<(), StoreError> {
        let size = s.data_len();
        if size > self.cfg.max_session_bytes {
            return Err(StoreError::TooLarge {
                size,
                limit: self.cfg.max_session_bytes,
            });
        }
        Ok(())
    }

    /// Move the Lamport clock past a version seen elsewhere.
    /// Never past [`MAX_LAMPORT`] (the replication protocol refuses such
    /// versions before they get here; this is the second line).
    pub fn observe(&self, v: &Version) {
        self.lamport
            .fetch_max(v.lamport.min(MAX_LAMPORT), Ordering::AcqRel);
    }

    /// The next version this node writes with. Checked arithmetic: at the
    /// end of the range the clock stays there instead of wrapping to 0
    /// (unreachable while [`observe`](Self::observe) clamps).
    pub fn next_version(&self) -> Version {
        let prev = self
            .lamport
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |l| l.checked_add(1))
            .unwrap_or(u64::MAX - 1);
        Version::new(prev.saturating_add(1), self.cfg.node_id.clone())
    }

    /// Current value of the Lamport clock.
    pub fn lamport(&self) -> u64 {
        self.lamport.load(Ordering::Acquire)
    }

    /// Insert or replace under the shard lock, keeping the counters right:
    /// `accept(existing, s)` decides whether to write `s`.
    fn upsert_by(
        &self,
        s: Session,
        accept: impl FnOnce(Option<&Session>, &Session) -> bool,
    ) -> Result<Option<Session>, Option<StoreError>> {
        let id = s.id.clone();
        self.upsert_decide(&id, s, |existing, s| {
            if accept(existing, &s) {
                Ok(s)
            } else {
                Err(None)
            }
        })
    }

    /// The general form under the others: `decide(existing, s)` returns the
    /// session to store (`s`, or a copy made from both), `Err(None)` to
    /// leave the held copy (stale, or a failed condition) or `Err(Some(e))`
    /// to refuse.
    fn upsert_decide(
        &self,
        id: &SessionId,
        s: Session,
        decide: impl FnOnce(Option<&Session>, Session) -> Result<Session, Option<StoreError>>,
    ) -> Result<Option<Session>, Option<StoreError>> {
        let mut shard = self.shard(id).write();
        let existing = shard.get(id);
        let s = decide(existing, s)?;
        // A new session reserves its place in the count first, so
        // concurrent inserts into different shards cannot pass the limit
        // together; each refusal below gives back what was reserved.
        let new_entry = u64::from(existing.is_none());
        if !reserve(&self.count, new_entry, self.cfg.max_sessions as u64) {
            return Err(Some(StoreError::Full {
                limit: self.cfg.max_sessions,
            }));
        }
        let (old_size, old_anon) =
            existing.map_or((0, 0), |o| (o.size_bytes() as u64, anonymous_size(o)));
        let (new_size, new_anon) = (s.size_bytes() as u64, anonymous_size(&s));
        // Reserve growth against both budgets before storing; give back the
        // first if the second refuses. Shrinking is never refused.
        if !reserve(
            &self.anonymous_bytes,
            new_anon.saturating_sub(old_anon),
            self.cfg.max_anonymous_bytes,
        ) {
            adjust(&self.count, new_entry, 0);
            self.refused_anonymous.fetch_add(1, Ordering::AcqRel);
            return Err(Some(StoreError::OverBudget {
                budget_bytes: self.cfg.max_anonymous_bytes,
                anonymous: true,
            }));
        }
        if !reserve(
            &self.bytes,
            new_size.saturating_sub(old_size),
            self.cfg.max_bytes,
        ) {
            adjust(&self.anonymous_bytes, new_anon.saturating_sub(old_anon), 0);
            adjust(&self.count, new_entry, 0);
            self.refused_budget.fetch_add(1, Ordering::AcqRel);
            return Err(Some(StoreError::OverBudget {
                budget_bytes: self.cfg.max_bytes,
                anonymous: false,
            }));
        }
        if new_size < old_size {
            adjust(&self.bytes, old_size, new_size);
        }
        if new_anon < old_anon {
            adjust(&self.anonymous_bytes, old_anon, new_anon);
        }
        Ok(shard.insert(s.id.clone(), s))
    }

    fn remove_locked(
        &self,
        shard: &mut HashMap<SessionId, Session>,
        id: &SessionId,
    ) -> Option<Session> {
        let old = shard.remove(id)?;
        self.count.fetch_sub(1, Ordering::AcqRel);
        self.bytes
            .fetch_sub(old.size_bytes() as u64, Ordering::AcqRel);
        self.anonymous_bytes
            .fetch_sub(anonymous_size(&old), Ordering::AcqRel);
        Some(old)
    }

    /// Write a local change: stamp the next version and store it.
    ///
    /// **Conditional on the base version.** The version the session
    /// carries is the one it was read at. A session read from the store
    /// (a non-zero version) is written only if the stored copy still has
    /// exactly that version; otherwise, or if it is gone (logged out,
    /// expired and reaped), the write is refused with
    /// [`StoreError::Conflict`] and nothing changes. So a request that
    /// loaded the session before a logout cannot put it back after, and two
    /// requests that read the same version cannot both write (the node
    /// replays the loser's change on the fresh copy). A session never read
    /// (the default version: a new id, a fresh record) is written as is.
    pub fn put_local(&self, s: Session) -> Result<Session, StoreError> {
        self.put_local_with(s, |_, _| true)
    }

    /// [`put_local`](Self::put_local), and `prepare(held, new)` under the
    /// shard's lock once the write's condition holds and `new` carries its
    /// new version: the replication layer stamps per-key versions there
    /// (attribute granularity), against exactly the copy it replaces, and
    /// may refuse the write as a [`StoreError::Conflict`] by returning
    /// `false` (a condition of its own on top of the base version).
    pub fn put_local_with(
        &self,
        mut s: Session,
        prepare: impl FnOnce(Option<&Session>, &mut Session) -> bool,
    ) -> Result<Session, StoreError> {
        self.check_size(&s)?;
        let base = std::mem::take(&mut s.version);
        let unread = base == Version::default();
        s.version = self.next_version();
        let mut stored = None;
        let id = s.id.clone();
        self.upsert_decide(&id, s, |held, mut s| {
            if !(unread || held.is_some_and(|h| h.version == base)) {
                return Err(None);
            }
            if !prepare(held, &mut s) {
                return Err(None);
            }
            stored = Some(s.clone());
            Ok(s)
        })
        .map_err(|e| e.unwrap_or(StoreError::Conflict))?;
        Ok(stored.expect("set by the accepted write"))
    }

    /// Apply a copy from a peer if `wins(held)` says it beats the copy held
    /// (always, if none is held). Deciding and writing happen under one
    /// lock, so a replication layer can impose its own order of writes (for
    /// example last-writer-wins with a tie-break) without a moment where
    /// readers see neither copy. Moves the Lamport clock past its version.
    pub fn apply_with(&self, s: Session, wins: impl FnOnce(&Session) -> bool) -> Applied {
        self.apply_by(s, |_, held| wins(held))
    }

    /// [`apply_with`](Self::apply_with), with `wins(incoming, held)` seeing
    /// the incoming copy too, so a decision that needs more than the
    /// version (a content tie-break) can compute it only when it is needed.
    pub fn apply_by(&self, s: Session, wins: impl FnOnce(&Session, &Session) -> bool) -> Applied {
        self.observe(&s.version);
        if let Err(e) = self.check_size(&s) {
            return Applied::Rejected(e);
        }
        let decide = |existing: Option<&Session>, incoming: &Session| {
            existing.is_none_or(|held| wins(incoming, held))
        };
        applied(self.upsert_by(s, decide))
    }

    /// Apply a copy from a peer by merging it with the copy held:
    /// `merge(held, incoming)` returns the copy to store, or `None` if the
    /// held one already has everything (stale). Without a held copy the
    /// incoming one is stored as it is. Merging and writing happen under
    /// one lock, like [`apply_with`](Self::apply_with); the merged copy is
    /// held to the same limits. Moves the Lamport clock past its version.
    pub fn apply_merged(
        &self,
        s: Session,
        merge: impl FnOnce(&Session, &Session) -> Option<Session>,
    ) -> Applied {
        self.observe(&s.version);
        if let Err(e) = self.check_size(&s) {
            return Applied::Rejected(e);
        }
        let id = s.id.clone();
        let result = self.upsert_decide(&id, s, |existing, s| {
            let Some(held) = existing else {
                return Ok(s);
            };
            let merged = merge(held, &s).ok_or(None)?;
            self.check_size(&merged).map_err(Some)?;
            Ok(merged)
        });
        applied(result)
    }

    /// Remove a session whatever its version. Returns the removed copy.
    pub fn remove(&self, id: &SessionId) -> Option<Session> {
        let mut shard = self.shard(id).write();
        self.remove_locked(&mut shard, id)
    }

    /// Move last access forward to `at_ms` (never backward). No new version:
    /// access times merge by maximum, so touches commute.
    pub fn touch_at(&self, id: &SessionId, at_ms: u64) -> bool {
        let mut shard = self.shard(id).write();
        match shard.get_mut(id) {
            Some(s) => {
                s.last_access_ms = s.last_access_ms.max(at_ms);
                true
            }
            None => false,
        }
    }

    /// The stored copy, expired or not (replication compares versions of
    /// everything it holds).
    pub fn get_raw(&self, id: &SessionId) -> Option<Session> {
        self.shard(id).read().get(id).cloned()
    }

    /// The stored copy's last access, expired or not: what a local write
    /// needs of the held copy, without cloning it.
    pub fn last_access_of(&self, id: &SessionId) -> Option<u64> {
        self.shard(id).read().get(id).map(|s| s.last_access_ms)
    }

    /// The live copy at `now_ms`.
    pub fn get_live(&self, id: &SessionId, now_ms: u64) -> Option<Session> {
        self.shard(id)
            .read()
            .get(id)
            .filter(|s| !s.is_expired(now_ms))
            .cloned()
    }

    /// Every stored session (for snapshot transfer to a joining peer).
    pub fn snapshot(&self) -> Vec<Session> {
        self.shards
            .iter()
            .flat_map(|s| s.read().values().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// The ids of the stored sessions in `(after, upto]` (a bound that is
    /// `None` is open), in id order; with `limit`, only the `limit`
    /// smallest. For anti-entropy's pages: it compares every id but
    /// clones only those in the range (with a limit, only the ones that
    /// are among the smallest so far: a bounded max-heap), so a page of a
    /// digest round costs one scan without an allocation per session
    /// rather than a copy of the whole store.
    pub fn ids_in(
        &self,
        after: Option<&SessionId>,
        upto: Option<&SessionId>,
        limit: Option<usize>,
    ) -> Vec<SessionId> {
        let in_range =
            |id: &SessionId| after.is_none_or(|a| id > a) && upto.is_none_or(|u| id <= u);
        let mut out: Vec<SessionId> = match limit {
            None => self
                .shards
                .iter()
                .flat_map(|s| {
                    s.read()
                        .keys()
                        .filter(|id| in_range(id))
                        .cloned()
                        .collect::<Vec<_>>()
                })
                .collect(),
            Some(0) => Vec::new(),
            Some(limit) => {
                let mut heap: BinaryHeap<SessionId> = BinaryHeap::with_capacity(limit + 1);
                for shard in self.shards.iter() {
                    for id in shard.read().keys().filter(|id| in_range(id)) {
                        if heap.len() < limit {
                            heap.push(id.clone());
                        } else if let Some(mut top) = heap.peek_mut()
                            && id < &*top
                        {
                            *top = id.clone();
                        }
                    }
                }
                heap.into_vec()
            }
        };
        out.sort_unstable();
        out
    }

    /// Remove every session expired at `now_ms`; returns their ids.
    pub fn reap(&self, now_ms: u64) -> Vec<SessionId> {
        let mut reaped = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = shard.write();
            let expired: Vec<SessionId> = shard
                .values()
                .filter(|s| s.is_expired(now_ms))
                .map(|s| s.id.clone())
                .collect();
            for id in expired {
                self.remove_locked(&mut shard, &id);
                reaped.push(id);
            }
        }
        self.expired_total
            .fetch_add(reaped.len() as u64, Ordering::AcqRel);
        reaped
    }

    /// Run [`reap`](Self::reap) every `interval` until the task is aborted.
    pub fn spawn_reaper(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let store = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(store) = store.upgrade() else { return };
                let n = store.reap(clock::now_ms()).len();
                if n > 0 {
                    tracing::debug!(expired = n, "reaped expired sessions");
                }
            }
        })
    }

    /// Sessions held (including expired ones not yet reaped).
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Acquire) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate bytes held by sessions.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Acquire)
    }

    /// Approximate bytes held by sessions with no user.
    pub fn anonymous_bytes(&self) -> u64 {
        self.anonymous_bytes.load(Ordering::Acquire)
    }

    /// Writes refused since start because they would pass the store's
    /// byte budget, and because they would pass the anonymous budget.
    pub fn refused_over_budget(&self) -> (u64, u64) {
        (
            self.refused_budget.load(Ordering::Acquire),
            self.refused_anonymous.load(Ordering::Acquire),
        )
    }

    /// Sessions removed by expiry since start.
    pub fn expired_total(&self) -> u64 {
        self.expired_total.load(Ordering::Acquire)
    }

    /// Admin listing of up to `limit` sessions, oldest first.
    pub fn list_meta(&self, limit: usize) -> Vec<SessionMeta> {
        self.list_meta_with(limit, |_| None)
    }

    /// [`list_meta`](Self::list_meta), each entry's `owners` from `owners`
    /// (called outside the store's locks, on the listed sessions only).
    pub fn list_meta_with(
        &self,
        limit: usize,
        owners: impl Fn(&SessionId) -> Option<Vec<String>>,
    ) -> Vec<SessionMeta> {
        let mut out: Vec<(SessionMeta, SessionId)> = self
            .shards
            .iter()
            .flat_map(|s| {
                s.read()
                    .values()
                    .map(|x| (x.meta(), x.id.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort_by(|(a, _), (b, _)| {
            (a.created_ms, &a.id_prefix).cmp(&(b.created_ms, &b.id_prefix))
        });
        out.truncate(limit);
        out.into_iter()
            .map(|(mut meta, id)| {
                meta.owners = owners(&id);
                meta
            })
            .collect()
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        Ok(self.get_live(id, clock::now_ms()))
    }

    async fn put(&self, session: Session) -> Result<PutReceipt, StoreError> {
        let stored = self.put_local(session)?;
        Ok(PutReceipt {
            version: stored.version,
            replication: ReplicationAck::NotReplicated,
        })
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        Ok(self.remove(id).is_some())
    }

    async fn touch(&self, id: &SessionId, at_ms: u64) -> Result<bool, StoreError> {
        Ok(self.touch_at(id, at_ms))
    }

    async fn list(&self, limit: usize) -> Result<Vec<SessionMeta>, StoreError> {
        Ok(self.list_meta(limit))
    }

    async fn count(&self) -> Result<usize, StoreError> {
        Ok(self.len())
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let (refused_budget, refused_anonymous) = self.refused_over_budget();
        Ok(StoreStats {
            sessions: self.len() as u64,
            bytes: self.bytes(),
            expired_total: self.expired_total(),
            budget_bytes: self.cfg.max_bytes,
            anonymous_bytes: self.anonymous_bytes(),
            anonymous_budget_bytes: self.cfg.max_anonymous_bytes,
            refused_budget,
            refused_anonymous,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value};

    fn store(max_sessions: usize, max_bytes: usize) -> Arc<MemoryStore> {
        Arc::new(MemoryStore::new(MemoryStoreConfig {
            node_id: "node-1".into(),
            max_sessions,
            max_session_bytes: max_bytes,
            ..MemoryStoreConfig::default()
        }))
    }

    fn budgeted(max_bytes: u64, max_anonymous_bytes: u64) -> Arc<MemoryStore> {
        Arc::new(MemoryStore::new(MemoryStoreConfig {
            max_bytes,
            max_anonymous_bytes,
            ..MemoryStoreConfig::default()
        }))
    }

    /// What one empty session counts once stored (with its version).
    fn one_stored() -> u64 {
        let mut s = session(0);
        s.version = Version::new(1, "node-1");
        s.size_bytes() as u64
    }

    fn with_data(mut s: Session, bytes: usize) -> Session {
        let mut m = Map::new();
        m.insert("blob".into(), Value::from("x".repeat(bytes)));
        s.set_data(&m);
        s
    }

    #[tokio::test]
    async fn ids_in_gives_the_range_in_order_and_the_smallest_up_to_the_limit() {
        let st = store(1_000, 1 << 20);
        for _ in 0..300 {
            st.put(session(clock::now_ms())).await.unwrap();
        }
        let mut all: Vec<SessionId> = st.snapshot().into_iter().map(|s| s.id).collect();
        all.sort();
        assert_eq!(st.ids_in(None, None, None), all);
        assert_eq!(st.ids_in(None, None, Some(10)), all[..10]);
        assert_eq!(st.ids_in(Some(&all[99]), None, Some(50)), all[100..150]);
        assert_eq!(st.ids_in(Some(&all[9]), Some(&all[19]), None), all[10..20]);
        assert_eq!(st.ids_in(Some(&all[289]), None, Some(50)), all[290..]);
        assert!(st.ids_in(None, None, Some(0)).is_empty());
        assert!(st.ids_in(Some(&all[299]), None, None).is_empty());
    }

    #[tokio::test]
    async fn the_byte_budget_refuses_growth_and_keeps_what_is_held() {
        let one = one_stored();
        let st = budgeted(3 * one + 50, u64::MAX);
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut s = session(clock::now_ms());
            s.user = Some(String::new());
            st.put(s.clone()).await.unwrap();
            held.push(s);
        }
        let mut fourth = session(clock::now_ms());
        fourth.user = Some(String::new());
        let err = st.put(fourth).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::OverBudget {
                    anonymous: false,
                    ..
                }
            ),
            "{err:?}"
        );
        // Growing past the budget is refused; the stored copy stays.
        let grown = with_data(held[0].clone(), 100);
        assert!(matches!(
            st.put(grown).await,
            Err(StoreError::OverBudget { .. })
        ));
        assert_eq!(st.get(&held[0].id).await.unwrap().unwrap().data_len(), 2);
        // Growing within it, touching, deleting: all fine.
        st.put(with_data(held[1].clone(), 20)).await.unwrap();
        assert!(st.touch(&held[2].id, clock::now_ms()).await.unwrap());
        assert!(st.delete(&held[2].id).await.unwrap());
        let stats = st.stats().await.unwrap();
        assert!(stats.bytes <= stats.budget_bytes, "{stats:?}");
        assert_eq!((stats.refused_budget, stats.refused_anonymous), (2, 0));
        assert_eq!(st.len(), 2);
    }

    #[test]
    fn concurrent_inserts_into_different_shards_never_pass_max_sessions() {
        for _ in 0..20 {
            let st = store(20, 1 << 20);
            let stored: usize = std::thread::scope(|scope| {
                let workers: Vec<_> = (0..8)
                    .map(|_| {
                        let st = &st;
                        scope.spawn(move || {
                            (0..50).filter(|_| st.put_local(session(0)).is_ok()).count()
                        })
                    })
                    .collect();
                workers.into_iter().map(|w| w.join().unwrap()).sum()
            });
            assert_eq!(stored, 20);
            assert_eq!(st.len(), 20);
            assert_eq!(st.snapshot().len(), 20);
        }
    }

    #[tokio::test]
    async fn anonymous_sessions_have_their_own_smaller_budget() {
        let one = one_stored();
        let st = budgeted(10 * one, 2 * one);
        st.put(session(0)).await.unwrap();
        let cart = session(0);
        st.put(cart.clone()).await.unwrap();
        let err = st.put(session(0)).await.unwrap_err();
        assert_eq!(
            err,
            StoreError::OverBudget {
                budget_bytes: 2 * one,
                anonymous: true
            }
        );
        // A login still fits: the rest of the budget is for users.
        let mut user = session(0);
        user.user = Some("bob".into());
        st.put(user.clone()).await.unwrap();
        assert_eq!(st.anonymous_bytes(), 2 * one);
        // Logging the cart in moves it out of the anonymous budget.
        let mut logged_in = cart.clone();
        logged_in.user = Some("alice".into());
        st.put(logged_in).await.unwrap();
        assert_eq!(st.anonymous_bytes(), one);
        st.put(session(0)).await.unwrap();
        assert_eq!(st.refused_over_budget(), (0, 1));
        for s in [&user, &cart] {
            st.delete(&s.id).await.unwrap();
        }
        assert_eq!(st.anonymous_bytes(), 2 * one);
    }

    #[test]
    fn copies_from_peers_are_held_to_the_budget() {
        let one = one_stored();
        let st = budgeted(u64::MAX, one);
        let mut a = session(0);
        a.version = Version::new(1, "node-2");
        assert_eq!(st.apply_with(a, |_| true), Applied::Stored);
        let mut b = session(0);
        b.version = Version::new(2, "node-2");
        assert!(matches!(
            st.apply_with(b, |_| true),
            Applied::Rejected(StoreError::OverBudget {
                anonymous: true,
                ..
            })
        ));
        assert_eq!(st.len(), 1);
    }

    fn session(now: u64) -> Session {
        Session::new(SessionId::generate(), now, 30 * 60_000, 8 * 3_600_000)
    }

    /// Stores a new session and returns the copy a request would load.
    async fn stored_and_loaded(st: &MemoryStore) -> Session {
        let s = session(clock::now_ms());
        let id = s.id.clone();
        st.put(s).await.unwrap();
        st.get(&id).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn put_get_delete() {
        let st = store(10, 1024);
        let s = session(clock::now_ms());
        let r = st.put(s.clone()).await.unwrap();
        assert_eq!(r.version, Version::new(1, "node-1"));
        let got = st.get(&s.id).await.unwrap().unwrap();
        assert_eq!(got.version.lamport, 1);
        assert_eq!(st.count().await.unwrap(), 1);
        assert!(st.delete(&s.id).await.unwrap());
        assert!(st.get(&s.id).await.unwrap().is_none());
        assert_eq!(st.bytes(), 0);
    }

    #[tokio::test]
    async fn over_the_session_limit_is_an_error_and_nothing_grows() {
        let st = store(2, 1024);
        st.put(session(clock::now_ms())).await.unwrap();
        st.put(session(clock::now_ms())).await.unwrap();
        let err = st.put(session(clock::now_ms())).await.unwrap_err();
        assert_eq!(err, StoreError::Full { limit: 2 });
        assert_eq!(st.len(), 2);
    }

    #[tokio::test]
    async fn oversized_data_is_refused_and_the_old_data_stays() {
        let st = store(10, 64);
        let mut s = session(clock::now_ms());
        let mut m = Map::new();
        m.insert("counter".into(), Value::from(1));
        s.set_data(&m);
        st.put(s.clone()).await.unwrap();
        m.insert("blob".into(), Value::from("x".repeat(100)));
        s.set_data(&m);
        let err = st.put(s.clone()).await.unwrap_err();
        assert!(matches!(err, StoreError::TooLarge { limit: 64, .. }));
        let kept = st.get(&s.id).await.unwrap().unwrap();
        assert_eq!(kept.data().get("counter"), Some(&Value::from(1)));
        assert!(kept.data().get("blob").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_sessions_expire_and_touch_extends_them() {
        let st = store(10, 1024);
        let now = clock::now_ms();
        let a = Session::new(SessionId::generate(), now, 60_000, 3_600_000);
        let b = Session::new(SessionId::generate(), now, 60_000, 3_600_000);
        st.put(a.clone()).await.unwrap();
        st.put(b.clone()).await.unwrap();
        let reaper = st.spawn_reaper(Duration::from_secs(10));

        tokio::time::advance(Duration::from_secs(45)).await;
        assert!(st.touch(&b.id, clock::now_ms()).await.unwrap());
        tokio::time::advance(Duration::from_secs(30)).await;
        // a: idle for 75 s > 60 s; b: touched 30 s ago.
        assert!(st.get(&a.id).await.unwrap().is_none());
        assert!(st.get(&b.id).await.unwrap().is_some());
        tokio::time::advance(Duration::from_secs(20)).await;
        tokio::task::yield_now().await;
        assert_eq!(st.len(), 1, "the reaper removed the idle session");
        assert_eq!(st.expired_total(), 1);
        reaper.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn absolute_timeout_ends_even_a_busy_session() {
        let st = store(10, 1024);
        let s = Session::new(SessionId::generate(), clock::now_ms(), 60_000, 150_000);
        st.put(s.clone()).await.unwrap();
        for _ in 0..5 {
            tokio::time::advance(Duration::from_secs(40)).await;
            st.touch(&s.id, clock::now_ms()).await.unwrap();
        }
        // 200 s after creation, touched every 40 s: the absolute limit ended it.
        assert!(st.get(&s.id).await.unwrap().is_none());
        assert_eq!(st.reap(clock::now_ms()).len(), 1);
    }

    #[test]
    fn apply_with_lets_the_caller_order_copies() {
        let st = store(10, 1024);
        let mut a = session(0);
        a.version = Version::new(3, "node-2");
        assert_eq!(st.apply_with(a.clone(), |_| false), Applied::Stored);
        let mut b = a.clone();
        b.user = Some("bob".into());
        let b_wins = |held: &Session| held.user.is_none();
        assert_eq!(st.apply_with(b, b_wins), Applied::Overwrote);
        assert_eq!(st.get_raw(&a.id).unwrap().user.as_deref(), Some("bob"));
        assert_eq!(st.apply_with(a, b_wins), Applied::Stale);
        assert_eq!(st.len(), 1);
    }

    #[test]
    fn put_local_with_prepares_under_the_lock_and_apply_merged_stores_the_merge() {
        let st = store(10, 1024);
        let first = st.put_local(session(0)).unwrap();
        let mut next = first.clone();
        next.user = Some("bob".into());
        let stored = st
            .put_local_with(next, |held, new| {
                assert_eq!(held.map(|h| &h.version), Some(&first.version));
                new.stamps.removed.insert("old".into(), new.version.clone());
                true
            })
            .unwrap();
        assert_eq!(st.get_raw(&first.id).unwrap(), stored);
        assert!(stored.stamps.removed.contains_key("old"));
        // A stale base is refused before `prepare` runs.
        let r = st.put_local_with(first.clone(), |_, _| panic!("not prepared"));
        assert_eq!(r, Err(StoreError::Conflict));
        // `prepare` may refuse too, and then nothing changes.
        let r = st.put_local_with(stored.clone(), |_, _| false);
        assert_eq!(r, Err(StoreError::Conflict));
        assert_eq!(st.get_raw(&first.id).unwrap(), stored);

        let mut other = stored.clone();
        other.version = Version::new(9, "node-2");
        other.user = Some("carol".into());
        let merged = |held: &Session, inc: &Session| {
            let mut m = inc.clone();
            m.user = Some(format!(
                "{}+{}",
                held.user.as_deref()?,
                inc.user.as_deref()?
            ));
            Some(m)
        };
        assert_eq!(st.apply_merged(other.clone(), merged), Applied::Overwrote);
        assert_eq!(
            st.get_raw(&first.id).unwrap().user.as_deref(),
            Some("bob+carol")
        );
        assert_eq!(st.apply_merged(other, |_, _| None), Applied::Stale);
        assert_eq!(st.len(), 1);
        let bytes = st.bytes();
        assert_eq!(bytes, st.get_raw(&first.id).unwrap().size_bytes() as u64);
    }

    /// Last writer wins, expressed with `apply_with`: the copy is stored
    /// only if its version is higher than the one held.
    fn apply_if_newer(st: &MemoryStore, s: Session) -> Applied {
        let incoming = s.version.clone();
        st.apply_with(s, |held| incoming > held.version)
    }

    /// A delete that must not remove a write that happened after it,
    /// expressed with `observe`, `get_raw` and `remove`.
    fn remove_unless_newer(st: &MemoryStore, id: &SessionId, version: &Version) -> bool {
        st.observe(version);
        let held_is_older = st.get_raw(id).is_some_and(|s| s.version <= *version);
        held_is_older && st.remove(id).is_some()
    }

    #[test]
    fn last_writer_wins_and_deletes_respect_newer_writes() {
        let st = store(10, 1024);
        let mut s = session(0);
        s.version = Version::new(5, "node-2");
        assert_eq!(apply_if_newer(&st, s.clone()), Applied::Stored);
        s.version = Version::new(4, "node-3");
        assert_eq!(apply_if_newer(&st, s.clone()), Applied::Stale);
        s.version = Version::new(5, "node-3");
        assert_eq!(apply_if_newer(&st, s.clone()), Applied::Overwrote);
        assert!(st.lamport() >= 5);
        assert!(st.next_version() > Version::new(5, "node-3"));
        assert!(!remove_unless_newer(&st, &s.id, &Version::new(5, "node-2")));
        assert!(remove_unless_newer(&st, &s.id, &Version::new(9, "node-1")));
        assert!(st.is_empty());
    }

    #[test]
    fn the_clock_never_passes_the_end_of_its_range() {
        let st = store(10, 1024);
        st.observe(&Version::new(u64::MAX, "peer"));
        assert_eq!(st.lamport(), MAX_LAMPORT);
        let v = st.next_version();
        assert_eq!(v.lamport, MAX_LAMPORT + 1);
        assert!(st.next_version() > v);
    }

    #[tokio::test]
    async fn a_write_loaded_before_a_logout_cannot_bring_the_session_back() {
        let st = store(10, 1024);
        // Request A loads the session; request B logs out; A writes.
        let loaded = stored_and_loaded(&st).await;
        let id = loaded.id.clone();
        assert!(st.delete(&id).await.unwrap());
        assert_eq!(st.put(loaded).await, Err(StoreError::Conflict));
        assert!(st.get(&id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn of_two_writes_from_one_version_only_the_first_lands() {
        let st = store(10, 1024);
        let a = stored_and_loaded(&st).await;
        let b = a.clone();
        st.put(a).await.unwrap();
        assert_eq!(st.put(b).await, Err(StoreError::Conflict));
    }
}
