//! Anti-entropy: finding and repairing differences by comparing digests.
//!
//! Queues, acks and resync flags make replication *fast*; anti-entropy makes
//! it *eventually right* whatever was lost. Every replica periodically walks
//! the id space with each peer, one chunk per round:
//!
//! ```text
//!   A                                         B
//!   | -- digest_request #7 after=k ---------> |
//!   | <-- digest #7 (k, m] [id, version, ...]  |   B: what I hold in (k, m]
//!   | -- upsert / delete / touch (repairs) -> |   A: what B lacks in (k, m]
//!   | -- digest_request #8 after=m ---------> |   ... until upto = end
//! ```
//!
//! A digest entry is `(id, version, last_access, deleted, content digest)`.
//! Comparing its own entries in the same range, A pushes to B every session
//! B does not have or has in an older version (or in a version that
//! collided with another write and loses the tie-break, see
//! [`crate::order`]), every tombstone B lacks, and a `touch` where B's last
//! access is older. A never *pulls*: what A lacks, B pushes in B's own
//! rounds with A. So each direction is repaired by its own side, and each
//! round is bounded: at most
//! [`MAX_LIST_ENTRIES`](crate::message::MAX_LIST_ENTRIES) digest entries
//! and `digest_chunk` repairs (a longer repair continues in the next round
//! from where it stopped).
//!
//! With attribute granularity (`crate::granularity`) a version no longer
//! names one content: a merged copy carries the higher version of the two
//! it merged, and so does the copy that lacks the other's keys. So A pushes
//! its copy whenever B's version *or* content digest differs, whichever
//! version is higher; B merges it, and a copy B already covers changes
//! nothing. Differences are rare and short-lived (a write in flight), so
//! the extra pushes are few.
//!
//! A digest is only as fresh as the moment it was built, and a write may be
//! on its way to B while B's digest is on its way to A. Repairing it would
//! be harmless (applying twice changes nothing) but wasteful, so each round
//! has a *horizon*: A's Lamport clock when it sent the request. A skips
//! versions above it. They were stored after the request left, so they are
//! still in A's queue to B (whose loss marks B for resync) or they came
//! from a third node, whose own queue and rounds cover B.
//!
//! Ranges are half-open intervals of the sorted id space, `(after, upto]`,
//! chosen by the replier (its first `digest_chunk` ids after `after`). That
//! makes chunks well defined on both sides without either keeping state
//! about the other.
//!
//! In the backup topology a node holds only the sessions it owns, so a
//! round repairs only the ids *both* sides own (by the repairing side's
//! view of the members): a peer is never pushed a copy it should not keep,
//! and a new owner gets exactly its share. For the same reason B's digest
//! lists only the ids of its page that A owns (by B's view; the range is
//! still the whole page): a node asked by every other member lists each
//! its share, not its whole store. Where the two views differ, A may push
//! a copy B left out of its digest but holds; applying it changes nothing. After a change of membership
//! every peer is marked for resync, so the rounds run back to back: this is
//! half of the rebalance ([`crate::rebalance`]).
//!
//! Rounds run every `anti_entropy_interval_ms` per peer, and back-to-back
//! while a peer needs a resync (queue overflow, a failed send, a partition
//! that healed): that is how a healed partition converges without new
//! writes. Expired sessions are left out of digests and repairs: expiry is
//! a pure function of the replicated fields, so every replica drops them by
//! itself.

use sessionlab_session::{MemoryStore, Session, SessionId};

use crate::granularity::Granularity;
use crate::message::{Delete, DigestEntry, Message};
use crate::order;
use crate::tombstones::Tombstones;

/// What a replica holds for one id.
#[derive(Debug, Clone)]
pub(crate) enum Held {
    Session(Session),
    Tombstone(Delete),
}

/// The first `limit` ids after `after` (sessions and tombstones, in id
/// order) with what is held for each (`None`: the session is expired or
/// was removed meanwhile), and whether more ids follow.
pub(crate) fn held_after(
    store: &MemoryStore,
    tombs: &Tombstones,
    after: Option<&SessionId>,
    limit: usize,
    now_ms: u64,
) -> (Vec<(SessionId, Option<Held>)>, bool) {
    let limit = limit.max(1);
    let mut ids = store.ids_in(after, None, Some(limit + 1));
    ids.extend(tombs.after(after).take(limit + 1).map(|(id, _)| id.clone()));
    ids.sort_unstable();
    ids.dedup();
    let more = ids.len() > limit;
    ids.truncate(limit);
    let held = ids
        .into_iter()
        .map(|id| {
            let h = match tombs.get(&id) {
                Some(d) => Some(Held::Tombstone(d)),
                None => store
                    .get_raw(&id)
                    .filter(|s| !s.is_expired(now_ms))
                    .map(Held::Session),
            };
            (id, h)
        })
        .collect();
    (held, more)
}

/// The digest of ids after `after`: entries and the range end `upto`
/// (`None` when the range reaches the end of the id space).
pub(crate) fn digest_page(
    store: &MemoryStore,
    tombs: &Tombstones,
    after: Option<&SessionId>,
    limit: usize,
    now_ms: u64,
) -> (Vec<DigestEntry>, Option<SessionId>) {
    let (held, more) = held_after(store, tombs, after, limit, now_ms);
    let upto = if more {
        held.last().map(|(id, _)| id.clone())
    } else {
        None
    };
    let entries = held
        .into_iter()
        .filter_map(|(_, h)| {
            Some(match h? {
                Held::Session(s) => DigestEntry {
                    content: order::content_digest(&s),
                    id: s.id,
                    version: s.version,
                    last_access_ms: s.last_access_ms,
                    deleted: false,
                },
                Held::Tombstone(d) => DigestEntry {
                    id: d.id,
                    version: d.version,
                    last_access_ms: 0,
                    deleted: true,
                    content: 0,
                },
            })
        })
        .collect();
    (entries, upto)
}

/// The repairs a peer needs, given its digest of `(after, upto]`.
#[derive(Debug)]
pub(crate) struct Repairs {
    pub messages: Vec<Message>,
    /// Where the next round starts (`None` with `pass_done`: a new pass).
    pub cursor: Option<SessionId>,
    /// The whole id space has been compared.
    pub pass_done: bool,
}

/// A peer's digest of `(after, upto]`, to compare ours with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TheirDigest<'a> {
    pub after: Option<&'a SessionId>,
    pub upto: Option<&'a SessionId>,
    pub entries: &'a [DigestEntry],
    /// Skip our versions above this Lamport value (see the module docs).
    pub horizon: u64,
}

/// Which of our sessions a round may repair onto the peer: every one in
/// all-to-all; in the backup topology only the ids both nodes own (see the
/// module docs). Tombstones are not filtered: deletes go to every member.
pub(crate) type Keep<'a> = &'a dyn Fn(&SessionId) -> bool;

/// Compare our entries in `(after, upto]` with the peer's digest and build
/// at most `limit` repair messages (see the module docs).
pub(crate) fn repairs(
    store: &MemoryStore,
    tombs: &Tombstones,
    theirs: TheirDigest<'_>,
    limit: usize,
    now_ms: u64,
    granularity: Granularity,
    keep: Keep<'_>,
) -> Repairs {
    let merging = granularity == Granularity::Attribute;
    let TheirDigest {
        after,
        upto,
        entries: remote,
        horizon,
    } = theirs;
    let in_range = |id: &SessionId| after.is_none_or(|a| id > a) && upto.is_none_or(|u| id <= u);
    let theirs: std::collections::HashMap<&SessionId, &DigestEntry> = remote
        .iter()
        .filter(|e| in_range(&e.id))
        .map(|e| (&e.id, e))
        .collect();
    let mut ours: Vec<SessionId> = store.ids_in(after, upto, None);
    ours.extend(
        tombs
            .after(after)
            .take_while(|(id, _)| upto.is_none_or(|u| *id <= u))
            .map(|(id, _)| id.clone()),
    );
    ours.sort_unstable();
    ours.dedup();

    let mut messages = Vec::new();
    let mut last_handled: Option<SessionId> = None;
    for id in ours {
        if messages.len() >= limit {
            // Stopped early: the next round continues after the last id
            // handled, so nothing is skipped.
            return Repairs {
                messages,
                cursor: last_handled.or_else(|| after.cloned()),
                pass_done: false,
            };
        }
        let remote = theirs.get(&id).copied();
        if let Some(d) = tombs.get(&id) {
            if remote.is_none_or(|r| !r.deleted) && d.version.lamport <= horizon {
                messages.push(Message::Delete(d));
            }
        } else if let Some(s) = store
            .get_raw(&id)
            .filter(|s| !s.is_expired(now_ms) && s.version.lamport <= horizon && keep(&s.id))
        {
            let differs =
                |r: &DigestEntry| r.version != s.version || r.content != order::content_digest(&s);
            match remote {
                Some(r) if r.deleted => {}
                // Attribute granularity: a copy with another version or
                // content may lack keys ours has, whichever is newer; the
                // peer merges, and what it already covers is a no-op.
                Some(r) if merging && differs(r) => {
                    messages.push(Message::repair(s));
                }
                Some(r) if r.version > s.version => {}
                Some(r) if r.version == s.version && r.content < order::content_digest(&s) => {
                    // Two writes collided on one version; ours wins.
                    messages.push(Message::repair(s));
                }
                Some(r) if r.version == s.version => {
                    if r.last_access_ms < s.last_access_ms {
                        messages.push(Message::Touch {
                            id: s.id.clone(),
                            at_ms: s.last_access_ms,
                        });
                    }
                }
                _ => messages.push(Message::repair(s)),
            }
        }
        last_handled = Some(id);
    }
    Repairs {
        messages,
        cursor: upto.cloned(),
        pass_done: upto.is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_ids::id;
    use sessionlab_session::{MemoryStoreConfig, Version};

    fn store(node: &str) -> MemoryStore {
        MemoryStore::new(MemoryStoreConfig {
            node_id: node.into(),
            ..MemoryStoreConfig::default()
        })
    }

    fn put(st: &MemoryStore, c: char, lamport: u64, last_access: u64) {
        let mut s = Session::new(id(c), 0, 1_000_000, 10_000_000);
        s.version = Version::new(lamport, "n1");
        s.last_access_ms = last_access;
        let incoming = s.version.clone();
        st.apply_with(s, |held| incoming > held.version);
    }

    #[test]
    fn digest_pages_cover_the_id_space_in_order() {
        let st = store("n1");
        let mut tombs = Tombstones::new(10);
        for c in ['d', 'a', 'c'] {
            put(&st, c, 1, 0);
        }
        tombs.insert(id('b'), Version::new(2, "n1"), 1_000);
        let (page, upto) = digest_page(&st, &tombs, None, 2, 0);
        assert_eq!(
            page.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
            [id('a'), id('b')]
        );
        assert!(page[1].deleted);
        assert_eq!(upto, Some(id('b')));
        let (page, upto) = digest_page(&st, &tombs, Some(&id('b')), 2, 0);
        assert_eq!(
            page.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
            [id('c'), id('d')]
        );
        assert_eq!(upto, None);
    }

    #[test]
    fn repairs_push_only_what_the_peer_lacks() {
        let ours = store("n1");
        let mut tombs = Tombstones::new(10);
        put(&ours, 'a', 5, 100); // peer has it older
        put(&ours, 'c', 3, 300); // peer has same version, older access
        put(&ours, 'e', 1, 0); // peer lacks it
        put(&ours, 'f', 1, 0); // peer has it newer
        tombs.insert(id('d'), Version::new(9, "n1"), 10_000); // peer has it live
        let entry = |c: char, lamport: u64, node: &str, last_access_ms: u64| DigestEntry {
            id: id(c),
            version: Version::new(lamport, node),
            last_access_ms,
            deleted: false,
            // Where the versions match, the content does too.
            content: ours
                .get_raw(&id(c))
                .map_or(0, |s| order::content_digest(&s)),
        };
        let remote = vec![
            entry('a', 4, "n2", 0),
            entry('b', 1, "n2", 0),
            entry('c', 3, "n1", 200),
            entry('d', 2, "n2", 0),
            entry('f', 7, "n2", 0),
        ];
        // One round against the remote page after `after`, with a limit of
        // `limit` messages and the ownership filter `both_own`.
        let round = |after: Option<&SessionId>, limit, both_own: &dyn Fn(&SessionId) -> bool| {
            let digest = TheirDigest {
                after,
                upto: None,
                entries: &remote,
                horizon: u64::MAX,
            };
            repairs(
                &ours,
                &tombs,
                digest,
                limit,
                0,
                Granularity::Session,
                both_own,
            )
        };
        let lines =
            |r: &Repairs| -> Vec<String> { r.messages.iter().map(|m| m.to_string()).collect() };
        let r = round(None, 100, &|_| true);
        assert_eq!(
            lines(&r),
            [
                "upsert aaaaaa.. v=5@n1 (repair)",
                "touch cccccc.. at=300",
                "delete dddddd.. v=9@n1",
                "upsert eeeeee.. v=1@n1 (repair)",
            ]
        );
        assert!(r.pass_done);

        // With a limit of 2 the round stops after 'c' and resumes there.
        let r = round(None, 2, &|_| true);
        assert_eq!(r.messages.len(), 2);
        assert_eq!(r.cursor, Some(id('c')));
        assert!(!r.pass_done);
        let (c, e) = (id('c'), id('e'));
        let r = round(Some(&c), 2, &|_| true);
        assert_eq!(r.messages.len(), 2);
        assert_eq!(r.cursor, Some(id('e')));
        let r = round(Some(&e), 2, &|_| true);
        assert!(r.messages.is_empty());
        assert!(r.pass_done);

        // Backup: only the ids both own are repaired (here: not 'a' or
        // 'e'); tombstones always are.
        let r = round(None, 100, &|i| *i != id('a') && *i != id('e'));
        assert_eq!(
            lines(&r),
            ["touch cccccc.. at=300", "delete dddddd.. v=9@n1"]
        );
    }
}
