//! The per-user pass of the checker (see the [module docs](super)).
//!
//! Within an epoch the operations arrive in completion order, so every
//! operation that *precedes* the current one (completed before it was
//! invoked) has already been seen. Acknowledged increments and session
//! reads are kept in completion order with a running maximum; "the
//! highest value acknowledged before this operation began" is then one
//! binary search on completion time.

use std::collections::BTreeMap;

use super::{Counterexample, EXAMPLES_PER_KIND, Violation};
use crate::history::{OpKind, Operation};

/// What the pass found over every user.
#[derive(Default)]
pub(super) struct Found {
    pub counts: BTreeMap<Violation, u64>,
    pub lost_increments: u64,
    pub examples: Vec<Counterexample>,
    shown: BTreeMap<Violation, usize>,
}

impl Found {
    fn add(&mut self, kind: Violation, user: u32, ops: Vec<&Operation>, why: String) {
        *self.counts.entry(kind).or_default() += 1;
        let shown = self.shown.entry(kind).or_default();
        if *shown < EXAMPLES_PER_KIND {
            *shown += 1;
            self.examples.push(Counterexample {
                kind,
                user,
                ops: ops.into_iter().cloned().collect(),
                why,
            });
        }
    }
}

/// Values in completion order with the running maximum: `best[i]` is the
/// index (into `entries`) of the highest value among `entries[..=i]`.
struct Ledger<'a> {
    entries: Vec<(&'a Operation, i64)>,
    best: Vec<usize>,
}

impl<'a> Ledger<'a> {
    fn new() -> Self {
        Ledger {
            entries: Vec::new(),
            best: Vec::new(),
        }
    }

    fn push(&mut self, op: &'a Operation, value: i64) {
        let best = match self.best.last() {
            Some(&b) if self.entries[b].1 >= value => b,
            _ => self.entries.len(),
        };
        self.entries.push((op, value));
        self.best.push(best);
    }

    /// How many entries completed before `t`.
    fn before(&self, t: u64) -> usize {
        self.entries.partition_point(|(op, _)| op.complete_us < t)
    }

    /// The highest value among the entries that completed before `t`.
    fn max_before(&self, t: u64) -> Option<(&'a Operation, i64)> {
        let n = self.before(t);
        (n > 0).then(|| self.entries[self.best[n - 1]])
    }

    /// One session guarantee between `op` and the highest entry that
    /// completed before `op` began: when `broken(that value)`, `kind` is
    /// recorded with the two operations as witnesses and `why(that value)`.
    fn check(
        &self,
        op: &'a Operation,
        kind: Violation,
        user: u32,
        found: &mut Found,
        broken: impl FnOnce(i64) -> bool,
        why: impl FnOnce(i64) -> String,
    ) {
        if let Some((earlier, v)) = self.max_before(op.invoke_us) {
            if broken(v) {
                found.add(kind, user, vec![earlier, op], why(v));
            }
        }
    }
}

/// One login of one user: the operations from a successful login up to
/// the next one.
struct Epoch<'a> {
    increments: Ledger<'a>,
    reads: Ledger<'a>,
    logout: Option<&'a Operation>,
    /// The last read that showed the session, and whether a later answer
    /// showed it gone (a lost session, not a lost update).
    last_read: Option<&'a Operation>,
    lost_after_last_read: bool,
}

impl<'a> Epoch<'a> {
    fn new() -> Self {
        Epoch {
            increments: Ledger::new(),
            reads: Ledger::new(),
            logout: None,
            last_read: None,
            lost_after_last_read: false,
        }
    }

    fn see(&mut self, user: u32, op: &'a Operation, found: &mut Found) {
        if let Some(logout) = self.logout {
            if op.ok() && op.logged_in == Some(true) && op.invoke_us > logout.complete_us {
                found.add(
                    Violation::Resurrection,
                    user,
                    vec![logout, op],
                    format!(
                        "the session was logged out at {}, yet {} answered this {} as logged in",
                        super::seconds(logout.complete_us),
                        op.node.as_deref().unwrap_or("a node"),
                        op.op.name()
                    ),
                );
            }
            return;
        }
        if let Some(c) = op.session_read() {
            self.increments.check(
                op,
                Violation::ReadYourWrites,
                user,
                found,
                |v| c < v,
                |v| {
                    format!(
                        "the increment to {v} was acknowledged before the read began, \
                         yet the read shows {c}"
                    )
                },
            );
            self.reads.check(
                op,
                Violation::MonotonicReads,
                user,
                found,
                |v| c < v,
                |v| format!("an earlier read showed {v}, this later one shows {c}"),
            );
            self.reads.push(op, c);
            self.last_read = Some(op);
            self.lost_after_last_read = false;
        } else if let Some(v) = op.acked_increment() {
            self.increments.check(
                op,
                Violation::MonotonicWrites,
                user,
                found,
                |before| v <= before,
                |before| {
                    format!(
                        "the increment to {before} was acknowledged before this one began, \
                         yet this one answers {v}: it was applied to a copy without the first"
                    )
                },
            );
            self.reads.check(
                op,
                Violation::WritesFollowReads,
                user,
                found,
                |seen| v <= seen,
                |seen| {
                    format!(
                        "a read showed {seen} before this increment began, \
                         yet the increment answers {v}"
                    )
                },
            );
            self.increments.push(op, v);
        } else if op.op == OpKind::Logout && op.ok() {
            self.logout = Some(op);
        } else if op.ok() && op.logged_in == Some(false) {
            self.lost_after_last_read = true;
        }
    }

    /// At the end of the epoch: acknowledged increments missing from the
    /// last read.
    fn finish(self, user: u32, found: &mut Found) {
        let Some(last) = self.last_read.filter(|_| !self.lost_after_last_read) else {
            return;
        };
        let Some(seen) = last.session_read() else {
            return;
        };
        let n = self.increments.before(last.invoke_us);
        // (A counter below 0 is a server's nonsense: it shows none.)
        let missing = n as i64 - seen.max(0);
        if missing <= 0 {
            return;
        }
        found.lost_increments += missing as u64;
        let acked = &self.increments.entries[..n];
        // The witnesses: two acknowledged increments that answered the same
        // value (each overwrote the other), or else the highest one.
        let mut by_value: BTreeMap<i64, &Operation> = BTreeMap::new();
        let mut pair = None;
        for (op, v) in acked {
            if let Some(first) = by_value.insert(*v, op) {
                pair = Some((first, *op, *v));
                break;
            }
        }
        let (ops, why) = match pair {
            Some((a, b, v)) => (
                vec![a, b, last],
                format!(
                    "both increments answered {v} (one was applied over a copy without the other); \
                     {n} increments were acknowledged, the final read shows {seen}"
                ),
            ),
            None => {
                let (top, _) = self.increments.entries[self.increments.best[n - 1]];
                (
                    vec![top, last],
                    format!(
                        "{n} increments were acknowledged before the final read, which shows {seen}"
                    ),
                )
            }
        };
        found.add(Violation::LostUpdate, user, ops, why);
    }
}

/// Check one user's operations (completion order).
pub(super) fn user(user: u32, ops: &[&Operation], found: &mut Found) {
    let mut epoch: Option<Epoch> = None;
    for op in ops {
        if op.op == OpKind::Login {
            if let Some(e) = epoch.take() {
                e.finish(user, found);
            }
            if op.ok() {
                epoch = Some(Epoch::new());
            }
            continue;
        }
        if let Some(e) = epoch.as_mut() {
            e.see(user, op, found);
        }
    }
    if let Some(e) = epoch {
        e.finish(user, found);
    }
}
