//! What the cluster's processes hold in memory, from `/proc`.
//!
//! Keeping sessions on the servers costs memory, and keeping a copy of
//! every session on every node costs it N times; the comparison shows it
//! next to the other costs. The figure is the resident set size (`VmRSS`
//! in `/proc/<pid>/status`): the pages the process really occupies, shared
//! libraries included, which is what a machine's operator sees in `top`.

use std::collections::BTreeMap;

use crate::process::ProcRecord;
use crate::runfolder::ClusterState;

/// The resident memory of a process that is still the one recorded.
pub fn rss_bytes(record: &ProcRecord) -> Option<u64> {
    if !record.is_alive() {
        return None;
    }
    sessionlab_wire::rss::resident_bytes_of(record.pid)
}

/// Resident memory of every running process of the cluster (`lb`,
/// `node-1`, ...); stopped or killed ones are left out.
pub fn cluster_rss(state: &ClusterState) -> BTreeMap<String, u64> {
    state
        .processes()
        .into_iter()
        .filter_map(|(name, record)| rss_bytes(&record).map(|b| (name, b)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Parsing the VmRSS line is wire's (`sessionlab_wire::rss`), tested there.

    #[test]
    fn this_process_has_resident_memory() {
        let me = ProcRecord::of(std::process::id());
        let rss = rss_bytes(&me).expect("our own /proc status");
        assert!(rss > 1024 * 1024, "{rss}");
    }
}
