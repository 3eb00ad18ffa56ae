//! Which nodes own a session: `K + 1` of the members, chosen by hashing.
//!
//! All-to-all replication keeps every session on every node: each write
//! costs `n - 1` copies and each node holds the whole cluster's sessions,
//! which is why Tomcat advises its DeltaManager for small clusters only and
//! offers the BackupManager, and why Infinispan keeps `owners` copies. The
//! backup topology keeps `K + 1` copies instead: a primary and `K` backups,
//! the same few nodes for a session wherever the question is asked.
//!
//! They are chosen by rendezvous hashing (highest random weight; Thaler and
//! Ravishankar 1996): every member gets a score `hash(member, session id)`,
//! and the `K + 1` highest scores own the session, the highest first (the
//! primary). Every node computes the same owners from the same member list
//! with no table to agree on, and a change of membership moves only what
//! it must:
//!
//! | change | sessions whose owners change | how many, of `n` members |
//! |---|---|---|
//! | a member joins | those where it scores among the top `K + 1` | about `(K + 1) / (n + 1)` |
//! | a member leaves or dies | those it owned | about `(K + 1) / n` |
//! | anything else | none | 0 |
//!
//! When owners change, [`handoff`] says who sends a copy to whom: the
//! first owner of the old list that is still a member (so one node sends,
//! not all of them), to each new owner that did not hold it. After an
//! owner dies, this is how the backups restore `K + 1` copies.

use sessionlab_session::SessionId;
use sessionlab_wire::hash::hash_parts;

/// The owners of session `id` among `members` (keyed by the id's text):
/// what every node computes, and what the admin listing shows.
pub fn session_owners<'a>(id: &SessionId, members: &[&'a str], copies: usize) -> Vec<&'a str> {
    owners(id.as_str().as_bytes(), members, copies)
}

/// The members and the copy count that decide owners at one moment, owned:
/// owners computed from it without holding the replica (the admin
/// listing, which reads the store's shards, locked in the other order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerMap {
    pub(crate) members: Vec<String>,
    pub(crate) copies: usize,
}

impl OwnerMap {
    /// The owners of session `id`, the primary first.
    pub fn owners(&self, id: &SessionId) -> Vec<String> {
        let members: Vec<&str> = self.members.iter().map(String::as_str).collect();
        session_owners(id, &members, self.copies)
            .into_iter()
            .map(str::to_owned)
            .collect()
    }
}

/// The owners of `key` among `members`, highest score first (the primary),
/// at most `copies` of them (all members if there are fewer).
pub fn owners<'a>(key: &[u8], members: &[&'a str], copies: usize) -> Vec<&'a str> {
    let mut scored: Vec<(u64, &'a str)> = members
        .iter()
        .map(|m| (hash_parts(&[m.as_bytes(), b"\0", key]), *m))
        .collect();
    // Highest score first; equal scores (astronomically rare) by id.
    scored.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(copies).map(|(_, m)| m).collect()
}

/// Does `member` own `key`?
pub fn is_owner(key: &[u8], member: &str, members: &[&str], copies: usize) -> bool {
    owners(key, members, copies).contains(&member)
}

/// A copy to send after a change of membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff<'a> {
    /// The node that sends it: the first old owner still a member.
    pub from: &'a str,
    /// The new owners that did not own it before.
    pub to: Vec<&'a str>,
}

/// Who sends `key` to whom when the members go from `old` to `new`;
/// `None` when no new owner lacks it, or when every old owner is gone (the
/// session is lost: more than `K` owners failed at once).
pub fn handoff<'a>(
    key: &[u8],
    old: &[&'a str],
    new: &[&'a str],
    copies: usize,
) -> Option<Handoff<'a>> {
    let before = owners(key, old, copies);
    let after = owners(key, new, copies);
    let to: Vec<&'a str> = after
        .iter()
        .copied()
        .filter(|m| !before.contains(m))
        .collect();
    if to.is_empty() {
        return None;
    }
    let from = before.iter().copied().find(|m| new.contains(m))?;
    Some(Handoff { from, to })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("node-{i}")).collect()
    }

    fn refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    fn keys(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("session-{i:06}").into_bytes())
            .collect()
    }

    #[test]
    fn owners_are_distinct_primary_first_and_all_members_when_few() {
        let m = ids(5);
        let m = refs(&m);
        let o = owners(b"abc", &m, 2);
        assert_eq!(o.len(), 2);
        assert_ne!(o[0], o[1]);
        assert_eq!(o, owners(b"abc", &m, 2), "the same answer every time");
        assert_eq!(
            o[0],
            owners(b"abc", &m, 1)[0],
            "the primary heads every longer list"
        );
        assert_eq!(owners(b"abc", &m[..1], 3), vec![m[0]]);
        assert!(owners(b"abc", &[], 2).is_empty());
        // The order of the member list does not matter.
        let mut rev = m.clone();
        rev.reverse();
        assert_eq!(owners(b"abc", &rev, 2), o);
    }

    #[test]
    fn each_member_gets_its_share_of_primaries_and_copies() {
        let m = ids(8);
        let m = refs(&m);
        let keys = keys(40_000);
        let mut primary = vec![0usize; m.len()];
        let mut copies = vec![0usize; m.len()];
        for k in &keys {
            for (rank, o) in owners(k, &m, 2).iter().enumerate() {
                let i = m.iter().position(|x| x == o).unwrap();
                copies[i] += 1;
                if rank == 0 {
                    primary[i] += 1;
                }
            }
        }
        let share = keys.len() / m.len();
        for (p, c) in primary.iter().zip(&copies) {
            assert!(p.abs_diff(share) < share / 10, "{primary:?}");
            assert!(c.abs_diff(2 * share) < share / 5, "{copies:?}");
        }
    }

    #[test]
    fn a_join_moves_only_the_sessions_the_new_member_takes() {
        let (old, new) = (ids(4), ids(5));
        let (old, new) = (refs(&old), refs(&new));
        let keys = keys(40_000);
        let mut changed = 0usize;
        for k in &keys {
            let (a, b) = (owners(k, &old, 2), owners(k, &new, 2));
            if a != b {
                changed += 1;
                // What changed is that node-5 came in, nothing else.
                assert!(b.contains(&"node-5"), "{a:?} -> {b:?}");
                let kept: Vec<_> = a.iter().filter(|x| b.contains(x)).collect();
                assert_eq!(kept.len(), 1, "one old owner makes room: {a:?} -> {b:?}");
                let h = handoff(k, &old, &new, 2).unwrap();
                assert_eq!(h.to, vec!["node-5"]);
                assert!(a.contains(&h.from));
            } else {
                assert_eq!(handoff(k, &old, &new, 2), None);
            }
        }
        // (K + 1) / (n + 1) = 2 / 5 of the sessions, give or take.
        let ideal = keys.len() * 2 / 5;
        assert!(
            changed.abs_diff(ideal) < keys.len() / 50,
            "{changed} of {}",
            keys.len()
        );
    }

    #[test]
    fn after_an_owner_dies_a_survivor_restores_the_copies() {
        let (old, new) = (ids(5), ids(5));
        let old = refs(&old);
        let new: Vec<&str> = refs(&new).into_iter().filter(|m| *m != "node-2").collect();
        let mut moved = 0usize;
        for k in keys(10_000) {
            let a = owners(&k, &old, 2);
            match handoff(&k, &old, &new, 2) {
                Some(h) => {
                    moved += 1;
                    assert!(a.contains(&"node-2"), "only node-2's sessions move");
                    assert_ne!(h.from, "node-2", "a survivor sends");
                    assert_eq!(h.to.len(), 1);
                    assert_eq!(owners(&k, &new, 2).len(), 2, "two copies again");
                }
                None => assert!(!a.contains(&"node-2")),
            }
        }
        assert!(
            moved.abs_diff(4_000) < 300,
            "{moved}: about 2/5 of the sessions"
        );
        // Both owners gone at once with K = 1: nobody can send.
        let k = b"lost";
        let a = owners(k, &old, 2);
        let without: Vec<&str> = old.iter().copied().filter(|m| !a.contains(m)).collect();
        assert_eq!(handoff(k, &old, &without, 2), None);
    }
}
