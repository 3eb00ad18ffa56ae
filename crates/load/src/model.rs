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
//!   acknowledged one (the node incremented an old copy), or a cart change
//!   whose answer shows the cart without an earlier acknowledged change.
//!   Reported on its own because it predicts lost updates before the final
//!   count.
//!
//! Stale reads and stale writes count each acknowledged change once: the
//! first read (or write) that shows it missing counts, later ones that
//! still miss the same change do not. A change lost for good (a cart item
//! acknowledged by a node that died before its copy went out) would
//! otherwise be counted again at every read until the end, and the figure
//! would say more about how often the user reads than about the cluster;
//! it is counted once as a stale read, and at the end as a lost update.
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

impl Findings {
    /// The answer showed the session gone, and nothing else.
    pub fn session_lost() -> Findings {
        Findings {
            session_lost: true,
            ..Default::default()
        }
    }
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
    /// What reads already reported missing.
    read_reported: Reported,
    /// What writes already reported missing.
    write_reported: Reported,
}

/// Acknowledged changes already reported missing (see the module docs).
#[derive(Debug, Clone, Default)]
struct Reported {
    /// Counter values up to this one were reported missing.
    counter_upto: i64,
    /// Items reported wrong since their last acknowledged change.
    items: BTreeSet<String>,
}

impl Expectations {
    /// Whether an answer showing the counter at `counter` (the copy's value
    /// before any change this request made) and the cart `cart` reveals an
    /// acknowledged change not reported missing before. `except` is an item
    /// the request itself changed.
    fn newly_missing(
        &mut self,
        by_write: bool,
        counter: Option<i64>,
        cart: Option<&BTreeSet<String>>,
        except: Option<&str>,
    ) -> bool {
        let reported = if by_write {
            &mut self.write_reported
        } else {
            &mut self.read_reported
        };
        let mut new = false;
        if counter.is_some_and(|c| c < self.last_told) && self.last_told > reported.counter_upto {
            reported.counter_upto = self.last_told;
            new = true;
        }
        if let Some(cart) = cart {
            for (item, want) in &self.cart {
                if except == Some(item.as_str()) {
                    continue;
                }
                if cart.contains(item) != *want {
                    new |= reported.items.insert(item.clone());
                } else {
                    reported.items.remove(item);
                }
            }
        }
        new
    }
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

    /// The user logged out: the epoch ends on purpose; what it did went
    /// with the session, and nothing of it is reckoned at the end.
    pub fn on_logout(&mut self) {
        *self = Expectations::default();
    }

    /// The session was found gone: the epoch ends, nothing more is expected.
    fn lose(&mut self) {
        *self = Expectations::default();
    }

    /// What an answer says before its contents are read: nothing if this
    /// user is not logged in (there is nothing to expect), a lost session if
    /// the answer no longer carries the user; `None` if the contents count.
    fn before_the_answer(&mut self, user_present: bool) -> Option<Findings> {
        if !self.logged_in {
            return Some(Findings::default());
        }
        if !user_present {
            self.lose();
            return Some(Findings::session_lost());
        }
        None
    }

    /// A read answered with `seen`.
    pub fn on_read(&mut self, seen: &Observed) -> Findings {
        if let Some(nothing_more) = self.before_the_answer(seen.user.is_some()) {
            return nothing_more;
        }
        let stale = self.newly_missing(false, Some(seen.counter), Some(&seen.cart), None);
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
        if let Some(nothing_more) = self.before_the_answer(user_present) {
            return nothing_more;
        }
        let stale_write = self.newly_missing(true, Some(value.saturating_sub(1)), None, None);
        self.acked_increments += 1;
        self.last_told = self.last_told.max(value);
        Findings {
            stale_write,
            ..Default::default()
        }
    }

    /// A cart change was acknowledged; `reply` is the cart the answer
    /// showed after the change, when it showed one. A reply that disagrees
    /// with an earlier acknowledged change (an item back, or missing) means
    /// the change was applied to an old copy: a stale write, as for
    /// increments.
    pub fn on_cart(
        &mut self,
        item: &str,
        present: bool,
        user_present: bool,
        reply: Option<&BTreeSet<String>>,
    ) -> Findings {
        if let Some(nothing_more) = self.before_the_answer(user_present) {
            return nothing_more;
        }
        let stale_write = self.newly_missing(true, None, reply, Some(item));
        self.cart.insert(item.to_owned(), present);
        self.read_reported.items.remove(item);
        self.write_reported.items.remove(item);
        Findings {
            stale_write,
            ..Default::default()
        }
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

    fn cart(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

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
        assert_eq!(
            e.on_cart("apple", true, true, Some(&cart(&["apple"]))),
            Findings::default()
        );
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
        e.on_cart("pear", true, true, None);
        assert!(
            e.on_read(&seen(true, 2, &[])).stale_read,
            "acked cart item missing"
        );
        assert!(!e.on_read(&seen(true, 2, &["pear"])).stale_read);
    }

    #[test]
    fn a_counter_at_the_edge_of_i64_is_an_answer_not_a_panic() {
        let mut e = Expectations::default();
        e.on_login(0);
        e.on_increment(1, true);
        let f = e.on_increment(i64::MIN, true);
        assert!(f.stale_write);
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
    fn a_cart_reply_from_an_old_copy_is_a_stale_write() {
        let mut e = Expectations::default();
        e.on_login(0);
        e.on_cart("fig", true, true, Some(&cart(&["fig"])));
        // The next change lands on a node whose copy has no fig yet.
        let f = e.on_cart("kiwi", true, true, Some(&cart(&["kiwi"])));
        assert!(f.stale_write);
        // A removal whose reply still shows the other items is fine.
        let f = e.on_cart("kiwi", false, true, Some(&cart(&["fig"])));
        assert!(!f.stale_write);
    }

    #[test]
    fn a_change_lost_for_good_is_one_stale_read_and_one_lost_update() {
        let mut e = Expectations::default();
        e.on_login(0);
        e.on_cart("fig", true, true, Some(&cart(&["fig"])));
        e.on_increment(1, true);
        // The node that acknowledged both died before its copy went out.
        assert!(e.on_read(&seen(true, 0, &[])).stale_read);
        assert!(!e.on_read(&seen(true, 0, &[])).stale_read, "reported once");
        // The next increment lands on the old copy: one stale write...
        assert!(e.on_increment(1, true).stale_write);
        // ...and the one after it reveals nothing new.
        assert!(!e.on_increment(2, true).stale_write);
        // A change acknowledged later and then missed is a new stale read.
        assert!(e.on_read(&seen(true, 1, &[])).stale_read);
        let r = e.reckon(&seen(true, 2, &[])).unwrap();
        assert_eq!((r.lost_increments, r.lost_cart_changes), (1, 1));
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
        e.on_cart("fig", true, true, None);
        e.on_cart("fig", false, true, None);
        let r = e.reckon(&seen(true, 0, &["fig"])).unwrap();
        assert_eq!(r.lost_cart_changes, 1);
    }
}
