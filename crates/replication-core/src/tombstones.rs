//! Tombstones: remembering that a session was deleted.
//!
//! When a replica deletes a session it cannot simply forget it: a copy may
//! still be on its way (a delayed upsert, a peer that was partitioned, a
//! snapshot taken a moment earlier). If the replica had no memory of the
//! delete, that late copy would bring a logged-out session back to life,
//! and a stolen cookie would work again.
//!
//! So a delete leaves a tombstone, and a tombstone is *final*: an upsert for
//! a tombstoned id is dropped whatever its version ("remove wins"). This is
//! safe because session ids are random and never reused: a write to a
//! deleted id can only be a late copy or a request racing the logout, and
//! in both cases the logout must win.
//!
//! A tombstone is kept until the deleted session would have died anyway: its
//! absolute expiry (`created + absolute_timeout`) plus a grace period for
//! clock differences. After that any copy of the session that is still
//! travelling is expired on arrival and dropped for that reason, so the
//! tombstone can be garbage-collected.
//!
//! Memory is bounded: at most `limit` tombstones. If more are needed, the
//! one closest to its end is evicted (and counted), which weakens the
//! guarantee only for the session nearest to expiring by itself.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use sessionlab_session::{SessionId, Version};

use crate::message::Delete;

/// The tombstones a replica holds; see the module docs.
#[derive(Debug)]
pub struct Tombstones {
    by_id: BTreeMap<SessionId, (Version, u64)>,
    by_expiry: BTreeSet<(u64, SessionId)>,
    limit: usize,
    evicted_total: u64,
}

impl Tombstones {
    pub fn new(limit: usize) -> Self {
        Tombstones {
            by_id: BTreeMap::new(),
            by_expiry: BTreeSet::new(),
            limit: limit.max(1),
            evicted_total: 0,
        }
    }

    pub fn contains(&self, id: &SessionId) -> bool {
        self.by_id.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Tombstones evicted early because the limit was reached.
    pub fn evicted_total(&self) -> u64 {
        self.evicted_total
    }

    /// Record a delete. Keeps the higher version and the later end if the
    /// id is already tombstoned. Returns whether the tombstone is new.
    pub fn insert(&mut self, id: SessionId, version: Version, expires_ms: u64) -> bool {
        if let Some((v, exp)) = self.by_id.get_mut(&id) {
            if version > *v {
                *v = version;
            }
            if expires_ms > *exp {
                self.by_expiry.remove(&(*exp, id.clone()));
                *exp = expires_ms;
                self.by_expiry.insert((expires_ms, id));
            }
            return false;
        }
        while self.by_id.len() >= self.limit {
            let Some((exp, old)) = self.by_expiry.pop_first() else {
                break;
            };
            self.by_id.remove(&old);
            self.evicted_total += 1;
            // The first eviction, then at 2, 4, 8, ...: a flood of deletes
            // does not become a flood of log lines (the metric counts all).
            if self.evicted_total.is_power_of_two() {
                tracing::warn!(id = %old, expires_ms = exp, evicted_total = self.evicted_total, "tombstone limit reached; evicted the one that ends first");
            }
        }
        self.by_expiry.insert((expires_ms, id.clone()));
        self.by_id.insert(id, (version, expires_ms));
        true
    }

    /// Forget tombstones whose end has passed. Returns how many went.
    pub fn gc(&mut self, now_ms: u64) -> usize {
        let mut n = 0;
        while let Some((exp, _)) = self.by_expiry.first() {
            if *exp > now_ms {
                break;
            }
            let (_, id) = self.by_expiry.pop_first().expect("first() was Some");
            self.by_id.remove(&id);
            n += 1;
        }
        n
    }

    pub fn get(&self, id: &SessionId) -> Option<Delete> {
        self.by_id.get(id).map(|(v, exp)| Delete {
            id: id.clone(),
            version: v.clone(),
            expires_ms: *exp,
            origin_ms: None,
            origin_us: None,
            ack: None,
        })
    }

    /// Tombstones with ids after `after`, in id order.
    pub fn after<'a>(
        &'a self,
        after: Option<&SessionId>,
    ) -> impl Iterator<Item = (&'a SessionId, &'a Version)> + 'a {
        let lower = match after {
            Some(a) => Bound::Excluded(a.clone()),
            None => Bound::Unbounded,
        };
        self.by_id
            .range((lower, Bound::Unbounded))
            .map(|(id, (v, _))| (id, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_ids::id;

    #[test]
    fn gc_forgets_only_expired_tombstones() {
        let mut t = Tombstones::new(10);
        assert!(t.insert(id('a'), Version::new(1, "n1"), 100));
        assert!(t.insert(id('b'), Version::new(2, "n1"), 200));
        assert!(!t.insert(id('a'), Version::new(3, "n2"), 150));
        assert_eq!(t.get(&id('a')).unwrap().version, Version::new(3, "n2"));
        assert_eq!(t.gc(149), 0);
        assert_eq!(t.gc(150), 1);
        assert!(!t.contains(&id('a')) && t.contains(&id('b')));
    }

    #[test]
    fn the_limit_evicts_the_tombstone_closest_to_its_end() {
        let mut t = Tombstones::new(2);
        t.insert(id('a'), Version::new(1, "n1"), 300);
        t.insert(id('b'), Version::new(1, "n1"), 100);
        t.insert(id('c'), Version::new(1, "n1"), 200);
        assert_eq!(t.len(), 2);
        assert!(!t.contains(&id('b')));
        assert_eq!(t.evicted_total(), 1);
        let ids: Vec<_> = t.after(Some(&id('a'))).map(|(i, _)| i.clone()).collect();
        assert_eq!(ids, vec![id('c')]);
    }
}
