//! CPU time the cluster's processes spent, from `/proc/<pid>/stat`.
//!
//! A cost that grows with the cluster (every node applying every other
//! node's writes) shows as CPU as much as bytes. The figure is `utime +
//! stime` (fields 14 and 15 of `/proc/<pid>/stat`, in clock ticks): the
//! time the process ran in user and kernel mode since it started. A study
//! reads it before and after a measurement and keeps the difference; a
//! process that is gone by then is left out, never guessed.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::process::ProcRecord;
use crate::runfolder::ClusterState;

/// `utime + stime` of a `/proc/<pid>/stat` text, in clock ticks.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses; the
    // fields after the last ')' are plain, starting with field 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    utime.checked_add(stime)
}

fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions; it reads a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// The CPU time process `record` has used, if it is still the one recorded.
pub fn cpu_time(record: &ProcRecord) -> Option<Duration> {
    if !record.is_alive() {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{}/stat", record.pid)).ok()?;
    let ticks = parse_cpu_ticks(&text)?;
    Some(Duration::from_secs_f64(
        ticks as f64 / ticks_per_second() as f64,
    ))
}

/// CPU time of every running process of the cluster (`lb`, `node-1`, ...).
pub fn cluster_cpu(state: &ClusterState) -> BTreeMap<String, Duration> {
    state
        .processes()
        .into_iter()
        .filter_map(|(name, record)| cpu_time(&record).map(|t| (name, t)))
        .collect()
}

/// What each process spent between two readings (processes in both only).
pub fn spent(
    before: &BTreeMap<String, Duration>,
    after: &BTreeMap<String, Duration>,
) -> BTreeMap<String, Duration> {
    after
        .iter()
        .filter_map(|(name, a)| {
            before
                .get(name)
                .map(|b| (name.clone(), a.saturating_sub(*b)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_after_a_tricky_name() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime ...
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 1234 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("42 (x) S 1 2"), None);
        assert_eq!(parse_cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn this_process_spends_cpu_and_the_difference_keeps_common_names() {
        let me = ProcRecord::of(std::process::id());
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_time(&me).is_some());
        let before = BTreeMap::from([
            ("node-1".to_string(), Duration::from_millis(100)),
            ("node-2".to_string(), Duration::from_millis(10)),
        ]);
        let after = BTreeMap::from([
            ("node-1".to_string(), Duration::from_millis(350)),
            ("node-3".to_string(), Duration::from_millis(5)),
        ]);
        let d = spent(&before, &after);
        assert_eq!(d.len(), 1);
        assert_eq!(d["node-1"], Duration::from_millis(250));
    }
}
