//! What the HAProxy and nginx generators balance by: a mode's LB strategy
//! (the shared [`Strategy`] enum of `sessionlab-lb`'s `--strategy` names)
//! folded into the cases their configuration languages tell apart. The
//! generators match on this closed set instead of comparing strings, and a
//! new strategy in the LB does not compile here until it has a
//! translation.

use std::str::FromStr;

use sessionlab_wire::strategy::Strategy;

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

impl From<Strategy> for Balance {
    /// Every LB strategy has a translation (Maglev's table is a hash too:
    /// HAProxy and nginx hash on the session cookie either way).
    fn from(s: Strategy) -> Balance {
        match s {
            Strategy::RoundRobin => Balance::RoundRobin,
            Strategy::Random => Balance::Random,
            Strategy::LeastConn => Balance::LeastConn,
            Strategy::StickyCookie => Balance::StickyCookie,
            Strategy::StickyRoute => Balance::StickyRoute,
            Strategy::ConsistentHash | Strategy::Maglev => Balance::ConsistentHash,
        }
    }
}

impl FromStr for Balance {
    type Err = LabError;
    /// A strategy name, or `bounded-hash` (the hash with
    /// `--hash-balance-factor`, which is an option of the hash strategies).
    fn from_str(s: &str) -> Result<Self, LabError> {
        if s == "bounded-hash" {
            return Ok(Balance::BoundedHash);
        }
        s.parse::<Strategy>()
            .map(Balance::from)
            .map_err(|e| LabError::InvalidArgument(format!("--lb: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preset::PRESETS;

    #[test]
    fn every_mode_of_the_matrix_translates() {
        for p in &PRESETS {
            let b = Balance::from(p.lb_strategy);
            assert_eq!(
                b,
                p.lb_strategy.as_str().parse::<Balance>().unwrap(),
                "{}",
                p.name
            );
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
