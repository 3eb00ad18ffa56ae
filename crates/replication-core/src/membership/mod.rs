//! Membership: who is in the cluster, learnt at run time instead of listed
//! at start.
//!
//! With `--peer` lists, a cluster's members are fixed when its processes
//! start: growing it means restarting every node with a longer list. Here a
//! node joins through any member, everyone learns of it, and a member that
//! stops answering is found out and removed, all while serving. It is SWIM
//! (Das, Gupta and Motivala, "SWIM: Scalable Weakly-consistent
//! Infection-style Process Group Membership Protocol", 2002), the design
//! behind HashiCorp's memberlist (Consul, Nomad) and Cassandra-style
//! gossip:
//!
//! | part | file | what it does |
//! |---|---|---|
//! | beliefs | `member.rs` | a member's state (`alive`, `suspect`, `dead`, `left`) and incarnation; which of two beliefs wins |
//! | dissemination | `gossip.rs` | updates piggybacked on messages sent anyway, each a bounded `O(log n)` times |
//! | messages | `message.rs` | ping, ack, ping-req, join, join-reply, gossip; the limits a receiver checks |
//! | failure detector | `swim.rs` | the probe period: ping, indirect ping through `k` others, suspicion, death; join, leave, rejoin |
//!
//! Why not plain heartbeats, as the all-to-all peers use today? A heartbeat
//! from every node to every node is `n²` messages a period, and one bad
//! link makes the two ends call each other dead. SWIM probes one member
//! per node per period (`n` messages), asks `k` others to try before it
//! suspects anyone (a bad link is routed around), and lets a suspect
//! refute before it is declared dead (a slow node is not evicted). Its
//! detection time and message load per node stay constant as the cluster
//! grows; an update reaches everyone in `O(log n)` rounds.
//!
//! The view is versioned ([`Membership::version`]); the live member list
//! ([`Membership::live`]) is what ownership of sessions is computed over.
//! Like the replication protocol, this is sans-IO: the runtime carries the
//! messages (signed with the cluster secret, like every cluster message),
//! and `tests/membership.rs` runs many nodes on a seeded lossy network.

mod gossip;
mod member;
mod message;
mod swim;

pub use member::{Member, MemberState, Update};
pub use message::{MAX_ADDR_LEN, MAX_MEMBERS, MAX_UPDATES, Sender, SwimMessage};
pub use swim::{MemberEvent, Membership, Step, SwimConfig};
