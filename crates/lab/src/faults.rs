//! `partition` and `heal`: cutting the replication network between nodes.
//!
//! A partition here is a cut of the *replication* network only: each node
//! is told, through its signed fault endpoint (`POST /admin/v1/faults` on
//! the cluster listener), to drop replication traffic to and from some
//! peers. The LB still reaches every node, so users keep being served on
//! both sides of the cut, and that is the point: it is the situation in
//! which copies of one session diverge (two writes on two sides, last
//! writer wins after the heal), which a dead node can't show.
//!
//! The fault endpoint *replaces* a node's fault set, so the lab keeps the
//! set of cut links (unordered node pairs) in the run folder and always
//! sends each affected node its complete drop list. That makes successive
//! partitions add up (`partition node-1`, then `partition node-2`), and lets
//! a restarted node, which forgets its faults, be put back behind its cuts.
//! `heal` clears every node's fault set; anti-entropy then converges the
//! copies without new writes.
//!
//! A *delay* (`sessionlab load --fault delay:50ms@0s`) slows every
//! replication link instead of cutting some: each node waits that long
//! before sending a batch and again before applying one, so a write
//! reaches a peer about twice the delay later. It makes the replication lag
//! long enough to see what async replication does to a user whose
//! requests come faster than their copies. It is part of the same fault
//! set (kept in the run folder with the cuts); `heal` removes it too.

use std::collections::BTreeSet;

use crate::api::{Api, Faults};
use crate::error::{LabError, Result};
use crate::runfolder::{ClusterState, RunFolder};

fn link(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

/// The peers node `id` must drop, given the cut links.
pub fn drop_set(cuts: &BTreeSet<(String, String)>, id: &str) -> Vec<String> {
    cuts.iter()
        .filter_map(|(a, b)| {
            if a == id {
                Some(b.clone())
            } else if b == id {
                Some(a.clone())
            } else {
                None
            }
        })
        .collect()
}

/// Adds the links between `node` and each of `from` to `cuts`; returns the
/// nodes whose drop sets changed.
pub fn add_cuts(cuts: &mut BTreeSet<(String, String)>, node: &str, from: &[String]) -> Vec<String> {
    let mut touched = vec![node.to_string()];
    for other in from {
        cuts.insert(link(node, other));
        touched.push(other.clone());
    }
    touched
}

fn require_replication(state: &ClusterState, verb: &str) -> Result<()> {
    if state.mode.preset().replication {
        return Ok(());
    }
    Err(LabError::InvalidArgument(format!(
        "`{verb}` acts on replication traffic, and mode {} has none (each node keeps its own \
         sessions); use `sessionlab kill` to lose a node, or a replicated mode",
        state.mode
    )))
}

/// Sends node `id` its full drop list, if it is running.
async fn push(api: &Api, state: &ClusterState, secret: &str, id: &str) -> Result<()> {
    let node = state.node(id)?;
    if !node.process.is_some_and(|p| p.is_alive()) {
        // A stopped node gets its faults again when it restarts.
        return Ok(());
    }
    let drop = drop_set(&state.cuts, id);
    api.set_faults(
        &format!("127.0.0.1:{}", node.cluster_port),
        secret,
        &Faults {
            drop: &drop,
            delay_ms: state.delay_ms,
            skew_ms: state.skews.get(id).copied(),
        },
    )
    .await
}

/// `sessionlab partition NODE [--from NODE...]`: cuts NODE off from the
/// given nodes (default: all others), both directions. Returns the links
/// cut by this call.
pub async fn partition(
    api: &Api,
    rf: &RunFolder,
    node: &str,
    from: &[String],
) -> Result<Vec<(String, String)>> {
    let _lock = rf.lock(std::time::Duration::from_secs(120))?;
    let mut state = rf.load_required()?;
    require_replication(&state, "partition")?;
    state.node(node)?;
    for other in from {
        state.node(other)?;
        if other == node {
            return Err(LabError::InvalidArgument(format!(
                "a node can't be partitioned from itself ({node})"
            )));
        }
    }
    let from: Vec<String> = if from.is_empty() {
        state
            .node_ids()
            .into_iter()
            .filter(|id| id != node)
            .collect()
    } else {
        from.to_vec()
    };
    let touched = add_cuts(&mut state.cuts, node, &from);
    rf.save(&state)?;
    let secret = rf.read_secret()?;
    for id in &touched {
        push(api, &state, &secret, id).await?;
    }
    Ok(from.iter().map(|o| link(node, o)).collect())
}

/// Delays every replication link by `delay` (zero removes the delay), on
/// every running node; the cuts stay as they are.
pub async fn delay(api: &Api, rf: &RunFolder, delay: std::time::Duration) -> Result<()> {
    let _lock = rf.lock(std::time::Duration::from_secs(120))?;
    let mut state = rf.load_required()?;
    require_replication(&state, "delay")?;
    state.delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    rf.save(&state)?;
    let secret = rf.read_secret()?;
    for id in state.node_ids() {
        push(api, &state, &secret, &id).await?;
    }
    Ok(())
}

/// Skews node `id`'s clock by `ms` (negative: behind; 0 puts it right),
/// through its fault set; the cuts and the delay stay as they are.
pub async fn skew(api: &Api, rf: &RunFolder, id: &str, ms: i64) -> Result<()> {
    let _lock = rf.lock(std::time::Duration::from_secs(120))?;
    let mut state = rf.load_required()?;
    require_replication(&state, "skew")?;
    state.node(id)?;
    state.skews.insert(id.to_owned(), ms);
    rf.save(&state)?;
    push(api, &state, &rf.read_secret()?, id).await
}

/// `sessionlab heal`: clears the fault set of every running node (cuts
/// and delay).
pub async fn heal(api: &Api, rf: &RunFolder) -> Result<usize> {
    let _lock = rf.lock(std::time::Duration::from_secs(120))?;
    let mut state = rf.load_required()?;
    require_replication(&state, "heal")?;
    let healed = state.cuts.len();
    state.cuts.clear();
    state.delay_ms = 0;
    rf.save(&state)?;
    let secret = rf.read_secret()?;
    for id in state.node_ids() {
        push(api, &state, &secret, &id).await?;
    }
    Ok(healed)
}

/// Puts a restarted node back behind the cuts it is part of, the delay and
/// its clock skew (if any).
pub async fn reapply(api: &Api, rf: &RunFolder, state: &ClusterState, id: &str) -> Result<()> {
    if drop_set(&state.cuts, id).is_empty() && state.delay_ms == 0 && !state.skews.contains_key(id)
    {
        return Ok(());
    }
    push(api, state, &rf.read_secret()?, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_add_up_and_drop_sets_are_symmetric() {
        let mut cuts = BTreeSet::new();
        let all = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let touched = add_cuts(&mut cuts, "node-1", &all(&["node-2", "node-3"]));
        assert_eq!(touched, all(&["node-1", "node-2", "node-3"]));
        assert_eq!(drop_set(&cuts, "node-1"), all(&["node-2", "node-3"]));
        assert_eq!(drop_set(&cuts, "node-3"), all(&["node-1"]));
        // A second partition keeps the first: node-3 now drops both.
        add_cuts(&mut cuts, "node-2", &all(&["node-3"]));
        assert_eq!(drop_set(&cuts, "node-3"), all(&["node-1", "node-2"]));
        assert_eq!(drop_set(&cuts, "node-2"), all(&["node-1", "node-3"]));
        // The same link cut twice (either direction) is one link.
        add_cuts(&mut cuts, "node-3", &all(&["node-1"]));
        assert_eq!(cuts.len(), 3);
    }
}
