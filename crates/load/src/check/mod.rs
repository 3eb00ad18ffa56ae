//! The checker: which session guarantees a history keeps, and the
//! operations that break the others.
//!
//! Terry et al. (1994, "Session guarantees for weakly consistent
//! replicated data") name what one client may expect of a replicated
//! store across its own requests. The lab's counter makes each of them a
//! comparison of two numbers, because an increment answers the value it
//! made and a read answers the value it saw:
//!
//! | guarantee | broken when | witnesses |
//! |---|---|---|
//! | read-your-writes | a read shows a counter below an increment the user had acknowledged before the read began | increment, read |
//! | monotonic reads | a read shows less than a read that completed before it began | read, read |
//! | monotonic writes | an increment answers a value not above one acknowledged before it began (it was applied to a copy without the earlier write) | increment, increment |
//! | writes follow reads | an increment answers a value not above a read that completed before it began | read, increment |
//! | lost update | the final read of a login shows fewer increments than were acknowledged before it | increments, read |
//! | resurrection | after an acknowledged logout, the old session answers as logged in | logout, request |
//!
//! "Before" is real time on the load tool's one clock: A *precedes* B when
//! A completed before B was invoked. Operations that overlap are
//! concurrent, and no guarantee orders them, which is why the comparisons
//! use completion and invocation times, never the order of the lines.
//!
//! The guarantees hold within one login (an *epoch*): a new login starts a
//! new session whose counter starts again at 0. A session lost mid-epoch
//! (an answer without the user) is what the load report counts as a lost
//! session; the checker does not count it again as a lost update.
//!
//! Cost: one pass to group by user, then per operation a binary search
//! over the epoch's earlier operations, so a million-operation history
//! takes well under a second. Each kind keeps its first
//! [`EXAMPLES_PER_KIND`] counterexamples, as text and as a space-time
//! picture ([`diagram`]), with the replication of the writes when the
//! nodes' event logs of the run are at hand ([`replication`]).

mod diagram;
pub mod replication;
mod sweep;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::history::Operation;

pub use diagram::{diagram, diagram_with};

/// How many counterexamples of each kind a report keeps.
pub const EXAMPLES_PER_KIND: usize = 3;

/// A kind of violation; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Violation {
    ReadYourWrites,
    MonotonicReads,
    MonotonicWrites,
    WritesFollowReads,
    LostUpdate,
    Resurrection,
}

impl Violation {
    pub const ALL: [Violation; 6] = [
        Violation::ReadYourWrites,
        Violation::MonotonicReads,
        Violation::MonotonicWrites,
        Violation::WritesFollowReads,
        Violation::LostUpdate,
        Violation::Resurrection,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Violation::ReadYourWrites => "read-your-writes",
            Violation::MonotonicReads => "monotonic reads",
            Violation::MonotonicWrites => "monotonic writes",
            Violation::WritesFollowReads => "writes follow reads",
            Violation::LostUpdate => "lost update",
            Violation::Resurrection => "resurrection",
        }
    }

    /// A short file-name-friendly name (`read-your-writes`, `lost-update`).
    pub fn slug(self) -> &'static str {
        match self {
            Violation::ReadYourWrites => "read-your-writes",
            Violation::MonotonicReads => "monotonic-reads",
            Violation::MonotonicWrites => "monotonic-writes",
            Violation::WritesFollowReads => "writes-follow-reads",
            Violation::LostUpdate => "lost-update",
            Violation::Resurrection => "resurrection",
        }
    }
}

/// The operations that show one violation, in the order they happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counterexample {
    pub kind: Violation,
    pub user: u32,
    pub ops: Vec<Operation>,
    /// One sentence: what the operations show.
    pub why: String,
}

/// What a history keeps and breaks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    pub operations: u64,
    pub users: u64,
    /// Violations of each kind (every kind present, 0 included).
    pub violations: BTreeMap<Violation, u64>,
    /// Acknowledged increments missing from the final reads (a lost-update
    /// violation may miss several).
    pub lost_increments: u64,
    pub examples: Vec<Counterexample>,
    /// Clients (a user's tabs) whose history reached the run's share of
    /// [`crate::history::MAX_OPERATIONS`] and kept only its first
    /// operations: what came after was not checked.
    #[serde(default)]
    pub cut_histories: u64,
}

impl CheckReport {
    pub fn count(&self, kind: Violation) -> u64 {
        self.violations.get(&kind).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.violations.values().sum()
    }

    /// The history keeps every guarantee.
    pub fn passed(&self) -> bool {
        self.total() == 0
    }

    /// What a cut history leaves unchecked, when one was cut.
    pub fn cut_note(&self) -> Option<String> {
        (self.cut_histories > 0).then(|| {
            format!(
                "the history of {} clients was cut at the run's limit of {} operations: \
                 only their first operations were checked",
                self.cut_histories,
                crate::history::MAX_OPERATIONS
            )
        })
    }

    /// The report as text: a line per guarantee, then the counterexamples.
    pub fn text(&self) -> String {
        let mut s = format!(
            "checked {} operations of {} users: {}\n",
            self.operations,
            self.users,
            if self.passed() {
                "every guarantee holds".to_owned()
            } else {
                format!("{} violations", self.total())
            }
        );
        for kind in Violation::ALL {
            let n = self.count(kind);
            let mark = if n == 0 { "ok" } else { "VIOLATED" };
            let _ = writeln!(s, "  {:<20} {:>8}  {mark}", kind.name(), n);
        }
        if self.lost_increments > 0 {
            let _ = writeln!(
                s,
                "  ({} acknowledged increments missing from final reads)",
                self.lost_increments
            );
        }
        if let Some(cut) = self.cut_note() {
            let _ = writeln!(s, "  ({cut})");
        }
        for (i, ex) in self.examples.iter().enumerate() {
            let _ = write!(s, "\ncounterexample {}: {}", i + 1, ex.text());
        }
        s
    }
}

impl Counterexample {
    /// The operations, one line each, with node, times and values.
    pub fn text(&self) -> String {
        let mut s = format!("{} (user {})\n", self.kind.name(), self.user);
        for op in &self.ops {
            let _ = writeln!(
                s,
                "  {:>12} .. {:<12} client {} {:<11} -> {:<10} {:>4}  {}{}",
                seconds(op.invoke_us),
                seconds(op.complete_us),
                op.client,
                op.op.name(),
                op.node.as_deref().unwrap_or("(none)"),
                op.status.map_or("-".to_owned(), |s| s.to_string()),
                match op.counter {
                    Some(c) => format!("counter {c}"),
                    None => String::new(),
                },
                match op.logged_in {
                    Some(false) => " (no session)",
                    _ => "",
                },
            );
        }
        let _ = writeln!(s, "  {}", self.why);
        s
    }
}

/// `1.234567 s` from microseconds.
pub(crate) fn seconds(us: u64) -> String {
    format!("{}.{:06} s", us / 1_000_000, us % 1_000_000)
}

/// Check a history (operations in completion order, as
/// [`crate::history::read`] returns them and a run records them).
pub fn check(ops: &[Operation]) -> CheckReport {
    let mut by_user: BTreeMap<u32, Vec<&Operation>> = BTreeMap::new();
    for op in ops {
        by_user.entry(op.user).or_default().push(op);
    }
    let mut report = CheckReport {
        operations: ops.len() as u64,
        users: by_user.len() as u64,
        violations: Violation::ALL.iter().map(|k| (*k, 0)).collect(),
        ..Default::default()
    };
    let mut found = sweep::Found::default();
    for (user, ops) in &by_user {
        sweep::user(*user, ops, &mut found);
    }
    for (kind, n) in found.counts {
        report.violations.insert(kind, n);
    }
    report.lost_increments = found.lost_increments;
    report.examples = found.examples;
    report.examples.sort_by_key(|e| e.kind);
    report
}

#[cfg(test)]
mod tests;
