//! What the failure detector sends, and the limits a receiver checks.
//!
//! | message | sent | answered by |
//! |---|---|---|
//! | `Ping` | to the member probed this period (and, now and then, to one held dead) | `Ack` |
//! | `PingReq` | to `k` other members when the `Ack` is late: "probe it for me" | the helper's `Ping`, then the `Ack` relayed back |
//! | `Ack` | to a `Ping`'s sender, or relayed for a `PingReq` | - |
//! | `Join` | by a new node to its seeds (`--join`), again while it is alone | `JoinReply` (the whole member list) |
//! | `Gossip` | updates only, to a few members, while there are fresh ones; a leaving node's goodbye | - |
//!
//! Every message names its sender with its incarnation (direct evidence
//! that it is alive) and carries piggybacked [`Update`]s. The transport
//! signs them like every other cluster message; a receiver refuses one
//! with more updates, or longer ids and addresses, than the limits below
//! before it applies anything.

use serde::{Deserialize, Serialize};

use super::member::Update;
use crate::message::{Rejected, check_node_id};

/// Members one node keeps (alive, suspect, and the dead it still
/// remembers); a join beyond it is refused.
pub const MAX_MEMBERS: usize = 1024;
/// Updates one message may carry (a `JoinReply` may carry `MAX_MEMBERS`).
pub const MAX_UPDATES: usize = 64;
/// Bytes of a `HOST:PORT` address.
pub const MAX_ADDR_LEN: usize = 255;

/// A message's sender, as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    pub id: String,
    pub addr: String,
    pub incarnation: u64,
}

/// One failure-detector message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SwimMessage {
    Ping {
        from: Sender,
        seq: u64,
        updates: Vec<Update>,
    },
    Ack {
        from: Sender,
        seq: u64,
        updates: Vec<Update>,
    },
    PingReq {
        from: Sender,
        seq: u64,
        /// The member to probe, and where.
        target: String,
        target_addr: String,
        updates: Vec<Update>,
    },
    Join {
        from: Sender,
    },
    JoinReply {
        from: Sender,
        members: Vec<Update>,
    },
    Gossip {
        from: Sender,
        updates: Vec<Update>,
    },
}

impl SwimMessage {
    pub fn sender(&self) -> &Sender {
        match self {
            SwimMessage::Ping { from, .. }
            | SwimMessage::Ack { from, .. }
            | SwimMessage::PingReq { from, .. }
            | SwimMessage::Join { from }
            | SwimMessage::JoinReply { from, .. }
            | SwimMessage::Gossip { from, .. } => from,
        }
    }

    /// The piggybacked updates (a `JoinReply`'s member list).
    pub fn updates(&self) -> &[Update] {
        match self {
            SwimMessage::Ping { updates, .. }
            | SwimMessage::Ack { updates, .. }
            | SwimMessage::PingReq { updates, .. }
            | SwimMessage::Gossip { updates, .. } => updates,
            SwimMessage::JoinReply { members, .. } => members,
            SwimMessage::Join { .. } => &[],
        }
    }

    /// A short name for traces and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            SwimMessage::Ping { .. } => "ping",
            SwimMessage::Ack { .. } => "ack",
            SwimMessage::PingReq { .. } => "ping_req",
            SwimMessage::Join { .. } => "join",
            SwimMessage::JoinReply { .. } => "join_reply",
            SwimMessage::Gossip { .. } => "gossip",
        }
    }

    /// The limits, checked before anything is applied.
    pub fn check(&self) -> Result<(), Rejected> {
        let limit = match self {
            SwimMessage::JoinReply { .. } => MAX_MEMBERS,
            _ => MAX_UPDATES,
        };
        let updates = self.updates();
        if updates.len() > limit {
            return Err(Rejected::TooLarge(format!(
                "{} membership updates, limit {limit}",
                updates.len()
            )));
        }
        let from = self.sender();
        check_member(&from.id, &from.addr)?;
        if let SwimMessage::PingReq {
            target,
            target_addr,
            ..
        } = self
        {
            check_member(target, target_addr)?;
        }
        updates
            .iter()
            .try_for_each(|u| check_member(&u.id, &u.addr))
    }
}

fn check_member(id: &str, addr: &str) -> Result<(), Rejected> {
    check_node_id(id)?;
    if id.is_empty() {
        return Err(Rejected::Invalid("an empty member id".into()));
    }
    if addr.len() > MAX_ADDR_LEN {
        return Err(Rejected::TooLarge(format!(
            "an address of {} bytes, limit {MAX_ADDR_LEN}",
            addr.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::member::MemberState;
    use super::*;

    fn me() -> Sender {
        Sender {
            id: "node-1".into(),
            addr: "127.0.0.1:9081".into(),
            incarnation: 1,
        }
    }

    fn update(id: &str) -> Update {
        Update {
            id: id.into(),
            addr: "127.0.0.1:1".into(),
            incarnation: 0,
            state: MemberState::Alive,
        }
    }

    #[test]
    fn oversized_and_malformed_messages_are_refused() {
        let ok = SwimMessage::Gossip {
            from: me(),
            updates: vec![update("node-2")],
        };
        assert!(ok.check().is_ok());
        let flood = SwimMessage::Gossip {
            from: me(),
            updates: (0..MAX_UPDATES + 1)
                .map(|i| update(&format!("n{i}")))
                .collect(),
        };
        assert_eq!(flood.check().unwrap_err().reason(), "oversized");
        let reply = SwimMessage::JoinReply {
            from: me(),
            members: (0..MAX_UPDATES + 1)
                .map(|i| update(&format!("n{i}")))
                .collect(),
        };
        assert!(reply.check().is_ok(), "a member list may be longer");
        let long_id = SwimMessage::Gossip {
            from: me(),
            updates: vec![update(&"x".repeat(65))],
        };
        assert_eq!(long_id.check().unwrap_err().reason(), "oversized");
        let empty = SwimMessage::Join {
            from: Sender {
                id: String::new(),
                ..me()
            },
        };
        assert_eq!(empty.check().unwrap_err().reason(), "invalid");
        let long_addr = SwimMessage::PingReq {
            from: me(),
            seq: 1,
            target: "node-2".into(),
            target_addr: "a".repeat(MAX_ADDR_LEN + 1),
            updates: vec![],
        };
        assert_eq!(long_addr.check().unwrap_err().reason(), "oversized");
    }

    #[test]
    fn the_json_form_names_the_type() {
        let m = SwimMessage::Join { from: me() };
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.starts_with(r#"{"type":"join","#), "{text}");
        assert_eq!(serde_json::from_str::<SwimMessage>(&text).unwrap(), m);
    }
}
