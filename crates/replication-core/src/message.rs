//! The messages replicas exchange, and their JSON form.
//!
//! Replicas never call each other; they send *messages*, grouped per peer in
//! a [`Batch`]. Every message is one-way: a request and its reply are two
//! messages, each in some later batch in its own direction. That keeps the
//! protocol core free of I/O (it only appends to an outbox) and lets the
//! simulation lose, duplicate and reorder any of them independently.
//!
//! Data messages change sessions:
//!
//! - [`Upsert`]: the whole session record (sessions are small, so full state
//!   is simpler and more robust than deltas: any single upsert repairs a copy,
//!   whatever was lost before it). With attribute granularity the record
//!   carries its per-key stamps (`"stamps"`, absent otherwise), checked by
//!   [`Batch::validate`] like every other list.
//! - [`Delete`]: a tombstone: the session id is dead for good.
//! - `Touch`: a new last-access time, without a new version.
//!
//! Control messages keep the cluster in step: `Heartbeat` (liveness and
//! readiness), `Ack` (which writes a peer applied, for synchronous acks),
//! `SnapshotRequest`/`SnapshotPage` (a joining replica pulls the state) and
//! `DigestRequest`/`Digest` (anti-entropy compares what two replicas hold).
//!
//! Peers send batches in the compact binary form of [`crate::codec`]. The
//! JSON form here is the readable one (docs, traces, hand-made requests;
//! a receiver still accepts it). It uses serde's *externally tagged* form,
//! `{"upsert": {...}}`: it is the only enum form that keeps the session
//! data as raw JSON text without re-parsing it (serde cannot buffer a
//! `RawValue`).
//!
//! An upsert is [`Shared`]: the one message a local write makes is queued
//! for every peer without a copy of the session, and encoded once.
//!
//! Everything that comes from the network has a size: [`Batch::validate`]
//! refuses batches with more than [`MAX_BATCH_MESSAGES`] messages or lists
//! longer than [`MAX_LIST_ENTRIES`], so a peer (even a confused one) cannot
//! make a replica allocate without bound.

use std::fmt;

use serde::{Deserialize, Serialize};
use sessionlab_session::{MAX_REMOVED_KEY_BYTES, MAX_REMOVED_KEYS, Session, SessionId, Version};

use crate::acks::{AckLabel, AckLabels};
use crate::shared::Shared;

/// Most messages a batch may carry. The transport's byte limit applies too.
pub const MAX_BATCH_MESSAGES: usize = 4096;
/// Most entries in one list inside a message (digest entries, snapshot
/// entries, acknowledged write ids).
pub const MAX_LIST_ENTRIES: usize = 4096;
/// Longest node id in a batch or a version (the `--peer` rule: 1 to 64).
pub const MAX_NODE_ID_LEN: usize = 64;
/// Longest `user` of a replicated session.
pub const MAX_USER_LEN: usize = 256;
/// Lamport values at or above this are refused: a peer (confused or
/// hostile) that sent `u64::MAX` would otherwise move every clock to the
/// end of its range, and the next local write would overflow.
pub const MAX_LAMPORT: u64 = sessionlab_session::MAX_LAMPORT;

/// Approximate wire bytes of a message's fixed part (field names, version).
const MESSAGE_OVERHEAD: usize = 96;
/// Approximate wire bytes of one digest entry.
const DIGEST_ENTRY_BYTES: usize = 128;

/// The messages from one replica to another, sent as one HTTP request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The sending replica's node id.
    pub from: String,
    /// The receiving replica's node id (a misrouted batch is refused).
    pub to: String,
    /// Per-sender sequence number, to match the send result to the batch.
    pub seq: u64,
    /// The sender's clock when it sent the batch (ms since the Unix epoch).
    pub sent_ms: u64,
    pub messages: Vec<Message>,
}

/// One message inside a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Message {
    Upsert(Shared<Upsert>),
    Delete(Delete),
    /// The session was accessed at `at_ms`. Merged by maximum, so touches
    /// commute and repeat harmlessly.
    Touch {
        id: SessionId,
        at_ms: u64,
    },
    /// "I am alive." `boot` identifies the sender's incarnation (a restart
    /// changes it: the peer lost its memory); `ready` tells whether it has
    /// caught up after joining.
    Heartbeat {
        boot: u64,
        ready: bool,
    },
    /// The receiver's writes with these ids were applied by the sender.
    Ack {
        writes: Vec<u64>,
    },
    /// The receiver's conditional writes (consistent policy) with these ids
    /// were refused by the sender: it holds a newer copy, which follows as a
    /// repair in the same batch.
    Refused {
        writes: Vec<u64>,
    },
    /// "Send me the sessions and tombstones with ids after `after`."
    SnapshotRequest {
        after: Option<SessionId>,
    },
    /// The reply: entries with ids in `(after, upto]`, in id order. `upto`
    /// is `None` on the last page (the range reaches the end).
    SnapshotPage {
        after: Option<SessionId>,
        upto: Option<SessionId>,
        entries: Vec<SnapshotEntry>,
    },
    /// "Tell me what you hold with ids after `after`" (anti-entropy).
    DigestRequest {
        round: u64,
        after: Option<SessionId>,
    },
    /// The reply: every live session and tombstone the sender holds with an
    /// id in `(after, upto]` (`upto: None` = to the end).
    Digest {
        round: u64,
        after: Option<SessionId>,
        upto: Option<SessionId>,
        entries: Vec<DigestEntry>,
    },
}

/// The whole session as its origin wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upsert {
    pub session: Session,
    /// The origin's clock at the write, for the lag histogram. `None` for
    /// repairs (anti-entropy, snapshot), whose age says nothing about lag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_ms: Option<u64>,
    /// The same instant in microseconds, when the origin has a lag clock
    /// ([`Replica::set_lag_clock`](crate::Replica::set_lag_clock)): only for
    /// the lag histogram, which needs finer steps than whole milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_us: Option<u64>,
    /// Set when the origin waits for acknowledgements of this write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<u64>,
    /// With `--partition-policy consistent`: the version the write was made
    /// from (`0@` for a new session). A peer holding a newer copy, or any
    /// copy of a "new" session, neither applies nor acks it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<Version>,
}

/// A deleted session: the tombstone every replica keeps until `expires_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delete {
    pub id: SessionId,
    /// The version of the delete itself (newer than every copy it removed).
    pub version: Version,
    /// When the tombstone may be forgotten: after the session would have
    /// expired anyway, so no late copy of it can still be alive.
    pub expires_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_ms: Option<u64>,
    /// See [`Upsert::origin_us`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_us: Option<u64>,
    /// Set when the origin waits for acknowledgements of this delete (a
    /// logout with `--replication-ack all|quorum`), as [`Upsert::ack`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<u64>,
}

/// One entry of a snapshot page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotEntry {
    Session(Session),
    Tombstone(Delete),
}

impl SnapshotEntry {
    pub fn id(&self) -> &SessionId {
        match self {
            SnapshotEntry::Session(s) => &s.id,
            SnapshotEntry::Tombstone(d) => &d.id,
        }
    }
}

/// What a replica holds for one id: enough to decide who is behind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestEntry {
    pub id: SessionId,
    pub version: Version,
    /// Last access of a live session (0 for a tombstone).
    #[serde(default)]
    pub last_access_ms: u64,
    #[serde(default)]
    pub deleted: bool,
    /// The content digest of a live session (`order.rs`), to tell
    /// apart two writes that collided on one version.
    #[serde(default)]
    pub content: u64,
}

/// Why a batch is refused before any of it is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("batch addressed to {0}, not to this node")]
    Misrouted(String),
    #[error("batch from {0}, which is not a configured peer")]
    UnknownPeer(String),
    #[error("batch too large: {0}")]
    TooLarge(String),
    #[error("invalid batch: {0}")]
    Invalid(String),
}

impl Rejected {
    /// A short label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejected::Misrouted(_) => "misrouted",
            Rejected::UnknownPeer(_) => "unknown_peer",
            Rejected::TooLarge(_) => "oversized",
            Rejected::Invalid(_) => "invalid",
        }
    }
}

pub(crate) fn check_node_id(id: &str) -> Result<(), Rejected> {
    if id.len() > MAX_NODE_ID_LEN {
        return Err(Rejected::TooLarge(format!(
            "a node id of {} bytes, limit {MAX_NODE_ID_LEN}",
            id.len()
        )));
    }
    Ok(())
}

fn check_version(v: &Version) -> Result<(), Rejected> {
    check_node_id(&v.node)?;
    if v.lamport >= MAX_LAMPORT {
        return Err(Rejected::Invalid(format!(
            "lamport {} at or above the limit {MAX_LAMPORT}",
            v.lamport
        )));
    }
    Ok(())
}

fn check_session(s: &Session) -> Result<(), Rejected> {
    check_version(&s.version)?;
    let user = s.user.as_deref().map_or(0, str::len);
    if user > MAX_USER_LEN {
        return Err(Rejected::TooLarge(format!(
            "a user of {user} bytes, limit {MAX_USER_LEN}"
        )));
    }
    check_stamps(s)
}

/// Per-key stamps (attribute granularity): at most one per byte of data
/// (a key takes several), the removals within their bounds, and no stamp
/// above the session's own version (the write that made the copy is the
/// newest it can contain).
fn check_stamps(s: &Session) -> Result<(), Rejected> {
    let st = &s.stamps;
    if st.set.len() > s.data_len() {
        return Err(Rejected::TooLarge(format!(
            "{} key stamps for {} bytes of data",
            st.set.len(),
            s.data_len()
        )));
    }
    let removed_bytes: usize = st.removed.keys().map(String::len).sum();
    if st.removed.len() > MAX_REMOVED_KEYS || removed_bytes > MAX_REMOVED_KEY_BYTES {
        return Err(Rejected::TooLarge(format!(
            "{} removed keys ({removed_bytes} bytes), limit {MAX_REMOVED_KEYS} \
             ({MAX_REMOVED_KEY_BYTES} bytes)",
            st.removed.len()
        )));
    }
    for v in st.set.values().chain(st.removed.values()) {
        check_version(v)?;
        if *v > s.version {
            return Err(Rejected::Invalid(format!(
                "a key stamp {v} above the session's version {}",
                s.version
            )));
        }
    }
    Ok(())
}

impl Batch {
    /// Check the sizes of everything in the batch (see the module docs).
    pub fn validate(&self) -> Result<(), Rejected> {
        if self.messages.len() > MAX_BATCH_MESSAGES {
            return Err(Rejected::TooLarge(format!(
                "{} messages, limit {MAX_BATCH_MESSAGES}",
                self.messages.len()
            )));
        }
        for m in &self.messages {
            let n = match m {
                Message::Ack { writes } | Message::Refused { writes } => writes.len(),
                Message::SnapshotPage { entries, .. } => entries.len(),
                Message::Digest { entries, .. } => entries.len(),
                _ => 0,
            };
            if n > MAX_LIST_ENTRIES {
                return Err(Rejected::TooLarge(format!(
                    "a {} message with {n} entries, limit {MAX_LIST_ENTRIES}",
                    m.kind()
                )));
            }
        }
        for id in [&self.from, &self.to] {
            check_node_id(id)?;
        }
        for m in &self.messages {
            match m {
                Message::Upsert(u) => check_session(&u.session)?,
                Message::Delete(d) => check_version(&d.version)?,
                Message::SnapshotPage { entries, .. } => {
                    for e in entries {
                        match e {
                            SnapshotEntry::Session(s) => check_session(s)?,
                            SnapshotEntry::Tombstone(d) => check_version(&d.version)?,
                        }
                    }
                }
                Message::Digest { entries, .. } => {
                    for e in entries {
                        check_version(&e.version)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether the batch carries data messages (whose loss needs a resync).
    pub fn has_data(&self) -> bool {
        self.messages.iter().any(Message::is_data)
    }
}

impl Message {
    /// A repair: the whole session as held here, with no origin time (so
    /// no lag sample, and a repair is told apart by it) and no ack.
    pub fn repair(session: Session) -> Message {
        Message::Upsert(Shared::new(Upsert {
            session,
            origin_ms: None,
            origin_us: None,
            ack: None,
            base: None,
        }))
    }

    /// The message's name as the JSON tag spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Upsert(_) => "upsert",
            Message::Delete(_) => "delete",
            Message::Touch { .. } => "touch",
            Message::Heartbeat { .. } => "heartbeat",
            Message::Ack { .. } => "ack",
            Message::Refused { .. } => "refused",
            Message::SnapshotRequest { .. } => "snapshot_request",
            Message::SnapshotPage { .. } => "snapshot_page",
            Message::DigestRequest { .. } => "digest_request",
            Message::Digest { .. } => "digest",
        }
    }

    /// Data messages change sessions; the rest is control.
    pub fn is_data(&self) -> bool {
        matches!(
            self,
            Message::Upsert(_) | Message::Delete(_) | Message::Touch { .. }
        )
    }

    /// Approximate bytes on the wire, for batch and queue budgets.
    pub fn approx_bytes(&self) -> usize {
        MESSAGE_OVERHEAD
            + match self {
                Message::Upsert(u) => u.session.size_bytes(),
                Message::Ack { writes } | Message::Refused { writes } => writes.len() * 12,
                Message::SnapshotPage { entries, .. } => entries
                    .iter()
                    .map(|e| match e {
                        SnapshotEntry::Session(s) => s.size_bytes() + 32,
                        SnapshotEntry::Tombstone(_) => MESSAGE_OVERHEAD,
                    })
                    .sum(),
                Message::Digest { entries, .. } => entries.len() * DIGEST_ENTRY_BYTES,
                _ => 0,
            }
    }
}

fn short(id: &Option<SessionId>) -> String {
    id.as_ref()
        .map_or_else(|| "start".to_owned(), |i| i.to_string())
}

/// One readable line: `upsert 3fa9c1.. v=17@node-1`. Ids appear only in
/// their short form, as everywhere in logs.
impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Upsert(u) => {
                write!(f, "upsert {} v={}", u.session.id, u.session.version)?;
                if u.origin_ms.is_none() {
                    write!(f, " (repair)")?;
                }
                if let Some(w) = u.ack {
                    write!(f, " ack#{}", AckLabel(w))?;
                }
                Ok(())
            }
            Message::Delete(d) => {
                write!(f, "delete {} v={}", d.id, d.version)?;
                if let Some(w) = d.ack {
                    write!(f, " ack#{}", AckLabel(w))?;
                }
                Ok(())
            }
            Message::Touch { id, at_ms } => write!(f, "touch {id} at={at_ms}"),
            Message::Heartbeat { boot, ready } => {
                write!(f, "heartbeat boot={boot} ready={ready}")
            }
            Message::Ack { writes } => write!(f, "ack {}", AckLabels(writes)),
            Message::Refused { writes } => write!(f, "refused {}", AckLabels(writes)),
            Message::SnapshotRequest { after } => {
                write!(f, "snapshot_request after={}", short(after))
            }
            Message::SnapshotPage {
                after,
                upto,
                entries,
            } => write!(
                f,
                "snapshot_page ({}, {}] {} entries",
                short(after),
                upto.as_ref()
                    .map_or_else(|| "end".to_owned(), |i| i.to_string()),
                entries.len()
            ),
            Message::DigestRequest { round, after } => {
                write!(f, "digest_request #{round} after={}", short(after))
            }
            Message::Digest {
                round,
                after,
                upto,
                entries,
            } => write!(
                f,
                "digest #{round} ({}, {}] {} entries",
                short(after),
                upto.as_ref()
                    .map_or_else(|| "end".to_owned(), |i| i.to_string()),
                entries.len()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_ids::id;

    #[test]
    fn upsert_round_trips_with_raw_session_data() {
        let mut s = Session::new(id('a'), 1_000, 60_000, 3_600_000);
        s.version = Version::new(17, "node-1");
        let m = Message::Upsert(
            Upsert {
                session: s,
                origin_ms: Some(1_000),
                origin_us: None,
                ack: Some(3),
                base: None,
            }
            .into(),
        );
        let json = serde_json::to_string(&m).unwrap();
        assert!(
            json.starts_with(r#"{"upsert":{"session":{"id":"aaaa"#),
            "{json}"
        );
        assert!(json.contains(r#""data":{}"#), "{json}");
        let back: Message = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.to_string(), "upsert aaaaaa.. v=17@node-1 ack#3");
    }

    #[test]
    fn a_bad_session_id_in_a_message_is_a_parse_error_not_a_panic() {
        let json = r#"{"touch":{"id":"short","at_ms":1}}"#;
        assert!(serde_json::from_str::<Message>(json).is_err());
        let json = r#"{"launch_missiles":{}}"#;
        assert!(serde_json::from_str::<Message>(json).is_err());
    }

    #[test]
    fn oversized_lists_are_refused() {
        let mut b = Batch {
            from: "node-1".into(),
            to: "node-2".into(),
            seq: 1,
            sent_ms: 0,
            messages: vec![Message::Ack {
                writes: vec![0; MAX_LIST_ENTRIES + 1],
            }],
        };
        assert!(matches!(b.validate(), Err(Rejected::TooLarge(_))));
        b.messages = vec![
            Message::Heartbeat {
                boot: 1,
                ready: true
            };
            MAX_BATCH_MESSAGES + 1
        ];
        assert!(matches!(b.validate(), Err(Rejected::TooLarge(_))));
        b.messages.truncate(3);
        assert_eq!(b.validate(), Ok(()));
        assert!(!b.has_data());
    }

    #[test]
    fn huge_lamports_and_oversized_fields_are_refused() {
        let id = SessionId::generate();
        let delete = |lamport: u64, node: &str| Batch {
            from: "node-2".into(),
            to: "node-1".into(),
            seq: 1,
            sent_ms: 0,
            messages: vec![Message::Delete(Delete {
                id: id.clone(),
                version: Version::new(lamport, node),
                expires_ms: 1,
                origin_ms: None,
                origin_us: None,
                ack: None,
            })],
        };
        assert_eq!(delete(MAX_LAMPORT - 1, "node-2").validate(), Ok(()));
        for l in [MAX_LAMPORT, u64::MAX - 1, u64::MAX] {
            assert!(matches!(
                delete(l, "node-2").validate(),
                Err(Rejected::Invalid(_))
            ));
        }
        let long = "n".repeat(MAX_NODE_ID_LEN + 1);
        assert!(matches!(
            delete(1, &long).validate(),
            Err(Rejected::TooLarge(_))
        ));
        let mut b = delete(1, "node-2");
        b.from = long;
        assert!(matches!(b.validate(), Err(Rejected::TooLarge(_))));
        let mut s = Session::new(id.clone(), 0, 1, 1);
        s.user = Some("u".repeat(MAX_USER_LEN + 1));
        let b = Batch {
            messages: vec![Message::SnapshotPage {
                after: None,
                upto: None,
                entries: vec![SnapshotEntry::Session(s)],
            }],
            ..delete(1, "node-2")
        };
        assert!(matches!(b.validate(), Err(Rejected::TooLarge(_))));
    }

    #[test]
    fn key_stamps_are_checked_like_versions() {
        let mut s = Session::new(SessionId::generate(), 0, 1, 1);
        s.version = Version::new(5, "node-2");
        let upsert = |s: Session| Batch {
            from: "node-2".into(),
            to: "node-1".into(),
            seq: 1,
            sent_ms: 0,
            messages: vec![Message::repair(s)],
        };
        let mut ok = s.clone();
        ok.stamps
            .removed
            .insert("cart".into(), Version::new(4, "node-1"));
        assert_eq!(upsert(ok).validate(), Ok(()));
        let mut above = s.clone();
        above
            .stamps
            .removed
            .insert("cart".into(), Version::new(6, "node-1"));
        assert!(matches!(
            upsert(above).validate(),
            Err(Rejected::Invalid(_))
        ));
        let mut many = s.clone();
        for i in 0..=MAX_REMOVED_KEYS {
            many.stamps
                .removed
                .insert(format!("k{i}"), Version::new(1, "node-1"));
        }
        assert!(matches!(
            upsert(many).validate(),
            Err(Rejected::TooLarge(_))
        ));
        let mut stamps_without_data = s;
        for i in 0..10 {
            stamps_without_data
                .stamps
                .set
                .insert(format!("k{i}"), Version::new(1, "node-1"));
        }
        assert!(matches!(
            upsert(stamps_without_data).validate(),
            Err(Rejected::TooLarge(_))
        ));
    }
}
