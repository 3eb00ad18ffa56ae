//! The simulated user's memory: what it was told, and so what it must see.
//!
//! The load tool does not guess whether a cluster lost something; each
//! simulated user keeps the facts the cluster itself acknowledged and checks
//! every later answer against them:
//!
//! - **Session lost**: the user logged in, and a later answer says "no user".
//!   From the user's side it was logged out (the session died with a node,
//!   or the node that answered never had it). The user logs in again and a
//!   new *epoch* starts; what it did in the old epoch went with the session.
//! - **Stale read**: a read shows a counter lower than a value the cluster
//!   already acknowledged, or lacks a cart item whose addition was
//!   acknowledged (or still shows one whose removal was). Typical of
//!   asynchronous replication read from another node before the copy arrived.
//! - **Lost update**: at the end, an acknowledged change is missing from the
//!   session: an increment not counted, a cart change undone. Typical of last
//!   writer wins over whole sessions: a write based on a stale copy
//!   overwrites a newer one.
//! - **Stale write**: an increment answered with a value not above the last
//!   acknowledged one: the node incremented an old copy. Reported on its
//!   own because it predicts lost updates before the final count.
//!
//! This module is pure bookkeeping (no I/O), unit-tested below; `user.rs`
//! feeds it the answers.

use std::collections::BTreeSet;

/// What a read of the session showed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    pub user: Option<String>,
    pub counter: i64,
    pub cart: BTreeSet<String>,
}

/// What a single answer revealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Findings {
    pub session_lost: bool,
    pub stale_read: bool,
    pub stale_write: bool,
}

/// One user's expectations within the current login (epoch).
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    logged_in: bool,
    /// The highest counter value the cluster told this user.
    last_told: i64,
    /// Increments acknowledged in this epoch.
    acked_increments: u64,
    /// Cart items whose addition (true) or removal (false) was acknowledged last.
    cart: std::collections::BTreeMap<String, bool>,
}

/// The end-of-run reckoning for one epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reckoning {
    pub acked_increments: u64,
    pub lost_increments: u64,
    pub lost_cart_changes: u64,
}

impl Expectations {
    pub fn logged_in(&self) -> bool {
        self.logged_in
    }

    /// A login was acknowledged: a new epoch with a fresh session.
    pub fn on_login(&mut self, counter: i64) {
        *self = Expectations {
            logged_in: true,
            last_told: counter,
            ..Default::default()
        };
    }

    /// The session was found gone: the epoch ends, nothing more is expected.
    fn lose(&mut self) {
        *self = Expectations::default();
    }

    /// A read answered with `seen`.
    pub fn on_read(&mut self, seen: &Observed) -> Findings {
        if !self.logged_in {
            return Findings::default();
        }
        if seen.user.is_none() {
            self.lose();
            return Findings {
                session_lost: true,
                ..Default::default()
            };
        }
        let cart_stale = self
            .cart
            .iter()
            .any(|(item, present)| seen.cart.contains(item) != *present);
        let stale = seen.counter < self.last_told || cart_stale;
        self.last_told = self.last_told.max(seen.counter);
        Findings {
            stale_read: stale,
            ..Default::default()
        }
    }

    /// An increment answered with the new value `value`, and whether the
    /// answer still carried the user (a write to a lost session creates an
    /// anonymous one).
    pub fn on_increment(&mut self, value: i64, user_present: bool) -> Findings {
        if !self.logged_in {
            return Findings::default();
        }
        if !user_present {
            self.lose();
            return Findings {
                session_lost: true,
                ..Default::default()
            };
        }
        let stale_write = value <= self.last_told;
        self.acked_increments += 1;
        self.last_told = self.last_told.max(value);
        Findings {
            stale_write,
            ..Default::default()
        }
    }

    /// A cart change was acknowledged.
    pub fn on_cart(&mut self, item: &str, present: bool, user_present: bool) -> Findings {
        if !self.logged_in {
            return Findings::default();
        }
        if !user_present {
            self.lose();
            return Findings {
                session_lost: true,
                ..Default::default()
            };
        }
        self.cart.insert(item.to_owned(), present);
        Findings::default()
    }

    /// Compare the final state with everything acknowledged in this epoch.
    /// `None` when the session is gone at the end (that is a lost session,
    /// counted as such, not as lost updates).
    pub fn reckon(&self, last: &Observed) -> Option<Reckoning> {
        if !self.logged_in || last.user.is_none() {
            return None;
        }
        let lost_increments = self
            .acked_increments
            .saturating_sub(last.counter.max(0) as u64);
        let lost_cart_changes = self
            .cart
            .iter()
            .filter(|(item, present)| last.cart.contains(*item) != **present)
            .count() as u64;
        Some(Reckoning {
            acked_increments: self.acked_increments,
            lost_increments,
            lost_cart_changes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(user: bool, counter: i64, cart: &[&str]) -> Observed {
        Observed {
            user: user.then(|| "alice".to_owned()),
            counter,
            cart: cart.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_consistent_cluster_shows_nothing() {
        let mut e = Expectations::default();
        e.on_login(0);
        assert_eq!(e.on_increment(1, true), Findings::default());
        assert_eq!(e.on_increment(2, true), Findings::default());
        e.on_cart("apple", true, true);
        assert_eq!(e.on_read(&seen(true, 2, &["apple"])), Findings::default());
        let r = e.reckon(&seen(true, 2, &["apple"])).unwrap();
        assert_eq!(
            (r.acked_increments, r.lost_increments, r.lost_cart_changes),
            (2, 0, 0)
        );
    }

    #[test]
    fn reading_an_old_copy_is_a_stale_read() {
        let mut e = Expectations::default();
        e.on_login(0);
        e.on_increment(1, true);
        e.on_increment(2, true);
        assert!(e.on_read(&seen(true, 1, &[])).stale_read);
        e.on_cart("pear", true, true);
        assert!(
            e.on_read(&seen(true, 2, &[])).stale_read,
            "acked cart item missing"
        );
        assert!(!e.on_read(&seen(true, 2, &["pear"])).stale_read);
    }

    #[test]
    fn incrementing_an_old_copy_loses_an_update() {
        let mut e = Expectations::default();
        e.on_login(0);
        e.on_increment(1, true); // node-1
        let f = e.on_increment(1, true); // node-2 had not seen it: 0 + 1
        assert!(f.stale_write);
        let r = e.reckon(&seen(true, 1, &[])).unwrap();
        assert_eq!(r.lost_increments, 1, "two acknowledged, one counted");
    }

    #[test]
    fn a_missing_user_is_a_lost_session_and_starts_over() {
        let mut e = Expectations::default();
        e.on_login(0);
        e.on_increment(1, true);
        assert!(e.on_read(&seen(false, 0, &[])).session_lost);
        assert!(!e.logged_in());
        assert_eq!(e.reckon(&seen(false, 0, &[])), None);
        // Further answers are not judged until the next login.
        assert_eq!(e.on_read(&seen(false, 0, &[])), Findings::default());
        e.on_login(0);
        assert!(e.on_increment(1, true) == Findings::default());
    }

    #[test]
    fn an_undone_removal_counts_as_a_lost_cart_change() {
        let mut e = Expectations::default();
        e.on_login(0);
        e.on_cart("fig", true, true);
        e.on_cart("fig", false, true);
        let r = e.reckon(&seen(true, 0, &["fig"])).unwrap();
        assert_eq!(r.lost_cart_changes, 1);
    }
}
