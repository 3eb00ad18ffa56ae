//! What a store failover cost the users of one run: how long writes failed,
//! how many sessions and acknowledged writes were lost.
//!
//! `compare --scenario redis-failover` kills the Redis primary halfway
//! through a run; this module reads the run's history (every operation, on
//! the load tool's clock) and the fault's mark and gives three figures:
//!
//! | figure | how it is measured |
//! |---|---|
//! | writes back after | from the kill's mark to the completion of the first write (increment, cart change) that succeeded after the last write that failed with a 5xx or no answer; 0 when no write failed |
//! | failed writes | writes invoked after the mark that failed so (the users were told) |
//! | sessions lost, acknowledged writes lost | the load tool's own counts ([`LoadReport::sessions_lost`], [`LoadReport::lost_updates`] of [`LoadReport::acked_increments`] and cart changes), over the whole run |
//!
//! "After the last failed write" rather than "the first success after the
//! kill": a write already on its way to the old primary may still succeed
//! after the mark, and that is not the store being back. A late failure
//! far from the failover (a timeout of another cause) would stretch the
//! figure; the run's errors by kind in the report say whether there was
//! one.

use serde::Serialize;
use sessionlab_load::LoadReport;
use sessionlab_load::history::{OpKind, Operation};

/// The failover figures of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailoverFigures {
    pub label: String,
    /// The fault, as marked (`kill redis-primary`).
    pub fault: String,
    pub fault_at_s: f64,
    /// `None` when no write succeeded after the last failed one.
    pub writes_back_after_s: Option<f64>,
    pub failed_writes: u64,
    pub sessions_lost: u64,
    pub acked_writes_lost: u64,
    pub acked_increments: u64,
}

fn is_write(op: &Operation) -> bool {
    matches!(
        op.op,
        OpKind::Increment | OpKind::CartPut | OpKind::CartDelete
    )
}

/// Failed so that the user was told: a 5xx, or no answer at all.
fn failed(op: &Operation) -> bool {
    op.status.is_none_or(|s| s >= 500)
}

/// The figures of `report` around its first mark whose label starts with
/// `fault` (e.g. `kill redis-primary`); `None` when there is no such mark.
pub fn figures(report: &LoadReport, fault: &str) -> Option<FailoverFigures> {
    let mark = report.marks.iter().find(|m| m.label.starts_with(fault))?;
    let at_us = (mark.at_s * 1e6) as u64;
    let (back, failures) = write_outage(&report.history, at_us);
    Some(FailoverFigures {
        label: report.label.clone(),
        fault: mark.label.clone(),
        fault_at_s: mark.at_s,
        writes_back_after_s: back.map(|us| us as f64 / 1e6),
        failed_writes: failures,
        sessions_lost: report.sessions_lost,
        acked_writes_lost: report.lost_updates,
        acked_increments: report.acked_increments,
    })
}

/// From `at_us`: µs until the first write success after the last failed
/// write (0 when none failed), and how many writes invoked after `at_us`
/// failed.
pub fn write_outage(history: &[Operation], at_us: u64) -> (Option<u64>, u64) {
    let after = || {
        history
            .iter()
            .filter(|o| is_write(o) && o.invoke_us >= at_us)
    };
    let failures = after().filter(|o| failed(o)).count() as u64;
    let last_failure = after().filter(|o| failed(o)).map(|o| o.complete_us).max();
    let back = match last_failure {
        None => Some(0),
        Some(last) => after()
            .filter(|o| o.ok() && o.invoke_us >= last)
            .map(|o| o.complete_us.saturating_sub(at_us))
            .min(),
    };
    (back, failures)
}

/// The side-by-side table (markdown).
pub fn table(rows: &[FailoverFigures]) -> String {
    let mut s = String::from(
        "| mode | fault at (s) | writes back after (s) | failed writes | sessions lost | \
         acknowledged writes lost (of acknowledged increments) |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {:.1} | {} | {} | {} | {} ({}) |\n",
            r.label,
            r.fault_at_s,
            r.writes_back_after_s
                .map_or("not back".to_string(), |b| format!("{b:.2}")),
            r.failed_writes,
            r.sessions_lost,
            r.acked_writes_lost,
            r.acked_increments,
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(op: OpKind, invoke_ms: u64, complete_ms: u64, status: Option<u16>) -> Operation {
        Operation {
            user: 0,
            client: 0,
            op,
            invoke_us: invoke_ms * 1000,
            complete_us: complete_ms * 1000,
            node: None,
            status,
            counter: None,
            version: None,
            logged_in: Some(true),
            session: None,
        }
    }

    #[test]
    fn the_outage_ends_with_the_first_success_after_the_last_failure() {
        let h = vec![
            op(OpKind::Increment, 900, 950, Some(200)),
            // In flight at the kill, still answered by the old primary.
            op(OpKind::Increment, 990, 1010, Some(200)),
            op(OpKind::Increment, 1100, 1200, Some(503)),
            op(OpKind::CartPut, 2000, 2900, None),
            // A read that succeeds says nothing about writes.
            op(OpKind::Read, 2950, 2960, Some(200)),
            op(OpKind::Increment, 3000, 3050, Some(200)),
            op(OpKind::Increment, 3100, 3150, Some(200)),
        ];
        let (back, failures) = write_outage(&h, 1_000_000);
        assert_eq!(back, Some(2_050_000), "3.05 s - 1.0 s");
        assert_eq!(failures, 2);
        let (back, failures) = write_outage(&h[..2], 1_000_000);
        assert_eq!((back, failures), (Some(0), 0), "nothing failed");
        let (back, _) = write_outage(&h[..4], 1_000_000);
        assert_eq!(back, None, "never back");
    }

    #[test]
    fn the_table_has_a_row_per_run() {
        let row = FailoverFigures {
            label: "redis-ha+wait".into(),
            fault: "kill redis-primary".into(),
            fault_at_s: 10.0,
            writes_back_after_s: Some(2.5),
            failed_writes: 40,
            sessions_lost: 1,
            acked_writes_lost: 3,
            acked_increments: 900,
        };
        let t = table(&[row]);
        assert!(
            t.contains("| redis-ha+wait | 10.0 | 2.50 | 40 | 1 | 3 (900) |"),
            "{t}"
        );
    }
}
