//! The load balancer's strategy names: how the first choice of backend is
//! made.
//!
//! `sessionlab-lb --strategy NAME` takes them, its admin API reports them,
//! and the lab's modes name theirs; the lab also translates each into
//! HAProxy's and nginx's configuration. One closed set here keeps those
//! from drifting: a mode cannot name a strategy the LB does not have, and
//! the generators match on the enum instead of comparing strings.
//!
//! | name | first choice | sticky | hash |
//! |---|---|---|---|
//! | `round-robin` | next in turn | no | no |
//! | `random` | a random backend | no | no |
//! | `least-conn` | fewest in-flight requests | no | no |
//! | `sticky-cookie` | the backend named by the LB's `SLROUTE` cookie | yes | no |
//! | `sticky-route` | the node suffix of the session id (`<id>.<node>`) | yes | no |
//! | `consistent-hash` | the owner of the session cookie on a hash ring | yes | yes |
//! | `maglev` | the owner of the session cookie in a Maglev table | yes | yes |
//!
//! The LB's `select` module documents how each is computed.

use std::fmt;
use std::str::FromStr;

/// How the first choice is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    RoundRobin,
    Random,
    LeastConn,
    StickyCookie,
    StickyRoute,
    ConsistentHash,
    Maglev,
}

impl Strategy {
    /// Every strategy, in the order `--help` lists them.
    pub const ALL: [Strategy; 7] = [
        Strategy::RoundRobin,
        Strategy::Random,
        Strategy::LeastConn,
        Strategy::StickyCookie,
        Strategy::StickyRoute,
        Strategy::ConsistentHash,
        Strategy::Maglev,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round-robin",
            Strategy::Random => "random",
            Strategy::LeastConn => "least-conn",
            Strategy::StickyCookie => "sticky-cookie",
            Strategy::StickyRoute => "sticky-route",
            Strategy::ConsistentHash => "consistent-hash",
            Strategy::Maglev => "maglev",
        }
    }

    /// The names, in the order of [`Strategy::ALL`].
    pub fn names() -> [&'static str; 7] {
        Strategy::ALL.map(Strategy::as_str)
    }

    /// Is the first choice the client's own backend (a cookie or a hash)?
    pub fn is_sticky(self) -> bool {
        !matches!(
            self,
            Strategy::RoundRobin | Strategy::Random | Strategy::LeastConn
        )
    }

    /// Is the first choice a hash of the session cookie?
    pub fn is_hash(self) -> bool {
        matches!(self, Strategy::ConsistentHash | Strategy::Maglev)
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A name that is not a strategy; the message lists the ones there are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStrategy(pub String);

impl fmt::Display for UnknownStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a strategy (one of {})",
            self.0,
            Strategy::names().join(", ")
        )
    }
}

impl std::error::Error for UnknownStrategy {}

impl FromStr for Strategy {
    type Err = UnknownStrategy;

    fn from_str(s: &str) -> Result<Self, UnknownStrategy> {
        Strategy::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownStrategy(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for s in Strategy::ALL {
            assert_eq!(s.as_str().parse::<Strategy>(), Ok(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        let err = "weighted".parse::<Strategy>().unwrap_err().to_string();
        assert!(
            err.contains("`weighted`") && err.contains("maglev"),
            "{err}"
        );
    }

    #[test]
    fn the_sticky_and_hash_kinds() {
        assert!(!Strategy::RoundRobin.is_sticky());
        assert!(Strategy::StickyCookie.is_sticky() && !Strategy::StickyCookie.is_hash());
        assert!(Strategy::Maglev.is_sticky() && Strategy::Maglev.is_hash());
    }
}
