//! The protocol's knobs, and the acknowledgement modes.
//!
//! Every limit that bounds memory or time lives here, with a default that
//! suits a lab on one machine. The same values drive the real runtime and
//! the simulation (which shrinks the timers so a run takes milliseconds).
//!
//! [`ProtocolConfig::validate`] refuses combinations that would break the
//! protocol's own guarantees, e.g. a queue too small to hold one repair round.

use serde::{Deserialize, Serialize};

use crate::granularity::Granularity;

/// When a local write is reported to the client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AckMode {
    /// Asynchronous: answer at once; the peers get it soon (`--replication-ack none`).
    #[default]
    None,
    /// Answer once the write has been handed to the transport for every
    /// live peer (it left this node's queue in a batch on its way), without
    /// waiting for any peer to confirm: Tomcat's `ReplicationValve` default.
    Sent,
    /// Every peer that is up when the write is made must apply it.
    All,
    /// A majority of the cluster (this node included) must hold it.
    Quorum,
}

impl AckMode {
    /// Whether the peers are asked to confirm the write (an `ack` id on
    /// the wire): `all` and `quorum`. `sent` waits for this node's own
    /// queues only.
    pub fn asks_peers(self) -> bool {
        matches!(self, AckMode::All | AckMode::Quorum)
    }
}

crate::keyword_enum!(AckMode, "replication ack mode", {
    None => "none",
    Sent => "sent",
    All => "all",
    Quorum => "quorum",
});

/// What a replicated node does when it cannot reach a majority of the
/// cluster (`--partition-policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionPolicy {
    /// Keep accepting writes on both sides; last writer wins at the heal
    /// (and throws some acknowledged writes away).
    #[default]
    Available,
    /// Refuse a write that cannot reach a majority of the members (this
    /// node included): a node that sees fewer refuses every write at once,
    /// and a write is answered only once a majority holds it (at least
    /// `quorum` acks), conditional on the peers holding the version it was
    /// made from. See `crate::replica` (the consistent policy).
    Consistent,
}

crate::keyword_enum!(PartitionPolicy, "partition policy", {
    Available => "available",
    Consistent => "consistent",
});

/// Which nodes keep a copy of a session (`--replication`).
///
/// | topology | copies of a session | a write goes to | acks counted over |
/// |---|---|---|---|
/// | `all-to-all` | every member | every other member | every other member |
/// | `backup` (K backups) | `min(K + 1, members)`: its owners | the other owners | the other owners |
///
/// Owners are chosen by rendezvous hashing over the current members
/// ([`crate::ownership`]); a delete (tombstone) still goes to every member
/// in both, so a logout wins everywhere whoever holds the session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Topology {
    /// Every node keeps every session (Tomcat's `DeltaManager`).
    #[default]
    AllToAll,
    /// Each session has `backups + 1` owners: a primary and `backups`
    /// backups (Tomcat's `BackupManager`, Infinispan's `owners`).
    Backup { backups: usize },
}

/// The most backups a session may have (`--backups`): beyond it the
/// topology costs nearly what all-to-all does, for little gain.
pub const MAX_BACKUPS: usize = 8;

/// The most sessions a rebalance may hand off per tick: the bound keeps a
/// tick's work (and the queue it fills) small whatever the config says.
pub const MAX_REBALANCE_PER_TICK: usize = 65_536;

impl Topology {
    /// The flag value: `all-to-all` or `backup`.
    pub fn as_str(self) -> &'static str {
        match self {
            Topology::AllToAll => "all-to-all",
            Topology::Backup { .. } => "backup",
        }
    }

    /// How many copies of each session a cluster of `members` keeps.
    pub fn copies(self, members: usize) -> usize {
        match self {
            Topology::AllToAll => members,
            Topology::Backup { backups } => members.min(backups.saturating_add(1)),
        }
    }

    /// `K` in the backup topology; 0 for all-to-all.
    pub fn backups(self) -> usize {
        match self {
            Topology::AllToAll => 0,
            Topology::Backup { backups } => backups,
        }
    }

    pub fn is_backup(self) -> bool {
        matches!(self, Topology::Backup { .. })
    }
}

impl std::fmt::Display for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Topology::AllToAll => f.write_str("all-to-all"),
            Topology::Backup { backups } => write!(f, "backup (K={backups})"),
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid replication configuration: {0}")]
    Invalid(String),
}

/// Timers (milliseconds) and limits of the protocol core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolConfig {
    pub ack_mode: AckMode,
    /// `--partition-policy`; `consistent` makes `none` and `sent` wait for
    /// a quorum.
    pub partition_policy: PartitionPolicy,
    /// `--replication-granularity`: whole-session last writer wins, or a
    /// per-key merge (see `crate::granularity`).
    pub granularity: Granularity,
    /// How long a write waits for acks before it is reported as timed out.
    pub ack_timeout_ms: u64,
    /// Writes waiting for acks at once; beyond it a write times out at once.
    pub max_pending_acks: usize,
    /// How often a heartbeat goes to every peer.
    pub heartbeat_interval_ms: u64,
    /// A peer not heard from for this long is down.
    pub peer_down_after_ms: u64,
    /// Backup topology: how often a heartbeat goes to every peer. There the
    /// membership layer (SWIM, `crate::membership`) is the failure
    /// detector: it removes a dead member within a few probe periods, with
    /// one probe per node per period whatever the cluster's size. The
    /// replication heartbeat only carries a node's boot and readiness (sent
    /// at once when they change, and when a peer is added) and, at this
    /// slower pace, a backstop for a member the membership layer keeps but
    /// that is not heard from. All-to-all heartbeats every
    /// `heartbeat_interval_ms` to every peer: `N * (N - 1)` messages per
    /// interval, the background traffic that grew with the cluster.
    pub backup_heartbeat_interval_ms: u64,
    /// Backup topology: a peer not heard from for this long is down.
    pub backup_peer_down_after_ms: u64,
    /// How often coalesced touches are sent.
    pub touch_flush_ms: u64,
    /// How often a digest round runs with each peer (when not resyncing).
    pub anti_entropy_interval_ms: u64,
    /// Entries per digest message, and repairs per digest round.
    pub digest_chunk: usize,
    /// How long to wait for the reply to a snapshot or digest request, and
    /// for a send result, before trying again.
    pub request_timeout_ms: u64,
    /// How long a starting replica waits to catch up before it reports
    /// ready anyway (with a warning).
    pub join_timeout_ms: u64,
    /// How long a starting replica waits for a peer that reports itself
    /// ready before it takes a snapshot from any live peer (a cold start).
    pub join_grace_ms: u64,
    /// Data messages queued per peer; overflow drops the queue and marks the
    /// peer for resync.
    pub queue_limit: usize,
    /// Bytes of data messages queued per peer (same overflow rule).
    pub queue_bytes_limit: usize,
    /// Most messages in one batch.
    pub batch_max_messages: usize,
    /// Most approximate bytes in one batch.
    pub batch_max_bytes: usize,
    /// Most entries in one snapshot page.
    pub snapshot_page_entries: usize,
    /// Most approximate bytes in one snapshot page.
    pub snapshot_page_bytes: usize,
    /// How long a tombstone outlives the absolute expiry of the session it
    /// deleted (covers clock differences between nodes).
    pub tombstone_grace_ms: u64,
    /// Most tombstones kept; beyond it the one closest to its end goes.
    pub max_tombstones: usize,
    /// The sessions' absolute timeout (`--absolute-timeout`): how long a
    /// tombstone for an id this node does not hold must last, since its
    /// creation time is unknown here (from the delete, plus the grace).
    pub absolute_timeout_ms: u64,
    /// `--replication`: all-to-all, or `K + 1` owners per session.
    pub topology: Topology,
    /// A replica created without peers waits for its first peer before it
    /// reports ready (a node that joins through discovery learns its peers
    /// after it starts); otherwise it is ready at once, alone. See
    /// `crate::replica` (joining).
    pub wait_for_peers: bool,
    /// Backup topology: most sessions handed to their new owners per tick
    /// after a change of membership (the rebalance's rate bound).
    pub rebalance_per_tick: usize,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        ProtocolConfig {
            ack_mode: AckMode::None,
            partition_policy: PartitionPolicy::Available,
            granularity: Granularity::Session,
            ack_timeout_ms: 1_000,
            max_pending_acks: 10_000,
            heartbeat_interval_ms: 250,
            peer_down_after_ms: 1_500,
            backup_heartbeat_interval_ms: 5_000,
            backup_peer_down_after_ms: 15_000,
            touch_flush_ms: 1_000,
            anti_entropy_interval_ms: 2_000,
            digest_chunk: 512,
            request_timeout_ms: 2_000,
            join_timeout_ms: 10_000,
            join_grace_ms: 1_000,
            queue_limit: 20_000,
            queue_bytes_limit: 32 * 1024 * 1024,
            batch_max_messages: 1_024,
            batch_max_bytes: 1024 * 1024,
            snapshot_page_entries: 1_024,
            snapshot_page_bytes: 1024 * 1024,
            tombstone_grace_ms: 60_000,
            max_tombstones: 200_000,
            absolute_timeout_ms: 8 * 60 * 60 * 1000,
            topology: Topology::AllToAll,
            wait_for_peers: false,
            rebalance_per_tick: 256,
        }
    }
}

impl ProtocolConfig {
    /// The ack mode writes really use: `consistent` needs a majority to
    /// hold a write before it is answered, so `none` and `sent` become
    /// `quorum` (`all` already is at least one).
    pub fn effective_ack_mode(&self) -> AckMode {
        match (self.partition_policy, self.ack_mode) {
            (PartitionPolicy::Consistent, AckMode::None | AckMode::Sent) => AckMode::Quorum,
            (_, mode) => mode,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.heartbeat_interval_ms == 0
            || self.peer_down_after_ms < 2 * self.heartbeat_interval_ms
        {
            return bad("peer_down_after_ms must be at least two heartbeat intervals");
        }
        if self.backup_heartbeat_interval_ms < self.heartbeat_interval_ms
            || self.backup_peer_down_after_ms < 2 * self.backup_heartbeat_interval_ms
        {
            return bad(
                "backup_peer_down_after_ms must be at least two backup heartbeat intervals, and those no shorter than heartbeat_interval_ms",
            );
        }
        if self.digest_chunk == 0 || self.digest_chunk > crate::message::MAX_LIST_ENTRIES {
            return bad("digest_chunk must be between 1 and MAX_LIST_ENTRIES");
        }
        if self.queue_limit < 2 * self.digest_chunk {
            return bad("queue_limit must hold at least two repair rounds (2 x digest_chunk)");
        }
        if self.batch_max_messages == 0
            || self.batch_max_messages > crate::message::MAX_BATCH_MESSAGES
        {
            return bad("batch_max_messages must be between 1 and MAX_BATCH_MESSAGES");
        }
        if self.snapshot_page_entries == 0
            || self.snapshot_page_entries > crate::message::MAX_LIST_ENTRIES
        {
            return bad("snapshot_page_entries must be between 1 and MAX_LIST_ENTRIES");
        }
        if self.request_timeout_ms == 0 || self.ack_timeout_ms == 0 {
            return bad("timeouts must be positive");
        }
        if self.absolute_timeout_ms == 0 {
            return bad("absolute_timeout_ms must be positive");
        }
        if self.max_tombstones == 0 || self.max_pending_acks == 0 {
            return bad("max_tombstones and max_pending_acks must be positive");
        }
        if let Topology::Backup { backups } = self.topology {
            if backups == 0 || backups > MAX_BACKUPS {
                return Err(ConfigError::Invalid(format!(
                    "backups must be between 1 and {MAX_BACKUPS} (got {backups})"
                )));
            }
        }
        if self.rebalance_per_tick == 0 || self.rebalance_per_tick > MAX_REBALANCE_PER_TICK {
            return bad("rebalance_per_tick must be between 1 and MAX_REBALANCE_PER_TICK");
        }
        Ok(())
    }

    /// Timers shrunk for the simulation and for in-process tests: the same
    /// ratios, tens of milliseconds instead of seconds.
    pub fn fast() -> Self {
        ProtocolConfig {
            ack_timeout_ms: 500,
            heartbeat_interval_ms: 50,
            peer_down_after_ms: 300,
            backup_heartbeat_interval_ms: 500,
            backup_peer_down_after_ms: 1_500,
            touch_flush_ms: 100,
            anti_entropy_interval_ms: 200,
            request_timeout_ms: 200,
            join_timeout_ms: 3_000,
            join_grace_ms: 200,
            ..ProtocolConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_ack_modes_parse() {
        ProtocolConfig::default().validate().unwrap();
        ProtocolConfig::fast().validate().unwrap();
        assert_eq!("quorum".parse::<AckMode>().unwrap(), AckMode::Quorum);
        assert_eq!("sent".parse::<AckMode>().unwrap(), AckMode::Sent);
        assert_eq!(AckMode::Sent.to_string(), "sent");
        assert_eq!(
            "consistent".parse::<PartitionPolicy>().unwrap(),
            PartitionPolicy::Consistent
        );
        assert!("strict".parse::<PartitionPolicy>().is_err());
        let consistent = ProtocolConfig {
            partition_policy: PartitionPolicy::Consistent,
            ..ProtocolConfig::default()
        };
        assert_eq!(consistent.effective_ack_mode(), AckMode::Quorum);
        let all = ProtocolConfig {
            ack_mode: AckMode::All,
            ..consistent.clone()
        };
        assert_eq!(all.effective_ack_mode(), AckMode::All);
        assert!("most".parse::<AckMode>().is_err());
        let tiny_queue = ProtocolConfig {
            queue_limit: 10,
            ..ProtocolConfig::default()
        };
        assert!(tiny_queue.validate().is_err());
    }

    #[test]
    fn topologies_count_copies_and_refuse_bad_backups() {
        assert_eq!(Topology::default(), Topology::AllToAll);
        assert_eq!(Topology::AllToAll.as_str(), "all-to-all");
        let k1 = Topology::Backup { backups: 1 };
        assert_eq!(k1.as_str(), "backup");
        assert_eq!(k1.to_string(), "backup (K=1)");
        assert_eq!(Topology::AllToAll.copies(5), 5);
        assert_eq!(k1.copies(5), 2);
        assert_eq!(k1.copies(1), 1, "never more copies than members");
        assert_eq!(Topology::Backup { backups: 3 }.copies(3), 3);
        assert_eq!((k1.backups(), Topology::AllToAll.backups()), (1, 0));
        let with = |topology| ProtocolConfig {
            topology,
            ..ProtocolConfig::default()
        };
        with(k1).validate().unwrap();
        with(Topology::Backup { backups: 8 }).validate().unwrap();
        for bad in [0, 9] {
            let e = with(Topology::Backup { backups: bad })
                .validate()
                .unwrap_err();
            assert!(e.to_string().contains("backups"), "{e}");
        }
        let zero = ProtocolConfig {
            rebalance_per_tick: 0,
            ..ProtocolConfig::default()
        };
        assert!(zero.validate().is_err());
        assert!(!ProtocolConfig::default().wait_for_peers);
    }
}
