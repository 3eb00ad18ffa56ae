//! Collecting the nodes' replication events during a run, for the
//! checker's pictures.
//!
//! Each node keeps its last replication events in a ring
//! (`GET /admin/v1/replication?since=SEQ` on its cluster listener, see
//! `crates/replication/src/events.rs`). The ring is small, so a run polls
//! every node while the users run (the load loop already wakes every
//! 200 ms) and keeps the fresh copies of data (`upsert` with a lag), the
//! only events the pictures draw. A node that does not answer (killed by a
//! fault, or a mode without replication) is skipped and asked again next
//! time; a node whose `boot_ms` changed restarted, and its numbering with
//! it. Bounded: at most [`MAX_EVENTS`] events are kept, and each poll waits
//! at most [`POLL_TIMEOUT`] per node.

use std::collections::BTreeMap;
use std::time::Duration;

use sessionlab_load::check::replication::ReplicationLog;
use sessionlab_wire::replication_log::ReplicationView;

use crate::api;
use crate::error::Result;
use crate::runfolder::ClusterState;

/// Events kept per run (about 150 bytes each).
pub const MAX_EVENTS: usize = 1_000_000;
/// How long one node's answer may take.
pub const POLL_TIMEOUT: Duration = Duration::from_millis(500);
/// The most events the nodes return per call (their ring's size).
const LIMIT: usize = 512;

/// The events of one run, gathered poll by poll.
pub struct Collector {
    http: reqwest::Client,
    /// Node id, cluster address.
    nodes: Vec<(String, String)>,
    /// Per node: its `boot_ms`, the last sequence number seen.
    seen: BTreeMap<String, (u64, u64)>,
    log: ReplicationLog,
    kept: usize,
}

impl Collector {
    pub fn new(state: &ClusterState, run_start_ms: u64) -> Result<Collector> {
        Ok(Collector {
            http: api::client(reqwest::Client::builder().timeout(POLL_TIMEOUT))?,
            nodes: state
                .nodes
                .iter()
                .map(|n| (n.id.clone(), format!("127.0.0.1:{}", n.cluster_port)))
                .collect(),
            seen: BTreeMap::new(),
            log: ReplicationLog {
                run_start_ms,
                nodes: BTreeMap::new(),
            },
            kept: 0,
        })
    }

    /// One node's events after `since`; `None` if it did not answer.
    async fn fetch(&self, addr: &str, since: u64) -> Option<ReplicationView> {
        let url = format!("http://{addr}/admin/v1/replication?since={since}&limit={LIMIT}");
        match self.http.get(url).send().await {
            Ok(r) if r.status().is_success() => r.json::<ReplicationView>().await.ok(),
            _ => None,
        }
    }

    /// Ask every node for its events since the last poll.
    pub async fn poll(&mut self) {
        for (id, addr) in &self.nodes {
            let (boot, mut since) = self.seen.get(id).copied().unwrap_or((0, 0));
            let Some(mut answer) = self.fetch(addr, since).await else {
                continue;
            };
            if boot != 0 && answer.boot_ms != boot && since != 0 {
                // The node restarted: its numbers started again at 1, so
                // everything it has is new.
                since = 0;
                self.seen.insert(id.clone(), (answer.boot_ms, since));
                let Some(fresh) = self.fetch(addr, since).await else {
                    continue;
                };
                answer = fresh;
            }
            let last = answer.events.iter().map(|e| e.seq).max().unwrap_or(since);
            self.seen
                .insert(id.clone(), (answer.boot_ms, last.max(since)));
            let keep = answer
                .events
                .into_iter()
                .filter(|e| e.kind == "upsert" && e.lag_ms.is_some());
            let list = self.log.nodes.entry(id.clone()).or_default();
            for e in keep {
                if self.kept == MAX_EVENTS {
                    return;
                }
                list.push(e.into());
                self.kept += 1;
            }
        }
    }

    pub fn finish(self) -> ReplicationLog {
        self.log
    }
}
