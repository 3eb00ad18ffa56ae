//! The modes matrix as data: one row per way of keeping a user logged in
//! across many servers.
//!
//! A mode is nothing but a choice of load-balancer strategy plus a set of
//! node flags; everything else in the lab (starting, killing, partitioning,
//! scaling) is the same for every mode. Keeping the matrix in one table means
//! `up`, `status`, the docs and, later, `compare` (which runs the same
//! workload against every row) all read the same facts, and adding a mode
//! is adding a row: its LB strategy, its node flags and whether it needs a
//! Redis server next to the nodes or a token key.
//!
//! The last rows are the other answers to "where does the login live":
//! `redis` keeps sessions in one shared Redis (stateless nodes; the store is
//! the new single point of failure), `redis-ha` in a Redis primary with a
//! replica and Sentinels that promote it (the store survives its primary,
//! and loses what the replica had not received yet), and `jwt` keeps the identity in signed
//! tokens. The `jwt` row replicates its store all-to-all because tokens are
//! stateless only until logout and refresh: the refresh families, the logout
//! deny-list and the app's per-login data live in the store and must reach
//! every node.
//!
//! The node flags are per-mode constants; the per-cluster flags (ids,
//! addresses, peers, the cluster secret) are added by [`crate::cluster`].

use std::fmt;

use serde::{Deserialize, Serialize};
use sessionlab_wire::strategy::Strategy;

/// The name of a mode, as typed after `--mode`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    PartialOrd,
    Ord,
)]
#[serde(rename_all = "kebab-case")]
#[clap(rename_all = "kebab-case")]
pub enum Mode {
    /// Round-robin, each node keeps its own sessions: logins get lost.
    Local,
    /// Sticky cookie, each node keeps its own sessions: works until a node dies.
    Sticky,
    /// Round-robin, sessions replicated all-to-all.
    Replicated,
    /// Sticky cookie plus all-to-all replication: the classic session cluster.
    StickyReplicated,
    /// Sticky cookie, each session kept by two owners (the backup topology), members found at run time.
    Backup,
    /// Round-robin, sessions in one shared Redis.
    Redis,
    /// Round-robin, sessions in a Redis primary with a replica, found through three Sentinels.
    RedisHa,
    /// Round-robin, JWT access and refresh tokens (families and deny-list replicated).
    Jwt,
}

impl Mode {
    /// Every mode, in the order of the matrix.
    pub const ALL: [Mode; 8] = [
        Mode::Local,
        Mode::Sticky,
        Mode::Replicated,
        Mode::StickyReplicated,
        Mode::Backup,
        Mode::Redis,
        Mode::RedisHa,
        Mode::Jwt,
    ];

    /// The mode's name as typed on the command line.
    pub fn name(self) -> &'static str {
        self.preset().name
    }

    /// The preset (row of the matrix) for this mode.
    pub fn preset(self) -> &'static Preset {
        PRESETS
            .iter()
            .find(|p| p.mode == self)
            .expect("every Mode has a row in PRESETS (checked by a test)")
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One row of the modes matrix.
#[derive(Debug)]
pub struct Preset {
    pub mode: Mode,
    /// The name typed after `--mode`.
    pub name: &'static str,
    /// `sessionlab-lb --strategy` value.
    pub lb_strategy: Strategy,
    /// Flags every node of this mode gets, beyond id, addresses and peers.
    /// Node defaults (memory store, session auth, cookie tracking) are not
    /// repeated, so a mode needs only the node features it really uses.
    pub node_flags: &'static [&'static str],
    /// Whether nodes replicate to each other: they then get `--peer` for
    /// every other node and the cluster secret, and `partition`/`heal` apply.
    pub replication: bool,
    /// Whether the nodes keep their member list at run time (SWIM, the
    /// `--peer` list only a set of seeds): `scale` then starts and stops
    /// nodes without restarting the others, and a stopped node hands its
    /// sessions to their owners before it leaves.
    pub dynamic_membership: bool,
    /// Which Redis the mode needs beside the nodes, if any.
    pub redis: RedisTopology,
    /// Whether nodes sign tokens (`--auth jwt`): they then get a token key
    /// in their environment, the same on every node.
    pub jwt: bool,
    /// Where the sessions live, for `status` and `up`'s banner.
    pub sessions_live: &'static str,
    /// What the mode teaches, one line.
    pub teaches: &'static str,
}

/// The modes matrix (DESIGN.md, "Modes").
pub static PRESETS: [Preset; 8] = [
    Preset {
        mode: Mode::Local,
        name: "local",
        lb_strategy: Strategy::RoundRobin,
        node_flags: &[],
        replication: false,
        dynamic_membership: false,
        redis: RedisTopology::None,
        jwt: false,
        sessions_live: "each node's memory, no replication",
        teaches: "why sessions break behind a plain LB: the next request lands on a node that never saw your login",
    },
    Preset {
        mode: Mode::Sticky,
        name: "sticky",
        lb_strategy: Strategy::StickyCookie,
        node_flags: &[],
        replication: false,
        dynamic_membership: false,
        redis: RedisTopology::None,
        jwt: false,
        sessions_live: "each node's memory",
        teaches: "works until a node dies; then its users are logged out",
    },
    Preset {
        mode: Mode::Replicated,
        name: "replicated",
        lb_strategy: Strategy::RoundRobin,
        node_flags: &["--replication", "all-to-all"],
        replication: true,
        dynamic_membership: false,
        redis: RedisTopology::None,
        jwt: false,
        sessions_live: "memory, copied to every node",
        teaches: "survives node loss; stale reads and lost updates under replication lag",
    },
    Preset {
        mode: Mode::StickyReplicated,
        name: "sticky-replicated",
        lb_strategy: Strategy::StickyCookie,
        node_flags: &["--replication", "all-to-all"],
        replication: true,
        dynamic_membership: false,
        redis: RedisTopology::None,
        jwt: false,
        sessions_live: "memory, copied to every node",
        teaches: "the classic session cluster (Tomcat DeltaManager + mod_jk): sticky for speed, copies for failover",
    },
    Preset {
        mode: Mode::Backup,
        name: "backup",
        lb_strategy: Strategy::StickyCookie,
        node_flags: &["--replication", "backup", "--backups", "1"],
        replication: true,
        dynamic_membership: true,
        redis: RedisTopology::None,
        jwt: false,
        sessions_live: "memory, on two owners per session chosen by hashing its id over the members (Tomcat BackupManager, Infinispan owners=2)",
        teaches: "copies that do not grow with the cluster: each write is copied once, at 16 nodes as at 2; a node that does not own a session fetches it; nodes join and leave without restarts",
    },
    Preset {
        mode: Mode::Redis,
        name: "redis",
        lb_strategy: Strategy::RoundRobin,
        node_flags: &["--store", "redis"],
        replication: false,
        dynamic_membership: false,
        redis: RedisTopology::Single,
        jwt: false,
        sessions_live: "one shared Redis",
        teaches: "stateless nodes; one more network hop per request; Redis is the new single point of failure",
    },
    Preset {
        mode: Mode::RedisHa,
        name: "redis-ha",
        lb_strategy: Strategy::RoundRobin,
        node_flags: &["--store", "redis"],
        replication: false,
        dynamic_membership: false,
        redis: RedisTopology::Sentinel,
        jwt: false,
        sessions_live: "a Redis primary, copied asynchronously to one replica; three Sentinels promote the replica when the primary dies",
        teaches: "the store survives its primary's death after a few seconds of refused writes; what the replica had not received yet is lost, though it was acknowledged",
    },
    Preset {
        mode: Mode::Jwt,
        name: "jwt",
        lb_strategy: Strategy::RoundRobin,
        node_flags: &["--auth", "jwt", "--replication", "all-to-all"],
        replication: true,
        dynamic_membership: false,
        redis: RedisTopology::None,
        jwt: true,
        sessions_live: "signed tokens (who you are); refresh families, deny-list and app data in memory, copied to every node",
        teaches: "no session lookup to know who you are, until logout and refresh need storage again; a token can't be taken back before it expires",
    },
];

/// The Redis a mode needs beside its nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisTopology {
    /// None: the sessions live in the nodes (or in tokens).
    None,
    /// One `redis-server` ([`crate::redis`]), which `up` starts unless
    /// given `--redis-url`.
    Single,
    /// A primary, a replica and three Sentinels ([`crate::redis_ha`]),
    /// always the lab's own: the nodes find the primary through the
    /// Sentinels.
    Sentinel,
}

impl Preset {
    /// Whether the mode keeps its sessions in Redis.
    pub fn needs_redis(&self) -> bool {
        self.redis != RedisTopology::None
    }
}

/// The names of all modes, comma separated, for error messages.
pub fn mode_names() -> String {
    PRESETS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn every_mode_has_exactly_one_row_with_its_cli_name() {
        for mode in Mode::ALL {
            let rows: Vec<_> = PRESETS.iter().filter(|p| p.mode == mode).collect();
            assert_eq!(rows.len(), 1, "{mode:?}");
            let cli_name = mode.to_possible_value().unwrap().get_name().to_string();
            assert_eq!(rows[0].name, cli_name);
            assert_eq!(serde_json::to_value(mode).unwrap(), cli_name.as_str());
        }
    }

    #[test]
    fn matrix_matches_the_design() {
        let strat = |m: Mode| m.preset().lb_strategy;
        assert_eq!(strat(Mode::Local), Strategy::RoundRobin);
        assert_eq!(strat(Mode::Sticky), Strategy::StickyCookie);
        assert_eq!(strat(Mode::Replicated), Strategy::RoundRobin);
        assert_eq!(strat(Mode::StickyReplicated), Strategy::StickyCookie);
        assert!(!Mode::Local.preset().replication);
        assert!(!Mode::Sticky.preset().replication);
        assert!(Mode::Replicated.preset().replication);
        assert!(Mode::StickyReplicated.preset().replication);
        assert_eq!(strat(Mode::Backup), Strategy::StickyCookie);
        assert!(Mode::Backup.preset().replication && Mode::Backup.preset().dynamic_membership);
        assert_eq!(
            PRESETS.iter().filter(|p| p.dynamic_membership).count(),
            1,
            "only backup finds its members at run time"
        );
        assert_eq!(strat(Mode::Redis), Strategy::RoundRobin);
        assert_eq!(strat(Mode::Jwt), Strategy::RoundRobin);
        assert!(Mode::Redis.preset().needs_redis() && !Mode::Redis.preset().replication);
        assert_eq!(Mode::RedisHa.preset().redis, RedisTopology::Sentinel);
        assert_eq!(strat(Mode::RedisHa), Strategy::RoundRobin);
        assert!(Mode::Jwt.preset().jwt && Mode::Jwt.preset().replication);
        assert_eq!(PRESETS.iter().filter(|p| p.needs_redis()).count(), 2);
    }
}
