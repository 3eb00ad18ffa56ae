//! What one node believes about another, and which belief wins.
//!
//! Every node keeps its own list of members. Beliefs travel as
//! [`Update`]s (piggybacked on the failure detector's pings and acks), and
//! two updates about the same member can disagree: one node suspects
//! node-3 while node-3 has already answered another. The *incarnation*
//! number settles it. Only a member raises its own incarnation, and it does
//! so to refute a suspicion about itself; so a newer incarnation is newer
//! news from the member itself, and within one incarnation the worse state
//! wins (SWIM, Das, Gupta and Motivala 2002, section 4.2):
//!
//! | held \ heard | `alive j` | `suspect j` | `dead j` / `left j` |
//! |---|---|---|---|
//! | `alive i` | if `j > i` | if `j >= i` | if `j >= i` |
//! | `suspect i` | if `j > i` (refuted) | if `j > i` | if `j >= i` |
//! | `dead i` / `left i` | if `j > i` (it came back) | never | `left` over `dead` at `j >= i` |
//! | not held | added | ignored | kept (so a late `alive i` cannot revive it) |
//!
//! A restarted process starts at an incarnation above any it had before
//! (the caller passes its start time in milliseconds), so its first `alive`
//! beats the `dead` the others hold for its previous life.

use serde::{Deserialize, Serialize};

/// A member's state as one node believes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    /// Answering (directly or through others).
    Alive,
    /// Missed a probe and every indirect probe; declared dead unless it
    /// refutes within the suspicion timeout.
    Suspect,
    /// Suspected for the whole timeout, or confirmed dead by another node.
    Dead,
    /// Said goodbye (a graceful stop).
    Left,
}

impl MemberState {
    /// Alive or suspect: still in the member list others route to.
    pub fn is_live(self) -> bool {
        matches!(self, MemberState::Alive | MemberState::Suspect)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Dead => "dead",
            MemberState::Left => "left",
        }
    }
}

/// One belief about one member, as it is gossiped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    pub id: String,
    /// Its cluster listener, `HOST:PORT`.
    pub addr: String,
    pub incarnation: u64,
    pub state: MemberState,
}

/// A member as one node holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub addr: String,
    pub incarnation: u64,
    pub state: MemberState,
    /// When this node last changed its belief (for the suspicion timeout
    /// and for forgetting the dead).
    pub since_ms: u64,
}

impl Member {
    pub fn update(&self) -> Update {
        Update {
            id: self.id.clone(),
            addr: self.addr.clone(),
            incarnation: self.incarnation,
            state: self.state,
        }
    }
}

/// Does `heard` replace what is held (`None`: nothing held)? The table in
/// the module docs, as code.
pub fn overrides(held: Option<(MemberState, u64)>, heard: MemberState, j: u64) -> bool {
    use MemberState::*;
    let Some((state, i)) = held else {
        // Unknown members are learnt alive, dead or left; a suspicion of a
        // member never heard of says nothing useful.
        return heard != Suspect;
    };
    match (state, heard) {
        (Alive, Alive) | (Suspect, Alive) | (Suspect, Suspect) => j > i,
        (Alive, Suspect) | (Alive | Suspect, Dead | Left) => j >= i,
        (Dead | Left, Alive) => j > i,
        (Dead | Left, Suspect) => false,
        (Dead, Left) => j >= i,
        (Dead, Dead) | (Left, Left) | (Left, Dead) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::MemberState::*;
    use super::*;

    #[test]
    fn the_precedence_table() {
        // Within one incarnation the worse state wins, never the reverse.
        assert!(overrides(Some((Alive, 3)), Suspect, 3));
        assert!(!overrides(Some((Suspect, 3)), Alive, 3));
        assert!(overrides(Some((Suspect, 3)), Dead, 3));
        assert!(!overrides(Some((Dead, 3)), Alive, 3));
        assert!(!overrides(Some((Dead, 3)), Suspect, 9));
        // A refutation is a newer incarnation.
        assert!(overrides(Some((Suspect, 3)), Alive, 4));
        assert!(
            overrides(Some((Dead, 3)), Alive, 4),
            "a restarted member is back"
        );
        // Old news changes nothing.
        assert!(!overrides(Some((Alive, 5)), Suspect, 4));
        assert!(!overrides(Some((Alive, 5)), Dead, 4));
        assert!(!overrides(Some((Alive, 5)), Alive, 5));
        // A goodbye beats a death certificate, not the other way round.
        assert!(overrides(Some((Dead, 2)), Left, 2));
        assert!(!overrides(Some((Left, 2)), Dead, 2));
        // Unknown members.
        assert!(overrides(None, Alive, 0));
        assert!(overrides(None, Dead, 0));
        assert!(!overrides(None, Suspect, 0));
    }

    #[test]
    fn hearing_the_same_update_twice_changes_nothing_the_second_time() {
        // Idempotence, which gossip (every update heard many times) needs.
        for held in [Alive, Suspect, Dead, Left] {
            for heard in [Alive, Suspect, Dead, Left] {
                for (i, j) in [(1, 1), (1, 2), (2, 1)] {
                    if overrides(Some((held, i)), heard, j) {
                        assert!(
                            !overrides(Some((heard, j)), heard, j),
                            "{held:?}@{i} {heard:?}@{j}"
                        );
                    }
                }
            }
        }
    }
}
