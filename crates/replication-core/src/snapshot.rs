//! Joining: a starting replica pulls a snapshot before it reports ready.
//!
//! A node that starts (for the first time, or after a crash that lost its
//! memory) has an empty store. If the load balancer sent it users at once,
//! they would all look logged out. So, like Tomcat's session state transfer
//! when a member joins, the replica first copies the state from a live peer:
//!
//! ```text
//!   joiner                                  peer (ready)
//!   | <------------- heartbeat ready=true --- |   the joiner learns who is up
//!   | -- snapshot_request after=start ------> |
//!   | <-- snapshot_page (start, k] 1024 ----- |   sessions and tombstones
//!   | -- snapshot_request after=k ----------> |
//!   | <-- snapshot_page (k, end] 17 --------- |   last page: ready
//! ```
//!
//! Pages are bounded by entry count and bytes and go in id order, so the
//! transfer is resumable: if the peer goes down or a reply is lost, the
//! joiner asks again (the same or another peer) from the last id it has.
//! Writes made meanwhile reach the joiner through normal replication (its
//! peers see its heartbeats and replicate to it at once), so when the last
//! page arrives it is caught up.
//!
//! Which peer: one that reports itself ready. At a cold start nobody is
//! ready; after `join_grace_ms` any live peer will do (everyone is empty
//! then anyway). If nothing works within `join_timeout_ms` the replica
//! reports ready anyway, with a warning: a node that can never start is
//! worse than a node that starts without its peers' sessions.

use sessionlab_session::{MemoryStore, SessionId};

use crate::antientropy::{Held, held_after};
use crate::message::{Message, SnapshotEntry};
use crate::tombstones::Tombstones;

/// Where a replica is in joining.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Join {
    /// Looking for a peer to copy from; resumes after `after`.
    Waiting { after: Option<SessionId> },
    /// Asked `from` for the page after `after` at `requested_ms`.
    Fetching {
        from: String,
        after: Option<SessionId>,
        requested_ms: u64,
    },
    /// Caught up (or gave up waiting).
    Ready,
}

/// Build the snapshot page of ids after `after`, bounded by entries and
/// bytes (at least one entry if any follows).
pub(crate) fn page(
    store: &MemoryStore,
    tombs: &Tombstones,
    after: Option<SessionId>,
    max_entries: usize,
    max_bytes: usize,
    now_ms: u64,
) -> Message {
    let (held, mut more) = held_after(store, tombs, after.as_ref(), max_entries, now_ms);
    let mut entries = Vec::new();
    let mut bytes = 0;
    let mut upto = None;
    for (id, h) in held {
        let entry = match h {
            Some(Held::Session(s)) => Some(SnapshotEntry::Session(s)),
            Some(Held::Tombstone(d)) => Some(SnapshotEntry::Tombstone(d)),
            None => None,
        };
        let size = match &entry {
            Some(SnapshotEntry::Session(s)) => s.size_bytes() + 32,
            _ => 96,
        };
        if !entries.is_empty() && bytes + size > max_bytes {
            // The byte budget ends the page before this id.
            more = true;
            break;
        }
        bytes += size;
        entries.extend(entry);
        upto = Some(id);
    }
    Message::SnapshotPage {
        after,
        upto: if more { upto } else { None },
        entries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_ids::id;
    use serde_json::{Map, Value};
    use sessionlab_session::{MemoryStoreConfig, Session, Version};

    #[test]
    fn pages_are_bounded_by_bytes_and_resume_in_order() {
        let st = MemoryStore::new(MemoryStoreConfig::default());
        let tombs = Tombstones::new(10);
        for c in ['a', 'b', 'c'] {
            let mut s = Session::new(id(c), 0, 1_000_000, 10_000_000);
            let mut m = Map::new();
            m.insert("blob".into(), Value::from("x".repeat(1000)));
            s.set_data(&m);
            s.version = Version::new(1, "n1");
            st.apply_with(s, |_| true);
        }
        let mut after = None;
        let mut seen = Vec::new();
        for _ in 0..10 {
            let Message::SnapshotPage { upto, entries, .. } =
                page(&st, &tombs, after.clone(), 10, 2_000, 0)
            else {
                unreachable!()
            };
            assert!(entries.len() <= 1, "2000 bytes hold one 1 KB session");
            seen.extend(entries.iter().map(|e| e.id().clone()));
            match upto {
                Some(u) => after = Some(u),
                None => break,
            }
        }
        assert_eq!(seen, [id('a'), id('b'), id('c')]);
    }
}
