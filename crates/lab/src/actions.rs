//! The operator's actions on a running cluster, one call each: kill,
//! restart, partition, heal, drain, undrain.
//!
//! Two front ends press these: the `sessionlab` subcommands and the
//! dashboard's buttons (crate `sessionlab-dashboard`, which links this
//! library and calls [`perform`] in its own process with the run folder it
//! was given). Both get the same effect and the same sentence to show the
//! person ([`perform`]'s answer), so what the page says after a button is
//! what the terminal says after the command.

use crate::cluster::Lab;
use crate::error::Result;
use crate::faults;
use crate::redis;
use crate::redis_ha;

/// One action on the cluster of a run folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// SIGKILL a node (or `redis`), as in a crash.
    Kill(String),
    /// Stop (if running) and start a node (or `redis`) again.
    Restart(String),
    /// Cut a node's replication links (to `from`, or to every other node).
    Partition { node: String, from: Vec<String> },
    /// Remove every partition and delay.
    Heal,
    /// No new sessions to the node (sticky users stay).
    Drain(String),
    /// Take new sessions again.
    Undrain(String),
}

impl Action {
    /// The command a person would type for it, e.g. `sessionlab kill node-2`.
    pub fn command(&self) -> String {
        match self {
            Action::Kill(n) => format!("sessionlab kill {n}"),
            Action::Restart(n) => format!("sessionlab restart {n}"),
            Action::Partition { node, from } if from.is_empty() => {
                format!("sessionlab partition {node}")
            }
            Action::Partition { node, from } => {
                format!("sessionlab partition {node} --from {}", from.join(" "))
            }
            Action::Heal => "sessionlab heal".into(),
            Action::Drain(n) => format!("sessionlab drain {n}"),
            Action::Undrain(n) => format!("sessionlab undrain {n}"),
        }
    }
}

/// What `drain` / `undrain` say once the LB took it.
pub fn drained(node: &str, drain: bool) -> String {
    if drain {
        format!("draining {node}: the LB sends it no new sessions")
    } else {
        format!("undrained {node}")
    }
}

/// Performs `action` on `lab`'s cluster; returns the sentence for the
/// person who asked.
pub async fn perform(lab: &Lab, action: &Action) -> Result<String> {
    Ok(match action {
        Action::Kill(node) => {
            let pid = lab.kill(node).await?;
            format!("killed {node} (pid {pid}) with SIGKILL")
        }
        Action::Restart(node) => {
            lab.restart(node).await?;
            if node == redis::NAME {
                "restarted redis (empty: it keeps nothing on disk); the nodes reconnect by themselves".into()
            } else if redis_ha::is_member_name(node) && node.starts_with("sentinel-") {
                format!("restarted {node}; it rejoins the other Sentinels")
            } else if redis_ha::is_member_name(node) {
                format!(
                    "restarted {node} as a replica of the current primary (`sessionlab status` \
                     shows the roles)"
                )
            } else {
                format!("restarted {node}; it is healthy and back in the LB")
            }
        }
        Action::Partition { node, from } => {
            let cut = faults::partition(&lab.api, &lab.rf, node, from).await?;
            let others: Vec<&str> = cut
                .iter()
                .map(|(a, b)| if a == node { b.as_str() } else { a.as_str() })
                .collect();
            format!(
                "partitioned {node} from {}: replication between them is dropped both ways \
                 (the LB still reaches {node}); `sessionlab heal` to undo",
                others.join(", ")
            )
        }
        Action::Heal => {
            let n = faults::heal(&lab.api, &lab.rf).await?;
            format!("healed: fault sets cleared on every running node ({n} cut links restored)")
        }
        Action::Drain(node) => lab.drain(node, true).await?,
        Action::Undrain(node) => lab.drain(node, false).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_action_names_its_command() {
        assert_eq!(
            Action::Kill("node-2".into()).command(),
            "sessionlab kill node-2"
        );
        assert_eq!(Action::Heal.command(), "sessionlab heal");
        let p = Action::Partition {
            node: "node-1".into(),
            from: vec!["node-2".into(), "node-3".into()],
        };
        assert_eq!(
            p.command(),
            "sessionlab partition node-1 --from node-2 node-3"
        );
        assert_eq!(drained("node-1", false), "undrained node-1");
    }
}
