//! The binary wire form of a [`Batch`]: what peers send each other.
//!
//! Batches travel in a compact binary encoding ([postcard]: varint
//! integers, length-prefixed strings, no field names), with the JSON form
//! of [`crate::message`] kept for people (the docs, the goldenscript
//! traces, hand-made requests in tests). For a typical upsert the binary
//! form is well under half the JSON: every timestamp is 7 bytes instead of
//! a field name and 13 digits.
//!
//! | byte(s) | what |
//! |---|---|
//! | 0 | [`FORMAT`], the encoding's version (JSON never starts with it: a JSON batch starts with `{`) |
//! | then | postcard of `from`, `to`, `seq`, `sent_ms`, then the messages as a postcard sequence |
//!
//! The HTTP transport names it with [`CONTENT_TYPE`]; a receiver that sees
//! any other content type reads JSON. The bytes that are sent are the bytes
//! that are signed, whatever the encoding.
//!
//! **Encoded once.** The messages are encoded one by one and the sequence
//! is their concatenation (postcard writes no per-element framing), so an
//! upsert queued for every peer ([`Shared`]) is encoded by the first batch
//! that carries it and copied as bytes into the others.
//!
//! **Why mirror types.** postcard is not self-describing: a field left out
//! by `skip_serializing_if` (as the JSON form does with absent options)
//! would shift every field after it, and a `RawValue` can only be read by
//! serde_json. So the wire types here spell every field out, borrow what
//! they can when encoding, and check on decoding what the JSON form
//! checks: session ids by [`SessionId`]'s own parser, the data as JSON
//! text. They destructure the message types exhaustively, so a field added
//! to a message or a session does not compile until it has a place here.
//!
//! Decoding never panics and allocates only what the (bounded) body holds:
//! a sequence's length prefix is a hint serde caps, not a reservation.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sessionlab_session::{KeyStamps, Session, SessionId, Version};

use crate::message::{Batch, Delete, DigestEntry, Message, SnapshotEntry, Upsert};
use crate::shared::Shared;

/// The first byte of a binary batch: the version of this encoding (2: the
/// session's per-key stamps, which 1 did not carry).
pub const FORMAT: u8 = 2;
/// The HTTP content type of a binary batch.
pub const CONTENT_TYPE: &str = "application/vnd.sessionlab.batch.v2";

/// Why a binary body is not a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty body")]
    Empty,
    #[error("unknown batch encoding {0} (this node speaks {FORMAT})")]
    Format(u8),
    #[error("malformed batch: {0}")]
    Malformed(String),
    #[error("{0} trailing bytes after the batch")]
    Trailing(usize),
    #[error("session data is not JSON: {0}")]
    Data(String),
    /// More messages than [`crate::MAX_BATCH_MESSAGES`], seen from the
    /// sequence's length before any message is decoded.
    #[error("{0} messages, limit {max}", max = crate::MAX_BATCH_MESSAGES)]
    TooMany(u64),
}

#[derive(Serialize, Deserialize)]
struct WireSession<'a> {
    id: Cow<'a, SessionId>,
    #[serde(borrow)]
    user: Option<Cow<'a, str>>,
    /// The JSON text of the data.
    #[serde(borrow)]
    data: Cow<'a, str>,
    created_ms: u64,
    last_access_ms: u64,
    idle_timeout_ms: u64,
    absolute_timeout_ms: u64,
    version: Cow<'a, Version>,
    /// Per-key stamps (attribute granularity; both empty otherwise, one
    /// byte each on the wire).
    stamps_set: Cow<'a, BTreeMap<String, Version>>,
    stamps_removed: Cow<'a, BTreeMap<String, Version>>,
}

#[derive(Serialize, Deserialize)]
struct WireUpsert<'a> {
    #[serde(borrow)]
    session: WireSession<'a>,
    origin_ms: Option<u64>,
    origin_us: Option<u64>,
    ack: Option<u64>,
    base: Option<Cow<'a, Version>>,
}

#[derive(Serialize, Deserialize)]
struct WireDelete<'a> {
    id: Cow<'a, SessionId>,
    version: Cow<'a, Version>,
    expires_ms: u64,
    origin_ms: Option<u64>,
    origin_us: Option<u64>,
    ack: Option<u64>,
}

#[derive(Serialize, Deserialize)]
enum WireEntry<'a> {
    Session(#[serde(borrow)] WireSession<'a>),
    Tombstone(#[serde(borrow)] WireDelete<'a>),
}

/// [`Message`], variant for variant, in the same order.
#[derive(Serialize, Deserialize)]
enum WireMessage<'a> {
    Upsert(#[serde(borrow)] WireUpsert<'a>),
    Delete(#[serde(borrow)] WireDelete<'a>),
    Touch {
        id: Cow<'a, SessionId>,
        at_ms: u64,
    },
    Heartbeat {
        boot: u64,
        ready: bool,
    },
    Ack {
        writes: Cow<'a, [u64]>,
    },
    Refused {
        writes: Cow<'a, [u64]>,
    },
    SnapshotRequest {
        after: Option<Cow<'a, SessionId>>,
    },
    SnapshotPage {
        after: Option<Cow<'a, SessionId>>,
        upto: Option<Cow<'a, SessionId>>,
        #[serde(borrow)]
        entries: Vec<WireEntry<'a>>,
    },
    DigestRequest {
        round: u64,
        after: Option<Cow<'a, SessionId>>,
    },
    Digest {
        round: u64,
        after: Option<Cow<'a, SessionId>>,
        upto: Option<Cow<'a, SessionId>>,
        entries: Cow<'a, [DigestEntry]>,
    },
}

/// The whole batch, for decoding (encoding writes the same layout piecewise).
#[derive(Serialize, Deserialize)]
struct WireBatch<'a> {
    #[serde(borrow)]
    from: Cow<'a, str>,
    #[serde(borrow)]
    to: Cow<'a, str>,
    seq: u64,
    sent_ms: u64,
    #[serde(borrow)]
    messages: Vec<WireMessage<'a>>,
}

/// The head of a batch: written before the messages by the encoder, and
/// read on its own by the decoder to find the message count first.
#[derive(Serialize, Deserialize)]
struct WireHead<'a> {
    from: &'a str,
    to: &'a str,
    seq: u64,
    sent_ms: u64,
}

fn session_out(s: &Session) -> WireSession<'_> {
    let Session {
        id,
        user,
        data,
        created_ms,
        last_access_ms,
        idle_timeout_ms,
        absolute_timeout_ms,
        version,
        stamps,
    } = s;
    WireSession {
        id: Cow::Borrowed(id),
        user: user.as_deref().map(Cow::Borrowed),
        data: Cow::Borrowed(data.get()),
        created_ms: *created_ms,
        last_access_ms: *last_access_ms,
        idle_timeout_ms: *idle_timeout_ms,
        absolute_timeout_ms: *absolute_timeout_ms,
        version: Cow::Borrowed(version),
        stamps_set: Cow::Borrowed(&stamps.set),
        stamps_removed: Cow::Borrowed(&stamps.removed),
    }
}

fn session_in(w: WireSession<'_>) -> Result<Session, DecodeError> {
    let data =
        RawValue::from_string(w.data.into_owned()).map_err(|e| DecodeError::Data(e.to_string()))?;
    Ok(Session {
        id: w.id.into_owned(),
        user: w.user.map(Cow::into_owned),
        data,
        created_ms: w.created_ms,
        last_access_ms: w.last_access_ms,
        idle_timeout_ms: w.idle_timeout_ms,
        absolute_timeout_ms: w.absolute_timeout_ms,
        version: w.version.into_owned(),
        stamps: KeyStamps {
            set: w.stamps_set.into_owned(),
            removed: w.stamps_removed.into_owned(),
        },
    })
}

fn delete_out(d: &Delete) -> WireDelete<'_> {
    let Delete {
        id,
        version,
        expires_ms,
        origin_ms,
        origin_us,
        ack,
    } = d;
    WireDelete {
        id: Cow::Borrowed(id),
        version: Cow::Borrowed(version),
        expires_ms: *expires_ms,
        origin_ms: *origin_ms,
        origin_us: *origin_us,
        ack: *ack,
    }
}

fn delete_in(w: WireDelete<'_>) -> Delete {
    Delete {
        id: w.id.into_owned(),
        version: w.version.into_owned(),
        expires_ms: w.expires_ms,
        origin_ms: w.origin_ms,
        origin_us: w.origin_us,
        ack: w.ack,
    }
}

fn upsert_out(u: &Upsert) -> WireUpsert<'_> {
    let Upsert {
        session,
        origin_ms,
        origin_us,
        ack,
        base,
    } = u;
    WireUpsert {
        session: session_out(session),
        origin_ms: *origin_ms,
        origin_us: *origin_us,
        ack: *ack,
        base: base.as_ref().map(Cow::Borrowed),
    }
}

fn borrowed(id: &Option<SessionId>) -> Option<Cow<'_, SessionId>> {
    id.as_ref().map(Cow::Borrowed)
}

fn message_out(m: &Message) -> WireMessage<'_> {
    match m {
        Message::Upsert(u) => WireMessage::Upsert(upsert_out(u)),
        Message::Delete(d) => WireMessage::Delete(delete_out(d)),
        Message::Touch { id, at_ms } => WireMessage::Touch {
            id: Cow::Borrowed(id),
            at_ms: *at_ms,
        },
        Message::Heartbeat { boot, ready } => WireMessage::Heartbeat {
            boot: *boot,
            ready: *ready,
        },
        Message::Ack { writes } => WireMessage::Ack {
            writes: Cow::Borrowed(writes),
        },
        Message::Refused { writes } => WireMessage::Refused {
            writes: Cow::Borrowed(writes),
        },
        Message::SnapshotRequest { after } => WireMessage::SnapshotRequest {
            after: borrowed(after),
        },
        Message::SnapshotPage {
            after,
            upto,
            entries,
        } => WireMessage::SnapshotPage {
            after: borrowed(after),
            upto: borrowed(upto),
            entries: entries
                .iter()
                .map(|e| match e {
                    SnapshotEntry::Session(s) => WireEntry::Session(session_out(s)),
                    SnapshotEntry::Tombstone(d) => WireEntry::Tombstone(delete_out(d)),
                })
                .collect(),
        },
        Message::DigestRequest { round, after } => WireMessage::DigestRequest {
            round: *round,
            after: borrowed(after),
        },
        Message::Digest {
            round,
            after,
            upto,
            entries,
        } => WireMessage::Digest {
            round: *round,
            after: borrowed(after),
            upto: borrowed(upto),
            entries: Cow::Borrowed(entries),
        },
    }
}

fn owned(id: Option<Cow<'_, SessionId>>) -> Option<SessionId> {
    id.map(Cow::into_owned)
}

fn message_in(w: WireMessage<'_>) -> Result<Message, DecodeError> {
    Ok(match w {
        WireMessage::Upsert(u) => Message::Upsert(Shared::new(Upsert {
            session: session_in(u.session)?,
            origin_ms: u.origin_ms,
            origin_us: u.origin_us,
            ack: u.ack,
            base: u.base.map(Cow::into_owned),
        })),
        WireMessage::Delete(d) => Message::Delete(delete_in(d)),
        WireMessage::Touch { id, at_ms } => Message::Touch {
            id: id.into_owned(),
            at_ms,
        },
        WireMessage::Heartbeat { boot, ready } => Message::Heartbeat { boot, ready },
        WireMessage::Ack { writes } => Message::Ack {
            writes: writes.into_owned(),
        },
        WireMessage::Refused { writes } => Message::Refused {
            writes: writes.into_owned(),
        },
        WireMessage::SnapshotRequest { after } => Message::SnapshotRequest {
            after: owned(after),
        },
        WireMessage::SnapshotPage {
            after,
            upto,
            entries,
        } => Message::SnapshotPage {
            after: owned(after),
            upto: owned(upto),
            entries: entries
                .into_iter()
                .map(|e| {
                    Ok(match e {
                        WireEntry::Session(s) => SnapshotEntry::Session(session_in(s)?),
                        WireEntry::Tombstone(d) => SnapshotEntry::Tombstone(delete_in(d)),
                    })
                })
                .collect::<Result<_, DecodeError>>()?,
        },
        WireMessage::DigestRequest { round, after } => Message::DigestRequest {
            round,
            after: owned(after),
        },
        WireMessage::Digest {
            round,
            after,
            upto,
            entries,
        } => Message::Digest {
            round,
            after: owned(after),
            upto: owned(upto),
            entries: entries.into_owned(),
        },
    })
}

/// postcard never fails to encode these types into a `Vec` (no maps of
/// unknown length, no unsupported types); the `expect`s say so.
fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) {
    let taken = std::mem::take(out);
    *out = postcard::to_extend(value, taken).expect("postcard encodes the wire types into a Vec");
}

/// postcard's varint for a sequence length (LEB128).
fn push_varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The binary form of one message. An upsert's is computed once and kept
/// with it ([`Shared`]); the rest are small and encoded per batch.
fn push_message(m: &Message, out: &mut Vec<u8>) {
    match m {
        Message::Upsert(u) => out.extend_from_slice(u.wire(|u| {
            let mut v = Vec::with_capacity(u.session.size_bytes());
            encode_into(&WireMessage::Upsert(upsert_out(u)), &mut v);
            v
        })),
        other => encode_into(&message_out(other), out),
    }
}

/// Encode `batch` for the wire (see the module docs).
pub fn encode(batch: &Batch) -> Vec<u8> {
    let Batch {
        from,
        to,
        seq,
        sent_ms,
        messages,
    } = batch;
    let guess: usize = messages.iter().map(Message::approx_bytes).sum();
    let mut out = Vec::with_capacity(32 + guess);
    out.push(FORMAT);
    encode_into(
        &WireHead {
            from,
            to,
            seq: *seq,
            sent_ms: *sent_ms,
        },
        &mut out,
    );
    push_varint(messages.len() as u64, &mut out);
    for m in messages {
        push_message(m, &mut out);
    }
    out
}

/// Decode a binary batch. Sizes are checked afterwards by
/// [`Batch::validate`], as for JSON.
pub fn decode(body: &[u8]) -> Result<Batch, DecodeError> {
    let (&format, rest) = body.split_first().ok_or(DecodeError::Empty)?;
    if format != FORMAT {
        return Err(DecodeError::Format(format));
    }
    // The message count first: a 4 MiB body of the smallest messages would
    // otherwise decode into millions of the largest variant's size before
    // the limit is checked.
    let malformed = |e: postcard::Error| DecodeError::Malformed(e.to_string());
    let (_, after_head): (WireHead<'_>, _) = postcard::take_from_bytes(rest).map_err(malformed)?;
    let (count, _): (u64, _) = postcard::take_from_bytes(after_head).map_err(malformed)?;
    if count > crate::MAX_BATCH_MESSAGES as u64 {
        return Err(DecodeError::TooMany(count));
    }
    let (w, left): (WireBatch<'_>, _) = postcard::take_from_bytes(rest).map_err(malformed)?;
    if !left.is_empty() {
        return Err(DecodeError::Trailing(left.len()));
    }
    Ok(Batch {
        from: w.from.into_owned(),
        to: w.to.into_owned(),
        seq: w.seq,
        sent_ms: w.sent_ms,
        messages: w
            .messages
            .into_iter()
            .map(message_in)
            .collect::<Result<_, _>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_ids::id;

    fn session(c: char, user: Option<&str>) -> Session {
        let mut s = Session::new(id(c), 1_700_000_000_000, 1_800_000, 28_800_000);
        s.user = user.map(str::to_owned);
        let mut m = serde_json::Map::new();
        m.insert("counter".into(), serde_json::Value::from(41));
        m.insert("cart".into(), serde_json::json!(["tea", "cup"]));
        s.set_data(&m);
        s.version = Version::new(1_234, "node-1");
        s
    }

    /// A copy with per-key stamps (attribute granularity).
    fn stamped(c: char) -> Session {
        let mut s = session(c, Some("bob"));
        s.stamps
            .set
            .insert("cart".into(), Version::new(1_200, "node-2"));
        s.stamps
            .removed
            .insert("coupon".into(), Version::new(1_100, "node-3"));
        s
    }

    fn every_kind() -> Batch {
        let d = Delete {
            id: id('d'),
            version: Version::new(9, "node-2"),
            expires_ms: u64::MAX,
            origin_ms: Some(5),
            origin_us: None,
            ack: Some(3),
        };
        Batch {
            from: "node-1".into(),
            to: "node-2".into(),
            seq: 77,
            sent_ms: 1_700_000_000_123,
            messages: vec![
                Message::Upsert(Shared::new(Upsert {
                    session: session('a', Some("alice")),
                    origin_ms: Some(1_700_000_000_000),
                    origin_us: Some(1_700_000_000_000_123),
                    ack: None,
                    base: Some(Version::new(1_233, "node-1")),
                })),
                Message::Delete(d.clone()),
                Message::Touch {
                    id: id('t'),
                    at_ms: 8,
                },
                Message::Heartbeat {
                    boot: 42,
                    ready: true,
                },
                Message::Ack {
                    writes: vec![1, 2, u64::MAX],
                },
                Message::Refused { writes: vec![] },
                Message::SnapshotRequest { after: None },
                Message::SnapshotPage {
                    after: Some(id('a')),
                    upto: None,
                    entries: vec![
                        SnapshotEntry::Session(session('b', None)),
                        SnapshotEntry::Session(stamped('s')),
                        SnapshotEntry::Tombstone(d),
                    ],
                },
                Message::DigestRequest {
                    round: 3,
                    after: Some(id('c')),
                },
                Message::Digest {
                    round: 3,
                    after: None,
                    upto: Some(id('z')),
                    entries: vec![DigestEntry {
                        id: id('e'),
                        version: Version::new(1, "node-3"),
                        last_access_ms: 2,
                        deleted: false,
                        content: u64::MAX,
                    }],
                },
            ],
        }
    }

    #[test]
    fn every_message_kind_round_trips() {
        let b = every_kind();
        let bytes = encode(&b);
        assert_eq!(bytes[0], FORMAT);
        assert_eq!(decode(&bytes), Ok(b));
    }

    #[test]
    fn too_many_messages_are_refused_before_any_is_decoded() {
        let small = |n: usize| Batch {
            from: "n1".into(),
            to: "n2".into(),
            seq: 1,
            sent_ms: 5,
            messages: vec![Message::SnapshotRequest { after: None }; n],
        };
        let at_limit = small(crate::MAX_BATCH_MESSAGES);
        assert_eq!(decode(&encode(&at_limit)), Ok(at_limit));
        let over = encode(&small(crate::MAX_BATCH_MESSAGES + 1));
        assert_eq!(
            decode(&over),
            Err(DecodeError::TooMany(crate::MAX_BATCH_MESSAGES as u64 + 1))
        );
        // A count far above what the body holds is refused as such too,
        // not allocated for.
        let mut head = vec![FORMAT];
        head.extend(postcard::to_allocvec(&("n1", "n2", 1u64, 5u64, 4_000_000u64)).unwrap());
        assert_eq!(decode(&head), Err(DecodeError::TooMany(4_000_000)));
    }

    #[test]
    fn the_piecewise_encoding_is_postcard_of_the_whole_batch() {
        let b = every_kind();
        let whole = WireBatch {
            from: Cow::Borrowed(&b.from),
            to: Cow::Borrowed(&b.to),
            seq: b.seq,
            sent_ms: b.sent_ms,
            messages: b.messages.iter().map(message_out).collect(),
        };
        let mut expected = vec![FORMAT];
        expected.extend(postcard::to_allocvec(&whole).unwrap());
        assert_eq!(encode(&b), expected);
    }

    #[test]
    fn an_upsert_for_many_peers_is_encoded_once_and_less_than_half_its_json() {
        let u = Shared::new(Upsert {
            session: session('a', Some("alice")),
            origin_ms: Some(1_700_000_000_000),
            origin_us: Some(1_700_000_000_000_123),
            ack: None,
            base: None,
        });
        let batch = |to: &str| Batch {
            from: "node-1".into(),
            to: to.into(),
            seq: 1,
            sent_ms: 1_700_000_000_001,
            messages: vec![Message::Upsert(u.clone())],
        };
        let (b2, b3) = (batch("node-2"), batch("node-3"));
        let e2 = encode(&b2);
        let cached = u.wire(|_| panic!("already encoded")).as_ptr();
        let e3 = encode(&b3);
        assert_eq!(u.wire(|_| panic!("already encoded")).as_ptr(), cached);
        assert_eq!(decode(&e3), Ok(b3));
        let json = serde_json::to_vec(&b2).unwrap();
        assert!(e2.len() * 2 < json.len(), "{} vs {}", e2.len(), json.len());
    }

    #[test]
    fn bad_bodies_are_errors_not_panics() {
        assert_eq!(decode(b""), Err(DecodeError::Empty));
        assert_eq!(decode(b"{\"from\":1}"), Err(DecodeError::Format(b'{')));
        let good = encode(&every_kind());
        for cut in 1..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(decode(&long), Err(DecodeError::Trailing(1)));
        // A bad session id and data that is not JSON are refused as in JSON.
        let mut b = every_kind();
        b.messages.truncate(1);
        let spoiled = |needle: &[u8]| {
            let mut bytes = encode(&b);
            let at = bytes
                .windows(needle.len())
                .position(|w| w == needle)
                .expect("the needle is in the bytes");
            bytes[at] = b'!';
            decode(&bytes)
        };
        assert!(matches!(spoiled(b"aaaa"), Err(DecodeError::Malformed(_))));
        assert!(matches!(spoiled(b"\"counter\""), Err(DecodeError::Data(_))));
    }

    #[test]
    fn a_huge_length_prefix_does_not_allocate_it() {
        let mut bytes = vec![FORMAT];
        encode_into(
            &WireHead {
                from: "a",
                to: "b",
                seq: 0,
                sent_ms: 0,
            },
            &mut bytes,
        );
        push_varint(u64::MAX >> 1, &mut bytes);
        assert!(decode(&bytes).is_err());
    }
}
