//! The node's replication flags: `--replication off|all-to-all|backup` and the
//! `--peer ID=HOST:PORT` list.
//!
//! These are how an operator names the cluster, so they live with the
//! runtime that dials the peers; the protocol core knows peers only by id.
//! A malformed value is refused with a [`ConfigError`] that names the flag.

use serde::{Deserialize, Serialize};
use sessionlab_replication_core::ConfigError;

use sessionlab_wire::addr::BadHostPort;

use crate::PeerAddr;

/// `--replication off|all-to-all|backup`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplicationMode {
    #[default]
    Off,
    AllToAll,
    /// Each session on its `--backups + 1` owners only.
    Backup,
}

sessionlab_replication_core::keyword_enum!(ReplicationMode, "replication", {
    Off => "off",
    AllToAll => "all-to-all",
    Backup => "backup",
});

/// Parse one `--peer` value: `node-2=127.0.0.1:9082`, or with a host name
/// (`node-2=node-2:9081`, resolved when connecting; see [`PeerAddr`]).
pub fn parse_peer(spec: &str) -> Result<(String, PeerAddr), ConfigError> {
    let bad = |why: &str| {
        ConfigError::Invalid(format!(
            "--peer must look like node-2=127.0.0.1:9082 or node-2=node-2:9081, not {spec:?}: {why}"
        ))
    };
    let (id, addr) = spec.split_once('=').ok_or_else(|| bad("no '='"))?;
    let id = id.trim();
    let valid_id = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !valid_id {
        return Err(bad("the id must be 1 to 64 of A-Z a-z 0-9 - _ ."));
    }
    let addr = addr
        .trim()
        .parse()
        .map_err(|e: BadHostPort| bad(&e.to_string()))?;
    Ok((id.to_owned(), addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse() {
        assert_eq!(
            parse_peer("node-2=127.0.0.1:9082").unwrap(),
            (
                "node-2".to_owned(),
                PeerAddr::Socket("127.0.0.1:9082".parse().unwrap())
            )
        );
        assert_eq!(
            parse_peer("node-2=node-2:9081").unwrap().1.to_string(),
            "node-2:9081"
        );
        for bad in [
            "node-2",
            "=127.0.0.1:1",
            "node-2=localhost",
            "node-2=127.0.0.1",
            "a b=127.0.0.1:1",
        ] {
            assert!(parse_peer(bad).is_err(), "{bad}");
        }
        assert_eq!(
            "all-to-all".parse::<ReplicationMode>().unwrap(),
            ReplicationMode::AllToAll
        );
        assert!("all".parse::<ReplicationMode>().is_err());
    }
}
