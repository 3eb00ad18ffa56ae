//! A mode's LB strategy, parsed once from `sessionlab-lb`'s `--strategy`
//! vocabulary, so that the HAProxy and nginx generators match on a closed
//! set instead of comparing strings (a strategy the lab cannot translate is
//! an error at `up`, naming it, not a silently different balancer).

use std::str::FromStr;

use crate::error::LabError;

/// How requests are spread over the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    Random,
    LeastConn,
    /// The LB pins a user to a node with a cookie of its own.
    StickyCookie,
    /// The node's id is the session id's suffix (`<id>.<node>`).
    StickyRoute,
    /// A hash of the session cookie over a ring (`maglev`: over a table).
    ConsistentHash,
    /// The hash, with a bound on how much more than its share a node takes.
    BoundedHash,
}

impl FromStr for Balance {
    type Err = LabError;
    fn from_str(s: &str) -> Result<Self, LabError> {
        Ok(match s {
            "round-robin" => Balance::RoundRobin,
            "random" => Balance::Random,
            "least-conn" => Balance::LeastConn,
            "sticky-cookie" => Balance::StickyCookie,
            "sticky-route" => Balance::StickyRoute,
            "consistent-hash" | "maglev" => Balance::ConsistentHash,
            "bounded-hash" => Balance::BoundedHash,
            other => {
                return Err(LabError::InvalidArgument(format!(
                    "--lb: the strategy `{other}` has no HAProxy or nginx translation in the lab"
                )));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preset::PRESETS;

    #[test]
    fn every_mode_of_the_matrix_translates() {
        for p in &PRESETS {
            p.lb_strategy
                .parse::<Balance>()
                .unwrap_or_else(|e| panic!("{}: {e}", p.name));
        }
        assert_eq!(
            "maglev".parse::<Balance>().unwrap(),
            Balance::ConsistentHash
        );
        let err = "weighted".parse::<Balance>().unwrap_err().to_string();
        assert!(
            err.starts_with("--lb:") && err.contains("weighted"),
            "{err}"
        );
    }
}
