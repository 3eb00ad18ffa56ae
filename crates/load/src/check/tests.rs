//! Hand-written histories: one per violation kind, and ones that must pass.

use super::*;
use crate::history::{OpKind, Operation};

/// A small history builder: times in µs, one user unless told.
struct H {
    ops: Vec<Operation>,
}

impl H {
    fn new() -> Self {
        H { ops: Vec::new() }
    }

    fn op(
        mut self,
        op: OpKind,
        (invoke_us, complete_us): (u64, u64),
        node: &str,
        counter: Option<i64>,
    ) -> Self {
        self.ops.push(Operation {
            user: 1,
            client: 0,
            op,
            invoke_us,
            complete_us,
            node: Some(node.into()),
            status: Some(200),
            counter,
            version: None,
            logged_in: Some(true),
            session: None,
        });
        self
    }

    fn login(self, t: (u64, u64)) -> Self {
        self.op(OpKind::Login, t, "node-1", None)
    }
    fn inc(self, t: (u64, u64), node: &str, v: i64) -> Self {
        self.op(OpKind::Increment, t, node, Some(v))
    }
    fn read(self, t: (u64, u64), node: &str, v: i64) -> Self {
        self.op(OpKind::Read, t, node, Some(v))
    }
    fn logout(self, t: (u64, u64), node: &str) -> Self {
        self.op(OpKind::Logout, t, node, None)
    }
    /// The last operation answered without the session.
    fn no_session(mut self) -> Self {
        let last = self.ops.last_mut().unwrap();
        last.logged_in = Some(false);
        last.counter = Some(0);
        self
    }

    fn check(mut self) -> CheckReport {
        crate::history::completion_order(&mut self.ops);
        check(&self.ops)
    }
}

fn only(report: &CheckReport, kind: Violation, n: u64) {
    for k in Violation::ALL {
        let want = if k == kind { n } else { 0 };
        assert_eq!(report.count(k), want, "{}:\n{}", k.name(), report.text());
    }
}

#[test]
fn a_final_read_of_a_counter_below_zero_loses_what_was_acknowledged() {
    let r = H::new()
        .login((0, 1))
        .inc((2, 3), "node-1", 1)
        .read((4, 5), "node-1", i64::MIN)
        .check();
    assert_eq!(r.lost_increments, 1);
}

#[test]
fn a_clean_sequential_history_passes() {
    let r = H::new()
        .login((0, 10))
        .inc((20, 30), "node-1", 1)
        .read((40, 50), "node-2", 1)
        .inc((60, 70), "node-3", 2)
        .read((80, 90), "node-1", 2)
        .check();
    assert!(r.passed(), "{}", r.text());
    assert_eq!((r.operations, r.users), (5, 1));
    assert!(r.examples.is_empty());
}

#[test]
fn a_stale_read_after_an_acknowledged_increment_breaks_read_your_writes() {
    let r = H::new()
        .login((0, 10))
        .inc((20, 30), "node-1", 1)
        .inc((40, 50), "node-1", 2)
        .read((60, 70), "node-2", 1)
        .inc((80, 90), "node-1", 3)
        .read((100, 110), "node-1", 3)
        .check();
    only(&r, Violation::ReadYourWrites, 1);
    let ex = &r.examples[0];
    assert_eq!(ex.kind, Violation::ReadYourWrites);
    assert_eq!(ex.ops.len(), 2);
    assert_eq!(ex.ops[0].counter, Some(2));
    assert_eq!(ex.ops[1].node.as_deref(), Some("node-2"));
    assert!(
        r.text()
            .contains("counterexample 1: read-your-writes (user 1)")
    );
}

#[test]
fn a_read_concurrent_with_the_increment_may_miss_it() {
    // The read began before the increment was acknowledged: concurrent,
    // so no guarantee orders them.
    let r = H::new()
        .login((0, 10))
        .inc((20, 60), "node-1", 1)
        .read((50, 70), "node-2", 0)
        .read((80, 90), "node-1", 1)
        .check();
    assert!(r.passed(), "{}", r.text());
}

#[test]
fn a_read_going_back_breaks_monotonic_reads_only() {
    // The first read saw 4 (the user's other tab wrote it, unrecorded
    // here); the later read shows 3.
    let r = H::new()
        .login((0, 10))
        .read((20, 30), "node-1", 4)
        .read((40, 50), "node-2", 3)
        .check();
    only(&r, Violation::MonotonicReads, 1);
    assert_eq!(r.examples[0].ops[0].counter, Some(4));
}

#[test]
fn an_increment_on_an_old_copy_breaks_monotonic_writes() {
    let r = H::new()
        .login((0, 10))
        .inc((20, 30), "node-1", 1)
        .inc((40, 50), "node-1", 2)
        .inc((60, 70), "node-2", 2)
        .check();
    // node-2 answered 2 again: applied without the second increment; the
    // final read is missing too, but there is no read, so no lost update.
    only(&r, Violation::MonotonicWrites, 1);
}

#[test]
fn an_increment_below_a_read_breaks_writes_follow_reads() {
    let r = H::new()
        .login((0, 10))
        .read((20, 30), "node-1", 5)
        .inc((40, 50), "node-2", 3)
        .check();
    assert_eq!(r.count(Violation::WritesFollowReads), 1, "{}", r.text());
    assert_eq!(r.count(Violation::ReadYourWrites), 0);
}

#[test]
fn two_tabs_answering_the_same_value_lose_an_update() {
    let mut h = H::new()
        .login((0, 10))
        .inc((20, 40), "node-1", 1)
        .inc((21, 41), "node-2", 1);
    h.ops[2].client = 1;
    let r = h.read((50, 60), "node-1", 1).check();
    only(&r, Violation::LostUpdate, 1);
    assert_eq!(r.lost_increments, 1);
    let ex = &r.examples[0];
    assert_eq!(ex.ops.len(), 3, "both increments and the final read");
    assert!(ex.why.contains("both increments answered 1"), "{}", ex.why);
}

#[test]
fn a_session_lost_mid_login_is_not_a_lost_update() {
    let r = H::new()
        .login((0, 10))
        .inc((20, 30), "node-1", 1)
        .read((40, 50), "node-1", 1)
        .inc((60, 70), "node-1", 2)
        .read((80, 90), "node-2", 0)
        .no_session()
        .login((100, 110))
        .read((120, 130), "node-2", 0)
        .check();
    assert!(r.passed(), "{}", r.text());
}

#[test]
fn a_new_login_starts_again_at_zero() {
    let r = H::new()
        .login((0, 10))
        .inc((20, 30), "node-1", 1)
        .inc((40, 50), "node-1", 2)
        .read((60, 70), "node-1", 2)
        .login((80, 90))
        .read((100, 110), "node-2", 0)
        .inc((120, 130), "node-2", 1)
        .read((140, 150), "node-2", 1)
        .check();
    assert!(r.passed(), "{}", r.text());
}

#[test]
fn a_logged_out_session_answering_is_a_resurrection() {
    let r = H::new()
        .login((0, 10))
        .inc((20, 30), "node-1", 1)
        .logout((40, 50), "node-2")
        .read((60, 70), "node-1", 1)
        .check();
    only(&r, Violation::Resurrection, 1);
    assert_eq!(r.examples[0].ops[0].op, OpKind::Logout);

    let r = H::new()
        .login((0, 10))
        .logout((40, 50), "node-2")
        .read((60, 70), "node-1", 0)
        .no_session()
        .check();
    assert!(r.passed(), "{}", r.text());
}

#[test]
fn failed_requests_acknowledge_nothing() {
    let mut h = H::new().login((0, 10)).inc((20, 30), "node-1", 1);
    h.ops[1].status = Some(503);
    let mut r = h.read((40, 50), "node-2", 0);
    r.ops.push(Operation {
        status: None,
        node: None,
        counter: None,
        logged_in: None,
        ..r.ops[2].clone()
    });
    assert!(r.check().passed());
}

#[test]
fn users_are_checked_apart_and_examples_are_capped() {
    let mut ops = Vec::new();
    for user in 0..10 {
        let mut h = H::new()
            .login((0, 10))
            .inc((20, 30), "node-1", 1)
            .read((40, 50), "node-2", 0);
        for op in &mut h.ops {
            op.user = user;
        }
        ops.extend(h.ops);
    }
    crate::history::completion_order(&mut ops);
    let r = check(&ops);
    assert_eq!(r.count(Violation::ReadYourWrites), 10);
    assert_eq!(r.users, 10);
    // Each final read also misses the increment: a lost update per user.
    assert_eq!(r.count(Violation::LostUpdate), 10);
    for kind in [Violation::ReadYourWrites, Violation::LostUpdate] {
        let shown = r.examples.iter().filter(|e| e.kind == kind).count();
        assert_eq!(shown, EXAMPLES_PER_KIND);
    }
}

#[test]
fn the_diagram_draws_a_lane_per_node_and_an_arrow_per_operation() {
    let r = H::new()
        .login((0, 10))
        .inc((20, 30), "node-1", 1)
        .read((40, 50), "node-<2>", 0)
        .check();
    let svg = diagram(&r.examples[0]);
    assert!(svg.starts_with("<svg"));
    assert!(svg.contains(">node-1</text>"));
    assert!(svg.contains("node-&lt;2&gt;"), "node names are escaped");
    assert_eq!(svg.matches("<polyline").count(), 2);
    assert!(svg.trim_end().ends_with("</svg>"));
}

#[test]
fn a_million_operations_are_checked_in_one_pass() {
    // 1,000 users x 1,000 operations, interleaved as a real run would be.
    let mut ops = Vec::with_capacity(1_000_000);
    for step in 0..1_000u64 {
        for user in 0..1_000u32 {
            let t = step * 10_000 + u64::from(user);
            let (op, counter) = match step {
                0 => (OpKind::Login, None),
                s if s % 2 == 1 => (OpKind::Increment, Some(s.div_ceil(2) as i64)),
                s => (OpKind::Read, Some((s / 2) as i64)),
            };
            ops.push(Operation {
                user,
                client: 0,
                op,
                invoke_us: t,
                complete_us: t + 5_000,
                node: Some("node-1".into()),
                status: Some(200),
                counter,
                version: None,
                logged_in: Some(true),
                session: None,
            });
        }
    }
    let r = check(&ops);
    assert_eq!(r.operations, 1_000_000);
    assert!(r.passed(), "{}", r.text());
}

/// A read-your-writes counterexample whose read carried the session prefix,
/// and the logs of a run that started at wall clock 1_000_000 ms.
fn stale_read_with_logs() -> (Counterexample, replication::ReplicationLog) {
    let mut h = H::new()
        .login((0, 10))
        .inc((2_000, 3_000), "node-1", 1)
        .read((4_000, 5_000), "node-2", 0);
    h.ops[2].session = Some("3fa9c1".into());
    let r = h.check();
    let ex = r.examples[0].clone();
    assert_eq!(ex.kind, Violation::ReadYourWrites);
    let upsert = |time_ms, session: &str, version: &str, lag_ms| replication::NodeEvent {
        time_ms,
        kind: "upsert".into(),
        peer: Some("node-1".into()),
        session: Some(session.into()),
        version: Some(version.into()),
        lag_ms: Some(lag_ms),
    };
    let log = replication::ReplicationLog {
        run_start_ms: 1_000_000,
        nodes: [
            (
                "node-2".to_owned(),
                vec![
                    // The increment's write (made at 1_000_002.5 ms, inside
                    // the increment's 2..3 ms), applied after the read.
                    upsert(1_000_007, "3fa9", "2@node-1", 4.5),
                    // Another session's write with the same version.
                    upsert(1_000_006, "77aa", "2@node-1", 3.5),
                    // The login's write, long before the increment.
                    upsert(1_000_001, "3fa9", "1@node-1", 0.5),
                ],
            ),
            (
                "node-3".to_owned(),
                vec![upsert(1_000_004, "3fa9", "2@node-1", 1.5)],
            ),
        ]
        .into_iter()
        .collect(),
    };
    (ex, log)
}

#[test]
fn the_replication_of_the_write_is_drawn_from_the_nodes_logs() {
    let (ex, log) = stale_read_with_logs();
    let arrows = replication::arrows(&ex, &log);
    let mut got: Vec<_> = arrows
        .iter()
        .map(|a| {
            (
                a.from.as_str(),
                a.from_us,
                a.to.as_str(),
                a.to_us,
                a.version.as_str(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("node-1", 2_500, "node-2", 7_000, "2@node-1"),
            ("node-1", 2_500, "node-3", 4_000, "2@node-1"),
        ]
    );
    let svg = diagram_with(&ex, &arrows);
    assert_eq!(svg.matches(r#"<line class="replication""#).count(), 2);
    assert!(svg.contains("copy of 2@node-1 from node-1 to node-2, 4.500 ms"));
    assert!(
        svg.contains(">node-3</text>"),
        "a receiving node gets a lane"
    );
    assert!(
        svg.contains("nodes' wall clocks"),
        "the legend names the clocks"
    );
    assert_eq!(
        svg.matches("<polyline").count(),
        2,
        "the requests as before"
    );
}

#[test]
fn without_events_or_session_the_diagram_is_as_before() {
    let (mut ex, log) = stale_read_with_logs();
    let plain = diagram(&ex);
    assert_eq!(plain, diagram_with(&ex, &[]));
    assert!(!plain.contains("replication"));
    assert!(!plain.contains(">node-3</text>"));
    // Versions are per session: without the prefix nothing is drawn.
    for op in &mut ex.ops {
        op.session = None;
    }
    assert!(replication::arrows(&ex, &log).is_empty());
    // A write too far from the increment is not taken for it.
    let (ex, mut log) = stale_read_with_logs();
    log.run_start_ms -= 100;
    assert!(replication::arrows(&ex, &log).is_empty());
}
